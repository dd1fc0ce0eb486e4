import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { NoSuchUpload, PreconditionFailed, UploadRejected } from '../../lib/errors.js';
import { abortUploadIn } from '../../lib/uploads.js';
import {
  type ChunkRecord,
  commonPrefixOf,
  contentMetaColumns,
  contentMetaOfRow,
  enqueueChunks,
  insertChunks,
  isUniqueViolation,
  type MetaStore,
  maxTail,
  type ObjectMeta,
  type ObjectRow,
  utf8Before,
  type WriteConditions,
} from './meta.js';

// Multipart uploads in the metadata database. A part is visible once its chunks and its row are
// committed together; Complete turns the listed parts' chunks into the object's chunks in one
// transaction, without copying bytes. Every state change locks the upload row first, so part
// commits, Complete, Abort and expiry from any number of gateways serialize per upload.

export type UploadState = 'active' | 'completed' | 'aborted';
export type ChecksumKind = 'COMPOSITE' | 'FULL_OBJECT';

export interface UploadRow {
  id: string;
  bucket: string;
  key: string;
  state: UploadState;
  meta: Omit<ObjectMeta, 'size' | 'etag'>;
  checksumAlgorithm: string | null;
  checksumType: ChecksumKind | null;
  objectId: number | null;
  finalEtag: string | null;
  finalChecksumValue: string | null;
  initiatedAt: Date;
}

export interface PartRow {
  id: number;
  partNumber: number;
  size: number;
  etag: string;
  checksumAlgorithm: string | null;
  checksumValue: string | null;
  lastModified: Date;
}

export interface NewPart {
  partNumber: number;
  size: number;
  /** Hex MD5 of the part, unquoted. */
  etag: string;
  checksumAlgorithm?: string | null;
  checksumValue?: string | null;
}

/** A part as CompleteMultipartUpload lists it. */
export interface ListedPart {
  partNumber: number;
  etag: string;
  checksums: Partial<Record<string, string>>;
}

/** The object's final checksum from its upload and listed parts; computed by the S3 layer. */
export type FinalChecksum = (upload: UploadRow, parts: PartRow[]) => Promise<string | null>;

export interface CompleteRequest {
  uploadId: string;
  bucket: string;
  key: string;
  parts: ListedPart[];
  minPartBytes: number;
  cond: WriteConditions;
  finalChecksum: FinalChecksum;
  /** Checks the final values against what the request asserts (full-object checksum, size). */
  verify?: (upload: UploadRow, size: number, checksum: string | null) => void;
}

export interface CompleteResult {
  etag: string;
  checksumAlgorithm: string | null;
  checksumType: ChecksumKind | null;
  checksumValue: string | null;
  object?: ObjectRow;
}

export interface UploadListQuery {
  prefix: string;
  delimiter?: string;
  keyMarker: string;
  uploadIdMarker: string;
  maxUploads: number;
}

export interface UploadListPage {
  uploads: UploadRow[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
}

/** Rows fetched per ListMultipartUploads query; the loop re-seeks past each common prefix. */
const listBatchRows = 1000;
/** Rows per statement when moving chunks: 3 bind parameters each, under Postgres' 65535. */
const moveBatchParts = 5000;

const uploadColumns = [
  'id',
  'bucket',
  'key',
  'state',
  ...contentMetaColumns,
  'checksum_algorithm',
  'checksum_type',
  'object_id',
  'final_etag',
  'final_checksum_value',
  'initiated_at',
];

function toUploadRow(r: Record<string, unknown>): UploadRow {
  return {
    id: r.id as string,
    bucket: r.bucket as string,
    key: r.key as string,
    state: r.state as UploadState,
    meta: contentMetaOfRow(r),
    checksumAlgorithm: r.checksum_algorithm as string | null,
    checksumType: r.checksum_type as ChecksumKind | null,
    objectId: r.object_id === null || r.object_id === undefined ? null : Number(r.object_id),
    finalEtag: r.final_etag as string | null,
    finalChecksumValue: r.final_checksum_value as string | null,
    initiatedAt: new Date(r.initiated_at as string),
  };
}

function toPartRow(r: Record<string, unknown>): PartRow {
  return {
    id: Number(r.id),
    partNumber: Number(r.part_number),
    size: Number(r.size),
    etag: r.etag as string,
    checksumAlgorithm: r.checksum_algorithm as string | null,
    checksumValue: r.checksum_value as string | null,
    lastModified: new Date(r.last_modified as string),
  };
}

/**
 * Upload ids sort by creation time (48-bit milliseconds, then 80 random bits), so ListMultipartUploads'
 * (key, upload id) order is S3's (key, initiation time) order and its markers are one comparison.
 */
export function newUploadId(now = Date.now()): string {
  return now.toString(16).padStart(12, '0') + randomBytes(10).toString('hex');
}

/** S3's multipart ETag: md5 of the concatenated binary part MD5s, then `-N`. */
export function multipartEtag(partEtags: string[]): string {
  const h = createHash('md5');
  for (const e of partEtags) h.update(Buffer.from(e, 'hex'));
  return `${h.digest('hex')}-${partEtags.length}`;
}

export class UploadStore {
  constructor(
    readonly db: Knex,
    private readonly meta: MetaStore,
  ) {}

