import type { Knex } from 'knex';
import { NoSuchBucket, NoSuchKey, PreconditionFailed, Unavailable } from '../../lib/errors.js';
import { enqueueRepair } from '../../lib/repair-queue.js';

// The gateway's view of the metadata database: buckets, current object versions, their chunks
// and replicas. Every visibility change (PUT, overwrite, DELETE, Complete) is one transaction.

export interface BucketRow {
  name: string;
  owner: string;
  region: string;
  created_at: Date;
  /** The bucket's CORS rules (PutBucketCors) as the S3 layer gave them; null when none are set. */
  cors_rules: unknown[] | null;
  /** PutBucketTagging's tags; null when none are set. */
  tags: Record<string, string> | null;
}

export interface ObjectMeta {
  size: number;
  etag: string;
  contentType?: string | null;
  contentEncoding?: string | null;
  contentDisposition?: string | null;
  contentLanguage?: string | null;
  cacheControl?: string | null;
  expires?: string | null;
  userMeta: Record<string, string>;
  /** Object tags (x-amz-tagging, PutObjectTagging); null or absent for none. */
  tags?: Record<string, string> | null;
  checksumAlgorithm?: string | null;
  checksumValue?: string | null;
  checksumType?: string | null;
  partsCount?: number | null;
  uploadId?: string | null;
  /** The bytes of an object kept in its metadata row (see migration 004); chunked objects have none. */
  inlineData?: Buffer | null;
}

export interface ObjectRow extends ObjectMeta {
  id: number;
  bucket: string;
  key: string;
  lastModified: Date;
}

/** A chunk written to nodes and ready to be recorded. `offset` is within its object or part. */
export interface ChunkRecord {
  id: string;
  seq: number;
  offset: number;
  size: number;
  sha256: string;
  partNumber?: number | null;
  nodeIds: string[];
  /** Fewer than R replicas acknowledged: the commit queues the chunk for repair (lib/repair-queue.ts). */
  short?: boolean;
}

export interface StoredChunk extends ChunkRecord {}

export interface WriteConditions {
  /** `If-None-Match: *`: only create, never overwrite. */
  ifNoneMatch?: boolean;
  /** `If-Match: "etag"`: only overwrite this exact version. */
  ifMatch?: string;
}

/** Every key of a bucket sorts before this suffix appended to its prefix (keys ≤ 1024 bytes). */
export const maxTail = '\u{10FFFF}'.repeat(257);

/**
 * Whether `a` sorts before `b` in the byte order of their UTF-8, the order keys are listed in.
 * JavaScript's `<` compares UTF-16 units, which puts U+10000 and above before U+E000–U+FFFF.
 */
export function utf8Before(a: string, b: string): boolean {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) < 0;
}

/** Rows fetched per listing query; the loop re-seeks past each common prefix. */
const listBatchRows = 1000;

/** The stored headers that describe an object, on `objects` and `multipart_uploads` alike. */
export const contentMetaColumns = [
  'content_type',
  'content_encoding',
  'content_disposition',
  'content_language',
  'cache_control',
  'expires',
  'user_meta',
  'tags',
];

const objectColumns = [
  'id',
  'bucket',
  'key',
  'size',
  'etag',
  ...contentMetaColumns,
  'checksum_algorithm',
  'checksum_value',
  'checksum_type',
  'parts_count',
  'upload_id',
  'last_modified',
];

/** The headers that describe an object, as stored on `objects` and `multipart_uploads` rows. */
export function contentMetaOfRow(r: Record<string, unknown>): Omit<ObjectMeta, 'size' | 'etag'> {
  return {
    contentType: r.content_type as string | null,
    contentEncoding: r.content_encoding as string | null,
    contentDisposition: r.content_disposition as string | null,
    contentLanguage: r.content_language as string | null,
    cacheControl: r.cache_control as string | null,
    expires: r.expires as string | null,
    userMeta: (r.user_meta ?? {}) as Record<string, string>,
    tags: (r.tags ?? null) as Record<string, string> | null,
  };
}

