// Proves gateway/s3/xml.ts builds well-formed, escaped S3 documents that parse back to what was put in (incl. encoding-type=url), and that its body parsers bound size and answer MalformedXML on junk.
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { parseStringPromise } from 'xml2js';
import { errorXml, S3Error } from '../../gateway/s3/errors.js';
import {
  completeMultipartUploadXml,
  deleteResultXml,
  encodeListingValue,
  listAllMyBucketsXml,
  listMultipartUploadsXml,
  listObjectsV1Xml,
  listObjectsV2Xml,
  listPartsXml,
  locationConstraintXml,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteObjects,
  readBodyBounded,
} from '../../gateway/s3/xml.js';

const owner = { id: 'owner-id', displayName: 'owner & co' };
const when = new Date('2024-05-01T12:00:00.123Z');

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect((err as S3Error).code, String(err)).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

describe('xml: builders', () => {
  it('escapes text in the error document and includes extra fields', async () => {
    const err = new S3Error('RequestTimeTooSkewed', 'a < b & "c"', { extra: { ServerTime: 'now' } });
    const parsed = await parseStringPromise(errorXml(err, '/b/k<&>', 'req-1'));
    expect(parsed.Error.Code[0]).to.equal('RequestTimeTooSkewed');
    expect(parsed.Error.Message[0]).to.equal('a < b & "c"');
    expect(parsed.Error.Resource[0]).to.equal('/b/k<&>');
    expect(parsed.Error.ServerTime[0]).to.equal('now');
    expect(parsed.Error.RequestId[0]).to.equal('req-1');
  });

  it('lists buckets with ISO dates including milliseconds', async () => {
    const parsed = await parseStringPromise(
      listAllMyBucketsXml(owner, { buckets: [{ name: 'b1', creationDate: when, region: 'us-east-1' }] }),
    );
    const r = parsed.ListAllMyBucketsResult;
    expect(r.Owner[0].DisplayName[0]).to.equal('owner & co');
    expect(r.Buckets[0].Bucket[0].CreationDate[0]).to.equal('2024-05-01T12:00:00.123Z');
    expect(r.Buckets[0].Bucket[0].BucketRegion[0]).to.equal('us-east-1');
    expect(r.ContinuationToken).to.equal(undefined);
  });

  it('ListObjectsV2: quoted ETags, KeyCount, STANDARD class, odd keys round-trip escaped', async () => {
    const keys = ['a&b', '<tag>', 'quote"s', 'é'];
    const xml = listObjectsV2Xml({
      bucket: 'b',
      prefix: '',
      delimiter: '/',
      maxKeys: 1000,
      isTruncated: true,
      nextContinuationToken: 'tok+/=',
      contents: keys.map((key) => ({ key, lastModified: when, etag: 'abc', size: 3 })),
      commonPrefixes: ['dir/'],
    });
    const r = (await parseStringPromise(xml)).ListBucketResult;
    expect(r.Contents.map((c: { Key: string[] }) => c.Key[0])).to.deep.equal(keys);
    expect(r.Contents[0].ETag[0]).to.equal('"abc"');
    expect(r.Contents[0].StorageClass[0]).to.equal('STANDARD');
    expect(r.Contents[0].Owner).to.equal(undefined);
    expect(r.KeyCount[0]).to.equal('5');
    expect(r.NextContinuationToken[0]).to.equal('tok+/=');
    expect(r.CommonPrefixes[0].Prefix[0]).to.equal('dir/');
  });

  it('encoding-type=url percent-encodes keys, prefixes, delimiter and markers (space %20, + %2B, / kept)', async () => {
    const xml = listObjectsV1Xml({
      bucket: 'b',
      prefix: 'a b/',
      delimiter: '/',
      marker: 'm+1',
      nextMarker: 'n%',
      maxKeys: 2,
      isTruncated: true,
      encodingType: 'url',
      contents: [{ key: 'a b/c+d\u0001é', lastModified: when, etag: '"e"', size: 1 }],
      commonPrefixes: ['a b/x y/'],
      owner,
    });
    const r = (await parseStringPromise(xml)).ListBucketResult;
    expect(r.Contents[0].Key[0]).to.equal('a%20b/c%2Bd%01%C3%A9');
    expect(decodeURIComponent(r.Contents[0].Key[0])).to.equal('a b/c+d\u0001é');
    // A v1 Prefix goes back as sent (botocore does not decode it).
    expect(r.Prefix[0]).to.equal('a b/');
    expect(r.Marker[0]).to.equal('m%2B1');
    expect(r.NextMarker[0]).to.equal('n%25');
    expect(r.CommonPrefixes[0].Prefix[0]).to.equal('a%20b/x%20y/');
    expect(r.EncodingType[0]).to.equal('url');
    expect(r.Contents[0].Owner[0].ID[0]).to.equal('owner-id');
    expect(encodeListingValue('~a-b_c.d')).to.equal('~a-b_c.d');
  });

  it('control characters in keys are emitted as character references when not url-encoded', () => {
    const xml = listObjectsV2Xml({
      bucket: 'b',
      prefix: '',
      maxKeys: 1,
      isTruncated: false,
      contents: [{ key: 'a\u0001b', lastModified: when, etag: 'e', size: 0 }],
      commonPrefixes: [],
    });
    expect(xml).to.contain('<Key>a&#1;b</Key>');
  });

  it('location, delete result (quiet omits Deleted), multipart documents', async () => {
    expect(locationConstraintXml('us-east-1')).to.match(/<LocationConstraint[^>]*><\/LocationConstraint>/);
    expect(locationConstraintXml('eu-west-1')).to.contain('>eu-west-1<');
    const outcome = {
      deleted: [{ key: 'a' }],
      errors: [{ key: 'b', code: 'AccessDenied', message: 'no' }],
    };
    const loud = (await parseStringPromise(deleteResultXml(outcome, false))).DeleteResult;
    expect(loud.Deleted[0].Key[0]).to.equal('a');
    const quiet = (await parseStringPromise(deleteResultXml(outcome, true))).DeleteResult;
    expect(quiet.Deleted).to.equal(undefined);
    expect(quiet.Error[0].Code[0]).to.equal('AccessDenied');
    const done = (
      await parseStringPromise(
        completeMultipartUploadXml({
          location: 'http://h/b/k',
          bucket: 'b',
          key: 'k',
          etag: 'abc-2',
          checksums: { CRC32: 'AAAAAA==' },
          checksumType: 'COMPOSITE',
        }),
      )
    ).CompleteMultipartUploadResult;
    expect(done.ETag[0]).to.equal('"abc-2"');
    expect(done.ChecksumCRC32[0]).to.equal('AAAAAA==');
    const parts = (
      await parseStringPromise(
        listPartsXml({
          bucket: 'b',
          key: 'k',
          uploadId: 'u',
          partNumberMarker: 0,
          nextPartNumberMarker: 1,
          maxParts: 1,
          isTruncated: true,
          parts: [{ partNumber: 1, lastModified: when, etag: 'p1', size: 5 }],
          owner,
        }),
      )
    ).ListPartsResult;
    expect(parts.Part[0].PartNumber[0]).to.equal('1');
    const uploads = (
      await parseStringPromise(
        listMultipartUploadsXml({
          bucket: 'b',
          keyMarker: '',
          uploadIdMarker: '',
          prefix: '',
          maxUploads: 1000,
          isTruncated: false,
          uploads: [{ key: 'k k', uploadId: 'u', initiated: when }],
          commonPrefixes: [],
          encodingType: 'url',
        }),
      )
    ).ListMultipartUploadsResult;
    expect(uploads.Upload[0].Key[0]).to.equal('k%20k');
  });
});

