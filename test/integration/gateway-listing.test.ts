// Proves ListObjects v1 and v2 return every key exactly once in UTF-8 byte order across pages, with prefix, delimiter/CommonPrefixes, markers, encoding-type=url and fetch-owner.
import {
  CreateBucketCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { signedSend, steadyEnv, xmlField } from '../helpers/s3raw.js';

const bucket = 'listing';

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** 250 keys: nested dirs, odd characters, and code points whose UTF-16 and UTF-8 orders differ. */
function makeKeys(): string[] {
  const keys: string[] = [];
  for (let i = 0; i < 200; i++)
    keys.push(`dir${i % 5}/${i % 3 === 0 ? 'sub/' : ''}file-${String(i).padStart(3, '0')}`);
  const odd = [
    'a b',
    'a+b',
    'a%b',
    '100%25',
    'é',
    'e',
    'f',
    '日本/語',
    '日本/日',
    'trailing/',
    'a//b',
    '\uff61half-width',
    '\u{1F600}emoji',
    'dir1',
    'dir1!',
    'dir1/',
    'dir10/x',
    'Z',
    '_',
    '~',
    'dir.x',
    'line\u0001ctl',
    'sp ace/x y',
    'plus+/p+q',
    'pct%/50%',
  ];
  keys.push(...odd);
  for (let i = 0; keys.length < 250; i++) keys.push(`flat-${i}`);
  return keys;
}

type Entry = { kind: 'key' | 'prefix'; value: string };

/** What S3 lists for `prefix`/`delimiter`: keys and rolled-up common prefixes, in byte order. */
function model(keys: string[], prefix: string, delimiter?: string): Entry[] {
  const out: Entry[] = [];
  const seen = new Set<string>();
  for (const k of [...keys].sort(byteOrder)) {
    if (!k.startsWith(prefix)) continue;
    const i = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
    if (i >= 0) {
      const cp = k.slice(0, i + delimiter!.length);
      if (!seen.has(cp)) out.push({ kind: 'prefix', value: cp });
      seen.add(cp);
    } else out.push({ kind: 'key', value: k });
  }
  return out;
}

function pageEntries(contents?: { Key?: string }[], prefixes?: { Prefix?: string }[]): Entry[] {
  const e: Entry[] = [
    ...(contents ?? []).map((c) => ({ kind: 'key' as const, value: c.Key! })),
    ...(prefixes ?? []).map((p) => ({ kind: 'prefix' as const, value: p.Prefix! })),
  ];
  return e.sort((a, b) => byteOrder(a.value, b.value));
}

describe('gateway listing', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let s3: S3Client;
  const keys = makeKeys();

  before(async () => {
    c = await startTestCluster({ portBase: 20200, env: steadyEnv });
    s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const queue = [...keys];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }));
        }
      }),
    );
  });
  after(async () => c?.stop());

  async function pagesV2(
    prefix: string,
    delimiter: string | undefined,
    maxKeys: number,
    startAfter?: string,
  ) {
    const got: Entry[] = [];
    let token: string | undefined;
    let pages = 0;
    for (;;) {
      const res = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix || undefined,
          Delimiter: delimiter,
          MaxKeys: maxKeys,
          ContinuationToken: token,
          StartAfter: startAfter,
        }),
      );
      pages++;
      const page = pageEntries(res.Contents, res.CommonPrefixes);
      expect(page.length).to.be.at.most(maxKeys);
      expect(res.KeyCount).to.equal(page.length);
      got.push(...page);
      if (!res.IsTruncated) {
        expect(res.NextContinuationToken).to.equal(undefined);
        break;
      }
      expect(page.length).to.equal(maxKeys);
      token = res.NextContinuationToken;
      expect(token).to.be.a('string');
      if (pages > 200) throw new Error('listing does not terminate');
    }
    return got;
  }

  async function pagesV1(prefix: string, delimiter: string | undefined, maxKeys: number) {
    const got: Entry[] = [];
    let marker: string | undefined;
    for (let pages = 0; ; pages++) {
      const res = await s3.send(
        new ListObjectsCommand({
          Bucket: bucket,
          Prefix: prefix || undefined,
          Delimiter: delimiter,
          MaxKeys: maxKeys,
          Marker: marker,
        }),
      );
      const page = pageEntries(res.Contents, res.CommonPrefixes);
      expect(page.length).to.be.at.most(maxKeys);
      got.push(...page);
      if (!res.IsTruncated) break;
      // NextMarker is only sent with a delimiter; otherwise clients continue from the last key.
      marker = delimiter ? res.NextMarker : page[page.length - 1].value;
      expect(marker).to.be.a('string');
      if (pages > 200) throw new Error('listing does not terminate');
    }
    return got;
  }

  it('lists all 250 keys in UTF-8 byte order, 7 per page (v2)', async () => {
    const got = await pagesV2('', undefined, 7);
    expect(got.map((e) => e.value)).to.deep.equal([...keys].sort(byteOrder));
  });

  it('lists all keys with v1 markers, 7 per page', async () => {
    const got = await pagesV1('', undefined, 7);
    expect(got.map((e) => e.value)).to.deep.equal([...keys].sort(byteOrder));
  });

  for (const [prefix, delimiter] of [
    ['', '/'],
    ['dir1', '/'],
    ['dir1/', '/'],
    ['dir2/', '/'],
    ['日本/', '/'],
    ['', 'e'],
    ['', 'sub/'],
  ] as const) {
    it(`rolls up common prefixes for prefix '${prefix}' delimiter '${delimiter}' across pages (v2 and v1)`, async () => {
      const want = model(keys, prefix, delimiter);
      expect(want.length).to.be.greaterThan(0);
      expect(await pagesV2(prefix, delimiter, 7)).to.deep.equal(want);
      expect(await pagesV1(prefix, delimiter, 7)).to.deep.equal(want);
      // One page holding everything agrees too.
      expect(await pagesV2(prefix, delimiter, 1000)).to.deep.equal(want);
    });
  }

  it('starts after start-after (a key, a non-key, and a common prefix)', async () => {
    const sorted = [...keys].sort(byteOrder);
    for (const after of ['dir2/file-100', 'dir2/zzz', 'e', '\uff61']) {
      const got = await pagesV2('', undefined, 9, after);
      expect(got.map((e) => e.value)).to.deep.equal(sorted.filter((k) => byteOrder(k, after) > 0));
    }
    // With a delimiter, a start-after naming a common prefix skips that whole prefix.
    const got = await pagesV2('', '/', 5, 'dir1/');
    expect(got).to.deep.equal(model(keys, '', '/').filter((e) => byteOrder(e.value, 'dir1/') > 0));
  });

  it('combines a prefix with a start-after before, inside or past it, in UTF-8 order', async () => {
    // 'dir1' is a key equal to its prefix; U+FF61 sorts before U+1F600 in UTF-8, after it in UTF-16.
    const cases: [string, string][] = [
      ['dir1', 'dir0/zzz'],
      ['dir1', 'dir1'],
      ['dir1/', 'dir1/file-050'],
      ['\u{1F600}', '\uff61'],
      ['\uff61', '\u{1F600}'],
      ['e', 'a'],
      ['e', 'z'],
    ];
    for (const [prefix, after] of cases) {
      const got = await pagesV2(prefix, undefined, 3, after);
      const want = model(keys, prefix).filter((e) => byteOrder(e.value, after) > 0);
      expect(got, `prefix ${prefix} start-after ${after}`).to.deep.equal(want);
    }
  });

  it('refuses U+0000 in keys, prefixes and markers (400, not a 500 the SDK retries)', async () => {
    for (const send of [
      () => s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'nul\0key', Body: 'x' })),
      () => s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a\0' })),
      () => s3.send(new ListObjectsCommand({ Bucket: bucket, Marker: 'a\0' })),
    ]) {
      const err = await send().then(
        () => undefined,
        (e) => e,
      );
      expect(err?.name).to.equal('InvalidArgument');
      expect(err.$metadata.httpStatusCode).to.equal(400);
    }
  });

  it('lists every key once as its latest version null (ListObjectVersions), in pages', async () => {
    const got: Entry[] = [];
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (let pages = 0; ; pages++) {
      const res = await s3.send(
        new ListObjectVersionsCommand({
          Bucket: bucket,
          Prefix: 'dir1',
          Delimiter: '/',
          MaxKeys: 4,
          KeyMarker: keyMarker,
          VersionIdMarker: versionMarker,
        }),
      );
      for (const v of res.Versions ?? []) {
        expect([v.VersionId, v.IsLatest, v.Size]).to.deep.equal(['null', true, Buffer.byteLength(v.Key!)]);
      }
      expect(res.DeleteMarkers).to.equal(undefined);
      got.push(
        ...pageEntries(
          (res.Versions ?? []).map((v) => ({ Key: v.Key })),
          res.CommonPrefixes,
        ),
      );
      if (!res.IsTruncated) break;
      keyMarker = res.NextKeyMarker;
      versionMarker = res.NextVersionIdMarker;
      expect(versionMarker).to.equal('null');
      if (pages > 50) throw new Error('listing does not terminate');
    }
    expect(got).to.deep.equal(model(keys, 'dir1', '/'));
    const bad = await s3
      .send(new ListObjectVersionsCommand({ Bucket: bucket, KeyMarker: 'a', VersionIdMarker: 'v1' }))
      .then(
        () => undefined,
        (e) => e,
      );
    expect(bad?.name).to.equal('InvalidArgument');
  });

  it('url-encodes keys, prefixes and markers with encoding-type=url', async () => {
    const res = await signedSend(c, {
      method: 'GET',
      path: `/${bucket}`,
      query: { 'list-type': '2', prefix: 'sp ace/', 'encoding-type': 'url', 'start-after': 'sp ace/' },
    });
    expect(res.status, res.text).to.equal(200);
    expect(xmlField(res.text, 'EncodingType')).to.equal('url');
    expect(xmlField(res.text, 'Key')).to.equal('sp%20ace/x%20y');
    expect(xmlField(res.text, 'Prefix')).to.equal('sp%20ace/');
    expect(xmlField(res.text, 'StartAfter')).to.equal('sp%20ace/');

    const v1 = await signedSend(c, {
      method: 'GET',
      path: `/${bucket}`,
      query: { prefix: 'p', delimiter: '+', 'encoding-type': 'url' },
    });
    expect(v1.status, v1.text).to.equal(200);
    // '+' must be %2B (a form decoder would read a bare '+' as a space).
    expect(xmlField(v1.text, 'Delimiter')).to.equal('%2B');
    expect(xmlField(v1.text, 'Key')).to.equal('pct%25/50%25');
    expect(v1.text).to.contain('<CommonPrefixes><Prefix>plus%2B</Prefix></CommonPrefixes>');

    // Through the SDK: every encoded key decodes back to the exact stored key.
    const all: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          EncodingType: 'url',
          MaxKeys: 50,
          ContinuationToken: token,
        }),
      );
      for (const o of page.Contents ?? []) {
        expect(o.Key).to.match(/^[A-Za-z0-9\-._~/%]*$/);
        all.push(decodeURIComponent(o.Key!));
      }
      token = page.NextContinuationToken;
    } while (token);
    expect(all).to.deep.equal([...keys].sort(byteOrder));
  });

  it('returns owners only when fetch-owner is set (v2), always in v1', async () => {
    const without = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 3 }));
    expect(without.Contents?.every((o) => o.Owner === undefined)).to.equal(true);
    const withOwner = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 3, FetchOwner: true }),
    );
    expect(withOwner.Contents?.map((o) => o.Owner?.ID)).to.deep.equal([
      c.accessKey,
      c.accessKey,
      c.accessKey,
    ]);
    const v1 = await s3.send(new ListObjectsCommand({ Bucket: bucket, MaxKeys: 3 }));
    expect(v1.Contents?.every((o) => o.Owner?.ID === c.accessKey)).to.equal(true);
  });

  it('reports size, ETag and LastModified per key and caps max-keys at 1000', async () => {
    const res = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a b' }));
    expect(res.Contents).to.have.length(1);
    expect(res.Contents![0].Size).to.equal(Buffer.byteLength('a b'));
    expect(res.Contents![0].ETag).to.match(/^"[0-9a-f]{32}"$/);
    expect(res.Contents![0].LastModified).to.be.instanceOf(Date);
    const big = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 5000 }));
    expect(big.Contents!.length + (big.CommonPrefixes?.length ?? 0)).to.equal(250);
    expect(big.MaxKeys).to.be.at.most(1000);
    const none = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'no-such-prefix/' }));
    expect(none.KeyCount).to.equal(0);
    expect(none.IsTruncated).to.equal(false);
  });
});
