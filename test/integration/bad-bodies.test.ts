// Proves a client that half-closes after a short or truncated body gets 400 IncompleteBody (and nothing is stored), and a client still sending an oversized XML body reads its 400 MaxMessageLengthExceeded instead of a reset.
import net from 'node:net';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { bytes } from '../helpers/bytes.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import {
  expectS3Error,
  keyPath,
  queryString,
  type RawRequest,
  signedChunkedBody,
  signHeaders,
  signingKey,
  steadyEnv,
  unsignedTrailerBody,
} from '../helpers/s3raw.js';

const bucket = 'bad-bodies';
const chunk = 64 * 1024;

interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/**
 * Writes `head` and `body` on a raw socket, then half-closes (socket.end()) and reads until the
 * gateway closes: the client a short body comes from, still waiting for the answer. Rejects on a
 * reset, and when no answer arrives in time.
 */
function halfClosedExchange(endpoint: string, head: string, body: Buffer): Promise<Answer> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const parts: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 10 s'));
    }, 10_000);
    socket.on('data', (b: Buffer) => parts.push(b));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseAnswer(Buffer.concat(parts)));
      } catch (err) {
        reject(err);
      }
    });
    socket.write(head);
    socket.end(body);
  });
}

function parseAnswer(raw: Buffer): Answer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP answer, got ${JSON.stringify(raw.toString('latin1'))}`);
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  const text = raw.subarray(end + 4, end + 4 + length).toString('utf8');
  return { status: Number(statusLine.split(' ')[1]), headers, text };
}

/**
 * Writes the whole request before reading anything, as botocore and other blocking clients do:
 * a gateway that resets the connection while the body is still arriving fails it with EPIPE or
 * ECONNRESET. Resolves with the first answer on the connection.
 */
function sendWholeThenRead(endpoint: string, head: string, body: Buffer): Promise<Answer> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.pause();
    const parts: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 30 s'));
    }, 30_000);
    const done = (err?: Error, answer?: Answer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer as Answer);
    };
    socket.on('error', (err) => done(err));
    socket.on('data', (b: Buffer) => {
      parts.push(b);
      const answer = completeAnswer(Buffer.concat(parts));
      if (answer) done(undefined, answer);
    });
    socket.on('close', () => done(new Error('connection closed before a whole answer')));
    socket.write(head);
    socket.write(body, () => socket.resume());
  });
}

/** The answer in `raw` once its headers and Content-Length bytes of body are there. */
function completeAnswer(raw: Buffer): Answer | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const answer = parseAnswer(raw);
  return raw.length - end - 4 >= Number(answer.headers['content-length'] ?? 0) ? answer : undefined;
}

function requestHead(req: RawRequest, headers: Record<string, string>): string {
  const q = queryString(req.query);
  let head = `${req.method} ${req.path}${q ? `?${q}` : ''} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  return `${head}\r\n`;
}

