// Proves gateway/s3/sigv4.ts accepts exactly what @smithy/signature-v4 and the AWS documentation sign (headers, presigned, odd keys) and rejects tampering, expiry, skew, wrong region and unknown keys.
import { createHmac } from 'node:crypto';
import { Sha256 } from '@aws-crypto/sha256-js';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { expect } from 'chai';
import { S3Error } from '../../gateway/s3/errors.js';
import { type AuthRequest, authenticate, canonicalQuery, uriEncode } from '../../gateway/s3/sigv4.js';

const AK = 'AKIAIOSFODNN7EXAMPLE';
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const lookupSecret = async (ak: string) => (ak === AK ? SK : undefined);
const now = new Date('2024-05-01T12:00:00Z');

async function rejects(p: Promise<unknown>, code: string): Promise<S3Error> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(S3Error);
    expect((err as S3Error).code, (err as S3Error).message).to.equal(code);
    return err as S3Error;
  }
  expect.fail(`expected ${code}`);
}

/** Per-segment encoding the S3 SDK applies to keys (extendedEncodeURIComponent, '/' kept). */
function encodeKey(key: string): string {
  return key
    .split('/')
    .map((s) =>
      encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
}

function rawQueryOf(query: Record<string, string | string[]>): string {
  const parts: string[] = [];
  for (const k of Object.keys(query).sort()) {
    const vs = query[k];
    for (const v of Array.isArray(vs) ? vs : [vs]) parts.push(`${uriEncode(k)}=${uriEncode(v)}`);
  }
  return parts.join('&');
}

interface Spec {
  method?: string;
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  region?: string;
  date?: Date;
}

function signer(region = 'us-east-1') {
  return new SignatureV4({
    credentials: { accessKeyId: AK, secretAccessKey: SK },
    region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: true,
  });
}

async function signHeaders(spec: Spec): Promise<AuthRequest> {
  const req = new HttpRequest({
    method: spec.method ?? 'GET',
    protocol: 'http:',
    hostname: 'localhost',
    port: 9000,
    path: spec.path,
    query: spec.query ?? {},
    headers: { host: 'localhost:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...spec.headers },
  });
  const signed = await signer(spec.region).sign(req, { signingDate: spec.date ?? now });
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) headers[k.toLowerCase()] = v;
  return { method: signed.method, rawPath: spec.path, rawQuery: rawQueryOf(spec.query ?? {}), headers };
}

async function presign(spec: Spec, expiresIn = 3600): Promise<AuthRequest> {
  const req = new HttpRequest({
    method: spec.method ?? 'GET',
    protocol: 'http:',
    hostname: 'localhost',
    port: 9000,
    path: spec.path,
    query: spec.query ?? {},
    // As @aws-sdk/s3-request-presigner does: UNSIGNED-PAYLOAD, hoisted into the query; content-type unsigned.
    headers: { host: 'localhost:9000', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...spec.headers },
  });
  const signed = await signer(spec.region).presign(req, {
    signingDate: spec.date ?? now,
    expiresIn,
    unsignableHeaders: new Set(['content-type']),
  });
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) headers[k.toLowerCase()] = v;
  return {
    method: signed.method,
    rawPath: spec.path,
    rawQuery: rawQueryOf(signed.query as Record<string, string>),
    headers,
  };
}

const oddKeys = [
  'plain.txt',
  'a b',
  'a+b',
  '100%',
  'é/ü/日本語',
  'x=y&z',
  "it's (a) *star*!",
  'dir/',
  'a//b',
  '~tilde_-.',
  'key%2Fwith%2Fencoded',
  '"quotes"<>#?',
];

