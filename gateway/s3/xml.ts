// S3 XML documents: response builders (string templates, every text node escaped) and bounded
// request-body parsers that answer MalformedXML on junk.
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html
import type { Readable } from 'node:stream';
import { Parser, processors } from 'xml2js';
import { type ChecksumAlgorithm, checksumAlgorithms, checksumXmlName, isValidChecksum } from './checksums.js';
import { type CorsRule, corsMethods, corsRulesMax } from './cors.js';
import { S3Error, xmlEscape } from './errors.js';

export const s3Namespace = 'http://s3.amazonaws.com/doc/2006-03-01/';
const declaration = '<?xml version="1.0" encoding="UTF-8"?>\n';

/** Small configuration bodies (CreateBucketConfiguration and the like). */
export const xmlBodyBytesMax = 1024 * 1024;
/** DeleteObjects: 1000 keys of up to 1024 bytes, escaped, plus markup. */
export const deleteObjectsBodyBytesMax = 2 * 1024 * 1024;
/** CompleteMultipartUpload: 10000 parts × (~150 bytes with a SHA256 checksum, more when pretty-printed). */
export const completeMultipartBodyBytesMax = 4 * 1024 * 1024;
/** S3's own cap on keys in one DeleteObjects request. */
export const deleteObjectsKeysMax = 1000;
export const partNumberMax = 10_000;

// ---- small helpers -------------------------------------------------------------------------

// Almost no text in these documents needs escaping, and one test is far cheaper than xmlEscape's two
// replace passes (it dominated a 1000-key listing). A superset of the characters xmlEscape changes
// (\t and \n too), so a miss can only mean calling it needlessly.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const mayNeedEscape = /[\u0000-\u001f&<>"'\ufffe\uffff]/;

function esc(s: string): string {
  return mayNeedEscape.test(s) ? xmlEscape(s) : s;
}

function el(name: string, text: string | number | boolean | undefined): string {
  if (text === undefined) return '';
  return `<${name}>${esc(String(text))}</${name}>`;
}

function doc(root: string, inner: string): string {
  return `${declaration}<${root} xmlns="${s3Namespace}">${inner}</${root}>`;
}

/** ETag as S3 shows it: always within double quotes. */
export function quoteEtag(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
}

/**
 * A listed ETag as element text, quoted: stored ETags are bare, and escaping the quotes once here
 * spares an escaping pass over each entry.
 */
function listedEtag(etag: string): string {
  return etag.startsWith('"') ? esc(etag) : `&quot;${esc(etag)}&quot;`;
}

