import { pipeline, Readable } from 'node:stream';
import { readExactly } from '../../lib/streams.js';
import {
  type ChecksumAlgorithm,
  ChecksumVerifier,
  checksumHeader,
  parseChecksumAlgorithm,
} from '../s3/checksums.js';
import { storedContentEncoding } from '../s3/chunked.js';
import { S3Error } from '../s3/errors.js';
import { refuseNul, type S3Request } from '../s3/router.js';
import {
  accessControlPolicyXml,
  copyObjectResultXml,
  type DeleteOutcome,
  deleteObjectsBodyBytesMax,
  deleteResultXml,
  emptyTaggingXml,
  parseDeleteObjects,
} from '../s3/xml.js';
import {
  etagMatches,
  type ObjectMeta,
  type ObjectRow,
  PreconditionFailed,
  type WriteConditions,
} from '../storage/meta.js';
import { discardChunks, writeChunks } from '../storage/writer.js';
import { requireBucket, sendXml } from './buckets.js';
import { header, ownerOf, type RequestCtx } from './context.js';
import { type Ingested, ingest, putObjectBytesMax, readSmallBody, userMetaFrom } from './ingest.js';
import { objectBytes, parseHttpDate, quote } from './read.js';

// PutObject, CopyObject, DeleteObject(s). https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html

type Copy = Extract<S3Request, { op: 'CopyObject' }>;

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
  };
}

/** If-None-Match: * and If-Match on writes (conditional PUT, atomic in the commit transaction). */
export function writeConditions(r: RequestCtx): WriteConditions {
  const ifNoneMatch = header(r.headers, 'if-none-match');
  const ifMatch = header(r.headers, 'if-match');
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw new S3Error('NotImplemented', 'If-None-Match on writes supports only *.');
  }
  return { ifNoneMatch: ifNoneMatch !== undefined, ifMatch };
}

export async function putObject(r: RequestCtx, bucket: string, key: string): Promise<void> {
  await requireBucket(r, bucket);
  const meta = contentMetaFrom(r);
  const cond = writeConditions(r);
  const data = await ingest(r, { maxBytes: putObjectBytesMax });
  const obj = await commit(r, bucket, key, data, { ...meta, size: data.size, etag: data.md5Hex }, cond);
  r.koa.status = 200;
  r.koa.set('ETag', quote(obj.etag));
  if (data.checksum) {
    r.koa.set(checksumHeader[data.checksum.algorithm], data.checksum.value);
    r.koa.set('x-amz-checksum-type', 'FULL_OBJECT');
  }
  r.koa.body = Buffer.alloc(0);
}

/** Makes written chunks visible as the object; on failure their bytes are removed again. */
async function commit(
  r: RequestCtx,
  bucket: string,
  key: string,
  data: Ingested,
  meta: ObjectMeta,
  cond: WriteConditions,
): Promise<ObjectRow> {
  const full: ObjectMeta = {
    ...meta,
    checksumAlgorithm: data.checksum?.algorithm ?? null,
    checksumValue: data.checksum?.value ?? null,
    checksumType: data.checksum ? 'FULL_OBJECT' : null,
    inlineData: data.inline ?? null,
  };
  try {
    return await r.gw.meta.commitObject(bucket, key, full, data.chunks, cond);
  } catch (err) {
    discardChunks(r.gw.cluster, r.gw.intents, data.chunks);
    if (err instanceof PreconditionFailed)
      throw new S3Error('PreconditionFailed', undefined, {
        extra: { Condition: cond.ifNoneMatch ? 'If-None-Match' : 'If-Match' },
      });
    if (err instanceof Error && err.message === 'NoSuchBucket') throw new S3Error('NoSuchBucket');
    throw err;
  }
}

export async function deleteObject(
  r: RequestCtx,
  bucket: string,
  key: string,
  versionId: string | undefined,
): Promise<void> {
  await requireBucket(r, bucket);
  currentVersionOnly(versionId);
  await deleteOne(r, bucket, key, header(r.headers, 'if-match'));
  r.koa.status = 204;
  r.koa.body = null;
}

/**
 * Buckets are never versioned: every object's only version is `null`, which names the current one.
 * Any other version id is refused rather than ignored — ignoring it would make "delete that old
 * version" delete the current object.
 */
