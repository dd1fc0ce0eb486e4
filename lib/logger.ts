import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * stdout, written asynchronously: a synchronous write per log line (one per request) cost the
 * gateway's event loop more than some requests themselves. Lines written while a write is in
 * flight go out together with the next one; pino flushes what is left when the process exits.
 */
let stdout: DestinationStream | undefined;

// One structured logger per process; tests stay quiet unless LOG_LEVEL is set.
export function createLogger(name: string): Logger {
  const level = process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'silent' : 'info');
  stdout ??= pino.destination({ dest: 1, sync: false });
  return pino({ name, level }, stdout);
}
