// Deterministic object contents, cheap to generate and to check without storing the object: a
// seeded 64 KiB block repeated, each repetition stamped with (seed, block index) in its first
// 16 bytes, so a shifted, swapped or stale block never compares equal.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

/** Big enough that copying it is memcpy-bound, small enough to stay in cache. */
const blockBytes = 64 * 1024;
const stampBytes = 16;
/** Pieces a generated stream yields: the size of a typical socket write. */
const pieceBytes = 1024 * 1024;

const base = makeBase();

function makeBase(): Buffer {
  const out = Buffer.alloc(blockBytes);
  let counter = 0;
  for (let at = 0; at < blockBytes; at += 32) {
    createHash('sha256').update(`s3dfs-bench-${counter++}`).digest().copy(out, at);
  }
  return out;
}

function stamp(seed: number, block: number): Buffer {
  const s = Buffer.alloc(stampBytes);
  s.writeUInt32BE(seed >>> 0, 0);
  s.writeUInt32BE(0x5a5a5a5a, 4);
  s.writeDoubleBE(block, 8);
  return s;
}

/** Writes the object's bytes [offset, offset + target.length) into target. */
export function fill(seed: number, offset: number, target: Buffer): Buffer {
  let pos = offset;
  let at = 0;
  while (at < target.length) {
    const block = Math.floor(pos / blockBytes);
    const within = pos - block * blockBytes;
    const n = Math.min(blockBytes - within, target.length - at);
    base.copy(target, at, within, within + n);
    if (within < stampBytes) {
      const s = stamp(seed, block);
      s.copy(target, at, within, Math.min(stampBytes, within + n));
    }
    at += n;
    pos += n;
  }
  return target;
}

export function bytes(seed: number, offset: number, length: number): Buffer {
  return fill(seed, offset, Buffer.allocUnsafe(length));
}

/** A stream of the object's bytes [offset, offset + length), in 1 MiB pieces. */
export function stream(seed: number, length: number, offset = 0): Readable {
  let pos = 0;
  return new Readable({
    highWaterMark: pieceBytes,
    read() {
      if (pos >= length) {
        this.push(null);
        return;
      }
      const n = Math.min(pieceBytes, length - pos);
      this.push(bytes(seed, offset + pos, n));
      pos += n;
    },
  });
}

/** Compares a body against the generator as it streams; throws at the first wrong byte. */
export class Verifier {
  private pos = 0;
  private scratch = Buffer.allocUnsafe(pieceBytes);

  constructor(
    private readonly seed: number,
    private readonly offset: number,
    private readonly length: number,
    private readonly what: string,
  ) {}

  update(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, this.scratch.length);
      if (this.pos + n > this.length) throw new Error(`${this.what}: body longer than ${this.length} bytes`);
      const expected = fill(this.seed, this.offset + this.pos, this.scratch.subarray(0, n));
      if (Buffer.compare(expected, chunk.subarray(at, at + n)) !== 0) {
        throw new Error(`${this.what}: wrong bytes near offset ${this.offset + this.pos}`);
      }
      at += n;
      this.pos += n;
    }
  }

  done(): number {
    if (this.pos !== this.length) throw new Error(`${this.what}: got ${this.pos} of ${this.length} bytes`);
    return this.pos;
  }
}

/** Reads an SDK body stream to the end, checking every byte; `onBytes` is called as each piece arrives. */
export async function verifyBody(
  body: AsyncIterable<Uint8Array> | undefined,
  seed: number,
  offset: number,
  length: number,
  what: string,
  onBytes?: () => void,
): Promise<number> {
  if (!body) throw new Error(`${what}: no body`);
  const v = new Verifier(seed, offset, length, what);
  for await (const chunk of body) {
    onBytes?.();
    v.update(chunk);
  }
  return v.done();
}
