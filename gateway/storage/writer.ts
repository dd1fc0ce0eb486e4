import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { BadRequest, IncompleteBody, InsufficientStorage, Unavailable } from '../../lib/errors.js';
import { newChunkId } from '../../lib/ids.js';
import type { ClusterView, Replica } from './cluster.js';
import type { IntentLog } from './intents.js';
import type { ChunkRecord } from './meta.js';

// The write path: cut a body stream at chunk boundaries and stream each chunk to R nodes at
// once. Each chunk's SHA-256 is computed here once; a replica counts only when the node reports
// the same SHA-256 for what it fsync'd. A node whose volume is on this host (local-volumes.ts) gets
// its bytes written straight into a temp file it hands out, and commits that under this SHA-256:
// no bytes travel between processes there, and the hash is taken of the very buffers written, as a
// node hashes the buffers it writes. (Object-level digests are the caller's: see ingest.ts.)

export interface WriteOptions {
  /** Exact number of body bytes expected; fewer or more is an error. */
  size: number;
  chunkSize: number;
  replication: number;
  writeQuorum: number;
  /** See GatewayConfig.replicaStallMs; unset: a replica is waited for until it fails. */
  replicaStallMs?: number;
  partNumber?: number;
  /** Where each chunk is recorded before its bytes go out (intents.ts). */
  intents: IntentLog;
}

export interface WriteResult {
  size: number;
  chunks: ChunkRecord[];
}

/** Per-replica stream buffer: bounds the memory a slow node can pin in the gateway. */
const replicaBufferBytes = 1024 * 1024;
/** The same for a replica written locally, whose file writer holds a batch of its own. */
const localRelayBytes = 64 * 1024;

/**
 * A last chunk this small (all of a small object) is collected here first and sent to each
 * replica in one `end(buffer)`, with its sha256 up front so the node checks it before keeping the
 * bytes. Streaming it through a PassThrough and a length check per replica costs more CPU and
 * socket writes than the bytes themselves; holding one such chunk per request keeps memory flat.
 */
export const smallChunkBytes = 256 * 1024;

export async function writeChunks(
  body: AsyncIterable<Buffer>,
  cluster: ClusterView,
  opts: WriteOptions,
): Promise<WriteResult> {
  const done: Promise<ChunkRecord>[] = [];
  /** Every chunk begun, to abandon their intents if the write fails. */
  const begun: string[] = [];
  let current: ChunkFanout | undefined;
  let offset = 0;
  let seq = 0;
  let failed: Error | undefined;
  try {
    for await (const data of body) {
      if (failed) throw failed;
      let buf = data as Buffer;
      if (offset + buf.length > opts.size) throw new BadRequest('body longer than declared length');
      while (buf.length > 0) {
        if (!current) {
          const size = Math.min(opts.chunkSize, opts.size - offset);
          // Only the last chunk: earlier ones keep the streaming path's backpressure.
          const buffered = size <= smallChunkBytes && offset + size === opts.size;
          current = new ChunkFanout(cluster, opts, size, seq++, offset, buffered);
          begun.push(current.id);
          await opts.intents.record(current.id, current.nodeIds);
        }
        const n = Math.min(buf.length, current.remaining);
        await current.write(buf.subarray(0, n));
        offset += n;
        buf = buf.subarray(n);
        if (current.remaining === 0) {
          // Acks of this chunk are awaited while the next chunk streams: fsync latency overlaps.
          // A chunk that fails meanwhile ends the upload at the next write (a disk filling up
          // should not take another gigabyte first), and is never an unhandled rejection.
          const finished = current.finish();
          finished.catch((err) => {
            failed ??= err;
          });
          done.push(finished);
          current = undefined;
        }
      }
    }
    if (offset !== opts.size) throw new IncompleteBody(`body ended after ${offset} of ${opts.size} bytes`);
    const chunks = await Promise.all(done);
    return { size: offset, chunks };
  } catch (err) {
    current?.abort(err as Error);
    // Settle every chunk write, then remove what was stored: nothing of a failed write stays.
    // Chunks that lost their quorum may still have a copy somewhere, and a gateway that dies here
    // deletes nothing: their intents tell the manager (leftovers.ts).
    const settled = await Promise.allSettled(done);
    discardChunks(
      cluster,
      opts.intents,
      settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])),
      begun,
    );
    throw err;
  }
}

/**
 * Removal of chunks that will never be committed: their stored copies are deleted now, best
 * effort, and their intents (with `also`, chunks begun but never stored) are handed to the manager,
 * which deletes whatever reached a node, retrying until it is gone.
 */
