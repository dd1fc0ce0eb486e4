// The healing scheduler: one loop in the manager, one pass at a time, each pass bounded in work:
// GC → leftovers of failed writes → reconcile page (the repair queue's safety net) → repair from the
// queue (fewest replicas first; drains too) → rebalance slice → inventory walk → scrub slice → drain
// bookkeeping. No DB transaction is held across network I/O (PGlite has one connection).
import http from 'node:http';
import type { Knex } from 'knex';
import type { Registry } from 'prom-client';
import type { Logger } from '../../lib/logger.js';
import type { HealConfig } from '../config.js';
import type { Monitor } from '../monitor.js';
import { type HealContext, NodeClients } from './context.js';
import { DrainTracker } from './drain.js';
import { type FsckReport, fsck } from './fsck.js';
import { GarbageCollector } from './gc.js';
import { InventoryWalker } from './inventory.js';
import { leftoversPass } from './leftovers.js';
import { type HealingProgress, newMeters, registerHealingMetrics } from './progress.js';
import { Rebalancer } from './rebalance.js';
import { Reconciler } from './reconcile.js';
import { Repairer } from './repair.js';
import { Scrubber } from './scrub.js';
import { Throttle } from './throttle.js';

/** A copy or scrub read silent this long is given up (the node is gone); the pass moves on. */
const NODE_TIMEOUT_MS = 30_000;

export interface HealerOptions {
  db: Knex;
  logger: Logger;
  monitor: Monitor;
  config: HealConfig;
  replication: number;
  clusterSecret: string;
  uploadExpiryMs: number;
  registry?: Registry;
}

export interface PassInfo {
  passId: number;
  running: boolean;
  queued: boolean;
}

export class Healer {
  private readonly ctx: HealContext;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16, maxFreeSockets: 4 });
  private readonly rebalancer: Rebalancer;
  private readonly inventory: InventoryWalker;
  private readonly scrubber: Scrubber;
  private readonly drains: DrainTracker;
  private readonly gc: GarbageCollector;
  private readonly repairer: Repairer;
  private readonly reconciler: Reconciler;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = true;
  private passes = 0;
  private lastPassAt: number | null = null;
  private lastPassMs: number | null = null;
  private lastError: string | null = null;

  constructor(private readonly opts: HealerOptions) {
    const monitor = opts.monitor;
    this.ctx = {
      db: opts.db,
      log: opts.logger.child({ component: 'healer' }),
      config: opts.config,
      replication: opts.replication,
      monitor,
      throttle: new Throttle(opts.config.repairBytesPerSec),
      meters: newMeters(),
      clients: new NodeClients(monitor, opts.clusterSecret, this.agent, NODE_TIMEOUT_MS),
      stopping: () => this.stopped,
    };
    this.rebalancer = new Rebalancer(this.ctx);
    this.inventory = new InventoryWalker(this.ctx);
    this.scrubber = new Scrubber(this.ctx);
    this.drains = new DrainTracker(this.ctx);
    this.gc = new GarbageCollector(this.ctx);
    this.repairer = new Repairer(this.ctx);
    this.reconciler = new Reconciler(this.ctx);
    if (opts.registry) registerHealingMetrics(opts.registry, () => this.progress());
  }

  start(): void {
    this.stopped = false;
    if (this.opts.config.intervalMs > 0) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    this.agent.destroy();
  }

  /**
   * Starts a pass now (or right after the running one); a full inventory walk and reconcile walk
   * come with it.
   */
  kick(): PassInfo {
    this.inventory.markAllDue();
    this.rebalancer.restart();
    this.reconciler.restart();
    if (this.running) {
      this.again = true;
      return { passId: this.passes + 1, running: true, queued: true };
    }
    clearTimeout(this.timer);
    this.run();
    return { passId: this.passes, running: true, queued: false };
  }

  /** A node's volume changed: walk its inventory in the next pass, which starts now. */
  inventoryNow(nodeId: string): void {
    this.inventory.markDue(nodeId);
    if (this.opts.config.intervalMs === 0) return; // healing is off: the next asked-for pass walks it
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  /** Resolves when the pass running now (if any) has finished. */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  fsck(): Promise<FsckReport> {
    return fsck(this.ctx, this.opts.uploadExpiryMs);
  }

  progress(): HealingProgress {
    const m = this.ctx.meters;
    return {
      enabled: this.opts.config.intervalMs > 0,
      passes: this.passes,
      running: this.running !== undefined,
      lastPassAt: this.lastPassAt === null ? null : new Date(this.lastPassAt).toISOString(),
      lastPassMs: this.lastPassMs,
      lastError: this.lastError,
      repair: m.repair.snapshot(),
      rebalance: m.rebalance.snapshot(),
      drain: { ...m.drain.snapshot(), nodes: this.drains.nodes },
      gc: {
        ...m.gc.snapshot(),
        orphansDeleted: m.gc.orphansDeleted,
        leftoversDeleted: m.gc.leftoversDeleted,
      },
      scrub: { ...m.scrub.snapshot(), corruptFound: m.scrub.corruptFound, lostFound: m.scrub.lostFound },
    };
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delayMs);
  }

  private run(): void {
    if (this.running || this.stopped) return;
    this.passes += 1;
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.schedule(0);
      } else if (this.opts.config.intervalMs > 0) {
        this.schedule(this.opts.config.intervalMs);
      }
    });
  }

  private async pass(): Promise<void> {
    const started = Date.now();
    const steps: [string, () => Promise<void>][] = [
      ['gc', () => this.gc.pass()],
      ['leftovers', () => leftoversPass(this.ctx)],
      ['reconcile', () => this.reconciler.pass()],
      ['repair', () => this.repairer.pass()],
      ['rebalance', () => this.rebalancer.pass()],
      ['inventory', () => this.inventory.pass()],
      ['scrub', () => this.scrubber.pass()],
      ['drain', () => this.drains.pass()],
    ];
    let error: string | null = null;
    for (const [name, step] of steps) {
      if (this.stopped) break;
      try {
        await step();
      } catch (err) {
        error = `${name}: ${(err as Error).message}`;
        this.ctx.log.warn({ err, step: name }, 'healing step failed; the next pass retries');
      }
    }
    this.lastError = error;
    this.lastPassAt = Date.now();
    this.lastPassMs = this.lastPassAt - started;
  }
}
