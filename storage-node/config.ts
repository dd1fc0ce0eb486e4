// Storage node configuration: command-line flags first, S3DFS_NODE_* environment as fallback,
// validated once; every problem is reported together in one ConfigError.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, type Env, EnvReader } from '../lib/config.js';

export interface NodeConfig {
  port: number;
  /** Bind address: loopback by default; Docker sets 0.0.0.0. */
  host: string;
  dataDir: string;
  /** Requested id; the one persisted in dataDir/node.json wins and must agree. */
  id?: string;
  /** Declared capacity; undefined → the size of the filesystem under dataDir. */
  capacityBytes?: number;
  secret?: string;
  /** Largest chunk body accepted. */
  chunkSizeMax: number;
}

// The gateway cuts objects into 64 MiB chunks by default, so that is the default largest body.
// The upper bound keeps one chunk one reasonable transfer and one fsync: above 1 GiB a single lost
// replica means re-copying a lot, and a slow PUT holds a temp file (and a disk reservation) for long.
export const chunkSizeMaxDefault = 64 * 1024 ** 2;
export const chunkSizeMaxLimit = 1024 ** 3;

// Node ids appear in file names, URLs, metrics labels and container names: short and plain.
export const nodeIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const usage = 'usage: s3dfs node --port P --data DIR [--id ID] [--host H] [--capacity BYTES]';

/**
 * Flags are folded into the environment under their own names (`--port`), so one EnvReader
 * validates both and a message names what the user actually typed.
 */
export function loadNodeConfig(args: string[], env: Env = process.env): NodeConfig {
  const flags = parseFlags(args);
  const merged: Env = { ...env };
  const key = (flag: keyof typeof flags, envName: string): string => {
    if (flags[flag] === undefined) return envName;
    merged[`--${flag}`] = flags[flag];
    return `--${flag}`;
  };
  const r = new EnvReader(merged);

  const portKey = key('port', 'S3DFS_NODE_PORT');
  r.check(r.optional(portKey) !== undefined, `a port is required (--port or S3DFS_NODE_PORT; 0 picks one)`);
  const port = r.int(portKey, 0, 0, 65535);

  const dataKey = key('data', 'S3DFS_NODE_DATA');
  const dataRaw = r.optional(dataKey);
  r.check(dataRaw !== undefined, `a data directory is required (--data or S3DFS_NODE_DATA)`);

  const idKey = key('id', 'S3DFS_NODE_ID');
  const id = r.optional(idKey);
  r.check(id === undefined || nodeIdPattern.test(id), `${idKey}=${id}: expected 1-64 of [A-Za-z0-9._-]`);

  const host = r.str(key('host', 'S3DFS_NODE_HOST'), '127.0.0.1');
  const capKey = key('capacity', 'S3DFS_NODE_CAPACITY');
  const capacityBytes = r.optional(capKey) === undefined ? undefined : r.bytes(capKey, 0, 1, 2 ** 53);
  const chunkSizeMax = r.bytes('S3DFS_CHUNK_SIZE_MAX', chunkSizeMaxDefault, 1, chunkSizeMaxLimit);
  // The secret has no flag on purpose: command lines are visible to every user through ps.
  const secret = r.optional('S3DFS_CLUSTER_SECRET');
  r.done();

  return { port, host, dataDir: path.resolve(dataRaw!), id, capacityBytes, secret, chunkSizeMax };
}

function parseFlags(args: string[]) {
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        data: { type: 'string' },
        id: { type: 'string' },
        host: { type: 'string' },
        capacity: { type: 'string' },
      },
    });
    return values;
  } catch (err) {
    throw new ConfigError([`${(err as Error).message}\n${usage}`]);
  }
}
