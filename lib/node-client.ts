// NodeClient: a storage node reached over HTTP, as a ChunkStore. Bodies stream both ways through a
// shared keep-alive agent; nothing is buffered but small JSON replies.
import http, { type IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type ByteRange,
  type ChunkInfo,
  type ChunkPage,
  type ChunkStore,
  type GetResult,
  PayloadTooLarge,
  type PutResult,
  RangeNotSatisfiable,
  Unauthorized,
} from './chunk-store.js';
import {
  BadRequest,
  Conflict,
  Corrupt,
  type DomainError,
  InsufficientStorage,
  NotFound,
  Unavailable,
} from './errors.js';

// A connection silent for this long (no bytes either way, including while a reader holds back a GET
// stream) is given up as a dead node; long enough for a busy disk's fsync of a 64 MiB chunk.
export const nodeTimeoutMsDefault = 30_000;
/** The trailer a node ends a GET body short with when a block fails its check (storage-node/server.ts). */
export const readErrorTrailer = 'x-s3dfs-error';
// Error and JSON replies are small; a larger one is a broken or hostile peer, not worth memory.
const jsonReplyBytesMax = 4 * 1024 ** 2;

/**
 * One pool for all nodes: keep-alive saves a handshake per chunk; maxSockets bounds connections
 * per node (a gateway streaming to three nodes at once needs a few each, not hundreds).
 */
export const nodeAgent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 });

export interface NodeClientOptions {
  /** e.g. http://127.0.0.1:9100 */
  baseUrl: string;
  secret?: string;
  agent?: http.Agent;
  timeoutMs?: number;
}

export interface NodeHealth {
  status: string;
  nodeId: string;
  version: string;
  capacityBytes: number;
  usedBytes: number;
  freeBytes: number;
  chunkCount: number;
  /** The node's data dir and identity stamp (node.json's createdAt), for local reads. */
  volume?: { dataDir: string; createdAt: string };
  uptimeSec: number;
  counters: {
    reads: number;
    localReads?: number;
    localWrites?: number;
    writes: number;
    deletes: number;
    bytesIn: number;
    bytesOut: number;
    errors: number;
    corruptions: number;
  };
  latency: { readP50Ms: number; readP99Ms: number; writeP50Ms: number; writeP99Ms: number };
}

interface Call {
  method: string;
  path: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Readable | Buffer;
  timeoutMs?: number;
}

interface Reply {
  res: IncomingMessage;
  req: http.ClientRequest;
}

export class NodeClient implements ChunkStore {
  readonly baseUrl: string;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;

  constructor(private readonly opts: NodeClientOptions) {
    this.url = new URL(opts.baseUrl);
    this.baseUrl = this.url.origin;
    this.agent = opts.agent ?? nodeAgent;
    this.timeoutMs = opts.timeoutMs ?? nodeTimeoutMsDefault;
  }

  async put(id: string, body: Readable | Buffer, size: number, sha256?: string): Promise<PutResult> {
    if (Buffer.isBuffer(body) && body.length !== size) {
      throw new BadRequest(`buffer of ${body.length} bytes sent as ${size}`);
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-length': size,
      'content-type': 'application/octet-stream',
    };
    if (sha256 !== undefined) headers['x-s3dfs-sha256'] = sha256;
    const { res } = await this.call({ method: 'PUT', path: chunkPath(id), headers, body });
    const reply = await readJson<{ id: string; size: number; sha256: string }>(res);
    if (res.statusCode !== 200 && res.statusCode !== 201) throw errorFor(res, reply);
    return { id: reply.id, size: reply.size, sha256: reply.sha256, created: res.statusCode === 201 };
  }

  async get(id: string, range?: ByteRange): Promise<GetResult> {
    const headers: http.OutgoingHttpHeaders = {};
    if (range) headers.range = `bytes=${range.start}-${range.end}`;
    const { res, req } = await this.call({ method: 'GET', path: chunkPath(id), headers });
    if (res.statusCode !== 200 && res.statusCode !== 206) throw errorFor(res, await readJson(res));
    const sha256 = String(res.headers['x-s3dfs-sha256'] ?? '');
    // A node of the version before block sums sized its bodies instead of naming the chunk's size.
    let size = Number(res.headers['x-s3dfs-size'] ?? res.headers['content-length']);
    let served: ByteRange | undefined;
    if (res.statusCode === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
      if (!m) {
        req.destroy();
        throw new Unavailable(`${this.baseUrl} sent a 206 without a usable Content-Range`);
      }
      served = { start: Number(m[1]), end: Number(m[2]) };
      size = Number(m[3]);
    }
    const length = served ? served.end - served.start + 1 : size;
    if (!Number.isSafeInteger(length) || length < 0) {
      req.destroy();
      throw new Unavailable(`${this.baseUrl} sent a body of no stated length`);
    }
    return { stream: checkedBody(res, req, length, this.baseUrl), size, length, sha256, range: served };
  }

