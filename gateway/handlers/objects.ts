import { NoSuchKey, PreconditionFailed } from '../../lib/errors.js';
import { type ChecksumAlgorithm, checksumHeader, parseChecksumAlgorithm } from '../s3/checksums.js';
import { internalErrorMessage, S3Error, toS3Error } from '../s3/errors.js';
import { refuseNul, type S3Request } from '../s3/router.js';
import {
  accessControlPolicyXml,
  copyObjectResultXml,
  type DeleteOutcome,
  deleteObjectsBodyBytesMax,
  deleteResultXml,
  objectAttributesXml,
  parseDeleteObjects,
  tagsFromHeader,
} from '../s3/xml.js';
import { etagMatches, type ObjectMeta, type ObjectRow } from '../storage/meta.js';
import {
  type Body,
  contentMetaFrom,
  type Digests,
  digestsOf,
  putObjectBytesMax,
  readSmallBody,
  requestBody,
  sourceBody,
} from './body.js';
import { copySource, writeConditions } from './conditions.js';
import {
  currentVersionOnly,
  header,
  ownerOf,
  quote,
  type RequestCtx,
  requireBucket,
  sendXml,
} from './context.js';

// PutObject, CopyObject, DeleteObject(s). https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html

type Copy = Extract<S3Request, { op: 'CopyObject' }>;

export async function putObject(r: RequestCtx, bucket: string, key: string): Promise<void> {
  await requireBucket(r, bucket);
  const meta = contentMetaFrom(r);
  const cond = writeConditions(r);
  const body = requestBody(r, { maxBytes: putObjectBytesMax });
  const { obj, digests } = await put(r, bucket, key, body, meta, cond);
  r.koa.status = 200;
  r.koa.set('ETag', quote(obj.etag));
  if (digests.checksum) {
    r.koa.set(checksumHeader[digests.checksum.algorithm], digests.checksum.value);
    r.koa.set('x-amz-checksum-type', 'FULL_OBJECT');
  }
  r.koa.body = Buffer.alloc(0);
}

/** Stores `body` as bucket/key, described by `meta` and the digests taken of it on the way. */
async function put(
  r: RequestCtx,
  bucket: string,
  key: string,
  body: Body,
  meta: Omit<ObjectMeta, 'size' | 'etag'>,
  cond: ReturnType<typeof writeConditions>,
): Promise<{ obj: ObjectRow; digests: Digests }> {
  let digests: Digests | undefined;
  const obj = await r.gw.store.putObject(
    bucket,
    key,
    body,
    (stored) => {
      digests = digestsOf(body, stored);
      return {
        ...meta,
        size: stored.size,
        etag: digests.md5Hex,
        checksumAlgorithm: digests.checksum?.algorithm ?? null,
        checksumValue: digests.checksum?.value ?? null,
        checksumType: digests.checksum ? 'FULL_OBJECT' : null,
      };
    },
    cond,
  );
  return { obj, digests: digests! };
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
 * Deletes the current version of a key; with `ifMatch` (If-Match, or a DeleteObjects entry's ETag)
 * only while its ETag matches: 404 when there is none, 412 when it differs or changed meanwhile.
 */
async function deleteOne(r: RequestCtx, bucket: string, key: string, ifMatch: string | undefined) {
  if (ifMatch === undefined) {
    await r.gw.meta.deleteObject(bucket, key);
    return;
  }
  const obj = await r.gw.meta.getObject(bucket, key);
  if (!obj) throw new NoSuchKey(key);
  if (!etagMatches(ifMatch, obj.etag) || !(await r.gw.meta.removeObject(obj.id, 'deleted')))
    throw new PreconditionFailed('If-Match');
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
        const e = toS3Error(err);
        if (e.code === 'InternalError') r.log.error({ err, key: o.key }, 'delete failed');
        outcome.errors.push({
          key: o.key,
          versionId: o.versionId,
          code: e.code,
          message: e.code === 'InternalError' ? internalErrorMessage : e.message,
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
  // Tags follow their own directive: the source's unless REPLACE asks for x-amz-tagging's.
  const tagging = (header(r.headers, 'x-amz-tagging-directive') ?? 'COPY').toUpperCase();
  if (tagging !== 'COPY' && tagging !== 'REPLACE') {
    throw new S3Error('InvalidArgument', 'Unknown tagging directive.', {
      extra: { ArgumentName: 'x-amz-tagging-directive', ArgumentValue: tagging },
    });
  }
  meta.tags = tagging === 'REPLACE' ? tagsFromHeader(header(r.headers, 'x-amz-tagging')) : (src.tags ?? null);
  const body = await sourceBody(r, src, { start: 0, end: src.size - 1 }, algorithm);
  const { obj, digests } = await put(r, req.bucket, req.key, body, meta, writeConditions(r));
  sendXml(
    r,
    copyObjectResultXml({
      etag: obj.etag,
      lastModified: obj.lastModified,
      checksums: digests.checksum ? { [digests.checksum.algorithm]: digests.checksum.value } : undefined,
    }),
  );
}

export async function getObjectAcl(r: RequestCtx, bucket: string, key: string): Promise<void> {
  await requireObject(r, bucket, key);
  sendXml(r, accessControlPolicyXml(ownerOf(r)));
}

/** The attributes S3 knows for GetObjectAttributes; anything else in the header is InvalidArgument. */
const objectAttributes = new Set(['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']);

/** GetObjectAttributes: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html */
export async function getObjectAttributes(r: RequestCtx, bucket: string, key: string): Promise<void> {
  const asked = new Set(
    (header(r.headers, 'x-amz-object-attributes') ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a !== ''),
  );
  if (asked.size === 0)
    throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', {
      extra: { ArgumentName: 'x-amz-object-attributes' },
    });
  for (const a of asked)
    if (!objectAttributes.has(a))
      throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', {
        extra: { ArgumentName: 'x-amz-object-attributes', ArgumentValue: a },
      });
  const obj = await requireObject(r, bucket, key);
  r.koa.set('Last-Modified', obj.lastModified.toUTCString());
  const checksum =
    obj.checksumAlgorithm && obj.checksumValue
      ? {
          algorithm: obj.checksumAlgorithm as ChecksumAlgorithm,
          value: obj.checksumValue,
          type: obj.checksumType ?? undefined,
        }
      : undefined;
  sendXml(
    r,
    objectAttributesXml(asked, {
      etag: obj.etag,
      size: obj.size,
      partsCount: obj.partsCount ?? undefined,
      checksum,
    }),
  );
}

async function requireObject(r: RequestCtx, bucket: string, key: string): Promise<ObjectRow> {
  await requireBucket(r, bucket);
  const obj = await r.gw.meta.getObject(bucket, key);
  if (!obj) throw new NoSuchKey(key);
  return obj;
}
