import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import Koa from 'koa';
import { newRequestId } from '../lib/ids.js';
import type { Gateway, RequestCtx } from './handlers/context.js';
import { applyCorsHeaders, preflightCors } from './handlers/cors.js';
import { dispatch } from './handlers/dispatch.js';
import { errorXml, type S3Error, toS3Error } from './s3/errors.js';
import { parseRequest, type S3Request } from './s3/router.js';
import { authenticate } from './s3/sigv4.js';

// The S3 front: one middleware parses the request into an AWS operation, authenticates it,
// dispatches it, and turns any error into S3's XML with the request id. One log line each.

export interface AppDeps extends Gateway {
  lookupSecret(accessKey: string): Promise<string | undefined>;
}

/**
 * Koa whose `listen` builds the HTTP server the S3 front needs (serveHalfClosed): main.ts and the
 * tests start the gateway with `app.listen`, so that is where the server's behaviour is set.
 */
class S3App extends Koa {
  override listen(...args: unknown[]): Server {
    const handler = this.callback();
    const server = http.createServer(handler);
    serveHalfClosed(server);
    // Node answers an Expect other than 100-continue (an empty one too) with 417 itself unless
    // someone listens here; S3 ignores such headers, so the request is served as any other.
    server.on('checkExpectation', handler);
    return server.listen(...(args as Parameters<Server['listen']>));
  }
}

export function createApp(deps: AppDeps): Koa {
  const app = new S3App();
  app.proxy = false;
  // Errors are answered in the middleware; these are late stream errors already logged there.
  app.silent = true;

  app.use(async (koa) => {
    const started = process.hrtime.bigint();
    const socket = koa.req.socket;
    // By the time a request starts, the socket has already read its headers and the first of its
    // body: bytes in count from where the connection's previous request ended.
    const readAtStart = readUpTo.get(socket) ?? 0;
    const writtenAtStart = socket.bytesWritten;
    const requestId = newRequestId();
    const log = deps.log.child({ requestId });
    koa.set('x-amz-request-id', requestId);
    koa.set('x-amz-id-2', requestId);
    koa.set('Server', 's3dfs');
    const rawUrl = koa.req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
    let op = 'Unknown';
    let subresource: string | undefined;
    let s3req: S3Request | undefined;
    // Set before the first await: the connection's clientError handler may need it any time.
    reading.set(koa.req.socket, { req: koa.req, res: koa.res });
    // Set only when the client resets or the connection dies, not when the server destroys a
    // request it refuses; a client that half-closed mid-body is answered (serveHalfClosed).
    let clientGone = false;
    koa.req.once('aborted', () => {
      clientGone = true;
    });
    // Logged once the response is over, not when the handler returns: Koa streams the body after
    // that, and a GET whose body fails mid-stream is then logged as the cut it was. Listened for
    // from the start: a client that resets mid-PUT closes the response while the handler still runs.
    koa.res.once('close', () => {
      readUpTo.set(socket, socket.bytesRead);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const cut = !koa.res.writableFinished;
      const line = {
        op,
        method: koa.method,
        status: clientGone && !koa.res.headersSent ? 499 : koa.res.statusCode,
        ms: Math.round(ms * 10) / 10,
        // Socket counters, headers included (a pipelined next request's first bytes may count here).
        bytesIn: socket.bytesRead - readAtStart,
        bytesOut: socket.bytesWritten - writtenAtStart,
        ...(cut ? { cut: true } : {}),
        ...(subresource !== undefined ? { subresource } : {}),
      };
      // A 501 is a client asking for what s3dfs does not do, not a server failure: info, like a 4xx.
      if (line.status >= 500 && line.status !== 501 && !clientGone) log.error(line, 'request');
      // By either side: a client gone mid-download, or a body storage could not finish.
      else if (cut) log.warn(line, 'request cut short');
      else log.info(line, 'request');
    });
    try {
      s3req = parseRequest(
        { method: koa.method, rawPath, rawQuery, headers: koa.req.headers, host: koa.req.headers.host },
        { domain: deps.config.domain },
      );
      op = s3req.op;
      if (s3req.op === 'NotImplemented') subresource = s3req.subresource;
      // A preflight carries no credentials: the bucket's CORS rules alone answer it.
      if (s3req.op === 'PreflightCors') await preflightCors(deps, koa, s3req.bucket);
      else {
        const auth = await authenticate(
          { method: koa.method, rawPath, rawQuery, headers: koa.req.headers, rawHeaders: koa.req.rawHeaders },
          { lookupSecret: deps.lookupSecret, region: deps.config.region, domain: deps.config.domain },
        );
        const r: RequestCtx = {
          gw: deps,
          koa,
          auth,
          headers: koa.req.headers,
          query: s3req.query,
          requestId,
          log,
        };
        await dispatch(r, s3req);
      }
    } catch (err) {
      // A client that closed or reset its connection mid-request has nobody left to answer, and
      // what failed is not the server: logged as nginx's 499, not as an internal error.
      if (!clientGone) {
        const s3err = toS3Error(err, notFoundCode(s3req));
        if (s3err.code === 'InternalError') log.error({ err }, 'internal error');
        respondError(koa, s3err, rawPath, requestId);
        // The body was not (fully) read; drain it so a keep-alive connection stays usable, but
        // give up on large bodies rather than reading gigabytes we will not store.
        drainOrClose(koa);
      }
    } finally {
      // Errors too: a page can then read why its request failed. A preflight set its own.
      if (s3req && 'bucket' in s3req && s3req.op !== 'PreflightCors' && !clientGone)
        await applyCorsHeaders(deps, koa, s3req.bucket);
    }
  });
  return app;
}

