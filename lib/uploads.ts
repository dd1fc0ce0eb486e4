import type { Knex } from 'knex';

// Ending multipart uploads that will never complete, shared by the gateway (AbortMultipartUpload)
// and the manager (expiry of idle uploads). The parts' chunks are detached and queued for
// deletion in the caller's transaction, so an upload is either active with all its parts or
// aborted with none.

/** Uploads expired per transaction batch: bounds one expiry pass's lock time and memory. */
const expireBatchMax = 100;

/**
 * Aborts an upload inside `trx`: marks it aborted, queues its parts' chunks for deletion and
 * removes the part rows. Returns false when the upload is unknown or no longer active.
 */
export async function abortUploadIn(
  trx: Knex.Transaction,
  uploadId: string,
  reason: string,
): Promise<boolean> {
  const aborted = await trx('multipart_uploads')
    .where({ id: uploadId, state: 'active' })
    .update({ state: 'aborted', updated_at: trx.fn.now() })
    .returning('id');
  if (aborted.length === 0) return false;
  await trx.raw(
    `insert into delete_queue (chunk_id, reason)
       select id, ? from chunks where part_id in (select id from upload_parts where upload_id = ?)
     on conflict (chunk_id) do nothing`,
    [reason, uploadId],
  );
  await trx('chunks')
    .whereIn('part_id', trx('upload_parts').where({ upload_id: uploadId }).select('id'))
    .update({ object_id: null, part_id: null });
  await trx('upload_parts').where({ upload_id: uploadId }).delete();
  return true;
}

export interface ExpiryResult {
  aborted: { id: string; bucket: string; key: string }[];
  /** Completed or aborted upload rows older than the expiry age, removed. */
  purged: number;
}

/**
 * Aborts active uploads idle (no part written, no Complete) for longer than `idleMs`, and forgets
 * finished uploads as old, after which a Complete retry is answered NoSuchUpload.
 */
export async function expireUploads(db: Knex, idleMs: number): Promise<ExpiryResult> {
  const cutoff = db.raw("now() - (? * interval '1 millisecond')", [idleMs]);
  const result: ExpiryResult = { aborted: [], purged: 0 };
  for (;;) {
    const stale: { id: string; bucket: string; key: string }[] = await db('multipart_uploads')
      .where({ state: 'active' })
      .andWhere('updated_at', '<', cutoff)
      .orderBy('updated_at')
      .limit(expireBatchMax)
      .select('id', 'bucket', 'key');
    for (const u of stale) {
      const done = await db.transaction(async (trx) => {
        // Re-check under the row lock: a part may have landed since the scan.
        const row = await trx('multipart_uploads')
          .where({ id: u.id, state: 'active' })
          .andWhere('updated_at', '<', cutoff)
          .forUpdate()
          .first('id');
        return row ? abortUploadIn(trx, u.id, 'upload expired') : false;
      });
      if (done) result.aborted.push(u);
    }
    if (stale.length < expireBatchMax) break;
  }
  for (;;) {
    const ids = db('multipart_uploads')
      .whereIn('state', ['completed', 'aborted'])
      .andWhere('updated_at', '<', cutoff)
      .limit(expireBatchMax)
      .select('id');
    // `returning` gives rows on both engines (knex-pglite's bare delete count is not a number).
    const n = (await db('multipart_uploads').whereIn('id', ids).delete().returning('id')).length;
    result.purged += n;
    if (n < expireBatchMax) break;
  }
  return result;
}