describe('sigv4: header auth matches @smithy/signature-v4', () => {
  for (const key of oddKeys) {
    it(`verifies a signed GET of key ${JSON.stringify(key)}`, async () => {
      const req = await signHeaders({ path: `/bucket/${encodeKey(key)}` });
      const res = await authenticate(req, { lookupSecret, now });
      expect(res.accessKey).to.equal(AK);
      expect(res.kind).to.equal('header');
      expect(res.payload.mode).to.equal('unsigned');
    });
  }

  it('verifies query values with = & + spaces, empty values and repeated keys', async () => {
    const req = await signHeaders({
      path: '/bucket',
      query: {
        prefix: 'a=b&c+d e',
        delimiter: '/',
        'list-type': '2',
        'continuation-token': 'abc==',
        uploads: '',
        'start-after': 'é%',
        multi: ['z', 'a'],
      },
    });
    await authenticate(req, { lookupSecret, now });
  });

  it('verifies several signed headers, with blanks squeezed, and a sha256 payload', async () => {
    const sha = 'a'.repeat(64);
    const req = await signHeaders({
      method: 'PUT',
      path: '/bucket/obj',
      headers: {
        'content-type': 'text/plain;   charset=utf-8',
        'x-amz-meta-note': '  spaced   out  value ',
        'x-amz-content-sha256': sha,
        'content-length': '12',
      },
    });
    const res = await authenticate(req, { lookupSecret, now });
    expect(res.payload).to.deep.equal({ mode: 'sha256', sha256: sha });
    // The server may see the value with its raw spacing; canonicalization squeezes it the same way.
    req.headers['x-amz-meta-note'] = '  spaced   out  value ';
    await authenticate(req, { lookupSecret, now });
  });

  it('joins repeated raw headers with a comma like the signers', async () => {
    const req = await signHeaders({ path: '/bucket/k', headers: { 'x-amz-meta-multi': 'one,two' } });
    const rawHeaders: string[] = [];
    for (const [k, v] of Object.entries(req.headers)) {
      if (k === 'x-amz-meta-multi') rawHeaders.push('X-Amz-Meta-Multi', 'one', 'x-amz-meta-multi', ' two');
      else rawHeaders.push(k, String(v));
    }
    await authenticate({ ...req, rawHeaders }, { lookupSecret, now });
  });

  it('accepts a path that a client left partly unencoded when re-encoding reproduces the signature', async () => {
    const req = await signHeaders({ path: `/bucket/${encodeKey("it's (x)")}` });
    await authenticate({ ...req, rawPath: "/bucket/it's%20(x)" }, { lookupSecret, now });
  });

  it('reports streaming modes with what the chunk decoder needs', async () => {
    const req = await signHeaders({
      method: 'PUT',
      path: '/bucket/k',
      headers: {
        'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'x-amz-trailer': 'x-amz-checksum-crc32',
      },
    });
    const res = await authenticate(req, { lookupSecret, now });
    expect(res.payload.mode).to.equal('streaming-unsigned-trailer');
    expect(res.signing?.scope).to.equal('20240501/us-east-1/s3/aws4_request');
    expect(res.signing?.datetime).to.equal('20240501T120000Z');
    expect(res.signing?.seedSignature).to.match(/^[0-9a-f]{64}$/);
  });
});

describe('sigv4: tampering', () => {
  it('fails with SignatureDoesNotMatch for any single-byte change of the path', async () => {
    const req = await signHeaders({ path: `/bucket/${encodeKey('a b+c/é')}` });
    for (let i = 0; i < req.rawPath.length; i++) {
      const c = req.rawPath[i];
      const rawPath = req.rawPath.slice(0, i) + (c === 'Z' ? 'Y' : 'Z') + req.rawPath.slice(i + 1);
      await rejects(authenticate({ ...req, rawPath }, { lookupSecret, now }), 'SignatureDoesNotMatch');
    }
  });

  it('fails for any single-byte change of the query, a signed header value, the method or the signature', async () => {
    const req = await signHeaders({
      path: '/bucket',
      query: { prefix: 'p q', 'max-keys': '5' },
      headers: { 'x-amz-meta-a': 'value' },
    });
    const tamper = (s: string, i: number) => s.slice(0, i) + (s[i] === 'Z' ? 'Y' : 'Z') + s.slice(i + 1);
    for (let i = 0; i < req.rawQuery.length; i++)
      await rejects(
        authenticate({ ...req, rawQuery: tamper(req.rawQuery, i) }, { lookupSecret, now }),
        'SignatureDoesNotMatch',
      );
    for (const h of ['host', 'x-amz-meta-a']) {
      const v = String(req.headers[h]);
      for (let i = 0; i < v.length; i++)
        await rejects(
          authenticate({ ...req, headers: { ...req.headers, [h]: tamper(v, i) } }, { lookupSecret, now }),
          'SignatureDoesNotMatch',
        );
    }
    await rejects(authenticate({ ...req, method: 'PUT' }, { lookupSecret, now }), 'SignatureDoesNotMatch');
    const authz = String(req.headers.authorization);
    const sigAt = authz.indexOf('Signature=') + 'Signature='.length;
    for (let i = sigAt; i < authz.length; i++) {
      const s = authz.slice(0, i) + (authz[i] === '0' ? '1' : '0') + authz.slice(i + 1);
      await rejects(
        authenticate({ ...req, headers: { ...req.headers, authorization: s } }, { lookupSecret, now }),
        'SignatureDoesNotMatch',
      );
    }
  });

  it('fails when a signed payload hash is changed or an unsigned header is signed differently', async () => {
    const req = await signHeaders({
      method: 'PUT',
      path: '/b/k',
      headers: { 'x-amz-content-sha256': 'b'.repeat(64) },
    });
    await rejects(
      authenticate(
        { ...req, headers: { ...req.headers, 'x-amz-content-sha256': 'c'.repeat(64) } },
        { lookupSecret, now },
      ),
      'SignatureDoesNotMatch',
    );
    await rejects(
      authenticate(
        { ...req, headers: { ...req.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } },
        { lookupSecret, now },
      ),
      'SignatureDoesNotMatch',
    );
  });

  it('gives the canonical request and string to sign as hints', async () => {
    const req = await signHeaders({ path: '/bucket/k' });
    const err = await rejects(
      authenticate({ ...req, rawPath: '/bucket/j' }, { lookupSecret, now }),
      'SignatureDoesNotMatch',
    );
    expect(err.extra?.CanonicalRequest).to.match(/^GET\n\/bucket\/j\n/);
    expect(err.extra?.StringToSign).to.match(/^AWS4-HMAC-SHA256\n20240501T120000Z\n/);
  });
});