export function toObjectRow(r: Record<string, unknown>): ObjectRow {
  return {
    id: Number(r.id),
    bucket: r.bucket as string,
    key: r.key as string,
    size: Number(r.size),
    etag: r.etag as string,
    ...contentMetaOfRow(r),
    checksumAlgorithm: r.checksum_algorithm as string | null,
    checksumValue: r.checksum_value as string | null,
    checksumType: r.checksum_type as string | null,
    partsCount: r.parts_count === null || r.parts_count === undefined ? null : Number(r.parts_count),
    uploadId: r.upload_id as string | null,
    inlineData: typeof r.inline_b64 === 'string' ? Buffer.from(r.inline_b64, 'base64') : null,
    lastModified: new Date(r.last_modified as string),
  };
}

/**
 * Options naming a hot statement so node-postgres prepares it once per connection (Postgres then
 * skips parsing and planning it on every request). Names must stay few: each is kept per connection.
 */
export function prepared(name: string): { name: string } {
  return { name: `s3dfs-${name}` };
}

/** Typed placeholders for the columns objectColumnsOf fills, for statements that cannot infer types. */
const objectColumnValues: Record<string, string> = {
  bucket: '?::text',
  key: '?::text',
  size: '?::bigint',
  etag: '?::text',
  content_type: '?::text',
  content_encoding: '?::text',
  content_disposition: '?::text',
  content_language: '?::text',
  cache_control: '?::text',
  expires: '?::text',
  user_meta: '?::jsonb',
  tags: '?::jsonb',
  checksum_algorithm: '?::text',
  checksum_value: '?::text',
  checksum_type: '?::text',
  parts_count: '?::int',
  upload_id: '?::text',
  // Base64 text (see getObject): PGlite encodes a bytea parameter byte by byte.
  inline_data: "decode(?, 'base64')",
};

export function objectColumnsOf(m: ObjectMeta) {
  return {
    size: m.size,
    etag: m.etag,
    content_type: m.contentType ?? null,
    content_encoding: m.contentEncoding ?? null,
    content_disposition: m.contentDisposition ?? null,
    content_language: m.contentLanguage ?? null,
    cache_control: m.cacheControl ?? null,
    expires: m.expires ?? null,
    user_meta: JSON.stringify(m.userMeta ?? {}),
    tags: m.tags ? JSON.stringify(m.tags) : null,
    checksum_algorithm: m.checksumAlgorithm ?? null,
    checksum_value: m.checksumValue ?? null,
    checksum_type: m.checksumType ?? null,
    parts_count: m.partsCount ?? null,
    upload_id: m.uploadId ?? null,
    inline_data: m.inlineData ?? null,
  };
}

export interface ListQuery {
  prefix: string;
  delimiter?: string;
  /** Exclusive lower bound: a marker, start-after or decoded continuation token. */
  after?: string;
  maxKeys: number;
}

/** What a listing shows of an object. */
export interface ListedObject {
  key: string;
  size: number;
  etag: string;
  checksumAlgorithm: string | null;
  checksumType: string | null;
  lastModified: Date;
}

export interface ListPage {
  contents: ListedObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last key or common prefix returned: the next page starts after it. */
  lastReturned?: string;
}

/**
 * How long a bucket seen to exist is trusted by this gateway's pre-checks (`bucketCached`). It
 * saves a round trip on every small PUT/GET; correctness never rests on it: a commit locks the
 * bucket row itself (FOR SHARE) and fails if it is gone. Another gateway's DeleteBucket can go
 * unseen here for at most this long (S3 itself documents bucket deletion as eventually visible).
 */
const bucketCacheMs = 1000;
/** Bucket names remembered at most; a gateway serving more simply queries for the rest. */
const bucketCacheMax = 10_000;

/** Chunks per object written by the one-statement commit; larger objects take the batched path. */
const commitStatementChunksMax = 200;

