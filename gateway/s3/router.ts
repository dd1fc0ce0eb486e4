// Parses an HTTP request once into the S3 operation it names (after Garage's api/s3/router.rs):
// path-style and virtual-host addressing, percent-decoded bucket and key, typed query parameters.
// Unknown subresources are the NotImplemented endpoint: answered 501 (never a misleading 404), but
// only once the request is authenticated and its bucket found, as S3 checks those first.
import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from './errors.js';
import { parseRawQuery, percentDecodeBytes } from './sigv4.js';

/** S3's own key length limit, in UTF-8 bytes. */
export const keyBytesMax = 1024;
/** Listing page bound (max-keys, max-uploads, max-parts): S3 caps at 1000 and so do we. */
export const listPageMax = 1000;
export const partNumberMin = 1;
export const partNumberMax = 10_000;

export interface RouterRequest {
  method: string;
  /** Path as on the request line (still percent-encoded), without the query. */
  rawPath: string;
  /** Raw query without the `?`. */
  rawQuery: string;
  headers: IncomingHttpHeaders;
  /** Host header value (defaults to headers.host). */
  host?: string;
}

export interface RouterOptions {
  /** Base domain for virtual-host style (`<bucket>.<domain>`); path style always works. */
  domain?: string;
}

export type Query = Record<string, string>;

export interface CopySource {
  bucket: string;
  key: string;
  versionId?: string;
}

/** `response-*` query overrides of GetObject's response headers. */
export interface ResponseOverrides {
  contentType?: string;
  contentLanguage?: string;
  expires?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
}

interface B {
  bucket: string;
  query: Query;
}
interface K extends B {
  key: string;
}

export type S3Request =
  | { op: 'ListBuckets'; query: Query }
  | ({ op: 'CreateBucket' } & B)
  | ({ op: 'HeadBucket' } & B)
  | ({ op: 'DeleteBucket' } & B)
  | ({ op: 'GetBucketLocation' } & B)
  | ({ op: 'GetBucketVersioning' } & B)
  | ({ op: 'GetBucketAcl' } & B)
  | ({ op: 'GetBucketPolicy' } & B)
  | ({ op: 'GetBucketCors' } & B)
  | ({ op: 'PutBucketCors' } & B)
  | ({ op: 'DeleteBucketCors' } & B)
  | ({ op: 'PreflightCors' } & B)
  | ({ op: 'GetBucketLifecycleConfiguration' } & B)
  | ({ op: 'GetBucketEncryption' } & B)
  | ({ op: 'GetBucketTagging' } & B)
  | ({ op: 'PutBucketTagging' } & B)
  | ({ op: 'DeleteBucketTagging' } & B)
  | ({ op: 'GetPublicAccessBlock' } & B)
  | ({ op: 'GetBucketOwnershipControls' } & B)
  | ({ op: 'GetBucketWebsite' } & B)
  | ({ op: 'GetBucketReplication' } & B)
  | ({ op: 'GetBucketNotificationConfiguration' } & B)
  | ({ op: 'GetBucketLogging' } & B)
  | ({ op: 'GetBucketAccelerateConfiguration' } & B)
  | ({ op: 'GetBucketRequestPayment' } & B)
  | ({
      op: 'ListObjects';
      prefix: string;
      delimiter?: string;
      marker: string;
      maxKeys: number;
      encodingType?: 'url';
    } & B)
  | ({
      op: 'ListObjectsV2';
      prefix: string;
      delimiter?: string;
      continuationToken?: string;
      startAfter?: string;
      maxKeys: number;
      encodingType?: 'url';
      fetchOwner: boolean;
    } & B)
  | ({
      op: 'ListObjectVersions';
      prefix: string;
      delimiter?: string;
      keyMarker: string;
      maxKeys: number;
      encodingType?: 'url';
    } & B)
  | ({
      op: 'ListMultipartUploads';
      prefix: string;
      delimiter?: string;
      keyMarker: string;
      uploadIdMarker: string;
      maxUploads: number;
      encodingType?: 'url';
    } & B)
  | ({ op: 'DeleteObjects' } & B)
  | ({ op: 'PutObject' } & K)
  | ({ op: 'CopyObject'; source: CopySource } & K)
  | ({
      op: 'GetObject';
      partNumber?: number;
      versionId?: string;
      responseOverrides: ResponseOverrides;
    } & K)
  | ({ op: 'HeadObject'; partNumber?: number; versionId?: string; responseOverrides: ResponseOverrides } & K)
  | ({ op: 'DeleteObject'; versionId?: string } & K)
  | ({ op: 'GetObjectAcl' } & K)
  | ({ op: 'GetObjectTagging'; versionId?: string } & K)
  | ({ op: 'PutObjectTagging'; versionId?: string } & K)
  | ({ op: 'DeleteObjectTagging'; versionId?: string } & K)
  | ({ op: 'GetObjectAttributes'; versionId?: string } & K)
  | ({ op: 'CreateMultipartUpload' } & K)
  | ({ op: 'UploadPart'; uploadId: string; partNumber: number } & K)
  | ({ op: 'UploadPartCopy'; uploadId: string; partNumber: number; source: CopySource } & K)
  | ({ op: 'CompleteMultipartUpload'; uploadId: string } & K)
  | ({ op: 'AbortMultipartUpload'; uploadId: string } & K)
  | ({ op: 'ListParts'; uploadId: string; maxParts: number; partNumberMarker: number } & K)
  | { op: 'NotImplemented'; bucket: string; query: Query; subresource?: string; message: string };

