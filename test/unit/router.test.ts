// Proves gateway/s3/router.ts maps every supported request to its AWS operation (path and virtual-host style, odd keys, copy sources, typed query values) and answers 501 / InvalidBucketName / KeyTooLongError / InvalidArgument where S3 does.
import { expect } from 'chai';
import { S3Error } from '../../gateway/s3/errors.js';
import {
  bucketNameProblem,
  parseCopySource,
  parseRequest,
  type RouterRequest,
  type S3Request,
  splitUrl,
} from '../../gateway/s3/router.js';

function route(
  method: string,
  url: string,
  headers: Record<string, string> = {},
  domain?: string,
): S3Request {
  const { rawPath, rawQuery } = splitUrl(url);
  const req: RouterRequest = { method, rawPath, rawQuery, headers: { host: 'localhost:9000', ...headers } };
  return parseRequest(req, { domain });
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(S3Error);
    return (err as S3Error).code;
  }
  return 'none';
}

describe('router: operations', () => {
  const cases: [string, string, Record<string, string>, string][] = [
    ['GET', '/', {}, 'ListBuckets'],
    ['PUT', '/bucket', {}, 'CreateBucket'],
    ['PUT', '/bucket/', {}, 'CreateBucket'],
    ['HEAD', '/bucket', {}, 'HeadBucket'],
    ['DELETE', '/bucket', {}, 'DeleteBucket'],
    ['GET', '/bucket?location', {}, 'GetBucketLocation'],
    ['GET', '/bucket?versions', {}, 'ListObjectVersions'],
    ['GET', '/bucket', {}, 'ListObjects'],
    ['GET', '/bucket?list-type=2', {}, 'ListObjectsV2'],
    ['GET', '/bucket?uploads', {}, 'ListMultipartUploads'],
    ['POST', '/bucket?delete', {}, 'DeleteObjects'],
    ['GET', '/bucket?versioning', {}, 'GetBucketVersioning'],
    ['GET', '/bucket?acl', {}, 'GetBucketAcl'],
    ['GET', '/bucket?policy', {}, 'GetBucketPolicy'],
    ['GET', '/bucket?cors', {}, 'GetBucketCors'],
    ['GET', '/bucket?lifecycle', {}, 'GetBucketLifecycleConfiguration'],
    ['GET', '/bucket?encryption', {}, 'GetBucketEncryption'],
    ['GET', '/bucket?tagging', {}, 'GetBucketTagging'],
    ['PUT', '/bucket/key', {}, 'PutObject'],
    ['PUT', '/bucket/key?x-id=PutObject', {}, 'PutObject'],
    ['PUT', '/bucket/key', { 'x-amz-copy-source': 'src/k' }, 'CopyObject'],
    ['GET', '/bucket/key', {}, 'GetObject'],
    ['HEAD', '/bucket/key', {}, 'HeadObject'],
    ['DELETE', '/bucket/key', {}, 'DeleteObject'],
    ['GET', '/bucket/key?acl', {}, 'GetObjectAcl'],
    ['GET', '/bucket/key?tagging', {}, 'GetObjectTagging'],
    ['PUT', '/bucket/key?tagging', {}, 'PutObjectTagging'],
    ['DELETE', '/bucket/key?tagging', {}, 'DeleteObjectTagging'],
    ['PUT', '/bucket?tagging', {}, 'PutBucketTagging'],
    ['DELETE', '/bucket?tagging', {}, 'DeleteBucketTagging'],
    ['POST', '/bucket/key?uploads', {}, 'CreateMultipartUpload'],
    ['PUT', '/bucket/key?partNumber=1&uploadId=u', {}, 'UploadPart'],
    ['PUT', '/bucket/key?partNumber=2&uploadId=u', { 'x-amz-copy-source': '/src/k' }, 'UploadPartCopy'],
    ['POST', '/bucket/key?uploadId=u', {}, 'CompleteMultipartUpload'],
    ['DELETE', '/bucket/key?uploadId=u', {}, 'AbortMultipartUpload'],
    ['GET', '/bucket/key?uploadId=u', {}, 'ListParts'],
  ];
  for (const [method, url, headers, op] of cases)
    it(`${method} ${url}${headers['x-amz-copy-source'] ? ' (copy)' : ''} → ${op}`, () => {
      expect(route(method, url, headers).op).to.equal(op);
    });

  it('parses listing parameters', () => {
    const r = route(
      'GET',
      '/b?list-type=2&prefix=a+b%2B&delimiter=%2F&max-keys=5000&start-after=x&continuation-token=t&encoding-type=url&fetch-owner=true',
    );
    expect(r).to.deep.include({
      op: 'ListObjectsV2',
      bucket: 'b',
      prefix: 'a b+',
      delimiter: '/',
      maxKeys: 1000,
      startAfter: 'x',
      continuationToken: 't',
      encodingType: 'url',
      fetchOwner: true,
    });
    const v1 = route('GET', '/b?marker=m&max-keys=0');
    expect(v1).to.deep.include({ op: 'ListObjects', marker: 'm', maxKeys: 0, prefix: '' });
    const up = route('GET', '/b?uploads&key-marker=k&upload-id-marker=u&max-uploads=2');
    expect(up).to.deep.include({ keyMarker: 'k', uploadIdMarker: 'u', maxUploads: 2 });
    const lp = route('GET', '/b/k?uploadId=u&max-parts=3&part-number-marker=7');
    expect(lp).to.deep.include({ uploadId: 'u', maxParts: 3, partNumberMarker: 7 });
  });

  it('parses GetObject partNumber, versionId and response overrides', () => {
    const r = route(
      'GET',
      '/b/k?partNumber=3&versionId=null&response-content-type=text%2Fplain&response-content-disposition=attachment%3B%20filename%3D%22a%20b%22',
    );
    expect(r).to.deep.include({ op: 'GetObject', partNumber: 3, versionId: 'null' });
    if (r.op !== 'GetObject') throw new Error('unreachable');
    expect(r.responseOverrides).to.deep.equal({
      contentType: 'text/plain',
      contentDisposition: 'attachment; filename="a b"',
    });
  });
});

