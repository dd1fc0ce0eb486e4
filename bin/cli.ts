// The admin CLI: `s3dfs status|nodes|ring|events|fsck|repair|keys`, a thin client of the manager's
// management API (manager/api.ts). Tables for people, `--json` for scripts, one clear line and a
// non-zero exit code when something goes wrong.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseBytes } from '../lib/config.js';

/** A manager that has not answered in this long is not going to. */
const REQUEST_TIMEOUT_MS = 30_000;
/** How often `nodes drain` and `repair` poll for progress: smooth enough, cheap for the manager. */
const POLL_INTERVAL_MS = 1_000;
const BAR_WIDTH = 30;

/** Exit codes: scripts can tell a typo from an outage from a wrong token. */
export const EXIT = { failed: 1, usage: 2, unreachable: 3, unauthorized: 4 } as const;

export const ADMIN_COMMANDS = ['status', 'nodes', 'ring', 'events', 'fsck', 'repair', 'keys'] as const;

export const adminUsage = `admin commands (over the management API):
  status                          cluster summary: nodes, capacity, objects, healing
  nodes ls                        every node with its state, usage and chunks
  nodes add [--count N] [--zone Z] [--capacity SIZE]
                                  start N more storage nodes (SIZE like 100GiB)
  nodes drain ID [--no-wait] [--rm]
                                  move a node's chunks elsewhere, showing progress until
                                  it holds none; --rm removes it afterwards
  nodes rm ID [--purge]           remove a node (--purge also deletes its volume/data)
  ring                            the placement ring: version and members
  events [--node ID] [--limit N]  recent node state changes, newest first
  fsck                            check metadata against the nodes (read-only); exit 1 if unclean
  repair [--no-wait]              run a healing pass now and follow it
  keys ls                         extra S3 access keys (secrets are never listed)
  keys create [--description D]   a new access key; its secret is shown once
  keys rm ACCESS_KEY              delete an access key (the root key cannot be deleted)

admin options:
  --url URL       the management API (S3DFS_MANAGER_URL, default http://127.0.0.1:9001)
  --token TOKEN   admin token (S3DFS_ADMIN_TOKEN, else the file $S3DFS_DATA_DIR/admin-token,
                  data dir default ./data)
  --json          print the API's JSON instead of a table`;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

interface Target {
  url: string;
  token: string;
}

type Json = Record<string, unknown>;
type Out = (line: string) => void;

const options = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  count: { type: 'string' },
  zone: { type: 'string' },
  capacity: { type: 'string' },
  purge: { type: 'boolean', default: false },
  'no-wait': { type: 'boolean', default: false },
  rm: { type: 'boolean', default: false },
  node: { type: 'string' },
  limit: { type: 'string' },
  description: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

type Flags = {
  url?: string;
  token?: string;
  json: boolean;
  count?: string;
  zone?: string;
  capacity?: string;
  purge: boolean;
  'no-wait': boolean;
  rm: boolean;
  node?: string;
  limit?: string;
  description?: string;
  help: boolean;
};

/** Runs one admin command; errors are printed and turned into process.exitCode. */
export async function runAdmin(command: string, argv: string[]): Promise<void> {
  try {
    await admin(command, argv, process.env, (l) => console.log(l));
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    console.error(`s3dfs ${command}: ${err.message}`);
    process.exitCode = err.exitCode;
  }
}

