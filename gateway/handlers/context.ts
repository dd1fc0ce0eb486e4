import type { IncomingHttpHeaders } from 'node:http';
import type { Knex } from 'knex';
import type Koa from 'koa';
import { NoSuchBucket } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { GatewayConfig } from '../config.js';
import { S3Error } from '../s3/errors.js';
import type { Query } from '../s3/router.js';
import type { AuthResult } from '../s3/sigv4.js';
import type { ClusterView } from '../storage/cluster.js';
import type { IntentLog } from '../storage/intents.js';
import type { MetaStore } from '../storage/meta.js';
import type { ObjectLayer } from '../storage/object-layer.js';

/** What every handler can reach: config, metadata, the cluster, this request. */
export interface Gateway {
  config: GatewayConfig;
  db: Knex;
  meta: MetaStore;
  cluster: ClusterView;
  intents: IntentLog;
  /** What handlers store and read bytes through (storage/object-layer.ts). */
  store: ObjectLayer;
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

export function sendXml(r: RequestCtx, xml: string, status = 200): void {
  r.koa.status = status;
  r.koa.set('Content-Type', 'application/xml');
  r.koa.body = xml;
}

/** The bucket, or NoSuchBucket. A pre-check only (cached briefly): commits re-check under a lock. */
export async function requireBucket(r: RequestCtx, bucket: string) {
  const row = await r.gw.meta.bucketCached(bucket);
  if (!row) throw new NoSuchBucket(bucket);
  return row;
}

export function quote(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
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

/**
 * Buckets are never versioned: every object's only version is `null`, which names the current one.
 * Any other version id is refused rather than ignored — ignoring it would make "delete that old
 * version" delete the current object.
 */
export function currentVersionOnly(versionId: string | undefined): void {
  if (versionId === undefined || versionId === 'null') return;
  throw new S3Error(
    'InvalidArgument',
    versionId === '' ? 'Version id cannot be the empty string' : 'Invalid version id specified',
    { extra: { ArgumentName: 'versionId', ArgumentValue: versionId } },
  );
}
