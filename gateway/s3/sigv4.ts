// Server-side AWS Signature Version 4 verification (header and presigned query forms), agreeing
// byte for byte with @smithy/signature-v4 and the other real signers (botocore, aws-sdk-go, minio-js).
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { S3Error } from './errors.js';
import { authenticateV2Header, authenticateV2Query } from './sigv2.js';

export const algorithm = 'AWS4-HMAC-SHA256';
export const emptySha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** S3's own limit on clock skew between client and server (RequestTimeTooSkewed beyond it). */
export const maxClockSkewMs = 15 * 60 * 1000;
/** A presigned URL lives at most 7 days; AWS rejects a longer X-Amz-Expires. */
export const presignExpiresMaxSeconds = 604_800;
/** Signing keys cached per access key/date/region; a few hundred covers many clients for a day. */
export const signingKeyCacheMax = 256;
/** Authorization header size bound: a real one is ~250 bytes; this leaves room for many signed headers. */
export const authorizationHeaderBytesMax = 8192;

export type PayloadMode =
  | 'unsigned'
  | 'sha256'
  | 'streaming-signed'
  | 'streaming-signed-trailer'
  | 'streaming-unsigned-trailer';

/** What the aws-chunked decoder needs to verify chunk and trailer signatures. */
export interface SigningContext {
  signingKey: Buffer;
  /** `yyyymmdd/region/s3/aws4_request` */
  scope: string;
  /** ISO 8601 basic `yyyymmddThhmmssZ`, as in the string to sign. */
  datetime: string;
  /** The request's own signature, which seeds the chunk-signature chain. */
  seedSignature: string;
}

export interface AuthResult {
  accessKey: string;
  kind: 'header' | 'presigned';
  region: string;
  payload: { mode: PayloadMode; sha256?: string };
  /** SigV4 only: what aws-chunked chunk signatures chain from (SigV2 signs no payload). */
  signing?: SigningContext;
}

export interface AuthRequest {
  method: string;
  /** Path exactly as on the request line, still percent-encoded, without the query. */
  rawPath: string;
  /** Query string exactly as sent, without the leading `?` ('' when none). */
  rawQuery: string;
  headers: IncomingHttpHeaders;
  /** Node's `req.rawHeaders`: lets repeated headers be joined with ',' exactly as signers do. */
  rawHeaders?: string[];
}

export interface AuthOptions {
  lookupSecret(accessKey: string): Promise<string | undefined>;
  /** When set, a signature scoped to another region is refused with a message naming this one. */
  region?: string;
  /** S3DFS_DOMAIN, for SigV2's resource of a virtual-host request. */
  domain?: string;
  now?: Date;
}

const payloadModes: Record<string, PayloadMode> = {
  'UNSIGNED-PAYLOAD': 'unsigned',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD': 'streaming-signed',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER': 'streaming-signed-trailer',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER': 'streaming-unsigned-trailer',
};

/** Verifies the request's signature; throws an S3Error saying why when it does not hold. */
export async function authenticate(req: AuthRequest, opts: AuthOptions): Promise<AuthResult> {
  const query = parseRawQuery(req.rawQuery);
  const authz = headerValue(req.headers, 'authorization');
  const presigned = query.some(([k]) => k === 'X-Amz-Algorithm' || k === 'X-Amz-Credential');
  const v2Query = query.some(([k]) => k === 'AWSAccessKeyId') && query.some(([k]) => k === 'Signature');
  if (authz !== undefined && (presigned || v2Query))
    throw new S3Error(
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
    );
  const v2 = {
    lookupSecret: opts.lookupSecret,
    domain: opts.domain,
    now: opts.now ?? new Date(),
    maxClockSkewMs,
  };
  if (authz !== undefined) {
    if (/^AWS /.test(authz)) return authenticateV2Header(req, authz, query, v2);
    return verify(req, opts, parseAuthorizationHeader(authz), query);
  }
  if (presigned) return verify(req, opts, parsePresignQuery(query, opts.now ?? new Date()), query);
  if (v2Query) return authenticateV2Query(req, query, v2);
  throw new S3Error(
    'AccessDenied',
    'Access Denied: the request carries no credentials (anonymous access is disabled)',
  );
}

