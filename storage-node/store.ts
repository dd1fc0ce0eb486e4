// FsChunkStore: the storage node's durable chunk store on one directory (the node's volume).
//
// Layout under the data dir:
//   chunks/ab/cd/<id>.<sha256>  one file per chunk, fanned out by the id's first two bytes so no
//                               directory grows past a few hundred entries at millions of chunks
//   tmp/                        bodies being written; anything here at start is a crash leftover
//   quarantine/                 chunks whose bytes no longer match their hash, kept for a human
//   node.json                   the node's identity, written once
// The sha256 lives in the file name, so a chunk appears in one atomic rename with both its bytes
// and its hash durable: there is no window where one exists without the other, and reads and the
// inventory never rehash.
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  statfs,
  unlink,
} from 'node:fs/promises';
import path from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { chunkFilePattern, chunkLeafDir, readChunkFile } from '../lib/chunk-file.js';
import {
  type ByteRange,
  type ChunkInfo,
  type ChunkPage,
  type ChunkStore,
  type GetResult,
  listLimitDefault,
  listLimitMax,
  PayloadTooLarge,
  type PutResult,
  sha256Pattern,
} from '../lib/chunk-store.js';
import { ConfigError } from '../lib/config.js';
import { BadRequest, Conflict, InsufficientStorage, NotFound } from '../lib/errors.js';
import { isChunkId, randomId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import { nodeIdPattern } from './config.js';

// A streamed write buffers at most about this much while its previous batch is on its way to disk.
const writeBatchBytes = 4 * 1024 ** 2;
// A streamed write starts the kernel writing its data back every this many bytes (ChunkFileSink).
const earlySyncBytes = 8 * 1024 ** 2;
// Early syncs in flight in this process: each holds one of libuv's 4 threadpool threads until the
// disk is done, so they are capped below that and writes and final fsyncs always find a thread.
const earlySyncsMax = 2;
let earlySyncs = 0;
const fanoutPattern = /^[0-9a-f]{2}$/;

export interface FsChunkStoreOptions {
  dataDir: string;
  /** Largest chunk accepted (bytes). */
  chunkSizeMax: number;
  /** Declared capacity; undefined → the filesystem's size. */
  capacityBytes?: number;
  logger?: Logger;
}

export interface StoreStats {
  capacityBytes: number;
  usedBytes: number;
  chunkCount: number;
  corruptions: number;
}

interface Located {
  file: string;
  sha256: string;
}

export class FsChunkStore implements ChunkStore {
  readonly chunksDir: string;
  readonly tmpDir: string;
  readonly quarantineDir: string;
  /** Sum of stored chunk sizes, kept incrementally after one scan at open. */
  private usedBytes = 0;
  private chunkCount = 0;
  /** Bytes promised to writes in flight, so concurrent PUTs cannot overshoot capacity together. */
  private reservedBytes = 0;
  private corruptions = 0;
  /** Per-id queues: the check-then-rename of a put, a delete and a quarantine never interleave. */
  private readonly locks = new Map<string, Promise<void>>();

  private constructor(
    readonly dataDir: string,
    readonly chunkSizeMax: number,
    readonly capacityBytes: number,
    private readonly logger?: Logger,
  ) {
    this.chunksDir = path.join(dataDir, 'chunks');
    this.tmpDir = path.join(dataDir, 'tmp');
    this.quarantineDir = path.join(dataDir, 'quarantine');
  }

  /** Creates the layout, removes crash leftovers from tmp/, and counts what is stored. */
  static async open(opts: FsChunkStoreOptions): Promise<FsChunkStore> {
    const dataDir = path.resolve(opts.dataDir);
    await mkdir(dataDir, { recursive: true });
    const capacity = opts.capacityBytes ?? (await filesystemBytes(dataDir));
    const store = new FsChunkStore(dataDir, opts.chunkSizeMax, capacity, opts.logger);
    await mkdir(store.chunksDir, { recursive: true });
    await mkdir(store.quarantineDir, { recursive: true });
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    await store.scan();
    return store;
  }

  stats(): StoreStats {
    return {
      capacityBytes: this.capacityBytes,
      usedBytes: this.usedBytes,
      chunkCount: this.chunkCount,
      corruptions: this.corruptions,
    };
  }

  /** Free bytes: what the declared capacity leaves, and never more than the disk has. */
  async freeBytes(): Promise<number> {
    const fs = await statfs(this.dataDir);
    const diskFree = fs.bavail * fs.bsize;
    return Math.max(0, Math.min(this.capacityBytes - this.usedBytes - this.reservedBytes, diskFree));
  }

  async put(id: string, body: Readable | Buffer, size: number, sha256?: string): Promise<PutResult> {
    const source = Buffer.isBuffer(body) ? undefined : body;
    try {
      this.checkPut(id, size, sha256);
    } catch (err) {
      source?.destroy();
      throw err;
    }
    this.reservedBytes += size;
    const tmp = path.join(this.tmpDir, `${id}.${randomId(6)}.tmp`);
    try {
      const actual = source
        ? await this.writeTemp(tmp, source, size)
        : await this.writeTempBuffer(tmp, body as Buffer, size);
      if (sha256 !== undefined && actual !== sha256) {
        throw new BadRequest(`body sha256 ${actual} does not match the expected ${sha256}`);
      }
      return await this.withIdLock(id, () => this.commit(id, tmp, size, actual));
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      throw mapDiskError(err);
    } finally {
      this.reservedBytes -= size;
    }
  }

  /** Throws what `put` would refuse on its arguments alone, before any body byte is read. */
  checkPut(id: string, size: number, sha256?: string): void {
    checkId(id);
    if (!Number.isSafeInteger(size) || size < 0) throw new BadRequest(`invalid size ${size}`);
    if (size > this.chunkSizeMax) {
      throw new PayloadTooLarge(`chunk of ${size} bytes exceeds the limit of ${this.chunkSizeMax}`);
    }
    if (sha256 !== undefined && !sha256Pattern.test(sha256)) {
      throw new BadRequest('expected sha256 must be 64 lowercase hex characters');
    }
    if (this.usedBytes + this.reservedBytes + size > this.capacityBytes) {
      throw new InsufficientStorage(`capacity of ${this.capacityBytes} bytes would be exceeded`);
    }
  }

  async get(id: string, range?: ByteRange): Promise<GetResult> {
    checkId(id);
    const found = await this.locate(id);
    if (!found) throw new NotFound(`chunk ${id} not found`);
    const read = await readChunkFile(found.file, found.sha256, {
      range,
      onCorrupt: (ino) => this.quarantine(id, found.file, ino),
    }).catch((err) => {
      throw err instanceof NotFound ? new NotFound(`chunk ${id} not found`) : err;
    });
    return { ...read, sha256: found.sha256 };
  }

  async head(id: string): Promise<ChunkInfo | undefined> {
    checkId(id);
    const found = await this.locate(id);
    if (!found) return undefined;
    const st = await stat(found.file).catch(() => undefined);
    return st && { id, size: st.size, sha256: found.sha256, mtimeMs: Math.floor(st.mtimeMs) };
  }

  /**
   * Removes a chunk. The directory is not fsync'd: a delete undone by a crash leaves an orphan that
   * garbage collection deletes again, which costs less than a sync on every delete.
   */
  async delete(id: string): Promise<void> {
    checkId(id);
    await this.withIdLock(id, async () => {
      const found = await this.locate(id);
      if (!found) return;
      const st = await stat(found.file).catch(() => undefined);
      try {
        await unlink(found.file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      this.forget(st?.size ?? 0);
    });
  }

  async list(after?: string, limit = listLimitDefault): Promise<ChunkPage> {
    if (after !== undefined && !isChunkId(after)) throw new BadRequest('after must be a chunk id');
    if (!Number.isInteger(limit) || limit < 1 || limit > listLimitMax) {
      throw new BadRequest(`limit must be an integer in 1..${listLimitMax}`);
    }
    // One extra entry tells whether another page exists, so the last page says next: null.
    const want = limit + 1;
    const found: ChunkInfo[] = [];
    const afterL1 = after?.slice(0, 2) ?? '';
    const afterL2 = after?.slice(0, 4) ?? '';
    walk: for (const l1 of await listDir(this.chunksDir, fanoutPattern)) {
      if (l1 < afterL1) continue;
      for (const l2 of await listDir(path.join(this.chunksDir, l1), fanoutPattern)) {
        if (l1 + l2 < afterL2) continue;
        const leaf = path.join(this.chunksDir, l1, l2);
        const names = (await listDir(leaf, chunkFilePattern)).filter(
          (n) => after === undefined || n.slice(0, 32) > after,
        );
        const batch = names.slice(0, want - found.length);
        const infos = await Promise.all(batch.map((n) => infoOf(leaf, n)));
        for (const info of infos) if (info) found.push(info);
        if (found.length >= want) break walk;
      }
    }
    const chunks = found.slice(0, limit);
    return { chunks, next: found.length > limit ? chunks[chunks.length - 1].id : null };
  }

  // ---- internals ----

  /** Streams the body into `tmp`, hashing and counting as it goes; fsyncs; returns the sha256. */
  private async writeTemp(tmp: string, source: Readable, size: number): Promise<string> {
    const fh = await open(tmp, 'wx');
    try {
      const sink = new ChunkFileSink(fh, size);
      await pipeline(source, sink);
      if (sink.bytes !== size) {
        throw new BadRequest(`body ended after ${sink.bytes} of ${size} bytes`);
      }
      await fh.sync();
      return sink.digest();
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** writeTemp for a body already in memory (a small chunk): no stream machinery. */
  private async writeTempBuffer(tmp: string, body: Buffer, size: number): Promise<string> {
    if (body.length !== size) throw new BadRequest(`body of ${body.length} bytes declared as ${size}`);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const fh = await open(tmp, 'wx');
    try {
      await writeFully(fh, body);
      await fh.sync();
    } finally {
      await fh.close().catch(() => {});
    }
    return sha256;
  }

  /** Under the id lock: decide by the content already there, else rename into place durably. */
  private async commit(id: string, tmp: string, size: number, sha256: string): Promise<PutResult> {
    const existing = await this.locate(id);
    if (existing) {
      await rm(tmp, { force: true });
      if (existing.sha256 !== sha256) throw new Conflict(`chunk ${id} already exists with other content`);
      return { id, size, sha256, created: false };
    }
    const leaf = chunkLeafDir(this.chunksDir, id);
    const dest = path.join(leaf, `${id}.${sha256}`);
    // Fan-out directories are made on first use only: the rename tells whether the leaf exists,
    // which saves a mkdir call on every write.
    let made: string | undefined;
    try {
      await rename(tmp, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      made = await mkdir(leaf, { recursive: true });
      await rename(tmp, dest);
    }
    await fsyncDir(leaf);
    // A freshly made fan-out directory must itself be durable in its parent, or the chunk in it
    // could vanish with it after a crash.
    if (made !== undefined) {
      await fsyncDir(path.dirname(leaf));
      await fsyncDir(this.chunksDir);
    }
    this.usedBytes += size;
    this.chunkCount += 1;
    return { id, size, sha256, created: true };
  }

  private async locate(id: string): Promise<Located | undefined> {
    const leaf = chunkLeafDir(this.chunksDir, id);
    const names = await listDir(leaf, chunkFilePattern);
    const name = names.find((n) => n.startsWith(`${id}.`));
    return name ? { file: path.join(leaf, name), sha256: name.slice(33) } : undefined;
  }

  private forget(size: number): void {
    this.usedBytes -= size;
    this.chunkCount -= 1;
  }

  /**
   * Moves a chunk whose bytes no longer match its hash out of the store. Only the very file that was
   * read (same inode) is moved: a good copy written since by repair must not be quarantined.
   */
  private quarantine(id: string, file: string, ino: number): void {
    this.corruptions += 1;
    const move = this.withIdLock(id, async () => {
      const st = await stat(file).catch(() => undefined);
      if (!st || st.ino !== ino) return;
      const dest = path.join(this.quarantineDir, `${path.basename(file)}.${Date.now()}`);
      await rename(file, dest);
      this.forget(st.size);
      this.logger?.warn({ chunkId: id, quarantined: dest }, 'chunk failed its sha256 check: quarantined');
    });
    move.catch((err) => this.logger?.error({ err, chunkId: id }, 'could not quarantine a corrupt chunk'));
  }

  private async withIdLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = prev.then(() => mine);
    this.locks.set(id, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  private async scan(): Promise<void> {
    for (const l1 of await listDir(this.chunksDir, fanoutPattern)) {
      for (const l2 of await listDir(path.join(this.chunksDir, l1), fanoutPattern)) {
        const leaf = path.join(this.chunksDir, l1, l2);
        const infos = await Promise.all((await listDir(leaf, chunkFilePattern)).map((n) => infoOf(leaf, n)));
        for (const info of infos) {
          if (!info) continue;
          this.usedBytes += info.size;
          this.chunkCount += 1;
        }
      }
    }
  }
}

/**
 * Writes a streamed body to its temp file, hashing and counting it; refuses more than the declared
 * size. Pieces arriving while a write is in flight wait in the stream's buffer (bounded by
 * highWaterMark, past which the source is paused) and go out together in one writev: one threadpool
 * round trip per batch rather than per 16-64 KiB socket piece.
 */
class ChunkFileSink extends Writable {
  bytes = 0;
  private readonly hash = createHash('sha256');
  private unsynced = 0;
  private syncing?: Promise<void>;
  private syncError?: Error;

  constructor(
    private readonly fh: FileHandle,
    private readonly limit: number,
  ) {
    super({ highWaterMark: writeBatchBytes });
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
    for (const b of bufs) this.hash.update(b);
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

  digest(): string {
    return this.hash.digest('hex');
  }
}

function checkId(id: string): void {
  if (!isChunkId(id)) throw new BadRequest('chunk id must be 32 lowercase hex characters');
}

function mapDiskError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new InsufficientStorage('the disk is full');
  return err;
}

/** Sorted entries matching `pattern`; a missing directory is empty. */
async function listDir(dir: string, pattern: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => pattern.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** A chunk's inventory entry, or undefined when it vanished since its directory was read. */
async function infoOf(leaf: string, name: string): Promise<ChunkInfo | undefined> {
  const m = chunkFilePattern.exec(name)!;
  try {
    const st = await stat(path.join(leaf, name));
    return { id: m[1], size: st.size, sha256: m[2], mtimeMs: Math.floor(st.mtimeMs) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
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

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function filesystemBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.blocks * fs.bsize;
}

// ---- node identity ----

export interface NodeIdentity {
  id: string;
  createdAt: string;
}

/**
 * The node's id, persisted in node.json on first start so a node keeps its identity across
 * restarts; a different --id on an existing data dir is refused rather than silently renaming.
 */
export async function loadNodeIdentity(dataDir: string, requested?: string): Promise<NodeIdentity> {
  const file = path.join(dataDir, 'node.json');
  let existing: NodeIdentity | undefined;
  try {
    existing = JSON.parse(await readFile(file, 'utf8')) as NodeIdentity;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError([`${file} is unreadable (${(err as Error).message}); refusing to start`]);
    }
  }
  if (existing) {
    if (typeof existing.id !== 'string' || !nodeIdPattern.test(existing.id)) {
      throw new ConfigError([`${file} holds no valid node id; refusing to start`]);
    }
    if (requested !== undefined && requested !== existing.id) {
      throw new ConfigError([`${dataDir} belongs to node '${existing.id}', not '${requested}'`]);
    }
    return existing;
  }
  const identity: NodeIdentity = { id: requested ?? randomId(8), createdAt: new Date().toISOString() };
  await mkdir(dataDir, { recursive: true });
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx');
  try {
    await fh.writeFile(`${JSON.stringify(identity, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await fsyncDir(dataDir);
  return identity;
}
