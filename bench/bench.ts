// `npm run bench`: starts an s3dfs cluster (or targets a running endpoint), drives it with the AWS
// SDK at default settings, verifies every byte it reads, and reports throughput, latency and
// resource use next to the machine's own limits and the targets of issue 8.

import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { type Cluster, externalCluster, startCluster, stopAll } from './cluster.js';
import { type LimitSizes, type Limits, measureLimits } from './limits.js';
import { Sampler, type Usage } from './resources.js';
import { type Result, round } from './stats.js';
import * as w from './workloads.js';

const usage = `usage: npm run bench -- [options]      (or node dist/bench/bench.js [options])

  --quick                 small sizes and counts: about a minute
  --json                  print one JSON document instead of a table
  --only LIST             workload groups, comma-separated: large,medium,small,range,mixed (default all);
                          small-put runs the 4 KiB PUT alone
  --time-limit SECONDS    stop each workload after this long (default 180, quick 8)
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
  listPageKeys: 1000,
  listPassesMax: 5,
  rangeBytes: MiB,
  rangeCount: 400,
  rangeConcurrency: 8,
  mixedObjectBytes: MiB,
  mixedConcurrency: 8,
  mixedSeconds: 30,
  workloadTimeLimitMs: 180_000,
};

const quickSizes: w.Sizes = {
  ...fullSizes,
  largeBytes: 256 * MiB,
  mediumCount: 1,
  smallCount: 1000,
  listPassesMax: 20,
  rangeCount: 64,
  mixedSeconds: 8,
  workloadTimeLimitMs: 8_000,
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
const groups = ['large', 'medium', 'small', 'small-put', 'range', 'mixed'] as const;
type Group = (typeof groups)[number];

/** The targets; a result is compared with its target by the metric named. */
interface Target {
  metric: 'mbPerSec' | 'opsPerSec';
  atLeast: number;
}
const targets: Record<string, Target> = {
  'large PUT (multipart)': { metric: 'mbPerSec', atLeast: 250 },
  'large GET': { metric: 'mbPerSec', atLeast: 400 },
  '4 KiB PUT': { metric: 'opsPerSec', atLeast: 800 },
  '4 KiB GET': { metric: 'opsPerSec', atLeast: 2000 },
  'ListObjectsV2 (1000/page)': { metric: 'opsPerSec', atLeast: 40 },
};
const gatewayRssTargetMb = 300;

/** Which machine limit bounds each workload. */
function limitFor(
  name: string,
  limits: Limits,
): { name: string; value: number; metric: Target['metric'] } | null {
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

interface Row extends Result {
  usage: Usage;
  target: { metric: string; atLeast: number; met: boolean } | null;
  limit: { name: string; value: number; ratio: number } | null;
}

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
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
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (o.help) {
    console.log(usage);
    return;
  }
  if (o.runtime !== 'process' && o.runtime !== 'docker') throw new UsageError('--runtime: process or docker');
  if (o.endpoint && !(o['access-key'] && o['secret-key']))
    throw new UsageError('--endpoint needs --access-key and --secret-key');
  const only = new Set<Group>((o.only?.split(',') ?? groups.filter((g) => g !== 'small-put')) as Group[]);
  for (const g of only) if (!groups.includes(g)) throw new UsageError(`--only: unknown group ${g}`);
  const sizes = { ...(o.quick ? quickSizes : fullSizes) };
  if (o['time-limit'] !== undefined) {
    const sec = Number(o['time-limit']);
    if (!(sec > 0 && sec <= 3600)) throw new UsageError('--time-limit: seconds in (0, 3600]');
    sizes.workloadTimeLimitMs = sec * 1000;
  }
  const log = (msg: string) => {
    if (!o.json || process.stderr.isTTY)
      console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
  };

  const started = new Date().toISOString();
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
  const sampler = new Sampler(cluster);
  try {
    log(`cluster up at ${cluster.endpoint} (metadata: ${cluster.metadata}); measuring machine limits`);
    const limits = await measureLimits(cluster.dataDir ?? os.tmpdir(), o.quick ? quickLimits : fullLimits);
    log(`limits: ${JSON.stringify(limits)}`);
    await sampler.start();
    const s3 = new S3Client({
      endpoint: cluster.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey },
    });
    const bucket = `s3dfs-bench-${randomBytes(4).toString('hex')}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const ctx: w.Ctx = { s3, bucket, sizes, cluster, log };
    const rows: Row[] = [];
    const run = async <T>(label: string, fn: () => Promise<T>, rec: (t: T) => Result): Promise<T> => {
      log(`${label} ...`);
      const end = sampler.window();
      const out = await fn();
      const row = toRow(rec(out), end(), limits);
      rows.push(row);
      log(`${label}: ${row.opsPerSec} ops/s, ${row.mbPerSec} MB/s, ${row.errors} errors`);
      return out;
    };

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
    if (only.has('medium') || (only.has('range') && !rangeSource)) {
      const put = await run(
        '64 MiB PUT',
        () => w.mediumPut(ctx),
        (r) => r.result(),
      );
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
        'listing',
        () => w.listing(ctx, written),
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
    if (only.has('range')) {
      if (rangeSource) {
        const src = rangeSource;
        await run(
          'ranged GET',
          () => w.rangedGets(ctx, src.key, src.seed, src.size),
          (r) => r.result(),
        );
      } else log('ranged GET skipped: no object to read from');
    }
    if (only.has('mixed'))
      await run(
        'mixed + node kill',
        () => w.mixedWithFailure(ctx),
        (r) => r.result(),
      );
    sampler.stop();
    s3.destroy();

    const serverRss = Math.max(0, ...rows.map((r) => r.usage.serverPeakRssMb ?? 0));
    const doc = {
      started,
      finished: new Date().toISOString(),
      mode: o.quick ? 'quick' : 'full',
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memGb: round(os.totalmem() / GiB, 1),
        node: process.version,
      },
      cluster: {
        endpoint: o.endpoint ? cluster.endpoint : 'started by the bench',
        metadata: cluster.metadata,
        runtime: o.endpoint ? 'external' : o.runtime,
        chunkSize: o.endpoint ? 'unknown' : o['chunk-size'],
      },
      limits,
      results: rows,
      summary: {
        errors: rows.reduce((n, r) => n + r.errors, 0),
        serverPeakRssMb: cluster.serverPid ? serverRss : null,
        gatewayRssTargetMb,
        note:
          cluster.metadata === 'pglite' ? 'server RSS includes the embedded PGlite (WASM heap)' : undefined,
      },
    };
    if (o.json) console.log(JSON.stringify(doc, null, 2));
    else printTable(doc.mode, doc.cluster.metadata, limits, rows, doc.summary.serverPeakRssMb);
  } finally {
    sampler.stop();
    log('stopping cluster');
    await cluster.stop();
  }
}