async function admin(command: string, argv: string[], env: NodeJS.ProcessEnv, out: Out): Promise<void> {
  let parsed: { values: Flags; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${adminUsage}`, EXIT.usage);
  }
  const { values: f, positionals: pos } = parsed;
  if (f.help) {
    out(adminUsage);
    return;
  }
  const t = target(f, env);
  const show = (body: unknown, human: () => void) => (f.json ? out(JSON.stringify(body, null, 2)) : human());
  switch (command) {
    case 'status': {
      noExtra(pos, 0);
      const [cluster, nodes] = await Promise.all([
        api(t, 'GET', '/api/cluster'),
        api(t, 'GET', '/api/nodes'),
      ]);
      return show({ cluster, nodes: nodes.nodes }, () => printStatus(out, cluster, list(nodes.nodes)));
    }
    case 'nodes':
      return nodes(t, f, pos, out, show);
    case 'ring': {
      noExtra(pos, 0);
      const ring = await api(t, 'GET', '/api/ring');
      return show(ring, () => {
        out(`ring version ${ring.version}, replication ${ring.replication}`);
        out(
          table(
            ['NODE', 'STATUS', 'ZONE', 'ADDRESS', 'WEIGHT'],
            list(ring.nodes).map((n) => [
              str(n.id),
              str(n.status),
              str(n.zone ?? '-'),
              `${n.host}:${n.port}`,
              Number(n.weight).toFixed(2),
            ]),
          ),
        );
      });
    }
    case 'events': {
      noExtra(pos, 0);
      const q = new URLSearchParams();
      if (f.limit !== undefined) q.set('limit', String(positiveInt('--limit', f.limit)));
      if (f.node !== undefined) q.set('node', f.node);
      const body = await api(t, 'GET', `/api/events${q.size > 0 ? `?${q}` : ''}`);
      return show(body, () =>
        out(
          table(
            ['TIME', 'NODE', 'FROM', 'TO', 'REASON'],
            list(body.events).map((e) => [
              str(e.at),
              str(e.nodeId),
              str(e.from ?? '-'),
              str(e.to),
              str(e.reason),
            ]),
          ),
        ),
      );
    }
    case 'fsck': {
      noExtra(pos, 0);
      const report = await api(t, 'GET', '/api/fsck');
      show(report, () => printFsck(out, report));
      if (report.clean === false) throw new CliError('the cluster is not clean (see above)', EXIT.failed);
      return;
    }
    case 'repair':
      noExtra(pos, 0);
      return repair(t, f, out);
    case 'keys':
      return keys(t, f, pos, out, show);
    default:
      throw new CliError(`unknown admin command '${command}'\n\n${adminUsage}`, EXIT.usage);
  }
}

async function nodes(
  t: Target,
  f: Flags,
  pos: string[],
  out: Out,
  show: (body: unknown, human: () => void) => void,
): Promise<void> {
  const [sub, id, ...rest] = pos;
  switch (sub) {
    case undefined:
    case 'ls': {
      noExtra(pos, 1);
      const body = await api(t, 'GET', '/api/nodes');
      return show(body, () => out(nodesTable(list(body.nodes))));
    }
    case 'add': {
      noExtra(pos, 1);
      const req: Json = {};
      if (f.count !== undefined) req.count = positiveInt('--count', f.count);
      if (f.zone !== undefined) req.zone = f.zone;
      if (f.capacity !== undefined) {
        const bytes = parseBytes(f.capacity);
        if (bytes === undefined || bytes < 1)
          throw new CliError(`--capacity ${f.capacity}: expected a size like 100GiB or 500MB`, EXIT.usage);
        req.capacityBytes = bytes;
      }
      const body = await api(t, 'POST', '/api/nodes', req);
      return show(body, () => {
        out(nodesTable(list(body.nodes)));
        out(`ring version ${body.ringVersion}`);
      });
    }
    case 'drain': {
      need(id, 'nodes drain ID');
      noExtra(rest, 0);
      const body = await api(t, 'POST', `/api/nodes/${encodeURIComponent(id)}/drain`);
      if (f.json && f['no-wait']) return show(body, () => {});
      if (!f.json) out(`draining ${id}: it left the ring; its chunks are being copied elsewhere`);
      if (f['no-wait']) {
        out(`follow with: s3dfs nodes drain ${id}   (or s3dfs status)`);
        return;
      }
      await followDrain(t, id, Number(obj(body.node).chunkCount ?? 0), f.json ? () => {} : out);
      if (f.rm) {
        await api(t, 'DELETE', `/api/nodes/${encodeURIComponent(id)}`);
        if (!f.json) out(`removed ${id}`);
      } else if (!f.json) out(`${id} holds no chunks; remove it with: s3dfs nodes rm ${id}`);
      if (f.json) out(JSON.stringify({ node: id, drained: true, removed: f.rm }, null, 2));
      return;
    }
    case 'rm': {
      need(id, 'nodes rm ID');
      noExtra(rest, 0);
      const body = await api(
        t,
        'DELETE',
        `/api/nodes/${encodeURIComponent(id)}${f.purge ? '?purge=true' : ''}`,
      );
      return show(body, () => out(`removed ${id}${f.purge ? ' and purged its data' : ''}`));
    }
    default:
      throw new CliError(`unknown 'nodes' subcommand '${sub}' (ls, add, drain, rm)`, EXIT.usage);
  }
}

async function keys(
  t: Target,
  f: Flags,
  pos: string[],
  out: Out,
  show: (body: unknown, human: () => void) => void,
): Promise<void> {
  const [sub, key, ...rest] = pos;
  switch (sub) {
    case undefined:
    case 'ls': {
      noExtra(pos, 1);
      const body = await api(t, 'GET', '/api/keys');
      return show(body, () =>
        out(
          table(
            ['ACCESS KEY', 'ROOT', 'CREATED', 'DESCRIPTION'],
            list(body.keys).map((k) => [
              str(k.accessKey),
              k.root ? 'yes' : '',
              str(k.createdAt),
              str(k.description),
            ]),
          ),
        ),
      );
    }
    case 'create': {
      noExtra(pos, 1);
      const body = await api(
        t,
        'POST',
        '/api/keys',
        f.description === undefined ? {} : { description: f.description },
      );
      return show(body, () => {
        out(`access key  ${body.accessKey}`);
        out(`secret key  ${body.secretKey}`);
        out('The secret is shown only now; store it safely.');
      });
    }
    case 'rm': {
      need(key, 'keys rm ACCESS_KEY');
      noExtra(rest, 0);
      const body = await api(t, 'DELETE', `/api/keys/${encodeURIComponent(key)}`);
      return show(body, () => out(`deleted ${key}`));
    }
    default:
      throw new CliError(`unknown 'keys' subcommand '${sub}' (ls, create, rm)`, EXIT.usage);
  }
}

// --- progress ------------------------------------------------------------------------------------

/** Polls the drain bookkeeping (healing.drain.nodes in /api/cluster) until the node holds nothing. */
async function followDrain(t: Target, id: string, chunksAtStart: number, out: Out): Promise<void> {
  const bar = new Progress(out, `drain ${id}`);
  let total = chunksAtStart;
  for (;;) {
    const node = await api(t, 'GET', `/api/nodes/${encodeURIComponent(id)}`, undefined, true);
    if (node === undefined || node.status === 'removed') {
      bar.done('node removed');
      return;
    }
    const cluster = await api(t, 'GET', '/api/cluster');
    const healing = obj(cluster.healing);
    const entry = list(obj(healing.drain).nodes).find((n) => n.nodeId === id);
    if (entry) {
      const left = Number(entry.replicasLeft);
      total = Math.max(total, left);
      if (entry.done === true) {
        bar.done(`${total} replicas moved`);
        return;
      }
      bar.update(total - left, total, `${left} replicas (${bytes(Number(entry.bytesLeft))}) left`);
    } else {
      bar.update(0, 0, 'waiting for the next healing pass');
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/** Starts a healing pass and follows the repair queue until the pass has finished. */
async function repair(t: Target, f: Flags, out: Out): Promise<void> {
  const started = await api(t, 'POST', '/api/repair');
  const pass = obj(started.pass);
  if (f['no-wait']) {
    if (f.json) out(JSON.stringify(started, null, 2));
    else out(`healing pass ${pass.passId} ${pass.running ? 'running' : 'queued'}`);
    return;
  }
  const bar = new Progress(f.json ? () => {} : out, 'repair');
  const passId = Number(pass.passId);
  let total = 0;
  for (;;) {
    const cluster = await api(t, 'GET', '/api/cluster');
    const healing = obj(cluster.healing);
    const r = obj(healing.repair);
    const queued = Number(r.queued ?? 0);
    total = Math.max(total, queued);
    // Passes are numbered from 1 as they start; a later pass starting means ours has ended.
    const passes = Number(healing.passes ?? 0);
    if (passes > passId || (passes === passId && healing.running !== true)) {
      bar.done(
        `pass ${passId} finished; ${cluster.underReplicatedChunks} under-replicated, ${cluster.missingChunks} missing`,
      );
      if (f.json) out(JSON.stringify(cluster, null, 2));
      return;
    }
    bar.update(total - queued, total, `${queued} chunks queued (${bytes(Number(r.queuedBytes ?? 0))})`);
    await sleep(POLL_INTERVAL_MS);
  }
}

/** A bar redrawn in place on a terminal; elsewhere a plain line whenever the numbers change. */
class Progress {
  private last = '';
  private readonly tty = process.stdout.isTTY === true;

  constructor(
    private readonly out: Out,
    private readonly label: string,
  ) {}

  update(done: number, total: number, note: string): void {
    const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
    const line = this.tty
      ? `${this.label} [${'#'.repeat(Math.round((pct / 100) * BAR_WIDTH)).padEnd(BAR_WIDTH, '.')}] ${String(pct).padStart(3)}%  ${note}`
      : `${this.label}: ${total > 0 ? `${pct}%, ` : ''}${note}`;
    if (line === this.last) return;
    this.last = line;
    if (this.tty) process.stdout.write(`\r\x1b[2K${line}`);
    else this.out(line);
  }

  done(note: string): void {
    if (this.tty && this.last !== '') process.stdout.write('\r\x1b[2K');
    this.out(`${this.label}: done, ${note}`);
  }
}

// --- human output --------------------------------------------------------------------------------

function printStatus(out: Out, c: Json, nodes: Json[]): void {
  const h = obj(c.healing);
  const activity = (name: string) => {
    const a = obj(h[name]);
    if (a.queued === undefined) return `${name} -`;
    const q = Number(a.queued);
    return q > 0
      ? `${name} ${q} queued (${bytes(Number(a.queuedBytes))}, ${bytes(Number(a.bytesPerSec))}/s)`
      : `${name} idle`;
  };
  out(
    table(
      ['', ''],
      [
        [
          'nodes',
          `${c.nodesUp}/${c.nodesTotal} up${Number(c.nodesFull) > 0 ? ` (${c.nodesFull} full: no new replicas)` : ''} · replication ${c.replication}`,
        ],
        [
          'ring',
          `version ${c.ringVersion} · balance ${Number(c.ringBalance).toFixed(2)} (max/mean ownership)`,
        ],
        [
          'capacity',
          `raw ${bytes(Number(c.rawUsedBytes))} of ${bytes(Number(c.rawCapacityBytes))} · logical ${bytes(Number(c.logicalUsedBytes))} of ${bytes(Number(c.logicalCapacityBytes))}`,
        ],
        ['data', `${c.buckets} buckets · ${c.objects} objects · ${c.chunks} chunks`],
        [
          'chunks',
          c.starting
            ? `starting: ${c.fullChunks} fully replicated, ${c.unconfirmedChunks} waiting for their nodes' first probe · ${c.underReplicatedChunks} under-replicated · ${c.missingChunks} missing`
            : `${c.fullChunks} fully replicated · ${c.underReplicatedChunks} under-replicated · ${c.missingChunks} missing`,
        ],
        [
          'healing',
          h.enabled === undefined ? '-' : ['repair', 'rebalance', 'drain'].map(activity).join(' · '),
        ],
      ],
      false,
    ),
  );
  out('');
  out(nodesTable(nodes));
}