export type S3Operation = S3Request['op'];

/**
 * Query keys that select a sub-resource (or a feature) S3 has. A request naming one that no
 * operation below handles is answered NotImplemented.
 */
const knownSubresources = new Set([
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'delete',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'location',
  'logging',
  'metadataConfiguration',
  'metadataTable',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'renameObject',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'session',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versioning',
  'versions',
  'website',
]);

/** Splits `req.url` into the raw path and raw query. */
export function splitUrl(url: string): { rawPath: string; rawQuery: string } {
  const q = url.indexOf('?');
  return q < 0 ? { rawPath: url, rawQuery: '' } : { rawPath: url.slice(0, q), rawQuery: url.slice(q + 1) };
}

export function parseQuery(rawQuery: string): Query {
  const out: Query = {};
  // S3 reads '+' in a query as a space (form encoding); clients send a literal '+' as %2B.
  for (const [k, v] of parseRawQuery(rawQuery, true)) if (!(k in out)) out[k] = v;
  return out;
}

export function parseRequest(req: RouterRequest, opts: RouterOptions = {}): S3Request {
  const query = parseQuery(req.rawQuery);
  for (const [name, value] of Object.entries(query)) refuseNul(value, name);
  const { bucket, key } = addressOf(req, opts);
  const method = req.method.toUpperCase();
  if (bucket === undefined) {
    if (method === 'GET' || method === 'HEAD') return { op: 'ListBuckets', query };
    throw new S3Error('MethodNotAllowed');
  }
  if (key === undefined) return bucketOp(method, bucket, query);
  refuseNul(key, 'key');
  if (Buffer.byteLength(key, 'utf8') > keyBytesMax)
    throw new S3Error('KeyTooLongError', undefined, {
      extra: { Size: String(Buffer.byteLength(key, 'utf8')), MaxSizeAllowed: String(keyBytesMax) },
    });
  return objectOp(method, bucket, key, query, req.headers);
}

/**
 * U+0000 can be in no key: XML 1.0 cannot carry it in a listing, and Postgres text cannot store it.
 * A key, prefix or marker holding one is a client error, not a 500 the SDKs would retry.
 */
export function refuseNul(value: string, name: string): void {
  if (value.includes('\0'))
    throw new S3Error('InvalidArgument', `${name} must not contain the character U+0000`, {
      extra: { ArgumentName: name },
    });
}

function addressOf(req: RouterRequest, opts: RouterOptions): { bucket?: string; key?: string } {
  const path = req.rawPath.startsWith('/') ? req.rawPath.slice(1) : req.rawPath;
  const vhostBucket = virtualHostBucket(req.host ?? headerString(req.headers.host), opts.domain);
  if (vhostBucket !== undefined)
    return { bucket: vhostBucket, key: path === '' ? undefined : decodePath(path) };
  if (path === '') return {};
  const slash = path.indexOf('/');
  if (slash < 0) return { bucket: decodePath(path) };
  const key = path.slice(slash + 1);
  return { bucket: decodePath(path.slice(0, slash)), key: key === '' ? undefined : decodePath(key) };
}

/** The bucket a virtual-host request names in its Host (S3DFS_DOMAIN); SigV2 signs it (sigv2.ts). */
export function virtualHostBucket(host: string | undefined, domain: string | undefined): string | undefined {
  if (!host || !domain) return undefined;
  const h = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const d = domain.toLowerCase().replace(/^\./, '');
  if (h.length > d.length + 1 && h.endsWith(`.${d}`)) return h.slice(0, h.length - d.length - 1);
  return undefined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Percent-decodes a path part; '+' stays '+'. Malformed escapes or invalid UTF-8 → InvalidURI. */
export function decodePath(raw: string): string {
  const bytes = percentDecodeBytes(raw);
  if (bytes === undefined) throw new S3Error('InvalidURI');
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new S3Error('InvalidURI');
  }
}

