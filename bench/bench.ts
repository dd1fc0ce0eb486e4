// `npm run bench`: starts an s3dfs cluster (or targets a running endpoint), drives it with the AWS
// SDK at default settings, verifies every byte it reads, and reports throughput, latency and
// resource use next to the machine's own limits and the targets of issue 8.

import { randomBytes } from 'node:crypto';
import { statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { type Cluster, externalCluster, startCluster, stopAll } from './cluster.js';
import {
  type ClientCeilings,
  type LimitSizes,
  type Limits,
  measureLimits,
  withChildServer,
} from './limits.js';
import { Sampler, type Usage } from './resources.js';
import { runScale } from './scale.js';
import { type Result, round } from './stats.js';
import * as w from './workloads.js';

const usage = `usage: npm run bench -- [options]      (or node dist/bench/bench.js [options])

  --quick                 small sizes and counts: about a minute
  --json                  print one JSON document instead of a table
  --only LIST             workload groups, comma-separated: large,medium,small,list,range,mixed (default
                          all of these); range: 4 KiB and 1 MiB ranged GETs and the time to first byte
                          of 64 MiB GETs; small-put runs the 4 KiB PUT alone; upload16 (16 clients each
                          PUT a 1 GiB object at once, quick 64 MiB; needs 16 GiB × 3 replicas of disk)
                          runs only when named here
  --runs N                run it all N times, each on a freshly started cluster, and report the median
                          of each metric (errors: the total); every run's values are in --json (default 1)
  --time-limit SECONDS    stop each workload after this long (default 180, quick 8; upload16 900, quick 120)
  --chunk-size SIZE       S3DFS_CHUNK_SIZE of the started cluster (default 64MiB)
  --database-url URL      Postgres server for metadata; a fresh database is created there for the run
                          and dropped afterwards (default: embedded PGlite)
  --runtime process|docker  how the manager runs storage nodes (docker needs the s3dfs-storage-node image)
  --profile DIR           start the server under node --cpu-prof, profiles written to DIR on stop
  --log-level LEVEL       LOG_LEVEL for the started server (default: the server's own, info)
  --keep                  keep the data dir and server log
  --endpoint URL          bench a running endpoint instead (with --access-key and --secret-key);
                          no resource figures, no node kill
  --access-key KEY
  --secret-key KEY
  --scale                 instead of the workloads: background-work costs on synthetic metadata in the
                          Postgres of --database-url (or S3DFS_TEST_DATABASE_URL), and the ring's
  --scale-chunks LIST     metadata sizes in chunks, comma-separated (default 100000,1000000)
  --ring-nodes LIST       cluster sizes for the ring figures (default 100,1000,5000)
  -h, --help`;

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const fullSizes: w.Sizes = {
  largeBytes: GiB,
  largePartBytes: 64 * MiB,
  largeQueue: 4,
  mediumBytes: 64 * MiB,
  mediumCount: 4,
  smallBytes: 4096,
  smallCount: 10_000,
  smallConcurrency: 32,
  listKeys: 10_000,
  listPageKeys: 1000,
  listPassesMax: 5,
  rangeBytes: MiB,
  rangeCount: 400,
  smallRangeBytes: 4096,
  smallRangeCount: 4000,
  rangeConcurrency: 8,
  firstByteCount: 32,
  mixedObjectBytes: MiB,
  mixedConcurrency: 8,
  mixedSeconds: 30,
  uploadClients: 16,
  uploadBytes: GiB,
  uploadSlices: 3,
  workloadTimeLimitMs: 180_000,
  uploadTimeLimitMs: 900_000,
};

const quickSizes: w.Sizes = {
  ...fullSizes,
  largeBytes: 256 * MiB,
  mediumCount: 1,
  smallCount: 1000,
  listKeys: 2000,
  listPassesMax: 20,
  rangeCount: 64,
  smallRangeCount: 400,
  firstByteCount: 8,
  mixedSeconds: 8,
  uploadBytes: 64 * MiB,
  workloadTimeLimitMs: 8_000,
  uploadTimeLimitMs: 120_000,
};

const fullLimits: LimitSizes = {
  diskBytes: 256 * MiB,
  hashBytes: 256 * MiB,
  loopbackBytes: GiB,
  smallFiles: 2000,
};
const quickLimits: LimitSizes = {
  diskBytes: 64 * MiB,
  hashBytes: 64 * MiB,
  loopbackBytes: 256 * MiB,
  smallFiles: 300,
};

/** `small-put`: the 4 KiB PUT alone, for profiling it. */
const groups = ['large', 'medium', 'small', 'small-put', 'list', 'range', 'mixed', 'upload16'] as const;
type Group = (typeof groups)[number];
/** upload16 writes 48 GiB to disk and takes minutes: only when asked for. */
const defaultGroups: Group[] = ['large', 'medium', 'small', 'list', 'range', 'mixed'];

/** The issue's targets; a result is compared with its target by the metric named. */
type Target =
  | { metric: 'mbPerSec' | 'opsPerSec'; atLeast: number }
  | { metric: 'serverPeakRssMb'; atMost: number };
const targets: Record<string, Target> = {
  'large PUT (multipart)': { metric: 'mbPerSec', atLeast: 250 },
  'large GET': { metric: 'mbPerSec', atLeast: 400 },
  '4 KiB PUT': { metric: 'opsPerSec', atLeast: 800 },
  '4 KiB GET': { metric: 'opsPerSec', atLeast: 2000 },
  'ListObjectsV2 (1000/page)': { metric: 'opsPerSec', atLeast: 40 },
};
const gatewayRssTargetMb = 300;

/** The RSS target is for 16 × 1 GiB uploads; --quick's smaller uploads are held to it too. */
function targetFor(name: string): Target | undefined {
  if (/^\d+ clients × .* PUT$/.test(name)) return { metric: 'serverPeakRssMb', atMost: gatewayRssTargetMb };
  return targets[name];
}

/** Which limit bounds each workload: the lower of the machine's and the client's own ceiling. */
function limitFor(
  name: string,
  limits: Limits,
): { name: string; value: number; metric: 'mbPerSec' | 'opsPerSec' } | null {
  const machine = machineLimitFor(name, limits);
  const metric = machine?.metric ?? 'opsPerSec';
  const ceiling = limits.client[name]?.[metric];
  if (ceiling === undefined || ceiling <= 0) return machine;
  if (machine && machine.value <= ceiling) return machine;
  return { name: `client alone ${unitOf(name, metric)}`, value: ceiling, metric };
}

/** How a workload's figure reads: a listing's operations are pages. */
function unitOf(name: string, metric: 'mbPerSec' | 'opsPerSec'): string {
  if (metric === 'mbPerSec') return 'MB/s';
  return name.startsWith('ListObjectsV2') ? 'pages/s' : 'ops/s';
}

function machineLimitFor(
  name: string,
  limits: Limits,
): { name: string; value: number; metric: 'mbPerSec' | 'opsPerSec' } | null {
  if (/PUT|PutObject/.test(name) && /MiB|GiB|large/.test(name)) {
    const hash = limits.md5PlusSha256MBps;
    return limits.disk3xMBps <= hash
      ? { name: 'disk 3× fsync MB/s', value: limits.disk3xMBps, metric: 'mbPerSec' }
      : { name: 'md5+sha256 1 core MB/s', value: hash, metric: 'mbPerSec' };
  }
  if (/GET|GetObject/.test(name) && /MiB|GiB|large/.test(name))
    return { name: 'loopback HTTP MB/s', value: limits.loopbackHttpMBps, metric: 'mbPerSec' };
  if (/KiB (PUT|DELETE)/.test(name))
    return { name: 'fsync 4 KiB files/s', value: limits.smallFsyncOpsPerSec, metric: 'opsPerSec' };
  return null;
}

interface RunRow {
  result: Result;
  usage: Usage;
}

interface Row extends Result {
  usage: Usage;
  /** CPU milliseconds per successful operation: what one costs the server and the nodes. */
  cpuMsPerOp: { server: number | null; nodes: number | null };
  /** clientCeiling: the client alone's figure, when it is below the target (no server could meet it). */
  target: (Target & { met: boolean; clientCeiling?: number }) | null;
  limit: { name: string; value: number; ratio: number } | null;
  /** Each run's own values, in run order. */
  runs: (Omit<Result, 'name' | 'notes'> & { usage: Usage })[];
}

/** The command line; a flag it does not know (or a stray argument) is a usage error, not a stack trace. */
function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        only: { type: 'string' },
        runs: { type: 'string', default: '1' },
        'time-limit': { type: 'string' },
        'chunk-size': { type: 'string', default: '64MiB' },
        'database-url': { type: 'string' },
        runtime: { type: 'string', default: 'process' },
        profile: { type: 'string' },
        'log-level': { type: 'string' },
        keep: { type: 'boolean', default: false },
        endpoint: { type: 'string' },
        'access-key': { type: 'string' },
        'secret-key': { type: 'string' },
        scale: { type: 'boolean', default: false },
        'scale-chunks': { type: 'string', default: '100000,1000000' },
        'ring-nodes': { type: 'string', default: '100,1000,5000' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS_'))
      throw new UsageError((err as Error).message);
    throw err;
  }
}