function nodesTable(nodes: Json[]): string {
  return table(
    ['NODE', 'STATUS', 'ZONE', 'ADDRESS', 'USED', 'CAPACITY', 'USE%', 'CHUNKS', 'UPTIME'],
    nodes.map((n) => {
      const cap = Number(n.capacityBytes);
      const used = Number(n.usedBytes);
      return [
        str(n.id),
        n.full ? `${str(n.status)},disk-full` : str(n.status),
        str(n.zone ?? '-'),
        `${n.host}:${n.port}`,
        bytes(used),
        bytes(cap),
        cap > 0 ? `${((used / cap) * 100).toFixed(1)}%` : '-',
        String(n.chunkCount ?? '-'),
        n.uptimeSec === null || n.uptimeSec === undefined ? '-' : duration(Number(n.uptimeSec)),
      ];
    }),
  );
}

function printFsck(out: Out, r: Json): void {
  out(
    `fsck: ${r.clean ? 'clean' : 'NOT CLEAN'} · ${r.chunks} chunks, ${r.replicas} replicas, ${r.tookMs} ms`,
  );
  const counts = obj(r.counts);
  const examples = obj(r.examples);
  out(
    table(
      ['FINDING', 'COUNT', 'EXAMPLES'],
      Object.entries(counts).map(([k, v]) => [k, String(v), strings(examples[k]).join(' ')]),
    ),
  );
  const nodes = list(r.nodes);
  if (nodes.length > 0) {
    out('');
    out(
      table(
        ['NODE', 'STATUS', 'CHECKED', 'ENTRIES', 'NOTE'],
        nodes.map((n) => [
          str(n.id),
          str(n.status),
          n.checked ? 'yes' : 'no',
          String(n.entries),
          str(n.note ?? ''),
        ]),
      ),
    );
  }
}

