// S3 error catalog: every error the gateway answers with carries its AWS code and HTTP status.
// Lower layers throw lib/errors.ts domain errors; toS3Error translates them here and nowhere else.
// Codes and statuses: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
import {
  BadRequest,
  Conflict,
  Corrupt,
  DomainError,
  IncompleteBody,
  InsufficientStorage,
  NoSuchBucket,
  NoSuchKey,
  NoSuchUpload,
  NotFound,
  PreconditionFailed,
  Unavailable,
  UploadRejected,
} from '../../lib/errors.js';

export const s3ErrorStatus = {
  AccessDenied: 403,
  AccessForbidden: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BadRequest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  ExpiredToken: 400,
  IncompleteBody: 400,
  InsufficientStorage: 507,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidBucketState: 409,
  InvalidDigest: 400,
  InvalidLocationConstraint: 400,
  InvalidEncryptionAlgorithmError: 400,
  InvalidObjectState: 403,
  InvalidPart: 400,
  InvalidPartNumber: 416,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidStorageClass: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedTrailerError: 400,
  InvalidTag: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingRequestBodyError: 400,
  NoSuchBucket: 404,
  NoSuchBucketPolicy: 404,
  NoSuchCORSConfiguration: 404,
  NoSuchLifecycleConfiguration: 404,
  NoSuchTagSet: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  NoSuchPublicAccessBlockConfiguration: 404,
  NoSuchWebsiteConfiguration: 404,
  OwnershipControlsNotFoundError: 404,
  ReplicationConfigurationNotFoundError: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestTimeout: 400,
  RequestTimeTooSkewed: 403,
  ServerSideEncryptionConfigurationNotFoundError: 404,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  TooManyParts: 400,
  UnexpectedContent: 400,
  XAmzContentSHA256Mismatch: 400,
} as const;

export type S3ErrorCode = keyof typeof s3ErrorStatus;

/** AWS's own wording where it is well known, so clients and humans see familiar messages. */
const defaultMessages: Partial<Record<S3ErrorCode, string>> = {
  AccessDenied: 'Access Denied',
  AccessForbidden:
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
  BadDigest: 'The Content-MD5 or checksum value that you specified did not match what the server received.',
  BucketAlreadyExists: 'The requested bucket name is not available.',
  BucketAlreadyOwnedByYou:
    'Your previous request to create the named bucket succeeded and you already own it.',
  BucketNotEmpty: 'The bucket you tried to delete is not empty',
  EntityTooLarge: 'Your proposed upload exceeds the maximum allowed size',
  EntityTooSmall: 'Your proposed upload is smaller than the minimum allowed object size.',
  IncompleteBody: 'You did not provide the number of bytes specified by the Content-Length HTTP header',
  InsufficientStorage: 'The storage cluster does not have enough free space to store this object.',
  InternalError: 'We encountered an internal error. Please try again.',
  InvalidAccessKeyId: 'The AWS Access Key Id you provided does not exist in our records.',
  InvalidBucketName: 'The specified bucket is not valid.',
  InvalidDigest: 'The Content-MD5 you specified is not valid.',
  InvalidPart:
    "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
  InvalidPartOrder: 'The list of parts was not in ascending order. Parts must be ordered by part number.',
  InvalidRange: 'The requested range is not satisfiable',
  KeyTooLongError: 'Your key is too long',
  MalformedTrailerError:
    'The request contained trailing data that was not well-formed or did not match the declared trailers.',
  InvalidTag: 'The tag provided was not a valid tag.',
  MalformedXML: 'The XML you provided was not well-formed or did not validate against our published schema',
  MethodNotAllowed: 'The specified method is not allowed against this resource.',
  MissingContentLength: 'You must provide the Content-Length HTTP header.',
  NoSuchBucket: 'The specified bucket does not exist',
  NoSuchKey: 'The specified key does not exist.',
  NoSuchBucketPolicy: 'The bucket policy does not exist',
  NoSuchCORSConfiguration: 'The CORS configuration does not exist',
  NoSuchLifecycleConfiguration: 'The lifecycle configuration does not exist',
  NoSuchTagSet: 'The TagSet does not exist',
  NoSuchPublicAccessBlockConfiguration: 'The public access block configuration was not found',
  NoSuchWebsiteConfiguration: 'The specified bucket does not have a website configuration',
  OwnershipControlsNotFoundError: 'The bucket ownership controls were not found',
  ReplicationConfigurationNotFoundError: 'The replication configuration was not found',
  ServerSideEncryptionConfigurationNotFoundError: 'The server side encryption configuration was not found',
  InvalidURI: "Couldn't parse the specified URI.",
  NoSuchUpload:
    'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  NotImplemented: 'A header or query you provided implies functionality that is not implemented.',
  NotModified: 'Not Modified',
  PreconditionFailed: 'At least one of the pre-conditions you specified did not hold',
  RequestTimeTooSkewed: 'The difference between the request time and the current time is too large.',
  ServiceUnavailable: 'Please reduce your request rate.',
  SignatureDoesNotMatch:
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  SlowDown: 'Please reduce your request rate.',
  XAmzContentSHA256Mismatch: "The provided 'x-amz-content-sha256' header does not match what was computed.",
};

