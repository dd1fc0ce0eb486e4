// Chunk files on a node's volume: where one lives and how one is read back verified. The storage
// node serves its reads through this, and a gateway on the same host reads the node's files through
// it directly (local reads), so both agree on the layout and on the check.
//
//   <chunksDir>/ab/cd/<id>.<sha256>   fanned out by the id's first two bytes
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { type ByteRange, RangeNotSatisfiable } from './chunk-store.js';
import { BadRequest, Corrupt, NotFound } from './errors.js';
import { sha256OfFd } from './file-hash.js';

/** A chunk file's name: 32 hex id, a dot, 64 hex sha256. */
export const chunkFilePattern = /^([0-9a-f]{32})\.([0-9a-f]{64})$/;

// Reads go to the socket in pieces this big: large enough that a 64 MiB chunk is 256 reads, small
// enough to keep a slow reader's buffered data modest.
const readPieceBytes = 256 * 1024;
// A whole-chunk read this small is read into memory in one go, verified, and sent from there;
// larger ones are hashed on a worker thread (file-hash.ts) first.
const wholeReadBytes = 256 * 1024;

export function chunkLeafDir(chunksDir: string, id: string): string {
  return path.join(chunksDir, id.slice(0, 2), id.slice(2, 4));
}

export function chunkFilePath(chunksDir: string, id: string, sha256: string): string {
  return path.join(chunkLeafDir(chunksDir, id), `${id}.${sha256}`);
}

export interface ChunkFileRead {
  stream: Readable;
  /** Bytes in the whole chunk. */
  size: number;
  /** Bytes the stream carries. */
  length: number;
  /** Set for a range read: the clamped range served. */
  range?: ByteRange;
}

/**
 * Opens a chunk file for reading. A whole read is verified before its first byte is handed out:
 * a reader that has already forwarded bytes cannot take them back, so a corrupt copy must fail
 * first (and the caller reads another one). Range reads are not verified here; scrubbing covers
 * them. On a mismatch `onCorrupt` gets the inode read (so only that very file is quarantined) and
 * Corrupt is thrown. A missing file is NotFound.
 */
export async function readChunkFile(
  file: string,
  sha256: string,
  opts: { range?: ByteRange; onCorrupt?: (ino: number) => void } = {},
): Promise<ChunkFileRead> {
  const fh = await open(file, fsConstants.O_RDONLY).catch((err) => {
    throw err.code === 'ENOENT' ? new NotFound(`chunk file ${path.basename(file)} not found`) : err;
  });
  try {
    const st = await fh.stat();
    const size = st.size;
    const mismatch = (actual: string): never => {
      opts.onCorrupt?.(st.ino);
      throw new Corrupt(`chunk ${path.basename(file)}: stored bytes hash to ${actual}`);
    };
    if (opts.range) {
      const r = clampRange(opts.range, size);
      const stream = fh.createReadStream({ start: r.start, end: r.end, highWaterMark: readPieceBytes });
      return { stream, size, length: r.end - r.start + 1, range: r };
    }
    if (size <= wholeReadBytes) {
      // Small: one read into memory, checked, and exactly those bytes are sent.
      const bytes = await fh.readFile();
      await fh.close();
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== sha256) mismatch(actual);
      return { stream: Readable.from([bytes]), size, length: size };
    }
    // Large: hash the file, then stream it. The stream is not hashed a second time: the chunk is
    // immutable (same inode, written once) and its bytes were just checked, the second pass being
    // mostly served by the page cache. Both passes read through the one open descriptor, so the
    // bytes checked are the inode's sent.
    const actual = await sha256OfFd(fh.fd);
    if (actual !== sha256) mismatch(actual);
    return { stream: fh.createReadStream({ start: 0, highWaterMark: readPieceBytes }), size, length: size };
  } catch (err) {
    await fh.close().catch(() => {});
    throw err;
  }
}

export function clampRange(range: ByteRange, size: number): ByteRange {
  const ok = Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0;
  if (!ok || range.end < range.start) throw new BadRequest('invalid byte range');
  if (range.start >= size) throw new RangeNotSatisfiable(`range starts past the end of ${size} bytes`);
  return { start: range.start, end: Math.min(range.end, size - 1) };
}
