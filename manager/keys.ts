// Extra S3 access keys over the management API: `GET /api/keys` (never the secrets),
// `POST /api/keys` {description?} → {accessKey, secretKey, description} (the only time a secret is
// shown), `DELETE /api/keys/:accessKey` (not the root key). Gateways read the `credentials` table
// through a short cache (gateway/credentials.ts), so a deleted key stops working within seconds.
import type Router from '@koa/router';
import type { Knex } from 'knex';
import { BadRequest, Conflict, NotFound } from '../lib/errors.js';
import { newKeyPair } from '../lib/ids.js';
import { readJson } from './api.js';

/** A sentence for a person, not a document. */
const DESCRIPTION_CHARS_MAX = 256;
/** Bodies are `{"description": ...}`; anything bigger is a mistake. */
const BODY_BYTES_MAX = 4 * 1024;
/** Keys are for people and applications, not per request; also bounds the listing. */
const KEYS_MAX = 1000;

export interface KeyInfo {
  accessKey: string;
  description: string;
  root: boolean;
  createdAt: string;
}

export function registerKeyRoutes(router: Router, db: Knex): void {
  router.get('/api/keys', async (ctx) => {
    const rows = await db('credentials')
      .select('access_key', 'description', 'root', 'created_at')
      .orderBy([{ column: 'root', order: 'desc' }, 'created_at', 'access_key'])
      .limit(KEYS_MAX);
    ctx.body = { keys: rows.map(toInfo) };
  });

  router.post('/api/keys', async (ctx) => {
    const body = await readJson(ctx, BODY_BYTES_MAX);
    const description = body.description ?? '';
    if (typeof description !== 'string' || [...description].length > DESCRIPTION_CHARS_MAX) {
      throw new BadRequest(`description must be a string of at most ${DESCRIPTION_CHARS_MAX} characters`);
    }
    const [{ n }] = await db('credentials').count({ n: '*' });
    if (Number(n) >= KEYS_MAX)
      throw new Conflict(`there are already ${KEYS_MAX} access keys; delete some first`);
    // The same shape as the generated root key.
    const { accessKey, secretKey } = newKeyPair();
    await db('credentials').insert({
      access_key: accessKey,
      secret_key: secretKey,
      description,
      root: false,
    });
    ctx.status = 201;
    ctx.body = { accessKey, secretKey, description };
  });

  router.delete('/api/keys/:accessKey', async (ctx) => {
    const accessKey = ctx.params.accessKey;
    const row = await db('credentials').where({ access_key: accessKey }).first('root');
    if (!row) throw new NotFound(`no access key ${accessKey}`);
    if (row.root) throw new Conflict(`${accessKey} is the root key; it cannot be deleted`);
    await db('credentials').where({ access_key: accessKey, root: false }).delete();
    ctx.body = { deleted: accessKey };
  });
}

function toInfo(row: {
  access_key: string;
  description: string;
  root: boolean;
  created_at: Date | string;
}): KeyInfo {
  return {
    accessKey: row.access_key,
    description: row.description,
    root: row.root,
    createdAt: new Date(row.created_at).toISOString(),
  };
}
