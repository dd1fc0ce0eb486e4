// The chunk block-sums format: a CRC32C per 64 KiB block written as bytes stream in (checked against
// an independent CRC32C), and reads of any range that hand out only bytes of blocks that passed,
// failing at the first bad block; chunks without sums (the format before) are checked whole.
import { open, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Crc32c } from '@aws-crypto/crc32c';
import { expect } from 'chai';
import { BlockSummer, BlockSums, blockBytes, sumsFileBytes } from '../../lib/block-sums.js';
import { type ChunkPaths, readChunkFile, tempSumsFile, writeChunkFile } from '../../lib/chunk-file.js';
import { Corrupt } from '../../lib/errors.js';
import { bytes } from '../helpers/bytes.js';
import { expectReject, piecewise, sha256Of } from '../helpers/chunk-store-contract.js';
import { tempDir } from '../helpers/db.js';

/** The sums file as the format describes it, computed with another CRC32C implementation. */
function expectedSums(data: Buffer): Buffer {
  const out = Buffer.alloc(sumsFileBytes(data.length));
  out.write('S3BC', 0, 'latin1');
  out.writeUInt32BE(blockBytes, 4);
  for (let b = 0; b * blockBytes < data.length; b++) {
    const crc = new Crc32c().update(data.subarray(b * blockBytes, (b + 1) * blockBytes)).digest();
    out.writeUInt32BE(crc, 8 + 4 * b);
  }
  return out;
}

/** All a stream yields before it ends or fails, and how it failed. */
async function drain(stream: NodeJS.ReadableStream): Promise<{ got: Buffer; err?: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const p of stream) parts.push(p as Buffer);
    return { got: Buffer.concat(parts) };
  } catch (err) {
    return { got: Buffer.concat(parts), err };
  }
}

describe('block sums', () => {
  it('sums each 64 KiB block whatever the pieces the body arrives in', () => {
    for (const size of [0, 1, blockBytes - 1, blockBytes, blockBytes + 1, 5 * blockBytes - 7]) {
      const data = bytes(size, size + 1);
      for (const piece of [1000, blockBytes, 3 * blockBytes + 5]) {
        const summer = new BlockSummer(size);
        for (let i = 0; i < size; i += piece) summer.update(data.subarray(i, i + piece));
        expect(summer.bytes().equals(expectedSums(data)), `${size} bytes in ${piece}-byte pieces`).to.equal(
          true,
        );
      }
    }
  });

  it('finds the first bad block and refuses sums that do not describe the chunk', () => {
    const data = bytes(3 * blockBytes + 10, 2);
    const sums = BlockSums.parse(expectedSums(data), data.length);
    expect(sums.firstBad(data, 0)).to.equal(-1);
    expect(sums.firstBad(data.subarray(2 * blockBytes), 2)).to.equal(-1);
    const bad = Buffer.from(data);
    bad[2 * blockBytes + 5] ^= 1;
    expect(sums.firstBad(bad, 0)).to.equal(2);
    expect(sums.firstBad(bad.subarray(blockBytes), 1)).to.equal(2);

    const good = expectedSums(data);
    expect(() => BlockSums.parse(good, data.length + blockBytes)).to.throw(Corrupt);
    expect(() => BlockSums.parse(good.subarray(0, 6), data.length)).to.throw(Corrupt);
    const magic = Buffer.from(good);
    magic[0] ^= 1;
    expect(() => BlockSums.parse(magic, data.length)).to.throw(Corrupt);
    const zero = Buffer.from(good);
    zero.writeUInt32BE(0, 4);
    expect(() => BlockSums.parse(zero, data.length)).to.throw(Corrupt);
  });
});