export class MetaStore {
  private readonly bucketCache = new Map<string, { row: BucketRow; at: number }>();

  constructor(readonly db: Knex) {}

  // ---- buckets ----

  /** Buckets in name order: those starting with `prefix`, after `after`, at most `limit`. */
  async listBuckets(q: { prefix?: string; after?: string; limit?: number } = {}): Promise<BucketRow[]> {
    const query = this.db('buckets').orderBy('name');
    if (q.prefix) query.whereRaw('left(name, ?) = ?', [q.prefix.length, q.prefix]);
    if (q.after !== undefined) query.where('name', '>', q.after);
    if (q.limit !== undefined) query.limit(q.limit);
    return query;
  }

  async getBucket(name: string): Promise<BucketRow | undefined> {
    return this.db('buckets').where({ name }).first();
  }

  /** `getBucket`, answered from a short-lived cache of buckets seen to exist (see bucketCacheMs). */
  async bucketCached(name: string): Promise<BucketRow | undefined> {
    const hit = this.bucketCache.get(name);
    const now = Date.now();
    if (hit && now - hit.at < bucketCacheMs) return hit.row;
    const row = await this.getBucket(name);
    if (!row) {
      this.bucketCache.delete(name);
      return undefined;
    }
    if (this.bucketCache.size >= bucketCacheMax) this.bucketCache.clear();
    this.bucketCache.set(name, { row, at: now });
    return row;
  }

  /** Returns false when the bucket already exists (the caller decides owned-by-you or not). */
  async createBucket(name: string, owner: string, region: string): Promise<boolean> {
    const inserted = await this.db('buckets')
      .insert({ name, owner, region })
      .onConflict('name')
      .ignore()
      .returning('name');
    return inserted.length > 0;
  }

  /** Sets (or with null, removes) a bucket's CORS rules; false when the bucket does not exist. */
  async setBucketCors(name: string, rules: unknown[] | null): Promise<boolean> {
    const n = await this.db('buckets')
      .where({ name })
      .update({ cors_rules: rules === null ? null : JSON.stringify(rules) });
    this.bucketCache.delete(name);
    return n > 0;
  }

  /** Deletes an empty bucket; its abandoned multipart uploads go with it. */
  async deleteBucket(name: string): Promise<'deleted' | 'missing' | 'not-empty'> {
    this.bucketCache.delete(name);
    // Forgotten again once committed: a request racing this one may have cached it meanwhile.
    return this.deleteBucketIn(name).finally(() => this.bucketCache.delete(name));
  }

  private async deleteBucketIn(name: string): Promise<'deleted' | 'missing' | 'not-empty'> {
    return this.db.transaction(async (trx) => {
      const bucket = await trx('buckets').where({ name }).forUpdate().first();
      if (!bucket) return 'missing';
      const anyObject = await trx('objects').where({ bucket: name }).first('id');
      if (anyObject) return 'not-empty';
      const uploads = trx('multipart_uploads').where({ bucket: name }).select('id');
      await enqueueChunks(
        trx,
        trx('chunks').whereIn('part_id', trx('upload_parts').whereIn('upload_id', uploads).select('id')),
        'bucket deleted',
      );
      await trx('multipart_uploads').where({ bucket: name }).delete();
      await trx('buckets').where({ name }).delete();
      return 'deleted';
    });
  }

  // ---- objects ----

  /** The current version; `withData` also fetches an inline object's bytes (for GET and copies). */
  async getObject(bucket: string, key: string, withData = false): Promise<ObjectRow | undefined> {
    const row = await this.db('objects')
      .where({ bucket, key })
      // base64 text, not bytea: PGlite decodes bytea byte by byte in JavaScript, at twice the cost.
      .first(
        withData
          ? [...objectColumns, this.db.raw("encode(inline_data, 'base64') as inline_b64")]
          : objectColumns,
      )
      .options(prepared(withData ? 'get-object-data' : 'get-object'));
    return row ? toObjectRow(row) : undefined;
  }

