import { S3Error } from '../s3/errors.js';
import { validateBucketName } from '../s3/router.js';
import {
  accessControlPolicyXml,
  bucketSettingXml,
  listAllMyBucketsXml,
  locationConstraintXml,
  parseCreateBucketConfiguration,
  readBodyBounded,
  versioningConfigurationXml,
  xmlBodyBytesMax,
} from '../s3/xml.js';
import {
  decodeToken,
  encodeToken,
  header,
  ownerOf,
  type RequestCtx,
  requireBucket,
  sendXml,
} from './context.js';

// Bucket operations. https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html

/** ListBuckets: all of them, or pages of `max-buckets` with an opaque continuation token. */
export async function listBuckets(r: RequestCtx): Promise<void> {
  const q = r.query;
  const prefix = q.prefix || undefined;
  let limit: number | undefined;
  if (q['max-buckets'] !== undefined) {
    limit = Number(q['max-buckets']);
    if (!/^\d+$/.test(q['max-buckets']) || limit < 1 || limit > 10000)
      throw new S3Error('InvalidArgument', 'max-buckets must be an integer between 1 and 10000', {
        extra: { ArgumentName: 'max-buckets', ArgumentValue: q['max-buckets'] },
      });
  }
  const after = q['continuation-token'] !== undefined ? decodeToken(q['continuation-token'], 'b') : undefined;
  // One more row than asked tells whether another page follows.
  const rows = await r.gw.meta.listBuckets({
    prefix,
    after,
    limit: limit === undefined ? undefined : limit + 1,
  });
  const truncated = limit !== undefined && rows.length > limit;
  const page = truncated ? rows.slice(0, limit) : rows;
  sendXml(
    r,
    listAllMyBucketsXml(ownerOf(r), {
      buckets: page.map((b) => ({ name: b.name, creationDate: new Date(b.created_at), region: b.region })),
      prefix,
      continuationToken: truncated ? encodeToken(page[page.length - 1].name, 'b') : undefined,
    }),
  );
}

export async function createBucket(r: RequestCtx, bucket: string): Promise<void> {
  validateBucketName(bucket);
  if (header(r.headers, 'x-amz-bucket-object-lock-enabled')?.toLowerCase() === 'true')
    throw new S3Error('NotImplemented', 'Object Lock is not supported.');
  const body = await readBodyBounded(r.koa.req, xmlBodyBytesMax);
  const { locationConstraint } = body.length > 0 ? await parseCreateBucketConfiguration(body) : {};
  const region = locationConstraint || r.gw.config.region || 'us-east-1';
  if (r.gw.config.region && locationConstraint && locationConstraint !== r.gw.config.region) {
    throw new S3Error('InvalidLocationConstraint', `This endpoint serves region ${r.gw.config.region}.`);
  }
  if (!(await r.gw.meta.createBucket(bucket, r.auth.accessKey, region))) {
    const existing = await r.gw.meta.getBucket(bucket);
    const owned = existing?.owner === r.auth.accessKey;
    // S3's legacy us-east-1 answer: creating a bucket you own there again succeeds and changes
    // nothing (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html#API_CreateBucket_Errors).
    if (!(owned && existing?.region === 'us-east-1'))
      throw new S3Error(owned ? 'BucketAlreadyOwnedByYou' : 'BucketAlreadyExists', undefined, {
        extra: { BucketName: bucket },
      });
  }
  r.koa.status = 200;
  r.koa.set('Location', `/${bucket}`);
  r.koa.body = Buffer.alloc(0);
}

export async function headBucket(r: RequestCtx, bucket: string): Promise<void> {
  const row = await requireBucket(r, bucket);
  r.koa.status = 200;
  r.koa.set('x-amz-bucket-region', row.region);
}

export async function deleteBucket(r: RequestCtx, bucket: string): Promise<void> {
  const result = await r.gw.meta.deleteBucket(bucket);
  if (result === 'missing') throw new S3Error('NoSuchBucket', undefined, { extra: { BucketName: bucket } });
  if (result === 'not-empty')
    throw new S3Error('BucketNotEmpty', undefined, { extra: { BucketName: bucket } });
  r.koa.status = 204;
  r.koa.body = null;
}

export async function getBucketLocation(r: RequestCtx, bucket: string): Promise<void> {
  const row = await requireBucket(r, bucket);
  sendXml(r, locationConstraintXml(row.region));
}

/** Sub-resources clients probe (s3cmd info, rclone, SDK helpers): answer as S3 does for a bucket without them. */
export async function bucketProbe(r: RequestCtx, bucket: string, op: string): Promise<void> {
  await requireBucket(r, bucket);
  switch (op) {
    case 'GetBucketVersioning':
      return sendXml(r, versioningConfigurationXml());
    case 'GetBucketAcl':
      return sendXml(r, accessControlPolicyXml(ownerOf(r)));
    case 'GetBucketPolicy':
      throw new S3Error('NoSuchBucketPolicy', undefined, { extra: { BucketName: bucket } });
    case 'GetBucketLifecycleConfiguration':
      throw new S3Error('NoSuchLifecycleConfiguration', undefined, { extra: { BucketName: bucket } });
    case 'GetBucketEncryption':
      throw new S3Error('ServerSideEncryptionConfigurationNotFoundError', undefined, {
        extra: { BucketName: bucket },
      });
    case 'GetPublicAccessBlock':
      throw new S3Error('NoSuchPublicAccessBlockConfiguration', undefined, { extra: { BucketName: bucket } });
    case 'GetBucketOwnershipControls':
      throw new S3Error('OwnershipControlsNotFoundError', undefined, { extra: { BucketName: bucket } });
    case 'GetBucketWebsite':
      throw new S3Error('NoSuchWebsiteConfiguration', undefined, { extra: { BucketName: bucket } });
    case 'GetBucketReplication':
      throw new S3Error('ReplicationConfigurationNotFoundError', undefined, {
        extra: { BucketName: bucket },
      });
    // These four S3 answers with a document even when nothing is set.
    case 'GetBucketNotificationConfiguration':
      return sendXml(r, bucketSettingXml('NotificationConfiguration'));
    case 'GetBucketLogging':
      return sendXml(r, bucketSettingXml('BucketLoggingStatus'));
    case 'GetBucketAccelerateConfiguration':
      return sendXml(r, bucketSettingXml('AccelerateConfiguration'));
    case 'GetBucketRequestPayment':
      return sendXml(r, bucketSettingXml('RequestPaymentConfiguration', '<Payer>BucketOwner</Payer>'));
    default:
      throw new S3Error('NotImplemented');
  }
}