export function discardChunks(
  cluster: ClusterView,
  intents: IntentLog,
  chunks: ChunkRecord[],
  also: string[] = [],
): void {
  for (const chunk of chunks) {
    for (const replica of cluster.readOrder(chunk.id, chunk.nodeIds)) {
      replica.client.delete(chunk.id).catch(() => {});
    }
  }
  const ids = new Set([...chunks.map((c) => c.id), ...also]);
  intents.abandon([...ids]).catch(() => {});
}

interface ReplicaWrite {
  replica: Replica;
  pass: PassThrough;
  result: Promise<{ sha256: string; size: number }>;
  failed?: Error;
}

/**
 * The error of a chunk write that lost its quorum: a full disk (507, retrying does not help) when
 * every replica that failed failed for want of space, else unavailable (503, retry).
 */
function quorumLost(message: string, failures: unknown[]): Error {
  const noSpace = (e: unknown) =>
    e instanceof InsufficientStorage ||
    (e as NodeJS.ErrnoException)?.code === 'ENOSPC' ||
    (e as NodeJS.ErrnoException)?.code === 'EDQUOT';
  return failures.length > 0 && failures.every(noSpace)
    ? new InsufficientStorage(message)
    : new Unavailable(message);
}

/** One chunk being streamed to its R replicas at once, with backpressure from the slowest. */
class ChunkFanout {
  readonly id = newChunkId();
  readonly sha = createHash('sha256');
  /** The chunk's sha256 once all of it has passed (local writes commit with it). */
  private readonly digest = deferred<string>();
  remaining: number;
  private writes: ReplicaWrite[] = [];
  private readonly replicas: Replica[];
  readonly nodeIds: string[];
  /** The bytes of a buffered chunk (see smallChunkBytes), sent once all have arrived. */
  private readonly parts: Buffer[] | undefined;

  constructor(
    private readonly cluster: ClusterView,
    private readonly opts: WriteOptions,
    readonly size: number,
    readonly seq: number,
    readonly offset: number,
    buffered = false,
  ) {
    this.remaining = size;
    const replicas = cluster.place(this.id, opts.replication);
    if (replicas.length < opts.writeQuorum) {
      throw new Unavailable(`only ${replicas.length} storage nodes are up; ${opts.writeQuorum} are needed`);
    }
    this.replicas = replicas;
    this.nodeIds = replicas.map((r) => r.node.id);
    if (buffered) {
      this.parts = [];
      return;
    }
    this.writes = replicas.map((replica) => {
      // A local write buffers in its file writer (localWriteBatchBytes): the relay needs little.
      const pass = new PassThrough({ highWaterMark: replica.local ? localRelayBytes : replicaBufferBytes });
      const w: ReplicaWrite = { replica, pass, result: this.putReplica(replica, pass) };
      // A local replica reads its stream only once the node has begun the write: an abort before
      // that must not be an unhandled 'error' (the failure reaches `result` either way).
      pass.on('error', () => {});
      w.result.catch((err) => {
        w.failed = err;
        pass.destroy();
      });
      return w;
    });
  }

  async write(buf: Buffer): Promise<void> {
    this.sha.update(buf);
    this.remaining -= buf.length;
    if (this.parts) {
      this.parts.push(buf);
      return;
    }
    const behind = new Set<ReplicaWrite>();
    for (const w of this.writes) if (!w.failed && !w.pass.write(buf)) behind.add(w);
    if (behind.size > 0) await this.drained(behind);
    this.checkQuorum();
  }

  /**
   * Waits for the replicas `behind` to drain (or fail). One still behind after replicaStallMs while
   * its node answers no probe and a write quorum keeps up is dropped: a hung node must not hold
   * every upload until its timeout.
   */
  private async drained(behind: Set<ReplicaWrite>): Promise<void> {
    const stallMs = this.opts.replicaStallMs;
    await Promise.all(
      [...behind].map(async (w) => {
        // A replica that fails while behind is no longer waited for: its pass errors, its result rejects.
        const caughtUp = Promise.race([once(w.pass, 'drain').catch(() => {}), w.result.catch(() => {})]);
        if (stallMs !== undefined) {
          while ((await this.cluster.untilStalled(caughtUp, stallMs, w.replica.node.id)) === 'stalled') {
            const keepingUp = this.writes.filter((x) => !x.failed && !behind.has(x)).length;
            if (keepingUp >= this.opts.writeQuorum)
              return this.drop(w, `stalled for ${stallMs} ms while writing and answers no probe`);
          }
        }
        await caughtUp;
        behind.delete(w);
      }),
    );
  }

  /** Gives up on one replica; the chunk is recorded without it and repair makes up the count. */
  private drop(w: ReplicaWrite, why: string): void {
    if (w.failed) return;
    w.failed = new Unavailable(`node ${w.replica.node.id} ${why}`);
    w.pass.destroy(w.failed);
  }

