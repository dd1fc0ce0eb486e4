import { NoSuchBucket, NoSuchKey } from '../../lib/errors.js';
import { S3Error } from '../s3/errors.js';
import { bucketTagsMax, objectTagsMax, parseTagging, taggingXml } from '../s3/xml.js';
import { readSmallBody } from './body.js';
import { currentVersionOnly, type RequestCtx, requireBucket, sendXml } from './context.js';

// Object and bucket tagging. Object tags belong to the version they were written with (x-amz-tagging
// on PUT, copy and CreateMultipartUpload) and are replaced whole by PutObjectTagging.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-tagging.html

export async function getObjectTagging(r: RequestCtx, bucket: string, key: string, versionId?: string) {
  await requireBucket(r, bucket);
  currentVersionOnly(versionId);
  const obj = await r.gw.meta.getObject(bucket, key);
  if (!obj) throw new NoSuchKey(key);
  sendXml(r, taggingXml(obj.tags ?? {}));
}

export async function putObjectTagging(r: RequestCtx, bucket: string, key: string, versionId?: string) {
  await requireBucket(r, bucket);
  currentVersionOnly(versionId);
  const tags = await parseTagging(await readSmallBody(r, tagsBodyBytesMax), objectTagsMax);
  if (!(await r.gw.meta.setObjectTags(bucket, key, tags))) throw new NoSuchKey(key);
  r.koa.status = 200;
  r.koa.body = Buffer.alloc(0);
}

export async function deleteObjectTagging(r: RequestCtx, bucket: string, key: string, versionId?: string) {
  await requireBucket(r, bucket);
  currentVersionOnly(versionId);
  if (!(await r.gw.meta.setObjectTags(bucket, key, null))) throw new NoSuchKey(key);
  r.koa.status = 204;
  r.koa.body = null;
}

export async function getBucketTagging(r: RequestCtx, bucket: string) {
  const row = await r.gw.meta.getBucket(bucket);
  if (!row) throw new NoSuchBucket(bucket);
  if (!row.tags) throw new S3Error('NoSuchTagSet', undefined, { extra: { BucketName: bucket } });
  sendXml(r, taggingXml(row.tags));
}

export async function putBucketTagging(r: RequestCtx, bucket: string) {
  await requireBucket(r, bucket);
  const tags = await parseTagging(await readSmallBody(r, tagsBodyBytesMax), bucketTagsMax);
  if (!(await r.gw.meta.setBucketTags(bucket, tags))) throw new NoSuchBucket(bucket);
  r.koa.status = 204;
  r.koa.body = null;
}

export async function deleteBucketTagging(r: RequestCtx, bucket: string) {
  if (!(await r.gw.meta.setBucketTags(bucket, null))) throw new NoSuchBucket(bucket);
  r.koa.status = 204;
  r.koa.body = null;
}

/** A Tagging document of 50 tags at their longest is under 40 KB. */
const tagsBodyBytesMax = 64 * 1024;
