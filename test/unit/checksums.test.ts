// Proves gateway/s3/checksums.ts computes AWS-compatible base64 checksums (known vectors, agreement with @aws-sdk/crc64-nvme), parses asserted checksums, verifies bodies while streaming, and builds composite and combined full-object multipart checksums.
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { expect } from 'chai';
import {
  type ChecksumAlgorithm,
  ChecksumVerifier,
  checksumAlgorithms,
  checksumBase64,
  checksumFromHeaders,
  combineCrcs,
  compositeChecksum,
  isValidChecksum,
  parseContentMd5,
} from '../../gateway/s3/checksums.js';
import { S3Error } from '../../gateway/s3/errors.js';

const hello = Buffer.from('hello world');

describe('checksums: known values', () => {
  it('CRC32 of "hello world" is 0x0d4a1185', async () => {
    expect(await checksumBase64('CRC32', hello)).to.equal(Buffer.from('0d4a1185', 'hex').toString('base64'));
  });

  it('CRC32C of "123456789" is 0xe3069283 and of "hello world" 0xc99465aa', async () => {
    expect(await checksumBase64('CRC32C', Buffer.from('123456789'))).to.equal(
      Buffer.from('e3069283', 'hex').toString('base64'),
    );
    expect(await checksumBase64('CRC32C', hello)).to.equal(Buffer.from('c99465aa', 'hex').toString('base64'));
  });

  it('CRC64NVME of "123456789" is 0xae8b14860a799888 and agrees with @aws-sdk/crc64-nvme', async () => {
    expect(await checksumBase64('CRC64NVME', Buffer.from('123456789'))).to.equal(
      Buffer.from('ae8b14860a799888', 'hex').toString('base64'),
    );
    const ref = new Crc64Nvme();
    ref.update(hello);
    expect(await checksumBase64('CRC64NVME', hello)).to.equal(
      Buffer.from(await ref.digest()).toString('base64'),
    );
  });

  it('SHA1 and SHA256 are the base64 digests', async () => {
    expect(await checksumBase64('SHA1', hello)).to.equal(createHash('sha1').update(hello).digest('base64'));
    expect(await checksumBase64('SHA256', hello)).to.equal(
      createHash('sha256').update(hello).digest('base64'),
    );
  });

  it('validates the base64 form and size per algorithm', async () => {
    for (const a of checksumAlgorithms)
      expect(isValidChecksum(a, await checksumBase64(a, hello)), a).to.equal(true);
    expect(isValidChecksum('CRC32', 'AAAAAAA=')).to.equal(false);
    expect(isValidChecksum('CRC32', 'AAAAAAAAAAA=')).to.equal(false);
    expect(isValidChecksum('CRC32', 'AA AA==')).to.equal(false);
    expect(isValidChecksum('SHA256', 'AAAAAA==')).to.equal(false);
  });
});

describe('checksums: what a request asserts', () => {
  it('reads a header value, a declared trailer, or only the SDK algorithm', () => {
    expect(checksumFromHeaders({ 'x-amz-checksum-crc32': 'DUoRhQ==' })).to.deep.equal({
      algorithm: 'CRC32',
      location: 'header',
      name: 'x-amz-checksum-crc32',
      value: 'DUoRhQ==',
    });
    expect(checksumFromHeaders({ 'x-amz-trailer': 'x-amz-checksum-crc64nvme' })).to.deep.equal({
      algorithm: 'CRC64NVME',
      location: 'trailer',
      name: 'x-amz-checksum-crc64nvme',
    });
    expect(checksumFromHeaders({ 'x-amz-sdk-checksum-algorithm': 'sha256' })?.location).to.equal('none');
    expect(checksumFromHeaders({})).to.equal(undefined);
  });

  it('rejects malformed values, several checksums, unknown algorithms and trailers', () => {
    expect(() => checksumFromHeaders({ 'x-amz-checksum-crc32': 'nope' })).to.throw(S3Error, /invalid/);
    expect(() =>
      checksumFromHeaders({ 'x-amz-checksum-crc32': 'DUoRhQ==', 'x-amz-checksum-sha1': 'x' }),
    ).to.throw(S3Error, /single/);
    expect(() => checksumFromHeaders({ 'x-amz-sdk-checksum-algorithm': 'MD5' })).to.throw(S3Error);
    expect(() => checksumFromHeaders({ 'x-amz-trailer': 'x-amz-foo' })).to.throw(S3Error);
    expect(() =>
      checksumFromHeaders({ 'x-amz-checksum-crc32': 'DUoRhQ==', 'x-amz-sdk-checksum-algorithm': 'CRC32C' }),
    ).to.throw(S3Error);
  });

  it('parses Content-MD5 and rejects a malformed one with InvalidDigest', () => {
    const md5 = createHash('md5').update(hello).digest();
    expect(parseContentMd5(md5.toString('base64'))).to.equal(md5.toString('hex'));
    expect(() => parseContentMd5('abc'))
      .to.throw(S3Error)
      .with.property('code', 'InvalidDigest');
  });
});

