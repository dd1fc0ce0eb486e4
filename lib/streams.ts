import { BadRequest, IncompleteBody } from './errors.js';

/**
 * A body of exactly `size` bytes, read whole into memory (callers keep `size` small). Fewer bytes
 * (a client that stopped early) is IncompleteBody, more is BadRequest: nothing short or long is
 * ever stored.
 */
export async function readExactly(body: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const piece of body) {
    bytes += piece.length;
    if (bytes > size) throw new BadRequest('body longer than declared length');
    parts.push(piece);
  }
  if (bytes !== size) throw new IncompleteBody(`body ended after ${bytes} of ${size} bytes`);
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
}