export function currentVersionOnly(versionId: string | undefined): void {
  if (versionId === undefined || versionId === 'null') return;
  throw new S3Error(
    'InvalidArgument',
    versionId === '' ? 'Version id cannot be the empty string' : 'Invalid version id specified',
    { extra: { ArgumentName: 'versionId', ArgumentValue: versionId } },
  );
}

/**
 * Deletes the current version of a key; with `ifMatch` (If-Match, or a DeleteObjects entry's ETag)
 * only while its ETag matches: 404 when there is none, 412 when it differs or changed meanwhile.
 */
async function deleteOne(r: RequestCtx, bucket: string, key: string, ifMatch: string | undefined) {
  if (ifMatch === undefined) {
    await r.gw.meta.deleteObject(bucket, key);
    return;
  }
  const obj = await r.gw.meta.getObject(bucket, key);
  if (!obj) throw new S3Error('NoSuchKey', undefined, { extra: { Key: key } });
  if (!etagMatches(ifMatch, obj.etag) || !(await r.gw.meta.removeObject(obj.id, 'deleted')))
    throw new S3Error('PreconditionFailed', undefined, { extra: { Condition: 'If-Match' } });
}

/** Keys deleted at once by DeleteObjects: each is its own small transaction. */
const deleteConcurrency = 8;

export async function deleteObjects(r: RequestCtx, bucket: string): Promise<void> {
  await requireBucket(r, bucket);
  // Content-MD5 is optional (new SDKs send a CRC instead); whatever is sent is verified.
  const body = await readSmallBody(r, deleteObjectsBodyBytesMax);
  const req = await parseDeleteObjects(body);
  const outcome: DeleteOutcome = { deleted: [], errors: [] };
  const queue = [...req.objects];
  const worker = async () => {
    for (let o = queue.shift(); o; o = queue.shift()) {
      try {
        refuseNul(o.key, 'Key');
        currentVersionOnly(o.versionId);
        await deleteOne(r, bucket, o.key, o.etag);
        outcome.deleted.push({ key: o.key, versionId: o.versionId });
      } catch (err) {
        if (err instanceof S3Error) {
          outcome.errors.push({ key: o.key, versionId: o.versionId, code: err.code, message: err.message });
          continue;
        }
        r.log.error({ err, key: o.key }, 'delete failed');
        outcome.errors.push({
          key: o.key,
          versionId: o.versionId,
          code: 'InternalError',
          message: 'We encountered an internal error. Please try again.',
        });
      }
    }
  };
  await Promise.all(Array.from({ length: deleteConcurrency }, worker));
  const order = new Map(req.objects.map((o, i) => [o.key, i]));
  outcome.deleted.sort((a, b) => order.get(a.key)! - order.get(b.key)!);
  outcome.errors.sort((a, b) => order.get(a.key)! - order.get(b.key)!);
  sendXml(r, deleteResultXml(outcome, req.quiet));
}

export async function copyObject(r: RequestCtx, req: Copy): Promise<void> {
  await requireBucket(r, req.bucket);
  const src = await copySource(r, req.source);
  const directive = (header(r.headers, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.', {
      extra: { ArgumentName: 'x-amz-metadata-directive', ArgumentValue: directive },
    });
  }
  if (req.source.bucket === req.bucket && req.source.key === req.key && directive !== 'REPLACE') {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const requested = header(r.headers, 'x-amz-checksum-algorithm');
  const algorithm: ChecksumAlgorithm | undefined = requested
    ? parseChecksumAlgorithm(requested)
    : src.checksumType === 'FULL_OBJECT'
      ? ((src.checksumAlgorithm ?? undefined) as ChecksumAlgorithm | undefined)
      : undefined;
  const meta =
    directive === 'REPLACE'
      ? contentMetaFrom(r)
      : {
          contentType: src.contentType,
          contentEncoding: src.contentEncoding,
          contentDisposition: src.contentDisposition,
          contentLanguage: src.contentLanguage,
          cacheControl: src.cacheControl,
          expires: src.expires,
          userMeta: src.userMeta,
        };
  const data = await copyData(r, src, algorithm);
  const obj = await commit(
    r,
    req.bucket,
    req.key,
    data,
    { ...meta, size: data.size, etag: data.md5Hex },
    writeConditions(r),
  );
  sendXml(
    r,
    copyObjectResultXml({
      etag: obj.etag,
      lastModified: obj.lastModified,
      checksums: data.checksum ? { [data.checksum.algorithm]: data.checksum.value } : undefined,
    }),
  );
}