describe('chunk files with block sums', () => {
  let dir: string;
  // 10 blocks and a bit: four read pieces of four blocks, the last one short.
  const data = bytes(10 * blockBytes + 1234, 3);
  const sha = sha256Of(data);
  let files: ChunkPaths;

  beforeEach(async () => {
    dir = tempDir('s3dfs-blocks-');
    files = { data: path.join(dir, 'chunk'), sums: tempSumsFile(path.join(dir, 'chunk')) };
    await writeChunkFile(files.data, piecewise(data, 10_000), data.length, { create: true, hash: true });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function flip(at: number): Promise<void> {
    const fh = await open(files.data, 'r+');
    const b = Buffer.alloc(3);
    await fh.read(b, 0, 3, at);
    for (let i = 0; i < 3; i++) b[i] ^= 0xa5;
    await fh.write(b, 0, 3, at);
    await fh.close();
  }

  const ranges: [number, number][] = [
    [0, data.length - 1],
    [5, 10],
    [blockBytes - 3, blockBytes + 3],
    [3 * blockBytes + 17, 8 * blockBytes + 99],
    [data.length - 1234, data.length + 10_000],
  ];

  it('writes the sums beside the chunk as its bytes stream in, and serves any range of it', async () => {
    expect((await readFile(files.sums)).equals(expectedSums(data))).to.equal(true);
    expect((await readFile(files.data)).equals(data)).to.equal(true);
    for (const [start, end] of ranges) {
      const read = await readChunkFile(files, sha, { range: { start, end } });
      const { got, err } = await drain(read.stream);
      expect(err).to.equal(undefined);
      expect(got.equals(data.subarray(start, end + 1)), `${start}-${end}`).to.equal(true);
      expect(read.length).to.equal(got.length);
    }
    const whole = await readChunkFile(files, sha);
    expect((await drain(whole.stream)).got.equals(data)).to.equal(true);
  });

  it('refuses before the first byte a read whose first piece holds a bad block', async () => {
    await flip(6 * blockBytes + 100);
    const corrupt: number[] = [];
    const onCorrupt = (ino: number) => corrupt.push(ino);
    for (const [start, end] of [
      [6 * blockBytes + 200, 6 * blockBytes + 300],
      [5 * blockBytes, 7 * blockBytes],
      [4 * blockBytes + 1, 6 * blockBytes + 99],
    ]) {
      await expectReject(readChunkFile(files, sha, { range: { start, end }, onCorrupt }), Corrupt);
    }
    expect(corrupt).to.have.length(3);
  });

  it('hands out only the checked blocks before a bad one, then fails the stream', async () => {
    await flip(9 * blockBytes + 10);
    let corrupt = 0;
    const whole = await readChunkFile(files, sha, { onCorrupt: () => corrupt++ });
    const { got, err } = await drain(whole.stream);
    expect(err).to.be.instanceOf(Corrupt);
    // Pieces of four blocks: blocks 0-7 went out, the piece holding block 9 did not.
    expect(got.length).to.equal(8 * blockBytes);
    expect(got.equals(data.subarray(0, got.length))).to.equal(true);
    expect(corrupt).to.equal(1);
    // A range that ends before the bad block never reads it.
    const before = await readChunkFile(files, sha, { range: { start: 100, end: 9 * blockBytes - 1 } });
    expect((await drain(before.stream)).got.equals(data.subarray(100, 9 * blockBytes))).to.equal(true);
  });

  it('fails reads through a damaged sums file', async () => {
    const sums = await readFile(files.sums);
    sums[8 + 4 * 2] ^= 1;
    await writeFile(files.sums, sums);
    await expectReject(
      readChunkFile(files, sha, { range: { start: 2 * blockBytes, end: 2 * blockBytes } }),
      Corrupt,
    );
    await writeFile(files.sums, sums.subarray(0, sums.length - 4));
    await expectReject(readChunkFile(files, sha, { range: { start: 0, end: 0 } }), Corrupt);
  });

  it('checks a chunk without sums (the format before them) whole, for ranges too', async () => {
    await unlink(files.sums);
    const range = await readChunkFile(files, sha, { range: { start: 5, end: 10 } });
    expect((await drain(range.stream)).got.equals(data.subarray(5, 11))).to.equal(true);
    await flip(9 * blockBytes);
    // Far from the damage, and still refused: a chunk without sums has no smaller check.
    await expectReject(readChunkFile(files, sha, { range: { start: 5, end: 10 } }), Corrupt);
    await expectReject(readChunkFile(files, sha), Corrupt);
  });
});
