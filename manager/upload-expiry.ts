// Aborts multipart uploads nobody has touched for S3DFS_UPLOAD_EXPIRY_MS (a client that died
// mid-upload never sends Abort), so their parts' chunks reach the delete queue; and forgets
// completed or aborted uploads as old. One pass at a time, on a timer.
import type { Knex } from 'knex';
import type { Logger } from '../lib/logger.js';
import { expireUploads } from '../lib/uploads.js';

export interface UploadExpiryOptions {
  db: Knex;
  logger: Logger;
  /** Idle age after which an active upload is aborted. */
  expiryMs: number;
  /** Time between passes. */
  checkIntervalMs: number;
}

export interface UploadExpiry {
  /** One pass now (also what the timer runs); resolves with the number of uploads aborted. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

export function startUploadExpiry(opts: UploadExpiryOptions): UploadExpiry {
  const log = opts.logger.child({ component: 'upload-expiry' });
  let running: Promise<number> | undefined;
  let stopped = false;

  const pass = async (): Promise<number> => {
    const result = await expireUploads(opts.db, opts.expiryMs);
    for (const u of result.aborted)
      log.info({ uploadId: u.id, bucket: u.bucket, key: u.key, idleMs: opts.expiryMs }, 'upload expired');
    if (result.purged > 0) log.debug({ purged: result.purged }, 'finished uploads forgotten');
    return result.aborted.length;
  };
  const runOnce = (): Promise<number> => {
    running ??= pass().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => {
    if (stopped || running) return;
    runOnce().catch((err) => log.warn({ err }, 'upload expiry pass failed'));
  }, opts.checkIntervalMs);
  timer.unref();

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => {});
    },
  };
}
