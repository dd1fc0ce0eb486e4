// Proves virtual-host style addressing (`<bucket>.<S3DFS_DOMAIN>`) works end to end with the SDK, next to path style.
import http from 'node:http';
import type { LookupFunction } from 'node:net';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { expect } from 'chai';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { steadyEnv } from '../helpers/s3raw.js';

const domain = 's3.test';

/** Every name under the test domain resolves to loopback, as a wildcard DNS record would. */
const lookup: LookupFunction = (hostname, options, callback) => {
  if (hostname !== domain && !hostname.endsWith(`.${domain}`)) {
    callback(new Error(`unexpected host ${hostname}`) as NodeJS.ErrnoException, '', 4);
    return;
  }
  if (options.all)
    (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [
      { address: '127.0.0.1', family: 4 },
    ]);
  else callback(null, '127.0.0.1', 4);
};

describe('virtual-host style addressing', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let vhost: S3Client;
  const seenHosts: string[] = [];

  before(async () => {
    c = await startTestCluster({ portBase: 20500, env: { ...steadyEnv, S3DFS_DOMAIN: domain } });
    const port = new URL(c.endpoint).port;
    const agent = new http.Agent({ keepAlive: true, lookup });
    vhost = new S3Client({
      endpoint: `http://${domain}:${port}`,
      region: 'us-east-1',
      forcePathStyle: false,
      credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey },
      requestHandler: new NodeHttpHandler({ httpAgent: agent }),
    });
    vhost.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { hostname?: string };
        if (req.hostname) seenHosts.push(req.hostname);
        return next(args);
      },
      { step: 'finalizeRequest' },
    );
  });
  after(async () => c?.stop());

  it('creates a bucket, writes and reads objects with the bucket in the Host header', async () => {
    await vhost.send(new CreateBucketCommand({ Bucket: 'vhost-bucket' }));
    await vhost.send(
      new PutObjectCommand({ Bucket: 'vhost-bucket', Key: 'dir/a b+c.txt', Body: 'via vhost' }),
    );
    const got = await vhost.send(new GetObjectCommand({ Bucket: 'vhost-bucket', Key: 'dir/a b+c.txt' }));
    expect(await got.Body?.transformToString()).to.equal('via vhost');
    const list = await vhost.send(new ListObjectsV2Command({ Bucket: 'vhost-bucket' }));
    expect(list.Contents?.map((o) => o.Key)).to.deep.equal(['dir/a b+c.txt']);
    expect(seenHosts).to.include(`vhost-bucket.${domain}`);
  });

  it('serves the same objects to path-style clients', async () => {
    const got = await c.client().send(new GetObjectCommand({ Bucket: 'vhost-bucket', Key: 'dir/a b+c.txt' }));
    expect(await got.Body?.transformToString()).to.equal('via vhost');
  });
});
