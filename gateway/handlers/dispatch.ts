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
import type { RequestCtx } from './context.js';
import { listObjectsV1, listObjectsV2 } from './listing.js';
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
  currentVersionOnly,
  deleteObject,
  deleteObjects,
  getObjectAcl,
  getObjectTagging,
  putObject,
} from './objects.js';
import { getObject } from './read.js';

/** One exhaustive switch from AWS operation to handler. */
export async function dispatch(r: RequestCtx, req: S3Request): Promise<void> {
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
    case 'GetBucketCors':
    case 'GetBucketLifecycleConfiguration':
    case 'GetBucketEncryption':
    case 'GetBucketTagging':
      return bucketProbe(r, req.bucket, req.op);
    case 'ListObjects':
      return listObjectsV1(r, req);
    case 'ListObjectsV2':
      return listObjectsV2(r, req);
    case 'DeleteObjects':
      return deleteObjects(r, req.bucket);
    case 'PutObject':
      return putObject(r, req.bucket, req.key);
    case 'CopyObject':
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
      return getObjectTagging(r, req.bucket, req.key);
    case 'ListMultipartUploads':
      return listMultipartUploads(r, req);
    case 'CreateMultipartUpload':
      return createMultipartUpload(r, req);
    case 'UploadPart':
      return uploadPart(r, req);
    case 'UploadPartCopy':
      return uploadPartCopy(r, req);
    case 'CompleteMultipartUpload':
      return completeMultipartUpload(r, req);
    case 'AbortMultipartUpload':
      return abortMultipartUpload(r, req);
    case 'ListParts':
      return listParts(r, req);
    default: {
      const never: never = req;
      throw new S3Error('NotImplemented', `unsupported operation ${(never as S3Request).op}`);
    }
  }
}