export function unquoteEtag(etag: string): string {
  const t = etag.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

const dayMs = 86_400_000;
/** 10000-01-01: from there on toISOString writes six-digit years. */
const fourDigitYearsEndMs = 253_402_300_800_000;
let isoDayNumber = Number.NaN;
let isoDayPrefix = '';
const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * S3 timestamps in XML: ISO 8601 with milliseconds, UTC, exactly as toISOString writes them. That
 * costs ~1.5 µs a call, so the date part, shared by most entries of a listing, is cached and only
 * the time of day is formatted here.
 */
export function isoDate(d: Date): string {
  const t = d.getTime();
  if (!(t >= 0 && t < fourDigitYearsEndMs)) return d.toISOString(); // also throws on Invalid Date
  const day = Math.floor(t / dayMs);
  if (day !== isoDayNumber) {
    isoDayPrefix = d.toISOString().slice(0, 11); // YYYY-MM-DDT
    isoDayNumber = day;
  }
  const ms = t - day * dayMs;
  const milli = ms % 1000;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const sec = Math.floor(ms / 1000) % 60;
  return `${isoDayPrefix}${pad2(h)}:${pad2(m)}:${pad2(sec)}.${milli < 100 ? `0${pad2(milli)}` : milli}Z`;
}

const urlUnreservedOrSlash = /^[A-Za-z0-9\-._~/]*$/;
/** The encoding-type=url form of each UTF-8 byte. */
const urlByte = Array.from({ length: 256 }, (_, b) =>
  urlUnreservedOrSlash.test(String.fromCharCode(b))
    ? String.fromCharCode(b)
    : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
);

/**
 * encoding-type=url form of listing values (S3-PITFALLS 5): every UTF-8 byte except A-Z a-z 0-9
 * - . _ ~ and '/' as %XX, so space is %20 and '+' is %2B — read right by plain and form decoders.
 */
export function encodeListingValue(s: string): string {
  if (urlUnreservedOrSlash.test(s)) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += urlByte[b];
  return out;
}

export interface Owner {
  id: string;
  displayName: string;
}

function ownerXml(tag: string, owner: Owner | undefined): string {
  return owner ? `<${tag}>${el('ID', owner.id)}${el('DisplayName', owner.displayName)}</${tag}>` : '';
}

export type ChecksumMap = Partial<Record<ChecksumAlgorithm, string>>;

function checksumsXml(checksums: ChecksumMap | undefined): string {
  if (!checksums) return '';
  return checksumAlgorithms.map((a) => el(checksumXmlName[a], checksums[a])).join('');
}

// ---- buckets -------------------------------------------------------------------------------

export function listAllMyBucketsXml(
  owner: Owner,
  page: {
    buckets: { name: string; creationDate: Date; region: string }[];
    prefix?: string;
    continuationToken?: string;
  },
): string {
  const list = page.buckets
    .map(
      (b) =>
        `<Bucket>${el('Name', b.name)}${el('CreationDate', isoDate(b.creationDate))}${el('BucketRegion', b.region)}</Bucket>`,
    )
    .join('');
  return doc(
    'ListAllMyBucketsResult',
    `${ownerXml('Owner', owner)}<Buckets>${list}</Buckets>${el('ContinuationToken', page.continuationToken)}${el('Prefix', page.prefix)}`,
  );
}

/** us-east-1 (and no region) is an empty LocationConstraint, as S3 answers. */
export function locationConstraintXml(region: string | undefined): string {
  const r = region === undefined || region === 'us-east-1' ? '' : region;
  return `${declaration}<LocationConstraint xmlns="${s3Namespace}">${xmlEscape(r)}</LocationConstraint>`;
}

/** GetBucketVersioning for a bucket that never had versioning: an empty configuration. */
export function versioningConfigurationXml(): string {
  return bucketSettingXml('VersioningConfiguration');
}

/** A bucket setting S3 answers with a document even when unset (notification, logging, ...). */
export function bucketSettingXml(root: string, inner = ''): string {
  return doc(root, inner);
}

/** GetObjectAttributes: only the attributes asked for (x-amz-object-attributes). */
export function objectAttributesXml(
  asked: Set<string>,
  a: {
    etag: string;
    size: number;
    partsCount?: number;
    checksum?: { algorithm: ChecksumAlgorithm; value: string; type?: string };
  },
): string {
  let inner = '';
  if (asked.has('ETag')) inner += el('ETag', unquoteEtag(a.etag));
  if (asked.has('Checksum') && a.checksum)
    inner += `<Checksum>${el(checksumXmlName[a.checksum.algorithm], a.checksum.value)}${el('ChecksumType', a.checksum.type)}</Checksum>`;
  if (asked.has('ObjectParts') && a.partsCount)
    // The SDKs' TotalPartsCount is PartsCount on the wire.
    inner += `<ObjectParts>${el('PartsCount', a.partsCount)}</ObjectParts>`;
  if (asked.has('StorageClass')) inner += el('StorageClass', 'STANDARD');
  if (asked.has('ObjectSize')) inner += el('ObjectSize', a.size);
  return doc('GetObjectAttributesResponse', inner);
}

/** GetBucketAcl / GetObjectAcl: the owner holds FULL_CONTROL, nothing else (no ACLs here). */
export function accessControlPolicyXml(owner: Owner): string {
  const grantee = `<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">${el('ID', owner.id)}${el('DisplayName', owner.displayName)}</Grantee>`;
  return doc(
    'AccessControlPolicy',
    `${ownerXml('Owner', owner)}<AccessControlList><Grant>${grantee}<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>`,
  );
}

/** GetObjectTagging / GetBucketTagging. */
export function taggingXml(tags: Record<string, string>): string {
  const set = Object.entries(tags)
    .map(([k, v]) => `<Tag>${el('Key', k)}${el('Value', v)}</Tag>`)
    .join('');
  return doc('Tagging', `<TagSet>${set}</TagSet>`);
}

// ---- listings ------------------------------------------------------------------------------

/** One listed object. meta.ts's ObjectRow is one, so a page's rows are passed on without copying. */
export interface ListEntry {
  key: string;
  lastModified: Date;
  etag: string;
  size: number;
  checksumAlgorithm?: string | null;
  checksumType?: string | null;
}

interface ListCommon {
  bucket: string;
  prefix: string;
  delimiter?: string;
  maxKeys: number;
  isTruncated: boolean;
  encodingType?: 'url';
  contents: ListEntry[];
  commonPrefixes: string[];
  /** The owner of every listed object (the bucket's), shown in each entry when given. */
  owner?: Owner;
}

export interface ListObjectsV1Result extends ListCommon {
  marker: string;
  /** Sent only with a delimiter (S3's rule); clients use the last key otherwise. */
  nextMarker?: string;
}

/** V2 shows owners only when fetch-owner=true: pass `owner` then only. */
export interface ListObjectsV2Result extends ListCommon {
  continuationToken?: string;
  nextContinuationToken?: string;
  startAfter?: string;
}

function encoder(encodingType: 'url' | undefined): (s: string) => string {
  return encodingType === 'url' ? encodeListingValue : (s) => s;
}

/** A listing's entries: one template per entry, since this runs 1000 times a page. */
function contentsXml(entries: ListEntry[], enc: (s: string) => string, owner: Owner | undefined): string {
  const ownerPart = ownerXml('Owner', owner);
  let out = '';
  for (const e of entries) {
    const etag = listedEtag(e.etag);
    const checksum = e.checksumAlgorithm
      ? el('ChecksumAlgorithm', e.checksumAlgorithm) + el('ChecksumType', e.checksumType ?? undefined)
      : '';
    out +=
      `<Contents><Key>${esc(enc(e.key))}</Key><LastModified>${isoDate(e.lastModified)}</LastModified>` +
      `<ETag>${etag}</ETag><Size>${e.size}</Size>${ownerPart}<StorageClass>STANDARD</StorageClass>` +
      `${checksum}</Contents>`;
  }
  return out;
}

function commonPrefixesXml(prefixes: string[], enc: (s: string) => string): string {
  let out = '';
  for (const p of prefixes) out += `<CommonPrefixes><Prefix>${esc(enc(p))}</Prefix></CommonPrefixes>`;
  return out;
}

export function listObjectsV1Xml(r: ListObjectsV1Result): string {
  const enc = encoder(r.encodingType);
  return doc(
    'ListBucketResult',
    el('Name', r.bucket) +
      // Sent as given: botocore decodes a v1 listing's Delimiter, markers, keys and common prefixes
      // but not its Prefix (decode_list_object), so an encoded one would reach the caller encoded.
      el('Prefix', r.prefix) +
      el('Marker', enc(r.marker)) +
      el('NextMarker', r.nextMarker === undefined ? undefined : enc(r.nextMarker)) +
      el('MaxKeys', r.maxKeys) +
      el('Delimiter', r.delimiter === undefined ? undefined : enc(r.delimiter)) +
      el('IsTruncated', r.isTruncated) +
      el('EncodingType', r.encodingType) +
      contentsXml(r.contents, enc, r.owner) +
      commonPrefixesXml(r.commonPrefixes, enc),
  );
}

export function listObjectsV2Xml(r: ListObjectsV2Result): string {
  const enc = encoder(r.encodingType);
  return doc(
    'ListBucketResult',
    el('Name', r.bucket) +
      el('Prefix', enc(r.prefix)) +
      el('Delimiter', r.delimiter === undefined ? undefined : enc(r.delimiter)) +
      el('MaxKeys', r.maxKeys) +
      el('KeyCount', r.contents.length + r.commonPrefixes.length) +
      el('IsTruncated', r.isTruncated) +
      el('ContinuationToken', r.continuationToken) +
      el('NextContinuationToken', r.nextContinuationToken) +
      el('StartAfter', r.startAfter === undefined ? undefined : enc(r.startAfter)) +
      el('EncodingType', r.encodingType) +
      contentsXml(r.contents, enc, r.owner) +
      commonPrefixesXml(r.commonPrefixes, enc),
  );
}

/** ListObjectVersions of a never-versioned bucket: every object once, as its latest `null` version. */
export function listVersionsXml(r: ListCommon & { keyMarker: string; nextKeyMarker?: string }): string {
  const enc = encoder(r.encodingType);
  const ownerPart = ownerXml('Owner', r.owner);
  let versions = '';
  for (const e of r.contents) {
    const etag = listedEtag(e.etag);
    versions +=
      `<Version><Key>${esc(enc(e.key))}</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>` +
      `<LastModified>${isoDate(e.lastModified)}</LastModified><ETag>${etag}</ETag><Size>${e.size}</Size>` +
      `${ownerPart}<StorageClass>STANDARD</StorageClass></Version>`;
  }
  return doc(
    'ListVersionsResult',
    el('Name', r.bucket) +
      el('Prefix', enc(r.prefix)) +
      el('KeyMarker', enc(r.keyMarker)) +
      el('VersionIdMarker', r.keyMarker === '' ? '' : 'null') +
      el('NextKeyMarker', r.nextKeyMarker === undefined ? undefined : enc(r.nextKeyMarker)) +
      el('NextVersionIdMarker', r.nextKeyMarker === undefined ? undefined : 'null') +
      el('MaxKeys', r.maxKeys) +
      el('Delimiter', r.delimiter === undefined ? undefined : enc(r.delimiter)) +
      el('IsTruncated', r.isTruncated) +
      el('EncodingType', r.encodingType) +
      versions +
      commonPrefixesXml(r.commonPrefixes, enc),
  );
}

// ---- objects -------------------------------------------------------------------------------

export function copyObjectResultXml(r: {
  etag: string;
  lastModified: Date;
  checksums?: ChecksumMap;
}): string {
  return doc(
    'CopyObjectResult',
    el('ETag', quoteEtag(r.etag)) + el('LastModified', isoDate(r.lastModified)) + checksumsXml(r.checksums),
  );
}

export function copyPartResultXml(r: { etag: string; lastModified: Date; checksums?: ChecksumMap }): string {
  return doc(
    'CopyPartResult',
    el('ETag', quoteEtag(r.etag)) + el('LastModified', isoDate(r.lastModified)) + checksumsXml(r.checksums),
  );
}

export interface DeleteOutcome {
  deleted: { key: string; versionId?: string }[];
  errors: { key: string; versionId?: string; code: string; message: string }[];
}

/** In quiet mode only errors are listed. */
export function deleteResultXml(r: DeleteOutcome, quiet: boolean): string {
  const deleted = quiet
    ? ''
    : r.deleted.map((d) => `<Deleted>${el('Key', d.key)}${el('VersionId', d.versionId)}</Deleted>`).join('');
  const errors = r.errors
    .map(
      (e) =>
        `<Error>${el('Key', e.key)}${el('VersionId', e.versionId)}${el('Code', e.code)}${el('Message', e.message)}</Error>`,
    )
    .join('');
  return doc('DeleteResult', deleted + errors);
}

// ---- multipart -----------------------------------------------------------------------------

export function initiateMultipartUploadXml(r: { bucket: string; key: string; uploadId: string }): string {
  return doc(
    'InitiateMultipartUploadResult',
    el('Bucket', r.bucket) + el('Key', r.key) + el('UploadId', r.uploadId),
  );
}

export function completeMultipartUploadXml(r: {
  location: string;
  bucket: string;
  key: string;
  etag: string;
  checksums?: ChecksumMap;
  checksumType?: 'COMPOSITE' | 'FULL_OBJECT';
}): string {
  return doc(
    'CompleteMultipartUploadResult',
    el('Location', r.location) +
      el('Bucket', r.bucket) +
      el('Key', r.key) +
      el('ETag', quoteEtag(r.etag)) +
      checksumsXml(r.checksums) +
      el('ChecksumType', r.checksumType),
  );
}

export interface PartEntry {
  partNumber: number;
  lastModified: Date;
  etag: string;
  size: number;
  checksums?: ChecksumMap;
}

export function listPartsXml(r: {
  bucket: string;
  key: string;
  uploadId: string;
  partNumberMarker: number;
  nextPartNumberMarker?: number;
  maxParts: number;
  isTruncated: boolean;
  parts: PartEntry[];
  owner?: Owner;
  storageClass?: string;
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: 'COMPOSITE' | 'FULL_OBJECT';
}): string {
  const parts = r.parts
    .map(
      (p) =>
        '<Part>' +
        el('PartNumber', p.partNumber) +
        el('LastModified', isoDate(p.lastModified)) +
        el('ETag', quoteEtag(p.etag)) +
        el('Size', p.size) +
        checksumsXml(p.checksums) +
        '</Part>',
    )
    .join('');
  return doc(
    'ListPartsResult',
    el('Bucket', r.bucket) +
      el('Key', r.key) +
      el('UploadId', r.uploadId) +
      el('PartNumberMarker', r.partNumberMarker) +
      el('NextPartNumberMarker', r.nextPartNumberMarker) +
      el('MaxParts', r.maxParts) +
      el('IsTruncated', r.isTruncated) +
      ownerXml('Initiator', r.owner) +
      ownerXml('Owner', r.owner) +
      el('StorageClass', r.storageClass ?? 'STANDARD') +
      el('ChecksumAlgorithm', r.checksumAlgorithm) +
      el('ChecksumType', r.checksumType) +
      parts,
  );
}

export interface UploadEntry {
  key: string;
  uploadId: string;
  initiated: Date;
  owner?: Owner;
  storageClass?: string;
  checksumAlgorithm?: ChecksumAlgorithm;
}

export function listMultipartUploadsXml(r: {
  bucket: string;
  keyMarker: string;
  uploadIdMarker: string;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
  prefix: string;
  delimiter?: string;
  maxUploads: number;
  isTruncated: boolean;
  encodingType?: 'url';
  uploads: UploadEntry[];
  commonPrefixes: string[];
}): string {
  const enc = encoder(r.encodingType);
  const uploads = r.uploads
    .map(
      (u) =>
        '<Upload>' +
        el('Key', enc(u.key)) +
        el('UploadId', u.uploadId) +
        ownerXml('Initiator', u.owner) +
        ownerXml('Owner', u.owner) +
        el('StorageClass', u.storageClass ?? 'STANDARD') +
        el('Initiated', isoDate(u.initiated)) +
        el('ChecksumAlgorithm', u.checksumAlgorithm) +
        '</Upload>',
    )
    .join('');
  return doc(
    'ListMultipartUploadsResult',
    el('Bucket', r.bucket) +
      el('KeyMarker', enc(r.keyMarker)) +
      el('UploadIdMarker', r.uploadIdMarker) +
      el('NextKeyMarker', r.nextKeyMarker === undefined ? undefined : enc(r.nextKeyMarker)) +
      el('NextUploadIdMarker', r.nextUploadIdMarker) +
      el('Prefix', enc(r.prefix)) +
      el('Delimiter', r.delimiter === undefined ? undefined : enc(r.delimiter)) +
      el('MaxUploads', r.maxUploads) +
      el('IsTruncated', r.isTruncated) +
      el('EncodingType', r.encodingType) +
      uploads +
      commonPrefixesXml(r.commonPrefixes, enc),
  );
}

// ---- request bodies ------------------------------------------------------------------------

/**
 * How far past its limit an oversized XML body is still read (and dropped) before the answer. A
 * client still sending when the gateway stops reading and closes meets a reset (closing a socket
 * with unread bytes queued sends RST), and one that reads only once its body is out (botocore and
 * other blocking clients) never sees the MaxMessageLengthExceeded at all; nginx's lingering close
 * reads on for the same reason. 64 MiB covers any mistaken-but-honest document (a 10 MB key list
 * is five times the DeleteObjects limit) at the cost of reading, never keeping, that much; past it
 * the body is junk or an attack and is cut, the connection closed after the answer (app.ts).
 */
export const xmlBodyDrainBytesMax = 64 * 1024 * 1024;

const tooBig = (maxBytes: number) =>
  new S3Error('MaxMessageLengthExceeded', `Your request was too big (limit ${maxBytes} bytes).`);

/**
 * Reads a whole (small) request body. Past `maxBytes` it keeps reading, without keeping, up to
 * xmlBodyDrainBytesMax more so the client can read the MaxMessageLengthExceeded that follows.
 */
export async function readBodyBounded(body: Readable, maxBytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      total += b.length;
      if (total <= maxBytes) parts.push(b);
      else if (total > maxBytes + xmlBodyDrainBytesMax) break; // leaving the loop destroys the stream
    }
  } catch (err) {
    // A digest or framing failure of a body already too big: the size is the answer.
    if (total > maxBytes) throw tooBig(maxBytes);
    throw err;
  }
  if (total > maxBytes) throw tooBig(maxBytes);
  return Buffer.concat(parts, total);
}