describe('sigv4: credentials, time and region', () => {
  it('refuses an unknown access key with InvalidAccessKeyId', async () => {
    const req = await signHeaders({ path: '/b/k' });
    await rejects(authenticate(req, { lookupSecret: async () => undefined, now }), 'InvalidAccessKeyId');
  });

  it('refuses a wrong secret with SignatureDoesNotMatch', async () => {
    const req = await signHeaders({ path: '/b/k' });
    await rejects(
      authenticate(req, { lookupSecret: async () => 'other-secret', now }),
      'SignatureDoesNotMatch',
    );
  });

  it('refuses anonymous requests with AccessDenied, and checks SigV2 signatures (RFC 2104 HMAC-SHA1)', async () => {
    await rejects(
      authenticate({ method: 'GET', rawPath: '/', rawQuery: '', headers: {} }, { lookupSecret, now }),
      'AccessDenied',
    );
    await rejects(
      authenticate(
        { method: 'GET', rawPath: '/', rawQuery: '', headers: { authorization: `AWS ${AK}:abc=` } },
        { lookupSecret, now },
      ),
      'AccessDenied', // no Date
    );
    // The string to sign spelled out: the virtual-host bucket, the path, the signed subresource.
    const date = now.toUTCString();
    const toSign = `PUT\n\ntext/plain\n${date}\nx-amz-meta-a:1,2\n/bkt/k%20y?acl`;
    const sig = createHmac('sha1', SK).update(toSign).digest('base64');
    const req = {
      method: 'PUT',
      rawPath: '/k%20y',
      rawQuery: 'acl',
      headers: {
        host: 'bkt.s3.test:9000',
        date,
        'content-type': 'text/plain',
        'x-amz-meta-a': ['1', '2'],
        authorization: `AWS ${AK}:${sig}`,
      },
    };
    const res = await authenticate(req, { lookupSecret, now, domain: 's3.test' });
    expect(res).to.include({ accessKey: AK, kind: 'header' });
    expect(res.payload.mode).to.equal('unsigned');
    await rejects(
      authenticate({ ...req, rawQuery: 'acl&uploads' }, { lookupSecret, now, domain: 's3.test' }),
      'SignatureDoesNotMatch',
    );
    // Signed for another bucket (path style, no bucket in the resource) and sent to bucket `bkt`
    // with a trailing dot on the Host, which the router still reads as bucket `bkt`.
    const pathStyle = createHmac('sha1', SK).update(toSign.replace('/bkt/k%20y', '/k%20y')).digest('base64');
    await rejects(
      authenticate(
        {
          ...req,
          headers: { ...req.headers, host: 'bkt.s3.test.', authorization: `AWS ${AK}:${pathStyle}` },
        },
        { lookupSecret, now, domain: 's3.test' },
      ),
      'SignatureDoesNotMatch',
    );
  });

  it('refuses a request more than 15 minutes off with RequestTimeTooSkewed carrying both times', async () => {
    const req = await signHeaders({ path: '/b/k', date: new Date(now.getTime() - 16 * 60 * 1000) });
    const err = await rejects(authenticate(req, { lookupSecret, now }), 'RequestTimeTooSkewed');
    expect(err.status).to.equal(403);
    expect(err.extra?.RequestTime).to.equal('20240501T114400Z');
    expect(err.extra?.ServerTime).to.equal('2024-05-01T12:00:00Z');
    const ok = await signHeaders({ path: '/b/k', date: new Date(now.getTime() + 14 * 60 * 1000) });
    await authenticate(ok, { lookupSecret, now });
  });

  it('accepts any region by default and names the expected one when configured', async () => {
    const req = await signHeaders({ path: '/b/k', region: 'eu-west-3' });
    const res = await authenticate(req, { lookupSecret, now });
    expect(res.region).to.equal('eu-west-3');
    await authenticate(req, { lookupSecret, now, region: 'eu-west-3' });
    const err = await rejects(
      authenticate(req, { lookupSecret, now, region: 'us-east-1' }),
      'AuthorizationHeaderMalformed',
    );
    expect(err.message).to.contain("expecting 'us-east-1'");
    expect(err.extra?.Region).to.equal('us-east-1');
  });

  it('requires x-amz-content-sha256 for header auth and rejects junk values', async () => {
    const req = await signHeaders({ path: '/b/k' });
    const { 'x-amz-content-sha256': _, ...without } = req.headers;
    await rejects(authenticate({ ...req, headers: without }, { lookupSecret, now }), 'InvalidRequest');
    await rejects(
      authenticate(
        { ...req, headers: { ...req.headers, 'x-amz-content-sha256': 'nope' } },
        { lookupSecret, now },
      ),
      'InvalidArgument',
    );
  });

  it('rejects a malformed Authorization header', async () => {
    const base = { method: 'GET', rawPath: '/', rawQuery: '' };
    await rejects(
      authenticate(
        {
          ...base,
          headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AK/2024/us-east-1/s3/aws4_request' },
        },
        { lookupSecret, now },
      ),
      'AuthorizationHeaderMalformed',
    );
    const req = await signHeaders({ path: '/b/k' });
    const authz = String(req.headers.authorization).replace('/s3/', '/ec2/');
    await rejects(
      authenticate({ ...req, headers: { ...req.headers, authorization: authz } }, { lookupSecret, now }),
      'AuthorizationHeaderMalformed',
    );
  });
});

