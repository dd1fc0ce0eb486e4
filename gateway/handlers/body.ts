import { pipeline, Readable } from 'node:stream';
import {
  type ChecksumAlgorithm,
  ChecksumVerifier,
  checksumFromHeaders,
  parseContentMd5,
} from '../s3/checksums.js';
import { chunkedDecoderFor, storedContentEncoding } from '../s3/chunked.js';
import { S3Error } from '../s3/errors.js';
import { readBodyBounded, tagsFromHeader } from '../s3/xml.js';
import type { ObjectMeta, ObjectRow } from '../storage/meta.js';
import type { Incoming, Stored } from '../storage/object-layer.js';
import { header, type RequestCtx } from './context.js';

// Request bodies and what describes them: aws-chunked framing removed, every digest the request
// asserts (Content-MD5, x-amz-content-sha256, x-amz-checksum-* in a header or trailer) verified
// while the bytes stream to storage (storage/object-layer.ts), which commits nothing unless the
// whole body arrived and every digest held.

/** S3's single-request object size limit; bigger objects go through multipart. */
export const putObjectBytesMax = 5 * 1024 ** 3;

/** A body on its way to storage, with the digests computed of it as it passes. */
export interface Body extends Incoming {
  verifier: ChecksumVerifier;
  /**
   * The asserted x-amz-content-sha256 the verifier leaves to the caller: a body that is exactly
   * one chunk has the chunk's SHA-256 (computed once, by the writer) as its own.
   */
  sha256Deferred?: string;
}

/** What a stored body's digests say: its ETag (MD5) and its checksum. */
export interface Digests {
  md5Hex: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

/**
 * The decoded, verifying body of this request and its declared decoded length. `inline`: whether
 * storage keeps a body this size in the metadata row (it then has no chunk SHA-256 to defer to).
 */
function openBody(r: RequestCtx, algorithm?: ChecksumAlgorithm, inline = (_size: number) => false): Body {
  const h = r.headers;
  const decoder = chunkedDecoderFor(r.auth.payload, r.auth.signing, h);
  const rawLength = decoder ? h['x-amz-decoded-content-length'] : h['content-length'];
  if (rawLength === undefined) throw new S3Error('MissingContentLength');
  const size = Number(rawLength);
  if (!Number.isSafeInteger(size) || size < 0) throw new S3Error('MissingContentLength');
  const asserted = checksumFromHeaders(h);
  const md5 = header(h, 'content-md5');
  const trailerName = asserted?.location === 'trailer' ? asserted.name : undefined;
  const payloadSha256 = r.auth.payload.mode === 'sha256' ? r.auth.payload.sha256 : undefined;
  const sha256Deferred =
    payloadSha256 !== undefined && !inline(size) && size > 0 && size <= r.gw.config.chunkSizeBytes
      ? payloadSha256
      : undefined;
  const verifier = new ChecksumVerifier({
    algorithm: asserted?.algorithm ?? algorithm,
    expected:
      asserted?.location === 'header'
        ? asserted.value
        : trailerName
          ? () => decoder?.trailers.get(trailerName)
          : undefined,
    sha256Hex: sha256Deferred === undefined ? payloadSha256 : undefined,
    md5Hex: md5 !== undefined ? parseContentMd5(md5) : undefined,
  });
  const onError = () => {};
  // The request itself stays out of pipeline(): on any failure pipeline would destroy it, and a
  // destroyed request whose body is still arriving makes Node stop reading its keep-alive socket,
  // so the client's next request on it hangs. It is only piped; app.ts drains or closes it after an
  // error, and a client abort still fails the body stream.
  const req = r.koa.req;
  const first = decoder ?? verifier;
  req.on('error', (err) => first.destroy(err));
  req.pipe(first);
  const stream = decoder ? pipeline(decoder, verifier, onError) : verifier;
  return { stream, size, verifier, sha256Deferred };
}

/** The body of a PutObject (`partNumber` unset) or UploadPart, refused past `maxBytes`. */
export function requestBody(
  r: RequestCtx,
  opts: { maxBytes: number; partNumber?: number; algorithm?: ChecksumAlgorithm },
): Body {
  const inline = (size: number) => opts.partNumber === undefined && r.gw.store.inlines(size);
  const body = openBody(r, opts.algorithm, inline);
  if (body.size > opts.maxBytes) {
    throw new S3Error('EntityTooLarge', undefined, {
      extra: { ProposedSize: String(body.size), MaxSizeAllowed: String(opts.maxBytes) },
    });
  }
  return body;
}

/** Bytes [start, end] of a copy source as a body, with the digests `algorithm` asks for. */
export async function sourceBody(
  r: RequestCtx,
  src: ObjectRow,
  range: { start: number; end: number },
  algorithm: ChecksumAlgorithm | undefined,
): Promise<Body> {
  const verifier = new ChecksumVerifier({ algorithm });
  const source = await r.gw.store.openRange(src, range.start, range.end, r.log);
  // pipeline, not pipe: a source that fails (every replica bad) must fail the copy, not the process.
  const stream = pipeline(Buffer.isBuffer(source) ? Readable.from([source]) : source, verifier, () => {});
  return { stream, size: range.end - range.start + 1, verifier };
}

/**
 * The digests of a body once stored; a deferred x-amz-content-sha256 is checked against the
 * chunk's here (throwing keeps storage from committing and removes the chunk).
 */
export function digestsOf(body: Body, stored: Stored): Digests {
  if (body.sha256Deferred !== undefined && stored.sha256 !== body.sha256Deferred.toLowerCase()) {
    throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
      extra: {
        ClientComputedContentSHA256: body.sha256Deferred,
        S3ComputedContentSHA256: stored.sha256 ?? '',
      },
    });
  }
  const { md5Hex, checksum } = body.verifier.result;
  return { md5Hex: md5Hex!, checksum };
}

