import { createHash } from 'node:crypto';

/** Deterministic, non-repeating-looking bytes, so a misplaced or swapped range changes the hash. */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Hex SHA-256, for comparing bodies without printing megabytes on a failure. */
export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