async function run(v: ChecksumVerifier, data: Buffer[]): Promise<void> {
  await pipeline(
    Readable.from(data),
    v,
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    }),
  );
}

describe('checksums: streaming verification', () => {
  const parts = [Buffer.from('hello'), Buffer.from(' '), Buffer.from('world')];

  it('computes md5, sha256 and the checksum and accepts matching values', async () => {
    const crc = await checksumBase64('CRC32', hello);
    const v = new ChecksumVerifier({
      algorithm: 'CRC32',
      expected: crc,
      sha256Hex: createHash('sha256').update(hello).digest('hex'),
      md5Hex: createHash('md5').update(hello).digest('hex'),
    });
    await run(v, parts);
    expect(v.result).to.deep.include({ bytes: 11, md5Hex: createHash('md5').update(hello).digest('hex') });
    expect(v.result.checksum).to.deep.equal({ algorithm: 'CRC32', value: crc });
  });

  it('reads a trailer-supplied expected value lazily and fails with BadDigest on mismatch', async () => {
    let trailer: string | undefined;
    const v = new ChecksumVerifier({ algorithm: 'CRC32', expected: () => trailer });
    trailer = 'AAAAAA==';
    try {
      await run(v, parts);
      expect.fail('should fail');
    } catch (err) {
      expect((err as S3Error).code).to.equal('BadDigest');
    }
  });

  it('fails with XAmzContentSHA256Mismatch and BadDigest (MD5)', async () => {
    for (const [opts, code] of [
      [{ sha256Hex: 'a'.repeat(64) }, 'XAmzContentSHA256Mismatch'],
      [{ md5Hex: 'a'.repeat(32) }, 'BadDigest'],
    ] as const) {
      try {
        await run(new ChecksumVerifier(opts), parts);
        expect.fail('should fail');
      } catch (err) {
        expect((err as S3Error).code).to.equal(code);
      }
    }
  });
});

describe('checksums: multipart', () => {
  const partsData = [
    Buffer.alloc(5000, 1),
    Buffer.from('second part'),
    Buffer.alloc(0),
    Buffer.alloc(70000, 7),
  ];
  const whole = Buffer.concat(partsData);

  it('composite = base64(hash(concat(raw part checksums)))-N', async () => {
    const partSums = await Promise.all(partsData.map((p) => checksumBase64('SHA256', p)));
    const raw = Buffer.concat(partSums.map((s) => Buffer.from(s, 'base64')));
    expect(await compositeChecksum('SHA256', partSums)).to.equal(
      `${createHash('sha256').update(raw).digest('base64')}-4`,
    );
  });

  for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const satisfies readonly ChecksumAlgorithm[]) {
    it(`${alg}: combining part CRCs gives the CRC of the whole object`, async () => {
      const parts = await Promise.all(
        partsData.map(async (p) => ({ checksum: await checksumBase64(alg, p), size: p.length })),
      );
      expect(combineCrcs(alg, parts)).to.equal(await checksumBase64(alg, whole));
      expect(combineCrcs(alg, parts.slice(0, 1))).to.equal(parts[0].checksum);
    });
  }
});
