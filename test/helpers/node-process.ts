// Starts real storage-node processes (`node <outDir>/bin/s3dfs.js node ...`) for tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { nodeFlags } from '../../lib/node-flags.js';

/** The compiled CLI next to this compiled helper, whatever outDir it was built into. */
export const binPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/s3dfs.js');

// A node scans its data dir before listening; a few seconds is plenty for a test's data.
const startTimeoutMsDefault = 15_000;
// SIGTERM gets this long to close cleanly before the helper escalates to SIGKILL.
const stopTimeoutMs = 5_000;
const listeningLine = /^s3dfs-node listening on (http:\/\/(\S+):(\d+)) id=(\S+)$/;

export interface NodeProcessOptions {
  dataDir: string;
  /** Default 0: the node picks a free port and reports it. */
  port?: number;
  secret?: string;
  id?: string;
  host?: string;
  /** Bytes or a 64GiB-style size. */
  capacity?: string;
  /** Extra environment, on top of this process's. */
  env?: Record<string, string | undefined>;
  /** Extra command-line arguments after the ones above. */
  args?: string[];
  startTimeoutMs?: number;
}

export interface NodeProcess {
  /** http://127.0.0.1:PORT, with a wildcard bind address replaced by loopback. */
  url: string;
  port: number;
  pid: number;
  id: string;
  dataDir: string;
  proc: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL if it has not exited in time; resolves once it has. */
  stop(): Promise<void>;
}

export class NodeStartError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | string | undefined,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export async function startNodeProcess(opts: NodeProcessOptions): Promise<NodeProcess> {
  const args = [binPath, 'node', '--port', String(opts.port ?? 0), '--data', opts.dataDir];
  if (opts.id !== undefined) args.push('--id', opts.id);
  if (opts.host !== undefined) args.push('--host', opts.host);
  if (opts.capacity !== undefined) args.push('--capacity', opts.capacity);
  args.push(...(opts.args ?? []));
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (opts.secret !== undefined) env.S3DFS_CLUSTER_SECRET = opts.secret;

  const proc = spawn(process.execPath, [...nodeFlags, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  const lines = createInterface({ input: proc.stdout! });

  const started = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new NodeStartError('storage node did not report listening in time', undefined, stderr));
    }, opts.startTimeoutMs ?? startTimeoutMsDefault);
    lines.on('line', (line) => {
      const m = listeningLine.exec(line);
      if (!m) return;
      clearTimeout(timer);
      resolve(m);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new NodeStartError(`storage node exited (${code}) before listening: ${stderr.trim()}`, code, stderr),
      );
    });
  });
  // Keep draining stdout so a chatty node never blocks on a full pipe.
  lines.on('line', () => {});

  const host = started[2] === '0.0.0.0' || started[2] === '[::]' ? '127.0.0.1' : started[2];
  const port = Number(started[3]);
  const node: NodeProcess = {
    url: `http://${host}:${port}`,
    port,
    pid: proc.pid!,
    id: started[4],
    dataDir: opts.dataDir,
    proc,
    stderr: () => stderr,
    exited,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  return node;
}

/** Waits for a process to exit; for tests that kill and then restart on the same data dir. */
export async function waitExit(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await once(proc, 'exit');
}