function unsupportedMechanism(): S3Error {
  return new S3Error(
    'InvalidRequest',
    'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
  );
}

interface ParsedAuth {
  kind: 'header' | 'presigned';
  accessKey: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  /** Presigned only: the X-Amz-Date value. */
  datetime?: string;
  expiresSeconds?: number;
}

function malformed(kind: 'header' | 'presigned', message: string, extra?: Record<string, string>): S3Error {
  return kind === 'header'
    ? new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${message}`, {
        extra,
      })
    : new S3Error('AuthorizationQueryParametersError', message, { extra });
}

function parseAuthorizationHeader(value: string): ParsedAuth {
  if (value.length > authorizationHeaderBytesMax)
    throw malformed('header', 'the Authorization header is too long.');
  const space = value.indexOf(' ');
  const alg = space < 0 ? value : value.slice(0, space);
  if (alg !== algorithm) {
    if (alg === 'AWS4-ECDSA-P256-SHA256')
      throw new S3Error('NotImplemented', 'SigV4a signing is not supported.');
    throw unsupportedMechanism();
  }
  const fields = new Map<string, string>();
  for (const part of value.slice(space + 1).split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) throw malformed('header', `the part '${p}' is not of the form key=value.`);
    fields.set(p.slice(0, eq).trim(), p.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined)
    throw malformed('header', 'it must contain Credential, SignedHeaders and Signature.');
  return {
    kind: 'header',
    ...parseCredential('header', credential),
    ...parseSigned('header', signedHeaders),
    signature,
  };
}

function parseCredential(kind: 'header' | 'presigned', credential: string) {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[0] === '' || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]))
    throw malformed(
      kind,
      `the Credential '${credential}' is not of the form <key>/<yyyymmdd>/<region>/s3/aws4_request.`,
    );
  return { accessKey: parts[0], date: parts[1], region: parts[2], service: parts[3] };
}

function parseSigned(kind: 'header' | 'presigned', list: string) {
  const signedHeaders = list.split(';');
  if (signedHeaders.some((h) => h === '' || h !== h.toLowerCase()))
    throw malformed(kind, `SignedHeaders '${list}' must be a ';'-separated list of lowercase header names.`);
  return { signedHeaders };
}

function parsePresignQuery(query: [string, string][], now: Date): ParsedAuth {
  const get = (name: string) => query.find(([k]) => k === name)?.[1];
  const alg = get('X-Amz-Algorithm');
  const credential = get('X-Amz-Credential');
  const datetime = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  const signedHeaders = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  if (
    alg === undefined ||
    credential === undefined ||
    datetime === undefined ||
    expires === undefined ||
    signedHeaders === undefined ||
    signature === undefined
  )
    throw malformed(
      'presigned',
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  if (alg !== algorithm)
    throw malformed('presigned', `X-Amz-Algorithm only supports "${algorithm}"`, { 'X-Amz-Algorithm': alg });
  // A negative lifetime (botocore's ExpiresIn=-N) is a URL that expired before it was made: 403
  // below, like any expired one, not a malformed query.
  if (!/^-?\d+$/.test(expires) || Number(expires) > presignExpiresMaxSeconds)
    throw malformed(
      'presigned',
      `X-Amz-Expires must be a number of seconds less than a week (${presignExpiresMaxSeconds})`,
    );
  const expiresSeconds = Number(expires);
  const t = parseAmzDate(datetime);
  if (t === undefined)
    throw malformed('presigned', `X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  if (t.getTime() - now.getTime() > maxClockSkewMs)
    throw new S3Error('AccessDenied', 'Request is not valid yet');
  if (now.getTime() > t.getTime() + expiresSeconds * 1000)
    throw new S3Error('AccessDenied', 'Request has expired', {
      extra: {
        'X-Amz-Expires': expires,
        Expires: isoSeconds(new Date(t.getTime() + expiresSeconds * 1000)),
        ServerTime: isoSeconds(now),
      },
    });
  return {
    kind: 'presigned',
    ...parseCredential('presigned', credential),
    ...parseSigned('presigned', signedHeaders),
    signature,
    datetime,
    expiresSeconds,
  };
}

