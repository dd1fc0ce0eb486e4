// The machine's own limits, measured in the same run as the workloads because these machines are
// noisy: every result is also reported as a ratio to the limit that bounds it.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pool, round } from './stats.js';

/** Per workload name: what the client side alone reaches (measured by bench.ts against null-s3.js). */
export type ClientCeilings = Record<string, { opsPerSec: number; mbPerSec: number }>;

export interface Limits {
  /** Three files written at once with fsync, MB/s of one copy: the bound on an R=3 write. */
  disk3xMBps: number;
  /** Small files written like a node stores a chunk (temp, fsync, rename, fsync dir), 32 at once. */
  smallFsyncOpsPerSec: number;
  md5MBps: number;
  sha256MBps: number;
  /** MD5 and SHA-256 over the same bytes on one core, as a gateway hashing a PUT does. */
  md5PlusSha256MBps: number;
  /** One HTTP stream over 127.0.0.1, client here, server in another process. */
  loopbackHttpMBps: number;
  client: ClientCeilings;
}

export interface LimitSizes {
  diskBytes: number;
  hashBytes: number;
  loopbackBytes: number;
  smallFiles: number;
}

const writeBytes = 1024 * 1024;

export async function measureLimits(dir: string, sizes: LimitSizes): Promise<Limits> {
  const work = path.join(dir, 'limits');
  mkdirSync(work, { recursive: true });
  try {
    const disk3xMBps = await diskThreeCopies(work, sizes.diskBytes);
    const smallFsyncOpsPerSec = await smallFsyncWrites(work, sizes.smallFiles);
    const md5MBps = hashRate(['md5'], sizes.hashBytes);
    const sha256MBps = hashRate(['sha256'], sizes.hashBytes);
    const md5PlusSha256MBps = hashRate(['md5', 'sha256'], sizes.hashBytes);
    const loopbackHttpMBps = await loopbackHttp(sizes.loopbackBytes);
    return {
      disk3xMBps,
      smallFsyncOpsPerSec,
      md5MBps,
      sha256MBps,
      md5PlusSha256MBps,
      loopbackHttpMBps,
      client: {},
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function diskThreeCopies(dir: string, bytes: number): Promise<number> {
  const buf = randomBytes(writeBytes);
  const t0 = performance.now();
  await Promise.all(
    [0, 1, 2].map(async (i) => {
      const fh = await open(path.join(dir, `copy-${i}`), 'w');
      try {
        for (let done = 0; done < bytes; done += writeBytes) await fh.write(buf, 0, writeBytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }),
  );
  return round(bytes / 1e6 / ((performance.now() - t0) / 1000), 1);
}

async function smallFsyncWrites(dir: string, count: number): Promise<number> {
  const buf = randomBytes(4096);
  const dirs = [0, 1, 2].map((i) => path.join(dir, `small-${i}`));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const t0 = performance.now();
  const done = await pool(count, 32, 30_000, async (i) => {
    const d = dirs[i % 3];
    const tmp = path.join(d, `${i}.tmp`);
    const fh = await open(tmp, 'w');
    await fh.write(buf);
    await fh.sync();
    await fh.close();
    await rename(tmp, path.join(d, String(i)));
    const dh = await open(d, 'r');
    await dh.sync();
    await dh.close();
  });
  return round(done / ((performance.now() - t0) / 1000), 1);
}

function hashRate(algorithms: string[], bytes: number): number {
  const buf = randomBytes(writeBytes);
  const hashes = algorithms.map((a) => createHash(a));
  const t0 = performance.now();
  for (let done = 0; done < bytes; done += writeBytes) for (const h of hashes) h.update(buf);
  for (const h of hashes) h.digest();
  return round(bytes / 1e6 / ((performance.now() - t0) / 1000), 1);
}

/** A sink server in its own process, so client and server each get a core as in the real thing. */
const sinkServer = `
const http = require('node:http');
const srv = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => { n += c.length; });
  req.on('end', () => res.end(String(n)));
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/**
 * Runs a server script in a child process (it prints its port as its first line and exits when its
 * stdin closes), so it gets a core of its own, and hands `use` the port.
 */
export async function withChildServer<T>(args: string[], use: (port: number) => Promise<T>): Promise<T> {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    return await use(Number(line));
  } finally {
    child.stdin!.end();
    child.kill();
  }
}

function loopbackHttp(bytes: number): Promise<number> {
  return withChildServer(['-e', sinkServer], async (port) => {
    const buf = randomBytes(writeBytes);
    const t0 = performance.now();
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/' });
    const response = once(req, 'response');
    for (let done = 0; done < bytes; done += writeBytes) {
      if (!req.write(buf)) await once(req, 'drain');
    }
    req.end();
    const [res] = (await response) as [http.IncomingMessage];
    let body = '';
    for await (const c of res) body += c;
    if (Number(body) !== bytes) throw new Error(`loopback: server got ${body} of ${bytes} bytes`);
    return round(bytes / 1e6 / ((performance.now() - t0) / 1000), 1);
  });
}