function bucketOp(method: string, bucket: string, query: Query): S3Request {
  const b = { bucket, query };
  const sub = subresourceOf(query);
  switch (method) {
    case 'GET':
      switch (sub) {
        case undefined:
          return query['list-type'] !== undefined ? listV2(b) : listV1(b);
        case 'location':
          return { op: 'GetBucketLocation', ...b };
        case 'uploads':
          return listUploads(b);
        case 'versions':
          return listVersions(b);
        case 'versioning':
          return { op: 'GetBucketVersioning', ...b };
        case 'acl':
          return { op: 'GetBucketAcl', ...b };
        case 'policy':
          return { op: 'GetBucketPolicy', ...b };
        case 'cors':
          return { op: 'GetBucketCors', ...b };
        case 'lifecycle':
          return { op: 'GetBucketLifecycleConfiguration', ...b };
        case 'encryption':
          return { op: 'GetBucketEncryption', ...b };
        case 'tagging':
          return { op: 'GetBucketTagging', ...b };
        case 'publicAccessBlock':
          return { op: 'GetPublicAccessBlock', ...b };
        case 'ownershipControls':
          return { op: 'GetBucketOwnershipControls', ...b };
        case 'website':
          return { op: 'GetBucketWebsite', ...b };
        case 'replication':
          return { op: 'GetBucketReplication', ...b };
        case 'notification':
          return { op: 'GetBucketNotificationConfiguration', ...b };
        case 'logging':
          return { op: 'GetBucketLogging', ...b };
        case 'accelerate':
          return { op: 'GetBucketAccelerateConfiguration', ...b };
        case 'requestPayment':
          return { op: 'GetBucketRequestPayment', ...b };
      }
      break;
    case 'HEAD':
      if (sub === undefined) return { op: 'HeadBucket', ...b };
      break;
    case 'PUT':
      if (sub === undefined) {
        validateBucketName(bucket);
        return { op: 'CreateBucket', ...b };
      }
      if (sub === 'cors') return { op: 'PutBucketCors', ...b };
      if (sub === 'tagging') return { op: 'PutBucketTagging', ...b };
      break;
    case 'DELETE':
      if (sub === undefined) return { op: 'DeleteBucket', ...b };
      if (sub === 'cors') return { op: 'DeleteBucketCors', ...b };
      if (sub === 'tagging') return { op: 'DeleteBucketTagging', ...b };
      break;
    case 'OPTIONS':
      return { op: 'PreflightCors', ...b };
    case 'POST':
      if (sub === 'delete') return { op: 'DeleteObjects', ...b };
      break;
    default:
      throw new S3Error('MethodNotAllowed');
  }
  return notImplemented(method, b, sub);
}

function objectOp(
  method: string,
  bucket: string,
  key: string,
  query: Query,
  headers: IncomingHttpHeaders,
): S3Request {
  const k = { bucket, key, query };
  const sub = subresourceOf(query);
  const copy = headerString(headers['x-amz-copy-source']);
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (sub === undefined) {
        const common = {
          partNumber: optionalPartNumber(query.partNumber),
          versionId: query.versionId,
          responseOverrides: responseOverrides(query),
        };
        return method === 'GET'
          ? { op: 'GetObject', ...k, ...common }
          : { op: 'HeadObject', ...k, ...common };
      }
      if (method === 'GET' && sub === 'uploadId')
        return {
          op: 'ListParts',
          ...k,
          uploadId: query.uploadId,
          maxParts: pageSize(query['max-parts'], 'max-parts'),
          partNumberMarker: nonNegative(query['part-number-marker'], 'part-number-marker'),
        };
      if (method === 'GET' && sub === 'acl') return { op: 'GetObjectAcl', ...k };
      if (method === 'GET' && sub === 'tagging')
        return { op: 'GetObjectTagging', ...k, versionId: query.versionId };
      if (method === 'GET' && sub === 'attributes')
        return { op: 'GetObjectAttributes', ...k, versionId: query.versionId };
      break;
    case 'PUT':
      if (sub === 'uploadId') {
        const partNumber = requiredPartNumber(query.partNumber);
        if (copy !== undefined)
          return {
            op: 'UploadPartCopy',
            ...k,
            uploadId: query.uploadId,
            partNumber,
            source: parseCopySource(copy),
          };
        return { op: 'UploadPart', ...k, uploadId: query.uploadId, partNumber };
      }
      if (sub === undefined) {
        if (copy !== undefined) return { op: 'CopyObject', ...k, source: parseCopySource(copy) };
        return { op: 'PutObject', ...k };
      }
      if (sub === 'tagging') return { op: 'PutObjectTagging', ...k, versionId: query.versionId };
      break;
    case 'DELETE':
      if (sub === 'uploadId') return { op: 'AbortMultipartUpload', ...k, uploadId: query.uploadId };
      if (sub === 'tagging') return { op: 'DeleteObjectTagging', ...k, versionId: query.versionId };
      if (sub === undefined) return { op: 'DeleteObject', ...k, versionId: query.versionId };
      break;
    case 'OPTIONS':
      // A preflight names the object it is for, but is answered by the bucket's rules.
      return { op: 'PreflightCors', bucket, query };
    case 'POST':
      if (sub === 'uploads') return { op: 'CreateMultipartUpload', ...k };
      if (sub === 'uploadId') return { op: 'CompleteMultipartUpload', ...k, uploadId: query.uploadId };
      break;
    default:
      throw new S3Error('MethodNotAllowed');
  }
  return notImplemented(method, k, sub);
}

