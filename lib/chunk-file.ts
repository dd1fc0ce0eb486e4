// Chunk files on a node's volume: where one lives, how one is written durably and how one is read
// back verified. The storage node writes and serves its chunks through this, and a gateway on the
// same host writes and reads the node's files through it directly (local writes and reads), so both
// agree on the layout, the durability and the check.
//
//   <chunksDir>/ab/cd/<id>.<sha256>   fanned out by the id's first two bytes: the chunk's bytes as is
//   <sumsDir>/ab/cd/<id>.<sha256>     its block checksums (block-sums.ts), under the same name
//   <tmpDir>/<id>.<random>.tmp         a chunk being written, renamed into place once durable
//   <tmpDir>/<id>.<random>.tmp.sums    its block checksums, written once its last byte is
//
// A chunk file without a sums file is one written before block checksums (or by a writer of that
// version): it is read as then, checked whole against its sha256 before any byte of it is sent.
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockSummer, BlockSums } from './block-sums.js';
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

/** Where the block checksums of temp file `file` are written. */
export function tempSumsFile(file: string): string {
  return `${file}.sums`;
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
// Reads go to the socket in pieces this big (whole blocks, each checked before it is sent): large
// enough that a 64 MiB chunk is 256 reads, small enough to keep a slow reader's buffered data modest.
const readPieceBytes = 256 * 1024;
// A whole read of a chunk without block sums this small is read into memory in one go, verified,
// and sent from there; larger ones are hashed on a worker thread (file-hash.ts) first.
const wholeReadBytes = 256 * 1024;

/** A node volume's directories (storage-node/store.ts describes the layout). */
export function volumeDirs(dataDir: string): {
  chunks: string;
  sums: string;
  tmp: string;
  quarantine: string;
} {
  return {
    chunks: path.join(dataDir, 'chunks'),
    sums: path.join(dataDir, 'sums'),
    tmp: path.join(dataDir, 'tmp'),
    quarantine: path.join(dataDir, 'quarantine'),
  };
}

/** The fan-out directory of chunk `id` under `dir` (the chunks' or the sums' tree). */
export function chunkLeafDir(dir: string, id: string): string {
  return path.join(dir, id.slice(0, 2), id.slice(2, 4));
}

export function chunkFilePath(chunksDir: string, id: string, sha256: string): string {
  return path.join(chunkLeafDir(chunksDir, id), `${id}.${sha256}`);
}

/** A chunk file and its sums file. */
export interface ChunkPaths {
  data: string;
  sums: string;
}

/** Where chunk `id` with `sha256` lives in the volume at `dataDir`. */
export function chunkPaths(dataDir: string, id: string, sha256: string): ChunkPaths {
  const dirs = volumeDirs(dataDir);
  return { data: chunkFilePath(dirs.chunks, id, sha256), sums: chunkFilePath(dirs.sums, id, sha256) };
}

/** Sorted entries of `dir` matching `pattern`; a missing directory is empty. */
export async function listDir(dir: string, pattern: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => pattern.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** A chunk's files and the sha256 its name carries. */
export interface LocatedChunk extends ChunkPaths {
  sha256: string;
}

/** Chunk `id` in a volume (volumeDirs), found by its leaf directory's listing; undefined if absent. */
export async function locateChunk(
  dirs: { chunks: string; sums: string },
  id: string,
): Promise<LocatedChunk | undefined> {
  const leaf = chunkLeafDir(dirs.chunks, id);
  const name = (await listDir(leaf, chunkFilePattern)).find((n) => n.startsWith(`${id}.`));
  if (!name) return undefined;
  return {
    data: path.join(leaf, name),
    sums: path.join(chunkLeafDir(dirs.sums, id), name),
    sha256: name.slice(33),
  };
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
 * Opens a chunk file for reading, verified: every block the read touches is checked against its
 * sum before any byte of it is handed out, so a reader that fails over never has to take bytes back.
 * The first piece is checked before this returns (a bad one fails the call, before any header goes
 * out); a bad block later fails the stream at that block. A chunk without block sums is checked
 * whole against `sha256` first. On a mismatch `onCorrupt` gets the inode read (so only that very
 * file is quarantined) and the error is Corrupt. A missing file is NotFound.
 */
export async function readChunkFile(
  files: ChunkPaths,
  sha256: string,
  opts: { range?: ByteRange; onCorrupt?: (ino: number) => void } = {},
): Promise<ChunkFileRead> {
  const name = path.basename(files.data);
  const fh = await open(files.data, fsConstants.O_RDONLY).catch((err) => {
    throw err.code === 'ENOENT' ? new NotFound(`chunk file ${name} not found`) : err;
  });
  try {
    const st = await fh.stat();
    const size = st.size;
    const bad = (why: string): Corrupt => {
      opts.onCorrupt?.(st.ino);
      return new Corrupt(`chunk ${name}: ${why}`);
    };
    const range = opts.range && clampRange(opts.range, size);
    const sums = await readSums(files.sums, size).catch((err) => {
      throw err instanceof Corrupt ? bad(err.message) : err;
    });
    const stream = sums
      ? await readBlocks(fh, size, sums, range ?? { start: 0, end: size - 1 }, bad)
      : await readWhole(fh, size, sha256, range, bad);
    const length = range ? range.end - range.start + 1 : size;
    return { stream, size, length, range };
  } catch (err) {
    await fh.close().catch(() => {});
    throw err;
  }
}

/** A chunk's block sums, or undefined for a chunk written before them. */
async function readSums(file: string, size: number): Promise<BlockSums | undefined> {
  const bytes = await readFile(file).catch((err) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  return bytes && BlockSums.parse(bytes, size);
}

/** Bytes [start, end] through their blocks' checks (VerifiedBlocks); the first piece checked here. */
async function readBlocks(
  fh: FileHandle,
  size: number,
  sums: BlockSums,
  range: ByteRange,
  bad: (why: string) => Corrupt,
): Promise<Readable> {
  const stream = new VerifiedBlocks(fh, size, sums, range, bad);
  await stream.prime();
  return stream;
}

/**
 * A chunk without block sums, checked whole against its sha256 before its first byte is handed out
 * (a range too: it has no smaller check). The stream is not hashed a second time: the chunk is
 * immutable (same inode, written once) and its bytes were just checked, the second pass being
 * mostly served by the page cache. Both passes read through the one open descriptor, so the bytes
 * checked are the inode's sent.
 */
async function readWhole(
  fh: FileHandle,
  size: number,
  sha256: string,
  range: ByteRange | undefined,
  bad: (why: string) => Corrupt,
): Promise<Readable> {
  if (size <= wholeReadBytes) {
    // Small: one read into memory, checked, and exactly those bytes are sent.
    const bytes = await fh.readFile();
    await fh.close();
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) throw bad(`stored bytes hash to ${actual}`);
    return Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]);
  }
  const actual = await sha256OfFd(fh.fd);
  if (actual !== sha256) throw bad(`stored bytes hash to ${actual}`);
  const { start, end } = range ?? { start: 0, end: size - 1 };
  return fh.createReadStream({ start, end, highWaterMark: readPieceBytes });
}

/**
 * Bytes [start, end] of a chunk file, read in whole blocks, each checked against its sum, and only
 * then cut to the range and handed on. A bad block fails the stream before any of its bytes goes
 * out. The descriptor is closed when the stream ends or is destroyed, read to its end or not.
 */
class VerifiedBlocks extends Readable {
  /** Next byte to read (block-aligned), and the end of the last block the range touches. */
  private pos: number;
  private readonly stop: number;
  private readonly pieceBytes: number;
  private primed: Buffer | undefined;

  constructor(
    private readonly fh: FileHandle,
    size: number,
    private readonly sums: BlockSums,
    private readonly range: ByteRange,
    private readonly bad: (why: string) => Corrupt,
  ) {
    super({ highWaterMark: readPieceBytes });
    const block = sums.blockBytes;
    this.pos = Math.floor(range.start / block) * block;
    this.stop = Math.min(Math.ceil((range.end + 1) / block) * block, size);
    this.pieceBytes = Math.max(1, Math.floor(readPieceBytes / block)) * block;
  }

  /** Reads and checks the first piece now, so a bad first block fails before the stream is handed out. */
  async prime(): Promise<void> {
    this.primed = await this.nextPiece();
  }

  override _read(): void {
    const piece = this.primed;
    this.primed = undefined;
    if (piece) {
      this.push(piece.length > 0 ? piece : null);
      return;
    }
    this.nextPiece().then(
      (next) => this.push(next.length > 0 ? next : null),
      (err) => this.destroy(err),
    );
  }

  /** The next piece, checked and cut to the range; empty once the range is done. */
  private async nextPiece(): Promise<Buffer> {
    const { start, end } = this.range;
    if (this.pos > end) return Buffer.alloc(0);
    const from = this.pos;
    const buf = Buffer.allocUnsafe(Math.min(this.pieceBytes, this.stop - from));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, from + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    // The size came from this inode, which is never written again: a short read is a damaged file.
    if (got < buf.length) throw this.bad(`file ended at byte ${from + got}`);
    const failed = this.sums.firstBad(buf, from / this.sums.blockBytes);
    if (failed >= 0) throw this.bad(`block ${failed} fails its CRC32C`);
    this.pos = from + got;
    return buf.subarray(Math.max(0, start - from), end + 1 - from);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.fh.close().then(
      () => cb(err),
      () => cb(err),
    );
  }
}

export function clampRange(range: ByteRange, size: number): ByteRange {
  const ok = Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0;
  if (!ok || range.end < range.start) throw new BadRequest('invalid byte range');
  if (range.start >= size) throw new RangeNotSatisfiable(`range starts past the end of ${size} bytes`);
  return { start: range.start, end: Math.min(range.end, size - 1) };
}

/**
 * Writes a chunk body of exactly `size` bytes into `file`, and its block sums, taken of the very
 * buffers written, into tempSumsFile(file) once the last byte is in; fsyncs both; returns the
 * body's sha256 when `hash` is set. `create` makes a new file (failing if one exists); otherwise
 * `file` must already exist (a temp file its node made for a local write) and is written from its
 * start, and the final fsyncs are left to the node, which commits it. The caller removes both files
 * when this fails.
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
    const sums = new BlockSummer(size);
    if (Buffer.isBuffer(body)) {
      // A body already in memory (a small chunk): no stream machinery.
      if (body.length !== size) throw new BadRequest(`body of ${body.length} bytes declared as ${size}`);
      if (opts.hash) sha256 = createHash('sha256').update(body).digest('hex');
      sums.update(body);
      await writeFully(fh, body);
    } else {
      const sink = new ChunkFileSink(fh, size, sums, opts.hash, opts.batchBytes ?? writeBatchBytes);
      await pipeline(body, sink);
      if (sink.bytes !== size) throw new BadRequest(`body ended after ${sink.bytes} of ${size} bytes`);
      sha256 = sink.digest();
    }
    await Promise.all([writeSums(tempSumsFile(file), sums.bytes(), opts.create), opts.create && fh.sync()]);
    return sha256;
  } finally {
    await fh.close().catch(() => {});
  }
}

async function writeSums(file: string, bytes: Buffer, sync: boolean): Promise<void> {
  const fh = await open(file, 'wx', privateFileMode);
  try {
    await writeFully(fh, bytes);
    if (sync) await fh.sync();
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Writes a streamed body to its file, summing its blocks, hashing it (if asked) and counting it;
 * refuses more than the declared size. Pieces arriving while a write is in flight wait in the stream's buffer (bounded by
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
    private readonly sums: BlockSummer,
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
    // Sum and hash while the threadpool writes: none of it changes the buffers.
    for (const b of bufs) {
      this.sums.update(b);
      this.hash?.update(b);
    }
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
