import type { Knex } from 'knex';

// Multipart bookkeeping the first schema lacked: the algorithm of each part's checksum (a part may
// carry one even when its upload named none), and the final object checksum of a completed
// upload, so a retried CompleteMultipartUpload answers exactly as the first one did.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('upload_parts', (t) => {
    t.text('checksum_algorithm');
  });
  await knex.schema.alterTable('multipart_uploads', (t) => {
    t.text('final_checksum_value');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('upload_parts', (t) => {
    t.dropColumn('checksum_algorithm');
  });
  await knex.schema.alterTable('multipart_uploads', (t) => {
    t.dropColumn('final_checksum_value');
  });
}
