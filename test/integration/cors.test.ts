// Proves bucket CORS as S3 has it: Put/Get/DeleteBucketCors round-trip with S3's rule checks, a preflight OPTIONS is answered by the first matching rule (wildcard origins and headers) and refused with 403 otherwise, and actual responses, errors included, carry the matching rule's headers.
import {
  CreateBucketCommand,
  DeleteBucketCorsCommand,
  GetBucketCorsCommand,
  PutBucketCorsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { errorCode, keyPath, send, signedSend, steadyEnv } from '../helpers/s3raw.js';

const Bucket = 'cors-bucket';
const rules = [
  {
    ID: 'app',
    AllowedOrigins: ['https://*.example.com'],
    AllowedMethods: ['GET', 'PUT'],
    AllowedHeaders: ['x-amz-*', 'content-type'],
    ExposeHeaders: ['ETag', 'x-amz-request-id'],
    MaxAgeSeconds: 600,
  },
  { AllowedOrigins: ['*'], AllowedMethods: ['GET'] },
];

describe('bucket CORS', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let s3: S3Client;

  before(async () => {
    c = await startTestCluster({ portBase: 32800, env: steadyEnv });
    s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket }));
    await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'hello' }));
  });

  after(async () => {
    s3?.destroy();
    await c?.stop();
  });

  const preflight = (origin: string | undefined, method: string, headers?: string) =>
    send(c.endpoint, {
      method: 'OPTIONS',
      path: keyPath(Bucket, 'k'),
      headers: {
        ...(origin ? { origin } : {}),
        'access-control-request-method': method,
        ...(headers ? { 'access-control-request-headers': headers } : {}),
      },
    });

  it('refuses a preflight with 403 while the bucket has no CORS configuration', async () => {
    const res = await preflight('https://app.example.com', 'GET');
    expect(res.status).to.equal(403);
    expect(errorCode(res.text)).to.equal('AccessForbidden');
    const get = await s3.send(new GetBucketCorsCommand({ Bucket })).catch((e) => e);
    expect(get.name).to.equal('NoSuchCORSConfiguration');
  });

  it('stores a configuration and returns it as given', async () => {
    await s3.send(new PutBucketCorsCommand({ Bucket, CORSConfiguration: { CORSRules: rules } }));
    const got = await s3.send(new GetBucketCorsCommand({ Bucket }));
    expect(got.CORSRules).to.deep.equal(rules);
    const bad = await s3
      .send(
        new PutBucketCorsCommand({
          Bucket,
          CORSConfiguration: { CORSRules: [{ AllowedOrigins: ['*'], AllowedMethods: ['PATCH'] }] },
        }),
      )
      .catch((e) => e);
    expect(bad.name).to.equal('InvalidRequest');
  });

  it('answers a preflight from the first matching rule', async () => {
    const ok = await preflight('https://app.example.com', 'PUT', 'X-Amz-Meta-Note, Content-Type');
    expect(ok.status, ok.text).to.equal(200);
    expect(ok.headers['access-control-allow-origin']).to.equal('https://app.example.com');
    expect(ok.headers['access-control-allow-methods']).to.equal('GET, PUT');
    expect(ok.headers['access-control-allow-headers']).to.equal('x-amz-meta-note, content-type');
    expect(ok.headers['access-control-max-age']).to.equal('600');
    expect(ok.headers['access-control-expose-headers']).to.equal('ETag, x-amz-request-id');
    expect(ok.headers['access-control-allow-credentials']).to.equal('true');
    // Any origin may GET (the second rule), answered with `*`.
    const any = await preflight('http://elsewhere.test', 'GET');
    expect(any.status).to.equal(200);
    expect(any.headers['access-control-allow-origin']).to.equal('*');
    for (const [origin, method, headers] of [
      ['http://elsewhere.test', 'PUT', undefined],
      ['https://app.example.com', 'DELETE', undefined],
      ['https://app.example.com', 'PUT', 'authorization-x'],
    ] as const) {
      const no = await preflight(origin, method, headers);
      expect(no.status, `${origin} ${method} ${headers}`).to.equal(403);
      expect(errorCode(no.text)).to.equal('AccessForbidden');
    }
    const noOrigin = await preflight(undefined, 'GET');
    expect(noOrigin.status).to.equal(400);
  });

  it('puts the matching rule’s headers on actual responses, errors included', async () => {
    const origin = 'https://app.example.com';
    const ok = await signedSend(c, { method: 'GET', path: keyPath(Bucket, 'k'), headers: { origin } });
    expect(ok.status).to.equal(200);
    expect(ok.headers['access-control-allow-origin']).to.equal(origin);
    expect(ok.headers['access-control-expose-headers']).to.equal('ETag, x-amz-request-id');
    const missing = await signedSend(c, {
      method: 'GET',
      path: keyPath(Bucket, 'nope'),
      headers: { origin },
    });
    expect(missing.status).to.equal(404);
    expect(missing.headers['access-control-allow-origin']).to.equal(origin);
    const unsigned = await send(c.endpoint, {
      method: 'GET',
      path: keyPath(Bucket, 'k'),
      headers: { origin },
    });
    expect(unsigned.status).to.equal(403);
    expect(unsigned.headers['access-control-allow-origin']).to.equal(origin);
    const other = await signedSend(c, {
      method: 'DELETE',
      path: keyPath(Bucket, 'nothing'),
      headers: { origin },
    });
    expect(other.headers['access-control-allow-origin']).to.equal(undefined);
  });

  it('removes the configuration with DeleteBucketCors', async () => {
    await s3.send(new DeleteBucketCorsCommand({ Bucket }));
    const res = await preflight('https://app.example.com', 'GET');
    expect(res.status).to.equal(403);
    const get = await s3.send(new GetBucketCorsCommand({ Bucket })).catch((e) => e);
    expect(get.name).to.equal('NoSuchCORSConfiguration');
  });
});