/** Left-aligned columns, numbers right-aligned, two spaces apart. */
export function table(header: string[], rows: string[][], withHeader = true): string {
  const all = withHeader ? [header, ...rows] : rows;
  const widths = header.map((_, i) => Math.max(...all.map((r) => [...(r[i] ?? '')].length)));
  const isNumber = (c: string) => /^-?[\d.,]+( ?[KMGTP]?i?B|%)?$/.test(c);
  // A column of numbers (a '-' for "none" allowed) is right-aligned.
  const numeric = header.map(
    (_, i) =>
      rows.some((r) => isNumber(r[i] ?? '')) && rows.every((r) => isNumber(r[i] ?? '') || r[i] === '-'),
  );
  const line = (r: string[]) =>
    r
      .map((cell, i) => {
        const pad = widths[i] - [...cell].length;
        return numeric[i] ? ' '.repeat(pad) + cell : cell + ' '.repeat(pad);
      })
      .join('  ')
      .trimEnd();
  if (rows.length === 0 && withHeader) return `${line(header)}\n(none)`;
  return all.map(line).join('\n');
}

export function bytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function duration(sec: number): string {
  if (sec < 60) return `${Math.floor(sec)}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h${Math.floor((sec % 3600) / 60)}m`;
  return `${Math.floor(sec / 86400)}d${Math.floor((sec % 86400) / 3600)}h`;
}

