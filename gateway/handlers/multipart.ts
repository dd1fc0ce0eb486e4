import { UploadRejected } from '../../lib/errors.js';
import {
  type ChecksumAlgorithm,
  checksumAlgorithms,
  checksumFromHeaders,
  checksumHeader,
  combineCrcs,
  compositeChecksum,
  isCrcAlgorithm,
  parseChecksumAlgorithm,
} from '../s3/checksums.js';
import { S3Error } from '../s3/errors.js';
import type { S3Request } from '../s3/router.js';
import {
  type ChecksumMap,
  completeMultipartBodyBytesMax,
  completeMultipartUploadXml,
  copyPartResultXml,
  initiateMultipartUploadXml,
  listMultipartUploadsXml,
  listPartsXml,
  parseCompleteMultipartUpload,
} from '../s3/xml.js';
import type { Stored } from '../storage/object-layer.js';
import type { ChecksumKind, PartRow, UploadRow } from '../storage/uploads.js';
import {
  type Body,
  contentMetaFrom,
  type Digests,
  digestsOf,
  putObjectBytesMax,
  readSmallBody,
  requestBody,
  sourceBody,
} from './body.js';
import { copySource, writeConditions } from './conditions.js';
import { header, ownerOf, quote, type RequestCtx, requireBucket, sendXml } from './context.js';

// Multipart upload: Create, UploadPart(Copy), Complete, Abort, ListParts, ListMultipartUploads.
// Parts are written like PutObject bodies (chunked, replicated, verified); Complete only moves
// metadata. https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html

type Op<N extends S3Request['op']> = Extract<S3Request, { op: N }>;

/** S3's largest part, the same as its largest single PUT. */
const partBytesMax = putObjectBytesMax;

// ---- create ----------------------------------------------------------------------------------

export async function createMultipartUpload(r: RequestCtx, req: Op<'CreateMultipartUpload'>): Promise<void> {
  await requireBucket(r, req.bucket);
  const meta = contentMetaFrom(r);
  const { algorithm, type } = checksumChoice(r);
  const uploadId = await r.gw.store.uploads.create({
    bucket: req.bucket,
    key: req.key,
    meta,
    checksumAlgorithm: algorithm ?? null,
    checksumType: type ?? null,
  });
  if (algorithm) {
    r.koa.set('x-amz-checksum-algorithm', algorithm);
    r.koa.set('x-amz-checksum-type', type!);
  }
  sendXml(r, initiateMultipartUploadXml({ bucket: req.bucket, key: req.key, uploadId }));
}

/**
 * x-amz-checksum-algorithm / x-amz-checksum-type as AWS documents them: COMPOSITE is the default
 * for SHA1, SHA256, CRC32 and CRC32C; CRC64NVME is FULL_OBJECT only; SHA* cannot be FULL_OBJECT.
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
 */
function checksumChoice(r: RequestCtx): { algorithm?: ChecksumAlgorithm; type?: ChecksumKind } {
  const rawAlgorithm = header(r.headers, 'x-amz-checksum-algorithm');
  const rawType = header(r.headers, 'x-amz-checksum-type');
  if (rawAlgorithm === undefined || rawAlgorithm.trim() === '') {
    if (rawType !== undefined && rawType.trim() !== '')
      throw new S3Error(
        'InvalidRequest',
        'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.',
      );
    return {};
  }
  const algorithm = parseChecksumAlgorithm(rawAlgorithm);
  const fallback: ChecksumKind = algorithm === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE';
  const type = rawType === undefined || rawType.trim() === '' ? fallback : rawType.trim().toUpperCase();
  if (type !== 'COMPOSITE' && type !== 'FULL_OBJECT')
    throw new S3Error('InvalidRequest', 'Value for x-amz-checksum-type header is invalid.');
  if (type === 'FULL_OBJECT' && !isCrcAlgorithm(algorithm))
    throw new S3Error(
      'InvalidRequest',
      `The ${algorithm} algorithm does not support the FULL_OBJECT checksum type.`,
    );
  if (type === 'COMPOSITE' && algorithm === 'CRC64NVME')
    throw new S3Error(
      'InvalidRequest',
      'The CRC64NVME algorithm does not support the COMPOSITE checksum type.',
    );
  return { algorithm, type };
}

// ---- parts -----------------------------------------------------------------------------------

export async function uploadPart(r: RequestCtx, req: Op<'UploadPart'>): Promise<void> {
  await requireBucket(r, req.bucket);
  const upload = await activeUpload(r, req);
  const algorithm = (upload.checksumAlgorithm ?? undefined) as ChecksumAlgorithm | undefined;
  const asserted = checksumFromHeaders(r.headers);
  if (algorithm && asserted && asserted.algorithm !== algorithm) {
    throw new S3Error(
      'InvalidRequest',
      `Checksum Type mismatch occurred, expected checksum Type: ${algorithm.toLowerCase()}, actual checksum Type: ${asserted.algorithm.toLowerCase()}`,
    );
  }
  const body = requestBody(r, { maxBytes: partBytesMax, partNumber: req.partNumber, algorithm });
  const { digests } = await putPart(r, upload, req.partNumber, body);
  r.koa.status = 200;
  r.koa.set('ETag', quote(digests.md5Hex));
  if (digests.checksum) r.koa.set(checksumHeader[digests.checksum.algorithm], digests.checksum.value);
  r.koa.body = Buffer.alloc(0);
}

