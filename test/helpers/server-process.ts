// Starts the real `s3dfs server` (`node <outDir>/bin/s3dfs.js server`) as a user runs it, reads the
// endpoint and credentials from its banner, and waits until the management API reports every
// storage node up.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { nodeFlags } from '../../lib/node-flags.js';
import { binPath } from './node-process.js';

// Migrations, the manager and three node processes on a busy 2-core machine.
const startTimeoutMsDefault = 60_000;
// SIGTERM gets this long to stop nodes and close the database before SIGKILL.
const stopTimeoutMs = 10_000;

export interface ServerProcessOptions {
  dataDir: string;
  /** First port of a private 100-port pool for this server's storage nodes. */
  portBase: number;
  nodes?: number;
  chunkSize?: string;
  adminToken: string;
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** The umask the server starts under (default: this process's). */
  umask?: number;
}

export interface ServerProcess {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  managerUrl: string;
  adminToken: string;
  dataDir: string;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function startServerProcess(opts: ServerProcessOptions): Promise<ServerProcess> {
  const nodes = opts.nodes ?? 3;
  // Credentials come from the banner and the credentials file, as a user gets them, not from this
  // process's environment; a test may still pass its own in `env`.
  const inherited: Record<string, string | undefined> = { ...process.env };
  delete inherited.S3DFS_ACCESS_KEY;
  delete inherited.S3DFS_SECRET_KEY;
  delete inherited.DATABASE_URL;
  const env: Record<string, string | undefined> = {
    ...inherited,
    S3DFS_DATA_DIR: opts.dataDir,
    S3DFS_NODES: String(nodes),
    S3DFS_CHUNK_SIZE: opts.chunkSize ?? '1MiB',
    S3DFS_PORT_POOL: `${opts.portBase}-${opts.portBase + 99}`,
    S3DFS_S3_PORT: '0',
    S3DFS_ADMIN_PORT: '0',
    S3DFS_ADMIN_TOKEN: opts.adminToken,
    S3DFS_HEALTH_INTERVAL_MS: '200',
    S3DFS_RING_REFRESH_MS: '100',
    ...opts.env,
  };
  // A child inherits the umask at spawn, which is synchronous: set just around it.
  const umaskBefore = opts.umask === undefined ? undefined : process.umask(opts.umask);
  const proc = spawn(process.execPath, [...nodeFlags, binPath, 'server'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (umaskBefore !== undefined) process.umask(umaskBefore);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = once(proc, 'exit');
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? startTimeoutMsDefault);
  const field = (label: string) => new RegExp(`^\\s*${label}\\s+(\\S+)`, 'm').exec(out)?.[1];
  try {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`s3dfs server exited with ${proc.exitCode}:\n${out}`);
      if (field('management API')) break;
      if (Date.now() > deadline) throw new Error(`s3dfs server printed no banner in time:\n${out}`);
      await sleep(50);
    }
    const managerUrl = field('management API')!;
    for (;;) {
      const res = await fetch(`${managerUrl}/api/cluster`, {
        headers: { authorization: `Bearer ${opts.adminToken}` },
      }).catch(() => undefined);
      if (res?.ok && ((await res.json()) as { nodesUp: number }).nodesUp >= nodes) break;
      if (Date.now() > deadline) throw new Error(`s3dfs server: ${nodes} nodes not up in time:\n${out}`);
      await sleep(100);
    }
    // The gateway polls the ring; give it one refresh so the first write sees every node.
    await sleep(300);
    return {
      endpoint: field('S3 endpoint')!,
      accessKey: field('access key')!,
      // The banner names the file; it prints the secret itself only on a terminal.
      secretKey: opts.env?.S3DFS_SECRET_KEY ?? credentialsFile(opts.dataDir).secretKey,
      managerUrl,
      adminToken: opts.adminToken,
      dataDir: opts.dataDir,
      proc,
      output: () => out,
      async stop() {
        await stop();
        rmSync(opts.dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function credentialsFile(dataDir: string): { accessKey: string; secretKey: string } {
  return JSON.parse(readFileSync(path.join(dataDir, 'credentials.json'), 'utf8'));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
