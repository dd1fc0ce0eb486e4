import type { Knex } from 'knex';

// Counters of live chunks and of objects, kept by the database as rows come and go (statement
// triggers over the transition tables: one counter update per statement, whatever path made the
// change, foreign-key actions included), so GET /api/cluster and /metrics read a few rows instead of
// counting the tables. Each connection adds to its own slot (backend pid mod COUNTER_SLOTS), so
// concurrent commits do not queue on one row; a reader sums the slots.
const COUNTER_SLOTS = 64;

const LIVE = 'object_id is not null or part_id is not null';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('cluster_counters', (t) => {
    t.text('name').notNullable();
    t.smallint('slot').notNullable();
    t.bigInteger('value').notNullable().defaultTo(0);
    t.primary(['name', 'slot']);
  });
  await knex.raw(`
    create function s3dfs_count(counter text, delta bigint) returns void language sql as $$
      insert into cluster_counters (name, slot, value) values (counter, pg_backend_pid() % ${COUNTER_SLOTS}, delta)
      on conflict (name, slot) do update set value = cluster_counters.value + excluded.value
    $$`);
  // Only the branch for the trigger's own operation runs, so each names only the tables it has.
  await knex.raw(`
    create function s3dfs_count_objects() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' then perform s3dfs_count('objects', (select count(*) from new_rows));
      else perform s3dfs_count('objects', -(select count(*) from old_rows));
      end if;
      return null;
    end $$`);
  await knex.raw(`
    create function s3dfs_count_chunks() returns trigger language plpgsql as $$
    declare delta bigint;
    begin
      if tg_op = 'INSERT' then delta := (select count(*) from new_rows where ${LIVE});
      elsif tg_op = 'DELETE' then delta := -(select count(*) from old_rows where ${LIVE});
      else delta := (select count(*) from new_rows where ${LIVE}) - (select count(*) from old_rows where ${LIVE});
      end if;
      if delta <> 0 then perform s3dfs_count('chunks', delta); end if;
      return null;
    end $$`);
  for (const [table, fn] of [
    ['objects', 's3dfs_count_objects'],
    ['chunks', 's3dfs_count_chunks'],
  ]) {
    await knex.raw(
      `create trigger ${table}_count_insert after insert on ${table} referencing new table as new_rows for each statement execute function ${fn}()`,
    );
    await knex.raw(
      `create trigger ${table}_count_delete after delete on ${table} referencing old table as old_rows for each statement execute function ${fn}()`,
    );
  }
  await knex.raw(
    'create trigger chunks_count_update after update on chunks referencing old table as old_rows new table as new_rows for each statement execute function s3dfs_count_chunks()',
  );
  await knex.raw(`insert into cluster_counters (name, slot, value)
    select 'objects', 0, count(*) from objects
    union all select 'chunks', 0, count(*) from chunks where ${LIVE}`);
  // Replicas not ok are few (repair replaces them); the scrape finds them without a scan.
  await knex.raw("create index chunk_replicas_not_ok on chunk_replicas (chunk_id) where state <> 'ok'");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index chunk_replicas_not_ok');
  for (const t of ['objects_count_insert on objects', 'objects_count_delete on objects'])
    await knex.raw(`drop trigger ${t}`);
  for (const t of ['insert', 'delete', 'update']) await knex.raw(`drop trigger chunks_count_${t} on chunks`);
  await knex.raw('drop function s3dfs_count_objects()');
  await knex.raw('drop function s3dfs_count_chunks()');
  await knex.raw('drop function s3dfs_count(text, bigint)');
  await knex.schema.dropTable('cluster_counters');
}
