import { Readable } from 'node:stream';
import type { ByteRange } from '../../lib/chunk-store.js';
import { Corrupt, NotFound, Unavailable } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { ClusterView, Replica } from './cluster.js';
import type { StoredChunk } from './meta.js';

// The read path: only the chunks a range needs, each from the first healthy replica (its chunk
// file directly when the node's volume is on this host: local-volumes.ts), failing over to the
// next replica on error. Either way a replica hands out only bytes whose blocks it has checked
// (lib/chunk-file.ts), so on any failure, a bad block included, what was sent is good and the next
// replica takes over from the first byte not sent. The next chunk's request is opened while the
// current one streams, so the pipe never waits on a round trip between chunks.

export interface ReadOptions {
  /** Inclusive byte range within the object. */
  start: number;
  end: number;
  log?: Logger;
  /** Called when a node served bytes that failed their checksum, so repair can replace them. */
  onCorrupt?: (chunkId: string, nodeId: string) => void;
  /**
   * A replica that sends nothing for this long while the reader waits on it (a hung node; not a
   * slow client, whose wait is not counted) is given up for the next one, from the first byte not
   * yet sent. Unset: until the node timeout.
   */
  stallMs?: number;
}

interface Piece {
  chunk: StoredChunk;
  /** Inclusive range within the chunk. */
  from: number;
  to: number;
}

interface Opened {
  stream: Readable;
  replica: Replica;
  rest: Replica[];
  /** Read from the replica's file on this host rather than through its node. */
  local?: boolean;
}

export function readChunks(chunks: StoredChunk[], cluster: ClusterView, opts: ReadOptions): Readable {
  const pieces: Piece[] = chunks.map((chunk) => ({
    chunk,
    from: Math.max(0, opts.start - chunk.offset),
    to: Math.min(chunk.size - 1, opts.end - chunk.offset),
  }));
  return Readable.from(streamPieces(pieces, cluster, opts), { objectMode: false, highWaterMark: 1 });
}

async function* streamPieces(
  pieces: Piece[],
  cluster: ClusterView,
  opts: ReadOptions,
): AsyncGenerator<Buffer> {
  let next: Promise<Opened> | undefined =
    pieces.length > 0
      ? open(pieces[0], cluster.readOrder(pieces[0].chunk.id, pieces[0].chunk.nodeIds), cluster, opts)
      : undefined;
  try {
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      const opened = next!;
      next = undefined;
      let sent = 0;
      let current: Opened | undefined = await opened;
      while (current) {
        const reading: Opened = current;
        const sentBefore = sent;
        try {
          for await (const buf of watched(reading, opts.stallMs, cluster)) {
            sent += buf.length;
            // Prefetch: once the current chunk flows, open the next one.
            if (!next && i + 1 < pieces.length) {
              const p = pieces[i + 1];
              next = open(p, cluster.readOrder(p.chunk.id, p.chunk.nodeIds), cluster, opts);
              next.catch(() => {});
            }
            yield buf as Buffer;
          }
          current = undefined;
        } catch (err) {
          opts.log?.warn(
            { chunk: piece.chunk.id, node: reading.replica.node.id, err: String(err) },
            'replica failed mid-read; failing over',
          );
          if (err instanceof Corrupt) opts.onCorrupt?.(piece.chunk.id, reading.replica.node.id);
          // Replicas send only checked bytes, so those already sent are good: continue from the
          // first byte not yet sent, on the next replica.
          current = await open({ ...piece, from: piece.from + sent }, reading.rest, cluster, opts);
        } finally {
          if (reading.local) cluster.localVolumes.record(reading.replica, sent - sentBefore);
        }
      }
      const expected = piece.to - piece.from + 1;
      if (sent !== expected)
        throw new Unavailable(`chunk ${piece.chunk.id}: served ${sent} of ${expected} bytes`);
      if (!next && i + 1 < pieces.length) {
        const p = pieces[i + 1];
        next = open(p, cluster.readOrder(p.chunk.id, p.chunk.nodeIds), cluster, opts);
      }
    }
  } finally {
    // A reader that stops early (its client left, a later chunk failed) must not leave the
    // prefetched chunk's file descriptor or node connection open behind it.
    next?.then(
      (o) => o.stream.destroy(),
      () => {},
    );
  }
}

