import type { Knex } from 'knex';

// The whole data model. Keys are `COLLATE "C"` so ORDER BY and range scans follow S3's UTF-8 byte
// order; the (bucket, key) btree doubles as the prefix-listing index.

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('buckets', (t) => {
    t.specificType('name', 'text COLLATE "C"').primary();
    t.text('owner').notNullable();
    t.text('region').notNullable().defaultTo('us-east-1');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // The current version of each (bucket, key). `id` changes on every overwrite, so chunks point
  // at one immutable write and an overwrite is a single swap of rows.
  await knex.schema.createTable('objects', (t) => {
    t.bigIncrements('id').primary();
    t.specificType('bucket', 'text COLLATE "C"').notNullable().references('name').inTable('buckets');
    t.specificType('key', 'text COLLATE "C"').notNullable();
    t.bigInteger('size').notNullable();
    t.text('etag').notNullable();
    t.text('content_type');
    t.text('content_encoding');
    t.text('content_disposition');
    t.text('content_language');
    t.text('cache_control');
    t.text('expires');
    t.jsonb('user_meta').notNullable().defaultTo('{}');
    // x-amz-checksum-*: algorithm (CRC32, CRC32C, CRC64NVME, SHA1, SHA256), base64 value, and
    // type (FULL_OBJECT or COMPOSITE, the latter for multipart uploads).
    t.text('checksum_algorithm');
    t.text('checksum_value');
    t.text('checksum_type');
    t.integer('parts_count'); // multipart objects only
    t.text('upload_id'); // the multipart upload it came from, for idempotent Complete retries
    t.timestamp('last_modified', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['bucket', 'key']);
  });

  await knex.schema.createTable('multipart_uploads', (t) => {
    t.text('id').primary();
    t.specificType('bucket', 'text COLLATE "C"').notNullable().references('name').inTable('buckets');
    t.specificType('key', 'text COLLATE "C"').notNullable();
    t.text('state').notNullable().defaultTo('active'); // active | completed | aborted
    t.text('content_type');
    t.text('content_encoding');
    t.text('content_disposition');
    t.text('content_language');
    t.text('cache_control');
    t.text('expires');
    t.jsonb('user_meta').notNullable().defaultTo('{}');
    t.text('checksum_algorithm');
    t.text('checksum_type');
    t.bigInteger('object_id'); // set by Complete
    t.text('final_etag'); // set by Complete
    t.timestamp('initiated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['bucket', 'key', 'initiated_at']);
    t.index(['state', 'updated_at']);
  });

  await knex.schema.createTable('upload_parts', (t) => {
    t.bigIncrements('id').primary();
    t.text('upload_id').notNullable().references('id').inTable('multipart_uploads').onDelete('CASCADE');
    t.integer('part_number').notNullable();
    t.bigInteger('size').notNullable();
    t.text('etag').notNullable();
    t.text('checksum_value');
    t.timestamp('last_modified', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['upload_id', 'part_number']);
  });

  // One row per stored chunk. A chunk belongs to an object, or (before Complete) to an upload
  // part; when neither needs it any more, `object_id` and `part_id` are null and it sits in
  // `delete_queue` until its replicas are gone.
  await knex.schema.createTable('chunks', (t) => {
    t.text('id').primary(); // 128-bit random, 32 hex characters
    t.bigInteger('object_id').references('id').inTable('objects').onDelete('SET NULL');
    t.bigInteger('part_id').references('id').inTable('upload_parts').onDelete('SET NULL');
    t.integer('part_number'); // for GetObject?partNumber= on multipart objects
    t.integer('seq').notNullable(); // order within the object (or part)
    t.bigInteger('offset').notNullable(); // byte offset within the object (or part)
    t.bigInteger('size').notNullable();
    t.text('sha256').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['object_id', 'seq']);
    t.index(['part_id', 'seq']);
  });

  await knex.schema.createTable('nodes', (t) => {
    t.text('id').primary();
    t.text('host').notNullable();
    t.integer('port').notNullable().unique(); // the port pool's lease: one port, one node
    t.text('status').notNullable().defaultTo('starting'); // starting|up|suspect|down|draining|removed
    t.text('zone');
    t.bigInteger('capacity_bytes').notNullable().defaultTo(0);
    t.bigInteger('used_bytes').notNullable().defaultTo(0);
    t.bigInteger('chunk_count').notNullable().defaultTo(0);
    t.double('weight').notNullable().defaultTo(1);
    t.text('runtime').notNullable(); // process | docker
    t.text('handle'); // container id or pid
    t.integer('restarts').notNullable().defaultTo(0);
    t.timestamp('last_heartbeat', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // Where the bytes of a chunk actually are. The ring says where they should be.
  await knex.schema.createTable('chunk_replicas', (t) => {
    t.text('chunk_id').notNullable().references('id').inTable('chunks').onDelete('CASCADE');
    t.text('node_id').notNullable().references('id').inTable('nodes');
    t.text('state').notNullable().defaultTo('ok'); // ok | corrupt
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['chunk_id', 'node_id']);
    t.index(['node_id', 'chunk_id']); // all chunks on node X
  });

  await knex.schema.createTable('node_events', (t) => {
    t.bigIncrements('id').primary();
    t.text('node_id').notNullable();
    t.text('from');
    t.text('to').notNullable();
    t.text('reason').notNullable();
    t.timestamp('at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['node_id', 'at']);
    t.index(['at']);
  });

  await knex.schema.createTable('credentials', (t) => {
    t.text('access_key').primary();
    t.text('secret_key').notNullable();
    t.text('description').notNullable().defaultTo('');
    t.boolean('root').notNullable().defaultTo(false);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });

  // Chunks whose bytes no metadata needs any more; GC removes their replicas, then the rows.
  await knex.schema.createTable('delete_queue', (t) => {
    t.bigIncrements('id').primary();
    t.text('chunk_id').notNullable().unique();
    t.text('reason').notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('enqueued_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('not_before', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['not_before']);
  });

  // Small cluster-wide values: ring version, generated secrets.
  await knex.schema.createTable('settings', (t) => {
    t.text('key').primary();
    t.jsonb('value').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'settings',
    'delete_queue',
    'credentials',
    'node_events',
    'chunk_replicas',
    'nodes',
    'chunks',
    'upload_parts',
    'multipart_uploads',
    'objects',
    'buckets',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
