import type { Knex } from 'knex';

// The repair queue: chunks known to need repair, put here by what made them need it (a node down
// past the repair grace or draining, a replica marked corrupt or found lost, a write that landed on
// fewer than R nodes), so a repair pass takes its work from here instead of scanning every chunk.
// Fewer copies left is repaired first (priority); a chunk that could not be repaired waits
// not_before; every enqueue bumps version, and a pass removes a row only at the version it repaired,
// so news that arrives during a repair is never lost. A chunk that is collected takes its row along.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('repair_queue', (t) => {
    t.text('chunk_id').primary().references('id').inTable('chunks').onDelete('CASCADE');
    t.smallint('priority').notNullable();
    t.text('reason').notNullable();
    t.integer('version').notNullable().defaultTo(0);
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('enqueued_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('not_before', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['priority', 'not_before']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('repair_queue');
}