type XmlNode = string | { _?: string; $?: Record<string, string>; [child: string]: unknown };

const malformed = () => new S3Error('MalformedXML');

async function parseXml(buf: Buffer, maxBytes: number, root: string): Promise<Record<string, unknown>> {
  if (buf.length > maxBytes) throw tooBig(maxBytes);
  let parsed: unknown;
  try {
    const parser = new Parser({
      explicitArray: true,
      explicitRoot: true,
      tagNameProcessors: [processors.stripPrefix],
      async: false,
      strict: true,
    });
    parsed = await parser.parseStringPromise(buf.toString('utf8'));
  } catch {
    throw malformed();
  }
  if (parsed === null || typeof parsed !== 'object') throw malformed();
  const top = (parsed as Record<string, unknown>)[root];
  if (top === undefined) throw malformed();
  // An empty root element parses to '' rather than an object.
  if (typeof top === 'string') return {};
  if (typeof top !== 'object' || top === null) throw malformed();
  return top as Record<string, unknown>;
}

function children(node: Record<string, unknown>, name: string): XmlNode[] {
  const v = node[name];
  return Array.isArray(v) ? (v as XmlNode[]) : [];
}

function text(node: XmlNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (typeof node === 'string') return node;
  if (typeof node === 'object' && node !== null) {
    const keys = Object.keys(node).filter((k) => k !== '$' && k !== '_');
    if (keys.length > 0) return undefined; // element children where text was expected
    return typeof node._ === 'string' ? node._ : '';
  }
  return undefined;
}