async function verify(
  req: AuthRequest,
  opts: AuthOptions,
  auth: ParsedAuth,
  query: [string, string][],
): Promise<AuthResult> {
  const now = opts.now ?? new Date();
  if (auth.service !== 's3')
    throw malformed(auth.kind, `incorrect service '${auth.service}'. This endpoint belongs to 's3'.`);
  if (opts.region !== undefined && auth.region !== opts.region)
    throw malformed(auth.kind, `the region '${auth.region}' is wrong; expecting '${opts.region}'`, {
      Region: opts.region,
    });
  if (!auth.signedHeaders.includes('host'))
    throw new S3Error('AccessDenied', 'There were headers present in the request which were not signed', {
      extra: { HeadersNotSigned: 'host' },
    });

  const datetime = auth.kind === 'presigned' ? (auth.datetime as string) : headerDatetime(req.headers, now);
  if (datetime.slice(0, 8) !== auth.date)
    throw malformed(
      auth.kind,
      `Invalid credential date '${auth.date}'. Date is not the same as X-Amz-Date '${datetime}'.`,
    );

  const payload = payloadOf(req.headers, auth.kind, query);
  const secret = await opts.lookupSecret(auth.accessKey);
  if (secret === undefined)
    throw new S3Error('InvalidAccessKeyId', undefined, { extra: { AWSAccessKeyId: auth.accessKey } });

  const scope = `${auth.date}/${auth.region}/s3/aws4_request`;
  const signingKey = signingKeyFor(secret, auth.accessKey, auth.date, auth.region);
  const headersPart = canonicalHeaders(req, auth.signedHeaders);
  const hashed = payload.hashedPayload;

  // Signers differ in how they put the path and query on the wire (raw vs. re-encoded, '+' in
  // queries); every candidate below is a faithful reading of the same request, so accepting a match
  // on any of them is as strict as S3 and more tolerant of clients.
  let first: { canonical: string; stringToSign: string } | undefined;
  for (const path of canonicalPathCandidates(req.rawPath)) {
    for (const q of canonicalQueryCandidates(req.rawQuery, auth.kind === 'presigned')) {
      const canonical = [
        req.method.toUpperCase(),
        path,
        q,
        headersPart,
        auth.signedHeaders.join(';'),
        hashed,
      ].join('\n');
      const stringToSign = [algorithm, datetime, scope, sha256Hex(canonical)].join('\n');
      first ??= { canonical, stringToSign };
      if (signaturesEqual(hmacHex(signingKey, stringToSign), auth.signature)) {
        return {
          accessKey: auth.accessKey,
          kind: auth.kind,
          region: auth.region,
          payload: { mode: payload.mode, ...(payload.sha256 ? { sha256: payload.sha256 } : {}) },
          signing: { signingKey, scope, datetime, seedSignature: auth.signature.toLowerCase() },
        };
      }
    }
  }
  throw new S3Error('SignatureDoesNotMatch', undefined, {
    extra: {
      AWSAccessKeyId: auth.accessKey,
      StringToSign: first?.stringToSign ?? '',
      SignatureProvided: auth.signature,
      CanonicalRequest: first?.canonical ?? '',
    },
  });
}

/** The request time for header auth: X-Amz-Date, else Date; checked against the 15-minute window. */
function headerDatetime(headers: IncomingHttpHeaders, now: Date): string {
  const amz = headerValue(headers, 'x-amz-date');
  const raw = amz ?? headerValue(headers, 'date');
  if (raw === undefined)
    throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  const t = amz !== undefined ? parseAmzDate(amz) : parseHttpDate(raw);
  if (t === undefined)
    throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  if (Math.abs(t.getTime() - now.getTime()) > maxClockSkewMs)
    throw new S3Error('RequestTimeTooSkewed', undefined, {
      extra: {
        RequestTime: raw,
        ServerTime: isoSeconds(now),
        MaxAllowedSkewMilliseconds: String(maxClockSkewMs),
      },
    });
  return amz ?? toAmzDate(t);
}