/** The one subresource a request names; several together (e.g. ?uploadId&tagging) name none we have. */
function subresourceOf(query: Query): string | undefined {
  const subs = Object.keys(query).filter((q) => knownSubresources.has(q));
  if (subs.length === 0) return undefined;
  if (subs.length === 1) return subs[0];
  return subs.sort().join('&');
}

function notImplemented(method: string, b: B, sub: string | undefined): S3Request {
  return {
    op: 'NotImplemented',
    bucket: b.bucket,
    query: b.query,
    subresource: sub,
    message:
      sub === undefined
        ? `${method} on this resource is not implemented.`
        : `${method} ?${sub} is not implemented by this server.`,
  };
}

function listV1(b: B): S3Request {
  const q = b.query;
  return {
    op: 'ListObjects',
    ...b,
    prefix: q.prefix ?? '',
    delimiter: emptyToUndefined(q.delimiter),
    marker: q.marker ?? '',
    maxKeys: pageSize(q['max-keys'], 'max-keys'),
    encodingType: encodingType(q['encoding-type']),
  };
}

/** Buckets are never versioned: each key's one version is `null`, the only version-id-marker. */
function listVersions(b: B): S3Request {
  const q = b.query;
  const versionMarker = q['version-id-marker'];
  if (versionMarker !== undefined && versionMarker !== '') {
    if (!q['key-marker'])
      throw new S3Error('InvalidArgument', 'A version-id marker cannot be specified without a key marker.', {
        extra: { ArgumentName: 'version-id-marker', ArgumentValue: versionMarker },
      });
    if (versionMarker !== 'null')
      throw new S3Error('InvalidArgument', 'Invalid version id specified', {
        extra: { ArgumentName: 'version-id-marker', ArgumentValue: versionMarker },
      });
  }
  return {
    op: 'ListObjectVersions',
    ...b,
    prefix: q.prefix ?? '',
    delimiter: emptyToUndefined(q.delimiter),
    keyMarker: q['key-marker'] ?? '',
    maxKeys: pageSize(q['max-keys'], 'max-keys'),
    encodingType: encodingType(q['encoding-type']),
  };
}

function listV2(b: B): S3Request {
  const q = b.query;
  if (q['list-type'] !== '2')
    throw new S3Error('InvalidArgument', 'Invalid List Type specified in Request', {
      extra: { ArgumentName: 'list-type', ArgumentValue: q['list-type'] },
    });
  // An empty token is a listing from the start, as S3 (and SDK paginators' first pages) have it.
  const token = emptyToUndefined(q['continuation-token']);
  return {
    op: 'ListObjectsV2',
    ...b,
    prefix: q.prefix ?? '',
    delimiter: emptyToUndefined(q.delimiter),
    continuationToken: token,
    startAfter: emptyToUndefined(q['start-after']),
    maxKeys: pageSize(q['max-keys'], 'max-keys'),
    encodingType: encodingType(q['encoding-type']),
    fetchOwner: q['fetch-owner']?.toLowerCase() === 'true',
  };
}

function listUploads(b: B): S3Request {
  const q = b.query;
  return {
    op: 'ListMultipartUploads',
    ...b,
    prefix: q.prefix ?? '',
    delimiter: emptyToUndefined(q.delimiter),
    keyMarker: q['key-marker'] ?? '',
    uploadIdMarker: q['upload-id-marker'] ?? '',
    maxUploads: pageSize(q['max-uploads'], 'max-uploads'),
    encodingType: encodingType(q['encoding-type']),
  };
}