  async create(u: {
    bucket: string;
    key: string;
    meta: Omit<ObjectMeta, 'size' | 'etag'>;
    checksumAlgorithm: string | null;
    checksumType: ChecksumKind | null;
  }): Promise<string> {
    const id = newUploadId();
    const m = u.meta;
    await this.db('multipart_uploads').insert({
      id,
      bucket: u.bucket,
      key: u.key,
      state: 'active',
      content_type: m.contentType ?? null,
      content_encoding: m.contentEncoding ?? null,
      content_disposition: m.contentDisposition ?? null,
      content_language: m.contentLanguage ?? null,
      cache_control: m.cacheControl ?? null,
      expires: m.expires ?? null,
      user_meta: JSON.stringify(m.userMeta ?? {}),
      tags: m.tags ? JSON.stringify(m.tags) : null,
      checksum_algorithm: u.checksumAlgorithm,
      checksum_type: u.checksumType,
    });
    return id;
  }

  async get(uploadId: string): Promise<UploadRow | undefined> {
    const row = await this.db('multipart_uploads').where({ id: uploadId }).first(uploadColumns);
    return row ? toUploadRow(row) : undefined;
  }

  /** The upload if it is active and belongs to bucket/key; NoSuchUpload otherwise. */
  async active(uploadId: string, bucket: string, key: string): Promise<UploadRow> {
    const u = await this.get(uploadId);
    if (u?.state !== 'active' || u.bucket !== bucket || u.key !== key) throw new NoSuchUpload(uploadId);
    return u;
  }

  /**
   * Records a written part: its row and chunks in one transaction. A part already stored under
   * the same number is replaced and its chunks are queued for deletion. Throws NoSuchUpload when
   * the upload ended (completed, aborted, expired) while the part was being written.
   */
  async commitPart(
    uploadId: string,
    bucket: string,
    key: string,
    part: NewPart,
    chunks: ChunkRecord[],
  ): Promise<PartRow> {
    return this.db.transaction(async (trx) => {
      // Locks the upload row: part commits of one upload serialize with each other (so two
      // writers of one part number cannot both win) and with Complete, Abort and expiry.
      const touched = await trx('multipart_uploads')
        .where({ id: uploadId, bucket, key, state: 'active' })
        .update({ updated_at: trx.fn.now() })
        .returning('id');
      if (touched.length === 0) throw new NoSuchUpload(uploadId);
      const old = trx('upload_parts').where({ upload_id: uploadId, part_number: part.partNumber });
      const oldIds: number[] = (await old.clone().pluck('id')).map(Number);
      if (oldIds.length > 0) {
        await enqueueChunks(trx, trx('chunks').whereIn('part_id', oldIds), 'part replaced');
        await trx('upload_parts').whereIn('id', oldIds).delete();
      }
      const [row] = await trx('upload_parts')
        .insert({
          upload_id: uploadId,
          part_number: part.partNumber,
          size: part.size,
          etag: part.etag,
          checksum_algorithm: part.checksumAlgorithm ?? null,
          checksum_value: part.checksumValue ?? null,
          last_modified: trx.fn.now(),
        })
        .returning([
          'id',
          'part_number',
          'size',
          'etag',
          'checksum_algorithm',
          'checksum_value',
          'last_modified',
        ]);
      const stored = toPartRow(row);
      await insertChunks(trx, chunks, { part_id: stored.id });
      return stored;
    });
  }

  /** Parts after `marker`, ascending, one more than `max` to tell truncation. */
  async listParts(uploadId: string, marker: number, max: number): Promise<PartRow[]> {
    const rows = await this.db('upload_parts')
      .where({ upload_id: uploadId })
      .andWhere('part_number', '>', marker)
      .orderBy('part_number')
      .limit(max + 1)
      .select('id', 'part_number', 'size', 'etag', 'checksum_algorithm', 'checksum_value', 'last_modified');
    return rows.map(toPartRow);
  }

