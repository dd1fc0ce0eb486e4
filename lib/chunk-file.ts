// Chunk files on a node's volume: where one lives, how one is written durably and how one is read
// back verified. The storage node writes and serves its chunks through this, and a gateway on the
// same host writes and reads the node's files through it directly (local writes and reads), so both
// agree on the layout, the durability and the check.
//
//   <chunksDir>/ab/cd/<id>.<sha256>   fanned out by the id's first two bytes
//   <tmpDir>/<id>.<random>.tmp         a chunk being written, renamed into place once durable
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ByteRange, RangeNotSatisfiable } from './chunk-store.js';
import { BadRequest, Corrupt, NotFound } from './errors.js';
import { sha256OfFd } from './file-hash.js';
import { randomId } from './ids.js';
import { privateFileMode } from './private-files.js';

/** A chunk file's name: 32 hex id, a dot, 64 hex sha256. */
export const chunkFilePattern = /^([0-9a-f]{32})\.([0-9a-f]{64})$/;

const tempFilePattern = /^([0-9a-f]{32})\.[0-9a-f]+\.tmp$/;

/** A new temp file name for chunk `id` in a volume's tmp/. */
export function tempFileName(id: string): string {
  return `${id}.${randomId(6)}.tmp`;
}

/** Whether `name` is a temp file name tempFileName(id) could have made (no path, no other chunk). */
export function isTempFileName(name: string, id: string): boolean {
  return tempFilePattern.exec(name)?.[1] === id;
}

// A streamed write buffers at most about this much (by default) while its previous batch is on its
// way to disk.
const writeBatchBytes = 4 * 1024 ** 2;
// A streamed write starts the kernel writing its data back every this many bytes (ChunkFileSink).
const earlySyncBytes = 8 * 1024 ** 2;
// Early syncs in flight in this process: each holds one of libuv's 4 threadpool threads until the
// disk is done, so they are capped below that and writes and final fsyncs always find a thread.
const earlySyncsMax = 2;
let earlySyncs = 0;
// Reads go to the socket in pieces this big: large enough that a 64 MiB chunk is 256 reads, small
// enough to keep a slow reader's buffered data modest.
const readPieceBytes = 256 * 1024;
// A whole-chunk read this small is read into memory in one go, verified, and sent from there;
// larger ones are hashed on a worker thread (file-hash.ts) first.
const wholeReadBytes = 256 * 1024;

/** A node volume's directories (storage-node/store.ts describes the layout). */
export function volumeDirs(dataDir: string): { chunks: string; tmp: string; quarantine: string } {
  return {
    chunks: path.join(dataDir, 'chunks'),
    tmp: path.join(dataDir, 'tmp'),
    quarantine: path.join(dataDir, 'quarantine'),
  };
}

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

/**
 * Writes a chunk body of exactly `size` bytes into `file` and fsyncs it; returns the body's sha256
 * when `hash` is set. `create` makes a new file (failing if one exists); otherwise `file` must
 * already exist (a temp file its node made for a local write) and is written from its start, and
 * the final fsync is left to the node, which commits it.
 */
export async function writeChunkFile(
  file: string,
  body: Readable | Buffer,
  size: number,
  opts: { create: boolean; hash: boolean; batchBytes?: number },
): Promise<string | undefined> {
  // 0600 whatever the umask: a chunk is an object's bytes (lib/private-files.ts).
  const fh = await open(file, opts.create ? 'wx' : fsConstants.O_WRONLY, privateFileMode);
  try {
    let sha256: string | undefined;
    if (Buffer.isBuffer(body)) {
      // A body already in memory (a small chunk): no stream machinery.
      if (body.length !== size) throw new BadRequest(`body of ${body.length} bytes declared as ${size}`);
      if (opts.hash) sha256 = createHash('sha256').update(body).digest('hex');
      await writeFully(fh, body);
    } else {
      const sink = new ChunkFileSink(fh, size, opts.hash, opts.batchBytes ?? writeBatchBytes);
      await pipeline(body, sink);
      if (sink.bytes !== size) throw new BadRequest(`body ended after ${sink.bytes} of ${size} bytes`);
      sha256 = sink.digest();
    }
    if (opts.create) await fh.sync();
    return sha256;
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Writes a streamed body to its file, hashing (if asked) and counting it; refuses more than the
 * declared size. Pieces arriving while a write is in flight wait in the stream's buffer (bounded by
 * highWaterMark, past which the source is paused) and go out together in one writev: one threadpool
 * round trip per batch rather than per 16-64 KiB socket piece.
 */
class ChunkFileSink extends Writable {
  bytes = 0;
  private readonly hash;
  private unsynced = 0;
  private syncing?: Promise<void>;
  private syncError?: Error;

  constructor(
    private readonly fh: FileHandle,
    private readonly limit: number,
    hash: boolean,
    batchBytes: number,
  ) {
    super({ highWaterMark: batchBytes });
    this.hash = hash ? createHash('sha256') : undefined;
  }

  override _writev(pieces: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeBatch(pieces.map((p) => p.chunk)).then(() => cb(), cb);
  }

  private async writeBatch(bufs: Buffer[]): Promise<void> {
    if (this.syncError) throw this.syncError;
    let batch = 0;
    for (const b of bufs) batch += b.length;
    this.bytes += batch;
    if (this.bytes > this.limit) throw new BadRequest(`body is longer than the declared ${this.limit} bytes`);
    const written = writevFully(this.fh, bufs);
    // Hash while the threadpool writes: neither changes the buffers.
    if (this.hash) for (const b of bufs) this.hash.update(b);
    await written;
    this.unsynced += batch;
    this.startEarlySync();
  }

  /**
   * The kernel would otherwise keep the whole chunk dirty until the final fsync and only then write
   * it, a long stall per chunk; an fdatasync every few MiB in the background (one per write at a
   * time, writes go on meanwhile) streams it to disk as it arrives, leaving the final fsync little
   * to do.
   */
  private startEarlySync(): void {
    if (this.syncing || this.unsynced < earlySyncBytes || earlySyncs >= earlySyncsMax) return;
    this.unsynced = 0;
    earlySyncs += 1;
    this.syncing = this.fh.datasync().then(
      () => {
        earlySyncs -= 1;
        this.syncing = undefined;
      },
      (err: Error) => {
        earlySyncs -= 1;
        // A failed sync may leave pages marked clean yet unwritten: a later fsync could then pass,
        // so the write fails now.
        this.syncError = err;
        this.syncing = undefined;
      },
    );
  }

  /** Waits for the early sync in flight: its failure fails the write, and the handle outlives it. */
  override _final(cb: (err?: Error | null) => void): void {
    void (this.syncing ?? Promise.resolve()).then(() => cb(this.syncError));
  }

  digest(): string | undefined {
    return this.hash?.digest('hex');
  }
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

/** writev that carries on after a short write (a signal, more buffers than IOV_MAX). */
async function writevFully(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let n = (await fh.writev(rest)).bytesWritten;
    let done = 0;
    while (done < rest.length && n >= rest[done].length) n -= rest[done++].length;
    rest = rest.slice(done);
    if (n > 0) rest[0] = rest[0].subarray(n);
  }
}