/** A small request body (XML), decoded and verified like any other, and bounded. */
export async function readSmallBody(r: RequestCtx, maxBytes: number): Promise<Buffer> {
  const h = r.headers;
  if (h['content-length'] === undefined && h['transfer-encoding'] === undefined) return Buffer.alloc(0);
  const body = openBody(r);
  const buf = await readBodyBounded(body.stream, maxBytes);
  // A client that half-closed mid-body (app.ts) ends the request early: no XML error for what is
  // a short body. (An aws-chunked body's decoder checks its decoded length itself.)
  if (buf.length < body.size)
    throw new S3Error('IncompleteBody', `The body ended after ${buf.length} of ${body.size} bytes.`);
  return buf;
}

/** S3 limits user metadata (x-amz-meta-* names and values) to 2 KB per object. */
const userMetaBytesMax = 2048;

export function userMetaFrom(r: RequestCtx): Record<string, string> {
  const meta: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(r.headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const key = name.slice('x-amz-meta-'.length);
    const v = Array.isArray(value) ? value.join(',') : value;
    meta[key] = v;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(v);
  }
  if (bytes > userMetaBytesMax) {
    throw new S3Error('MetadataTooLarge', undefined, {
      extra: { Size: String(bytes), MaxSizeAllowed: String(userMetaBytesMax) },
    });
  }
  return meta;
}

/** Headers that describe the object (stored and returned on GET/HEAD). */
export function contentMetaFrom(r: RequestCtx): Omit<ObjectMeta, 'size' | 'etag'> {
  const h = r.headers;
  return {
    contentType: header(h, 'content-type') ?? 'binary/octet-stream',
    contentEncoding: storedContentEncoding(header(h, 'content-encoding')),
    contentDisposition: header(h, 'content-disposition'),
    contentLanguage: header(h, 'content-language'),
    cacheControl: header(h, 'cache-control'),
    expires: header(h, 'expires'),
    userMeta: userMetaFrom(r),
    tags: tagsFromHeader(header(h, 'x-amz-tagging')),
  };
}
