// The web console on the management port: the bundle built from console/ (served at `/` without a
// token — it holds no secrets; the browser sends the admin token as a bearer header on every API
// call), plus the read-only JSON routes only the console needs: the bucket/object browser, an
// object's chunks with their replicas and the ring's choice, and each node's share of the ring.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Router from '@koa/router';
import type { Knex } from 'knex';
import type Koa from 'koa';
import { BadRequest, NotFound } from '../lib/errors.js';
import { Ring, ringBalance, vnodeCount } from '../lib/ring.js';
import type { ClusterOps } from './manager.js';

/** Buckets listed at once; a console is not a bulk export tool. */
const BUCKETS_MAX = 1000;
/** Objects + common prefixes per browser page; the UI pages on with `after`. */
const LIST_PAGE_MAX = 200;
/** Rows read per listing query; several queries per page when prefixes are skipped over. */
const LIST_BATCH = 500;
/** Listing queries per page: bounds the work of a page dominated by common prefixes. */
const LIST_QUERIES_MAX = 50;
/** Chunks per object page (each costs a ring walk); big objects page on with `afterSeq`. */
const CHUNKS_PAGE_MAX = 200;
/** Bucket names and keys are at most 1024 bytes in S3; refuse anything longer early. */
const KEY_CHARS_MAX = 1024;

/** Where `npm run build` puts the bundle: dist/console next to dist/manager (or .build/x/...). */
const BUNDLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** Scripts and data only from this origin; inline styles are what uPlot and bars set. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * Serves GET / and GET /console/<file> from the bundle, before the token check. Files are read per
 * request (a handful of small files, rarely fetched) so a rebuild needs no restart.
 */
/**
 * The console's icon, asked for by every browser on every page load: served like the page (no
 * token), so it is not a 401 in the log each time. SVG, as every browser the console supports takes.
 */
const FAVICON = Buffer.from(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f6feb"/>' +
    '<path d="M4 5h8M4 8h8M4 11h8" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/></svg>',
);

export function consoleStatic(bundleDir = BUNDLE_DIR): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    if (ctx.path === '/favicon.ico') {
      ctx.type = 'image/svg+xml';
      ctx.set('cache-control', 'max-age=86400');
      ctx.body = FAVICON;
      return;
    }
    let file: string;
    if (ctx.path === '/' || ctx.path === '/index.html') file = 'index.html';
    else if (/^\/console\/[a-zA-Z0-9_.-]+$/.test(ctx.path) && !ctx.path.includes('..'))
      file = ctx.path.slice('/console/'.length);
    else return next();
    const type = CONTENT_TYPES[path.extname(file)];
    if (!type) return next();
    let body: Buffer;
    try {
      body = await readFile(path.join(bundleDir, file));
    } catch {
      ctx.status = file === 'index.html' ? 503 : 404;
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body =
        file === 'index.html'
          ? `The console is not built (no ${path.join(bundleDir, 'index.html')}): run npm run build.\n`
          : 'not found\n';
      return;
    }
    ctx.set('content-security-policy', CSP);
    ctx.set('x-content-type-options', 'nosniff');
    ctx.set('referrer-policy', 'no-referrer');
    ctx.set('cache-control', 'no-cache');
    ctx.type = type;
    ctx.body = body;
  };
}

export interface ConsoleDeps {
  ops: ClusterOps;
  db: Knex;
}

/** The console's JSON routes; registered on the API router, so they sit behind the token. */
export function registerConsoleRoutes(router: Router, { ops, db }: ConsoleDeps): void {
  router.get('/api/console/buckets', async (ctx) => {
    ctx.body = { buckets: await listBuckets(db) };
  });
  router.get('/api/console/objects', async (ctx) => {
    const bucket = requireString(ctx.query.bucket, 'bucket');
    const prefix = optionalString(ctx.query.prefix, 'prefix') ?? '';
    const after = optionalString(ctx.query.after, 'after') ?? '';
    if (!(await db('buckets').where({ name: bucket }).first('name'))) {
      throw new NotFound(`no bucket ${bucket}`);
    }
    ctx.body = { bucket, prefix, ...(await listObjects(db, bucket, prefix, after)) };
  });
  router.get('/api/console/object', async (ctx) => {
    const bucket = requireString(ctx.query.bucket, 'bucket');
    const key = requireString(ctx.query.key, 'key');
    const afterSeq = ctx.query.afterSeq === undefined ? -1 : Number(ctx.query.afterSeq);
    if (!Number.isInteger(afterSeq) || afterSeq < -1) throw new BadRequest('afterSeq must be an integer');
    ctx.body = await objectDetail(db, ops, bucket, key, afterSeq);
  });
  const shares = ringShares(ops);
  router.get('/api/console/ring', (ctx) => {
    ctx.body = shares();
  });
}

