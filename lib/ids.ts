import { randomBytes } from 'node:crypto';

// Chunk ids are 128 random bits as 32 lowercase hex characters: unguessable, collision-free in
// practice, and a fixed alphabet and length so an id can never name a path outside a data dir.
export const chunkIdPattern = /^[0-9a-f]{32}$/;

export function newChunkId(): string {
  return randomBytes(16).toString('hex');
}

export function isChunkId(id: string): boolean {
  return chunkIdPattern.test(id);
}

/** Short random ids for nodes, uploads and temp files. */
export function randomId(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

/**
 * Request ids: a random prefix per process and a counter, 16 uppercase hex characters like S3's.
 * Unique without a call into the CSPRNG per request, which cost more than the id is worth.
 */
const requestIdPrefix = randomBytes(4).toString('hex').toUpperCase();
let requestCounter = 0;

export function newRequestId(): string {
  requestCounter = (requestCounter + 1) % 0x100000000;
  return requestIdPrefix + requestCounter.toString(16).toUpperCase().padStart(8, '0');
}