  /**
   * One replica's write: into its volume directly when it is on this host, else over HTTP to its
   * node. A streamed body's sha256 is known only at its end (`digest`), which only a local commit
   * can wait for; over HTTP the node reports what it hashed.
   */
  private putReplica(replica: Replica, body: Readable | Buffer, sha256?: string) {
    return replica.local
      ? writeLocal(this.cluster, replica, this.id, body, this.size, sha256 ?? this.digest.promise)
      : replica.client.put(this.id, body, this.size, sha256);
  }

  private checkQuorum(): void {
    const failures = this.writes.flatMap((w) => (w.failed ? [w.failed] : []));
    const alive = this.writes.length - failures.length;
    if (alive < this.opts.writeQuorum) {
      throw quorumLost(
        `chunk write lost quorum: ${alive} of ${this.opts.writeQuorum} replicas left (${failures.map((e) => e.message).join('; ')})`,
        failures,
      );
    }
  }

  async finish(): Promise<ChunkRecord> {
    for (const w of this.writes) if (!w.failed) w.pass.end();
    const sha256 = this.sha.digest('hex');
    this.digest.resolve(sha256);
    let results: PromiseSettledResult<{ sha256: string; size: number }>[];
    if (this.parts) {
      const body = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
      results = await this.acks(this.replicas.map((r) => this.putReplica(r, body, sha256)));
    } else {
      results = await this.acks(this.writes.map((w) => (w.failed ? Promise.reject(w.failed) : w.result)));
    }
    const nodeIds: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled' && r.value.sha256 === sha256 && r.value.size === this.size) {
        nodeIds.push(this.replicas[i].node.id);
      }
    });
    if (nodeIds.length < this.opts.writeQuorum) {
      const reasons = results.map((r) =>
        r.status === 'rejected' ? String(r.reason?.message ?? r.reason) : 'ok',
      );
      throw quorumLost(
        `chunk ${this.id}: ${nodeIds.length} of ${this.opts.writeQuorum} replicas acknowledged (${reasons.join('; ')})`,
        results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : [])),
      );
    }
    return {
      id: this.id,
      seq: this.seq,
      offset: this.offset,
      size: this.size,
      sha256,
      partNumber: this.opts.partNumber ?? null,
      nodeIds,
      ...(nodeIds.length < this.opts.replication ? { short: true } : {}),
    };
  }

  /**
   * Every replica's answer, except that once a write quorum has answered, the others get as long
   * again (at least replicaStallMs) and are then counted as failed if their node answers no probe:
   * their late answers are ignored, and a file a late one commits anyway is an orphan that the
   * inventory walk removes.
   */
  private async acks<T>(writes: Promise<T>[]): Promise<PromiseSettledResult<T>[]> {
    const settled = writes.map((p) =>
      p.then(
        (value): PromiseSettledResult<T> => ({ status: 'fulfilled', value }),
        (reason): PromiseSettledResult<T> => ({ status: 'rejected', reason }),
      ),
    );
    const stallMs = this.opts.replicaStallMs;
    if (stallMs === undefined) return Promise.all(settled);
    const started = Date.now();
    await new Promise<void>((resolve) => {
      let ok = 0;
      let done = 0;
      for (const p of writes)
        p.then(
          () => ok++,
          () => {},
        ).then(() => {
          done++;
          if (ok === this.opts.writeQuorum || done === writes.length) resolve();
        });
    });
    const grace = Math.max(stallMs, Date.now() - started);
    return Promise.all(
      settled.map(async (s, i) => {
        const r = await this.cluster.untilStalled(s, grace, this.replicas[i].node.id);
        return r !== 'stalled'
          ? r
          : { status: 'rejected', reason: new Unavailable(`no answer within ${Date.now() - started} ms`) };
      }),
    );
  }

  abort(err: Error): void {
    this.digest.reject(err);
    for (const w of this.writes) w.pass.destroy(err);
  }
}

/**
 * Writes one replica into its node's volume on this host (LocalVolumeStore.putHashed). Fails like a
 * remote replica would; a failed system call here also sends the node's chunks back over HTTP for
 * a while.
 */
async function writeLocal(
  cluster: ClusterView,
  replica: Replica,
  id: string,
  body: Readable | Buffer,
  size: number,
  sha256: Promise<string> | string,
): Promise<{ sha256: string; size: number }> {
  try {
    return await replica.local!.putHashed(id, body, size, sha256);
  } catch (err) {
    // Its volume is out of this process's reach (permissions, descriptors, a read-only mount): back
    // to HTTP for a while. A full disk or a temp file gone with a node restart says nothing of that.
    const { syscall, code } = err as NodeJS.ErrnoException;
    if (syscall === 'open' && code !== 'ENOENT') cluster.localVolumes.forget(replica.node.id);
    throw err;
  }
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting (no local replica): a rejection is not an unhandled one.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