describe('bad request bodies', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let s3: S3Client;

  async function expectAbsent(key: string): Promise<void> {
    const err = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
      () => undefined,
      (e: S3ServiceException) => e,
    );
    expect(err?.$metadata.httpStatusCode, `${key} must not exist`).to.equal(404);
  }

  /** Sends the first `sendBytes` of a PUT whose headers announce `contentLength`, then half-closes. */
  async function shortPut(
    req: RawRequest,
    contentLength: number,
    body: Buffer,
    payload = 'UNSIGNED-PAYLOAD',
  ): Promise<Answer> {
    const headers = await signHeaders(
      c,
      { ...req, headers: { ...req.headers, 'content-length': String(contentLength) } },
      { payload },
    );
    return halfClosedExchange(c.endpoint, requestHead(req, headers), body);
  }

  before(async () => {
    c = await startTestCluster({ portBase: 29000, chunkSize: chunk, env: steadyEnv });
    s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    s3?.destroy();
    await c?.stop();
  });

  it('PutObject: fewer bytes than Content-Length, then a half-close, answers 400 IncompleteBody and stores nothing', async () => {
    // One size kept inline in the metadata row, one written as chunks to the storage nodes.
    for (const [key, size] of [
      ['short-inline', 10_000],
      ['short-chunks', 3 * chunk + 100],
    ] as const) {
      const data = bytes(size);
      const res = await shortPut(
        { method: 'PUT', path: keyPath(bucket, key) },
        size,
        data.subarray(0, size >> 1),
      );
      expectS3Error(res, 400, 'IncompleteBody');
      await expectAbsent(key);
    }
  });

  it('UploadPart: fewer bytes than Content-Length, then a half-close, answers 400 IncompleteBody and records no part', async () => {
    const Key = 'short-part';
    const UploadId = (await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }))).UploadId!;
    const size = 2 * chunk;
    const res = await shortPut(
      { method: 'PUT', path: keyPath(bucket, Key), query: { partNumber: '1', uploadId: UploadId } },
      size,
      bytes(size).subarray(0, chunk + 10),
    );
    expectS3Error(res, 400, 'IncompleteBody');
    const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key, UploadId }));
    expect(parts.Parts ?? []).to.deep.equal([]);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    await expectAbsent(Key);
  });

  it('STREAMING-UNSIGNED-PAYLOAD-TRAILER cut before its final chunk, then a half-close, answers 400 IncompleteBody', async () => {
    const key = 'cut-trailer';
    const data = bytes(3 * chunk);
    const full = unsignedTrailerBody(data, chunk, { 'x-amz-checksum-crc32': 'AAAAAA==' });
    const res = await shortPut(
      {
        method: 'PUT',
        path: keyPath(bucket, key),
        headers: {
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'x-amz-trailer': 'x-amz-checksum-crc32',
        },
      },
      full.length,
      full.subarray(0, 2 * chunk),
      'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    );
    expectS3Error(res, 400, 'IncompleteBody');
    await expectAbsent(key);
  });

  it('STREAMING-AWS4-HMAC-SHA256-PAYLOAD cut before its final chunk, then a half-close, answers 400 IncompleteBody', async () => {
    const key = 'cut-signed';
    const data = bytes(3 * chunk);
    // The encoded length does not depend on signature values, so it can be signed first.
    const encodedLength = signedChunkedBody(data, chunk, {
      key: Buffer.alloc(32),
      datetime: '20200101T000000Z',
      seed: '0',
    }).length;
    const req: RawRequest = {
      method: 'PUT',
      path: keyPath(bucket, key),
      headers: {
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(data.length),
        'content-length': String(encodedLength),
      },
    };
    const headers = await signHeaders(c, req, { payload: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' });
    const datetime = headers['x-amz-date'];
    const seed = /Signature=([0-9a-f]{64})/.exec(headers.authorization)![1];
    const full = signedChunkedBody(data, chunk, {
      key: signingKey(c.secretKey, datetime.slice(0, 8)),
      datetime,
      seed,
    });
    expect(full.length).to.equal(encodedLength);
    // Every data chunk is there, whole and correctly signed; only the final 0-chunk is missing.
    const finalChunkBytes = `0;chunk-signature=${'0'.repeat(64)}\r\n\r\n`.length;
    const res = await halfClosedExchange(
      c.endpoint,
      requestHead(req, headers),
      full.subarray(0, full.length - finalChunkBytes),
    );
    expectS3Error(res, 400, 'IncompleteBody');
    await expectAbsent(key);
  });

  it('a whole PutObject body followed by a half-close still gets its 200', async () => {
    const key = 'whole-then-half-close';
    const data = bytes(3 * chunk + 100);
    const res = await shortPut({ method: 'PUT', path: keyPath(bucket, key) }, data.length, data);
    expect(res.status, res.text).to.equal(200);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    expect(head.ContentLength).to.equal(data.length);
  });

  /** Signs `req` (UNSIGNED-PAYLOAD) for a body of `body.length` bytes and sends it with sendWholeThenRead. */
  async function oversized(req: RawRequest, body: Buffer): Promise<Answer> {
    const headers = await signHeaders(
      c,
      { ...req, headers: { ...req.headers, 'content-length': String(body.length) } },
      { payload: 'UNSIGNED-PAYLOAD' },
    );
    return sendWholeThenRead(c.endpoint, requestHead(req, headers), body);
  }

  it('DeleteObjects with a 10 MB body: a client still sending reads 400 MaxMessageLengthExceeded; nothing is deleted', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'keep', Body: 'kept' }));
    // ~10 MB of XML: 'keep' and 41000 keys of 220 bytes.
    let xml = '<Delete><Object><Key>keep</Key></Object>';
    for (let i = 0; i < 41_000; i++)
      xml += `<Object><Key>${String(i).padStart(6, '0')}-${'k'.repeat(213)}</Key></Object>`;
    const body = Buffer.from(`${xml}</Delete>`);
    expect(body.length).to.be.above(10_000_000);
    const res = await oversized({ method: 'POST', path: `/${bucket}`, query: { delete: '' } }, body);
    expectS3Error(res, 400, 'MaxMessageLengthExceeded');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'keep' }));
    expect(head.ContentLength).to.equal(4);
  });

  it('CompleteMultipartUpload with a 10 MB body: a client still sending reads 400 MaxMessageLengthExceeded', async () => {
    const Key = 'big-complete';
    const UploadId = (await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }))).UploadId!;
    // ~10 MB of XML: 130000 parts of ~80 bytes.
    let xml = '<CompleteMultipartUpload>';
    for (let i = 1; i <= 130_000; i++)
      xml += `<Part><PartNumber>${i}</PartNumber><ETag>"${'e'.repeat(32)}"</ETag></Part>`;
    const body = Buffer.from(`${xml}</CompleteMultipartUpload>`);
    expect(body.length).to.be.above(10_000_000);
    const res = await oversized(
      { method: 'POST', path: keyPath(bucket, Key), query: { uploadId: UploadId } },
      body,
    );
    expectS3Error(res, 400, 'MaxMessageLengthExceeded');
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    await expectAbsent(Key);
  });
});