  /**
   * Makes a fully replicated object visible, replacing the current version atomically.
   * The replaced version's chunks go to the delete queue in the same transaction.
   */
  async commitObject(
    bucket: string,
    key: string,
    meta: ObjectMeta,
    chunks: ChunkRecord[],
    cond: WriteConditions = {},
  ): Promise<ObjectRow> {
    // Two creators racing on a missing key both see no row; the unique index lets exactly one
    // insert, and the loser retries (plain PUT: it now overwrites) or fails (If-None-Match).
    const oneStatement = cond.ifMatch === undefined && chunks.length <= commitStatementChunksMax;
    for (let attempt = 0; ; attempt++) {
      try {
        if (oneStatement) return await this.commitStatement(bucket, key, meta, chunks, !cond.ifNoneMatch);
        return await this.db.transaction((trx) => this.commitIn(trx, bucket, key, meta, chunks, cond));
      } catch (err) {
        if (!isUniqueViolation(err) || attempt >= 3) throw err;
        if (cond.ifNoneMatch) throw new PreconditionFailed('If-None-Match', 'object exists');
      }
    }
  }

  /**
   * The whole commit of a PUT without If-Match as one statement (one round trip, atomic on its own;
   * a transaction costs four): lock the bucket, delete the current version and queue its chunks
   * (unless `replace` is false: If-None-Match lets the unique index refuse an existing key),
   * insert the new row with its chunks and replicas. The insert reads `old` so that the delete is
   * done before it, else the unique (bucket, key) index would see the old row. A racing creator
   * surfaces as a unique violation, as in the transactional path.
   */
  private async commitStatement(
    bucket: string,
    key: string,
    meta: ObjectMeta,
    chunks: ChunkRecord[],
    replace: boolean,
  ): Promise<ObjectRow> {
    const row: Record<string, Knex.Value> = {
      bucket,
      key,
      ...objectColumnsOf(meta),
      inline_data: meta.inlineData?.toString('base64') ?? null,
    };
    const columns = Object.keys(row);
    const values = columns.map((c) => objectColumnValues[c]).join(', ');
    const bindings: Knex.Value[] = [bucket];
    let sql = 'with b as (select name from buckets where name = ? for share)';
    if (replace) {
      sql +=
        ', old as (delete from objects where bucket = ? and key = ? and exists (select 1 from b) returning id)' +
        queueChunksOf('old');
      bindings.push(bucket, key, 'overwritten');
    }
    sql +=
      `, o as (insert into objects (${columns.map((c) => `"${c}"`).join(', ')}, last_modified)` +
      ` select ${values}, now() from b${replace ? ' where (select count(*) from old) >= 0' : ''}` +
      ` returning ${objectColumns.map((c) => `"${c}"`).join(', ')})`;
    bindings.push(...columns.map((c) => row[c]));
    const chunkSql = chunkInsertsFor(chunks);
    sql += `${chunkSql.sql} select * from o${chunkSql.fence}`;
    // Small objects (inline or one chunk) always make the same statement: worth preparing once.
    const shape =
      chunks.length === 0
        ? 'inline'
        : chunks.length === 1
          ? `1x${chunks[0].nodeIds.length}${chunks[0].short ? 's' : ''}`
          : undefined;
    const res = await this.db
      .raw(sql, [...bindings, ...chunkSql.bindings])
      .options(shape ? prepared(`commit-${shape}-${replace}`) : {})
      .catch(intentsLost);
    if (res.rows.length === 0) throw new NoSuchBucket(bucket);
    return toObjectRow(res.rows[0]);
  }

