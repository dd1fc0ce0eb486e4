import type { IncomingHttpHeaders } from 'node:http';
import type { Knex } from 'knex';
import type Koa from 'koa';
import type { Logger } from '../../lib/logger.js';
import type { GatewayConfig } from '../config.js';
import type { Query } from '../s3/router.js';
import type { AuthResult } from '../s3/sigv4.js';
import type { ClusterView } from '../storage/cluster.js';
import type { MetaStore } from '../storage/meta.js';

/** What every handler can reach: config, metadata, the cluster, this request. */
export interface Gateway {
  config: GatewayConfig;
  db: Knex;
  meta: MetaStore;
  cluster: ClusterView;
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
