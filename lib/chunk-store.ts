// The chunk store contract: what a storage node promises, whether reached on disk (FsChunkStore),
// over HTTP (NodeClient) or through its volume on the gateway's host (LocalVolumeStore). All three
// are held to one test suite (test/helpers/chunk-store-contract.ts).
import type { Readable } from 'node:stream';
import { BadRequest, DomainError } from './errors.js';
import { isChunkId } from './ids.js';

export interface ChunkInfo {
  id: string;
  /** Bytes in the whole chunk. */
  size: number;
  /** Lowercase hex sha256 of the whole chunk. */
  sha256: string;
  mtimeMs: number;
}

export interface PutResult {
  id: string;
  size: number;
  sha256: string;
  /** False when the same content was already stored (an idempotent retry). */
  created: boolean;
}

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface GetResult {
  /**
   * The bytes. Every read, whole or ranged, yields only bytes whose blocks passed their checks; at
   * a bad block (Corrupt) or a lost connection the stream errors instead of ending, so a short or
   * wrong body never looks complete.
   */
  stream: Readable;
  /** Bytes in the whole chunk. */
  size: number;
  /** Bytes this stream yields: `size`, or the length of the requested range. */
  length: number;
  sha256: string;
  /** The range served, clamped to the chunk; absent for a whole-chunk read. */
  range?: ByteRange;
}

export interface ChunkPage {
  chunks: ChunkInfo[];
  /** Pass as `after` to get the next page; null when this page is the last. */
  next: string | null;
}

export interface ChunkStore {
  /**
   * Stores `size` bytes under `id` durably. Same id and same content again → created: false;
   * different content → Conflict; body length or `sha256` mismatch → BadRequest and nothing kept;
   * disk or capacity full → InsufficientStorage. A Readable body is consumed (and destroyed on
   * failure).
   */
  put(id: string, body: Readable | Buffer, size: number, sha256?: string): Promise<PutResult>;
  /** NotFound when absent; RangeNotSatisfiable when `range.start` is past the end. */
  get(id: string, range?: ByteRange): Promise<GetResult>;
  head(id: string): Promise<ChunkInfo | undefined>;
  /** Succeeds whether or not the chunk existed. */
  delete(id: string): Promise<void>;
  /** Chunks in id order, strictly after `after`. */
  list(after?: string, limit?: number): Promise<ChunkPage>;
}

// Inventory pages are bounded so one request never walks or serialises a whole disk: 1000 keeps a
// page ~150 KB of JSON; 10000 is the most a caller may ask for (~1.5 MB, a few hundred ms of stats).
export const listLimitDefault = 1000;
export const listLimitMax = 10_000;

export const sha256Pattern = /^[0-9a-f]{64}$/;

/** The requested range starts past the end of the chunk (HTTP 416). */
export class RangeNotSatisfiable extends BadRequest {}
/** The body is larger than the node accepts (HTTP 413). */
export class PayloadTooLarge extends BadRequest {}
/** The cluster secret was missing or wrong (HTTP 401): a configuration error, not a node fault. */
export class Unauthorized extends DomainError {}

export function checkChunkId(id: string): void {
  if (!isChunkId(id)) throw new BadRequest('chunk id must be 32 lowercase hex characters');
}
