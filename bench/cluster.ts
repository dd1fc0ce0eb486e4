// The cluster under test: either `s3dfs server` spawned here (temp data dir, private ports, stopped
// on every exit path) or an endpoint somebody else runs. Also finds the storage-node pids through
// the management API, for resource sampling and for the node-failure workload.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeFlags } from '../lib/node-flags.js';

/** The compiled CLI next to this compiled bench, whatever outDir it was built into. */
export const binPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/s3dfs.js');

/** Migrations, the manager and three node processes (or containers) on a busy 2-core machine. */
const startTimeoutMs = 120_000;
/** SIGTERM gets this long to stop nodes and close the database before SIGKILL. */
const stopTimeoutMs = 15_000;
/** Port pools tried, 100 ports each, before giving up. */
const portPoolAttempts = 20;
const portPoolFirst = 24_000;

/** Every cluster this process started and has not stopped yet, for Ctrl-C. */
const running = new Set<() => Promise<void>>();

/** Stops every cluster this process started (signal handlers call it). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((stop) => stop()));
}

export interface ClusterOptions {
  chunkSize: string;
  databaseUrl?: string;
  runtime: 'process' | 'docker';
  profileDir?: string;
  logLevel?: string;
  keep: boolean;
}

export interface Cluster {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  managerUrl?: string;
  adminToken?: string;
  dataDir?: string;
  /** The server process, when this bench started it. */
  serverPid?: number;
  metadata: string;
  nodePids(): Promise<NodeProc[]>;
  stop(): Promise<void>;
}

export interface NodeProc {
  id: string;
  port: number;
  pid: number;
}

