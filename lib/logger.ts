import { type Logger, pino } from 'pino';

export type { Logger };

// One structured logger per process; tests stay quiet unless LOG_LEVEL is set.
export function createLogger(name: string): Logger {
  const level = process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'silent' : 'info');
  return pino({ name, level });
}