describe('xml: parsers', () => {
  it('parses DeleteObjects with Quiet, keys with spaces and entities, and version ids', async () => {
    const body = Buffer.from(
      '<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>' +
        '<Object><Key>a b&amp;c</Key></Object><Object><Key>x</Key><VersionId>v1</VersionId></Object></Delete>',
    );
    expect(await parseDeleteObjects(body)).to.deep.equal({
      quiet: true,
      objects: [{ key: 'a b&c' }, { key: 'x', versionId: 'v1' }],
    });
  });

  it('answers MalformedXML for junk, wrong roots, missing keys, zero or more than 1000 objects', async () => {
    await rejectsWith(parseDeleteObjects(Buffer.from('not xml')), 'MalformedXML');
    await rejectsWith(parseDeleteObjects(Buffer.from('<Other/>')), 'MalformedXML');
    await rejectsWith(parseDeleteObjects(Buffer.from('<Delete><Object></Object></Delete>')), 'MalformedXML');
    await rejectsWith(parseDeleteObjects(Buffer.from('<Delete></Delete>')), 'MalformedXML');
    await rejectsWith(
      parseDeleteObjects(Buffer.from('<Delete><Object><Key>a</Key></Object>')),
      'MalformedXML',
    );
    const many = `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`;
    await rejectsWith(parseDeleteObjects(Buffer.from(many)), 'MalformedXML');
    const thousand = `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1000)}</Delete>`;
    expect((await parseDeleteObjects(Buffer.from(thousand))).objects).to.have.length(1000);
  });

  it('bounds body size', async () => {
    await rejectsWith(parseDeleteObjects(Buffer.alloc(3 * 1024 * 1024, 32)), 'MaxMessageLengthExceeded');
    await rejectsWith(
      readBodyBounded(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), 1000),
      'MaxMessageLengthExceeded',
    );
    expect((await readBodyBounded(Readable.from([Buffer.alloc(600)]), 1000)).length).to.equal(600);
  });

  it('parses CompleteMultipartUpload parts with quoted ETags and checksums; enforces order and range', async () => {
    const body = Buffer.from(
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"aa"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>' +
        '<Part><ETag>bb</ETag><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>',
    );
    expect(await parseCompleteMultipartUpload(body)).to.deep.equal([
      { partNumber: 1, etag: 'aa', checksums: { CRC32: 'AAAAAA==' } },
      { partNumber: 3, etag: 'bb', checksums: {} },
    ]);
    const part = (n: number) => `<Part><PartNumber>${n}</PartNumber><ETag>e</ETag></Part>`;
    const doc = (...n: number[]) =>
      Buffer.from(`<CompleteMultipartUpload>${n.map(part).join('')}</CompleteMultipartUpload>`);
    await rejectsWith(parseCompleteMultipartUpload(doc(2, 1)), 'InvalidPartOrder');
    await rejectsWith(parseCompleteMultipartUpload(doc(1, 1)), 'InvalidPartOrder');
    await rejectsWith(parseCompleteMultipartUpload(doc(0)), 'InvalidArgument');
    await rejectsWith(parseCompleteMultipartUpload(doc(10001)), 'InvalidArgument');
    await rejectsWith(parseCompleteMultipartUpload(doc()), 'MalformedXML');
    await rejectsWith(
      parseCompleteMultipartUpload(Buffer.from('<CompleteMultipartUpload><Part>')),
      'MalformedXML',
    );
  });

  it('parses CreateBucketConfiguration, accepting an empty body', async () => {
    expect(await parseCreateBucketConfiguration(Buffer.alloc(0))).to.deep.equal({});
    expect(
      await parseCreateBucketConfiguration(
        Buffer.from(
          '<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>',
        ),
      ),
    ).to.deep.equal({ locationConstraint: 'eu-west-1' });
    await rejectsWith(parseCreateBucketConfiguration(Buffer.from('<x>')), 'MalformedXML');
  });
});
