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
