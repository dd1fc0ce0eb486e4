// SHA-256 of a whole open file, off the event loop. Verifying a 64 MiB chunk without block sums (one
// written before them) before sending it reads and hashes every byte; on the main thread that stalls every other request for ~50 ms and
// caps a read at one core. A couple of worker threads do it beside the event loop instead.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { HashJob, HashReply } from './file-hash-worker.js';

const workersMax = Math.max(1, Math.min(2, os.availableParallelism()));

interface Pending {
  resolve: (sha256: string) => void;
  reject: (err: Error) => void;
}

interface HashWorker {
  worker: Worker;
  pending: Map<number, Pending>;
}

const workers: HashWorker[] = [];
let nextJob = 1;

function spawn(): HashWorker {
  const worker = new Worker(new URL('./file-hash-worker.js', import.meta.url));
  const w: HashWorker = { worker, pending: new Map() };
  // Idle workers must not keep a finished process (a CLI, a test) alive.
  worker.unref();
  worker.on('message', (reply: HashReply) => {
    const p = w.pending.get(reply.job);
    if (!p) return;
    w.pending.delete(reply.job);
    if (w.pending.size === 0) worker.unref();
    if ('error' in reply) p.reject(new Error(reply.error));
    else p.resolve(reply.sha256);
  });
  // 'error' is followed by 'exit': the second call finds nothing left to do.
  const fail = (err: Error) => {
    const at = workers.indexOf(w);
    if (at >= 0) workers.splice(at, 1);
    for (const p of w.pending.values()) p.reject(err);
    w.pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`hash worker exited with code ${code}`)));
  return w;
}

/**
 * SHA-256 (hex) of the file behind `fd`, from its first byte to its end. The caller keeps `fd`
 * open until this settles: the worker reads it by number.
 */
export function sha256OfFd(fd: number): Promise<string> {
  // The least busy worker; another one while all are busy and there is room.
  let w = workers.reduce<HashWorker | undefined>(
    (a, b) => (a && a.pending.size <= b.pending.size ? a : b),
    undefined,
  );
  if (!w || (w.pending.size > 0 && workers.length < workersMax)) {
    w = spawn();
    workers.push(w);
  }
  const job = nextJob++;
  const target = w;
  return new Promise((resolve, reject) => {
    target.pending.set(job, { resolve, reject });
    target.worker.ref();
    target.worker.postMessage({ job, fd } satisfies HashJob);
  });
}
