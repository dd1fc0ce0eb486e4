// Domain errors thrown by the storage and metadata layers. The gateway translates them to S3
// error codes in exactly one place (gateway/s3/errors.ts); the manager to JSON errors.

export class DomainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}
/** The thing asked for does not exist. */
export class NotFound extends DomainError {}
/** Not enough healthy replicas or nodes to do the work right now (→ 503). */
export class Unavailable extends DomainError {}
/** Stored bytes do not match their recorded hash. */
export class Corrupt extends DomainError {}
/** The request conflicts with existing state (same id, different content). */
export class Conflict extends DomainError {}
/** The request itself is invalid. */
export class BadRequest extends DomainError {}
/** A body ended before its declared length. */
export class IncompleteBody extends BadRequest {}
/** The disk is full. */
export class InsufficientStorage extends DomainError {}

// The gateway's storage outcomes, each mapped to its S3 error by gateway/s3/errors.ts.

export class NoSuchBucket extends NotFound {
  constructor(readonly bucket: string) {
    super(`no bucket ${bucket}`);
  }
}
export class NoSuchKey extends NotFound {
  constructor(readonly key: string) {
    super(`no key ${key}`);
  }
}
export class NoSuchUpload extends NotFound {
  constructor(readonly uploadId: string) {
    super(`no active upload ${uploadId}`);
  }
}
/** A conditional write or copy found the object other than `condition` (the header) required. */
export class PreconditionFailed extends Conflict {
  constructor(
    readonly condition: string,
    message = `${condition} does not hold`,
  ) {
    super(message);
  }
}
/** CompleteMultipartUpload refused: the code is the S3 one, as it names the rule broken. */
export class UploadRejected extends BadRequest {
  constructor(
    readonly code: 'InvalidPart' | 'EntityTooSmall' | 'BadDigest' | 'InvalidRequest',
    message: string,
    readonly detail: Record<string, string> = {},
  ) {
    super(message);
  }
}
