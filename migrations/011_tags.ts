import type { Knex } from 'knex';

// Object tags (on the version they were written with; an upload's, given at CreateMultipartUpload,
// become its object's at Complete) and bucket tags, as S3 keeps them: a small key → value map.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('objects', (t) => t.jsonb('tags'));
  await knex.schema.alterTable('multipart_uploads', (t) => t.jsonb('tags'));
  await knex.schema.alterTable('buckets', (t) => t.jsonb('tags'));
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['objects', 'multipart_uploads', 'buckets'])
    await knex.schema.alterTable(table, (t) => t.dropColumn('tags'));
}
