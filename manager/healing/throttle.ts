// A shared byte-rate limit for copies: every copy's bytes pass through a Transform that waits for
// its share, so concurrent repairs together stay under the configured bandwidth.
import { Transform, type TransformCallback } from 'node:stream';

/** Credit never accumulates beyond this much idle time, so a quiet minute is no license to flood. */
const BURST_MS = 1000;

export class Throttle {
  private nextFreeAt = 0;

  constructor(private readonly bytesPerSec: number) {}

  get enabled(): boolean {
    return this.bytesPerSec > 0;
  }

  /** Milliseconds to wait before `bytes` more may pass. */
  reserve(bytes: number, now = Date.now()): number {
    if (!this.enabled) return 0;
    const start = Math.max(this.nextFreeAt, now - BURST_MS);
    this.nextFreeAt = start + (bytes / this.bytesPerSec) * 1000;
    return Math.max(0, start - now);
  }

  stream(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) => {
        const wait = this.reserve(chunk.length);
        if (wait <= 0) cb(null, chunk);
        else setTimeout(() => cb(null, chunk), wait);
      },
    });
  }
}