/** The source object of a copy, after x-amz-copy-source-if-* conditions. */
export async function copySource(
  r: RequestCtx,
  source: { bucket: string; key: string; versionId?: string },
): Promise<ObjectRow> {
  currentVersionOnly(source.versionId);
  const src = await r.gw.meta.getObject(source.bucket, source.key, true);
  if (!src) {
    if (!(await r.gw.meta.getBucket(source.bucket)))
      throw new S3Error('NoSuchBucket', undefined, { extra: { BucketName: source.bucket } });
    throw new S3Error('NoSuchKey', undefined, { extra: { Key: source.key } });
  }
  const h = r.headers;
  const ifMatch = header(h, 'x-amz-copy-source-if-match');
  const ifNoneMatch = header(h, 'x-amz-copy-source-if-none-match');
  const ifModifiedSince = parseHttpDate(header(h, 'x-amz-copy-source-if-modified-since'));
  const ifUnmodifiedSince = parseHttpDate(header(h, 'x-amz-copy-source-if-unmodified-since'));
  const modified = Math.floor(src.lastModified.getTime() / 1000) * 1000;
  // S3's documented precedence: if-match true + if-unmodified-since false → copy;
  // if-none-match false + if-modified-since true → 412.
  if (
    ifMatch !== undefined
      ? !etagMatches(ifMatch, src.etag)
      : ifUnmodifiedSince !== undefined && modified > ifUnmodifiedSince
  ) {
    throw new S3Error('PreconditionFailed', undefined, {
      extra: { Condition: 'x-amz-copy-source-If-Match' },
    });
  }
  if (
    ifNoneMatch !== undefined
      ? etagMatches(ifNoneMatch, src.etag)
      : ifModifiedSince !== undefined && modified <= ifModifiedSince
  ) {
    throw new S3Error('PreconditionFailed', undefined, {
      extra: { Condition: 'x-amz-copy-source-If-None-Match' },
    });
  }
  return src;
}

/**
 * Streams a byte range of an object into new chunks (verified end to end by chunk SHA-256), or
 * into an inline copy when it is small and not a part.
 */
export async function copyData(
  r: RequestCtx,
  src: ObjectRow,
  algorithm: ChecksumAlgorithm | undefined,
  range: { start: number; end: number } = { start: 0, end: src.size - 1 },
  partNumber?: number,
): Promise<Ingested> {
  const size = range.end - range.start + 1;
  const verifier = new ChecksumVerifier({ algorithm });
  const source = size > 0 ? await objectBytes(r, src, range.start, range.end) : Buffer.alloc(0);
  // pipeline, not pipe: a source that fails (every replica bad) must fail the copy, not the process.
  const body = pipeline(Buffer.isBuffer(source) ? Readable.from([source]) : source, verifier, () => {});
  const { config } = r.gw;
  if (partNumber === undefined && size > 0 && size <= config.inlineMaxBytes) {
    const inline = await readExactly(body, size);
    const { md5Hex, checksum } = verifier.result;
    return { size, md5Hex: md5Hex!, chunks: [], inline, checksum };
  }
  const written = await writeChunks(body, r.gw.cluster, {
    size,
    chunkSize: config.chunkSizeBytes,
    replication: config.replication,
    writeQuorum: config.writeQuorum,
    replicaStallMs: config.replicaStallMs,
    partNumber,
    intents: r.gw.intents,
  });
  return {
    size,
    md5Hex: verifier.result.md5Hex!,
    chunks: written.chunks,
    checksum: verifier.result.checksum,
  };
}

export async function getObjectAcl(r: RequestCtx, bucket: string, key: string): Promise<void> {
  await requireObject(r, bucket, key);
  sendXml(r, accessControlPolicyXml(ownerOf(r)));
}

export async function getObjectTagging(r: RequestCtx, bucket: string, key: string): Promise<void> {
  await requireObject(r, bucket, key);
  sendXml(r, emptyTaggingXml());
}

async function requireObject(r: RequestCtx, bucket: string, key: string): Promise<ObjectRow> {
  await requireBucket(r, bucket);
  const obj = await r.gw.meta.getObject(bucket, key);
  if (!obj) throw new S3Error('NoSuchKey', undefined, { extra: { Key: key } });
  return obj;
}