export function externalCluster(endpoint: string, accessKey: string, secretKey: string): Cluster {
  return {
    endpoint,
    accessKey,
    secretKey,
    metadata: 'external',
    nodePids: async () => [],
    stop: async () => {},
  };
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 's3dfs-bench-'));
  const portBase = await freePortPool();
  const accessKey = `bench${randomBytes(6).toString('hex')}`;
  const secretKey = randomBytes(24).toString('base64url');
  const db = opts.databaseUrl ? await freshDatabase(opts.databaseUrl) : undefined;
  const env: Record<string, string | undefined> = {
    ...process.env,
    S3DFS_DATA_DIR: dataDir,
    S3DFS_CHUNK_SIZE: opts.chunkSize,
    S3DFS_PORT_POOL: `${portBase}-${portBase + 99}`,
    S3DFS_S3_PORT: String(await freePort()),
    S3DFS_ADMIN_PORT: String(await freePort()),
    S3DFS_ACCESS_KEY: accessKey,
    S3DFS_SECRET_KEY: secretKey,
    S3DFS_RUNTIME: opts.runtime,
    DATABASE_URL: db?.url,
  };
  delete env.S3DFS_ADMIN_TOKEN;
  if (!db) delete env.DATABASE_URL;
  if (opts.logLevel) env.LOG_LEVEL = opts.logLevel;
  // Logs go to a file, not through this process: reading them would cost the bench CPU.
  const logPath = path.join(dataDir, 'server.log');
  const logFd = openSync(logPath, 'a');
  const execArgv = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : [];
  const proc = spawn(process.execPath, [...nodeFlags, ...execArgv, binPath, 'server'], {
    env,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  const exited = once(proc, 'exit');
  let stopped: Promise<void> | undefined;
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  let knownNodes: NodeProc[] = [];
  const cluster: Cluster = {
    endpoint: '',
    accessKey,
    secretKey,
    dataDir,
    serverPid: proc.pid,
    metadata: db ? 'postgres' : 'pglite',
    nodePids: async () => {
      knownNodes = await findNodePids(cluster, proc.pid!, opts.runtime);
      return knownNodes;
    },
    stop: () => {
      stopped ??= (async () => {
        await stopServer(proc, exited);
        // A server killed hard leaves its node processes behind; they are ours to end.
        for (const n of knownNodes) if (isNodeProcess(n.pid, n.port)) killQuietly(n.pid);
        if (db) await db.drop().catch(() => {});
        if (!opts.keep) rmSync(dataDir, { recursive: true, force: true });
        else console.error(`kept ${dataDir} (server log: ${logPath})`);
        running.delete(cluster.stop);
      })();
      return stopped;
    },
  };
  running.add(cluster.stop);
  try {
    const deadline = Date.now() + startTimeoutMs;
    const field = (label: string) => new RegExp(`^\\s*${label}\\s+(\\S+)`, 'm').exec(log())?.[1];
    while (!field('management API')) {
      if (proc.exitCode !== null) throw new Error(`s3dfs server exited with ${proc.exitCode}:\n${log()}`);
      if (Date.now() > deadline) throw new Error(`s3dfs server printed no banner in time:\n${log()}`);
      await sleep(100);
    }
    cluster.endpoint = field('S3 endpoint')!;
    cluster.managerUrl = field('management API')!;
    while (!existsSync(path.join(dataDir, 'admin-token'))) {
      if (Date.now() > deadline) throw new Error(`no ${dataDir}/admin-token`);
      await sleep(100);
    }
    cluster.adminToken = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    for (;;) {
      const nodes = await apiNodes(cluster).catch(() => []);
      if (nodes.length >= 3 && nodes.every((n) => n.status === 'up')) break;
      if (proc.exitCode !== null) throw new Error(`s3dfs server exited with ${proc.exitCode}:\n${log()}`);
      if (Date.now() > deadline) throw new Error(`storage nodes not up in time:\n${log().slice(-4000)}`);
      await sleep(200);
    }
    // The gateway polls the ring (1 s by default); give it a refresh so writes see every node.
    await sleep(1500);
    await cluster.nodePids();
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

interface ApiNode {
  id: string;
  status: string;
  port: number;
  handle?: string;
}

async function apiNodes(c: Cluster): Promise<ApiNode[]> {
  const res = await fetch(`${c.managerUrl}/api/nodes`, {
    headers: { authorization: `Bearer ${c.adminToken}` },
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`GET /api/nodes: ${res.status}`);
  return ((await res.json()) as { nodes: ApiNode[] }).nodes;
}

/**
 * A node's pid: the `handle` the API reports (a pid for the process runtime, a container id for
 * docker), or else the server's child process serving that node's port.
 */
async function findNodePids(c: Cluster, serverPid: number, runtime: string): Promise<NodeProc[]> {
  const nodes = await apiNodes(c).catch(() => [] as ApiNode[]);
  const children = runtime === 'process' ? childPids(serverPid) : [];
  const out: NodeProc[] = [];
  for (const n of nodes) {
    let pid: number | undefined;
    if (n.handle && /^\d+$/.test(n.handle)) pid = Number(n.handle);
    else if (n.handle && runtime === 'docker') pid = containerPid(n.handle);
    else pid = children.find((p) => isNodeProcess(p, n.port));
    if (pid && existsSync(`/proc/${pid}`)) out.push({ id: n.id, port: n.port, pid });
  }
  return out;
}

function containerPid(id: string): number | undefined {
  try {
    const pid = Number(execFileSync('docker', ['inspect', '-f', '{{.State.Pid}}', id], { timeout: 5000 }));
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

function isNodeProcess(pid: number, port: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('--port');
    return argv.includes('node') && i >= 0 && argv[i + 1] === String(port);
  } catch {
    return false;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

async function stopServer(proc: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs);
  await exited;
  clearTimeout(timer);
}

/** A fresh database on the named server for this run, dropped afterwards. */
async function freshDatabase(url: string): Promise<{ url: string; drop(): Promise<void> }> {
  const pg = (await import('pg')).default;
  const name = `s3dfs_bench_${process.pid}_${Date.now().toString(36)}`;
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  const mine = new URL(url);
  mine.pathname = `/${name}`;
  return { url: mine.toString(), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The first 100-port range from 24000 up with every port free. */
async function freePortPool(): Promise<number> {
  for (let i = 0; i < portPoolAttempts; i++) {
    const base = portPoolFirst + i * 100;
    const free = await Promise.all(Array.from({ length: 100 }, (_, k) => canBind(base + k)));
    if (free.every(Boolean)) return base;
  }
  throw new Error('no free 100-port range for storage nodes');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
