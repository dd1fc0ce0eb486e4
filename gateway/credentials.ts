import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { newKeyPair } from '../lib/ids.js';
import { privateDir, privateFile, privateFileMode } from '../lib/private-files.js';

// Access keys. The root pair comes from S3DFS_ACCESS_KEY/S3DFS_SECRET_KEY, or is generated once
// and kept in the database (shared by every gateway) and in DATA_DIR/credentials.json for the
// operator (0600 in a 0700 data dir: the one place on disk an operator reads the secret from; it
// is never printed but once, on a terminal, when generated). Extra keys live in the `credentials` table.

export interface RootCredentials {
  accessKey: string;
  secretKey: string;
  generated: boolean;
}

const cacheTtlMs = 5_000;

export async function ensureRootCredentials(
  db: Knex,
  dataDir: string,
  fromEnv: { accessKey?: string; secretKey?: string },
): Promise<RootCredentials> {
  if (fromEnv.accessKey && fromEnv.secretKey) {
    return { accessKey: fromEnv.accessKey, secretKey: fromEnv.secretKey, generated: false };
  }
  const row = await db('credentials').where({ root: true }).orderBy('created_at').first();
  let creds: RootCredentials;
  if (row) {
    creds = { accessKey: row.access_key, secretKey: row.secret_key, generated: false };
  } else {
    creds = { ...newKeyPair(), generated: true };
    await db('credentials').insert({
      access_key: creds.accessKey,
      secret_key: creds.secretKey,
      description: 'root (generated)',
      root: true,
    });
  }
  const file = credentialsFile(dataDir);
  privateDir(dataDir);
  // A mode given to writeFileSync applies only to a file it creates: an older one is chmod'ed.
  privateFile(file);
  if (!existsSync(file)) {
    writeFileSync(
      file,
      `${JSON.stringify({ accessKey: creds.accessKey, secretKey: creds.secretKey }, null, 2)}\n`,
      { mode: privateFileMode },
    );
  } else if (!creds.generated) {
    // Keep the file truthful if the database was replaced.
    const onDisk = JSON.parse(readFileSync(file, 'utf8'));
    if (onDisk.accessKey !== creds.accessKey) {
      writeFileSync(
        file,
        `${JSON.stringify({ accessKey: creds.accessKey, secretKey: creds.secretKey }, null, 2)}\n`,
        { mode: privateFileMode },
      );
    }
  }
  return creds;
}

/** Where the generated (or database-held) root key pair is kept for the operator. */
export function credentialsFile(dataDir: string): string {
  return path.resolve(dataDir, 'credentials.json');
}

/** Secret lookup for SigV4, with a short cache so each request doesn't cost a query. */
export function secretLookup(
  db: Knex,
  root: RootCredentials,
): (accessKey: string) => Promise<string | undefined> {
  const cache = new Map<string, { secret: string | undefined; at: number }>();
  return async (accessKey) => {
    if (accessKey === root.accessKey) return root.secretKey;
    const hit = cache.get(accessKey);
    if (hit && Date.now() - hit.at < cacheTtlMs) return hit.secret;
    const row = await db('credentials').where({ access_key: accessKey }).first('secret_key');
    const secret = row?.secret_key as string | undefined;
    if (cache.size > 10_000) cache.clear();
    cache.set(accessKey, { secret, at: Date.now() });
    return secret;
  };
}
