// Raw S3 requests for tests: exact bytes on the wire, signed with @smithy/signature-v4 (or not),
// for the malformed input the SDK never sends (bad signatures, tampered aws-chunked bodies, ...).
import { createHash, createHmac } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { expect } from 'chai';

export interface Creds {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface RawRequest {
  method: string;
  /** Already percent-encoded, starting with '/'. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Bytes actually written; default the whole body. Fewer than Content-Length aborts the request. */
  sendBytes?: number;
}

export const region = 'us-east-1';
export const emptySha256 = sha256Hex('');

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** RFC 3986 encoding, as SigV4 canonicalizes query strings. */
export function strictEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A key as a path: each segment strictly encoded, slashes kept. */
export function keyPath(bucket: string, key: string): string {
  return `/${bucket}/${key.split('/').map(strictEncode).join('/')}`;
}

export function queryString(query: Record<string, string> = {}): string {
  return Object.entries(query)
    .map(([k, v]) => (v === '' ? strictEncode(k) : `${strictEncode(k)}=${strictEncode(v)}`))
    .join('&');
}

/** Sends a request exactly as given (no signing). */
export function send(endpoint: string, req: RawRequest): Promise<RawResponse> {
  const url = new URL(endpoint);
  const q = queryString(req.query);
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path + (q ? `?${q}` : ''),
        headers: req.headers,
        agent: false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('error', reject);
        res.on('end', () => {
          const buf = Buffer.concat(parts);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: buf,
            text: buf.toString('utf8'),
          });
        });
      },
    );
    r.on('error', reject);
    if (body && req.sendBytes !== undefined && req.sendBytes < body.length) {
      // A client that dies mid-body: write part of it, then cut the connection.
      r.write(body.subarray(0, req.sendBytes), () => setTimeout(() => r.destroy(new Error('aborted')), 50));
      return;
    }
    r.end(body);
  });
}

export interface SignOptions {
  /** Defaults to UNSIGNED-PAYLOAD; 'sha256' = hex SHA-256 of the body. */
  payload?: string;
  signingDate?: Date;
  accessKey?: string;
  secretKey?: string;
}

/** Headers signed by SigV4 for `req` (host and x-amz-content-sha256 included). */
export async function signHeaders(
  c: Creds,
  req: RawRequest,
  opts: SignOptions = {},
): Promise<Record<string, string>> {
  const url = new URL(c.endpoint);
  const body = req.body === undefined ? Buffer.alloc(0) : Buffer.from(req.body);
  const payload =
    opts.payload === 'sha256'
      ? sha256Hex(body)
      : (opts.payload ?? (body.length ? 'UNSIGNED-PAYLOAD' : emptySha256));
  const request = new HttpRequest({
    method: req.method,
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: req.path,
    query: req.query ?? {},
    headers: { host: url.host, 'x-amz-content-sha256': payload, ...req.headers },
  });
  const signed = await signer(c, opts).sign(request, { signingDate: opts.signingDate });
  return signed.headers as Record<string, string>;
}

export async function signedSend(c: Creds, req: RawRequest, opts: SignOptions = {}): Promise<RawResponse> {
  return send(c.endpoint, { ...req, headers: await signHeaders(c, req, opts) });
}

function signer(c: Creds, opts: SignOptions): SignatureV4 {
  return new SignatureV4({
    service: 's3',
    region,
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
    credentials: {
      accessKeyId: opts.accessKey ?? c.accessKey,
      secretAccessKey: opts.secretKey ?? c.secretKey,
    },
  });
}

/** A presigned URL (path and query) for `req`, the way the JS presigner builds them. */
export async function presign(
  c: Creds,
  req: RawRequest,
  expiresIn: number,
  signingDate?: Date,
): Promise<RawRequest> {
  const url = new URL(c.endpoint);
  const request = new HttpRequest({
    method: req.method,
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: req.path,
    query: req.query ?? {},
    headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
  });
  const signed = await signer(c, {}).presign(request, { expiresIn, signingDate });
  return { ...req, query: signed.query as Record<string, string> };
}

/** SigV4's signing key, for chunk signatures the smithy signer does not build. */
export function signingKey(secret: string, date: string): Buffer {
  let k = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  for (const part of [region, 's3', 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
  return k;
}

/**
 * A STREAMING-AWS4-HMAC-SHA256-PAYLOAD body: each chunk signed, chained from the seed signature.
 * `tamper` flips one byte of chunk data after signing (so that chunk's signature no longer holds).
 */
export function signedChunkedBody(
  data: Buffer,
  chunkSize: number,
  sign: { key: Buffer; datetime: string; seed: string },
  tamper = false,
): Buffer {
  const scope = `${sign.datetime.slice(0, 8)}/${region}/s3/aws4_request`;
  const parts: Buffer[] = [];
  let prev = sign.seed;
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  chunks.push(Buffer.alloc(0));
  for (const chunk of chunks) {
    const sts = ['AWS4-HMAC-SHA256-PAYLOAD', sign.datetime, scope, prev, emptySha256, sha256Hex(chunk)].join(
      '\n',
    );
    const sig = createHmac('sha256', sign.key).update(sts).digest('hex');
    prev = sig;
    const sent = Buffer.from(chunk);
    if (tamper && sent.length > 0) {
      sent[0] ^= 0xff;
      tamper = false;
    }
    parts.push(
      Buffer.from(`${chunk.length.toString(16)};chunk-signature=${sig}\r\n`),
      sent,
      Buffer.from('\r\n'),
    );
  }
  return Buffer.concat(parts);
}

/** A STREAMING-UNSIGNED-PAYLOAD-TRAILER body with the given trailer lines. */
export function unsignedTrailerBody(
  data: Buffer,
  chunkSize: number,
  trailers: Record<string, string>,
): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) {
    const chunk = data.subarray(i, i + chunkSize);
    parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n'));
  for (const [k, v] of Object.entries(trailers)) parts.push(Buffer.from(`${k}:${v}\r\n`));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

/** The `<Code>` of an S3 error document, or undefined. */
export function errorCode(text: string): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
}

export function xmlField(text: string, name: string): string | undefined {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(text)?.[1];
}

/**
 * Cluster env for tests that are not about node failures: two shared cores under load can delay a
 * 200 ms health probe, and a node flapping to `down` would turn unrelated writes into 503s.
 * Healing is off so nothing repairs or moves what a test arranged.
 */
export const steadyEnv = {
  S3DFS_PROBE_TIMEOUT_MS: '2000',
  S3DFS_DOWN_AFTER_MS: '15000',
  S3DFS_HEAL_INTERVAL_MS: '0',
};

/** An S3 error answer: the status, the code, and the request id in the header and the XML alike. */
export function expectS3Error(
  res: { status: number; text: string; headers: Record<string, unknown> },
  status: number,
  code: string,
): void {
  expect(res.status, res.text).to.equal(status);
  expect(errorCode(res.text), res.text).to.equal(code);
  const id = res.headers['x-amz-request-id'];
  expect(id).to.be.a('string').and.not.equal('');
  expect(xmlField(res.text, 'RequestId')).to.equal(id);
}
