import type { Knex } from 'knex';

// Small objects kept in their metadata row instead of in chunks on the storage nodes: a PUT, GET
// or DELETE of one then costs one database transaction and no node round trips. They are exactly
// as durable as the row that names them (without it the object is lost anyway), and a read checks
// the bytes against the object's MD5 ETag.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('objects', (t) => {
    t.binary('inline_data');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('objects', (t) => {
    t.dropColumn('inline_data');
  });
}
