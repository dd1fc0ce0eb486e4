import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  chunkPaths,
  isTempFileName,
  locateChunk,
  readChunkFile,
  volumeDirs,
  writeChunkFile,
} from '../../lib/chunk-file.js';
import {
  type ByteRange,
  type ChunkInfo,
  type ChunkPage,
  type ChunkStore,
  checkChunkId,
  type GetResult,
  type PutResult,
} from '../../lib/chunk-store.js';
import { BadRequest, NotFound, Unavailable } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { NodeClient } from '../../lib/node-client.js';

// Local reads and writes (HDFS's "short-circuit local reads", taken to writes too): when a storage
// node's volume is on this host, as with the embedded default's node processes, the gateway reads
// chunk files itself rather than through the node's HTTP server, and writes a new chunk's bytes
// into a temp file the node hands it. A chunk then costs one pass through the disk cache, not a
// second process and two socket copies. The node still owns its volume: a local write is begun and
// committed by the node (id and capacity checks, reservation, fsync, rename, accounting), and reads
// stay verified: lib/chunk-file.ts, which the node serves its own reads through, checks every block
// a read touches before any byte of it goes out.
//
// A node's volume counts as local only once proven: the node names its data dir and identity stamp
// in /health, and node.json at that path here must carry the same id and stamp. A node in a
// container names a path inside the container, which this host does not see, so it stays remote.

interface Known {
  addr: string;
  /** The node's volume as a store, when local; null when not. */
  store: LocalVolumeStore | null;
  /** This process may create files in its tmp/ (a gateway of another user, a read-only mount: not). */
  writable: boolean;
  /** When an answer that may change (node unreachable, a local read failed) is checked again. */
  recheckAt: number;
}

/** Local reads are reported to their node this often, so its read KPIs still count them. */
const reportEveryMs = 1000;
/** A node that did not answer (starting, restarting) is asked again this soon. */
const unreachableRecheckMs = 1000;
/** After a local read or write failed for a reason not about the chunk, it goes over HTTP this long. */
const failedRecheckMs = 30_000;

export class LocalVolumes {
  private readonly known = new Map<string, Known>();
  private readonly probing = new Set<string>();
  /** Local reads per node not yet reported to it. */
  private readonly unreported = new Map<string, { client: NodeClient; reads: number; bytes: number }>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly enabled: boolean,
    private readonly log?: Logger,
  ) {
    if (!enabled) return;
    this.timer = setInterval(() => this.report(), reportEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.report();
  }

  /** One local read of a chunk file of `replica`'s volume, `bytes` long, to be reported to the node. */
  record(replica: { node: { id: string }; client: NodeClient }, bytes: number): void {
    const u = this.unreported.get(replica.node.id) ?? { client: replica.client, reads: 0, bytes: 0 };
    u.reads += 1;
    u.bytes += bytes;
    this.unreported.set(replica.node.id, u);
  }

  /** Best effort: a report that fails is dropped (these are KPIs, not data). */
  private report(): void {
    for (const [nodeId, u] of this.unreported) {
      this.unreported.delete(nodeId);
      u.client.reportLocalReads(u.reads, u.bytes).catch((err) => {
        this.log?.debug({ node: nodeId, err: String(err) }, 'could not report local reads');
      });
    }
  }

  /**
   * The node's volume as a store if it is local (and, for 'write', writable from here). The first
   * call for a node (or a node at a new address) starts the check in the background and answers
   * undefined: chunks go over HTTP until the check has answered.
   */
  store(
    nodeId: string,
    addr: string,
    client: NodeClient,
    use: 'read' | 'write' = 'read',
  ): LocalVolumeStore | undefined {
    if (!this.enabled) return undefined;
    const k = this.known.get(nodeId);
    if (k && k.addr === addr && Date.now() < k.recheckAt) {
      return use === 'write' && !k.writable ? undefined : (k.store ?? undefined);
    }
    if (!this.probing.has(nodeId)) {
      this.probing.add(nodeId);
      void this.probe(nodeId, addr, client).finally(() => this.probing.delete(nodeId));
    }
    return undefined;
  }

  /** Local access failed for a reason other than the chunk itself: use this node over HTTP again. */
  forget(nodeId: string): void {
    const k = this.known.get(nodeId);
    if (k) Object.assign(k, { store: null, recheckAt: Date.now() + failedRecheckMs });
  }

  private async probe(nodeId: string, addr: string, client: NodeClient): Promise<void> {
    let dataDir: string | null = null;
    let writable = false;
    // A proven answer (local or not) holds for as long as the node keeps its address.
    let recheckAt = Number.POSITIVE_INFINITY;
    try {
      const health = await client.health().catch((err) => {
        recheckAt = Date.now() + unreachableRecheckMs;
        throw err;
      });
      const volume = health.volume;
      if (volume && health.nodeId === nodeId && path.isAbsolute(volume.dataDir)) {
        const here = JSON.parse(await readFile(path.join(volume.dataDir, 'node.json'), 'utf8'));
        if (here?.id === nodeId && here?.createdAt === volume.createdAt) {
          dataDir = volume.dataDir;
          writable = await access(volumeDirs(dataDir).tmp, fsConstants.W_OK).then(
            () => true,
            () => false,
          );
        }
      }
    } catch {
      // Not reachable, not visible from here, not readable: remote it is.
    }
    this.known.set(nodeId, {
      addr,
      store: dataDir ? new LocalVolumeStore(dataDir, client) : null,
      writable,
      recheckAt,
    });
    if (dataDir) {
      this.log?.info({ node: nodeId, dataDir, writable }, 'storage node volume is local: using it directly');
    }
  }
}