  async head(id: string): Promise<ChunkInfo | undefined> {
    const { res } = await this.call({ method: 'HEAD', path: chunkPath(id) });
    res.resume();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw errorFor(res, {});
    return {
      id,
      size: Number(res.headers['content-length']),
      sha256: String(res.headers['x-s3dfs-sha256']),
      mtimeMs: Number(res.headers['x-s3dfs-mtime-ms'] ?? 0),
    };
  }

  async delete(id: string): Promise<void> {
    const { res } = await this.call({ method: 'DELETE', path: chunkPath(id) });
    const reply = await readJson(res);
    if (res.statusCode !== 204) throw errorFor(res, reply);
  }

  async list(after?: string, limit?: number): Promise<ChunkPage> {
    const q = new URLSearchParams();
    if (after !== undefined) q.set('after', after);
    if (limit !== undefined) q.set('limit', String(limit));
    const { res } = await this.call({ method: 'GET', path: `/chunks?${q}` });
    const reply = await readJson<ChunkPage>(res);
    if (res.statusCode !== 200) throw errorFor(res, reply);
    return reply;
  }

  /** Starts a local write of chunk `id` (see FsChunkStore.beginLocalWrite): the temp file's name. */
  async beginLocalWrite(id: string, size: number): Promise<string> {
    const { reply } = await this.control<{ name?: unknown }>('/local-writes', { id, size }, [201]);
    if (typeof reply.name !== 'string') throw new Unavailable(`${this.baseUrl} named no temp file`);
    return reply.name;
  }

  /** Puts a local write's filled temp file in place as its chunk, with the writer's sha256. */
  async commitLocalWrite(name: string, sha256: string): Promise<PutResult> {
    const { reply, status } = await this.control<{ id: string; size: number; sha256: string }>(
      '/local-writes/commit',
      { name, sha256 },
      [200, 201],
    );
    return { id: reply.id, size: reply.size, sha256: reply.sha256, created: status === 201 };
  }

  async abortLocalWrite(name: string): Promise<void> {
    await this.control('/local-writes/abort', { name }, [204]);
  }

  /** Tells the node about chunk reads a gateway made from its files directly (local reads). */
  async reportLocalReads(reads: number, bytes: number): Promise<void> {
    await this.control('/local-reads', { reads, bytes }, [204]);
  }

  /** A POST of a small JSON object to one of the node's control routes. */
  private async control<T extends object>(
    path: string,
    payload: object,
    ok: number[],
  ): Promise<{ reply: T; status: number }> {
    const body = Buffer.from(JSON.stringify(payload));
    const { res } = await this.call({
      method: 'POST',
      path,
      headers: { 'content-length': body.length, 'content-type': 'application/json' },
      body,
    });
    const reply = await readJson<T>(res);
    if (!ok.includes(res.statusCode ?? 0)) throw errorFor(res, reply);
    return { reply, status: res.statusCode! };
  }

  async health(timeoutMs = this.timeoutMs): Promise<NodeHealth> {
    const { res } = await this.call({ method: 'GET', path: '/health', timeoutMs });
    const reply = await readJson<NodeHealth>(res);
    if (res.statusCode !== 200) throw errorFor(res, reply);
    return reply;
  }

  /** Sends one request; resolves once response headers arrive. Network failures → Unavailable. */
  private call(c: Call): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { ...c.headers };
      if (this.opts.secret !== undefined) headers['x-s3dfs-secret'] = this.opts.secret;
      if (c.body === undefined && c.method !== 'GET' && c.method !== 'HEAD') headers['content-length'] = 0;
      const req = http.request({
        protocol: this.url.protocol,
        hostname: this.url.hostname,
        port: this.url.port,
        method: c.method,
        path: c.path,
        headers,
        agent: this.agent,
      });
      let settled = false;
      const fail = (err: unknown, network = true) => {
        if (settled) return;
        settled = true;
        reject(network && err instanceof Error ? this.unavailable(c, err) : err);
      };
      req.setTimeout(c.timeoutMs ?? this.timeoutMs, () => {
        req.destroy(new Unavailable(`${c.method} ${this.baseUrl}${c.path}: no reply within the timeout`));
      });
      req.on('error', (err) => fail(err));
      req.on('response', (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        resolve({ res, req });
      });
      if (c.body === undefined) {
        req.end();
      } else if (Buffer.isBuffer(c.body)) {
        req.end(c.body);
      } else {
        // A failing source (the gateway's client went away) must abort the request, so the node
        // sees a short body and keeps nothing; the source's own error is the one reported.
        const source = c.body;
        const sized = exactLength(Number(headers['content-length']));
        pipeline(source, sized, req).catch((err) => {
          req.destroy();
          const own = source.errored ?? sized.errored;
          fail(own ?? err, own === null);
        });
      }
    });
  }

  private unavailable(c: Call, err: Error): Unavailable {
    if (err instanceof Unavailable) return err;
    return new Unavailable(`${c.method} ${this.baseUrl}${c.path}: ${err.message}`);
  }
}