  /** Aborts an active upload of bucket/key; NoSuchUpload when there is none. */
  async abort(uploadId: string, bucket: string, key: string): Promise<void> {
    const done = await this.db.transaction(async (trx) => {
      const row = await trx('multipart_uploads').where({ id: uploadId, bucket, key }).forUpdate().first('id');
      return row ? abortUploadIn(trx, uploadId, 'upload aborted') : false;
    });
    if (!done) throw new NoSuchUpload(uploadId);
  }

  /**
   * CompleteMultipartUpload: one transaction that validates the part list, replaces the current
   * object version, and moves the listed parts' chunks to the new object (offsets shifted to the
   * part's start, sequence numbers made global). Unlisted parts are queued for deletion.
   */
  async complete(req: CompleteRequest): Promise<CompleteResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction((trx) => this.completeIn(trx, req));
      } catch (err) {
        // Two creators of a missing key: the unique index lets one insert; the other retries.
        if (!isUniqueViolation(err) || attempt >= 3) throw err;
        if (req.cond.ifNoneMatch) throw new PreconditionFailed('If-None-Match', 'object exists');
      }
    }
  }

  private async completeIn(trx: Knex.Transaction, req: CompleteRequest): Promise<CompleteResult> {
    const raw = await trx('multipart_uploads').where({ id: req.uploadId }).forUpdate().first(uploadColumns);
    const upload = raw ? toUploadRow(raw) : undefined;
    if (!upload || upload.bucket !== req.bucket || upload.key !== req.key)
      throw new NoSuchUpload(req.uploadId);
    const etag = multipartEtag(req.parts.map((p) => p.etag));
    if (upload.state === 'completed' && upload.finalEtag === etag) {
      // A retry of a Complete that succeeded (its response may have been lost): same answer.
      return {
        etag,
        checksumAlgorithm: upload.checksumAlgorithm,
        checksumType: upload.checksumType,
        checksumValue: upload.finalChecksumValue,
      };
    }
    if (upload.state !== 'active') throw new NoSuchUpload(req.uploadId);

    const all = (
      await trx('upload_parts')
        .where({ upload_id: req.uploadId })
        .select('id', 'part_number', 'size', 'etag', 'checksum_algorithm', 'checksum_value', 'last_modified')
    ).map(toPartRow);
    const byNumber = new Map(all.map((p) => [p.partNumber, p]));
    const listed = req.parts.map((lp, i) => checkListedPart(lp, byNumber.get(lp.partNumber), i, req));
    const size = listed.reduce((n, p) => n + p.size, 0);
    const checksumValue = await req.finalChecksum(upload, listed);
    req.verify?.(upload, size, checksumValue);

    const objectMeta: ObjectMeta = {
      ...upload.meta,
      size,
      etag,
      checksumAlgorithm: checksumValue === null ? null : upload.checksumAlgorithm,
      checksumValue,
      checksumType: checksumValue === null ? null : upload.checksumType,
      partsCount: listed.length,
      uploadId: upload.id,
    };
    const object = await this.meta.commitIn(trx, req.bucket, req.key, objectMeta, [], req.cond);
    await moveChunks(trx, object.id, listed);
    const listedIds = new Set(listed.map((p) => p.id));
    const unlisted = all.filter((p) => !listedIds.has(p.id)).map((p) => p.id);
    if (unlisted.length > 0)
      await enqueueChunks(trx, trx('chunks').whereIn('part_id', unlisted), 'part not in completed upload');
    await trx('upload_parts').where({ upload_id: req.uploadId }).delete();
    await trx('multipart_uploads').where({ id: req.uploadId }).update({
      state: 'completed',
      object_id: object.id,
      final_etag: etag,
      final_checksum_value: checksumValue,
      updated_at: trx.fn.now(),
    });
    return {
      etag,
      checksumAlgorithm: objectMeta.checksumAlgorithm ?? null,
      checksumType: (objectMeta.checksumType as ChecksumKind | null) ?? null,
      checksumValue,
      object,
    };
  }

  /** Active uploads in key, then upload-id (= initiation) order, with common prefixes rolled up. */
  async list(bucket: string, q: UploadListQuery): Promise<UploadListPage> {
    const page: UploadListPage = { uploads: [], commonPrefixes: [], isTruncated: false };
    if (q.maxUploads <= 0) return page;
    const upper = q.prefix + maxTail;
    let cursor = startCursor(q);
    for (;;) {
      const want = q.maxUploads - page.uploads.length - page.commonPrefixes.length;
      const limit = Math.min(want + 1, listBatchRows);
      const query = this.db('multipart_uploads')
        .where({ bucket, state: 'active' })
        .andWhere('key', '<=', upper)
        .orderBy([{ column: 'key' }, { column: 'id' }])
        .limit(limit)
        .select(uploadColumns);
      const c = cursor;
      if (c.inclusive) query.andWhere('key', '>=', c.key);
      else if (c.id === undefined) query.andWhere('key', '>', c.key);
      else
        query.andWhere((w) => {
          w.where('key', '>', c.key).orWhere((x) => x.where('key', c.key).andWhere('id', '>', c.id!));
        });
      const rows = await query;
      if (rows.length === 0) return page;
      let reseek: string | undefined;
      for (const raw of rows) {
        const key = raw.key as string;
        if (page.uploads.length + page.commonPrefixes.length >= q.maxUploads) {
          page.isTruncated = true;
          return page;
        }
        const cp = commonPrefixOf(key, q.prefix, q.delimiter);
        if (cp !== undefined) {
          page.commonPrefixes.push(cp);
          page.nextKeyMarker = cp;
          page.nextUploadIdMarker = undefined;
          reseek = cp + maxTail;
          break;
        }
        page.uploads.push(toUploadRow(raw));
        page.nextKeyMarker = key;
        page.nextUploadIdMarker = raw.id as string;
        cursor = { key, id: raw.id as string, inclusive: false };
      }
      if (reseek !== undefined) {
        cursor = { key: reseek, inclusive: false };
        continue;
      }
      if (rows.length < limit) return page;
    }
  }
}

