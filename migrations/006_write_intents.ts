import type { Knex } from 'knex';

// Write intents: a chunk is recorded here, with the nodes it goes to, before its bytes go out, and
// the commit that makes it part of an object or part removes the record in the same statement. A
// gateway process (a boot) heartbeats its row; when it stops, the manager reclaims its intents and
// deletes their bytes at once instead of after the inventory's orphan grace. A reclaimed intent can
// no longer be committed (s3dfs_intents_held): nothing a commit refers to is ever deleted.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('writer_boots', (t) => {
    t.text('id').primary();
    t.text('host').notNullable();
    t.integer('pid').notNullable();
    t.integer('lease_ms').notNullable();
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('heartbeat_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('reclaimed_at', { useTz: true });
  });
  await knex.schema.createTable('chunk_intents', (t) => {
    t.text('chunk_id').primary();
    t.text('boot_id').notNullable().index();
    t.specificType('node_ids', 'text[]').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now()).index();
    t.timestamp('reclaimed_at', { useTz: true });
  });
  await knex.raw(
    'create index chunk_intents_reclaimed on chunk_intents (reclaimed_at) where reclaimed_at is not null',
  );
  // A commit statement cannot roll itself back: it calls this, which fails the whole statement
  // when fewer of its chunks' intents were still held than it wrote.
  await knex.raw(`
    create function s3dfs_intents_held(held bigint, expected integer) returns boolean
    language plpgsql as $$
    begin
      if held <> expected then
        raise exception 'write intents reclaimed: % of % held', held, expected using errcode = 'S3D01';
      end if;
      return true;
    end $$`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop function s3dfs_intents_held(bigint, integer)');
  await knex.schema.dropTable('chunk_intents');
  await knex.schema.dropTable('writer_boots');
}
