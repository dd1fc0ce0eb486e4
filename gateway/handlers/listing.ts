import { S3Error } from '../s3/errors.js';
import type { S3Request } from '../s3/router.js';
import { listObjectsV1Xml, listObjectsV2Xml, listVersionsXml } from '../s3/xml.js';
import { requireBucket, sendXml } from './buckets.js';
import { ownerOf, type RequestCtx } from './context.js';

// ListObjects (v1), ListObjectsV2 and ListObjectVersions. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html

type ListV1 = Extract<S3Request, { op: 'ListObjects' }>;
type ListV2 = Extract<S3Request, { op: 'ListObjectsV2' }>;
type ListVersions = Extract<S3Request, { op: 'ListObjectVersions' }>;

export async function listObjectsV1(r: RequestCtx, req: ListV1): Promise<void> {
  await requireBucket(r, req.bucket);
  const page = await r.gw.meta.list(req.bucket, {
    prefix: req.prefix,
    delimiter: req.delimiter || undefined,
    after: req.marker || undefined,
    maxKeys: req.maxKeys,
  });
  sendXml(
    r,
    listObjectsV1Xml({
      bucket: req.bucket,
      prefix: req.prefix,
      delimiter: req.delimiter,
      maxKeys: req.maxKeys,
      isTruncated: page.isTruncated,
      encodingType: req.encodingType,
      marker: req.marker,
      nextMarker: page.isTruncated && req.delimiter ? page.lastReturned : undefined,
      contents: page.contents,
      commonPrefixes: page.commonPrefixes,
      owner: ownerOf(r),
    }),
  );
}

/**
 * ListObjectVersions: buckets are never versioned, so each object is listed once as its latest
 * version `null` (what S3 lists for a bucket that never had versioning; bucket-emptying tools use it).
 */
export async function listObjectVersions(r: RequestCtx, req: ListVersions): Promise<void> {
  await requireBucket(r, req.bucket);
  const page = await r.gw.meta.list(req.bucket, {
    prefix: req.prefix,
    delimiter: req.delimiter || undefined,
    after: req.keyMarker || undefined,
    maxKeys: req.maxKeys,
  });
  sendXml(
    r,
    listVersionsXml({
      bucket: req.bucket,
      prefix: req.prefix,
      delimiter: req.delimiter,
      maxKeys: req.maxKeys,
      isTruncated: page.isTruncated,
      encodingType: req.encodingType,
      keyMarker: req.keyMarker,
      nextKeyMarker: page.isTruncated ? page.lastReturned : undefined,
      contents: page.contents,
      commonPrefixes: page.commonPrefixes,
      owner: ownerOf(r),
    }),
  );
}

export async function listObjectsV2(r: RequestCtx, req: ListV2): Promise<void> {
  await requireBucket(r, req.bucket);
  const after =
    req.continuationToken !== undefined ? decodeToken(req.continuationToken) : req.startAfter || undefined;
  const page = await r.gw.meta.list(req.bucket, {
    prefix: req.prefix,
    delimiter: req.delimiter || undefined,
    after,
    maxKeys: req.maxKeys,
  });
  sendXml(
    r,
    listObjectsV2Xml({
      bucket: req.bucket,
      prefix: req.prefix,
      delimiter: req.delimiter,
      maxKeys: req.maxKeys,
      isTruncated: page.isTruncated,
      encodingType: req.encodingType,
      continuationToken: req.continuationToken,
      nextContinuationToken:
        page.isTruncated && page.lastReturned !== undefined ? encodeToken(page.lastReturned) : undefined,
      startAfter: req.startAfter,
      contents: page.contents,
      commonPrefixes: page.commonPrefixes,
      owner: req.fetchOwner ? ownerOf(r) : undefined,
    }),
  );
}

/** Continuation tokens are opaque to clients: the last key or common prefix returned. */
function encodeToken(last: string): string {
  return Buffer.from(`1:${last}`, 'utf8').toString('base64url');
}

function decodeToken(token: string): string {
  const raw = Buffer.from(token, 'base64url').toString('utf8');
  // No key holds U+0000 (the router refuses it), and Postgres text cannot bind it.
  if (!raw.startsWith('1:') || raw.includes('\0')) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', {
      extra: { ArgumentName: 'continuation-token', ArgumentValue: token },
    });
  }
  return raw.slice(2);
}