function onlyText(node: Record<string, unknown>, name: string): string | undefined {
  const list = children(node, name);
  if (list.length > 1) throw malformed();
  if (list.length === 0) return undefined;
  const t = text(list[0]);
  if (t === undefined) throw malformed();
  return t;
}

function asObject(node: XmlNode): Record<string, unknown> {
  if (typeof node === 'string') {
    if (node.trim() !== '') throw malformed();
    return {};
  }
  return node as Record<string, unknown>;
}

export interface DeleteObjectsRequest {
  quiet: boolean;
  /** `etag`: the object's ETag must match for it to be deleted (a conditional delete), unquoted. */
  objects: { key: string; versionId?: string; etag?: string }[];
}

export async function parseDeleteObjects(buf: Buffer): Promise<DeleteObjectsRequest> {
  const root = await parseXml(buf, deleteObjectsBodyBytesMax, 'Delete');
  const quietRaw = onlyText(root, 'Quiet');
  if (quietRaw !== undefined && !/^(true|false)$/i.test(quietRaw.trim())) throw malformed();
  const objects = children(root, 'Object').map((o) => {
    const obj = asObject(o);
    const key = onlyText(obj, 'Key');
    if (key === undefined) throw malformed();
    const versionId = onlyText(obj, 'VersionId');
    const etag = onlyText(obj, 'ETag')?.trim().replace(/^"|"$/g, '');
    return {
      key,
      ...(versionId === undefined ? {} : { versionId }),
      ...(etag === undefined ? {} : { etag }),
    };
  });
  if (objects.length === 0 || objects.length > deleteObjectsKeysMax) throw malformed();
  return { quiet: quietRaw?.trim().toLowerCase() === 'true', objects };
}

