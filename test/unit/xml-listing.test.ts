// Proves the hand-tuned ListObjects/ListObjectsV2 builders in gateway/s3/xml.ts write byte for byte
// what the plain el()/xmlEscape/toISOString builders they replaced wrote (kept below as the
// reference), for tricky keys and every option, and that the documents parse back to the values.
import { expect } from 'chai';
import { parseStringPromise } from 'xml2js';
import { xmlEscape } from '../../gateway/s3/errors.js';
import {
  encodeListingValue,
  isoDate,
  type ListEntry,
  type ListObjectsV1Result,
  type ListObjectsV2Result,
  listObjectsV1Xml,
  listObjectsV2Xml,
  type Owner,
  s3Namespace,
} from '../../gateway/s3/xml.js';

// ---- the reference: the listing builders as first written ----------------------------------

function refEl(name: string, text: string | number | boolean | undefined): string {
  return text === undefined ? '' : `<${name}>${xmlEscape(String(text))}</${name}>`;
}

function refEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && /[A-Za-z0-9\-._~/]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function refDoc(inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="${s3Namespace}">${inner}</ListBucketResult>`;
}

function refOwner(owner: Owner | undefined): string {
  return owner ? `<Owner>${refEl('ID', owner.id)}${refEl('DisplayName', owner.displayName)}</Owner>` : '';
}

function refEntries(r: ListObjectsV1Result | ListObjectsV2Result, enc: (s: string) => string): string {
  const contents = r.contents
    .map(
      (e) =>
        '<Contents>' +
        refEl('Key', enc(e.key)) +
        refEl('LastModified', e.lastModified.toISOString()) +
        refEl('ETag', e.etag.startsWith('"') ? e.etag : `"${e.etag}"`) +
        refEl('Size', e.size) +
        refOwner(r.owner) +
        refEl('StorageClass', 'STANDARD') +
        refEl('ChecksumAlgorithm', e.checksumAlgorithm ?? undefined) +
        refEl('ChecksumType', e.checksumAlgorithm ? (e.checksumType ?? undefined) : undefined) +
        '</Contents>',
    )
    .join('');
  const prefixes = r.commonPrefixes.map((p) => `<CommonPrefixes>${refEl('Prefix', enc(p))}</CommonPrefixes>`);
  return contents + prefixes.join('');
}

const encOf = (t: 'url' | undefined) => (t === 'url' ? refEncode : (s: string) => s);
const opt = (v: string | undefined, enc: (s: string) => string) => (v === undefined ? undefined : enc(v));

function refV1(r: ListObjectsV1Result): string {
  const enc = encOf(r.encodingType);
  return refDoc(
    refEl('Name', r.bucket) +
      // botocore leaves a v1 Prefix undecoded, so S3 sends it as given.
      refEl('Prefix', r.prefix) +
      refEl('Marker', enc(r.marker)) +
      refEl('NextMarker', opt(r.nextMarker, enc)) +
      refEl('MaxKeys', r.maxKeys) +
      refEl('Delimiter', opt(r.delimiter, enc)) +
      refEl('IsTruncated', r.isTruncated) +
      refEl('EncodingType', r.encodingType) +
      refEntries(r, enc),
  );
}

function refV2(r: ListObjectsV2Result): string {
  const enc = encOf(r.encodingType);
  return refDoc(
    refEl('Name', r.bucket) +
      refEl('Prefix', enc(r.prefix)) +
      refEl('Delimiter', opt(r.delimiter, enc)) +
      refEl('MaxKeys', r.maxKeys) +
      refEl('KeyCount', r.contents.length + r.commonPrefixes.length) +
      refEl('IsTruncated', r.isTruncated) +
      refEl('ContinuationToken', r.continuationToken) +
      refEl('NextContinuationToken', r.nextContinuationToken) +
      refEl('StartAfter', opt(r.startAfter, enc)) +
      refEl('EncodingType', r.encodingType) +
      refEntries(r, enc),
  );
}

// ---- fixtures -------------------------------------------------------------------------------

const owner: Owner = { id: 'AKIA<&>"\'', displayName: 'o & "co"' };

/** Characters XML 1.0 allows, so a strict parser reads them back. */
const xmlCharKeys = [
  'plain/key-000001.txt',
  'é日本語/🙂',
  'sp ace/x y',
  '100%25 and %',
  'a+b=c',
  'a&b&amp;',
  '<tag attr="v">',
  "quote\"s and 'apos'",
  'trailing/',
  '/leading//double',
  'cr\r lf\n tab\t',
  ' leading and trailing ',
  '~-._',
  `long/${'k'.repeat(1019)}`, // 1024 bytes
  `long-utf8/${'é'.repeat(507)}`, // 1024 bytes
];
/** Not XML 1.0 characters: written as numeric references, as AWS does, for lenient parsers. */
const nonXmlCharKeys = ['ctl\u0001\u0008\u000b\u000c\u001f', 'nonchar\ufffe\uffff'];
const trickyKeys = [...xmlCharKeys, ...nonXmlCharKeys];

const base = Date.UTC(2024, 4, 1, 23, 59, 59, 990);

function entries(keys = trickyKeys): ListEntry[] {
  return keys.map((key, i) => ({
    key,
    lastModified: new Date(base + i * 7), // crosses midnight
    etag: i % 3 === 0 ? `"${'0123456789abcdef'.repeat(2)}-2"` : '0123456789abcdef'.repeat(2),
    size: i * 1_000_003,
    checksumAlgorithm: [null, 'CRC32', 'CRC64NVME', undefined][i % 4],
    checksumType: [null, 'FULL_OBJECT', 'COMPOSITE', undefined, null][i % 5],
  }));
}

const xmlCharPrefixes = ['dir/', 'sp ace/', 'a&<>"\'/', 'é/'];
const prefixes = [...xmlCharPrefixes, '\u0001/'];

/** What every listing case shares; each case sets its own options on top. */
function common() {
  return { bucket: 'my-bucket', maxKeys: 1000, contents: entries(), commonPrefixes: prefixes };
}

function v1Cases(): ListObjectsV1Result[] {
  const base = common();
  return [
    { ...base, prefix: '', marker: '', isTruncated: false },
    { ...base, prefix: 'a b+&/', marker: 'm+1 &<', delimiter: '/', nextMarker: 'n% é', isTruncated: true },
    {
      ...base,
      prefix: 'a b+/',
      marker: 'm+1',
      delimiter: '+',
      isTruncated: true,
      encodingType: 'url',
      owner,
    },
    { ...base, prefix: '', marker: '', isTruncated: false, owner, contents: [], commonPrefixes: [] },
  ];
}

function v2Cases(): ListObjectsV2Result[] {
  const base = common();
  return [
    { ...base, prefix: '', isTruncated: false },
    {
      ...base,
      prefix: 'sp ace/',
      delimiter: '/',
      isTruncated: true,
      continuationToken: 'MTpzbWFsbC8wMDA5OTk',
      nextContinuationToken: 'MTpz+/=',
      startAfter: 'sa<&>"\'',
    },
    {
      ...base,
      prefix: '%/',
      delimiter: '/',
      isTruncated: true,
      encodingType: 'url',
      startAfter: 'a b',
      owner,
    },
    { ...base, prefix: '', isTruncated: false, contents: [], commonPrefixes: [] },
  ];
}

type Parsed = Record<string, unknown[]> & {
  Contents?: { Key: string[]; Owner?: { ID: string[] }[]; ChecksumType?: string[] }[];
  CommonPrefixes?: { Prefix: string[] }[];
};

async function parse(xml: string): Promise<Parsed> {
  return (await parseStringPromise(xml)).ListBucketResult as Parsed;
}

// ---- tests ----------------------------------------------------------------------------------

describe('xml: listing builders', () => {
  it('ListObjects (v1) is byte-identical to the reference for tricky keys and every option', () => {
    for (const r of v1Cases()) expect(listObjectsV1Xml(r)).to.equal(refV1(r));
  });

  it('ListObjectsV2 is byte-identical to the reference for tricky keys and every option', () => {
    for (const r of v2Cases()) expect(listObjectsV2Xml(r)).to.equal(refV2(r));
  });

  it('escapes every UTF-16 code unit exactly as xmlEscape does', () => {
    const commonPrefixes: string[] = [];
    for (let c = 0; c <= 0xffff; c++) commonPrefixes.push(`p${String.fromCharCode(c)}/`);
    const r: ListObjectsV2Result = { ...v2Cases()[0], contents: [], commonPrefixes };
    expect(listObjectsV2Xml(r)).to.equal(refV2(r));
  });

  it('tricky keys, prefixes and markers parse back to the values put in', async () => {
    const [, plain, url] = v1Cases();
    const p = await parse(
      listObjectsV1Xml({ ...plain, contents: entries(xmlCharKeys), commonPrefixes: xmlCharPrefixes }),
    );
    // \r survives as a character reference (a literal one would be read as \n).
    expect(p.Contents!.map((c) => c.Key[0])).to.deep.equal(xmlCharKeys);
    expect(p.CommonPrefixes!.map((c) => c.Prefix[0])).to.deep.equal(xmlCharPrefixes);
    expect(p.Prefix[0]).to.equal('a b+&/');
    expect(p.Marker[0]).to.equal('m+1 &<');
    expect(p.NextMarker[0]).to.equal('n% é');
    expect(p.Contents![0].Owner).to.equal(undefined);

    const xml = listObjectsV1Xml(plain);
    expect(xml).to.contain('<Key>ctl&#1;&#8;&#11;&#12;&#31;</Key>');
    expect(xml).to.contain('<Key>nonchar&#65534;&#65535;</Key>');
    expect(xml).to.contain('<Prefix>&#1;/</Prefix>');

    const u = await parse(listObjectsV1Xml(url));
    expect(u.EncodingType[0]).to.equal('url');
    expect(u.Contents!.map((c) => decodeURIComponent(c.Key[0]))).to.deep.equal(trickyKeys);
    expect(u.CommonPrefixes!.map((c) => decodeURIComponent(c.Prefix[0]))).to.deep.equal(prefixes);
    expect(u.Contents![2].Key[0]).to.equal('sp%20ace/x%20y');
    expect(u.Contents![4].Key[0]).to.equal('a%2Bb%3Dc');
    expect(u.Contents!.at(-2)!.Key[0]).to.equal('ctl%01%08%0B%0C%1F');
    expect(u.Prefix[0]).to.equal('a b+/');
    expect(u.Delimiter[0]).to.equal('%2B');
    expect(u.Contents![0].Owner![0].ID[0]).to.equal(owner.id);
  });

  it('V2: tokens, StartAfter, KeyCount, ETags, checksums and owner only when given', async () => {
    const [, withTokens, withOwner] = v2Cases();
    const p = await parse(
      listObjectsV2Xml({ ...withTokens, contents: entries(xmlCharKeys), commonPrefixes: xmlCharPrefixes }),
    );
    expect(p.KeyCount[0]).to.equal(String(xmlCharKeys.length + xmlCharPrefixes.length));
    expect(p.ContinuationToken[0]).to.equal('MTpzbWFsbC8wMDA5OTk');
    expect(p.NextContinuationToken[0]).to.equal('MTpz+/=');
    expect(p.StartAfter[0]).to.equal('sa<&>"\'');
    const c = p.Contents as unknown as Record<string, string[]>[];
    expect(c[0].ETag[0]).to.equal(`"${'0123456789abcdef'.repeat(2)}-2"`);
    expect(c[1].ETag[0]).to.equal(`"${'0123456789abcdef'.repeat(2)}"`);
    expect(c[1].LastModified[0]).to.equal('2024-05-01T23:59:59.997Z');
    expect(c[2].LastModified[0]).to.equal('2024-05-02T00:00:00.004Z');
    expect(c[1].Size[0]).to.equal('1000003');
    expect(c[1].ChecksumAlgorithm[0]).to.equal('CRC32');
    expect(c[1].ChecksumType[0]).to.equal('FULL_OBJECT');
    expect(c[0].ChecksumAlgorithm).to.equal(undefined);
    expect(c[5].ChecksumType).to.equal(undefined); // CRC32 with no stored type
    expect(c[0].Owner).to.equal(undefined);

    const o = await parse(listObjectsV2Xml(withOwner));
    expect(o.Contents![0].Owner![0].ID[0]).to.equal(owner.id);
    expect(o.StartAfter[0]).to.equal('a%20b');
  });

  it('isoDate writes what toISOString writes, across days, years and out-of-range dates', () => {
    const times = [
      0,
      1,
      9,
      10,
      99,
      100,
      999,
      1000,
      86_399_999,
      86_400_000,
      Date.UTC(2000, 1, 29, 12, 34, 56, 7),
    ];
    for (let t = -1e12; t < 3e14; t += 98_765_432_111) times.push(t);
    times.push(253_402_300_799_999, 253_402_300_800_000, -1, -62_198_755_200_001, 8.64e15);
    for (const t of times) expect(isoDate(new Date(t)), String(t)).to.equal(new Date(t).toISOString());
    expect(() => isoDate(new Date(Number.NaN))).to.throw(RangeError);
  });

  it('encodeListingValue encodes every UTF-8 byte but unreserved characters and /', () => {
    expect(encodeListingValue('~a-b_c.d/E9')).to.equal('~a-b_c.d/E9');
    expect(encodeListingValue(' +%&é\u0000🙂*')).to.equal('%20%2B%25%26%C3%A9%00%F0%9F%99%82%2A');
    for (const key of trickyKeys) expect(encodeListingValue(key)).to.equal(refEncode(key));
  });
});
