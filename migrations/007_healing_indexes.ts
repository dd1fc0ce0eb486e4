import type { Knex } from 'knex';

// Indexes the healing passes page on, so each page is a range scan from its cursor instead of a read
// from the start: garbage collection walks the delete queue in (enqueued_at, id) order and stops at
// the grace boundary, so the young entries of the last hour are never read by an idle pass.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('delete_queue', (t) => {
    t.index(['enqueued_at', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('delete_queue', (t) => {
    t.dropIndex(['enqueued_at', 'id']);
  });
}