// --- the HTTP client -----------------------------------------------------------------------------

function target(f: Flags, env: NodeJS.ProcessEnv): Target {
  const url = (f.url ?? env.S3DFS_MANAGER_URL ?? 'http://127.0.0.1:9001').replace(/\/+$/, '');
  try {
    new URL(url);
  } catch {
    throw new CliError(`--url ${url}: not a URL (expected e.g. http://127.0.0.1:9001)`, EXIT.usage);
  }
  const token = f.token ?? env.S3DFS_ADMIN_TOKEN ?? tokenFromFile(env);
  return { url, token };
}

function tokenFromFile(env: NodeJS.ProcessEnv): string {
  const file = path.join(env.S3DFS_DATA_DIR ?? './data', 'admin-token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new CliError(
      `no admin token: pass --token, set S3DFS_ADMIN_TOKEN, or set S3DFS_DATA_DIR to the data dir holding admin-token (looked for ${file})`,
      EXIT.usage,
    );
  }
}

async function api(t: Target, method: string, route: string, body?: Json, missingOk?: false): Promise<Json>;
async function api(
  t: Target,
  method: string,
  route: string,
  body: Json | undefined,
  missingOk: true,
): Promise<Json | undefined>;
async function api(
  t: Target,
  method: string,
  route: string,
  body?: Json,
  missingOk = false,
): Promise<Json | undefined> {
  let res: Response;
  try {
    res = await fetch(`${t.url}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${t.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why =
      e.name === 'TimeoutError'
        ? `no answer in ${REQUEST_TIMEOUT_MS / 1000} s`
        : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new CliError(
      `cannot reach the manager at ${t.url}: ${why} (is it running? set --url or S3DFS_MANAGER_URL)`,
      EXIT.unreachable,
    );
  }
  const text = await res.text();
  let json: Json | undefined;
  try {
    json = text === '' ? {} : (JSON.parse(text) as Json);
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    throw new CliError(
      `the admin token was refused by ${t.url} (check --token, S3DFS_ADMIN_TOKEN or $S3DFS_DATA_DIR/admin-token)`,
      EXIT.unauthorized,
    );
  }
  if (res.status === 404 && missingOk) return undefined;
  if (!res.ok || json === undefined) {
    const e = obj(json?.error);
    const detail = e.message ? `${e.code ?? res.status}: ${e.message}` : text.slice(0, 200) || res.statusText;
    throw new CliError(`${method} ${route} failed with ${res.status}: ${detail}`, EXIT.failed);
  }
  return json;
}

// --- small helpers -------------------------------------------------------------------------------

function obj(v: unknown): Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.map(obj) : [];
}

/** The examples of a finding: chunk ids or `id@node` strings. */
function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(str) : [];
}

function str(v: unknown): string {
  return v === null || v === undefined ? '' : String(v);
}

function need(v: string | undefined, what: string): asserts v is string {
  if (v === undefined || v === '') throw new CliError(`usage: s3dfs ${what}`, EXIT.usage);
}

function noExtra(pos: string[], allowed: number): void {
  if (pos.length > allowed)
    throw new CliError(`unexpected argument '${pos[allowed]}'\n\n${adminUsage}`, EXIT.usage);
}

function positiveInt(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`${flag} ${raw}: expected a positive integer`, EXIT.usage);
  return n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