  async commitIn(
    trx: Knex.Transaction,
    bucket: string,
    key: string,
    meta: ObjectMeta,
    chunks: ChunkRecord[],
    cond: WriteConditions,
  ): Promise<ObjectRow> {
    // One round trip locks both the bucket (it must not be deleted under us) and the current
    // version (a concurrent overwrite waits for this commit).
    const locked = await trx.raw(
      `select b.name, o.id, o.etag
         from (select name from buckets where name = ? for share) b
         left join lateral (select id, etag from objects where bucket = ? and key = ? for update) o on true`,
      [bucket, bucket, key],
    );
    const lockedRow = locked.rows[0] as { name: string; id: unknown; etag: string | null } | undefined;
    if (!lockedRow) throw new NoSuchBucket(bucket);
    const old = lockedRow.id === null ? undefined : { id: Number(lockedRow.id), etag: lockedRow.etag ?? '' };
    if (cond.ifNoneMatch && old) throw new PreconditionFailed('If-None-Match', 'object exists');
    if (cond.ifMatch !== undefined) {
      if (!old) throw new NoSuchKey(key);
      if (!etagMatches(cond.ifMatch, old.etag)) throw new PreconditionFailed('If-Match', 'etag differs');
    }
    if (old) await this.removeObject(old.id, 'overwritten', trx);
    const [row] = await trx('objects')
      .insert({ bucket, key, ...objectColumnsOf(meta), last_modified: trx.fn.now() })
      .returning(objectColumns);
    const object = toObjectRow(row);
    await insertChunks(trx, chunks, { object_id: object.id });
    return object;
  }

  /** Replaces the current version's tags (null: none); false when there is no such object. */
  async setObjectTags(bucket: string, key: string, tags: Record<string, string> | null): Promise<boolean> {
    const rows = await this.db('objects')
      .where({ bucket, key })
      .update({ tags: tags ? JSON.stringify(tags) : null })
      .returning('id');
    return rows.length > 0;
  }

  /** Replaces a bucket's tags (null: none); false when there is no such bucket. */
  async setBucketTags(name: string, tags: Record<string, string> | null): Promise<boolean> {
    this.bucketCache.delete(name);
    const rows = await this.db('buckets')
      .where({ name })
      .update({ tags: tags ? JSON.stringify(tags) : null })
      .returning('name');
    return rows.length > 0;
  }

  /**
   * Deletes the current version; returns false when there was none. One statement (so one round
   * trip, atomic on its own): the row goes, its chunks go to the delete queue, and the foreign
   * key's ON DELETE SET NULL detaches them at the end of the statement.
   */
  async deleteObject(bucket: string, key: string): Promise<boolean> {
    const res = await this.db
      .raw(
        `with o as (delete from objects where bucket = ? and key = ? returning id)${queueChunksOf('o')}
       select count(*) as n from o`,
        [bucket, key, 'deleted'],
      )
      .options(prepared('delete-object'));
    return Number(res.rows[0].n) > 0;
  }

  /**
   * Deletes the version with this row id, in `db` (a commit's transaction) or on its own; false
   * when it is no longer the current one (overwritten or deleted since it was read). Its chunks
   * are queued for deletion (see deleteObject).
   */
  async removeObject(objectId: number, reason: string, db: Knex = this.db): Promise<boolean> {
    const res = await db.raw(
      `with o as (delete from objects where id = ? returning id)${queueChunksOf('o')}
       select count(*) as n from o`,
      [objectId, reason],
    );
    return Number(res.rows[0].n) > 0;
  }

  /** Chunks of an object overlapping [start, end] (inclusive), in order, with their replicas. */
  async chunksOf(objectId: number, start = 0, end = Number.MAX_SAFE_INTEGER): Promise<StoredChunk[]> {
    // Every GET of a chunked object runs this: prepared, so Postgres plans it once per connection.
    const res = await this.db
      .raw(
        `select c.id, c.seq, c."offset", c.size, c.sha256, c.part_number,
                coalesce(array_agg(r.node_id) filter (where r.node_id is not null), '{}'::text[]) as node_ids
           from chunks c
           left join chunk_replicas r on r.chunk_id = c.id and r.state = 'ok'
          where c.object_id = ?::bigint and c."offset" <= ?::bigint and c."offset" + c.size > ?::bigint
          group by c.id, c.seq, c."offset", c.size, c.sha256, c.part_number
          order by c.seq`,
        [objectId, end, start],
      )
      .options(prepared('chunks-of'));
    const rows = res.rows;
    return rows.map((r: Record<string, unknown>) => ({
      id: r.id as string,
      seq: Number(r.seq),
      offset: Number(r.offset),
      size: Number(r.size),
      sha256: r.sha256 as string,
      partNumber: r.part_number === null ? null : Number(r.part_number),
      nodeIds: r.node_ids as string[],
    }));
  }

