import { NoSuchBucket, NoSuchKey } from '../../lib/errors.js';
import { S3Error } from '../s3/errors.js';
import type { ObjectRow } from '../storage/meta.js';
import { checkConditions } from './conditions.js';
import { header, quote, type RequestCtx } from './context.js';

// GetObject and HeadObject: conditions, ranges, parts, and the headers S3 clients compare.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html

export async function getObject(
  r: RequestCtx,
  bucket: string,
  key: string,
  withBody: boolean,
): Promise<void> {
  const obj = await r.gw.meta.getObject(bucket, key, withBody);
  if (!obj) {
    if (!(await r.gw.meta.getBucket(bucket))) throw new NoSuchBucket(bucket);
    throw new NoSuchKey(key);
  }
  checkConditions(r, obj);
  const { start, end, status, partial } = await selectRange(r, obj);
  const k = r.koa;
  setObjectHeaders(r, obj);
  k.status = status;
  k.set('Content-Length', String(end - start + 1));
  if (status === 206) k.set('Content-Range', `bytes ${start}-${end}/${obj.size}`);
  if (!partial && r.headers['x-amz-checksum-mode']?.toString().toUpperCase() === 'ENABLED')
    setChecksumHeaders(r, obj);
  // HEAD: Koa sends the headers alone. An empty body must be an empty buffer, not null (→ 204).
  if (!withBody) return;
  k.body = await r.gw.store.openRange(obj, start, end, r.log);
}

interface Selected {
  start: number;
  end: number;
  status: 200 | 206;
  partial: boolean;
}

async function selectRange(r: RequestCtx, obj: ObjectRow): Promise<Selected> {
  const partParam = r.query.partNumber ?? null;
  const rangeHeader = header(r.headers, 'range');
  if (partParam !== null) {
    const part = Number(partParam);
    if (!Number.isInteger(part) || part < 1 || part > 10000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', {
        extra: { ArgumentName: 'partNumber', ArgumentValue: partParam },
      });
    }
    if (rangeHeader)
      throw new S3Error('InvalidRequest', 'Cannot specify both Range header and partNumber query parameter');
    r.koa.set('x-amz-mp-parts-count', String(obj.partsCount ?? 1));
    if (!obj.partsCount) {
      if (part > 1) throw new S3Error('InvalidPartNumber');
      return { start: 0, end: obj.size - 1, status: 206, partial: false };
    }
    // Parts keep the numbers they were uploaded under, gaps included (1, 3, 5 is three parts).
    const range = await r.gw.meta.partRange(obj.id, part);
    if (!range) throw new S3Error('InvalidPartNumber');
    return { ...range, status: 206, partial: true };
  }
  const range = rangeHeader ? parseRange(rangeHeader, obj.size) : undefined;
  if (range === 'unsatisfiable') {
    throw new S3Error('InvalidRange', undefined, {
      extra: { RangeRequested: rangeHeader!, ActualObjectSize: String(obj.size) },
      headers: { 'content-range': `bytes */${obj.size}` },
    });
  }
  if (range) return { ...range, status: 206, partial: true };
  return { start: 0, end: obj.size - 1, status: 200, partial: false };
}

/** A single `bytes=` range; anything S3 would ignore (multiple ranges, junk) means the whole object. */
export function parseRange(
  v: string,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(v.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

const responseOverrides: [string, string][] = [
  ['response-content-type', 'Content-Type'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-content-encoding', 'Content-Encoding'],
];

export function setObjectHeaders(r: RequestCtx, obj: ObjectRow): void {
  const k = r.koa;
  k.set('ETag', quote(obj.etag));
  k.set('Last-Modified', obj.lastModified.toUTCString());
  k.set('Accept-Ranges', 'bytes');
  // Set directly: Koa's `type` setter would append a charset; S3 returns exactly what was stored.
  k.set('Content-Type', obj.contentType ?? 'binary/octet-stream');
  if (obj.contentEncoding) k.set('Content-Encoding', obj.contentEncoding);
  if (obj.contentDisposition) k.set('Content-Disposition', obj.contentDisposition);
  if (obj.contentLanguage) k.set('Content-Language', obj.contentLanguage);
  if (obj.cacheControl) k.set('Cache-Control', obj.cacheControl);
  if (obj.expires) k.set('Expires', obj.expires);
  for (const [name, value] of Object.entries(obj.userMeta)) k.set(`x-amz-meta-${name}`, value);
  const tagCount = Object.keys(obj.tags ?? {}).length;
  if (tagCount > 0) k.set('x-amz-tagging-count', String(tagCount));
  for (const [param, name] of responseOverrides) {
    const v = r.query[param];
    if (v !== undefined) k.set(name, v);
  }
}

function setChecksumHeaders(r: RequestCtx, obj: ObjectRow): void {
  if (!obj.checksumAlgorithm || !obj.checksumValue) return;
  r.koa.set(`x-amz-checksum-${obj.checksumAlgorithm.toLowerCase()}`, obj.checksumValue);
  if (obj.checksumType) r.koa.set('x-amz-checksum-type', obj.checksumType);
}
