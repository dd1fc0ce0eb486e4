#!/usr/bin/env -S node --initial-old-space-size=64
// The one binary: `s3dfs server` (everything, embedded defaults), or one piece at a time.
import { ConfigError } from '../lib/config.js';
import { hasNodeFlags, nodeFlags } from '../lib/node-flags.js';
import { restrictUmask } from '../lib/private-files.js';
import { ADMIN_COMMANDS, adminUsage } from './cli.js';

const usage = `usage: s3dfs <command> [options]

commands:
  server                      manager + gateway + storage nodes in one process (embedded defaults)
  gateway                     the S3 gateway alone (needs DATABASE_URL and a manager)
  manager                     the manager alone
  node --port P --data DIR    one storage node
  migrate                     bring the metadata database to the latest schema, then exit
  help                        this text

${adminUsage}

Configuration is read from S3DFS_* environment variables; see the README.`;

/** The services that move object bytes; they want the V8 flags of lib/node-flags.ts. */
const byteMovers = new Set(['server', 'gateway', 'node']);

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  // Before anything touches the data dir: whatever this process (and the storage nodes it starts,
  // which inherit it) creates without an explicit mode is the owner's alone (lib/private-files.ts).
  restrictUmask();
  if (byteMovers.has(command) && !hasNodeFlags()) {
    console.error(
      `s3dfs: started without node ${nodeFlags.join(' ')}: large transfers then cost about twice the CPU ` +
        `in garbage collection (npm start, the s3dfs bin and the Docker image pass it)`,
    );
  }
  switch (command) {
    case 'server':
      return (await import('./server.js')).runServer(args);
    case 'gateway':
      return (await import('../gateway/main.js')).runGateway(args);
    case 'manager':
      return (await import('../manager/main.js')).runManager(args);
    case 'node':
      return (await import('../storage-node/main.js')).runNode(args);
    case 'migrate':
      return (await import('./migrate.js')).runMigrate(args);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(usage);
      return;
    default:
      if ((ADMIN_COMMANDS as readonly string[]).includes(command))
        return (await import('./cli.js')).runAdmin(command, args);
      console.error(`s3dfs: unknown command '${command}'\n\n${usage}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) {
    console.error(`s3dfs: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