export class S3Error extends Error {
  readonly status: number;
  /** Extra elements for the error XML (e.g. RequestTime/ServerTime, ArgumentName/ArgumentValue). */
  readonly extra?: Record<string, string>;
  /** Optional headers to send with the error response (e.g. Retry-After on 503). */
  readonly headers?: Record<string, string>;

  constructor(
    readonly code: S3ErrorCode,
    message?: string,
    opts: { extra?: Record<string, string>; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(
      message ?? defaultMessages[code] ?? code,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.name = 'S3Error';
    this.status = s3ErrorStatus[code];
    if (opts.extra) this.extra = opts.extra;
    if (opts.headers) this.headers = opts.headers;
  }
}

/** Fixed message for unexpected failures: details go to the log, never to the client. */
export const internalErrorMessage = 'We encountered an internal error. Please try again.';

/**
 * The one place domain errors become S3 errors. `notFound` names the S3 code a NotFound maps to
 * in the caller's context (NoSuchKey, NoSuchBucket, NoSuchUpload, ...); default NoSuchKey.
 * Anything unknown becomes InternalError with a fixed message (the caller logs the stack).
 */
export function toS3Error(err: unknown, notFound: S3ErrorCode = 'NoSuchKey'): S3Error {
  if (err instanceof S3Error) return err;
  if (err instanceof DomainError) {
    if (err instanceof NoSuchBucket)
      return new S3Error('NoSuchBucket', undefined, { cause: err, extra: { BucketName: err.bucket } });
    if (err instanceof NoSuchKey)
      return new S3Error('NoSuchKey', undefined, { cause: err, extra: { Key: err.key } });
    if (err instanceof NoSuchUpload)
      return new S3Error('NoSuchUpload', undefined, { cause: err, extra: { UploadId: err.uploadId } });
    if (err instanceof NotFound) return new S3Error(notFound, undefined, { cause: err });
    if (err instanceof PreconditionFailed)
      return new S3Error('PreconditionFailed', undefined, {
        cause: err,
        extra: { Condition: err.condition },
      });
    if (err instanceof UploadRejected)
      return new S3Error(err.code, err.message, { cause: err, extra: err.detail });
    if (err instanceof IncompleteBody) return new S3Error('IncompleteBody', undefined, { cause: err });
    // Lost quorum, too few live nodes, timeouts: retryable, as S3 does with 503 SlowDown/ServiceUnavailable.
    if (err instanceof Unavailable)
      return new S3Error('ServiceUnavailable', 'Not enough storage nodes are available. Please retry.', {
        cause: err,
        headers: { 'retry-after': '1' },
      });
    // Every replica failed its hash check: the data exists but cannot be served now; a retry may
    // succeed after repair, so 503 rather than a permanent 500.
    if (err instanceof Corrupt)
      return new S3Error(
        'ServiceUnavailable',
        'No intact replica of the requested data is available right now.',
        {
          cause: err,
        },
      );
    if (err instanceof InsufficientStorage)
      return new S3Error('InsufficientStorage', undefined, { cause: err });
    if (err instanceof BadRequest) return new S3Error('InvalidRequest', err.message, { cause: err });
    // A conflicting concurrent change (e.g. conditional write lost the race).
    if (err instanceof Conflict) return new S3Error('PreconditionFailed', undefined, { cause: err });
  }
  return new S3Error('InternalError', internalErrorMessage, { cause: err });
}

export function xmlEscape(s: string): string {
  return s
    .replace(/[&<>"']/g, (c) => xmlEntities[c])
    .replace(xmlInvalidChars, (c) => `&#${c.codePointAt(0)};`);
}
const xmlEntities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};
// Control characters are not legal in XML 1.0 even as references except \t \n \r; AWS emits them as
// numeric references, which lenient parsers (and all the SDKs) accept. \r is escaped so it survives
// XML end-of-line normalization.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const xmlInvalidChars = /[\u0000-\u0008\u000b\u000c\u000d\u000e-\u001f\ufffe\uffff]/g;

/** The S3 error document. HEAD responses must not carry it (no body on HEAD). */
export function errorXml(err: S3Error, resource: string, requestId: string): string {
  let extra = '';
  for (const [k, v] of Object.entries(err.extra ?? {})) extra += `<${k}>${xmlEscape(v)}</${k}>`;
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${extra}` +
    `<Resource>${xmlEscape(resource)}</Resource><RequestId>${xmlEscape(requestId)}</RequestId></Error>`
  );
}
