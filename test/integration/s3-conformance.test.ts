// Proves the protocol corner cases of issue 23 are answered as S3 answers them: Expect headers, repeated CreateBucket, LocationConstraint, empty continuation tokens, re-uploaded parts, expired presigned URLs, v1 url-encoded listings, parts-count headers, and 501s only after auth and bucket resolution.
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetBucketAccelerateConfigurationCommand,
  GetBucketLocationCommand,
  GetBucketLoggingCommand,
  GetBucketNotificationConfigurationCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketReplicationCommand,
  GetBucketRequestPaymentCommand,
  GetBucketWebsiteCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  GetPublicAccessBlockCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { errorCode, keyPath, presign, send, signedSend, steadyEnv } from '../helpers/s3raw.js';

const Bucket = 'conformance';
const partMin = 64 * 1024;

describe('S3 protocol corner cases (issue 23)', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let s3: S3Client;

  before(async () => {
    c = await startTestCluster({
      portBase: 32700,
      chunkSize: 64 * 1024,
      env: { ...steadyEnv, S3DFS_MULTIPART_MIN_PART: String(partMin) },
    });
    s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket }));
  });

  after(async () => {
    s3?.destroy();
    await c?.stop();
  });

  const put = (Key: string, Body: string | Buffer) => s3.send(new PutObjectCommand({ Bucket, Key, Body }));

  it('ignores an empty or unknown Expect header on PutObject and CreateBucket', async () => {
    for (const expectValue of ['', 'something-else']) {
      const obj = await signedSend(c, {
        method: 'PUT',
        path: keyPath(Bucket, 'expect'),
        headers: { expect: expectValue, 'content-length': '5' },
        body: 'hello',
      });
      expect(obj.status, obj.text).to.equal(200);
      const bucket = await signedSend(c, {
        method: 'PUT',
        path: `/expect-${expectValue === '' ? 'empty' : 'unknown'}`,
        headers: { expect: expectValue, 'content-length': '0' },
      });
      expect(bucket.status, bucket.text).to.equal(200);
    }
  });

  it('answers 200 to CreateBucket of a bucket already owned in us-east-1, keeping its objects', async () => {
    await put('kept', 'still here');
    const again = await signedSend(c, { method: 'PUT', path: `/${Bucket}` });
    expect(again.status, again.text).to.equal(200);
    const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'kept' }));
    expect(await got.Body!.transformToString()).to.equal('still here');
  });

  it('reports a LocationConstraint in GetBucketLocation, and answers BucketAlreadyOwnedByYou outside us-east-1', async () => {
    const Bucket = 'in-eu';
    await s3.send(
      new CreateBucketCommand({ Bucket, CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' } }),
    );
    const loc = await s3.send(new GetBucketLocationCommand({ Bucket }));
    expect(loc.LocationConstraint).to.equal('eu-west-1');
    const again = await signedSend(c, { method: 'PUT', path: `/${Bucket}` });
    expect(again.status).to.equal(409);
    expect(errorCode(again.text)).to.equal('BucketAlreadyOwnedByYou');
  });

  it('lists from the start for an empty continuation-token', async () => {
    await put('listed', 'x');
    const res = await signedSend(c, {
      method: 'GET',
      path: `/${Bucket}`,
      query: { 'list-type': '2', 'continuation-token': '' },
    });
    expect(res.status, res.text).to.equal(200);
    expect(res.text).to.include('<Key>listed</Key>');
  });

  it('completes an upload whose part was uploaded again after later parts, latest upload winning', async () => {
    const Key = 'reuploaded';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const body = (n: number, fill: string) => Buffer.alloc(n === 3 ? 10 : partMin, fill);
    const upload = async (PartNumber: number, fill: string) =>
      (
        await s3.send(
          new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body(PartNumber, fill) }),
        )
      ).ETag!;
    await upload(1, 'a');
    const e2 = await upload(2, 'b');
    const e3 = await upload(3, 'c');
    const e1 = await upload(1, 'A');
    const complete = (Parts: { PartNumber: number; ETag: string }[]) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }));
    const order = await complete([
      { PartNumber: 2, ETag: e2 },
      { PartNumber: 1, ETag: e1 },
      { PartNumber: 3, ETag: e3 },
    ]).catch((err) => err);
    expect(order.name).to.equal('InvalidPartOrder');
    await complete([
      { PartNumber: 1, ETag: e1 },
      { PartNumber: 2, ETag: e2 },
      { PartNumber: 3, ETag: e3 },
    ]);
    const got = await s3.send(new GetObjectCommand({ Bucket, Key }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(bytes.equals(Buffer.concat([body(1, 'A'), body(2, 'b'), body(3, 'c')]))).to.equal(true);
  });

  it('answers an expired presigned URL with 403 AccessDenied, also for a negative X-Amz-Expires', async () => {
    await put('presigned', 'x');
    const path = keyPath(Bucket, 'presigned');
    const past = await presign(c, { method: 'GET', path }, 60, new Date(Date.now() - 3_600_000));
    const negative = await presign(c, { method: 'GET', path }, 60);
    negative.query!['X-Amz-Expires'] = '-7200';
    // Expiry is checked before the signature: S3 answers an expired URL as expired, whatever it says.
    for (const req of [past, negative]) {
      const res = await send(c.endpoint, req);
      expect(res.status, res.text).to.equal(403);
      expect(errorCode(res.text)).to.equal('AccessDenied');
    }
  });

  it('returns a ListObjects v1 prefix with control characters as sent under encoding-type=url', async () => {
    // botocore decodes Delimiter, Marker, NextMarker, Key and CommonPrefixes of a v1 listing, but
    // not Prefix: S3 sends the v1 Prefix as it is, and an encoded one would reach the caller encoded.
    const prefix = 'ctl\x01\x0a';
    await put(`${prefix}key`, 'x');
    const res = await signedSend(c, {
      method: 'GET',
      path: `/${Bucket}`,
      query: { prefix, 'encoding-type': 'url' },
    });
    expect(res.status, res.text).to.equal(200);
    expect(res.text).to.include('<Prefix>ctl&#1;\n</Prefix>');
    expect(res.text).to.include('<Key>ctl%01%0Akey</Key>');
  });

  it('sends x-amz-mp-parts-count only when partNumber is given', async () => {
    const Key = 'parts-count';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const p1 = await s3.send(
      new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(partMin, 1) }),
    );
    const p2 = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: 'tail' }));
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.ETag },
          ],
        },
      }),
    );
    const plain = await signedSend(c, { method: 'HEAD', path: keyPath(Bucket, Key) });
    expect(plain.status).to.equal(200);
    expect(plain.headers['x-amz-mp-parts-count']).to.equal(undefined);
    const part = await s3.send(new HeadObjectCommand({ Bucket, Key, PartNumber: 2 }));
    expect(part.PartsCount).to.equal(2);
    expect(part.ContentLength).to.equal(4);
  });

  it('answers an unimplemented subresource only after authentication and bucket resolution', async () => {
    const unsigned = await send(c.endpoint, { method: 'PUT', path: `/${Bucket}`, query: { versioning: '' } });
    expect(unsigned.status).to.equal(403);
    expect(errorCode(unsigned.text)).to.equal('AccessDenied');
    const missing = await signedSend(c, { method: 'GET', path: '/no-such-bucket', query: { analytics: '' } });
    expect(missing.status).to.equal(404);
    expect(errorCode(missing.text)).to.equal('NoSuchBucket');
    const existing = await signedSend(c, { method: 'GET', path: `/${Bucket}`, query: { analytics: '' } });
    expect(existing.status).to.equal(501);
    expect(errorCode(existing.text)).to.equal('NotImplemented');
  });

  it('answers the settings infrastructure tools probe as S3 answers a bucket without them', async () => {
    const notFound = async (p: Promise<unknown>, code: string) => {
      const err = await p.then(
        () => undefined,
        (e) => e,
      );
      expect(err?.name, code).to.equal(code);
      expect(err.$metadata.httpStatusCode, code).to.equal(404);
    };
    await notFound(
      s3.send(new GetPublicAccessBlockCommand({ Bucket })),
      'NoSuchPublicAccessBlockConfiguration',
    );
    await notFound(
      s3.send(new GetBucketOwnershipControlsCommand({ Bucket })),
      'OwnershipControlsNotFoundError',
    );
    await notFound(s3.send(new GetBucketWebsiteCommand({ Bucket })), 'NoSuchWebsiteConfiguration');
    await notFound(
      s3.send(new GetBucketReplicationCommand({ Bucket })),
      'ReplicationConfigurationNotFoundError',
    );
    const notification = await s3.send(new GetBucketNotificationConfigurationCommand({ Bucket }));
    expect(notification.$metadata.httpStatusCode).to.equal(200);
    expect(notification.TopicConfigurations ?? []).to.deep.equal([]);
    const logging = await s3.send(new GetBucketLoggingCommand({ Bucket }));
    expect(logging.LoggingEnabled).to.equal(undefined);
    const accelerate = await s3.send(new GetBucketAccelerateConfigurationCommand({ Bucket }));
    expect(accelerate.Status).to.equal(undefined);
    const payment = await s3.send(new GetBucketRequestPaymentCommand({ Bucket }));
    expect(payment.Payer).to.equal('BucketOwner');
    await notFound(s3.send(new GetPublicAccessBlockCommand({ Bucket: 'no-such-bucket' })), 'NoSuchBucket');
  });

  it('answers GetObjectAttributes with ETag, checksum, parts, size and storage class', async () => {
    await s3.send(
      new PutObjectCommand({ Bucket, Key: 'attrs', Body: 'attributes', ChecksumAlgorithm: 'CRC32' }),
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'attrs', ChecksumMode: 'ENABLED' }));
    const all = ['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize'] as const;
    const a = await s3.send(
      new GetObjectAttributesCommand({ Bucket, Key: 'attrs', ObjectAttributes: [...all] }),
    );
    expect(a.ETag).to.equal(head.ETag!.replaceAll('"', ''));
    expect(a.Checksum?.ChecksumCRC32).to.equal(head.ChecksumCRC32);
    expect(a.ObjectSize).to.equal(10);
    expect(a.StorageClass).to.equal('STANDARD');
    expect(a.ObjectParts).to.equal(undefined);
    expect(a.LastModified?.getTime()).to.equal(head.LastModified?.getTime());
    const sizeOnly = await s3.send(
      new GetObjectAttributesCommand({ Bucket, Key: 'attrs', ObjectAttributes: ['ObjectSize'] }),
    );
    expect(sizeOnly.ETag).to.equal(undefined);
    const parts = await s3.send(
      new GetObjectAttributesCommand({ Bucket, Key: 'parts-count', ObjectAttributes: [...all] }),
    );
    expect(parts.ObjectParts?.TotalPartsCount).to.equal(2);
    const missing = await s3
      .send(new GetObjectAttributesCommand({ Bucket, Key: 'nope', ObjectAttributes: ['ETag'] }))
      .catch((e) => e);
    expect(missing.name).to.equal('NoSuchKey');
  });
});
