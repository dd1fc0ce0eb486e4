// The storage node's HTTP API on plain node:http: it is on the data path, so no framework between
// the socket and the disk. Routes:
//   PUT|POST /chunk/:id   store (Content-Length required, optional x-s3dfs-sha256)
//   GET|HEAD /chunk/:id   read (single Range supported; see get for the framing), DELETE /chunk/:id
//   GET /chunks?after&limit   inventory in id order
//   POST /local-reads     {reads, bytes}: reads a gateway on this host made from the files directly
//   POST /local-writes    {id, size} → {name}: a temp file a gateway on this host fills itself,
//   POST /local-writes/commit {name, sha256}, POST /local-writes/abort {name}   (see store.ts)
//   GET /health           status, capacity, counters, latency, volume (no secret needed)
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type ByteRange,
  listLimitDefault,
  PayloadTooLarge,
  type PutResult,
  RangeNotSatisfiable,
  sha256Pattern,
  Unauthorized,
} from '../lib/chunk-store.js';
import { BadRequest, Conflict, Corrupt, InsufficientStorage, NotFound, Unavailable } from '../lib/errors.js';
import { newRequestId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { readErrorTrailer } from '../lib/node-client.js';
import { readExactly } from '../lib/streams.js';
import type { FsChunkStore, NodeIdentity } from './store.js';

// Each write holds a socket, a file descriptor, a temp file and a disk reservation; past this many
// at once a node answers 503 so the gateway writes elsewhere instead of the node thrashing its disk.
const writesInFlightMax = 128;
// Headers must arrive quickly; a whole request (a body of up to 1 GiB at a slow ~2 MB/s) gets ten
// minutes; a connection with no traffic at all for two minutes is dead and its temp file removed.
const headersTimeoutMs = 30_000;
const requestTimeoutMs = 10 * 60_000;
const socketIdleTimeoutMs = 2 * 60_000;
// Longer than a client's keep-alive pool waits, so a pooled socket is closed by the client first.
const keepAliveTimeoutMs = 30_000;
// After refusing a PUT whose body is on its way, read and discard it (up to the chunk limit, for at
// most this long) so the client gets a clean reply instead of a reset.
const drainTimeoutMs = 30_000;
// A body this small (a small object's only chunk) is read whole and written in one call: for a few
// KiB, a stream pipeline costs more than the bytes. Bounded, so memory stays flat per request.
const smallBodyBytes = 256 * 1024;
// Recent samples kept per latency series: enough for a stable p99, a few KB of memory.
const latencySamplesMax = 1024;

/** Local-read reports and local-write calls are a few small fields; anything bigger is not one. */
const controlBodyMax = 1024;

export interface NodeServerOptions {
  store: FsChunkStore;
  identity: NodeIdentity;
  version: string;
  secret?: string;
  chunkSizeMax: number;
  logger: Logger;
}

export interface NodeCounters {
  /** Chunk reads of this volume: served here, plus those reported by local readers. */
  reads: number;
  /** The part of `reads` a gateway on this host made from the files directly (local reads). */
  localReads: number;
  writes: number;
  /** The part of `writes` a gateway on this host wrote into the volume itself (local writes). */
  localWrites: number;
  deletes: number;
  bytesIn: number;
  bytesOut: number;
  errors: number;
  corruptions: number;
}

/** A fixed ring of recent latency samples; percentiles are computed on demand. */
export class LatencyRing {
  private readonly samples: number[] = [];
  private next = 0;
  constructor(private readonly capacity = latencySamplesMax) {}
  add(ms: number): void {
    if (this.samples.length < this.capacity) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.capacity;
  }
  percentile(p: number): number {
    if (this.samples.length === 0) return 0;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
    return Math.round(sorted[Math.max(0, i)] * 100) / 100;
  }
}

export function createNodeServer(opts: NodeServerOptions): http.Server {
  const node = new NodeHandler(opts);
  const server = http.createServer((req, res) => node.handle(req, res));
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.setTimeout(socketIdleTimeoutMs);
  return server;
}

class NodeHandler {
  private readonly counters: NodeCounters = {
    reads: 0,
    localReads: 0,
    writes: 0,
    localWrites: 0,
    deletes: 0,
    bytesIn: 0,
    bytesOut: 0,
    errors: 0,
    corruptions: 0,
  };
  private readonly readLatency = new LatencyRing();
  private readonly writeLatency = new LatencyRing();
  private readonly startedAt = Date.now();
  private readonly secretDigest?: Buffer;
  private writesInFlight = 0;

  constructor(private readonly opts: NodeServerOptions) {
    if (opts.secret !== undefined) this.secretDigest = digest(opts.secret);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const log = this.opts.logger.child({ reqId: newRequestId() });
    res.on('close', () => {
      const line = {
        method: req.method,
        url: req.url,
        status: res.statusCode,
        durationMs: Math.round(performance.now() - started),
        aborted: !res.writableFinished,
      };
      if (res.statusCode >= 500) log.error(line, 'request');
      else log.info(line, 'request');
    });
    try {
      await this.route(req, res);
    } catch (err) {
      await this.fail(req, res, err, log);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The raw path, not a normalised URL: `/chunk/../x` must be refused as a bad id, not resolved.
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const pathname = q < 0 ? raw : raw.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    const method = req.method ?? 'GET';

    if (pathname === '/health') {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, 'GET, HEAD');
      return this.health(res);
    }
    this.authorize(req);
    if (pathname === '/chunks') {
      if (method !== 'GET') return methodNotAllowed(res, 'GET');
      return this.list(res, query);
    }
    if (pathname === '/local-reads') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      return this.localReads(req, res);
    }
    if (pathname.startsWith('/local-writes')) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      return this.localWrite(req, res, pathname.slice('/local-writes'.length));
    }
    if (pathname.startsWith('/chunk/')) {
      const id = pathname.slice('/chunk/'.length);
      switch (method) {
        case 'PUT':
        case 'POST':
          return this.put(req, res, id);
        case 'GET':
          return this.get(req, res, id);
        case 'HEAD':
          return this.head(res, id);
        case 'DELETE':
          return this.delete(res, id);
        default:
          return methodNotAllowed(res, 'PUT, POST, GET, HEAD, DELETE');
      }
    }
    throw new NotFound(`no route for ${pathname}`);
  }

  private authorize(req: IncomingMessage): void {
    if (!this.secretDigest) return;
    const given = req.headers['x-s3dfs-secret'];
    // Compare fixed-length digests so neither the secret's bytes nor its length leak through timing.
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), this.secretDigest)) {
      throw new Unauthorized('missing or wrong x-s3dfs-secret');
    }
  }

  private async put(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const started = performance.now();
    const lengthHeader = req.headers['content-length'];
    if (lengthHeader === undefined || req.headers['transfer-encoding'] !== undefined) {
      throw new LengthRequired('Content-Length is required (chunked bodies are not accepted)');
    }
    if (!/^\d+$/.test(lengthHeader)) throw new BadRequest('invalid Content-Length');
    const size = Number(lengthHeader);
    const shaHeader = req.headers['x-s3dfs-sha256'];
    const sha256 = typeof shaHeader === 'string' ? shaHeader.toLowerCase() : undefined;
    if (sha256 !== undefined && !sha256Pattern.test(sha256)) throw new BadRequest('invalid x-s3dfs-sha256');
    if (this.writesInFlight >= writesInFlightMax) throw new Unavailable('too many writes in flight');

    this.writesInFlight += 1;
    try {
      let result: PutResult;
      if (size <= smallBodyBytes) {
        // Refusals that need no body (bad id, too large, no space) answer before it is read.
        this.opts.store.checkPut(id, size, sha256);
        const body = await readExactly(req, size);
        this.counters.bytesIn += body.length;
        result = await this.opts.store.put(id, body, size, sha256);
      } else {
        req.on('data', (c: Buffer) => {
          this.counters.bytesIn += c.length;
        });
        result = await this.opts.store.put(id, requestBody(req), size, sha256);
      }
      this.counters.writes += 1;
      this.writeLatency.add(performance.now() - started);
      sendJson(res, result.created ? 201 : 200, { id: result.id, size: result.size, sha256: result.sha256 });
    } finally {
      this.writesInFlight -= 1;
    }
  }

  /**
   * Serves a chunk or a range of it as its blocks pass their checks (lib/chunk-file.ts): a bad first
   * block is an error reply, a later one ends the body short with the trailer x-s3dfs-error naming
   * the error (so the reader knows this copy is bad, not merely cut off, and fails over). Hence the
   * body is chunked, not sized: x-s3dfs-size (and Content-Range for a range) say what it carries.
   */
  private async get(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const started = performance.now();
    const range = await this.resolveRange(req.headers.range, id);
    const got = await this.opts.store.get(id, range).catch(async (err) => {
      if (err instanceof RangeNotSatisfiable) {
        const info = await this.opts.store.head(id);
        if (info) res.setHeader('content-range', `bytes */${info.size}`);
      }
      throw err;
    });
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      'x-s3dfs-sha256': got.sha256,
      'x-s3dfs-size': got.size,
      trailer: readErrorTrailer,
    };
    if (got.range) headers['content-range'] = `bytes ${got.range.start}-${got.range.end}/${got.size}`;
    res.writeHead(got.range ? 206 : 200, headers);
    let failed: unknown;
    try {
      await pipeline(async function* () {
        try {
          yield* got.stream;
        } catch (err) {
          failed = err;
          res.addTrailers({ [readErrorTrailer]: errorName(err, 500) });
        }
      }, res);
    } catch (err) {
      // The client went away (or the socket failed): nobody is left to tell.
      res.destroy();
      failed = err;
    }
    if (failed !== undefined) {
      if (failed instanceof Corrupt) this.counters.corruptions += 1;
      this.counters.errors += 1;
      this.opts.logger.warn({ err: failed, chunkId: id }, 'chunk read failed mid-stream');
      return;
    }
    this.counters.reads += 1;
    this.counters.bytesOut += got.length;
    this.readLatency.add(performance.now() - started);
  }

  /**
   * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range, or undefined to serve the whole chunk.
   * Several ranges or a malformed header are ignored, as RFC 9110 §14.2 allows.
   */
  private async resolveRange(header: string | undefined, id: string): Promise<ByteRange | undefined> {
    if (header === undefined) return undefined;
    const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
    if (!m || (m[1] === '' && m[2] === '')) return undefined;
    if (m[1] !== '') {
      const start = Number(m[1]);
      const end = m[2] === '' ? Number.MAX_SAFE_INTEGER : Number(m[2]);
      return end < start ? undefined : { start, end };
    }
    // A suffix range needs the size first.
    const info = await this.opts.store.head(id);
    if (!info) throw new NotFound(`chunk ${id} not found`);
    const n = Number(m[2]);
    if (n === 0 || info.size === 0) throw new RangeNotSatisfiable('empty suffix range');
    return { start: Math.max(0, info.size - n), end: info.size - 1 };
  }

  private async head(res: ServerResponse, id: string): Promise<void> {
    const info = await this.opts.store.head(id);
    if (!info) throw new NotFound(`chunk ${id} not found`);
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': info.size,
      'accept-ranges': 'bytes',
      'x-s3dfs-sha256': info.sha256,
      'x-s3dfs-mtime-ms': String(info.mtimeMs),
    });
    res.end();
  }

  private async delete(res: ServerResponse, id: string): Promise<void> {
    await this.opts.store.delete(id);
    this.counters.deletes += 1;
    res.writeHead(204);
    res.end();
  }

  private async list(res: ServerResponse, query: URLSearchParams): Promise<void> {
    const after = query.get('after') || undefined;
    const limitRaw = query.get('limit');
    if (limitRaw !== null && !/^\d+$/.test(limitRaw)) throw new BadRequest('limit must be an integer');
    const limit = limitRaw === null ? listLimitDefault : Number(limitRaw);
    sendJson(res, 200, await this.opts.store.list(after, limit));
  }

  /**
   * A gateway on this host that read chunk files of this volume directly (local reads) reports how
   * many and how many bytes, so the node's read counters, and the KPIs built on them, still count
   * every read of its volume. `localReads` is the part of `reads` that did not pass through here.
   */
  private async localReads(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { reads, bytes } = await readControlBody(req, 'a local-reads report');
    if (!isCount(reads) || !isCount(bytes)) {
      throw new BadRequest('a local-reads report is {"reads": n, "bytes": n} with non-negative integers');
    }
    this.counters.reads += reads;
    this.counters.localReads += reads;
    this.counters.bytesOut += bytes;
    res.statusCode = 204;
    res.end();
  }

  /** The three steps of a local write (store.beginLocalWrite); the node counts it when committed. */
  private async localWrite(req: IncomingMessage, res: ServerResponse, step: string): Promise<void> {
    if (!['', '/commit', '/abort'].includes(step)) throw new NotFound(`no route for /local-writes${step}`);
    const body = await readControlBody(req, 'a local-write call');
    const { store } = this.opts;
    if (step === '') {
      if (typeof body.id !== 'string' || !isCount(body.size)) {
        throw new BadRequest('a local write begins with {"id": chunk id, "size": n}');
      }
      return sendJson(res, 201, { name: await store.beginLocalWrite(body.id, body.size) });
    }
    if (typeof body.name !== 'string') throw new BadRequest('a local-write call names its temp file');
    if (step === '/commit') {
      if (typeof body.sha256 !== 'string') throw new BadRequest('a local-write commit needs its sha256');
      const result = await store.commitLocalWrite(body.name, body.sha256);
      this.counters.writes += 1;
      this.counters.localWrites += 1;
      this.counters.bytesIn += result.size;
      this.writeLatency.add(result.elapsedMs);
      return sendJson(res, result.created ? 201 : 200, {
        id: result.id,
        size: result.size,
        sha256: result.sha256,
      });
    }
    await store.abortLocalWrite(body.name); // step '/abort'
    res.statusCode = 204;
    res.end();
  }

  private async health(res: ServerResponse): Promise<void> {
    const volumeId = await this.opts.store.volumeId();
    const s = this.opts.store.stats();
    sendJson(res, 200, {
      status: 'ok',
      nodeId: this.opts.identity.id,
      version: this.opts.version,
      capacityBytes: s.capacityBytes,
      usedBytes: s.usedBytes,
      freeBytes: await this.opts.store.freeBytes(),
      chunkCount: s.chunkCount,
      volumeId,
      // Lets a gateway on the same host find and prove it sees this volume (local reads).
      volume: { dataDir: this.opts.store.dataDir, createdAt: this.opts.identity.createdAt },
      uptimeSec: Math.floor((Date.now() - this.startedAt) / 1000),
      counters: { ...this.counters, corruptions: Math.max(this.counters.corruptions, s.corruptions) },
      latency: {
        readP50Ms: this.readLatency.percentile(50),
        readP99Ms: this.readLatency.percentile(99),
        writeP50Ms: this.writeLatency.percentile(50),
        writeP99Ms: this.writeLatency.percentile(99),
      },
    });
  }

  private async fail(req: IncomingMessage, res: ServerResponse, err: unknown, log: Logger): Promise<void> {
    const status = statusOf(err);
    if (err instanceof Corrupt) this.counters.corruptions += 1;
    if (status >= 500) {
      this.counters.errors += 1;
      log.error({ err }, 'request failed');
    }
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // The client went away mid-upload: nobody is left to answer.
    if (req.destroyed && !req.complete) return;
    if (!req.complete) await this.drainOrClose(req, res, status);
    const message = status === 500 && !(err instanceof Corrupt) ? 'internal error' : (err as Error).message;
    sendJson(res, status, { error: errorName(err, status), message });
  }

  /**
   * A refused PUT whose body is still arriving: read and drop a bounded body before answering, so
   * the client (which is still writing) reads a clean reply; anything else gets the reply and a
   * closed connection. Unauthenticated clients are never drained.
   */
  private async drainOrClose(req: IncomingMessage, res: ServerResponse, status: number): Promise<void> {
    const length = Number(req.headers['content-length'] ?? Number.NaN);
    if (status === 401 || !(length <= this.opts.chunkSizeMax)) {
      res.setHeader('connection', 'close');
      return;
    }
    req.resume();
    const drained = await Promise.race([
      once(req, 'end').then(() => true),
      once(req, 'close').then(() => req.complete),
      new Promise<boolean>((resolve) => setTimeout(resolve, drainTimeoutMs, false).unref()),
    ]).catch(() => false);
    if (!drained) res.setHeader('connection', 'close');
  }
}

