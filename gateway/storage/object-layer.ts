import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { NoSuchKey } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { readExactly } from '../../lib/streams.js';
import type { GatewayConfig } from '../config.js';
import type { ClusterView } from './cluster.js';
import type { IntentLog } from './intents.js';
import type { ChunkRecord, MetaStore, ObjectMeta, ObjectRow, WriteConditions } from './meta.js';
import { readChunks } from './reader.js';
import {
  type CompleteRequest,
  type CompleteResult,
  type NewPart,
  type PartRow,
  type UploadRow,
  UploadStore,
} from './uploads.js';
import { discardChunks, writeChunks } from './writer.js';

// The gateway's storage front door: what the S3 handlers ask of storage (put an object, put a
// part, complete or abort an upload, open an object's bytes for a range; a copy is an open range
// put again), in terms free of S3. It owns where bytes go (chunks on the storage nodes, or inline
// in the metadata row), the commit that makes them visible, and cleanup: committed, or nothing
// stays. What goes wrong is a lib/errors.ts domain error, which s3/errors.ts alone maps to S3.

/** A body to store: decoded and verified by the S3 layer as it streams through. */
export interface Incoming {
  stream: Readable;
  size: number;
}

/**
 * What was stored, for the caller to describe it just before the commit (a body's digests are
 * known only once all of it has passed). A describe that throws fails the write like any other
 * failure: nothing is committed and the stored bytes go.
 */
export interface Stored {
  size: number;
  /** The body's SHA-256 when it is exactly one chunk (the writer computes it for the chunk anyway). */
  sha256?: string;
}

interface Placed {
  stored: Stored;
  chunks: ChunkRecord[];
  inline?: Buffer;
}

export interface StorageDeps {
  config: GatewayConfig;
  db: Knex;
  meta: MetaStore;
  cluster: ClusterView;
  intents: IntentLog;
  log: Logger;
}

export class ObjectLayer {
  readonly uploads: UploadStore;

  constructor(private readonly deps: StorageDeps) {
    this.uploads = new UploadStore(deps.db, deps.meta);
  }

  /** Whether an object (never a part: parts are chunk boundaries) of `size` is kept in its row. */
  inlines(size: number): boolean {
    return size > 0 && size <= this.deps.config.inlineMaxBytes;
  }

  /** Stores `body` as the object bucket/key, replacing the current version atomically. */
  async putObject(
    bucket: string,
    key: string,
    body: Incoming,
    describe: (stored: Stored) => Omit<ObjectMeta, 'inlineData'>,
    cond: WriteConditions = {},
  ): Promise<ObjectRow> {
    const placed = await this.place(body, this.inlines(body.size));
    const meta = this.describedOrDiscarded(placed, describe);
    return this.committedOrAbandoned(placed, () =>
      this.deps.meta.commitObject(
        bucket,
        key,
        { ...meta, inlineData: placed.inline ?? null },
        placed.chunks,
        cond,
      ),
    );
  }

  /** Stores `body` as a part of an active upload; a part of the same number is replaced. */
  async putPart(
    upload: UploadRow,
    partNumber: number,
    body: Incoming,
    describe: (stored: Stored) => Omit<NewPart, 'partNumber'>,
  ): Promise<PartRow> {
    const placed = await this.place(body, false, partNumber);
    const part = this.describedOrDiscarded(placed, describe);
    return this.committedOrAbandoned(placed, () =>
      this.uploads.commitPart(upload.id, upload.bucket, upload.key, { ...part, partNumber }, placed.chunks),
    );
  }

  activeUpload(uploadId: string, bucket: string, key: string): Promise<UploadRow> {
    return this.uploads.active(uploadId, bucket, key);
  }

  /** Makes the listed parts the object (metadata only: their chunks become the object's). */
  complete(req: CompleteRequest): Promise<CompleteResult> {
    return this.uploads.complete(req);
  }

  abort(uploadId: string, bucket: string, key: string): Promise<void> {
    return this.uploads.abort(uploadId, bucket, key);
  }

  /**
   * Bytes [start, end] of an object (start > end: none): an inline object's from its row, checked
   * against its ETag first; a chunked one's streamed from its replicas, every byte verified.
   */
  async openRange(obj: ObjectRow, start: number, end: number, log: Logger): Promise<Buffer | Readable> {
    if (end < start) return Buffer.alloc(0);
    if (obj.inlineData) return inlineBytes(obj).subarray(start, end + 1);
    const { meta, cluster, config } = this.deps;
    const chunks = await meta.chunksOf(obj.id, start, end);
    if (chunks.length === 0) {
      // Deleted or overwritten since its row was read (its chunks were detached): gone, as S3 says.
      const now = await meta.getObject(obj.bucket, obj.key);
      if (now?.id !== obj.id) throw new NoSuchKey(obj.key);
      // An inline row read without its data would otherwise stream nothing under a Content-Length.
      throw new Error(`${obj.bucket}/${obj.key} has no bytes for ${start}-${end} here`);
    }
    return readChunks(chunks, cluster, {
      start,
      end,
      log,
      stallMs: config.replicaStallMs,
      onCorrupt: (chunkId, nodeId) => {
        meta.markReplicaCorrupt(chunkId, nodeId).catch(() => {});
      },
    });
  }

  /** The body's bytes in the object's row, or in chunks on the storage nodes. */
  private async place(body: Incoming, inline: boolean, partNumber?: number): Promise<Placed> {
    if (inline) {
      const data = await readExactly(body.stream, body.size);
      return { stored: { size: data.length }, chunks: [], inline: data };
    }
    const { config, cluster, intents } = this.deps;
    const written = await writeChunks(body.stream, cluster, {
      size: body.size,
      chunkSize: config.chunkSizeBytes,
      replication: config.replication,
      writeQuorum: config.writeQuorum,
      replicaStallMs: config.replicaStallMs,
      partNumber,
      intents,
    });
    const sha256 = written.chunks.length === 1 ? written.chunks[0].sha256 : undefined;
    return { stored: { size: written.size, sha256 }, chunks: written.chunks };
  }

  /** The caller's description of what was stored; a describe that refuses it removes the chunks. */
  private describedOrDiscarded<T>(placed: Placed, describe: (stored: Stored) => T): T {
    try {
      return describe(placed.stored);
    } catch (err) {
      discardChunks(this.deps.cluster, this.deps.intents, placed.chunks);
      throw err;
    }
  }

  /**
   * A failed commit hands its chunks' intents back and deletes nothing itself: its outcome may be
   * unknown (the database committed, then the connection dropped before the answer). The manager
   * deletes an abandoned intent's bytes only when no chunk row names them (leftovers.ts), and a
   * commit that did land removed its intents, so abandoning them is a no-op.
   */
  private async committedOrAbandoned<T>(placed: Placed, commit: () => Promise<T>): Promise<T> {
    try {
      return await commit();
    } catch (err) {
      this.deps.intents.abandon(placed.chunks.map((c) => c.id)).catch(() => {});
      throw err;
    }
  }
}

/**
 * An inline object's bytes, checked against its ETag (the MD5 of its content: inline objects are
 * never multipart) before any is sent, so a damaged row is an internal error rather than wrong data.
 */
function inlineBytes(obj: ObjectRow): Buffer {
  const data = obj.inlineData!;
  if (createHash('md5').update(data).digest('hex') !== obj.etag)
    throw new Error(`inline bytes of ${obj.bucket}/${obj.key} do not match their ETag`);
  return data;
}