function requireString(v: unknown, name: string): string {
  const s = optionalString(v, name);
  if (s === undefined || s === '') throw new BadRequest(`${name} is required`);
  return s;
}

function optionalString(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadRequest(`${name} must be given once`);
  if (v.length > KEY_CHARS_MAX) throw new BadRequest(`${name} is longer than ${KEY_CHARS_MAX} characters`);
  return v;
}

async function listBuckets(db: Knex) {
  const rows = await db('buckets as b')
    .leftJoin('objects as o', 'o.bucket', 'b.name')
    .groupBy('b.name', 'b.created_at')
    .orderBy('b.name')
    .limit(BUCKETS_MAX)
    .select(
      'b.name',
      'b.created_at',
      db.raw('count(o.id) as objects'),
      db.raw('coalesce(sum(o.size), 0) as bytes'),
    );
  return rows.map((r: Record<string, unknown>) => ({
    name: r.name as string,
    createdAt: new Date(r.created_at as string).toISOString(),
    objects: Number(r.objects),
    bytes: Number(r.bytes),
  }));
}

interface ListedObject {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
}

/**
 * One page of `prefix`'s children with `/` as the delimiter, in key (byte) order after `after` (the
 * last key or common prefix of the previous page). A common prefix `p/` is skipped over in one step
 * by restarting at `p0`: '0' is the byte after '/', so no key under `p/` is at or above it.
 */
async function listObjects(db: Knex, bucket: string, prefix: string, after: string) {
  const prefixes: string[] = [];
  const objects: ListedObject[] = [];
  const skipPast = (common: string) => `${common.slice(0, -1)}0`;
  let cursor = prefix;
  let inclusive = true; // the prefix itself may be a key
  if (after > prefix && after.startsWith(prefix)) {
    inclusive = after.endsWith('/');
    cursor = inclusive ? skipPast(after) : after;
  }
  let last: string | null = null;
  for (let q = 0; q < LIST_QUERIES_MAX; q++) {
    const rows = await db('objects')
      .where({ bucket })
      .andWhere('key', inclusive ? '>=' : '>', cursor)
      .orderBy('key')
      .limit(LIST_BATCH)
      .select('key', 'size', 'etag', 'last_modified');
    let jumped = false;
    for (const r of rows) {
      const key = r.key as string;
      if (!key.startsWith(prefix)) return { prefixes, objects, next: null };
      if (prefixes.length + objects.length >= LIST_PAGE_MAX) return { prefixes, objects, next: last };
      const slash = key.indexOf('/', prefix.length);
      if (slash >= 0) {
        last = key.slice(0, slash + 1);
        prefixes.push(last);
        cursor = skipPast(last);
        inclusive = true;
        jumped = true;
        break;
      }
      objects.push({
        key,
        size: Number(r.size),
        etag: r.etag as string,
        lastModified: new Date(r.last_modified).toISOString(),
      });
      last = cursor = key;
      inclusive = false;
    }
    if (!jumped && rows.length < LIST_BATCH) return { prefixes, objects, next: null };
  }
  return { prefixes, objects, next: last }; // out of queries for this page: the client asks again
}

type ReplicaHealth = 'ok' | 'corrupt' | 'node-down';

