import type { IncomingHttpHeaders } from 'node:http';
import type { Knex } from 'knex';
import type Koa from 'koa';
import type { Logger } from '../../lib/logger.js';
import type { GatewayConfig } from '../config.js';
import { S3Error } from '../s3/errors.js';
import type { Query } from '../s3/router.js';
import type { AuthResult } from '../s3/sigv4.js';
import type { ClusterView } from '../storage/cluster.js';
import type { IntentLog } from '../storage/intents.js';
import type { MetaStore } from '../storage/meta.js';

/** What every handler can reach: config, metadata, the cluster, this request. */
export interface Gateway {
  config: GatewayConfig;
  db: Knex;
  meta: MetaStore;
  cluster: ClusterView;
  intents: IntentLog;
  log: Logger;
}

export interface RequestCtx {
  gw: Gateway;
  koa: Koa.Context;
  auth: AuthResult;
  headers: IncomingHttpHeaders;
  query: Query;
  requestId: string;
  log: Logger;
}

export function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** The owner shown in listings and ACLs: the authenticated access key. */
export function ownerOf(r: RequestCtx): { id: string; displayName: string } {
  return { id: r.auth.accessKey, displayName: r.auth.accessKey };
}

/**
 * Continuation tokens are opaque to clients: the last key (or bucket name) a page returned, tagged
 * by the listing that made it so one listing's token is refused by another.
 */
export function encodeToken(last: string, tag: string): string {
  return Buffer.from(`${tag}:${last}`, 'utf8').toString('base64url');
}

export function decodeToken(token: string, tag: string): string {
  const raw = Buffer.from(token, 'base64url').toString('utf8');
  // No key holds U+0000 (the router refuses it), and Postgres text cannot bind it.
  if (!raw.startsWith(`${tag}:`) || raw.includes('\0')) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', {
      extra: { ArgumentName: 'continuation-token', ArgumentValue: token },
    });
  }
  return raw.slice(tag.length + 1);
}