export async function uploadPartCopy(r: RequestCtx, req: Op<'UploadPartCopy'>): Promise<void> {
  await requireBucket(r, req.bucket);
  const upload = await activeUpload(r, req);
  const src = await copySource(r, req.source);
  const range = copyRange(header(r.headers, 'x-amz-copy-source-range'), src.size);
  const size = range.end - range.start + 1;
  if (size > partBytesMax) throw new S3Error('EntityTooLarge');
  const algorithm = (upload.checksumAlgorithm ?? undefined) as ChecksumAlgorithm | undefined;
  const { part, digests } = await putPart(
    r,
    upload,
    req.partNumber,
    await sourceBody(r, src, range, algorithm),
  );
  sendXml(
    r,
    copyPartResultXml({
      etag: digests.md5Hex,
      lastModified: part.lastModified,
      checksums: digests.checksum ? { [digests.checksum.algorithm]: digests.checksum.value } : undefined,
    }),
  );
}

/** `bytes=first-last` within the source; absent means the whole source. */
function copyRange(v: string | undefined, size: number): { start: number; end: number } {
  if (v === undefined) return { start: 0, end: size - 1 };
  const m = /^bytes=(\d{1,16})-(\d{1,16})$/.exec(v.trim());
  if (!m || Number(m[1]) > Number(m[2]))
    throw new S3Error(
      'InvalidArgument',
      'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
      { extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: v } },
    );
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end >= size)
    throw new S3Error('InvalidRange', 'The requested range is not satisfiable', {
      extra: { RangeRequested: v, ActualObjectSize: String(size) },
    });
  return { start, end };
}

function activeUpload(
  r: RequestCtx,
  req: { bucket: string; key: string; uploadId: string },
): Promise<UploadRow> {
  return r.gw.store.activeUpload(req.uploadId, req.bucket, req.key);
}

/** Stores `body` as the part; a part of the same number is replaced. */
async function putPart(
  r: RequestCtx,
  upload: UploadRow,
  partNumber: number,
  body: Body,
): Promise<{ part: PartRow; digests: Digests }> {
  let digests: Digests | undefined;
  const part = await r.gw.store.putPart(upload, partNumber, body, (stored: Stored) => {
    digests = digestsOf(body, stored);
    return {
      size: stored.size,
      etag: digests.md5Hex,
      checksumAlgorithm: digests.checksum?.algorithm ?? null,
      checksumValue: digests.checksum?.value ?? null,
    };
  });
  return { part, digests: digests! };
}

// ---- complete and abort ----------------------------------------------------------------------

export async function completeMultipartUpload(
  r: RequestCtx,
  req: Op<'CompleteMultipartUpload'>,
): Promise<void> {
  await requireBucket(r, req.bucket);
  const cond = writeConditions(r);
  // On Complete, x-amz-checksum-* asserts the object's checksum, not the XML body's: read the
  // body without it (the signed payload hash and Content-MD5 are still verified).
  const body = await readSmallBody(
    { ...r, headers: withoutChecksumHeaders(r) },
    completeMultipartBodyBytesMax,
  );
  const parts = await parseCompleteMultipartUpload(body);
  const result = await r.gw.store.complete({
    uploadId: req.uploadId,
    bucket: req.bucket,
    key: req.key,
    parts: parts.map((p) => ({ partNumber: p.partNumber, etag: p.etag, checksums: p.checksums })),
    minPartBytes: r.gw.config.multipartPartMinBytes,
    cond,
    finalChecksum,
    verify: (upload, size, checksum) => verifyAsserted(r, upload, size, checksum),
  });
  const checksums: ChecksumMap | undefined =
    result.checksumAlgorithm && result.checksumValue
      ? { [result.checksumAlgorithm as ChecksumAlgorithm]: result.checksumValue }
      : undefined;
  sendXml(
    r,
    completeMultipartUploadXml({
      location: locationOf(r, req.bucket, req.key),
      bucket: req.bucket,
      key: req.key,
      etag: result.etag,
      checksums,
      checksumType: checksums ? (result.checksumType ?? undefined) : undefined,
    }),
  );
}

export async function abortMultipartUpload(r: RequestCtx, req: Op<'AbortMultipartUpload'>): Promise<void> {
  await requireBucket(r, req.bucket);
  await r.gw.store.abort(req.uploadId, req.bucket, req.key);
  r.koa.status = 204;
  r.koa.body = null;
}

