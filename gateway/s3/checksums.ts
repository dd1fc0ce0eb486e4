// Streaming x-amz-checksum-* hashers (CRC32, CRC32C, CRC64NVME, SHA1, SHA256), the request's asserted
// checksum, and multipart checksums (composite "-N" and full-object CRC combination).
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { crc32c } from '@node-rs/crc32';
import { S3Error } from './errors.js';

export const checksumAlgorithms = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof checksumAlgorithms)[number];

/** Header (and trailer) name carrying each algorithm's value. */
export const checksumHeader: Record<ChecksumAlgorithm, string> = {
  CRC32: 'x-amz-checksum-crc32',
  CRC32C: 'x-amz-checksum-crc32c',
  CRC64NVME: 'x-amz-checksum-crc64nvme',
  SHA1: 'x-amz-checksum-sha1',
  SHA256: 'x-amz-checksum-sha256',
};

/** Raw digest sizes: a value is valid base64 of exactly this many bytes. */
export const checksumBytes: Record<ChecksumAlgorithm, number> = {
  CRC32: 4,
  CRC32C: 4,
  CRC64NVME: 8,
  SHA1: 20,
  SHA256: 32,
};

/** XML element names in CompleteMultipartUpload / ListParts / GetObjectAttributes. */
export const checksumXmlName: Record<ChecksumAlgorithm, string> = {
  CRC32: 'ChecksumCRC32',
  CRC32C: 'ChecksumCRC32C',
  CRC64NVME: 'ChecksumCRC64NVME',
  SHA1: 'ChecksumSHA1',
  SHA256: 'ChecksumSHA256',
};

export function parseChecksumAlgorithm(raw: string): ChecksumAlgorithm {
  const up = raw.trim().toUpperCase();
  if ((checksumAlgorithms as readonly string[]).includes(up)) return up as ChecksumAlgorithm;
  throw new S3Error(
    'InvalidRequest',
    `Checksum algorithm provided is unsupported. Please try again with any of the valid types: [${checksumAlgorithms.join(', ')}]`,
  );
}

export function algorithmOfHeader(name: string): ChecksumAlgorithm | undefined {
  const lower = name.trim().toLowerCase();
  return checksumAlgorithms.find((a) => checksumHeader[a] === lower);
}

// ---- hashers -------------------------------------------------------------------------------

export interface Checksummer {
  readonly algorithm: ChecksumAlgorithm;
  update(data: Uint8Array): void;
  /** Raw big-endian digest bytes. Call once. */
  digest(): Promise<Buffer>;
}

class Crc32Hasher implements Checksummer {
  readonly algorithm = 'CRC32' as const;
  private crc = 0;
  update(data: Uint8Array): void {
    this.crc = zlib.crc32(data, this.crc);
  }
  async digest(): Promise<Buffer> {
    return uint32Bytes(this.crc);
  }
}

/** In hardware through @node-rs/crc32 (as the chunks' block sums are): ~40x the pure-JS CRC32C. */
class Crc32cHasher implements Checksummer {
  readonly algorithm = 'CRC32C' as const;
  private crc = 0;
  update(data: Uint8Array): void {
    this.crc = crc32c(Buffer.from(data.buffer, data.byteOffset, data.byteLength), this.crc);
  }
  async digest(): Promise<Buffer> {
    return uint32Bytes(this.crc);
  }
}

class Crc64Hasher implements Checksummer {
  readonly algorithm = 'CRC64NVME' as const;
  private readonly h = new Crc64Nvme();
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  async digest(): Promise<Buffer> {
    return Buffer.from(await this.h.digest());
  }
}

class ShaHasher implements Checksummer {
  private readonly h: Hash;
  constructor(readonly algorithm: 'SHA1' | 'SHA256') {
    this.h = createHash(algorithm === 'SHA1' ? 'sha1' : 'sha256');
  }
  update(data: Uint8Array): void {
    this.h.update(data);
  }
  async digest(): Promise<Buffer> {
    return this.h.digest();
  }
}

export function createChecksummer(algorithm: ChecksumAlgorithm): Checksummer {
  switch (algorithm) {
    case 'CRC32':
      return new Crc32Hasher();
    case 'CRC32C':
      return new Crc32cHasher();
    case 'CRC64NVME':
      return new Crc64Hasher();
    case 'SHA1':
    case 'SHA256':
      return new ShaHasher(algorithm);
  }
}

/** One-shot base64 checksum of a buffer. */
export async function checksumBase64(algorithm: ChecksumAlgorithm, data: Uint8Array): Promise<string> {
  const h = createChecksummer(algorithm);
  h.update(data);
  return (await h.digest()).toString('base64');
}