function payloadOf(
  headers: IncomingHttpHeaders,
  kind: 'header' | 'presigned',
  query: [string, string][],
): { mode: PayloadMode; sha256?: string; hashedPayload: string } {
  // The JS SDK's presigner hoists x-amz-content-sha256 into the query (X-Amz-Content-Sha256=UNSIGNED-PAYLOAD).
  const v =
    headerValue(headers, 'x-amz-content-sha256') ??
    (kind === 'presigned' ? query.find(([k]) => k.toLowerCase() === 'x-amz-content-sha256')?.[1] : undefined);
  if (v === undefined) {
    if (kind === 'presigned') return { mode: 'unsigned', hashedPayload: 'UNSIGNED-PAYLOAD' };
    throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }
  const mode = payloadModes[v];
  if (mode) return { mode, hashedPayload: v };
  if (/^[0-9a-fA-F]{64}$/.test(v)) return { mode: 'sha256', sha256: v.toLowerCase(), hashedPayload: v };
  if (v.startsWith('STREAMING-AWS4-ECDSA'))
    throw new S3Error('NotImplemented', `x-amz-content-sha256 '${v}' (SigV4a) is not supported.`);
  throw new S3Error(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER), STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value.',
    { extra: { ArgumentName: 'x-amz-content-sha256', ArgumentValue: v } },
  );
}

// ---- canonical request pieces -------------------------------------------------------------

/** The path as signed. The raw form first (botocore/smithy sign what they send); then the
 * decode-and-re-encode form S3 itself computes (for clients that leave e.g. `!` or `(` raw). */
export function canonicalPathCandidates(rawPath: string): string[] {
  const path = rawPath === '' ? '/' : rawPath;
  const out = [path];
  const segments: string[] = [];
  for (const seg of path.split('/')) {
    const bytes = percentDecodeBytes(seg);
    if (bytes === undefined) return out;
    segments.push(uriEncodeBytes(bytes));
  }
  const normalized = segments.join('/');
  if (normalized !== path) out.push(normalized);
  return out;
}

/** Canonical query strings for the request. `+` is ambiguous (literal or space) so both are tried. */
function canonicalQueryCandidates(rawQuery: string, presigned: boolean): string[] {
  const signed = (plusIsSpace: boolean) =>
    canonicalQuery(
      parseRawQuery(rawQuery, plusIsSpace).filter(([k]) => !presigned || k !== 'X-Amz-Signature'),
    );
  const literal = signed(false);
  if (!rawQuery.includes('+')) return [literal];
  const spaced = signed(true);
  return spaced === literal ? [literal] : [literal, spaced];
}

/** `k=v` pairs, AWS-encoded, sorted by encoded key then encoded value; empty values as `k=`. */
export function canonicalQuery(params: [string, string][]): string {
  return params
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => cmp(a[0], b[0]) || cmp(a[1], b[1]))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Splits a raw query into decoded pairs in order. `plusIsSpace` applies form decoding to '+'. */
export function parseRawQuery(rawQuery: string, plusIsSpace = false): [string, string][] {
  const out: [string, string][] = [];
  if (rawQuery === '') return out;
  for (const piece of rawQuery.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const k = eq < 0 ? piece : piece.slice(0, eq);
    const v = eq < 0 ? '' : piece.slice(eq + 1);
    out.push([lenientDecode(k, plusIsSpace), lenientDecode(v, plusIsSpace)]);
  }
  return out;
}

export function lenientDecode(s: string, plusIsSpace: boolean): string {
  const t = plusIsSpace ? s.replace(/\+/g, ' ') : s;
  const bytes = percentDecodeBytes(t);
  return bytes === undefined ? t : bytes.toString('utf8');
}

