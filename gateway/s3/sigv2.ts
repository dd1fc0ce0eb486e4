// AWS Signature Version 2, for the clients that still use it: the AWS CLI v1 and boto2 presign with
// it unless told otherwise, and `s3cmd signurl` always does. Header form `Authorization: AWS
// AccessKey:Signature` and presigned form `?AWSAccessKeyId=&Expires=&Signature=`. The signature is
// base64 HMAC-SHA1 over the method, Content-MD5, Content-Type, the date (Expires when presigned),
// the x-amz-* headers and the resource with its signed subresources; it covers no body but through
// Content-MD5 (which the body is checked against). SigV4 stays the default everywhere.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from './errors.js';
import { virtualHostBucket } from './router.js';
import { type AuthRequest, type AuthResult, headerValue as header, lenientDecode } from './sigv4.js';

/** Subresources and overrides that are part of the resource signed (S3's list, as botocore's). */
const signedSubresources = new Set([
  'accelerate',
  'acl',
  'analytics',
  'cors',
  'delete',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'location',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'partNumber',
  'policy',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'restore',
  'retention',
  'select',
  'select-type',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
]);

export interface V2Options {
  lookupSecret(accessKey: string): Promise<string | undefined>;
  /** S3DFS_DOMAIN: a virtual-host request's bucket is part of the resource signed. */
  domain?: string;
  now: Date;
  maxClockSkewMs: number;
}

/** A header-signed request (`Authorization: AWS …`). */
export async function authenticateV2Header(
  req: AuthRequest,
  authz: string,
  query: [string, string][],
  opts: V2Options,
): Promise<AuthResult> {
  const m = /^AWS ([^:\s]+):(\S+)$/.exec(authz);
  if (!m)
    throw new S3Error(
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; expected AWS AccessKey:Signature',
    );
  const [, accessKey, signature] = m;
  const amzDate = header(req.headers, 'x-amz-date');
  const raw = amzDate ?? header(req.headers, 'date');
  const t = raw === undefined ? Number.NaN : Date.parse(raw);
  if (Number.isNaN(t))
    throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  if (Math.abs(t - opts.now.getTime()) > opts.maxClockSkewMs)
    throw new S3Error('RequestTimeTooSkewed', undefined, {
      extra: { RequestTime: raw!, MaxAllowedSkewMilliseconds: String(opts.maxClockSkewMs) },
    });
  // With x-amz-date the Date line is empty: the date is signed among the x-amz-* headers.
  const date = amzDate !== undefined ? '' : raw!;
  return verifyV2(req, query, { accessKey, signature, date, kind: 'header' }, opts);
}

/** A presigned request (`?AWSAccessKeyId=…&Expires=…&Signature=…`). */
export async function authenticateV2Query(
  req: AuthRequest,
  query: [string, string][],
  opts: V2Options,
): Promise<AuthResult> {
  const get = (k: string) => query.find(([name]) => name === k)?.[1];
  const accessKey = get('AWSAccessKeyId') ?? '';
  const signature = get('Signature') ?? '';
  const expires = get('Expires');
  if (expires === undefined || !/^\d{1,12}$/.test(expires))
    throw new S3Error(
      'AccessDenied',
      'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters',
    );
  if (Number(expires) * 1000 < opts.now.getTime())
    throw new S3Error('AccessDenied', 'Request has expired', {
      extra: { Expires: new Date(Number(expires) * 1000).toISOString(), ServerTime: opts.now.toISOString() },
    });
  return verifyV2(req, query, { accessKey, signature, date: expires, kind: 'presigned' }, opts);
}

async function verifyV2(
  req: AuthRequest,
  query: [string, string][],
  auth: { accessKey: string; signature: string; date: string; kind: 'header' | 'presigned' },
  opts: V2Options,
): Promise<AuthResult> {
  const secret = await opts.lookupSecret(auth.accessKey);
  if (secret === undefined)
    throw new S3Error('InvalidAccessKeyId', undefined, { extra: { AWSAccessKeyId: auth.accessKey } });
  const h = req.headers;
  const head = [
    req.method.toUpperCase(),
    header(h, 'content-md5') ?? '',
    header(h, 'content-type') ?? '',
    auth.date,
  ];
  const amz = amzHeaders(h);
  let first: string | undefined;
  for (const resource of resourceCandidates(req, query, opts.domain)) {
    const stringToSign = `${head.join('\n')}\n${amz}${resource}`;
    first ??= stringToSign;
    const expected = createHmac('sha1', secret).update(stringToSign, 'utf8').digest();
    const provided = Buffer.from(auth.signature, 'base64');
    if (provided.length === expected.length && timingSafeEqual(provided, expected)) {
      return {
        accessKey: auth.accessKey,
        kind: auth.kind,
        region: 'us-east-1',
        payload: { mode: 'unsigned' },
      };
    }
  }
  throw new S3Error('SignatureDoesNotMatch', undefined, {
    extra: { AWSAccessKeyId: auth.accessKey, StringToSign: first ?? '', SignatureProvided: auth.signature },
  });
}

/** x-amz-* headers, lower-cased, sorted, values trimmed and repeats joined with ',', one per line. */
function amzHeaders(h: IncomingHttpHeaders): string {
  return Object.keys(h)
    .filter((name) => name.startsWith('x-amz-'))
    .sort()
    .map((name) => {
      const v = h[name];
      const values = (Array.isArray(v) ? v : [v ?? '']).map((x) => x.trim().replace(/\s+/g, ' '));
      return `${name}:${values.join(',')}\n`;
    })
    .join('');
}

/**
 * The resource as signed: the bucket of a virtual-host request, the path as sent, and the signed
 * subresources sorted by name. Signers differ on whether subresource values are signed decoded or
 * as sent; both readings of the same request are tried.
 */
function resourceCandidates(
  req: AuthRequest,
  query: [string, string][],
  domain: string | undefined,
): string[] {
  // The router's reading of the Host, exactly: a signature must cover the bucket that is served.
  const bucket = virtualHostBucket(header(req.headers, 'host'), domain);
  const path = `${bucket !== undefined ? `/${bucket}` : ''}${req.rawPath === '' ? '/' : req.rawPath}`;
  const rawPairs =
    req.rawQuery === '' ? [] : req.rawQuery.split('&').map((p) => p.split('=', 2) as [string, string?]);
  const signed = (pairs: [string, string | undefined][]) => {
    const kept = pairs
      .filter(([k]) => signedSubresources.has(k))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (kept.length === 0) return path;
    return `${path}?${kept.map(([k, v]) => (v === undefined || v === '' ? k : `${k}=${v}`)).join('&')}`;
  };
  const decoded = signed(query.map(([k, v]) => [k, v]));
  const asSent = signed(rawPairs.map(([k, v]) => [lenientDecode(k, false), v]));
  return decoded === asSent ? [decoded] : [decoded, asSent];
}