interface Cursor {
  key: string;
  id?: string;
  inclusive: boolean;
}

/** Where a listing starts: after (key-marker, upload-id-marker), or past a common-prefix marker. */
function startCursor(q: UploadListQuery): Cursor {
  if (q.keyMarker === '' || utf8Before(q.keyMarker, q.prefix)) return { key: q.prefix, inclusive: true };
  const cp = commonPrefixOf(q.keyMarker, q.prefix, q.delimiter);
  if (cp !== undefined) return { key: cp + maxTail, inclusive: false };
  // upload-id-marker only counts together with key-marker; without it, the whole key is done.
  if (q.uploadIdMarker !== '') return { key: q.keyMarker, id: q.uploadIdMarker, inclusive: false };
  return { key: q.keyMarker, inclusive: false };
}

/** A listed part must exist with the same ETag (and checksum, when listed); all but the last ≥ min. */
function checkListedPart(lp: ListedPart, p: PartRow | undefined, i: number, req: CompleteRequest): PartRow {
  if (!p || p.etag !== lp.etag) {
    throw new UploadRejected(
      'InvalidPart',
      "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
      { PartNumber: String(lp.partNumber), ETag: lp.etag, UploadId: req.uploadId },
    );
  }
  for (const [algorithm, value] of Object.entries(lp.checksums)) {
    if (value !== undefined && (p.checksumAlgorithm !== algorithm || p.checksumValue !== value)) {
      throw new UploadRejected(
        'InvalidPart',
        `The ${algorithm} checksum of part ${lp.partNumber} does not match the uploaded part.`,
        {
          PartNumber: String(lp.partNumber),
          ETag: lp.etag,
          UploadId: req.uploadId,
        },
      );
    }
  }
  if (i < req.parts.length - 1 && p.size < req.minPartBytes) {
    throw new UploadRejected(
      'EntityTooSmall',
      'Your proposed upload is smaller than the minimum allowed size.',
      {
        ProposedSize: String(p.size),
        MinSizeAllowed: String(req.minPartBytes),
        PartNumber: String(lp.partNumber),
        ETag: p.etag,
      },
    );
  }
  return p;
}

/** Re-homes the listed parts' chunks on the object: offset += part start, seq made global. */
async function moveChunks(trx: Knex.Transaction, objectId: number, parts: PartRow[]): Promise<void> {
  const counts = new Map<number, number>();
  for (let i = 0; i < parts.length; i += moveBatchParts) {
    const ids = parts.slice(i, i + moveBatchParts).map((p) => p.id);
    const rows = await trx('chunks')
      .whereIn('part_id', ids)
      .groupBy('part_id')
      .select('part_id', trx.raw('count(*) as n'));
    for (const r of rows) counts.set(Number(r.part_id), Number(r.n));
  }
  const values: [number, number, number][] = [];
  let start = 0;
  let seq = 0;
  for (const p of parts) {
    values.push([p.id, start, seq]);
    start += p.size;
    seq += counts.get(p.id) ?? 0;
  }
  for (let i = 0; i < values.length; i += moveBatchParts) {
    const batch = values.slice(i, i + moveBatchParts);
    await trx.raw(
      `update chunks as c
          set object_id = ?, part_id = null, "offset" = c."offset" + v.start, seq = c.seq + v.seq0
         from (values ${batch.map(() => '(?::bigint, ?::bigint, ?::integer)').join(', ')}) as v(part_id, start, seq0)
        where c.part_id = v.part_id`,
      [objectId, ...batch.flat()],
    );
  }
}