function uint32Bytes(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** True when `value` is canonical base64 of exactly the algorithm's digest size. */
export function isValidChecksum(algorithm: ChecksumAlgorithm, value: string): boolean {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return false;
  const raw = Buffer.from(value, 'base64');
  return raw.length === checksumBytes[algorithm] && raw.toString('base64') === value;
}

// ---- what the request asserts --------------------------------------------------------------

export interface AssertedChecksum {
  algorithm: ChecksumAlgorithm;
  /** 'header': value known now; 'trailer': value arrives in the aws-chunked trailer named `name`;
   * 'none': only the algorithm was named (x-amz-sdk-checksum-algorithm): compute and store it. */
  location: 'header' | 'trailer' | 'none';
  /** The x-amz-checksum-* name (header or trailer). */
  name: string;
  value?: string;
}

/**
 * The checksum a PutObject/UploadPart request asserts, from x-amz-checksum-* headers, a declared
 * x-amz-trailer, or x-amz-sdk-checksum-algorithm. Only what the request asserts is verified
 * (S3-PITFALLS 2). Throws InvalidRequest for several checksums, a malformed value or an unknown name.
 */
export function checksumFromHeaders(headers: IncomingHttpHeaders): AssertedChecksum | undefined {
  const present = checksumAlgorithms.filter((a) => headers[checksumHeader[a]] !== undefined);
  const sdkRaw = single(headers['x-amz-sdk-checksum-algorithm']);
  const sdk = sdkRaw === undefined || sdkRaw === '' ? undefined : parseChecksumAlgorithm(sdkRaw);
  const trailerRaw = single(headers['x-amz-trailer']);
  const trailers = (trailerRaw ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
  for (const t of trailers)
    if (algorithmOfHeader(t) === undefined)
      throw new S3Error(
        'InvalidRequest',
        `The value specified in the x-amz-trailer header is not supported: ${t}`,
      );
  if (present.length + trailers.length > 1)
    throw new S3Error(
      'InvalidRequest',
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
    );
  let found: AssertedChecksum | undefined;
  if (present.length === 1) {
    const algorithm = present[0];
    const name = checksumHeader[algorithm];
    const value = single(headers[name])?.trim() ?? '';
    if (!isValidChecksum(algorithm, value))
      throw new S3Error('InvalidRequest', `Value for ${name} header is invalid.`);
    found = { algorithm, location: 'header', name, value };
  } else if (trailers.length === 1) {
    const algorithm = algorithmOfHeader(trailers[0]) as ChecksumAlgorithm;
    found = { algorithm, location: 'trailer', name: trailers[0] };
  }
  if (found && sdk && sdk !== found.algorithm)
    throw new S3Error(
      'InvalidRequest',
      `Value for x-amz-sdk-checksum-algorithm header is invalid: ${sdkRaw} does not match ${found.name}.`,
    );
  if (!found && sdk) return { algorithm: sdk, location: 'none', name: checksumHeader[sdk] };
  return found;
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/** Content-MD5 must be base64 of 16 bytes (InvalidDigest otherwise). Returns the hex form. */
export function parseContentMd5(value: string): string {
  const v = value.trim();
  const raw = Buffer.from(v, 'base64');
  if (raw.length !== 16 || raw.toString('base64') !== v) throw new S3Error('InvalidDigest');
  return raw.toString('hex');
}

// ---- verifying transform -------------------------------------------------------------------

export interface VerifierOptions {
  /** Algorithm to compute (asserted or requested); its base64 ends up in `result.checksum`. */
  algorithm?: ChecksumAlgorithm;
  /** Expected base64 value; a function is read at the end (a trailer is known only then). */
  expected?: string | (() => string | undefined);
  /** Expected hex sha256 of the body (x-amz-content-sha256). */
  sha256Hex?: string;
  /** Expected hex MD5 (from Content-MD5, see parseContentMd5). */
  md5Hex?: string;
  /** Compute the body's MD5 (the ETag) even when not asserted. Default true. */
  computeMd5?: boolean;
}

export interface VerifierResult {
  bytes: number;
  md5Hex?: string;
  sha256Hex?: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

/**
 * Pass-through stream that hashes the body and, before signalling its end, fails with BadDigest /
 * XAmzContentSHA256Mismatch when an asserted digest does not hold. Put it last before the storage
 * writer, and commit only after the whole pipeline ends cleanly.
 */
export class ChecksumVerifier extends Transform {
  result: VerifierResult = { bytes: 0 };
  private readonly md5?: Hash;
  private readonly sha256?: Hash;
  private readonly sum?: Checksummer;

  constructor(private readonly opts: VerifierOptions) {
    super();
    if (opts.computeMd5 !== false || opts.md5Hex !== undefined) this.md5 = createHash('md5');
    if (opts.sha256Hex !== undefined) this.sha256 = createHash('sha256');
    if (opts.algorithm) this.sum = createChecksummer(opts.algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.result.bytes += chunk.length;
    this.md5?.update(chunk);
    this.sha256?.update(chunk);
    this.sum?.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.finish().then(
      () => cb(),
      (err) => cb(err),
    );
  }

  private async finish(): Promise<void> {
    const { opts, result } = this;
    if (this.md5) result.md5Hex = this.md5.digest('hex');
    if (this.sha256) result.sha256Hex = this.sha256.digest('hex');
    if (opts.md5Hex !== undefined && result.md5Hex !== opts.md5Hex.toLowerCase())
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    if (opts.sha256Hex !== undefined && result.sha256Hex !== opts.sha256Hex.toLowerCase())
      throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
        extra: {
          ClientComputedContentSHA256: opts.sha256Hex,
          S3ComputedContentSHA256: result.sha256Hex ?? '',
        },
      });
    if (this.sum) {
      const value = (await this.sum.digest()).toString('base64');
      result.checksum = { algorithm: this.sum.algorithm, value };
      const expected = typeof opts.expected === 'function' ? opts.expected() : opts.expected;
      if (expected !== undefined && expected !== value)
        throw new S3Error(
          'BadDigest',
          `The ${this.sum.algorithm} you specified did not match the calculated checksum.`,
        );
    }
  }
}

// ---- multipart -----------------------------------------------------------------------------

/**
 * COMPOSITE multipart checksum: base64(hash(concat(raw part checksums)))-N, the same algorithm
 * over the parts' binary digests (what S3 returns for SHA1/SHA256 and composite CRCs).
 */
export async function compositeChecksum(
  algorithm: ChecksumAlgorithm,
  partsBase64: string[],
): Promise<string> {
  const h = createChecksummer(algorithm);
  for (const p of partsBase64) h.update(Buffer.from(p, 'base64'));
  return `${(await h.digest()).toString('base64')}-${partsBase64.length}`;
}

/** Reflected polynomials: the standard CRC-32, Castagnoli, and NVMe (CRC-64/NVME) ones. */
const crcParams = {
  CRC32: { poly: 0xedb88320n, width: 32 },
  CRC32C: { poly: 0x82f63b78n, width: 32 },
  CRC64NVME: { poly: 0x9a6c9329ac4bc9b5n, width: 64 },
} as const;
export type CrcAlgorithm = keyof typeof crcParams;

export function isCrcAlgorithm(a: ChecksumAlgorithm): a is CrcAlgorithm {
  return a in crcParams;
}

/**
 * FULL_OBJECT multipart checksum for CRC algorithms: the CRC of the whole object, combined from the
 * parts' CRCs and sizes without re-reading data (zlib's crc32_combine, GF(2) matrices).
 */
export function combineCrcs(algorithm: CrcAlgorithm, parts: { checksum: string; size: number }[]): string {
  const { width } = crcParams[algorithm];
  let acc: bigint | undefined;
  for (const p of parts) {
    const crc = bytesToBig(Buffer.from(p.checksum, 'base64'));
    acc = acc === undefined ? crc : crcCombine(algorithm, acc, crc, p.size);
  }
  if (acc === undefined) acc = 0n; // CRC of the empty string is 0 for all three
  return bigToBytes(acc, width / 8).toString('base64');
}

/** crc(A || B) from crc(A), crc(B) and len(B): valid for CRCs whose init equals their xorout. */
export function crcCombine(algorithm: CrcAlgorithm, crc1: bigint, crc2: bigint, len2: number): bigint {
  const { poly, width } = crcParams[algorithm];
  if (len2 <= 0) return crc1;
  const mask = (1n << BigInt(width)) - 1n;
  // odd: operator for one zero bit; even: for two zero bits
  let odd: bigint[] = [poly];
  let row = 1n;
  for (let n = 1; n < width; n++) {
    odd.push(row);
    row <<= 1n;
  }
  let even = gf2Square(odd);
  odd = gf2Square(even);
  let len = BigInt(len2);
  let c1 = crc1 & mask;
  do {
    even = gf2Square(odd); // apply len2 zero bytes: first square gives 1 byte (8 bits)
    if (len & 1n) c1 = gf2Times(even, c1);
    len >>= 1n;
    if (len === 0n) break;
    odd = gf2Square(even);
    if (len & 1n) c1 = gf2Times(odd, c1);
    len >>= 1n;
  } while (len !== 0n);
  return (c1 ^ crc2) & mask;
}

function gf2Times(mat: bigint[], vec: bigint): bigint {
  let sum = 0n;
  let i = 0;
  let v = vec;
  while (v !== 0n) {
    if (v & 1n) sum ^= mat[i];
    v >>= 1n;
    i++;
  }
  return sum;
}

function gf2Square(mat: bigint[]): bigint[] {
  return mat.map((m) => gf2Times(mat, m));
}

function bytesToBig(b: Buffer): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function bigToBytes(n: bigint, size: number): Buffer {
  const b = Buffer.alloc(size);
  let v = n;
  for (let i = size - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}
