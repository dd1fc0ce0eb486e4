// Worker side of file-hash.ts: hashes an open descriptor of the parent process with positional
// reads into one reused buffer, so a 64 MiB chunk costs neither the event loop nor garbage.
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

export interface HashJob {
  job: number;
  fd: number;
}
export type HashReply = { job: number; sha256: string } | { job: number; error: string };

const buf = Buffer.allocUnsafe(1024 * 1024);

parentPort?.on('message', ({ job, fd }: HashJob) => {
  let reply: HashReply;
  try {
    const hash = createHash('sha256');
    let pos = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    reply = { job, sha256: hash.digest('hex') };
  } catch (err) {
    reply = { job, error: (err as Error).message };
  }
  parentPort?.postMessage(reply);
});
