import type Koa from 'koa';
import { NoSuchBucket } from '../../lib/errors.js';
import { type CorsRule, corsResponseHeaders, matchCorsRule, requestedHeaders } from '../s3/cors.js';
import { S3Error } from '../s3/errors.js';
import { corsConfigurationXml, parseCorsConfiguration, xmlBodyBytesMax } from '../s3/xml.js';
import { readSmallBody } from './body.js';
import type { Gateway, RequestCtx } from './context.js';
import { header, requireBucket, sendXml } from './context.js';

// Bucket CORS: Put/Get/DeleteBucketCors, the preflight OPTIONS a browser sends before a
// cross-origin request (unauthenticated, answered by the bucket's rules alone), and the CORS
// headers on the actual responses, errors included, so a page can read what went wrong.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketCors.html

export async function putBucketCors(r: RequestCtx, bucket: string): Promise<void> {
  await requireBucket(r, bucket);
  const rules = await parseCorsConfiguration(await readSmallBody(r, xmlBodyBytesMax));
  if (!(await r.gw.meta.setBucketCors(bucket, rules))) throw new NoSuchBucket(bucket);
  r.koa.status = 200;
  r.koa.body = Buffer.alloc(0);
}

export async function getBucketCors(r: RequestCtx, bucket: string): Promise<void> {
  const rules = (await requireBucket(r, bucket)).cors_rules as CorsRule[] | null;
  if (!rules) throw new S3Error('NoSuchCORSConfiguration', undefined, { extra: { BucketName: bucket } });
  sendXml(r, corsConfigurationXml(rules));
}

export async function deleteBucketCors(r: RequestCtx, bucket: string): Promise<void> {
  if (!(await r.gw.meta.setBucketCors(bucket, null))) throw new NoSuchBucket(bucket);
  r.koa.status = 204;
  r.koa.body = null;
}

/** A preflight: 200 with the matching rule's headers, else 403 (no rule, or no CORS at all). */
export async function preflightCors(gw: Gateway, koa: Koa.Context, bucket: string): Promise<void> {
  const h = koa.req.headers;
  const origin = header(h, 'origin');
  const method = header(h, 'access-control-request-method');
  if (origin === undefined)
    throw new S3Error('BadRequest', 'Insufficient information. Origin request header needed.');
  if (method === undefined)
    throw new S3Error(
      'BadRequest',
      'Invalid Access-Control-Request-Method: Access-Control-Request-Method header is missing.',
    );
  const row = await gw.meta.bucketCached(bucket);
  if (!row) throw new NoSuchBucket(bucket);
  const rules = row.cors_rules as CorsRule[] | null;
  if (!rules) throw new S3Error('AccessForbidden', 'CORSResponse: CORS is not enabled for this bucket.');
  const wanted = requestedHeaders(header(h, 'access-control-request-headers'));
  const rule = matchCorsRule(rules, origin, method, wanted);
  if (!rule) throw new S3Error('AccessForbidden');
  for (const [k, v] of Object.entries(corsResponseHeaders(rule, origin, { requestHeaders: wanted })))
    koa.set(k, v);
  koa.status = 200;
  koa.body = Buffer.alloc(0);
}

/**
 * The CORS headers of an actual (non-preflight) response to a request with an Origin, set last so
 * that error responses carry them too. Best effort: a failed lookup leaves the response as it is.
 */
export async function applyCorsHeaders(gw: Gateway, koa: Koa.Context, bucket: string): Promise<void> {
  const origin = header(koa.req.headers, 'origin');
  if (origin === undefined) return;
  const row = await gw.meta.bucketCached(bucket).catch(() => undefined);
  const rules = row?.cors_rules as CorsRule[] | null | undefined;
  const rule = rules ? matchCorsRule(rules, origin, koa.method) : undefined;
  if (!rule) return;
  for (const [k, v] of Object.entries(corsResponseHeaders(rule, origin))) koa.set(k, v);
}