  /** Byte range [start, end] of part `partNumber` of an object, or undefined if it has no such part. */
  async partRange(objectId: number, partNumber: number): Promise<{ start: number; end: number } | undefined> {
    const r = await this.db('chunks')
      .where({ object_id: objectId, part_number: partNumber })
      .first(
        this.db.raw('min("offset") as lo'),
        this.db.raw('max("offset" + size) as hi'),
        this.db.raw('count(*) as n'),
      );
    if (!r || Number(r.n) === 0) return undefined;
    return { start: Number(r.lo), end: Number(r.hi) - 1 };
  }

  /** Records that a replica failed its checksum and queues the chunk, so repair replaces it. */
  async markReplicaCorrupt(chunkId: string, nodeId: string): Promise<void> {
    await this.db('chunk_replicas')
      .where({ chunk_id: chunkId, node_id: nodeId })
      .update({ state: 'corrupt' });
    await enqueueRepair(this.db, [chunkId], 'replica failed its checksum on a read');
  }

  // ---- listing ----

  /**
   * One page of keys in byte order. With a delimiter, each common prefix costs one index seek
   * past all keys under it, so a page costs O(page), not O(keys under the prefixes).
   */
  async list(bucket: string, q: ListQuery): Promise<ListPage> {
    const page: ListPage = { contents: [], commonPrefixes: [], isTruncated: false };
    if (q.maxKeys <= 0) return page;
    const upper = q.prefix + maxTail;
    let { key: cursor, inclusive } = startCursor(q);
    for (;;) {
      const want = q.maxKeys - page.contents.length - page.commonPrefixes.length;
      // One more row than the page needs tells whether it is truncated.
      const limit = Math.min(want, listBatchRows) + 1;
      const rows = await this.listBatch(bucket, cursor, inclusive, upper, limit);
      inclusive = false;
      if (rows.length === 0) return page;
      let reseek: string | undefined;
      for (const row of rows) {
        const key = row.key;
        const cp = commonPrefixOf(key, q.prefix, q.delimiter);
        if (page.contents.length + page.commonPrefixes.length >= q.maxKeys) {
          page.isTruncated = true;
          return page;
        }
        if (cp !== undefined) {
          page.commonPrefixes.push(cp);
          page.lastReturned = cp;
          reseek = cp + maxTail;
          break;
        }
        page.contents.push(row);
        page.lastReturned = key;
        cursor = key;
      }
      if (reseek !== undefined) {
        cursor = reseek;
        continue;
      }
      if (rows.length < limit) return page;
    }
  }

  /**
   * Keys from `cursor` up to `upper`, in byte order. The batch comes back as one JSON text field:
   * decoding a thousand rows field by field cost the gateway several times what Postgres spent
   * finding them. Times are whole milliseconds, truncated, as everywhere else.
   */
  private async listBatch(
    bucket: string,
    cursor: string,
    inclusive: boolean,
    upper: string,
    limit: number,
  ): Promise<ListedObject[]> {
    const res = await this.db
      .raw(
        `select coalesce(json_agg(json_build_array(key, size, etag, checksum_algorithm, checksum_type,
                  floor(extract(epoch from last_modified) * 1000)::bigint) order by key), '[]')::text as page
           from (select key, size, etag, checksum_algorithm, checksum_type, last_modified from objects
                  where bucket = ? and key ${inclusive ? '>=' : '>'} ? and key <= ? order by key limit ?) s`,
        [bucket, cursor, upper, limit],
      )
      .options(prepared(inclusive ? 'list-from' : 'list-after'));
    const rows = JSON.parse(res.rows[0].page) as [
      string,
      number,
      string,
      string | null,
      string | null,
      number,
    ][];
    return rows.map(([key, size, etag, checksumAlgorithm, checksumType, ms]) => ({
      key,
      size,
      etag,
      checksumAlgorithm,
      checksumType,
      lastModified: new Date(ms),
    }));
  }
}