function emptyToUndefined(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function encodingType(v: string | undefined): 'url' | undefined {
  if (v === undefined || v === '') return undefined;
  if (v.toLowerCase() === 'url') return 'url';
  throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', {
    extra: { ArgumentName: 'encoding-type', ArgumentValue: v },
  });
}

/** max-keys & co: a non-negative integer, capped at listPageMax; absent → listPageMax. */
export function pageSize(v: string | undefined, name: string): number {
  if (v === undefined || v === '') return listPageMax;
  const n = nonNegative(v, name);
  return Math.min(n, listPageMax);
}

function nonNegative(v: string | undefined, name: string): number {
  if (v === undefined || v === '') return 0;
  if (!/^\d{1,15}$/.test(v.trim()))
    throw new S3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`, {
      extra: { ArgumentName: name, ArgumentValue: v },
    });
  return Number(v.trim());
}

function requiredPartNumber(v: string | undefined): number {
  const n = optionalPartNumber(v ?? '');
  if (n === undefined) throw partNumberError(v ?? '');
  return n;
}

function optionalPartNumber(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,5}$/.test(v)) throw partNumberError(v);
  const n = Number(v);
  if (n < partNumberMin || n > partNumberMax) throw partNumberError(v);
  return n;
}

function partNumberError(v: string): S3Error {
  return new S3Error(
    'InvalidArgument',
    `Part number must be an integer between ${partNumberMin} and ${partNumberMax}, inclusive`,
    { extra: { ArgumentName: 'partNumber', ArgumentValue: v } },
  );
}

function responseOverrides(q: Query): ResponseOverrides {
  const o: ResponseOverrides = {};
  if (q['response-content-type'] !== undefined) o.contentType = q['response-content-type'];
  if (q['response-content-language'] !== undefined) o.contentLanguage = q['response-content-language'];
  if (q['response-expires'] !== undefined) o.expires = q['response-expires'];
  if (q['response-cache-control'] !== undefined) o.cacheControl = q['response-cache-control'];
  if (q['response-content-disposition'] !== undefined)
    o.contentDisposition = q['response-content-disposition'];
  if (q['response-content-encoding'] !== undefined) o.contentEncoding = q['response-content-encoding'];
  return o;
}

/**
 * x-amz-copy-source: `[/]bucket/key[?versionId=v]`, URL-encoded (S3-PITFALLS 12). The `?` is
 * searched before decoding, so a key containing an encoded `%3F` stays intact.
 */
export function parseCopySource(header: string): CopySource {
  const raw = header.trim();
  const q = raw.indexOf('?');
  const pathPart = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? {} : parseQuery(raw.slice(q + 1));
  const path = decodeCopyPath(pathPart.startsWith('/') ? pathPart.slice(1) : pathPart);
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1)
    throw new S3Error(
      'InvalidArgument',
      'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      {
        extra: { ArgumentName: 'x-amz-copy-source', ArgumentValue: header },
      },
    );
  const key = path.slice(slash + 1);
  refuseNul(key, 'x-amz-copy-source');
  if (Buffer.byteLength(key, 'utf8') > keyBytesMax) throw new S3Error('KeyTooLongError');
  const source: CopySource = { bucket: path.slice(0, slash), key };
  const versionId = (query as Query).versionId;
  if (versionId !== undefined) source.versionId = versionId;
  return source;
}

function decodeCopyPath(s: string): string {
  try {
    return decodePath(s);
  } catch {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding', {
      extra: { ArgumentName: 'x-amz-copy-source', ArgumentValue: s },
    });
  }
}

/**
 * Bucket naming rules for CreateBucket (general purpose buckets):
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
 */
export function validateBucketName(name: string): void {
  const problem = bucketNameProblem(name);
  if (problem)
    throw new S3Error('InvalidBucketName', `The specified bucket is not valid: ${problem}`, {
      extra: { BucketName: name },
    });
}

export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'a bucket name must be 3 to 63 characters long';
  if (!/^[a-z0-9.-]+$/.test(name)) return 'only lowercase letters, digits, dots and hyphens are allowed';
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name))
    return 'it must begin and end with a letter or digit';
  if (name.includes('..')) return 'it must not contain two adjacent dots';
  if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)) return 'it must not be formatted as an IP address';
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name)) return 'it must not start with a reserved prefix';
  if (/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name))
    return 'it must not end with a reserved suffix';
  return undefined;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