describe('router: keys and addressing', () => {
  const keys: [string, string][] = [
    ['/b/a%20b', 'a b'],
    ['/b/a+b', 'a+b'],
    ['/b/a%2Bb', 'a+b'],
    ['/b/100%25', '100%'],
    ['/b/dir/', 'dir/'],
    ['/b/a//b', 'a//b'],
    ['/b//lead', '/lead'],
    ['/b/a%2Fb', 'a/b'],
    ['/b/%C3%A9/%E6%97%A5', 'é/日'],
    ['/b/%26%2B-%C3%A9%22', '&+-é"'],
    ['/b/sp%20ace%20', 'sp ace '],
  ];
  for (const [path, key] of keys)
    it(`path ${path} → key ${JSON.stringify(key)}`, () => {
      expect(route('GET', path)).to.deep.include({ op: 'GetObject', bucket: 'b', key });
    });

  it('virtual-host style when Host is <bucket>.<domain>[:port]', () => {
    expect(route('GET', '/a%20b/c', { host: 'my.bucket.s3.local:9000' }, 's3.local')).to.deep.include({
      op: 'GetObject',
      bucket: 'my.bucket',
      key: 'a b/c',
    });
    expect(route('GET', '/', { host: 'bkt.s3.local' }, 's3.local').op).to.equal('ListObjects');
    expect(route('GET', '/', { host: 's3.local:9000' }, 's3.local').op).to.equal('ListBuckets');
    expect(route('GET', '/bkt/k', { host: 'localhost:9000' }, 's3.local')).to.deep.include({
      bucket: 'bkt',
      key: 'k',
    });
    expect(route('GET', '/bkt/k', { host: 'x.s3.local' })).to.deep.include({ bucket: 'bkt', key: 'k' });
  });

  it('1024-byte keys pass, 1025 bytes → KeyTooLongError', () => {
    expect(code(() => route('PUT', `/b/${'é'.repeat(512)}`))).to.equal('none');
    expect(code(() => route('PUT', `/b/${'a'.repeat(1025)}`))).to.equal('KeyTooLongError');
    expect(code(() => route('PUT', `/b/${encodeURIComponent('é'.repeat(512))}x`))).to.equal(
      'KeyTooLongError',
    );
  });

  it('malformed percent escapes and invalid UTF-8 → InvalidURI', () => {
    expect(code(() => route('GET', '/b/%zz'))).to.equal('InvalidURI');
    expect(code(() => route('GET', '/b/%FF'))).to.equal('InvalidURI');
  });
});