function toRow(r: Result, usage: Usage, limits: Limits): Row {
  const t = targets[r.name];
  const l = limitFor(r.name, limits);
  return {
    ...r,
    usage,
    target: t ? { metric: t.metric, atLeast: t.atLeast, met: r[t.metric] >= t.atLeast } : null,
    limit: l ? { name: l.name, value: l.value, ratio: round(r[l.metric] / l.value, 2) } : null,
  };
}

function printTable(
  mode: string,
  metadata: string,
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
      'err',
    ],
  ];
  for (const r of rows) {
    const byBytes = r.target?.metric === 'mbPerSec' || (!r.target && r.bytes > r.ops * 65536);
    const main = r.name.startsWith('ListObjectsV2')
      ? `${r.opsPerSec} pages/s`
      : byBytes
        ? `${r.mbPerSec} MB/s`
        : `${r.opsPerSec} ops/s`;
    const target = r.target ? `${r.target.met ? 'ok' : 'MISS'} ≥${r.target.atLeast}` : '';
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
      String(r.errors),
    ]);
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  console.log(`\ns3dfs bench (${mode}, metadata ${metadata}, ${os.cpus().length} cores)`);
  for (const l of lines) console.log(l.map((c, i) => c.padEnd(widths[i])).join('  '));
  console.log(
    `\nmachine: disk 3× fsync ${limits.disk3xMBps} MB/s, fsync'd 4 KiB files ${limits.smallFsyncOpsPerSec}/s, ` +
      `md5 ${limits.md5MBps} MB/s, sha256 ${limits.sha256MBps} MB/s, md5+sha256 ${limits.md5PlusSha256MBps} MB/s, ` +
      `loopback HTTP ${limits.loopbackHttpMBps} MB/s`,
  );
  if (serverRss !== null) {
    console.log(
      `server peak RSS ${serverRss} MB (target: gateway < ${gatewayRssTargetMb} MB` +
        `${metadata === 'pglite' ? '; includes embedded PGlite' : ''})`,
    );
  }
  for (const r of rows) for (const n of r.notes) console.log(`  ${r.name}: ${n}`);
}

class UsageError extends Error {}

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
  } else {
    console.error(err);
    process.exitCode = 1;
  }
  await stopAll();
});