/** Where a listing starts: after the marker, skipping a whole common prefix if the marker is one. */
function startCursor(q: ListQuery): { key: string; inclusive: boolean } {
  // A marker before the prefix: the prefix itself may be a key, and is listed.
  if (q.after === undefined || utf8Before(q.after, q.prefix)) return { key: q.prefix, inclusive: true };
  const cp = commonPrefixOf(q.after, q.prefix, q.delimiter);
  // Every key under a common prefix that sorts before the marker was rolled up into it already.
  return { key: cp !== undefined ? cp + maxTail : q.after, inclusive: false };
}

export function commonPrefixOf(key: string, prefix: string, delimiter?: string): string | undefined {
  if (!delimiter || !key.startsWith(prefix)) return undefined;
  const i = key.indexOf(delimiter, prefix.length);
  return i < 0 ? undefined : key.slice(0, i + delimiter.length);
}

/** Compares an If-Match / If-None-Match value (quoted or not, `*`, or a list) with an ETag. */
export function etagMatches(header: string, etag: string): boolean {
  const bare = etag.replace(/^"|"$/g, '');
  return header.split(',').some((v) => {
    const t = v.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return t === '*' || t === bare;
  });
}

export async function insertChunks(
  trx: Knex.Transaction,
  chunks: ChunkRecord[],
  owner: { object_id?: number; part_id?: number },
): Promise<void> {
  if (chunks.length === 0) return;
  // Batches keep each statement under Postgres' 65535 bind-parameter limit.
  for (let i = 0; i < chunks.length; i += 500) {
    const batch = chunks.slice(i, i + 500);
    const held = await trx('chunk_intents')
      .whereIn(
        'chunk_id',
        batch.map((c) => c.id),
      )
      .whereNull('reclaimed_at')
      .delete()
      // Rows, not a count: knex-pglite answers a delete with a result object.
      .returning('chunk_id');
    if (held.length !== batch.length) throw reclaimed(held.length, batch.length);
    await trx('chunks').insert(
      batch.map((c) => ({
        id: c.id,
        ...owner,
        part_number: c.partNumber ?? null,
        seq: c.seq,
        offset: c.offset,
        size: c.size,
        sha256: c.sha256,
      })),
    );
    const replicas = batch.flatMap((c) => c.nodeIds.map((node_id) => ({ chunk_id: c.id, node_id })));
    if (replicas.length > 0) await trx('chunk_replicas').insert(replicas);
    const short = batch.filter((c) => c.short);
    if (short.length > 0)
      await trx('repair_queue').insert(
        short.map((c) => ({ chunk_id: c.id, priority: c.nodeIds.length, reason: SHORT_WRITE })),
      );
  }
}

/** Why a chunk committed with fewer than R replicas is in the repair queue. */
const SHORT_WRITE = 'write landed on fewer than R nodes';

/**
 * A commit may attach only chunks whose write intents it still holds (intents.ts): it removes them
 * as it inserts the chunks, and fails whole when the manager reclaimed any (their bytes are being
 * deleted). The 503 lets the client retry.
 */
function reclaimed(held: number, expected: number): Unavailable {
  return new Unavailable(
    `this write took too long or its gateway lost its lease: ${expected - held} of ${expected} chunks were reclaimed; retry`,
  );
}