/** A node's answer to a GET, or Unavailable once it has stalled (its late answer is closed). */
async function withinStall<T extends { stream: Readable }>(
  answer: Promise<T>,
  stallMs: number | undefined,
  replica: Replica,
  cluster: ClusterView,
): Promise<T> {
  if (stallMs === undefined) return answer;
  if ((await cluster.untilStalled(answer, stallMs, replica.node.id)) !== 'stalled') return answer;
  answer.then(
    (res) => res.stream.destroy(),
    () => {},
  );
  throw new Unavailable(`node ${replica.node.id} did not answer within ${stallMs} ms and answers no probe`);
}

/** The replica's stream, failing with Unavailable once it stalls (see untilStalled). */
async function* watched(
  opened: Opened,
  stallMs: number | undefined,
  cluster: ClusterView,
): AsyncGenerator<Buffer> {
  if (stallMs === undefined) return yield* opened.stream;
  const it: AsyncIterator<Buffer> = opened.stream[Symbol.asyncIterator]();
  let ended = false;
  try {
    for (;;) {
      const pending = it.next();
      // Destroying a stalled stream rejects the read it was waiting on: that is no unhandled error.
      pending.catch(() => {});
      const next = await cluster.untilStalled(pending, stallMs, opened.replica.node.id);
      if (next === 'stalled')
        throw new Unavailable(
          `node ${opened.replica.node.id} sent nothing for ${stallMs} ms and answers no probe`,
        );
      if (next.done) {
        ended = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // Stalled, failed, or its reader stopped early: the file or connection is closed here.
    if (!ended) opened.stream.destroy();
  }
}

/** Opens a piece on the first replica that answers; throws Unavailable when none does. */
async function open(
  piece: Piece,
  replicas: Replica[],
  cluster: ClusterView,
  opts: ReadOptions,
): Promise<Opened> {
  const whole = piece.from === 0 && piece.to === piece.chunk.size - 1;
  const range = whole ? undefined : { start: piece.from, end: piece.to };
  for (let i = 0; i < replicas.length; i++) {
    const replica = replicas[i];
    if (replica.local) {
      const local = await openLocal(piece, replica, range, cluster, opts);
      if (local === 'corrupt') continue;
      if (local) return { stream: local, replica, rest: replicas.slice(i + 1), local: true };
    }
    try {
      const res = await withinStall(
        replica.client.get(piece.chunk.id, range),
        opts.stallMs,
        replica,
        cluster,
      );
      if (res.sha256 && res.sha256 !== piece.chunk.sha256) {
        res.stream.destroy();
        opts.onCorrupt?.(piece.chunk.id, replica.node.id);
        continue;
      }
      return { stream: res.stream, replica, rest: replicas.slice(i + 1) };
    } catch (err) {
      opts.log?.warn(
        { chunk: piece.chunk.id, node: replica.node.id, err: String(err) },
        'replica unavailable',
      );
      if (err instanceof Corrupt) opts.onCorrupt?.(piece.chunk.id, replica.node.id);
    }
  }
  throw new Unavailable(`no replica of chunk ${piece.chunk.id} could be read`);
}

/**
 * Reads a piece from the replica's chunk file on this host (see local-volumes.ts), verified as the
 * node itself would. 'corrupt' when the file fails its check (reported; the next replica is read);
 * undefined when the file can't be read here for any other reason, so the node is asked over HTTP.
 */
async function openLocal(
  piece: Piece,
  replica: Replica,
  range: ByteRange | undefined,
  cluster: ClusterView,
  opts: ReadOptions,
): Promise<Readable | 'corrupt' | undefined> {
  const { chunk } = piece;
  try {
    const read = await replica.local!.read(chunk.id, chunk.sha256, range);
    if (read.size === chunk.size) return read.stream;
    read.stream.destroy();
    throw new Corrupt(`chunk ${chunk.id}: file holds ${read.size} bytes, expected ${chunk.size}`);
  } catch (err) {
    if (err instanceof Corrupt) {
      opts.log?.warn({ chunk: chunk.id, node: replica.node.id, err: String(err) }, 'local replica corrupt');
      opts.onCorrupt?.(chunk.id, replica.node.id);
      return 'corrupt';
    }
    // Moved, deleted or unreadable here: the node's own answer decides. A failure that is not
    // about this chunk (permissions, descriptors) sends the node's reads back to HTTP for a while.
    if (!(err instanceof NotFound)) {
      opts.log?.warn({ node: replica.node.id, err: String(err) }, 'local read failed; reading over HTTP');
      cluster.localVolumes.forget(replica.node.id);
    }
    return undefined;
  }
}
