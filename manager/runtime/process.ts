// Storage nodes as child processes of the manager: `node <dist>/bin/s3dfs.js node ...`, each with
// its own data dir under DATA_DIR/nodes/<id>. A child that dies is restarted on the same dir
// after a short backoff; children stop with the manager, even one killed hard.
import { type ChildProcess, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../lib/logger.js';
import { nodeFlags } from '../../lib/node-flags.js';
import { privateDir } from '../../lib/private-files.js';
import type { NodeRuntime, NodeSpec, RuntimeEvents, RuntimeState } from './runtime.js';

/** First restart delay; doubled per crash in a row up to the max, so a crash loop stays cheap. */
const RESTART_DELAY_MS = 100;
const RESTART_DELAY_MS_MAX = 10_000;
/** A child that ran this long is considered healthy again: the backoff resets. */
const STABLE_AFTER_MS = 30_000;
/** Grace between SIGTERM and SIGKILL on stop. */
const STOP_GRACE_MS = 5_000;

export const s3dfsBin = fileURLToPath(new URL('../../bin/s3dfs.js', import.meta.url));

/**
 * What a node process takes from the manager's environment: only what Node itself and the node's
 * logger read (storage-node/config.ts takes the rest as flags, or from nodeEnv). Never the whole
 * environment: it holds the root S3 secret (S3DFS_SECRET_KEY), the admin token and DATABASE_URL,
 * which a node has no use for and which /proc/<pid>/environ and crash reports would show.
 */
export const nodeEnvPassed = [
  'PATH',
  'HOME',
  'TMPDIR',
  'TZ',
  'LANG',
  'LC_ALL',
  'NODE_OPTIONS',
  'NODE_ENV',
  'LOG_LEVEL',
] as const;

/** A node process's whole environment: the allowed inherited variables, then the node's own. */
export function nodeEnv(
  from: NodeJS.ProcessEnv,
  own: { clusterSecret: string; chunkSizeBytes: number },
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of nodeEnvPassed) if (from[name] !== undefined) env[name] = from[name];
  env.S3DFS_CLUSTER_SECRET = own.clusterSecret;
  env.S3DFS_CHUNK_SIZE_MAX = String(own.chunkSizeBytes);
  return env;
}

export interface ProcessRuntimeOptions {
  dataDir: string;
  bindHost: string;
  clusterSecret: string;
  chunkSizeBytes: number;
  logger: Logger;
  events: RuntimeEvents;
}

interface Child {
  spec: NodeSpec;
  proc?: ChildProcess;
  startedAt: number;
  crashes: number;
  stopping: boolean;
  timer?: NodeJS.Timeout;
  lastExit?: string;
}

export class ProcessRuntime implements NodeRuntime {
  readonly kind = 'process' as const;
  private readonly children = new Map<string, Child>();

  constructor(private readonly opts: ProcessRuntimeOptions) {
    // Each node makes its own dir private; their parent too, if an older version left it wide.
    privateDir(path.resolve(opts.dataDir, 'nodes'));
  }

  nodeDir(id: string): string {
    return path.resolve(this.opts.dataDir, 'nodes', id);
  }

  async start(spec: NodeSpec): Promise<string> {
    const existing = this.children.get(spec.id);
    if (existing?.proc && existing.proc.exitCode === null && existing.proc.signalCode === null) {
      return String(existing.proc.pid);
    }
    const child: Child = existing ?? { spec, startedAt: 0, crashes: 0, stopping: false };
    child.spec = spec;
    child.stopping = false;
    clearTimeout(child.timer);
    this.children.set(spec.id, child);
    this.spawn(child);
    return String(child.proc!.pid);
  }

  private spawn(child: Child): void {
    const { spec } = child;
    const args = [s3dfsBin, 'node', '--port', String(spec.port), '--data', this.nodeDir(spec.id)];
    args.push('--id', spec.id, '--host', this.opts.bindHost);
    if (spec.capacityBytes) args.push('--capacity', String(spec.capacityBytes));
    const proc = spawn(process.execPath, [...nodeFlags, ...args], {
      env: nodeEnv(process.env, this.opts),
      // A node's stdout (a line per storage request) is relayed at debug level only; with debug
      // off it goes nowhere rather than costing this process a pipe read per chunk request. The
      // IPC channel carries nothing: its closing tells the node this process is gone (storage-node/main.ts).
      stdio: ['ignore', this.opts.logger.isLevelEnabled('debug') ? 'pipe' : 'ignore', 'pipe', 'ipc'],
    });
    child.proc = proc;
    child.startedAt = Date.now();
    const log = this.opts.logger.child({ nodeId: spec.id, pid: proc.pid });
    proc.stdout?.on('data', (b: Buffer) => log.debug({ out: b.toString().trimEnd() }, 'node stdout'));
    proc.stderr?.on('data', (b: Buffer) => log.warn({ err: b.toString().trimEnd() }, 'node stderr'));
    proc.on('error', (err) => log.error({ err }, 'node process error'));
    proc.on('exit', (code, signal) => this.onExit(child, proc, code, signal));
  }

  private onExit(child: Child, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child.proc !== proc) return;
    const detail = signal ? `process killed by ${signal}` : `process exited with code ${code}`;
    child.lastExit = detail;
    if (child.stopping) return;
    this.opts.events.onExit(child.spec.id, detail);
    if (Date.now() - child.startedAt > STABLE_AFTER_MS) child.crashes = 0;
    const delay = Math.min(RESTART_DELAY_MS * 2 ** child.crashes, RESTART_DELAY_MS_MAX);
    child.crashes++;
    child.timer = setTimeout(() => {
      if (child.stopping || child.proc !== proc) return;
      this.spawn(child);
      this.opts.events.onRestart(child.spec.id, `restarted after ${detail}`, String(child.proc!.pid));
    }, delay);
  }

  async stop(id: string): Promise<void> {
    const child = this.children.get(id);
    if (!child) return;
    child.stopping = true;
    clearTimeout(child.timer);
    const proc = child.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
      proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  }

  async remove(id: string, purge: boolean): Promise<void> {
    await this.stop(id);
    this.children.delete(id);
    if (purge) await rm(this.nodeDir(id), { recursive: true, force: true });
  }

  async inspect(id: string): Promise<RuntimeState | undefined> {
    const child = this.children.get(id);
    if (!child?.proc) return undefined;
    const running = child.proc.exitCode === null && child.proc.signalCode === null;
    return { running, handle: String(child.proc.pid), detail: running ? undefined : child.lastExit };
  }

  async list(): Promise<{ id: string; state: RuntimeState }[]> {
    const out: { id: string; state: RuntimeState }[] = [];
    for (const id of this.children.keys()) out.push({ id, state: (await this.inspect(id))! });
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.children.keys()].map((id) => this.stop(id)));
  }

  /** The pid of a node's current process (tests kill it). */
  pid(id: string): number | undefined {
    return this.children.get(id)?.proc?.pid;
  }
}