/** The commit statement's failure when s3dfs_intents_held (migration 006) refused it. */
function intentsLost(err: unknown): never {
  const e = err as { code?: string; message?: string };
  if (e?.code !== 'S3D01') throw err;
  const m = /(\d+) of (\d+) held/.exec(e.message ?? '');
  throw reclaimed(Number(m?.[1] ?? 0), Number(m?.[2] ?? 0));
}

/**
 * CTEs inserting `chunks` and their replicas for the object row in CTE `o` (none for no chunks),
 * and removing the chunks' write intents; `fence` (for the main query) fails the statement when
 * fewer intents were held than chunks inserted (see reclaimed).
 */
function chunkInsertsFor(chunks: ChunkRecord[]): { sql: string; bindings: Knex.Value[]; fence: string } {
  if (chunks.length === 0) return { sql: '', bindings: [], fence: '' };
  const chunkValues = chunks.map(() => '(?::text, ?::int, ?::int, ?::bigint, ?::bigint, ?::text)').join(', ');
  const chunkBindings = chunks.flatMap((c) => [
    c.id,
    c.partNumber ?? null,
    c.seq,
    c.offset,
    c.size,
    c.sha256,
  ]);
  const replicas = chunks.flatMap((c) => c.nodeIds.map((nodeId) => [c.id, nodeId]));
  const replicaSql =
    replicas.length === 0
      ? ''
      : // Only with the object row, like the chunks: a missing bucket is NoSuchBucket, not a foreign key error.
        `, r as (insert into chunk_replicas (chunk_id, node_id) select v.chunk_id, v.node_id from o,` +
        ` (values ${replicas.map(() => '(?::text, ?::text)').join(', ')}) as v(chunk_id, node_id))`;
  const short = chunks.filter((c) => c.short);
  const shortSql =
    short.length === 0
      ? ''
      : `, rq as (insert into repair_queue (chunk_id, priority, reason) select v.id, v.n, ? from o, (values ${short.map(() => '(?::text, ?::smallint)').join(', ')}) as v(id, n))`;
  // Only with the object row: a commit that finds no bucket leaves the intents to the failed write.
  const intentSql =
    `, i as (delete from chunk_intents where chunk_id in (${chunks.map(() => '?').join(', ')})` +
    ' and reclaimed_at is null and exists (select 1 from o) returning 1)';
  return {
    sql:
      ', c as (insert into chunks (id, object_id, part_number, seq, "offset", size, sha256)' +
      ' select v.id, o.id, v.part_number, v.seq, v."offset", v.size, v.sha256 from o,' +
      ` (values ${chunkValues}) as v(id, part_number, seq, "offset", size, sha256))${replicaSql}${shortSql}${intentSql}`,
    bindings: [
      ...chunkBindings,
      ...replicas.flat(),
      ...(short.length === 0 ? [] : [SHORT_WRITE, ...short.flatMap((c) => [c.id, c.nodeIds.length])]),
      ...chunks.map((c) => c.id),
    ],
    fence: ` where s3dfs_intents_held((select count(*) from i), ${chunks.length})`,
  };
}

/**
 * A CTE that queues the chunks of the object rows in CTE `rows` for deletion (binding: the reason).
 * It reads the chunks as they were before the statement, so it sees them still attached.
 */
function queueChunksOf(rows: string): string {
  return `, q as (insert into delete_queue (chunk_id, reason)
      select c.id, ? from chunks c where c.object_id in (select id from ${rows})
      on conflict (chunk_id) do nothing)`;
}

/** Detaches chunks from their owner and queues their bytes for deletion. */
export async function enqueueChunks(
  trx: Knex.Transaction,
  chunkQuery: Knex.QueryBuilder,
  reason: string,
): Promise<void> {
  const ids: string[] = await chunkQuery.clone().pluck('id');
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    await trx('delete_queue')
      .insert(batch.map((chunk_id) => ({ chunk_id, reason })))
      .onConflict('chunk_id')
      .ignore();
    await trx('chunks').whereIn('id', batch).update({ object_id: null, part_id: null });
  }
}

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || /duplicate key|unique constraint/i.test(e?.message ?? '');
}