describe('sigv4: presigned URLs', () => {
  for (const key of oddKeys) {
    it(`verifies a presigned GET of key ${JSON.stringify(key)}`, async () => {
      const req = await presign({
        path: `/bucket/${encodeKey(key)}`,
        query: { 'response-content-type': 'text/plain; a=b' },
      });
      const res = await authenticate(req, { lookupSecret, now: new Date(now.getTime() + 60_000) });
      expect(res.kind).to.equal('presigned');
      expect(res.payload.mode).to.equal('unsigned');
    });
  }

  it('verifies a presigned PUT with a signed header', async () => {
    const req = await presign({
      method: 'PUT',
      path: '/bucket/k',
      headers: { 'content-md5': 'XUFAKrxLKna5cZ2REBfFkg==' },
    });
    expect(req.rawQuery).to.contain('X-Amz-SignedHeaders=content-md5%3Bhost');
    await authenticate(req, { lookupSecret, now });
    await rejects(
      authenticate(
        { ...req, headers: { ...req.headers, 'content-md5': 'AAAAKrxLKna5cZ2REBfFkg==' } },
        { lookupSecret, now },
      ),
      'SignatureDoesNotMatch',
    );
  });

  it('refuses an expired URL with AccessDenied "Request has expired"', async () => {
    const req = await presign({ path: '/bucket/k' }, 60);
    await authenticate(req, { lookupSecret, now: new Date(now.getTime() + 59_000) });
    const err = await rejects(
      authenticate(req, { lookupSecret, now: new Date(now.getTime() + 61_000) }),
      'AccessDenied',
    );
    expect(err.message).to.equal('Request has expired');
  });

  it('refuses X-Amz-Expires over 7 days and missing parameters', async () => {
    const req = await presign({ path: '/bucket/k' }, 3600);
    await rejects(
      authenticate(
        { ...req, rawQuery: req.rawQuery.replace('X-Amz-Expires=3600', 'X-Amz-Expires=604801') },
        { lookupSecret, now },
      ),
      'AuthorizationQueryParametersError',
    );
    await rejects(
      authenticate(
        { ...req, rawQuery: req.rawQuery.replace(/&?X-Amz-SignedHeaders=[^&]*/, '') },
        { lookupSecret, now },
      ),
      'AuthorizationQueryParametersError',
    );
  });

  it('fails on a tampered query value and on the Authorization header together with query auth', async () => {
    const req = await presign({ path: '/bucket/k', query: { 'response-content-type': 'a' } });
    await rejects(
      authenticate(
        { ...req, rawQuery: req.rawQuery.replace('response-content-type=a', 'response-content-type=b') },
        { lookupSecret, now },
      ),
      'SignatureDoesNotMatch',
    );
    await rejects(
      authenticate(
        { ...req, headers: { ...req.headers, authorization: 'AWS4-HMAC-SHA256 x' } },
        { lookupSecret, now },
      ),
      'InvalidArgument',
    );
  });

  it('refuses a wrong region when one is configured', async () => {
    const req = await presign({ path: '/bucket/k', region: 'ap-south-1' });
    await rejects(
      authenticate(req, { lookupSecret, now, region: 'us-east-1' }),
      'AuthorizationQueryParametersError',
    );
  });
});

// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html (examples)
describe('sigv4: AWS documentation examples', () => {
  const docNow = new Date('2013-05-24T00:05:00Z');
  const cred = `Credential=${AK}/20130524/us-east-1/s3/aws4_request`;
  const emptySha = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

  it('GET Object with Range', async () => {
    const res = await authenticate(
      {
        method: 'GET',
        rawPath: '/test.txt',
        rawQuery: '',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          range: 'bytes=0-9',
          'x-amz-content-sha256': emptySha,
          'x-amz-date': '20130524T000000Z',
          authorization: `AWS4-HMAC-SHA256 ${cred},SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41`,
        },
      },
      { lookupSecret, now: docNow },
    );
    expect(res.payload).to.deep.equal({ mode: 'sha256', sha256: emptySha });
  });

  it('PUT Object with a Date header and an encoded $ in the key', async () => {
    await authenticate(
      {
        method: 'PUT',
        rawPath: '/test%24file.text',
        rawQuery: '',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          date: 'Fri, 24 May 2013 00:00:00 GMT',
          'x-amz-date': '20130524T000000Z',
          'x-amz-storage-class': 'REDUCED_REDUNDANCY',
          'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
          authorization: `AWS4-HMAC-SHA256 ${cred},SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd`,
        },
      },
      { lookupSecret, now: docNow },
    );
  });

  it('GET Bucket lifecycle (?lifecycle, an empty query value)', async () => {
    await authenticate(
      {
        method: 'GET',
        rawPath: '/',
        rawQuery: 'lifecycle',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          'x-amz-date': '20130524T000000Z',
          'x-amz-content-sha256': emptySha,
          authorization: `AWS4-HMAC-SHA256 ${cred},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543`,
        },
      },
      { lookupSecret, now: docNow },
    );
  });

  it('GET Bucket (list objects) with a sorted query', async () => {
    await authenticate(
      {
        method: 'GET',
        rawPath: '/',
        rawQuery: 'max-keys=2&prefix=J',
        headers: {
          host: 'examplebucket.s3.amazonaws.com',
          'x-amz-date': '20130524T000000Z',
          'x-amz-content-sha256': emptySha,
          authorization: `AWS4-HMAC-SHA256 ${cred},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7`,
        },
      },
      { lookupSecret, now: docNow },
    );
  });

  it('presigned GET Object', async () => {
    const res = await authenticate(
      {
        method: 'GET',
        rawPath: '/test.txt',
        rawQuery:
          'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
        headers: { host: 'examplebucket.s3.amazonaws.com' },
      },
      { lookupSecret, now: docNow },
    );
    expect(res.kind).to.equal('presigned');
  });

  it('streaming PUT seed signature (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', async () => {
    const res = await authenticate(
      {
        method: 'PUT',
        rawPath: '/examplebucket/chunkObject.txt',
        rawQuery: '',
        headers: {
          host: 's3.amazonaws.com',
          'x-amz-date': '20130524T000000Z',
          'x-amz-storage-class': 'REDUCED_REDUNDANCY',
          'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': '66560',
          'content-length': '66824',
          authorization: `AWS4-HMAC-SHA256 ${cred},SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9`,
        },
      },
      { lookupSecret, now: docNow },
    );
    expect(res.payload.mode).to.equal('streaming-signed');
    expect(res.signing?.seedSignature).to.equal(
      '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    );
  });
});

describe('sigv4: canonical query', () => {
  it('sorts by encoded key then value and keeps empty values as key=', () => {
    expect(
      canonicalQuery([
        ['b', '2'],
        ['a', ''],
        ['b', '1'],
        ['A', 'x y'],
      ]),
    ).to.equal('A=x%20y&a=&b=1&b=2');
  });
});