function notFoundCode(req: S3Request | undefined) {
  if (!req || !('key' in req) || req.key === undefined) return 'NoSuchBucket' as const;
  return 'NoSuchKey' as const;
}

/**
 * Headers an error response keeps; whatever the handler set before failing (ETag, checksums…) goes.
 * Connection stays: it is about the connection (serveHalfClosed closes one whose body was cut).
 */
const errorKeepsHeaders = new Set(['x-amz-request-id', 'x-amz-id-2', 'server', 'connection']);

function respondError(koa: Koa.Context, err: S3Error, resource: string, requestId: string): void {
  for (const name of Object.keys(koa.response.headers)) if (!errorKeepsHeaders.has(name)) koa.remove(name);
  koa.status = err.status;
  for (const [k, v] of Object.entries(err.headers ?? {})) koa.set(k, v);
  if (err.code === 'ServiceUnavailable' || err.code === 'SlowDown') koa.set('Retry-After', '1');
  // HEAD responses and 304 carry no body (clients read the status alone).
  if (koa.method === 'HEAD' || err.status === 304) {
    koa.body = null;
    koa.status = err.status;
    return;
  }
  koa.set('Content-Type', 'application/xml');
  koa.body = errorXml(err, decodeSafe(resource), requestId);
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Bodies left unread after an error: read up to this much to keep the connection, else close. */
const drainBytesMax = 1024 * 1024;

function drainOrClose(koa: Koa.Context): void {
  const req = koa.req;
  if (req.readableEnded || req.complete) return;
  // A handler may have piped the body into a decoder that its error tore down: the pipe then pauses
  // the request (unpipe() pauses), the unread rest stays on the socket, and a keep-alive client's
  // next request on it hangs behind it. Detach those pipes so the resume() below really drains.
  req.unpipe();
  const length = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(length) && length <= drainBytesMax) {
    req.resume();
    return;
  }
  koa.set('Connection', 'close');
  req.resume();
  koa.res.once('finish', () => req.destroy());
}

// ---- the HTTP server --------------------------------------------------------------------------

/** Where each connection's socket had read to when its last request ended (request log). */
const readUpTo = new WeakMap<Duplex, number>();

/** The request last started on each client connection, for the server's clientError handler. */
const reading = new WeakMap<Duplex, { req: IncomingMessage; res: ServerResponse }>();

/**
 * A client that half-closes (shutdown of its write side) still waits for the answer: in HTTP/1.1 a
 * half-close neither ends a request nor means the client lost interest (RFC 9112, message body
 * length; https://github.com/httpwg/http-core/pull/431). Node's server
 * by default drops the answer of a whole request followed by a half-close (httpAllowHalfOpen, the
 * squid-like switch its constructor sets to false), and when the half-close cuts a body short its
 * parser fails with HPE_INVALID_EOF_STATE and the default clientError handling writes a bare 400
 * and destroys the socket. Here the cut body instead just ends early, so the handler reading it
 * finds fewer bytes than declared and fails with IncompleteBody before committing anything (the
 * same length checks as for any short body), and the client reads S3's XML error; the connection
 * closes after that answer, its parser being spent. A reset (ECONNRESET) still destroys the
 * connection, and the request logs as 499. Every other client error is handled as Node would.
 */
function serveHalfClosed(server: Server): void {
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const current = reading.get(socket);
    if (
      err.code === 'HPE_INVALID_EOF_STATE' &&
      socket.writable &&
      current !== undefined &&
      !current.req.complete &&
      !current.res.headersSent
    ) {
      current.res.setHeader('Connection', 'close');
      // No more bytes will come: end the body here, short of its length. Marked complete because
      // Node tears down the socket (our answer with it) when an incomplete request ends.
      current.req.complete = true;
      current.req.push(null);
      return;
    }
    nodeClientError(err, socket, current?.res);
  });
}

/** What Node's server answers to a client error when nobody listens for clientError (Node 20). */
const nodeClientErrorStatus: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

function nodeClientError(err: NodeJS.ErrnoException, socket: Duplex, res: ServerResponse | undefined): void {
  // A bare status only where it cannot corrupt an answer already under way.
  if (socket.writable && (res === undefined || res.writableFinished || !res.headersSent)) {
    const status = nodeClientErrorStatus[err.code ?? ''] ?? '400 Bad Request';
    socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
  }
  socket.destroy(err);
}
