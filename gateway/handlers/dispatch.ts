import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from '../s3/errors.js';
import type { S3Request } from '../s3/router.js';
import {
  bucketProbe,
  createBucket,
  deleteBucket,
  getBucketLocation,
  headBucket,
  listBuckets,
} from './buckets.js';
import { currentVersionOnly, header, type RequestCtx, requireBucket } from './context.js';
import { deleteBucketCors, getBucketCors, putBucketCors } from './cors.js';
import { listObjectsV1, listObjectsV2, listObjectVersions } from './listing.js';
import {
  abortMultipartUpload,
  completeMultipartUpload,
  createMultipartUpload,
  listMultipartUploads,
  listParts,
  uploadPart,
  uploadPartCopy,
} from './multipart.js';
import {
  copyObject,
  deleteObject,
  deleteObjects,
  getObjectAcl,
  getObjectAttributes,
  putObject,
} from './objects.js';
import { getObject } from './read.js';
import {
  deleteBucketTagging,
  deleteObjectTagging,
  getBucketTagging,
  getObjectTagging,
  putBucketTagging,
  putObjectTagging,
} from './tagging.js';

/** An operation that needs credentials: all but a CORS preflight, which browsers send without. */
export type SignedRequest = Exclude<S3Request, { op: 'PreflightCors' }>;

/** One exhaustive switch from AWS operation to handler. */
export async function dispatch(r: RequestCtx, req: SignedRequest): Promise<void> {
  switch (req.op) {
    case 'ListBuckets':
      return listBuckets(r);
    case 'CreateBucket':
      return createBucket(r, req.bucket);
    case 'HeadBucket':
      return headBucket(r, req.bucket);
    case 'DeleteBucket':
      return deleteBucket(r, req.bucket);
    case 'GetBucketLocation':
      return getBucketLocation(r, req.bucket);
    case 'GetBucketVersioning':
    case 'GetBucketAcl':
    case 'GetBucketPolicy':
    case 'GetBucketLifecycleConfiguration':
    case 'GetBucketEncryption':
    case 'GetPublicAccessBlock':
    case 'GetBucketOwnershipControls':
    case 'GetBucketWebsite':
    case 'GetBucketReplication':
    case 'GetBucketNotificationConfiguration':
    case 'GetBucketLogging':
    case 'GetBucketAccelerateConfiguration':
    case 'GetBucketRequestPayment':
      return bucketProbe(r, req.bucket, req.op);
    case 'GetBucketTagging':
      return getBucketTagging(r, req.bucket);
    case 'PutBucketTagging':
      return putBucketTagging(r, req.bucket);
    case 'DeleteBucketTagging':
      return deleteBucketTagging(r, req.bucket);
    case 'GetBucketCors':
      return getBucketCors(r, req.bucket);
    case 'PutBucketCors':
      return putBucketCors(r, req.bucket);
    case 'DeleteBucketCors':
      return deleteBucketCors(r, req.bucket);
    case 'ListObjects':
      return listObjectsV1(r, req);
    case 'ListObjectsV2':
      return listObjectsV2(r, req);
    case 'ListObjectVersions':
      return listObjectVersions(r, req);
    case 'DeleteObjects':
      return deleteObjects(r, req.bucket);
    case 'PutObject':
      refuseUnsupportedHeaders(r.headers);
      return putObject(r, req.bucket, req.key);
    case 'CopyObject':
      refuseUnsupportedHeaders(r.headers);
      return copyObject(r, req);
    case 'GetObject':
      currentVersionOnly(req.versionId);
      return getObject(r, req.bucket, req.key, true);
    case 'HeadObject':
      currentVersionOnly(req.versionId);
      return getObject(r, req.bucket, req.key, false);
    case 'DeleteObject':
      return deleteObject(r, req.bucket, req.key, req.versionId);
    case 'GetObjectAcl':
      return getObjectAcl(r, req.bucket, req.key);
    case 'GetObjectTagging':
      return getObjectTagging(r, req.bucket, req.key, req.versionId);
    case 'PutObjectTagging':
      return putObjectTagging(r, req.bucket, req.key, req.versionId);
    case 'DeleteObjectTagging':
      return deleteObjectTagging(r, req.bucket, req.key, req.versionId);
    case 'GetObjectAttributes':
      currentVersionOnly(req.versionId);
      return getObjectAttributes(r, req.bucket, req.key);
    case 'ListMultipartUploads':
      return listMultipartUploads(r, req);
    case 'CreateMultipartUpload':
      refuseUnsupportedHeaders(r.headers);
      return createMultipartUpload(r, req);
    case 'UploadPart':
      refuseUnsupportedHeaders(r.headers);
      return uploadPart(r, req);
    case 'UploadPartCopy':
      refuseUnsupportedHeaders(r.headers);
      return uploadPartCopy(r, req);
    case 'CompleteMultipartUpload':
      return completeMultipartUpload(r, req);
    case 'AbortMultipartUpload':
      return abortMultipartUpload(r, req);
    case 'ListParts':
      return listParts(r, req);
    case 'NotImplemented':
      // A missing bucket is NoSuchBucket first, as S3 answers it.
      await requireBucket(r, req.bucket);
      throw new S3Error('NotImplemented', req.message);
    default: {
      const never: never = req;
      throw new S3Error('NotImplemented', `unsupported operation ${(never as S3Request).op}`);
    }
  }
}

/**
 * Write headers that ask for what s3dfs does not do. Accepting them silently would be a false
 * promise (an object its writer believes encrypted, locked, tagged or public), so the write is
 * refused; values that name the default (`private`, `STANDARD`) are what every object gets anyway.
 */
function refuseUnsupportedHeaders(h: IncomingHttpHeaders): void {
  const refuse = (header: string, what: string) => {
    throw new S3Error('NotImplemented', `${what} is not supported.`, { extra: { Header: header } });
  };
  for (const name of Object.keys(h)) {
    if (
      name.startsWith('x-amz-server-side-encryption') ||
      name.startsWith('x-amz-copy-source-server-side-encryption')
    )
      refuse(name, 'Server-side encryption');
    if (name.startsWith('x-amz-object-lock-'))
      throw new S3Error('InvalidRequest', 'Bucket is missing Object Lock Configuration');
    if (name.startsWith('x-amz-grant-'))
      refuse(name, 'Access control (objects are private to their account)');
  }
  const value = (name: string) => header(h, name)?.trim();
  const acl = value('x-amz-acl');
  // One account owns every bucket and object here: these ACLs grant nothing beyond `private`.
  if (acl !== undefined && !['private', 'bucket-owner-full-control', 'bucket-owner-read'].includes(acl))
    refuse('x-amz-acl', 'Access control (objects are private to their account)');
  const storageClass = value('x-amz-storage-class');
  if (storageClass !== undefined && storageClass.toUpperCase() !== 'STANDARD')
    refuse('x-amz-storage-class', 'A storage class other than STANDARD');
  if (value('x-amz-website-redirect-location') !== undefined)
    refuse('x-amz-website-redirect-location', 'Website redirects');
}