/** The object checksum: composite `hash(raw part checksums)-N`, or a full-object CRC. */
async function finalChecksum(upload: UploadRow, parts: PartRow[]): Promise<string | null> {
  const algorithm = upload.checksumAlgorithm as ChecksumAlgorithm | null;
  if (!algorithm) return null;
  for (const p of parts) {
    if (p.checksumAlgorithm !== algorithm || !p.checksumValue)
      throw new UploadRejected('InvalidPart', `Part ${p.partNumber} has no ${algorithm} checksum.`, {
        PartNumber: String(p.partNumber),
      });
  }
  if (upload.checksumType === 'FULL_OBJECT' && isCrcAlgorithm(algorithm))
    return combineCrcs(
      algorithm,
      parts.map((p) => ({ checksum: p.checksumValue!, size: p.size })),
    );
  return compositeChecksum(
    algorithm,
    parts.map((p) => p.checksumValue!),
  );
}

/** What Complete's headers assert about the result: x-amz-checksum-*, its type, x-amz-mp-object-size. */
function verifyAsserted(r: RequestCtx, upload: UploadRow, size: number, checksum: string | null): void {
  const h = r.headers;
  const objectSize = header(h, 'x-amz-mp-object-size');
  if (objectSize !== undefined && Number(objectSize) !== size)
    throw new UploadRejected(
      'InvalidRequest',
      `The provided x-amz-mp-object-size ${objectSize} does not match the object size ${size}.`,
    );
  const type = header(h, 'x-amz-checksum-type');
  if (type !== undefined && upload.checksumType && type.trim().toUpperCase() !== upload.checksumType)
    throw new UploadRejected(
      'InvalidRequest',
      `The upload was created using the ${upload.checksumType} checksum mode. The complete request must use the same checksum mode.`,
    );
  for (const a of checksumAlgorithms) {
    const asserted = header(h, checksumHeader[a])?.trim();
    if (asserted === undefined) continue;
    if (a !== upload.checksumAlgorithm || checksum === null)
      throw new UploadRejected(
        'InvalidRequest',
        `The upload was created using ${upload.checksumAlgorithm ?? 'no'} checksum; ${checksumHeader[a]} does not apply.`,
      );
    // A composite value may be asserted with or without its `-N` suffix.
    if (asserted !== checksum && asserted !== checksum.replace(/-\d+$/, ''))
      throw new UploadRejected('BadDigest', `The ${a} you specified did not match the calculated checksum.`);
  }
}

function withoutChecksumHeaders(r: RequestCtx): RequestCtx['headers'] {
  const h = { ...r.headers };
  for (const a of checksumAlgorithms) delete h[checksumHeader[a]];
  return h;
}

function locationOf(r: RequestCtx, bucket: string, key: string): string {
  const host = header(r.headers, 'host') ?? 'localhost';
  const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  return `${r.koa.protocol}://${host}${path}`;
}

// ---- listings --------------------------------------------------------------------------------

export async function listParts(r: RequestCtx, req: Op<'ListParts'>): Promise<void> {
  await requireBucket(r, req.bucket);
  const upload = await activeUpload(r, req);
  const rows =
    req.maxParts > 0
      ? await r.gw.store.uploads.listParts(req.uploadId, req.partNumberMarker, req.maxParts)
      : [];
  const isTruncated = rows.length > req.maxParts;
  const parts = rows.slice(0, req.maxParts);
  sendXml(
    r,
    listPartsXml({
      bucket: req.bucket,
      key: req.key,
      uploadId: req.uploadId,
      partNumberMarker: req.partNumberMarker,
      nextPartNumberMarker: parts.length > 0 ? parts[parts.length - 1].partNumber : undefined,
      maxParts: req.maxParts,
      isTruncated,
      owner: ownerOf(r),
      checksumAlgorithm: (upload.checksumAlgorithm ?? undefined) as ChecksumAlgorithm | undefined,
      checksumType: upload.checksumType ?? undefined,
      parts: parts.map((p) => ({
        partNumber: p.partNumber,
        lastModified: p.lastModified,
        etag: p.etag,
        size: p.size,
        checksums:
          p.checksumAlgorithm && p.checksumValue
            ? { [p.checksumAlgorithm as ChecksumAlgorithm]: p.checksumValue }
            : undefined,
      })),
    }),
  );
}

export async function listMultipartUploads(r: RequestCtx, req: Op<'ListMultipartUploads'>): Promise<void> {
  await requireBucket(r, req.bucket);
  const page = await r.gw.store.uploads.list(req.bucket, req);
  sendXml(
    r,
    listMultipartUploadsXml({
      bucket: req.bucket,
      keyMarker: req.keyMarker,
      uploadIdMarker: req.uploadIdMarker,
      nextKeyMarker: page.isTruncated ? page.nextKeyMarker : undefined,
      nextUploadIdMarker: page.isTruncated ? page.nextUploadIdMarker : undefined,
      prefix: req.prefix,
      delimiter: req.delimiter,
      maxUploads: req.maxUploads,
      isTruncated: page.isTruncated,
      encodingType: req.encodingType,
      commonPrefixes: page.commonPrefixes,
      uploads: page.uploads.map((u) => ({
        key: u.key,
        uploadId: u.id,
        initiated: u.initiatedAt,
        owner: ownerOf(r),
        checksumAlgorithm: (u.checksumAlgorithm ?? undefined) as ChecksumAlgorithm | undefined,
      })),
    }),
  );
}