export interface CompletePart {
  partNumber: number;
  /** Without surrounding quotes. */
  etag: string;
  checksums: ChecksumMap;
}

/** Parts of a CompleteMultipartUpload, checked to be strictly ascending (InvalidPartOrder). */
export async function parseCompleteMultipartUpload(buf: Buffer): Promise<CompletePart[]> {
  const root = await parseXml(buf, completeMultipartBodyBytesMax, 'CompleteMultipartUpload');
  const parts = children(root, 'Part').map((p): CompletePart => {
    const part = asObject(p);
    const num = onlyText(part, 'PartNumber');
    const etag = onlyText(part, 'ETag');
    if (num === undefined || etag === undefined || !/^\d{1,5}$/.test(num.trim())) throw malformed();
    const partNumber = Number(num.trim());
    if (partNumber < 1 || partNumber > partNumberMax)
      throw new S3Error(
        'InvalidArgument',
        `Part number must be an integer between 1 and ${partNumberMax}, inclusive`,
        {
          extra: { ArgumentName: 'partNumber', ArgumentValue: num.trim() },
        },
      );
    const checksums: ChecksumMap = {};
    for (const a of checksumAlgorithms) {
      const v = onlyText(part, checksumXmlName[a]);
      if (v === undefined) continue;
      if (!isValidChecksum(a, v.trim()))
        throw new S3Error('InvalidRequest', `Value for ${checksumXmlName[a]} is invalid.`);
      checksums[a] = v.trim();
    }
    return { partNumber, etag: unquoteEtag(etag), checksums };
  });
  if (parts.length === 0) throw malformed();
  if (parts.length > partNumberMax) throw malformed();
  for (let i = 1; i < parts.length; i++)
    if (parts[i].partNumber <= parts[i - 1].partNumber) throw new S3Error('InvalidPartOrder');
  return parts;
}