function canonicalHeaders(req: AuthRequest, signed: string[]): string {
  const values = new Map<string, string[]>();
  if (req.rawHeaders) {
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      if (!signed.includes(name)) continue;
      const list = values.get(name) ?? [];
      list.push(req.rawHeaders[i + 1]);
      values.set(name, list);
    }
  } else {
    for (const name of signed) {
      const v = req.headers[name];
      if (v !== undefined) values.set(name, Array.isArray(v) ? v : [String(v)]);
    }
  }
  return signed
    .map((name) => `${name}:${(values.get(name) ?? []).map(trimHeaderValue).join(',')}\n`)
    .join('');
}

/** Trim and squeeze runs of blanks to one space, as the signers do. */
function trimHeaderValue(v: string): string {
  return v
    .replace(/[\r\n]/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
}

// ---- encoding helpers ----------------------------------------------------------------------

const unreserved = /[A-Za-z0-9\-._~]/;

/** AWS URI encoding: every byte but A-Z a-z 0-9 - . _ ~ as %XX (uppercase); '/' too unless kept. */
export function uriEncode(s: string, keepSlash = false): string {
  return uriEncodeBytes(Buffer.from(s, 'utf8'), keepSlash);
}

function uriEncodeBytes(bytes: Buffer, keepSlash = false): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (b < 0x80 && (unreserved.test(c) || (keepSlash && c === '/'))) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Percent-decodes to raw bytes (so invalid UTF-8 survives); undefined when a `%` escape is malformed. */
export function percentDecodeBytes(s: string): Buffer | undefined {
  if (!s.includes('%')) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let i = 0;
  while (i < s.length) {
    const pct = s.indexOf('%', i);
    if (pct < 0) {
      parts.push(Buffer.from(s.slice(i), 'utf8'));
      break;
    }
    if (pct > i) parts.push(Buffer.from(s.slice(i, pct), 'utf8'));
    const hex = s.slice(pct + 1, pct + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
    parts.push(Buffer.from([Number.parseInt(hex, 16)]));
    i = pct + 3;
  }
  return Buffer.concat(parts);
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : String(v);
}

// ---- time ----------------------------------------------------------------------------------

export function parseAmzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return Number.isNaN(t) ? undefined : new Date(t);
}

function parseHttpDate(s: string): Date | undefined {
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : new Date(t);
}

export function toAmzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---- crypto --------------------------------------------------------------------------------

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmacHex(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function deriveSigningKey(secret: string, date: string, region: string, service = 's3'): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

const signingKeys = new Map<string, { secret: string; key: Buffer }>();

/** LRU over derived keys: four HMACs saved per request; a rotated secret never hits a stale entry. */
function signingKeyFor(secret: string, accessKey: string, date: string, region: string): Buffer {
  const id = `${accessKey}\0${date}\0${region}`;
  const hit = signingKeys.get(id);
  if (hit && hit.secret === secret) {
    signingKeys.delete(id);
    signingKeys.set(id, hit);
    return hit.key;
  }
  const key = deriveSigningKey(secret, date, region);
  signingKeys.delete(id);
  signingKeys.set(id, { secret, key });
  if (signingKeys.size > signingKeyCacheMax) signingKeys.delete(signingKeys.keys().next().value as string);
  return key;
}

/** Constant-time comparison of hex signatures (case-insensitive on the provided one). */
export function signaturesEqual(expectedHex: string, providedHex: string): boolean {
  const a = Buffer.from(expectedHex, 'utf8');
  const b = Buffer.from(providedHex.toLowerCase(), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** String to sign for one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD). */
export function chunkStringToSign(
  ctx: SigningContext,
  previousSignature: string,
  chunkSha256Hex: string,
): string {
  return [
    'AWS4-HMAC-SHA256-PAYLOAD',
    ctx.datetime,
    ctx.scope,
    previousSignature,
    emptySha256,
    chunkSha256Hex,
  ].join('\n');
}

/** String to sign for the trailer block of STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER. */
export function trailerStringToSign(
  ctx: SigningContext,
  previousSignature: string,
  trailerSha256Hex: string,
): string {
  return ['AWS4-HMAC-SHA256-TRAILER', ctx.datetime, ctx.scope, previousSignature, trailerSha256Hex].join(
    '\n',
  );
}