/** --scale: JSON lines with --json, else one aligned line per figure. */
async function scale(o: ReturnType<typeof parseCommandLine>['values']): Promise<void> {
  const databaseUrl = o['database-url'] ?? process.env.S3DFS_TEST_DATABASE_URL;
  if (!databaseUrl) throw new UsageError('--scale needs a Postgres server: --database-url URL');
  const list = (v: string, flag: string) => {
    const n = v.split(',').map(Number);
    if (!n.every((x) => Number.isInteger(x) && x > 0)) throw new UsageError(`${flag}: positive integers`);
    return n;
  };
  await runScale({
    databaseUrl,
    chunks: list(o['scale-chunks']!, '--scale-chunks'),
    ringNodes: list(o['ring-nodes']!, '--ring-nodes'),
    emit: (line) =>
      console.log(
        o.json
          ? JSON.stringify(line)
          : Object.entries(line)
              .map(([k, v]) => `${k}=${v}`)
              .join('  '),
      ),
    log: (msg) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`),
  });
}

async function main(): Promise<void> {
  const { values: o } = parseCommandLine();
  if (o.help) {
    console.log(usage);
    return;
  }
  if (o.scale) return scale(o);
  if (o.runtime !== 'process' && o.runtime !== 'docker') throw new UsageError('--runtime: process or docker');
  if (o.endpoint && !(o['access-key'] && o['secret-key']))
    throw new UsageError('--endpoint needs --access-key and --secret-key');
  const runCount = Number(o.runs);
  if (!(Number.isInteger(runCount) && runCount >= 1 && runCount <= 20))
    throw new UsageError('--runs: 1 to 20');
  const only = new Set<Group>((o.only?.split(',') ?? defaultGroups) as Group[]);
  for (const g of only) if (!groups.includes(g)) throw new UsageError(`--only: unknown group ${g}`);
  const sizes = { ...(o.quick ? quickSizes : fullSizes) };
  if (o['time-limit'] !== undefined) {
    const sec = Number(o['time-limit']);
    if (!(sec > 0 && sec <= 3600)) throw new UsageError('--time-limit: seconds in (0, 3600]');
    sizes.workloadTimeLimitMs = sec * 1000;
    sizes.uploadTimeLimitMs = sec * 1000;
  }
  const log = (msg: string) => {
    if (!o.json || process.stderr.isTTY)
      console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
  };

  const started = new Date().toISOString();
  let limits: Limits | undefined;
  let metadata = 'external';
  const runs: RunRow[][] = [];
  // A fresh cluster per run: runs then do not share a heap grown by the one before, the data of
  // earlier runs or a storage node killed by the mixed workload.
  for (let n = 1; n <= runCount; n++) {
    if (runCount > 1) log(`run ${n} of ${runCount}`);
    if (only.has('upload16') && !o.endpoint) checkUploadRoom(sizes);
    log(o.endpoint ? `targeting ${o.endpoint}` : 'starting s3dfs server');
    const cluster: Cluster = o.endpoint
      ? externalCluster(o.endpoint, o['access-key']!, o['secret-key']!)
      : await startCluster({
          chunkSize: o['chunk-size']!,
          databaseUrl: o['database-url'],
          runtime: o.runtime,
          profileDir: o.profile,
          logLevel: o['log-level'],
          keep: o.keep,
        });
    metadata = cluster.metadata;
    const sampler = new Sampler(cluster);
    try {
      log(`cluster up at ${cluster.endpoint} (metadata: ${cluster.metadata})`);
      if (!limits) {
        log('measuring machine limits');
        limits = await measureLimits(cluster.dataDir ?? os.tmpdir(), o.quick ? quickLimits : fullLimits);
        log(`limits: ${JSON.stringify(limits)}`);
        limits.client = await measureClientCeilings(sizes, only, log);
      }
      await sampler.start();
      runs.push(await runWorkloads(cluster, sampler, sizes, only, log));
    } finally {
      sampler.stop();
      log('stopping cluster');
      await cluster.stop();
    }
  }

  const rows = aggregate(runs, limits!, metadata);
  const serverRss = Math.max(0, ...runs.flat().map((r) => r.usage.serverPeakRssMb ?? 0));
  const doc = {
    started,
    finished: new Date().toISOString(),
    mode: o.quick ? 'quick' : 'full',
    runs: {
      count: runCount,
      cluster: o.endpoint ? 'the same external endpoint every run' : 'a fresh cluster every run',
      results: 'median of the runs per metric, errors summed; limits measured once, in run 1',
    },
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGb: round(os.totalmem() / GiB, 1),
      node: process.version,
    },
    cluster: {
      endpoint: o.endpoint ?? 'started by the bench',
      metadata,
      runtime: o.endpoint ? 'external' : o.runtime,
      chunkSize: o.endpoint ? 'unknown' : o['chunk-size'],
    },
    limits,
    results: rows,
    summary: {
      errors: rows.reduce((n, r) => n + r.errors, 0),
      serverPeakRssMb: o.endpoint ? null : serverRss,
      gatewayRssTargetMb,
      note: metadata === 'pglite' ? 'server RSS includes the embedded PGlite (WASM heap)' : undefined,
    },
  };
  if (o.json) console.log(JSON.stringify(doc, null, 2));
  else printTable(doc.mode, metadata, runCount, limits!, rows, doc.summary.serverPeakRssMb);
}

/** One run of the chosen workloads on one cluster. */
async function runWorkloads(
  cluster: Cluster,
  sampler: Sampler,
  sizes: w.Sizes,
  only: Set<Group>,
  log: (msg: string) => void,
  nullServer = false,
): Promise<RunRow[]> {
  const s3 = w.client(cluster);
  try {
    const bucket = `s3dfs-bench-${randomBytes(4).toString('hex')}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const ctx: w.Ctx = { s3, bucket, sizes, cluster, log };
    const rows: RunRow[] = [];
    const run = async <T>(label: string, fn: () => Promise<T>, rec: (t: T) => Result): Promise<T> => {
      log(`${label} ...`);
      const end = sampler.window();
      const out = await fn();
      const result = rec(out);
      const usage = end();
      rows.push({ result, usage });
      const rss =
        usage.serverPeakRssMb === null
          ? ''
          : `, server RSS ${usage.serverStartRssMb} MB at start, ${usage.serverPeakRssMb} MB peak`;
      log(`${label}: ${result.opsPerSec} ops/s, ${result.mbPerSec} MB/s, ${result.errors} errors${rss}`);
      return out;
    };

    // First, while the server is fresh: its RSS peak is then this workload's own, not a heap that
    // earlier workloads grew.
    if (only.has('upload16')) {
      const { landed } = await run(
        'upload16',
        () => w.uploads(ctx),
        (x) => x.rec.result(),
      );
      await run(
        'upload16 check',
        () => w.checkUploads(ctx, landed),
        (r) => r.result(),
      );
    }
    let rangeSource: { key: string; seed: number; size: number } | undefined;
    if (only.has('large')) {
      const { landed } = await run(
        'large PUT',
        () => w.largePut(ctx),
        (x) => x.rec.result(),
      );
      if (landed) {
        await run(
          'large GET',
          () => w.largeGet(ctx),
          (r) => r.result(),
        );
        rangeSource = { ...w.largeKey, size: sizes.largeBytes };
      }
    }
    // The range group's first-byte GETs read the 64 MiB objects, whatever the ranges read.
    let mediumWritten = 0;
    if (only.has('medium') || only.has('range')) {
      const put = await run(
        '64 MiB PUT',
        () => w.mediumPut(ctx),
        (r) => r.result(),
      );
      mediumWritten = put.ops;
      if (put.ops > 0) {
        await run(
          '64 MiB GET',
          () => w.mediumGet(ctx, put.ops),
          (r) => r.result(),
        );
        rangeSource ??= { ...w.mediumKey, size: sizes.mediumBytes };
      }
    }
    if (only.has('small')) {
      const { written } = await run(
        '4 KiB PUT',
        () => w.smallPut(ctx),
        (x) => x.rec.result(),
      );
      await run(
        '4 KiB GET',
        () => w.smallGet(ctx, written),
        (r) => r.result(),
      );
      await run(
        '4 KiB HEAD',
        () => w.smallHead(ctx, written),
        (r) => r.result(),
      );
      await run(
        '4 KiB DELETE',
        () => w.smallDelete(ctx, written),
        (r) => r.result(),
      );
    }
    if (only.has('small-put') && !only.has('small')) {
      await run(
        '4 KiB PUT',
        () => w.smallPut(ctx),
        (x) => x.rec.result(),
      );
    }
    if (only.has('list')) {
      // The null server lists keys it never stored.
      const preload = nullServer
        ? { keys: Array.from({ length: sizes.listKeys }, (_, i) => w.listKey(i)), failed: 0 }
        : await w.preloadListing(ctx);
      await run(
        'listing',
        () => w.listing(ctx, preload),
        (r) => r.result(),
      );
    }
    if (only.has('range')) {
      if (rangeSource) {
        const src = rangeSource;
        await run(
          '4 KiB ranged GET',
          () => w.rangedGets(ctx, src, sizes.smallRangeBytes, sizes.smallRangeCount),
          (r) => r.result(),
        );
        await run(
          '1 MiB ranged GET',
          () => w.rangedGets(ctx, src, sizes.rangeBytes, sizes.rangeCount),
          (r) => r.result(),
        );
      } else log('ranged GETs skipped: no object to read from');
      if (mediumWritten > 0) {
        await run(
          'GET first byte',
          () => w.firstByteGets(ctx, mediumWritten),
          (r) => r.result(),
        );
      }
    }
    if (only.has('mixed'))
      await run(
        'mixed + node kill',
        () => w.mixedWithFailure(ctx),
        (r) => r.result(),
      );
    return rows;
  } finally {
    s3.destroy();
  }
}

const nullS3Path = path.join(path.dirname(fileURLToPath(import.meta.url)), 'null-s3.js');
/** Enough to settle a rate; the ceilings run before the cluster's workloads, in run 1 only. */
const ceilingTimeLimitMs = 10_000;

/**
 * The client side's ceiling per workload: the same workloads (the SDK at default settings and the
 * bench's byte checks) against null-s3.js, an endpoint in its own process that stores nothing and
 * answers at once. No result can beat its ceiling; on a 2-core machine the cluster also shares the
 * cores with this client, so the ratio shows how much the server side costs on top of it.
 */
async function measureClientCeilings(
  sizes: w.Sizes,
  only: Set<Group>,
  log: (msg: string) => void,
): Promise<ClientCeilings> {
  const groups = new Set([...only].filter((g) => g !== 'mixed' && g !== 'upload16'));
  if (groups.size === 0) return {};
  return withChildServer([nullS3Path, JSON.stringify(sizes)], async (port) => {
    const cluster = externalCluster(`http://127.0.0.1:${port}`, 'null', 'null-secret');
    const limited = {
      ...sizes,
      workloadTimeLimitMs: Math.min(sizes.workloadTimeLimitMs, ceilingTimeLimitMs),
    };
    // Two passes, the best of each kept: the first also warms up the SDK's and the bench's code.
    const out: ClientCeilings = {};
    for (let pass = 1; pass <= 2; pass++) {
      const say = (m: string) => log(`client alone, pass ${pass}: ${m}`);
      for (const { result: r } of await runWorkloads(
        cluster,
        new Sampler(cluster),
        limited,
        groups,
        say,
        true,
      )) {
        if (r.errors > 0 || r.ops === 0) continue;
        const best = out[r.name];
        out[r.name] = {
          opsPerSec: Math.max(best?.opsPerSec ?? 0, r.opsPerSec),
          mbPerSec: Math.max(best?.mbPerSec ?? 0, r.mbPerSec),
        };
      }
    }
    return out;
  });
}

/**
 * upload16 stores uploadClients × uploadBytes on every replica before it deletes them: refuse to
 * start rather than fill the disk the data dir (under the temp dir) is on.
 */
function checkUploadRoom(sizes: w.Sizes): void {
  const replicas = Number(process.env.S3DFS_REPLICATION) || 3;
  // 10% for logs, metadata and the storage nodes' temp files.
  const need = sizes.uploadClients * sizes.uploadBytes * replicas * 1.1;
  const fs = statfsSync(os.tmpdir());
  const free = fs.bavail * fs.bsize;
  if (free < need) {
    throw new CannotRun(
      `upload16 needs about ${round(need / GiB, 1)} GiB free in ${os.tmpdir()} ` +
        `(${sizes.uploadClients} × ${w.mib(sizes.uploadBytes)} × ${replicas} replicas, + 10%), ` +
        `only ${round(free / GiB, 1)} GiB free`,
    );
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : round((s[mid - 1] + s[mid]) / 2, 2);
};
const medianOrNull = (xs: (number | null)[]): number | null =>
  xs.some((x) => x === null) ? null : median(xs as number[]);

/** One row per workload: the median of each metric over the runs, errors summed, every run's values kept. */
function aggregate(runs: RunRow[][], limits: Limits, metadata: string): Row[] {
  const names = [...new Set(runs.flat().map((r) => r.result.name))];
  return names.map((name) => {
    const mine = runs.flatMap((rows) => rows.filter((r) => r.result.name === name));
    const res = mine.map((r) => r.result);
    const use = mine.map((r) => r.usage);
    const notes = [...new Set(res.flatMap((r) => r.notes))];
    if (mine.length < runs.length) notes.push(`ran in ${mine.length} of ${runs.length} runs`);
    const result: Result = {
      name,
      ops: median(res.map((r) => r.ops)),
      errors: res.reduce((n, r) => n + r.errors, 0),
      bytes: median(res.map((r) => r.bytes)),
      seconds: median(res.map((r) => r.seconds)),
      opsPerSec: median(res.map((r) => r.opsPerSec)),
      mbPerSec: median(res.map((r) => r.mbPerSec)),
      p50Ms: medianOrNull(res.map((r) => r.p50Ms)),
      p99Ms: medianOrNull(res.map((r) => r.p99Ms)),
      notes,
    };
    const usage: Usage = {
      serverStartRssMb: medianOrNull(use.map((u) => u.serverStartRssMb)),
      serverPeakRssMb: medianOrNull(use.map((u) => u.serverPeakRssMb)),
      serverCpuSec: medianOrNull(use.map((u) => u.serverCpuSec)),
      nodesPeakRssMb: medianOrNull(use.map((u) => u.nodesPeakRssMb)),
      nodesCpuSec: medianOrNull(use.map((u) => u.nodesCpuSec)),
      benchCpuSec: median(use.map((u) => u.benchCpuSec)),
    };
    const perRun = mine.map(({ result: { name: _name, notes: _notes, ...values }, usage }) => ({
      ...values,
      usage,
    }));
    return { ...toRow(result, usage, limits, metadata), runs: perRun };
  });
}

function toRow(r: Result, usage: Usage, limits: Limits, metadata: string): Omit<Row, 'runs'> {
  const t = targetFor(r.name);
  const l = limitFor(r.name, limits);
  const notes = [...r.notes];
  let target: Row['target'] = null;
  if (t && 'atLeast' in t) {
    target = { ...t, met: r[t.metric] >= t.atLeast };
    const ceiling = limits.client[r.name]?.[t.metric];
    if (ceiling !== undefined && ceiling < t.atLeast) {
      target.clientCeiling = ceiling;
      notes.push(
        `target ≥${t.atLeast} is above what the client alone reaches on this machine (${ceiling}): ` +
          `unreachable here whatever the server does`,
      );
    }
  }
  // The target is the gateway's; the server's RSS is only that when PGlite is not in it too.
  if (t && 'atMost' in t && usage.serverPeakRssMb !== null) {
    if (metadata === 'pglite') {
      notes.push(
        `RSS target not judged: the server's RSS includes the embedded PGlite ` +
          `(${usage.serverStartRssMb} MB at start); run with --database-url for the gateway's own`,
      );
    } else target = { ...t, met: usage.serverPeakRssMb <= t.atMost };
  }
  const perOp = (sec: number | null) => (sec === null || r.ops === 0 ? null : round((sec * 1000) / r.ops, 2));
  return {
    ...r,
    notes,
    usage,
    cpuMsPerOp: { server: perOp(usage.serverCpuSec), nodes: perOp(usage.nodesCpuSec) },
    target,
    limit: l ? { name: l.name, value: l.value, ratio: round(r[l.metric] / l.value, 2) } : null,
  };
}

function printTable(
  mode: string,
  metadata: string,
  runCount: number,
  limits: Limits,
  rows: Row[],
  serverRss: number | null,
): void {
  const lines: string[][] = [
    [
      'workload',
      'result',
      'target',
      'p50 ms',
      'p99 ms',
      'vs limit',
      'srv RSS MB/CPU s',
      'node RSS MB/CPU s',
      'srv/node CPU ms/op',
      // The SDK client shares the machine: its CPU bounds what the cluster can be shown to do.
      'client CPU s',
      'err',
    ],
  ];
  for (const r of rows) {
    const byBytes =
      r.target?.metric === 'mbPerSec' || (r.target?.metric !== 'opsPerSec' && r.bytes > r.ops * 65536);
    const metric = byBytes ? 'mbPerSec' : 'opsPerSec';
    const unit = unitOf(r.name, metric);
    const values = r.runs.map((x) => x[metric]);
    const spread = runCount > 1 ? ` (${Math.min(...values)}–${Math.max(...values)})` : '';
    const main = `${r[metric]} ${unit}${spread}`;
    const t = r.target;
    const target = t
      ? `${t.met ? 'ok' : 'MISS'} ${'atMost' in t ? `≤${t.atMost} MB RSS` : `≥${t.atLeast}`}`
      : '';
    const u = r.usage;
    lines.push([
      r.name,
      main,
      target,
      String(r.p50Ms ?? '-'),
      String(r.p99Ms ?? '-'),
      r.limit ? `${r.limit.ratio}× ${r.limit.name}` : '',
      u.serverPeakRssMb === null ? '-' : `${u.serverPeakRssMb}/${u.serverCpuSec}`,
      u.nodesPeakRssMb === null ? '-' : `${u.nodesPeakRssMb}/${u.nodesCpuSec}`,
      r.cpuMsPerOp.server === null ? '-' : `${r.cpuMsPerOp.server}/${r.cpuMsPerOp.nodes}`,
      String(u.benchCpuSec),
      String(r.errors),
    ]);
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const runs = runCount > 1 ? `, median of ${runCount} runs (min–max), a fresh cluster each` : '';
  console.log(`\ns3dfs bench (${mode}, metadata ${metadata}, ${os.cpus().length} cores${runs})`);
  for (const l of lines) console.log(l.map((c, i) => c.padEnd(widths[i])).join('  '));
  console.log(
    `\nmachine: disk 3× fsync ${limits.disk3xMBps} MB/s, fsync'd 4 KiB files ${limits.smallFsyncOpsPerSec}/s, ` +
      `md5 ${limits.md5MBps} MB/s, sha256 ${limits.sha256MBps} MB/s, md5+sha256 ${limits.md5PlusSha256MBps} MB/s, ` +
      `loopback HTTP ${limits.loopbackHttpMBps} MB/s`,
  );
  const ceilings = Object.entries(limits.client).map(([name, c]) => {
    const metric = /MiB|GiB|large/.test(name) ? 'mbPerSec' : 'opsPerSec';
    return `${name} ${c[metric]} ${unitOf(name, metric)}`;
  });
  if (ceilings.length > 0)
    console.log(`client alone (SDK + checks vs a null server): ${ceilings.join(', ')}`);
  if (serverRss !== null) {
    console.log(
      `server peak RSS ${serverRss} MB (target: gateway < ${gatewayRssTargetMb} MB` +
        `${metadata === 'pglite' ? '; includes embedded PGlite' : ''})`,
    );
  }
  for (const r of rows) for (const n of r.notes) console.log(`  ${r.name}: ${n}`);
}

class UsageError extends Error {}
/** A run that cannot go ahead on this machine, said in one line. */
class CannotRun extends Error {}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`bench: ${signal}, stopping the cluster`);
    void stopAll().finally(() => process.exit(130));
  });
}

main().catch(async (err) => {
  if (err instanceof UsageError) {
    console.error(`bench: ${err.message}\n\n${usage}`);
    process.exitCode = 2;
  } else if (err instanceof CannotRun) {
    console.error(`bench: ${err.message}`);
    process.exitCode = 1;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
  await stopAll();
});