/** CreateBucket's optional body; an empty body means the default region. */
export async function parseCreateBucketConfiguration(buf: Buffer): Promise<{ locationConstraint?: string }> {
  if (buf.toString('utf8').trim() === '') return {};
  const root = await parseXml(buf, xmlBodyBytesMax, 'CreateBucketConfiguration');
  const lc = onlyText(root, 'LocationConstraint');
  return lc === undefined || lc.trim() === '' ? {} : { locationConstraint: lc.trim() };
}

// ---- CORS ------------------------------------------------------------------------------------

/** PutBucketCors's CORSConfiguration, checked as S3 checks it. */
export async function parseCorsConfiguration(buf: Buffer): Promise<CorsRule[]> {
  const root = await parseXml(buf, xmlBodyBytesMax, 'CORSConfiguration');
  const rules = children(root, 'CORSRule').map((node): CorsRule => {
    const r = asObject(node);
    const all = (name: string) =>
      children(r, name).map((c) => {
        const t = text(c);
        if (t === undefined) throw malformed();
        return t.trim();
      });
    const allowedOrigins = all('AllowedOrigin');
    const allowedMethods = all('AllowedMethod');
    const allowedHeaders = all('AllowedHeader');
    if (allowedOrigins.length === 0 || allowedMethods.length === 0) throw malformed();
    for (const m of allowedMethods)
      if (!corsMethods.includes(m))
        throw new S3Error(
          'InvalidRequest',
          `Found unsupported HTTP method in CORS config. Unsupported method is ${m}`,
        );
    for (const v of [...allowedOrigins, ...allowedHeaders])
      if (v.split('*').length > 2)
        throw new S3Error('InvalidRequest', `${v} can not have more than one wildcard.`);
    const maxAge = onlyText(r, 'MaxAgeSeconds');
    if (maxAge !== undefined && !/^\d{1,9}$/.test(maxAge.trim())) throw malformed();
    const id = onlyText(r, 'ID');
    return {
      ...(id !== undefined ? { id } : {}),
      allowedOrigins,
      allowedMethods,
      allowedHeaders,
      exposeHeaders: all('ExposeHeader'),
      ...(maxAge !== undefined ? { maxAgeSeconds: Number(maxAge.trim()) } : {}),
    };
  });
  if (rules.length === 0 || rules.length > corsRulesMax) throw malformed();
  return rules;
}