async function objectDetail(db: Knex, ops: ClusterOps, bucket: string, key: string, afterSeq: number) {
  const obj = await db('objects')
    .where({ bucket, key })
    .first(
      'id',
      'size',
      'etag',
      'last_modified',
      'content_type',
      'parts_count',
      db.raw('inline_data is not null as inline'),
    );
  if (!obj) throw new NotFound(`no object ${bucket}/${key}`);
  const chunkRows = await db('chunks')
    .where({ object_id: obj.id })
    .andWhere('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(CHUNKS_PAGE_MAX + 1)
    .select('id', 'seq', 'offset', 'size', 'sha256', 'part_number');
  const more = chunkRows.length > CHUNKS_PAGE_MAX;
  const page = chunkRows.slice(0, CHUNKS_PAGE_MAX);
  const total = Number((await db('chunks').where({ object_id: obj.id }).count({ n: '*' }))[0].n);
  const replicaRows = page.length
    ? await db('chunk_replicas')
        .whereIn(
          'chunk_id',
          page.map((c) => c.id),
        )
        .orderBy('node_id')
        .select('chunk_id', 'node_id', 'state')
    : [];
  const nodes = new Map(ops.nodeKpis().map((n) => [n.id, n]));
  const replication = ops.ring().replication;
  const chunks = page.map((c) => {
    const placement = ops.explain(c.id);
    const chosen = new Set(placement.chosen.map((n) => n.id));
    const replicas = replicaRows
      .filter((r) => r.chunk_id === c.id)
      .map((r) => {
        const node = nodes.get(r.node_id);
        const nodeStatus = node?.status ?? 'removed';
        const health: ReplicaHealth = r.state !== 'ok' ? 'corrupt' : nodeStatus === 'up' ? 'ok' : 'node-down';
        return {
          nodeId: r.node_id as string,
          state: r.state as string,
          nodeStatus,
          health,
          onRing: chosen.has(r.node_id),
        };
      });
    const healthy = replicas.filter((r) => r.health === 'ok').length;
    const held = new Set(replicas.map((r) => r.nodeId));
    return {
      id: c.id as string,
      seq: Number(c.seq),
      partNumber: c.part_number === null ? null : Number(c.part_number),
      offset: Number(c.offset),
      size: Number(c.size),
      sha256: c.sha256 as string,
      healthy,
      status: healthy >= replication ? 'full' : healthy > 0 ? 'under' : 'missing',
      replicas,
      placement: {
        chosen: placement.chosen.map((n) => ({ id: n.id, zone: n.zone, holds: held.has(n.id) })),
        skipped: placement.skipped.map((s) => ({ id: s.node.id, reason: s.reason })),
      },
    };
  });
  return {
    bucket,
    key,
    size: Number(obj.size),
    etag: obj.etag as string,
    lastModified: new Date(obj.last_modified).toISOString(),
    contentType: (obj.content_type as string | null) ?? null,
    partsCount: obj.parts_count === null ? null : Number(obj.parts_count),
    replication,
    inline: Boolean(obj.inline),
    chunksTotal: total,
    chunks,
    nextAfterSeq: more ? chunks[chunks.length - 1].seq : null,
  };
}

/** Each node's share of the ring (first replicas, by arc), cached per ring membership. */
function ringShares(ops: ClusterOps) {
  let cache: { key: string; body: unknown } | undefined;
  return () => {
    const snapshot = ops.ring();
    const key = `${snapshot.version}|${snapshot.nodes.map((n) => `${n.id}:${n.status}:${n.weight}`).join(',')}`;
    if (cache?.key === key) return cache.body;
    const ring = new Ring(snapshot);
    const owned = ring.ownership();
    const upWeight = snapshot.nodes.filter((n) => n.status === 'up').reduce((a, n) => a + n.weight, 0);
    const body = {
      version: snapshot.version,
      replication: snapshot.replication,
      balance: ringBalance(ring),
      nodes: snapshot.nodes
        .filter((n) => n.status !== 'removed')
        .map((n) => ({
          id: n.id,
          status: n.status,
          zone: n.zone,
          weight: n.weight,
          vnodes: vnodeCount(n.weight),
          share: owned.get(n.id) ?? 0,
          targetShare: n.status === 'up' && upWeight > 0 ? n.weight / upWeight : 0,
        })),
    };
    cache = { key, body };
    return body;
  };
}
