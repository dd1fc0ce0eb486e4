import type { Knex } from 'knex';
import * as m001 from './001_initial.js';
import * as m002 from './002_node_capacity_limit.js';
import * as m003 from './003_multipart_checksums.js';
import * as m004 from './004_inline_objects.js';
import * as m005 from './005_node_safety.js';
import * as m006 from './006_write_intents.js';
import * as m007 from './007_healing_indexes.js';
import * as m008 from './008_repair_queue.js';
import * as m009 from './009_cluster_counters.js';
import * as m010 from './010_bucket_cors.js';
import * as m011 from './011_tags.js';

// Migrations are listed explicitly so they load the same from dist/ in every runtime.
const all: Record<string, Knex.Migration> = {
  '001_initial': m001,
  '002_node_capacity_limit': m002,
  '003_multipart_checksums': m003,
  '004_inline_objects': m004,
  '005_node_safety': m005,
  '006_write_intents': m006,
  '007_healing_indexes': m007,
  '008_repair_queue': m008,
  '009_cluster_counters': m009,
  '010_bucket_cors': m010,
  '011_tags': m011,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(all).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => all[name],
};