/**
 * A storage node's volume on this host, as a ChunkStore (the contract suite holds it to what the
 * node promises over HTTP): reads and heads straight from its files, verified block by block; a
 * put begun and committed by the node, its bytes written here; deletes and listings asked of the
 * node, which owns its accounting.
 */
export class LocalVolumeStore implements ChunkStore {
  private readonly dirs: ReturnType<typeof volumeDirs>;

  constructor(
    readonly dataDir: string,
    private readonly node: NodeClient,
  ) {
    this.dirs = volumeDirs(dataDir);
  }

  /** A put that hashes the body itself: an expected `sha256` must match, or nothing is kept. */
  async put(id: string, body: Readable | Buffer, size: number, sha256?: string): Promise<PutResult> {
    checkChunkId(id);
    return this.write(id, body, size, (computed) => {
      if (sha256 !== undefined && computed !== sha256)
        throw new BadRequest(`body hashes to ${computed}, not the expected ${sha256}`);
      return computed;
    });
  }

  /**
   * The writer's put: it hashes every chunk as it streams to all replicas, so the SHA-256 of these
   * very buffers comes from it (resolved once the body has passed) instead of being taken again.
   */
  putHashed(
    id: string,
    body: Readable | Buffer,
    size: number,
    sha256: Promise<string> | string,
  ): Promise<PutResult> {
    return this.write(id, body, size, undefined, sha256);
  }

  async get(id: string, range?: ByteRange): Promise<GetResult> {
    checkChunkId(id);
    const found = await locateChunk(this.dirs, id);
    if (!found) throw new NotFound(`chunk ${id} not found`);
    return this.read(id, found.sha256, range);
  }

  /**
   * get() for a caller that knows the chunk's sha256 (the reader has it from metadata): the file's
   * name follows from it, so no directory is listed on the read path. A file of other content is
   * simply not there (NotFound).
   */
  async read(id: string, sha256: string, range?: ByteRange): Promise<GetResult> {
    const read = await readChunkFile(chunkPaths(this.dataDir, id, sha256), sha256, { range });
    return { ...read, sha256 };
  }

  async head(id: string): Promise<ChunkInfo | undefined> {
    checkChunkId(id);
    const found = await locateChunk(this.dirs, id);
    const st = found && (await stat(found.data).catch(() => undefined));
    return st && { id, size: st.size, sha256: found.sha256, mtimeMs: Math.floor(st.mtimeMs) };
  }

  delete(id: string): Promise<void> {
    return this.node.delete(id);
  }

  list(after?: string, limit?: number): Promise<ChunkPage> {
    return this.node.list(after, limit);
  }

  /**
   * The node begins the write (id and capacity checks, a reservation, a temp file), the bytes go
   * straight into that file (written back as they go) with their block sums, and the node commits
   * it under the SHA-256: `check` takes the one hashed here, else `sha256` is the writer's.
   */
  private async write(
    id: string,
    body: Readable | Buffer,
    size: number,
    check: ((computed: string) => string) | undefined,
    sha256?: Promise<string> | string,
  ): Promise<PutResult> {
    let name: string | undefined;
    try {
      name = await this.node.beginLocalWrite(id, size);
      if (!isTempFileName(name, id)) throw new Unavailable(`node named temp file ${name}`);
      const computed = await writeChunkFile(path.join(this.dirs.tmp, name), body, size, {
        create: false,
        hash: check !== undefined,
        batchBytes: localWriteBatchBytes,
      });
      return await this.node.commitLocalWrite(name, check ? check(computed!) : await sha256!);
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy();
      if (name !== undefined) this.node.abortLocalWrite(name).catch(() => {});
      throw err;
    }
  }
}

/**
 * A local write batches at most this much per file write: one upload's three replicas share their
 * buffers, but the slowest one's backlog is held, and with many uploads at once that is the
 * gateway's memory.
 */
const localWriteBatchBytes = 1024 * 1024;
