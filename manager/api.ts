// The management HTTP API: JSON in and out, bearer token on everything but GET /health, errors as
// { error: { code, message } }. Routes are thin; the work is in the Manager they are given.
import { timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Knex } from 'knex';
import Koa from 'koa';
import { BadRequest, Conflict, DomainError, NotFound, Unavailable } from '../lib/errors.js';
import { newRequestId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { LIMITS } from './config.js';
import { consoleStatic, registerConsoleRoutes } from './console.js';
import { registerKeyRoutes } from './keys.js';
import type { ClusterOps } from './manager.js';

/** Request bodies are tiny ({count, zone, capacityBytes}); anything bigger is a mistake. */
const BODY_BYTES_MAX = 64 * 1024;
const EVENTS_LIMIT_MAX = 1000;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function toApiError(err: unknown): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof NotFound) return new ApiError(404, 'NotFound', err.message);
  if (err instanceof Conflict) return new ApiError(409, 'Conflict', err.message);
  if (err instanceof BadRequest) return new ApiError(400, 'BadRequest', err.message);
  if (err instanceof Unavailable) return new ApiError(503, 'Unavailable', err.message);
  if (err instanceof DomainError) return new ApiError(400, err.name, err.message);
  return undefined;
}

export function createApi(ops: ClusterOps, adminToken: string, logger: Logger, db?: Knex): Koa {
  const app = new Koa();
  const expected = Buffer.from(`Bearer ${adminToken}`);

  app.use(async (ctx, next) => {
    const started = Date.now();
    const requestId = newRequestId();
    ctx.set('x-request-id', requestId);
    try {
      await next();
    } catch (err) {
      const api = toApiError(err);
      if (api) {
        ctx.status = api.status;
        ctx.body = { error: { code: api.code, message: api.message, requestId } };
      } else {
        logger.error({ err, requestId }, 'management API error');
        ctx.status = 500;
        ctx.body = { error: { code: 'InternalError', message: 'internal error', requestId } };
      }
    }
    const level = ctx.status >= 500 ? 'error' : 'info';
    logger[level](
      { requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Date.now() - started },
      'admin request',
    );
  });

  app.use(consoleStatic()); // the console's page and bundle: public, it holds no secrets
  app.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/health') return next();
    const got = Buffer.from(ctx.get('authorization'));
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      throw new ApiError(
        401,
        'Unauthorized',
        'missing or wrong bearer token (Authorization: Bearer <admin token>)',
      );
    }
    return next();
  });

  const router = new Router();
  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = 'text/plain; version=0.0.4';
    ctx.body = await ops.metricsText();
  });
  router.get('/api/cluster', async (ctx) => {
    ctx.body = await ops.clusterKpis();
  });
  router.get('/api/kpis', async (ctx) => {
    ctx.body = { cluster: await ops.clusterKpis(), nodes: ops.nodeKpis() };
  });
  router.get('/api/nodes', (ctx) => {
    ctx.body = { nodes: ops.nodeKpis() };
  });
  router.post('/api/nodes', async (ctx) => {
    const body = await readJson(ctx);
    const count = (body.count ?? 1) as number;
    if (!Number.isInteger(count) || count < 1 || count > LIMITS.nodesPerRequestMax) {
      throw new ApiError(400, 'BadRequest', `count must be an integer in 1..${LIMITS.nodesPerRequestMax}`);
    }
    if (
      body.zone !== undefined &&
      body.zone !== null &&
      (typeof body.zone !== 'string' || body.zone.length > 64)
    ) {
      throw new ApiError(400, 'BadRequest', 'zone must be a string of at most 64 characters');
    }
    const cap = body.capacityBytes as number | undefined | null;
    if (cap !== undefined && cap !== null && (!Number.isSafeInteger(cap) || cap < 1)) {
      throw new ApiError(400, 'BadRequest', 'capacityBytes must be a positive integer');
    }
    const nodes = await ops.addNodes(count, {
      zone: (body.zone as string | undefined) ?? null,
      capacityBytes: cap ?? undefined,
    });
    ctx.status = 201;
    ctx.body = { nodes, ringVersion: ops.ring().version };
  });
  router.get('/api/nodes/:id', (ctx) => {
    ctx.body = ops.node(ctx.params.id);
  });
  router.post('/api/nodes/:id/drain', async (ctx) => {
    const node = await ops.drain(ctx.params.id);
    ctx.body = {
      node,
      note: 'the node left the ring; its chunks are being copied elsewhere (see healing.drain in GET /api/cluster); DELETE it once drained',
    };
  });
  router.delete('/api/nodes/:id', async (ctx) => {
    const purge = ctx.query.purge === 'true' || ctx.query.purge === '1';
    await ops.removeNode(ctx.params.id, purge);
    ctx.body = { removed: ctx.params.id, purged: purge };
  });
  router.get('/api/fsck', async (ctx) => {
    ctx.body = await ops.fsck();
  });
  router.post('/api/repair', (ctx) => {
    ctx.status = 202;
    ctx.body = { pass: ops.repairNow() };
  });
  router.get('/api/ring', (ctx) => {
    ctx.body = ops.ring();
  });
  router.get('/api/placement', (ctx) => {
    const chunk = ctx.query.chunk;
    if (typeof chunk !== 'string' || chunk === '')
      throw new ApiError(400, 'BadRequest', 'chunk=ID is required');
    const count = ctx.query.count === undefined ? undefined : Number(ctx.query.count);
    if (count !== undefined && (!Number.isInteger(count) || count < 1 || count > LIMITS.replicationMax)) {
      throw new ApiError(400, 'BadRequest', `count must be an integer in 1..${LIMITS.replicationMax}`);
    }
    ctx.body = { chunk, ...ops.explain(chunk, count) };
  });
  router.get('/api/events', async (ctx) => {
    const limit = ctx.query.limit === undefined ? 100 : Number(ctx.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > EVENTS_LIMIT_MAX) {
      throw new ApiError(400, 'BadRequest', `limit must be an integer in 1..${EVENTS_LIMIT_MAX}`);
    }
    const node = typeof ctx.query.node === 'string' ? ctx.query.node : undefined;
    ctx.body = { events: await ops.events(limit, node) };
  });

  if (db) registerKeyRoutes(router, db);
  if (db) registerConsoleRoutes(router, { ops, db });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  app.use((ctx) => {
    if (ctx.status === 404 && ctx.body === undefined) {
      throw new ApiError(404, 'NotFound', `no route ${ctx.method} ${ctx.path}`);
    }
  });
  return app;
}

/** A JSON object request body of at most `maxBytes` (413 beyond, 400 BadJson if not an object). */
export async function readJson(
  ctx: Koa.Context,
  maxBytes = BODY_BYTES_MAX,
): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new ApiError(413, 'TooLarge', `body exceeds ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, 'BadJson', `request body is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ApiError(400, 'BadJson', 'request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}
