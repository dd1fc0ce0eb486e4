import { pipeline, type Readable } from 'node:stream';
import { IncompleteBody } from '../../lib/errors.js';
import { readExactly } from '../../lib/streams.js';
import {
  type ChecksumAlgorithm,
  ChecksumVerifier,
  checksumFromHeaders,
  parseContentMd5,
} from '../s3/checksums.js';
import { chunkedDecoderFor } from '../s3/chunked.js';
import { S3Error } from '../s3/errors.js';
import { readBodyBounded } from '../s3/xml.js';
import type { ChunkRecord } from '../storage/meta.js';
import { discardChunks, writeChunks } from '../storage/writer.js';
import { header, type RequestCtx } from './context.js';

// Request bodies: aws-chunked framing removed, every digest the request asserts (Content-MD5,
// x-amz-content-sha256, x-amz-checksum-* in a header or trailer) verified while streaming.
// Nothing is committed unless the whole body arrived and every digest held.

/** S3's single-request object size limit; bigger objects go through multipart. */
export const putObjectBytesMax = 5 * 1024 ** 3;

export interface Ingested {
  size: number;
  md5Hex: string;
  /** Where the bytes went: chunks on the storage nodes, or (small objects) inline in the row. */
  chunks: ChunkRecord[];
  inline?: Buffer;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

interface Body {
  stream: Readable;
  size: number;
  /** Small enough to be kept in the metadata row (see migration 004). */
  inline: boolean;
  verifier: ChecksumVerifier;
  /**
   * The asserted x-amz-content-sha256 the verifier leaves to the caller: a body that is exactly
   * one chunk has the chunk's SHA-256 (computed once, by the writer) as its own.
   */
  sha256Deferred?: string;
}

/** The decoded, verifying body of this request and its declared decoded length. */
function openBody(
  r: RequestCtx,
  algorithm?: ChecksumAlgorithm,
  store: { chunkSize: number; inlineMax: number } = { chunkSize: 0, inlineMax: 0 },
): Body {
  const h = r.headers;
  const decoder = chunkedDecoderFor(r.auth.payload, r.auth.signing, h);
  const rawLength = decoder ? h['x-amz-decoded-content-length'] : h['content-length'];
  if (rawLength === undefined) throw new S3Error('MissingContentLength');
  const size = Number(rawLength);
  if (!Number.isSafeInteger(size) || size < 0) throw new S3Error('MissingContentLength');
  const inline = size > 0 && size <= store.inlineMax;
  const asserted = checksumFromHeaders(h);
  const md5 = header(h, 'content-md5');
  const trailerName = asserted?.location === 'trailer' ? asserted.name : undefined;
  const payloadSha256 = r.auth.payload.mode === 'sha256' ? r.auth.payload.sha256 : undefined;
  // An inline body has no chunk SHA-256 to compare with: the verifier checks it itself.
  const sha256Deferred =
    payloadSha256 !== undefined && !inline && size > 0 && size <= store.chunkSize ? payloadSha256 : undefined;
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
  return { stream, size, inline, verifier, sha256Deferred };
}

/**
 * Streams the body into chunks on the storage nodes, or reads a small object's body whole to be
 * kept inline (never a part: parts are chunk boundaries); throws before anything is committed.
 */
export async function ingest(
  r: RequestCtx,
  opts: { maxBytes: number; partNumber?: number; algorithm?: ChecksumAlgorithm },
): Promise<Ingested> {
  const { config } = r.gw;
  const body = openBody(r, opts.algorithm, {
    chunkSize: config.chunkSizeBytes,
    inlineMax: opts.partNumber === undefined ? config.inlineMaxBytes : 0,
  });
  if (body.size > opts.maxBytes) {
    throw new S3Error('EntityTooLarge', undefined, {
      extra: { ProposedSize: String(body.size), MaxSizeAllowed: String(opts.maxBytes) },
    });
  }
  try {
    if (body.inline) {
      const data = await readExactly(body.stream, body.size);
      const result = body.verifier.result;
      return {
        size: data.length,
        md5Hex: result.md5Hex!,
        chunks: [],
        inline: data,
        checksum: result.checksum,
      };
    }
    const written = await writeChunks(body.stream, r.gw.cluster, {
      size: body.size,
      chunkSize: config.chunkSizeBytes,
      replication: config.replication,
      writeQuorum: config.writeQuorum,
      replicaStallMs: config.replicaStallMs,
      partNumber: opts.partNumber,
      intents: r.gw.intents,
    });
    const result = body.verifier.result;
    const computed = written.chunks.length === 1 ? written.chunks[0].sha256 : undefined;
    if (body.sha256Deferred !== undefined && computed !== body.sha256Deferred.toLowerCase()) {
      // Nothing is committed yet: the stored chunks go, as for any failed write.
      discardChunks(r.gw.cluster, r.gw.intents, written.chunks);
      throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
        extra: { ClientComputedContentSHA256: body.sha256Deferred, S3ComputedContentSHA256: computed ?? '' },
      });
    }
    return { size: written.size, md5Hex: result.md5Hex!, chunks: written.chunks, checksum: result.checksum };
  } catch (err) {
    if (err instanceof IncompleteBody) throw new S3Error('IncompleteBody', undefined, { cause: err });
    throw err;
  }
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
