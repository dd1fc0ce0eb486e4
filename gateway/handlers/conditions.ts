import { NoSuchBucket, NoSuchKey, PreconditionFailed } from '../../lib/errors.js';
import { S3Error } from '../s3/errors.js';
import { etagMatches, type ObjectRow, type WriteConditions } from '../storage/meta.js';
import { currentVersionOnly, header, quote, type RequestCtx } from './context.js';

// Conditional requests as S3 applies them: If-* on GET and HEAD (RFC 7232 precedence), If-Match
// and If-None-Match on writes, x-amz-copy-source-if-* on a copy's source.

/** RFC 7232 precedence, as S3 applies it. */
export function checkConditions(r: RequestCtx, obj: ObjectRow): void {
  const ifMatch = header(r.headers, 'if-match');
  const ifNoneMatch = header(r.headers, 'if-none-match');
  const ifModifiedSince = parseHttpDate(header(r.headers, 'if-modified-since'));
  const ifUnmodifiedSince = parseHttpDate(header(r.headers, 'if-unmodified-since'));
  const modified = Math.floor(obj.lastModified.getTime() / 1000) * 1000;
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, obj.etag)) throw new S3Error('PreconditionFailed');
  } else if (ifUnmodifiedSince !== undefined && modified > ifUnmodifiedSince) {
    throw new S3Error('PreconditionFailed');
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, obj.etag)) throw notModified(obj);
  } else if (ifModifiedSince !== undefined && modified <= ifModifiedSince) {
    throw notModified(obj);
  }
}

function notModified(obj: ObjectRow): S3Error {
  return new S3Error('NotModified', undefined, {
    headers: { etag: quote(obj.etag), 'last-modified': obj.lastModified.toUTCString() },
  });
}

export function parseHttpDate(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** If-None-Match: * and If-Match on writes (conditional PUT, atomic in the commit transaction). */
export function writeConditions(r: RequestCtx): WriteConditions {
  const ifNoneMatch = header(r.headers, 'if-none-match');
  const ifMatch = header(r.headers, 'if-match');
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw new S3Error('NotImplemented', 'If-None-Match on writes supports only *.');
  }
  return { ifNoneMatch: ifNoneMatch !== undefined, ifMatch };
}

/** The source object of a copy, after x-amz-copy-source-if-* conditions. */
export async function copySource(
  r: RequestCtx,
  source: { bucket: string; key: string; versionId?: string },
): Promise<ObjectRow> {
  currentVersionOnly(source.versionId);
  const src = await r.gw.meta.getObject(source.bucket, source.key, true);
  if (!src) {
    if (!(await r.gw.meta.getBucket(source.bucket))) throw new NoSuchBucket(source.bucket);
    throw new NoSuchKey(source.key);
  }
  const h = r.headers;
  const ifMatch = header(h, 'x-amz-copy-source-if-match');
  const ifNoneMatch = header(h, 'x-amz-copy-source-if-none-match');
  const ifModifiedSince = parseHttpDate(header(h, 'x-amz-copy-source-if-modified-since'));
  const ifUnmodifiedSince = parseHttpDate(header(h, 'x-amz-copy-source-if-unmodified-since'));
  const modified = Math.floor(src.lastModified.getTime() / 1000) * 1000;
  // S3's documented precedence: if-match true + if-unmodified-since false → copy;
  // if-none-match false + if-modified-since true → 412.
  if (
    ifMatch !== undefined
      ? !etagMatches(ifMatch, src.etag)
      : ifUnmodifiedSince !== undefined && modified > ifUnmodifiedSince
  ) {
    throw new PreconditionFailed('x-amz-copy-source-If-Match');
  }
  if (
    ifNoneMatch !== undefined
      ? etagMatches(ifNoneMatch, src.etag)
      : ifModifiedSince !== undefined && modified <= ifModifiedSince
  ) {
    throw new PreconditionFailed('x-amz-copy-source-If-None-Match');
  }
  return src;
}