export function corsConfigurationXml(rules: CorsRule[]): string {
  const many = (name: string, values: string[]) => values.map((v) => el(name, v)).join('');
  const inner = rules
    .map(
      (r) =>
        `<CORSRule>${el('ID', r.id)}${many('AllowedHeader', r.allowedHeaders)}${many('AllowedMethod', r.allowedMethods)}` +
        `${many('AllowedOrigin', r.allowedOrigins)}${many('ExposeHeader', r.exposeHeaders)}${el('MaxAgeSeconds', r.maxAgeSeconds)}</CORSRule>`,
    )
    .join('');
  return doc('CORSConfiguration', inner);
}

// ---- tagging ---------------------------------------------------------------------------------

/** S3's limits: tags per object (a bucket takes 50), key and value lengths in characters. */
export const objectTagsMax = 10;
export const bucketTagsMax = 50;
const tagKeyMax = 128;
const tagValueMax = 256;

/** Tags checked as S3 checks them (InvalidTag, with S3's messages); null for none. */
export function checkedTags(pairs: [string, string][], max: number): Record<string, string> | null {
  if (pairs.length > max) throw new S3Error('InvalidTag', `Object tags cannot be greater than ${max}`);
  // No prototype: a tag keyed `__proto__` is a tag like any other.
  const tags: Record<string, string> = Object.create(null);
  for (const [k, v] of pairs) {
    if (k.length === 0 || [...k].length > tagKeyMax)
      throw new S3Error('InvalidTag', 'The TagKey you have provided is invalid');
    if ([...v].length > tagValueMax)
      throw new S3Error('InvalidTag', 'The TagValue you have provided is invalid');
    if (Object.hasOwn(tags, k))
      throw new S3Error('InvalidTag', 'Cannot provide multiple Tags with the same key');
    tags[k] = v;
  }
  return pairs.length === 0 ? null : tags;
}

