import type { Knex } from 'knex';

// The capacity a node was asked to enforce (--capacity), kept apart from `capacity_bytes` (what it
// reports), so a restarted node gets the same limit back. Null: the node uses its disk.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('nodes', (t) => {
    t.bigInteger('capacity_limit_bytes');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('nodes', (t) => {
    t.dropColumn('capacity_limit_bytes');
  });
}
