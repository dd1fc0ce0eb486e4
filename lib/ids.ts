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

/** Short random ids for nodes, uploads and request ids. */
export function randomId(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}
