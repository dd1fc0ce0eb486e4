// Latency and throughput bookkeeping for one workload.

export interface Result {
  name: string;
  ops: number;
  errors: number;
  bytes: number;
  seconds: number;
  opsPerSec: number;
  mbPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Free-form extras: errors by kind, key counts, why a workload was skipped. */
  notes: string[];
}

/** Latencies kept per workload; more samples than this add nothing to a p99. */
const samplesMax = 200_000;

export class Recorder {
  private readonly latencies: number[] = [];
  private readonly started = performance.now();
  ops = 0;
  errors = 0;
  bytes = 0;
  readonly notes: string[] = [];
  private readonly errorKinds = new Map<string, number>();

  constructor(readonly name: string) {}

  ok(ms: number, bytes: number): void {
    this.ops++;
    this.bytes += bytes;
    if (this.latencies.length < samplesMax) this.latencies.push(ms);
  }

  fail(err: unknown): void {
    this.errors++;
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    const kind = `${e.name ?? 'Error'}${status ? ` ${status}` : ''}: ${String(e.message ?? err).slice(0, 120)}`;
    this.errorKinds.set(kind, (this.errorKinds.get(kind) ?? 0) + 1);
  }

  /**
   * Times one operation; a throw counts as an error, not a crash of the run. The latency runs to
   * the operation's end, or to its first call of `mark` (a GET's first body byte) if it makes one.
   */
  async time(op: (mark: () => void) => Promise<number>): Promise<boolean> {
    const t0 = performance.now();
    let marked: number | undefined;
    try {
      const bytes = await op(() => {
        marked ??= performance.now();
      });
      this.ok((marked ?? performance.now()) - t0, bytes);
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  result(): Result {
    const seconds = (performance.now() - this.started) / 1000;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const pct = (p: number) =>
      sorted.length ? round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))], 2) : null;
    const notes = [...this.notes];
    for (const [kind, n] of this.errorKinds) notes.push(`${n}× ${kind}`);
    return {
      name: this.name,
      ops: this.ops,
      errors: this.errors,
      bytes: this.bytes,
      seconds: round(seconds, 2),
      opsPerSec: round(this.ops / seconds, 1),
      mbPerSec: round(this.bytes / 1e6 / seconds, 1),
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
      notes,
    };
  }
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Runs op(i) for i in [0, count) with `concurrency` workers, stopping early at the deadline.
 * Bounded in both count and time.
 */
export async function pool(
  count: number,
  concurrency: number,
  timeLimitMs: number,
  op: (i: number) => Promise<unknown>,
): Promise<number> {
  const deadline = Date.now() + timeLimitMs;
  let next = 0;
  const worker = async () => {
    while (next < count && Date.now() < deadline) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return next;
}

/** A small seeded PRNG (mulberry32) so offsets and mixes repeat from run to run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
