import type { Knex } from 'knex';

// A bucket's CORS configuration (PutBucketCors): its rules as S3 holds them, in order (the first
// rule that matches a request answers it). Null: no CORS configuration, so no cross-origin access.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('buckets', (t) => {
    t.jsonb('cors_rules');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('buckets', (t) => {
    t.dropColumn('cors_rules');
  });
}