/**
 * Passes exactly `size` bytes: a source that ends early or runs long fails here, so the request is
 * aborted rather than left hanging short of its Content-Length or spilling into the next request.
 */
function exactLength(size: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > size) cb(new BadRequest(`body is longer than the declared ${size} bytes`));
      else cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (seen === size) cb();
      else cb(new BadRequest(`body ended after ${seen} of ${size} bytes`));
    },
  });
}

function chunkPath(id: string): string {
  return `/chunk/${encodeURIComponent(id)}`;
}

/**
 * The response body, erroring unless exactly `length` bytes arrive: a node that cuts the connection
 * (a crash) or ends the body early (a block that failed its check, named in the trailer: Corrupt)
 * must never look like a complete short chunk.
 */
function checkedBody(res: IncomingMessage, req: http.ClientRequest, length: number, from: string): Readable {
  let received = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      received += chunk.length;
      if (received > length) cb(new Unavailable(`${from} sent more than ${length} bytes`));
      else cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (received === length) return cb();
      const why = `${from} ended the body after ${received} of ${length} bytes`;
      if (res.trailers[readErrorTrailer] === 'Corrupt') cb(new Corrupt(`${why}: a block failed its check`));
      else cb(new Unavailable(why));
    },
  });
  // A body nobody reads yet (a prefetched next chunk, a GET whose client left) may fail when its
  // node goes away; that must not be an unhandled 'error' that takes the whole process down. Readers
  // that consume it still see the error (async iteration and pipeline report a destroyed stream's error).
  out.on('error', () => {});
  res.pipe(out);
  res.on('error', (err) => out.destroy(new Unavailable(`${from}: ${err.message}`)));
  res.on('close', () => {
    if (!res.complete) out.destroy(new Unavailable(`${from} aborted the body after ${received} bytes`));
  });
  // A reader that gives up early frees the connection instead of leaving it half-read in the pool.
  out.on('close', () => {
    if (!res.complete) req.destroy();
  });
  return out;
}

async function readJson<T = Record<string, unknown>>(res: IncomingMessage): Promise<T> {
  const parts: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const part of res as AsyncIterable<Buffer>) {
      bytes += part.length;
      if (bytes > jsonReplyBytesMax) {
        res.destroy();
        throw new Unavailable(`reply larger than ${jsonReplyBytesMax} bytes`);
      }
      parts.push(part);
    }
  } catch (err) {
    throw err instanceof Unavailable ? err : new Unavailable(`reply cut short: ${(err as Error).message}`);
  }
  if (bytes === 0) return {} as T;
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as T;
  } catch {
    if ((res.statusCode ?? 0) >= 400) return {} as T;
    throw new Unavailable(`reply is not JSON (status ${res.statusCode})`);
  }
}

function errorFor(res: IncomingMessage, reply: object): DomainError {
  const status = res.statusCode ?? 0;
  const said = (reply as { message?: unknown }).message;
  const message = typeof said === 'string' ? said : `node answered ${status}`;
  switch (status) {
    case 400:
    case 405:
    case 411:
      return new BadRequest(message);
    case 401:
    case 403:
      return new Unauthorized(message);
    case 404:
      return new NotFound(message);
    case 409:
      return new Conflict(message);
    case 413:
      return new PayloadTooLarge(message);
    case 416:
      return new RangeNotSatisfiable(message);
    case 500:
      if ((reply as { error?: unknown }).error === 'Corrupt') return new Corrupt(message);
      return new Unavailable(message);
    case 507:
      return new InsufficientStorage(message);
    default:
      return new Unavailable(message);
  }
}

/** Convenience for callers holding a Buffer: a one-piece Readable (Readable.from(buf) would iterate bytes). */
export function bufferStream(buf: Buffer): Readable {
  return Readable.from([buf]);
}