describe('router: copy source', () => {
  it('decodes bucket, key and versionId', () => {
    expect(parseCopySource('src/a%20b%3Fc')).to.deep.equal({ bucket: 'src', key: 'a b?c' });
    expect(parseCopySource('/src/dir/k%2B1?versionId=v1')).to.deep.equal({
      bucket: 'src',
      key: 'dir/k+1',
      versionId: 'v1',
    });
    expect(parseCopySource('src/%C3%A9')).to.deep.equal({ bucket: 'src', key: 'é' });
    expect(code(() => parseCopySource('src'))).to.equal('InvalidArgument');
    expect(code(() => parseCopySource('src/'))).to.equal('InvalidArgument');
    expect(code(() => parseCopySource('/k'))).to.equal('InvalidArgument');
  });
});

describe('router: errors', () => {
  it('unknown subresources → the NotImplemented endpoint (answered 501 after auth)', () => {
    for (const [m, u] of [
      ['PUT', '/b?acl'],
      ['PUT', '/b?versioning'],
      ['DELETE', '/b?versions'],
      ['PUT', '/b?policy'],
      ['PUT', '/b?website'],
      ['PUT', '/b/k?attributes'],
      ['POST', '/b/k?restore'],
      ['POST', '/b/k?select&select-type=2'],
      ['POST', '/b'],
      ['GET', '/b/k?uploadId=u&tagging'],
    ]) {
      const req = route(m, u);
      expect(req, `${m} ${u}`).to.deep.include({ op: 'NotImplemented', bucket: 'b' });
    }
  });

  it('unsupported methods → MethodNotAllowed', () => {
    expect(code(() => route('PATCH', '/b/k'))).to.equal('MethodNotAllowed');
    expect(code(() => route('PUT', '/'))).to.equal('MethodNotAllowed');
  });

  it('part numbers 1..10000; max-keys must be a non-negative integer; only encoding-type=url', () => {
    expect(code(() => route('PUT', '/b/k?partNumber=0&uploadId=u'))).to.equal('InvalidArgument');
    expect(code(() => route('PUT', '/b/k?partNumber=10001&uploadId=u'))).to.equal('InvalidArgument');
    expect(code(() => route('PUT', '/b/k?partNumber=abc&uploadId=u'))).to.equal('InvalidArgument');
    expect(code(() => route('PUT', '/b/k?uploadId=u'))).to.equal('InvalidArgument');
    expect(code(() => route('PUT', '/b/k?partNumber=10000&uploadId=u'))).to.equal('none');
    expect(code(() => route('GET', '/b/k?partNumber=0'))).to.equal('InvalidArgument');
    expect(code(() => route('GET', '/b?max-keys=-1'))).to.equal('InvalidArgument');
    expect(code(() => route('GET', '/b?max-keys=ten'))).to.equal('InvalidArgument');
    expect(code(() => route('GET', '/b?encoding-type=base64'))).to.equal('InvalidArgument');
    expect(code(() => route('GET', '/b?list-type=3'))).to.equal('InvalidArgument');
  });

  it('bucket name rules apply on CreateBucket only', () => {
    for (const bad of [
      'ab',
      'a'.repeat(64),
      'Upper',
      'under_score',
      '-start',
      'end-',
      'a..b',
      '192.168.1.1',
      'xn--abc',
      'abc-s3alias',
    ])
      expect(
        code(() => route('PUT', `/${bad}`)),
        bad,
      ).to.equal('InvalidBucketName');
    for (const good of ['abc', 'a'.repeat(63), 'my.bucket-1', '1bucket', '192.168.1.1a'])
      expect(bucketNameProblem(good), good).to.equal(undefined);
    expect(route('GET', '/Upper_Case/k').op).to.equal('GetObject');
  });
});
