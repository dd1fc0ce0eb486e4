// Progress of each healing activity (queued, done, bytes, bytes/s, ETA), served in GET /api/cluster
// and as Prometheus gauges. Rates are measured over a sliding window so a burst or a pause shows
// up within seconds rather than being averaged over the manager's whole life.
import { Gauge, type Registry } from 'prom-client';

/** Long enough to smooth per-chunk steps, short enough that a stalled activity shows 0 B/s soon. */
const RATE_WINDOW_MS = 10_000;
/**
 * A queue is counted again at most this often: a count reads the whole queue (its cost follows the
 * work waiting, not the data stored, but a million queued rows every pass would still be a waste);
 * in between, consume() moves the figures as items finish.
 */
export const RECOUNT_MS = 5000;

export type Activity = 'repair' | 'rebalance' | 'drain' | 'gc' | 'scrub';
export const ACTIVITIES: Activity[] = ['repair', 'rebalance', 'drain', 'gc', 'scrub'];

export interface ActivityProgress {
  /** Work known to be waiting (chunks, replicas or queue rows). */
  queued: number;
  queuedBytes: number;
  /** Items finished since the manager started. */
  done: number;
  failed: number;
  bytes: number;
  bytesPerSec: number;
  /** Seconds until `queuedBytes` is done at the current rate; null when idle or stalled. */
  etaSec: number | null;
  lastPassAt: string | null;
}

export interface DrainProgress {
  nodeId: string;
  replicasLeft: number;
  bytesLeft: number;
  done: boolean;
}

export interface HealingProgress {
  enabled: boolean;
  passes: number;
  running: boolean;
  lastPassAt: string | null;
  lastPassMs: number | null;
  lastError: string | null;
  repair: ActivityProgress;
  rebalance: ActivityProgress;
  drain: ActivityProgress & { nodes: DrainProgress[] };
  gc: ActivityProgress & { orphansDeleted: number; leftoversDeleted: number };
  scrub: ActivityProgress & { corruptFound: number; lostFound: number };
}

export class ActivityMeter {
  queued = 0;
  queuedBytes = 0;
  done = 0;
  failed = 0;
  bytes = 0;
  lastPassAt: number | null = null;
  private countedAt = 0;
  private window: { at: number; bytes: number; items: number }[] = [];

  record(bytes: number, items = 1): void {
    this.done += items;
    this.bytes += bytes;
    this.window.push({ at: Date.now(), bytes, items });
  }

  fail(): void {
    this.failed += 1;
  }

  /** True when the queue is due for a recount (and from now on counted as just done). */
  recountDue(now = Date.now()): boolean {
    if (now - this.countedAt < RECOUNT_MS) return false;
    this.countedAt = now;
    return true;
  }

  /** Lowers the queue as work completes between two scans, so the ETA moves in between. */
  consume(bytes: number): void {
    this.queued = Math.max(0, this.queued - 1);
    this.queuedBytes = Math.max(0, this.queuedBytes - bytes);
  }

  snapshot(now = Date.now()): ActivityProgress {
    this.window = this.window.filter((w) => now - w.at <= RATE_WINDOW_MS);
    const span = Math.min(RATE_WINDOW_MS, Math.max(1000, now - (this.window[0]?.at ?? now))) / 1000;
    const bytesPerSec = this.window.reduce((a, w) => a + w.bytes, 0) / span;
    const itemsPerSec = this.window.reduce((a, w) => a + w.items, 0) / span;
    let etaSec: number | null = null;
    if (this.queued === 0) etaSec = 0;
    else if (this.queuedBytes > 0 && bytesPerSec > 0) etaSec = Math.ceil(this.queuedBytes / bytesPerSec);
    else if (itemsPerSec > 0) etaSec = Math.ceil(this.queued / itemsPerSec);
    return {
      queued: this.queued,
      queuedBytes: this.queuedBytes,
      done: this.done,
      failed: this.failed,
      bytes: this.bytes,
      bytesPerSec: Math.round(bytesPerSec),
      etaSec,
      lastPassAt: this.lastPassAt === null ? null : new Date(this.lastPassAt).toISOString(),
    };
  }
}

export class GcMeter extends ActivityMeter {
  orphansDeleted = 0;
  /** Chunks of failed or crashed writes deleted through their intents (leftovers.ts). */
  leftoversDeleted = 0;
}

export class ScrubMeter extends ActivityMeter {
  corruptFound = 0;
  lostFound = 0;
}

export interface Meters {
  repair: ActivityMeter;
  rebalance: ActivityMeter;
  drain: ActivityMeter;
  gc: GcMeter;
  scrub: ScrubMeter;
}

export function newMeters(): Meters {
  return {
    repair: new ActivityMeter(),
    rebalance: new ActivityMeter(),
    drain: new ActivityMeter(),
    gc: new GcMeter(),
    scrub: new ScrubMeter(),
  };
}

/**
 * Gauges labelled by activity, filled from `read()` at each scrape (prom-client's collect hook), on
 * the manager's own registry.
 */
export function registerHealingMetrics(registry: Registry, read: () => HealingProgress): void {
  const fields: [keyof ActivityProgress, string, string][] = [
    ['queued', 's3dfs_heal_queued', 'healing work waiting (chunks, replicas or queue rows)'],
    ['queuedBytes', 's3dfs_heal_queued_bytes', 'bytes of healing work waiting'],
    ['done', 's3dfs_heal_done', 'healing items done since the manager started'],
    ['failed', 's3dfs_heal_failed', 'healing items that failed (retried later)'],
    ['bytes', 's3dfs_heal_bytes', 'bytes moved, deleted or re-read since the manager started'],
    ['bytesPerSec', 's3dfs_heal_bytes_per_sec', 'healing throughput over the last 10 s'],
    ['etaSec', 's3dfs_heal_eta_seconds', 'estimated seconds until the queued work is done'],
  ];
  for (const [field, name, help] of fields) {
    new Gauge({
      name,
      help,
      labelNames: ['activity'],
      registers: [registry],
      collect() {
        const p = read();
        this.reset();
        for (const a of ACTIVITIES) {
          const v = p[a][field];
          if (typeof v === 'number') this.set({ activity: a }, v);
        }
      },
    });
  }
  new Gauge({
    name: 's3dfs_heal_passes',
    help: 'healing passes run since the manager started',
    registers: [registry],
    collect() {
      this.set(read().passes);
    },
  });
  new Gauge({
    name: 's3dfs_heal_orphans_deleted',
    help: 'files deleted from nodes because no metadata knew them',
    registers: [registry],
    collect() {
      this.set(read().gc.orphansDeleted);
    },
  });
  new Gauge({
    name: 's3dfs_heal_leftovers_deleted',
    help: 'chunks of failed or crashed writes deleted from nodes through their write intents',
    registers: [registry],
    collect() {
      this.set(read().gc.leftoversDeleted);
    },
  });
  new Gauge({
    name: 's3dfs_heal_corrupt_found',
    help: 'replicas found corrupt or lost by scrubbing and inventory walks',
    registers: [registry],
    collect() {
      const p = read();
      this.set(p.scrub.corruptFound + p.scrub.lostFound);
    },
  });
}
