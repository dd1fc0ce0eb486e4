// Proves the gateway rejects bad credentials, signatures, payload digests and framing with the right S3 error (and stores nothing), and accepts presigned URLs and every streaming payload mode.
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { expect } from 'chai';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';
import {
  errorCode,
  expectS3Error,
  keyPath,
  presign,
  type RawRequest,
  type RawResponse,
  send,
  sha256Hex,
  signedChunkedBody,
  signedSend,
  signHeaders,
  signingKey,
  steadyEnv,
  unsignedTrailerBody,
  xmlField,
} from '../helpers/s3raw.js';

const bucket = 'auth';

function crc32Base64(data: Buffer): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32(data) >>> 0);
  return b.toString('base64');
}

describe('gateway auth and malformed input', function () {
  this.timeout(60_000);
  let c: TestCluster;

  const get = (key: string) => signedSend(c, { method: 'GET', path: keyPath(bucket, key) });
  async function expectAbsent(key: string): Promise<void> {
    const res = await signedSend(c, { method: 'HEAD', path: keyPath(bucket, key) });
    expect(res.status, `${key} must not exist`).to.equal(404);
    const list = await signedSend(c, {
      method: 'GET',
      path: `/${bucket}`,
      query: { 'list-type': '2', prefix: key },
    });
    expect(list.text).not.to.contain(`<Key>${key}</Key>`);
  }

  let pids: (number | undefined)[] = [];
  const nodePids = () => c.manager.ring().nodes.map((n) => (c.manager.runtime as ProcessRuntime).pid(n.id));
  /** A gateway aborting a chunk upload (client sent a bad body) must not take storage nodes down. */
  async function expectNodesSurvived(): Promise<void> {
    await new Promise((r) => setTimeout(r, 300));
    expect(nodePids(), 'storage node processes restarted').to.deep.equal(pids);
  }

  before(async () => {
    c = await startTestCluster({ portBase: 20300, chunkSize: 4096, env: steadyEnv });
    const res = await signedSend(c, { method: 'PUT', path: `/${bucket}` });
    expect(res.status, res.text).to.equal(200);
    const put = await signedSend(c, { method: 'PUT', path: keyPath(bucket, 'hello'), body: 'hello world' });
    expect(put.status, put.text).to.equal(200);
    pids = nodePids();
  });
  after(async () => c?.stop());
  // One failure must not cascade into the next test as 503s: start each with every node up.
  beforeEach(async () => {
    await waitFor(() => c.gateway.cluster.snapshot.nodes.every((n) => n.status === 'up'), 20_000);
    pids = nodePids();
  });

  describe('credentials and signatures', () => {
    it('accepts a correctly signed request and tags it with a request id', async () => {
      const res = await get('hello');
      expect(res.status).to.equal(200);
      expect(res.text).to.equal('hello world');
      expect(res.headers['x-amz-request-id']).to.match(/^[0-9A-Z]+$/);
    });

    it('answers anonymous requests with AccessDenied', async () => {
      expectS3Error(
        await send(c.endpoint, { method: 'GET', path: keyPath(bucket, 'hello') }),
        403,
        'AccessDenied',
      );
      expectS3Error(await send(c.endpoint, { method: 'GET', path: '/' }), 403, 'AccessDenied');
    });

    it('answers an unknown access key with InvalidAccessKeyId', async () => {
      const res = await signedSend(
        c,
        { method: 'GET', path: keyPath(bucket, 'hello') },
        { accessKey: 'NOSUCHKEY' },
      );
      expectS3Error(res, 403, 'InvalidAccessKeyId');
    });

    it('answers a wrong secret with SignatureDoesNotMatch', async () => {
      const res = await signedSend(
        c,
        { method: 'GET', path: keyPath(bucket, 'hello') },
        { secretKey: 'wrong-secret' },
      );
      expectS3Error(res, 403, 'SignatureDoesNotMatch');
    });

    it('answers a signed header changed in transit with SignatureDoesNotMatch', async () => {
      const req: RawRequest = {
        method: 'GET',
        path: keyPath(bucket, 'hello'),
        headers: { range: 'bytes=0-1' },
      };
      const headers = await signHeaders(c, req);
      expectS3Error(
        await send(c.endpoint, { ...req, headers: { ...headers, range: 'bytes=0-2' } }),
        403,
        'SignatureDoesNotMatch',
      );
    });

    it('answers a 20-minute clock skew with RequestTimeTooSkewed and the server time', async () => {
      const res = await signedSend(
        c,
        { method: 'GET', path: keyPath(bucket, 'hello') },
        { signingDate: new Date(Date.now() - 20 * 60_000) },
      );
      expectS3Error(res, 403, 'RequestTimeTooSkewed');
      const serverTime = Date.parse(xmlField(res.text, 'ServerTime') ?? '');
      expect(Math.abs(serverTime - Date.now())).to.be.below(60_000);
    });

    it('serves presigned GET and PUT URLs, and refuses expired or tampered ones', async () => {
      const getReq = await presign(c, { method: 'GET', path: keyPath(bucket, 'hello') }, 300);
      const got = await send(c.endpoint, getReq);
      expect(got.status, got.text).to.equal(200);
      expect(got.text).to.equal('hello world');

      const putReq = await presign(c, { method: 'PUT', path: keyPath(bucket, 'presigned put é') }, 300);
      const put = await send(c.endpoint, { ...putReq, body: 'via presigned url' });
      expect(put.status, put.text).to.equal(200);
      expect((await get('presigned put é')).text).to.equal('via presigned url');

      const expired = await presign(
        c,
        { method: 'GET', path: keyPath(bucket, 'hello') },
        60,
        new Date(Date.now() - 3600_000),
      );
      expectS3Error(await send(c.endpoint, expired), 403, 'AccessDenied');

      const tampered = { ...getReq, query: { ...getReq.query } };
      tampered.query!['X-Amz-Signature'] = '0'.repeat(64);
      expectS3Error(await send(c.endpoint, tampered), 403, 'SignatureDoesNotMatch');
      // The signature covers the path: the same URL for another key does not work.
      expectS3Error(
        await send(c.endpoint, { ...getReq, path: keyPath(bucket, 'other') }),
        403,
        'SignatureDoesNotMatch',
      );
    });
  });

  describe('payload modes and digests', () => {
    it('verifies a hex x-amz-content-sha256 against the body (XAmzContentSHA256Mismatch)', async () => {
      const ok = await signedSend(
        c,
        { method: 'PUT', path: keyPath(bucket, 'sha-ok'), body: 'payload' },
        { payload: 'sha256' },
      );
      expect(ok.status, ok.text).to.equal(200);
      const bad = await signedSend(
        c,
        { method: 'PUT', path: keyPath(bucket, 'sha-bad'), body: 'payload' },
        { payload: sha256Hex('something else') },
      );
      expectS3Error(bad, 400, 'XAmzContentSHA256Mismatch');
      await expectAbsent('sha-bad');
    });

    async function streamingSigned(key: string, data: Buffer, tamper: boolean): Promise<RawResponse> {
      // The body's chunk signatures chain from the seed signature, so sign the headers first
      // (with the final encoded length, which does not depend on signature values).
      const lengthProbe = signedChunkedBody(data, 1000, {
        key: Buffer.alloc(32),
        datetime: '20200101T000000Z',
        seed: '0',
      });
      const req: RawRequest = {
        method: 'PUT',
        path: keyPath(bucket, key),
        headers: {
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'content-length': String(lengthProbe.length),
        },
      };
      const headers = await signHeaders(c, req, { payload: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' });
      const datetime = headers['x-amz-date'];
      const seed = /Signature=([0-9a-f]{64})/.exec(headers.authorization)![1];
      const body = signedChunkedBody(
        data,
        1000,
        { key: signingKey(c.secretKey, datetime.slice(0, 8)), datetime, seed },
        tamper,
      );
      expect(body.length).to.equal(lengthProbe.length);
      return send(c.endpoint, { ...req, headers, body });
    }

    it('accepts STREAMING-AWS4-HMAC-SHA256-PAYLOAD and stores the decoded bytes', async () => {
      const data = Buffer.from('0123456789'.repeat(950));
      const res = await streamingSigned('streamed', data, false);
      expect(res.status, res.text).to.equal(200);
      expect(res.headers.etag).to.equal(`"${createHash('md5').update(data).digest('hex')}"`);
      const back = await get('streamed');
      expect(back.body.equals(data)).to.equal(true);
    });

    it('rejects a tampered aws-chunked chunk (SignatureDoesNotMatch) and stores nothing', async () => {
      const res = await streamingSigned('streamed-tampered', Buffer.from('abcdefghij'.repeat(950)), true);
      expectS3Error(res, 403, 'SignatureDoesNotMatch');
      await expectAbsent('streamed-tampered');
      await expectNodesSurvived();
    });

    function trailerRequest(
      key: string,
      body: Buffer,
      decodedLength: number,
      extra: Record<string, string> = {},
    ) {
      return {
        method: 'PUT',
        path: keyPath(bucket, key),
        headers: {
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(decodedLength),
          'x-amz-trailer': 'x-amz-checksum-crc32',
          'content-length': String(body.length),
          ...extra,
        },
        body,
      };
    }
    const unsignedTrailer = { payload: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' };

    it('accepts STREAMING-UNSIGNED-PAYLOAD-TRAILER with a correct CRC32 trailer and returns it', async () => {
      const data = Buffer.from('trailer data '.repeat(700));
      const body = unsignedTrailerBody(data, 2000, { 'x-amz-checksum-crc32': crc32Base64(data) });
      const res = await signedSend(c, trailerRequest('trailer-ok', body, data.length), unsignedTrailer);
      expect(res.status, res.text).to.equal(200);
      const back = await signedSend(c, {
        method: 'GET',
        path: keyPath(bucket, 'trailer-ok'),
        headers: { 'x-amz-checksum-mode': 'ENABLED' },
      });
      expect(back.body.equals(data)).to.equal(true);
      expect(back.headers['x-amz-checksum-crc32']).to.equal(crc32Base64(data));
    });

    it('rejects a wrong CRC32 trailer with BadDigest and stores nothing', async () => {
      const data = Buffer.from('trailer data '.repeat(700));
      const body = unsignedTrailerBody(data, 2000, {
        'x-amz-checksum-crc32': crc32Base64(Buffer.from('other')),
      });
      expectS3Error(
        await signedSend(c, trailerRequest('trailer-bad', body, data.length), unsignedTrailer),
        400,
        'BadDigest',
      );
      await expectAbsent('trailer-bad');
      await expectNodesSurvived();
    });

    it('rejects a truncated aws-chunked body with a clean 400 and stores nothing', async () => {
      const data = Buffer.from('x'.repeat(9000));
      const full = unsignedTrailerBody(data, 3000, { 'x-amz-checksum-crc32': crc32Base64(data) });
      // The framing stops halfway through the second chunk; the HTTP body itself is complete.
      const cut = full.subarray(0, 3000 + 1500);
      const res = await signedSend(c, trailerRequest('truncated', cut, data.length), unsignedTrailer);
      expect(res.status, res.text).to.equal(400);
      expect(['IncompleteBody', 'MalformedTrailerError', 'InvalidRequest']).to.include(errorCode(res.text));
      await expectAbsent('truncated');
      // Decoded length larger than what the chunks carry.
      const short = unsignedTrailerBody(data.subarray(0, 5000), 3000, {
        'x-amz-checksum-crc32': crc32Base64(data.subarray(0, 5000)),
      });
      const res2 = await signedSend(c, trailerRequest('short', short, data.length), unsignedTrailer);
      expectS3Error(res2, 400, 'IncompleteBody');
      await expectAbsent('short');
      await expectNodesSurvived();
    });

    it('stores nothing when the client disconnects mid-body, and keeps serving', async () => {
      const data = Buffer.alloc(20_000, 7);
      const req: RawRequest = {
        method: 'PUT',
        path: keyPath(bucket, 'aborted'),
        headers: { 'content-length': String(data.length) },
        body: data,
      };
      const headers = await signHeaders(c, req);
      const aborted = await send(c.endpoint, { ...req, headers, sendBytes: 9000 }).then(
        () => 'answered',
        () => 'cut',
      );
      expect(aborted).to.equal('cut');
      await new Promise((r) => setTimeout(r, 200));
      await expectAbsent('aborted');
      expect((await get('hello')).status).to.equal(200);
      await expectNodesSurvived();
    });

    it('verifies Content-MD5 (BadDigest when wrong, InvalidDigest when malformed)', async () => {
      const good = createHash('md5').update('md5 body').digest('base64');
      const ok = await signedSend(c, {
        method: 'PUT',
        path: keyPath(bucket, 'md5-ok'),
        headers: { 'content-md5': good },
        body: 'md5 body',
      });
      expect(ok.status, ok.text).to.equal(200);
      const wrong = createHash('md5').update('other').digest('base64');
      expectS3Error(
        await signedSend(c, {
          method: 'PUT',
          path: keyPath(bucket, 'md5-bad'),
          headers: { 'content-md5': wrong },
          body: 'md5 body',
        }),
        400,
        'BadDigest',
      );
      await expectAbsent('md5-bad');
      expectS3Error(
        await signedSend(c, {
          method: 'PUT',
          path: keyPath(bucket, 'md5-bad'),
          headers: { 'content-md5': 'nope' },
          body: 'md5 body',
        }),
        400,
        'InvalidDigest',
      );
      await expectAbsent('md5-bad');
    });

    it('rejects a wrong x-amz-checksum-sha256 header with BadDigest', async () => {
      const res = await signedSend(c, {
        method: 'PUT',
        path: keyPath(bucket, 'sum-bad'),
        headers: { 'x-amz-checksum-sha256': createHash('sha256').update('other').digest('base64') },
        body: 'checksummed',
      });
      expectS3Error(res, 400, 'BadDigest');
      await expectAbsent('sum-bad');
    });
  });

  describe('malformed requests', () => {
    it('answers malformed DeleteObjects XML with MalformedXML', async () => {
      for (const body of ['<Delete><Object><Key>a</Key>', 'not xml at all', '<Other/>']) {
        const res = await signedSend(
          c,
          { method: 'POST', path: `/${bucket}`, query: { delete: '' }, body },
          { payload: 'sha256' },
        );
        expectS3Error(res, 400, 'MalformedXML');
      }
      expect((await get('hello')).status).to.equal(200);
    });

    it('answers unknown subresources with 501 NotImplemented', async () => {
      const res = await signedSend(
        c,
        { method: 'PUT', path: `/${bucket}`, query: { website: '' }, body: '<WebsiteConfiguration/>' },
        { payload: 'sha256' },
      );
      expectS3Error(res, 501, 'NotImplemented');
    });

    it('sends HEAD errors without a body', async () => {
      const missing = await signedSend(c, { method: 'HEAD', path: keyPath(bucket, 'no-such-key') });
      expect(missing.status).to.equal(404);
      expect(missing.body.length).to.equal(0);
      expect(missing.headers['x-amz-request-id']).to.be.a('string');
      const denied = await send(c.endpoint, { method: 'HEAD', path: keyPath(bucket, 'hello') });
      expect(denied.status).to.equal(403);
      expect(denied.body.length).to.equal(0);
      const noBucket = await signedSend(c, { method: 'HEAD', path: '/no-such-bucket' });
      expect(noBucket.status).to.equal(404);
      expect(noBucket.body.length).to.equal(0);
    });

    it('answers GET errors with full error documents (Resource and RequestId)', async () => {
      const res = await get('no such key');
      expectS3Error(res, 404, 'NoSuchKey');
      expect(xmlField(res.text, 'Resource')).to.equal(`/${bucket}/no such key`);
      expectS3Error(await signedSend(c, { method: 'GET', path: '/no-such-bucket' }), 404, 'NoSuchBucket');
    });

    it('ignores a malformed Range and rejects an unsatisfiable one with 416', async () => {
      const junk = await signedSend(c, {
        method: 'GET',
        path: keyPath(bucket, 'hello'),
        headers: { range: 'bytes=abc' },
      });
      expect(junk.status).to.equal(200);
      expect(junk.text).to.equal('hello world');
      const res = await signedSend(c, {
        method: 'GET',
        path: keyPath(bucket, 'hello'),
        headers: { range: 'bytes=50-60' },
      });
      expectS3Error(res, 416, 'InvalidRange');
      expect(res.headers['content-range']).to.equal('bytes */11');
    });

    it('treats + in a path as a literal plus, and %2B the same', async () => {
      const put = await signedSend(c, { method: 'PUT', path: `/${bucket}/a+b`, body: 'plus' });
      expect(put.status, put.text).to.equal(200);
      expect((await signedSend(c, { method: 'GET', path: `/${bucket}/a%2Bb` })).text).to.equal('plus');
      expect((await get('a b')).status).to.equal(404);
    });
  });
});
