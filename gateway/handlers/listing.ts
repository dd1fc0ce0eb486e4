import type { S3Request } from '../s3/router.js';
import { listObjectsV1Xml, listObjectsV2Xml, listVersionsXml } from '../s3/xml.js';
import { decodeToken, encodeToken, ownerOf, type RequestCtx, requireBucket, sendXml } from './context.js';

// ListObjects (v1), ListObjectsV2 and ListObjectVersions. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html

type ListV1 = Extract<S3Request, { op: 'ListObjects' }>;
type ListV2 = Extract<S3Request, { op: 'ListObjectsV2' }>;
type ListVersions = Extract<S3Request, { op: 'ListObjectVersions' }>;

type Listing = ListV1 | ListV2 | ListVersions;

/**
 * One page of `req` after `after`, with the fields every listing result shares. The owner is the
 * bucket's (the caller's), shown in each entry where the operation shows one.
 */
async function listPage(r: RequestCtx, req: Listing, after: string | undefined) {
  await requireBucket(r, req.bucket);
  const page = await r.gw.meta.list(req.bucket, {
    prefix: req.prefix,
    delimiter: req.delimiter || undefined,
    after,
    maxKeys: req.maxKeys,
  });
  const common = {
    bucket: req.bucket,
    prefix: req.prefix,
    delimiter: req.delimiter,
    maxKeys: req.maxKeys,
    isTruncated: page.isTruncated,
    encodingType: req.encodingType,
    contents: page.contents,
    commonPrefixes: page.commonPrefixes,
    owner: ownerOf(r),
  };
  return { page, common };
}

export async function listObjectsV1(r: RequestCtx, req: ListV1): Promise<void> {
  const { page, common } = await listPage(r, req, req.marker || undefined);
  sendXml(
    r,
    listObjectsV1Xml({
      ...common,
      marker: req.marker,
      nextMarker: page.isTruncated && req.delimiter ? page.lastReturned : undefined,
    }),
  );
}

/**
 * ListObjectVersions: buckets are never versioned, so each object is listed once as its latest
 * version `null` (what S3 lists for a bucket that never had versioning; bucket-emptying tools use it).
 */
export async function listObjectVersions(r: RequestCtx, req: ListVersions): Promise<void> {
  const { page, common } = await listPage(r, req, req.keyMarker || undefined);
  sendXml(
    r,
    listVersionsXml({
      ...common,
      keyMarker: req.keyMarker,
      nextKeyMarker: page.isTruncated ? page.lastReturned : undefined,
    }),
  );
}

export async function listObjectsV2(r: RequestCtx, req: ListV2): Promise<void> {
  const after =
    req.continuationToken !== undefined
      ? decodeToken(req.continuationToken, '1')
      : req.startAfter || undefined;
  const { page, common } = await listPage(r, req, after);
  sendXml(
    r,
    listObjectsV2Xml({
      ...common,
      continuationToken: req.continuationToken,
      nextContinuationToken:
        page.isTruncated && page.lastReturned !== undefined ? encodeToken(page.lastReturned, '1') : undefined,
      startAfter: req.startAfter,
      // V2 shows owners only with fetch-owner.
      owner: req.fetchOwner ? common.owner : undefined,
    }),
  );
}