/** 411: the one status with no domain error of its own (it only exists at the HTTP layer). */
class LengthRequired extends BadRequest {}

/**
 * The request body as a stream the store may destroy without killing the socket (so an error
 * reply can still be sent); a client that aborts mid-body surfaces as a stream error.
 */
function requestBody(req: IncomingMessage): Readable {
  const body = new PassThrough();
  // An upload aborted before the store starts reading would otherwise be an unhandled 'error'
  // that takes the whole node down; the store still sees the stream fail when it reads it.
  body.on('error', () => {});
  req.pipe(body);
  req.on('error', (err) => body.destroy(err));
  req.on('close', () => {
    if (!req.complete) body.destroy(new Error('client aborted the upload'));
  });
  return body;
}

function statusOf(err: unknown): number {
  if (err instanceof MethodNotAllowed) return 405;
  if (err instanceof LengthRequired) return 411;
  if (err instanceof PayloadTooLarge) return 413;
  if (err instanceof RangeNotSatisfiable) return 416;
  if (err instanceof BadRequest) return 400;
  if (err instanceof Unauthorized) return 401;
  if (err instanceof NotFound) return 404;
  if (err instanceof Conflict) return 409;
  if (err instanceof InsufficientStorage) return 507;
  if (err instanceof Unavailable) return 503;
  // A corrupt chunk is named as such, so the reader fails over and reports it for repair.
  if (err instanceof Corrupt) return 500;
  return 500;
}

function errorName(err: unknown, status: number): string {
  if (err instanceof Corrupt) return 'Corrupt';
  return status === 500 ? 'InternalError' : (err as Error).name;
}

class MethodNotAllowed extends BadRequest {}

function methodNotAllowed(res: ServerResponse, allow: string): never {
  res.setHeader('allow', allow);
  throw new MethodNotAllowed(`method not allowed; use ${allow}`);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** A small JSON object body (the local-read and local-write calls), bounded. */
async function readControlBody(req: IncomingMessage, what: string): Promise<Record<string, unknown>> {
  const size = Number(req.headers['content-length']);
  if (!Number.isSafeInteger(size) || size < 0 || size > controlBodyMax) {
    throw new BadRequest(`${what} needs a Content-Length of at most ${controlBodyMax}`);
  }
  let body: unknown;
  try {
    body = JSON.parse((await readExactly(req, size)).toString('utf8'));
  } catch (err) {
    throw err instanceof SyntaxError ? new BadRequest(`${what} must be JSON`) : err;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BadRequest(`${what} must be a JSON object`);
  }
  return body as Record<string, unknown>;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
