import type { Knex } from 'knex';

// What the manager learns from each health probe that changes where data may go: whether a node is
// below its free-space reserve (it then takes no new replicas) and which volume it serves (a new
// one means its copies are gone and its inventory is taken at once).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('nodes', (t) => {
    t.boolean('full').notNullable().defaultTo(false);
    t.text('volume_id');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('nodes', (t) => {
    t.dropColumn('full');
    t.dropColumn('volume_id');
  });
}
