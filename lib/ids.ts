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

const alphanumeric = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A new S3 key pair: an access key id of uppercase letters and digits like AWS's, and a 40-character
 * secret of letters and digits (238 bits). No '-', '+', '/' or '=': a secret starting with '-' is
 * read as a flag by `--secret-key <secret>` style command lines, and the others need quoting or
 * escaping in URLs and config files.
 */
export function newKeyPair(): { accessKey: string; secretKey: string } {
  let secretKey = '';
  while (secretKey.length < 40) {
    for (const b of randomBytes(48)) {
      // 248 = 4 × 62: rejecting bytes above it keeps every character equally likely.
      if (b < 248 && secretKey.length < 40) secretKey += alphanumeric[b % 62];
    }
  }
  return { accessKey: `S3DFS${randomBytes(8).toString('hex').toUpperCase()}`, secretKey };
}
