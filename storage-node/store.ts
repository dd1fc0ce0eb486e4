// FsChunkStore: the storage node's durable chunk store on one directory (the node's volume).
//
// Layout under the data dir:
//   chunks/ab/cd/<id>.<sha256>  one file per chunk, fanned out by the id's first two bytes so no
//                               directory grows past a few hundred entries at millions of chunks
//   sums/ab/cd/<id>.<sha256>    its block checksums (lib/block-sums.ts), checked by every read;
//                               a chunk written before them has none and is checked whole
//   tmp/                        bodies being written (here, or by a gateway on this host: local
//                               writes); anything here at start is a crash leftover
//   quarantine/                 chunks whose bytes no longer match their hash, kept for a human
//   node.json                   the node's identity, written once
//   chunks/VOLUME               a random id made with the chunk directory: health reports it, so
//                               a wiped or swapped volume is seen (as a new id) within a probe
// The sha256 lives in the file name, so a chunk appears in one atomic rename with both its bytes
// and its hash durable: there is no window where one exists without the other, and reads and the
// inventory never rehash. Its sums are renamed into place just before it and dropped just before
// it goes, so a chunk never appears before its sums (a crash between the two leaves a chunk that
// is checked whole, as an old one is, or a few KiB of sums that only the same content would match).
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { sumsFileBytes } from '../lib/block-sums.js';
import {
  type ChunkPaths,
  chunkFilePattern,
  chunkLeafDir,
  type LocatedChunk,
  listDir,
  locateChunk,
  readChunkFile,
  tempFileName,
  tempSumsFile,
  volumeDirs,
  writeChunkFile,
} from '../lib/chunk-file.js';
import {
  type ByteRange,
  type ChunkInfo,
  type ChunkPage,
  type ChunkStore,
  checkChunkId,
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
import { privateDir, privateDirMode, privateFile, privateFileMode } from '../lib/private-files.js';
import { nodeIdPattern } from './config.js';

const fanoutPattern = /^[0-9a-f]{2}$/;
// A local write whose temp file saw no byte for this long was abandoned (its gateway died or its
// client stalled): it is removed and its reservation freed, as a silent HTTP upload's would be.
const localWriteIdleMs = 2 * 60_000;
const localWriteSweepMs = 30_000;

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

export class FsChunkStore implements ChunkStore {
  readonly chunksDir: string;
  readonly sumsDir: string;
  readonly tmpDir: string;
  readonly quarantineDir: string;
  /** Sum of stored chunk sizes, kept incrementally after one scan at open. */
  private usedBytes = 0;
  private chunkCount = 0;
  /** Bytes promised to writes in flight, so concurrent PUTs cannot overshoot capacity together. */
  private reservedBytes = 0;
  private corruptions = 0;
  /** The id in chunks/VOLUME (see the layout above). */
  private volume = '';
  private volumeCheck: Promise<string> | undefined;
  /** Local writes in flight (a gateway on this host filling a temp file), by temp file name. */
  private readonly localWrites = new Map<string, { id: string; size: number; startedMs: number }>();
  private localWriteSweep: NodeJS.Timeout | undefined;
  /** Per-id queues: the check-then-rename of a put, a delete and a quarantine never interleave. */
  private readonly locks = new Map<string, Promise<void>>();

  private constructor(
    readonly dataDir: string,
    readonly chunkSizeMax: number,
    readonly capacityBytes: number,
    private readonly logger?: Logger,
  ) {
    const dirs = volumeDirs(dataDir);
    this.chunksDir = dirs.chunks;
    this.sumsDir = dirs.sums;
    this.tmpDir = dirs.tmp;
    this.quarantineDir = dirs.quarantine;
  }

  /** Creates the layout, removes crash leftovers from tmp/, and counts what is stored. */
  static async open(opts: FsChunkStoreOptions): Promise<FsChunkStore> {
    const dataDir = path.resolve(opts.dataDir);
    // The volume root (a Docker named volume's too) and the top dirs are made 0700 even when an
    // older version left them wide: that alone keeps other users from chunk files it wrote 0644,
    // which are too many to chmod at every start (lib/private-files.ts).
    privateDir(dataDir);
    const capacity = opts.capacityBytes ?? (await filesystemBytes(dataDir));
    const store = new FsChunkStore(dataDir, opts.chunkSizeMax, capacity, opts.logger);
    privateDir(store.chunksDir);
    privateDir(store.sumsDir);
    privateDir(store.quarantineDir);
    await rm(store.tmpDir, { recursive: true, force: true });
    privateDir(store.tmpDir);
    await store.scan();
    store.volume = (await readVolumeId(store.chunksDir)) ?? (await writeVolumeId(store.chunksDir));
    return store;
  }

  /**
   * The volume's id, checked on disk (one small read, at each health probe). A chunk directory
   * wiped under the running node, or its marker with it, is a new volume: the layout is made
   * again, the counts are taken again from what is there, and the new id tells the manager to
   * compare its metadata with this node's inventory now rather than at the next hourly walk.
   */
  volumeId(): Promise<string> {
    // Probes may overlap; one check at a time, or two would each make a new volume.
    this.volumeCheck ??= this.checkVolume().finally(() => {
      this.volumeCheck = undefined;
    });
    return this.volumeCheck;
  }

  private async checkVolume(): Promise<string> {
    const id = await readVolumeId(this.chunksDir);
    if (id === this.volume) return id;
    const before = this.volume;
    await mkdir(this.chunksDir, { recursive: true });
    await mkdir(this.sumsDir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.quarantineDir, { recursive: true });
    // A recount: writes and deletes racing it may skew the counts slightly until the next start.
    this.usedBytes = 0;
    this.chunkCount = 0;
    await this.scan();
    this.volume = id ?? (await writeVolumeId(this.chunksDir));
    this.logger?.error(
      { before, volumeId: this.volume, chunkCount: this.chunkCount },
      'the chunk directory changed under the node (wiped or replaced volume); counts taken again',
    );
    return this.volume;
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
    const tmp = path.join(this.tmpDir, tempFileName(id));
    try {
      const actual = (await writeChunkFile(tmp, body, size, { create: true, hash: true }))!;
      if (sha256 !== undefined && actual !== sha256) {
        throw new BadRequest(`body sha256 ${actual} does not match the expected ${sha256}`);
      }
      return await this.withIdLock(id, () => this.commit(id, tmp, size, actual, true));
    } catch (err) {
      await removeTemp(tmp);
      throw mapDiskError(err);
    } finally {
      this.reservedBytes -= size;
    }
  }

  /**
   * Starts a local write: a gateway on this host that proved it sees this volume writes the body
   * into the returned temp file (in tmp/) itself and then commits it here. The node keeps what it
   * owns: the id and size checks, the capacity reservation, the final fsync, the rename into place
   * and the accounting. The bytes skip a socket and this process; the writer hashes them once.
   */
  async beginLocalWrite(id: string, size: number): Promise<string> {
    this.checkPut(id, size);
    // Reserved before anything is awaited, so concurrent begins cannot all pass the check.
    this.reservedBytes += size;
    const name = tempFileName(id);
    const file = path.join(this.tmpDir, name);
    try {
      await (await open(file, 'wx', privateFileMode)).close();
    } catch (err) {
      this.reservedBytes -= size;
      await rm(file, { force: true }).catch(() => {});
      throw mapDiskError(err);
    }
    this.localWrites.set(name, { id, size, startedMs: performance.now() });
    this.localWriteSweep ??= setInterval(
      () => void this.expireLocalWrites(localWriteIdleMs),
      localWriteSweepMs,
    );
    this.localWriteSweep.unref();
    return name;
  }

  /**
   * Puts a local write's temp file in place as chunk `id` with the writer's sha256 and block sums
   * (reads and scrubs verify it like any other). It must hold exactly the declared size. A writer
   * of the version before block sums leaves none: its chunk is kept as such, checked whole on reads.
   * `elapsedMs` is the write's time since it began, for the node's write latency.
   */
  async commitLocalWrite(name: string, sha256: string): Promise<PutResult & { elapsedMs: number }> {
    if (!sha256Pattern.test(sha256)) throw new BadRequest('sha256 must be 64 lowercase hex characters');
    const w = this.localWrites.get(name);
    if (!w) throw new NotFound(`no local write ${name} in progress (expired, or the node restarted)`);
    this.localWrites.delete(name);
    const tmp = path.join(this.tmpDir, name);
    try {
      // The node's own fsyncs make it durable (the writer only synced early, to spread the writeback).
      await syncFile(tmp, w.size, 'local write');
      const sums = await syncFile(tempSumsFile(tmp), sumsFileBytes(w.size), "local write's block sums").then(
        () => true,
        (err) => {
          if (err.code === 'ENOENT') return false;
          throw err;
        },
      );
      const result = await this.withIdLock(w.id, () => this.commit(w.id, tmp, w.size, sha256, sums));
      return { ...result, elapsedMs: performance.now() - w.startedMs };
    } catch (err) {
      await removeTemp(tmp);
      throw mapDiskError(err);
    } finally {
      this.reservedBytes -= w.size;
    }
  }

  /** Gives up a local write: its temp file goes and its reservation is freed. Unknown names are a no-op. */
  async abortLocalWrite(name: string): Promise<void> {
    const w = this.localWrites.get(name);
    if (!w) return;
    this.localWrites.delete(name);
    this.reservedBytes -= w.size;
    await removeTemp(path.join(this.tmpDir, name));
  }

  /** Aborts local writes whose temp file has not changed for `idleMs` (or has vanished). */
  async expireLocalWrites(idleMs: number): Promise<void> {
    const cutoff = Date.now() - idleMs;
    for (const name of [...this.localWrites.keys()]) {
      const st = await stat(path.join(this.tmpDir, name)).catch(() => undefined);
      if (!st || st.mtimeMs < cutoff) {
        this.logger?.warn({ tmp: name }, 'local write abandoned: removed');
        await this.abortLocalWrite(name).catch(() => {});
      }
    }
    if (this.localWrites.size === 0) {
      clearInterval(this.localWriteSweep);
      this.localWriteSweep = undefined;
    }
  }

  /** Throws what `put` would refuse on its arguments alone, before any body byte is read. */
  checkPut(id: string, size: number, sha256?: string): void {
    checkChunkId(id);
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
    checkChunkId(id);
    const found = await this.locate(id);
    if (!found) throw new NotFound(`chunk ${id} not found`);
    const read = await readChunkFile(found, found.sha256, {
      range,
      onCorrupt: (ino) => this.quarantine(id, found, ino),
    }).catch((err) => {
      throw err instanceof NotFound ? new NotFound(`chunk ${id} not found`) : err;
    });
    return { ...read, sha256: found.sha256 };
  }

  async head(id: string): Promise<ChunkInfo | undefined> {
    checkChunkId(id);
    const found = await this.locate(id);
    if (!found) return undefined;
    const st = await stat(found.data).catch(() => undefined);
    return st && { id, size: st.size, sha256: found.sha256, mtimeMs: Math.floor(st.mtimeMs) };
  }

  /**
   * Removes a chunk. The directory is not fsync'd: a delete undone by a crash leaves an orphan that
   * garbage collection deletes again, which costs less than a sync on every delete.
   */
  async delete(id: string): Promise<void> {
    checkChunkId(id);
    await this.withIdLock(id, async () => {
      const found = await this.locate(id);
      if (!found) return;
      const st = await stat(found.data).catch(() => undefined);
      await rm(found.sums, { force: true });
      try {
        await unlink(found.data);
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

  /**
   * Under the id lock: decide by the content already there, else rename into place durably, the
   * block sums (when `sums`: tempSumsFile(tmp)) first.
   */
  private async commit(
    id: string,
    tmp: string,
    size: number,
    sha256: string,
    sums: boolean,
  ): Promise<PutResult> {
    const existing = await this.locate(id);
    if (existing) {
      await removeTemp(tmp);
      if (existing.sha256 !== sha256) throw new Conflict(`chunk ${id} already exists with other content`);
      return { id, size, sha256, created: false };
    }
    const name = `${id}.${sha256}`;
    const placed = sums ? [await renameInto(tempSumsFile(tmp), this.sumsDir, id, name)] : [];
    placed.push(await renameInto(tmp, this.chunksDir, id, name));
    await Promise.all(placed.map((sync) => sync()));
    this.usedBytes += size;
    this.chunkCount += 1;
    return { id, size, sha256, created: true };
  }

  private locate(id: string): Promise<LocatedChunk | undefined> {
    return locateChunk({ chunks: this.chunksDir, sums: this.sumsDir }, id);
  }

  private forget(size: number): void {
    this.usedBytes -= size;
    this.chunkCount -= 1;
  }

  /**
   * Moves a chunk whose bytes no longer match their checksums out of the store (its sums are
   * dropped: the log line says what failed, and the name still carries its sha256). Only the very
   * file that was read (same inode) is moved: a good copy written since by repair must not be
   * quarantined.
   */
  private quarantine(id: string, found: ChunkPaths, ino: number): void {
    this.corruptions += 1;
    const move = this.withIdLock(id, async () => {
      const st = await stat(found.data).catch(() => undefined);
      if (!st || st.ino !== ino) return;
      const dest = path.join(this.quarantineDir, `${path.basename(found.data)}.${Date.now()}`);
      await rm(found.sums, { force: true });
      await rename(found.data, dest);
      this.forget(st.size);
      this.logger?.warn({ chunkId: id, quarantined: dest }, 'chunk failed its checksums: quarantined');
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

/** Removes a temp file and its block sums, whatever is left of them. */
async function removeTemp(tmp: string): Promise<void> {
  await Promise.all([rm(tmp, { force: true }), rm(tempSumsFile(tmp), { force: true })]).catch(() => {});
}

/** Checks that `file` holds `size` bytes and fsyncs it (ENOENT when it is not there). */
async function syncFile(file: string, size: number, what: string): Promise<void> {
  const fh = await open(file, fsConstants.O_RDONLY);
  try {
    const st = await fh.stat();
    if (st.size !== size) throw new BadRequest(`${what} of ${st.size} bytes declared as ${size}`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Renames `tmp` to `name` in chunk `id`'s fan-out directory under `root`; returns what makes that
 * durable, to run once every rename of a commit is done. Fan-out directories are made on first use
 * only: the rename tells whether the leaf exists, which saves a mkdir call on every write.
 */
async function renameInto(tmp: string, root: string, id: string, name: string): Promise<() => Promise<void>> {
  const leaf = chunkLeafDir(root, id);
  let made: string | undefined;
  try {
    await rename(tmp, path.join(leaf, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    made = await mkdir(leaf, { recursive: true, mode: privateDirMode });
    await rename(tmp, path.join(leaf, name));
  }
  return async () => {
    await fsyncDir(leaf);
    // A freshly made fan-out directory must itself be durable in its parent, or the file in it
    // could vanish with it after a crash.
    if (made !== undefined) {
      await fsyncDir(path.dirname(leaf));
      await fsyncDir(root);
    }
  };
}

function mapDiskError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new InsufficientStorage('the disk is full');
  return err;
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
const volumeFile = 'VOLUME';

async function readVolumeId(chunksDir: string): Promise<string | undefined> {
  try {
    return (await readFile(path.join(chunksDir, volumeFile), 'utf8')).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A new volume id, made durable (temp file, fsync, rename, fsync dir) before it is reported. */
async function writeVolumeId(chunksDir: string): Promise<string> {
  const id = randomId(8);
  const tmp = path.join(chunksDir, `${volumeFile}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${id}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path.join(chunksDir, volumeFile));
  await fsyncDir(chunksDir);
  return id;
}

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
    privateFile(file); // an older version wrote it 0644
    return existing;
  }
  const identity: NodeIdentity = { id: requested ?? randomId(8), createdAt: new Date().toISOString() };
  privateDir(dataDir);
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', privateFileMode);
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