/** The `x-amz-tagging` header: tags as an URL query (`k1=v1&k2=v2`). */
export function tagsFromHeader(value: string | undefined): Record<string, string> | null {
  if (value === undefined || value.trim() === '') return null;
  const pairs = value.split('&').map((p): [string, string] => {
    const eq = p.indexOf('=');
    const [k, v] = eq < 0 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)];
    try {
      return [decodeURIComponent(k.replace(/\+/g, ' ')), decodeURIComponent(v.replace(/\+/g, ' '))];
    } catch {
      throw new S3Error('InvalidArgument', 'The header x-amz-tagging is not valid URL query encoding', {
        extra: { ArgumentName: 'x-amz-tagging', ArgumentValue: value },
      });
    }
  });
  return checkedTags(pairs, objectTagsMax);
}

/** PutObjectTagging / PutBucketTagging's Tagging document. */
export async function parseTagging(buf: Buffer, max: number): Promise<Record<string, string> | null> {
  const root = await parseXml(buf, xmlBodyBytesMax, 'Tagging');
  const sets = children(root, 'TagSet');
  if (sets.length !== 1) throw malformed();
  const pairs = children(asObject(sets[0]), 'Tag').map((node): [string, string] => {
    const tag = asObject(node);
    const key = onlyText(tag, 'Key');
    if (key === undefined) throw malformed();
    return [key, onlyText(tag, 'Value') ?? ''];
  });
  return checkedTags(pairs, max);
}
