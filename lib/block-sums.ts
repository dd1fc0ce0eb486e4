// Block checksums of a chunk (GFS and HDFS style): a CRC32C of every 64 KiB block, so any read, a
// range of a few bytes included, is checked by the blocks it touches, and bytes go out as soon as
// their block is checked instead of after a hash of the whole chunk. They are kept in a sums file
// beside the chunk file (chunk-file.ts says where):
//
//   "S3BC"        4 bytes, the format's magic
//   block bytes   uint32 big-endian (65536 as written here; a reader takes the file's own)
//   one CRC32C    uint32 big-endian per block, in order; the last block may be short
//
// CRC32C in hardware (SSE4.2 / ARMv8 CRC through @node-rs/crc32's napi build) runs at several GB/s,
// ~40x the pure-JS @aws-crypto/crc32c: cheaper than the SHA-256 it stands in for on reads.
import { crc32c } from '@node-rs/crc32';
import { Corrupt } from './errors.js';

/**
 * Bytes each checksum covers. GFS's 64 KB: a range read costs at most two blocks more than it asks
 * for, and a 64 MiB chunk's sums are 4 KiB. HDFS's 512 B would be 128 KiB of sums per such chunk.
 */
export const blockBytes = 64 * 1024;

const magic = Buffer.from('S3BC', 'latin1');
const headerBytes = 8;

/** The size of the sums file of a chunk of `size` bytes. */
export function sumsFileBytes(size: number, block = blockBytes): number {
  return headerBytes + 4 * Math.ceil(size / block);
}

/** The CRC32C of each block of a body, taken as its pieces stream past, whatever their sizes. */
export class BlockSummer {
  private readonly file: Buffer;
  private block = 0;
  /** Bytes of the current block seen so far, and their CRC. */
  private filled = 0;
  private crc = 0;

  constructor(size: number) {
    this.file = Buffer.alloc(sumsFileBytes(size));
    magic.copy(this.file, 0);
    this.file.writeUInt32BE(blockBytes, 4);
  }

  /** Callers pass no more than the size given at construction (the table would overflow). */
  update(buf: Buffer): void {
    for (let off = 0; off < buf.length; ) {
      const n = Math.min(buf.length - off, blockBytes - this.filled);
      this.crc = crc32c(buf.subarray(off, off + n), this.crc);
      this.filled += n;
      off += n;
      if (this.filled === blockBytes) this.closeBlock();
    }
  }

  /** The sums file's bytes, once the whole body has passed. */
  bytes(): Buffer {
    if (this.filled > 0) this.closeBlock();
    return this.file;
  }

  private closeBlock(): void {
    this.file.writeUInt32BE(this.crc, headerBytes + 4 * this.block);
    this.block += 1;
    this.filled = 0;
    this.crc = 0;
  }
}

/** A chunk's block checksums, read from its sums file. */
export class BlockSums {
  private constructor(
    private readonly file: Buffer,
    readonly blockBytes: number,
  ) {}

  /** Parses a sums file for a chunk of `size` bytes; a malformed one is Corrupt. */
  static parse(file: Buffer, size: number): BlockSums {
    const block = file.length >= headerBytes ? file.readUInt32BE(4) : 0;
    const ok = block > 0 && file.subarray(0, 4).equals(magic) && file.length === sumsFileBytes(size, block);
    if (!ok) throw new Corrupt(`block sums of ${file.length} bytes do not describe a ${size}-byte chunk`);
    return new BlockSums(file, block);
  }

  /**
   * Checks `data`, which holds whole blocks starting with block number `first` (the chunk's last
   * block may be short); returns the number of the first bad block, or -1 when all match.
   */
  firstBad(data: Buffer, first: number): number {
    for (let i = 0, off = 0; off < data.length; i++, off += this.blockBytes) {
      const crc = crc32c(data.subarray(off, off + this.blockBytes));
      if (crc !== this.file.readUInt32BE(headerBytes + 4 * (first + i))) return first + i;
    }
    return -1;
  }
}
