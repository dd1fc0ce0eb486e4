// Peak RSS and CPU seconds of the server process and of the storage nodes, sampled from /proc.
import { readFileSync } from 'node:fs';
import type { Cluster } from './cluster.js';

/** Often enough to catch a short RSS peak, rarely enough to cost nothing. */
const sampleEveryMs = 200;
/** Node pids change when a node is killed and restarted; look them up again this often. */
const refreshNodesEveryMs = 2000;
const clockTicksPerSec = 100;

export interface Usage {
  /** At the start of the workload: what the peak grew from. */
  serverStartRssMb: number | null;
  serverPeakRssMb: number | null;
  serverCpuSec: number | null;
  nodesPeakRssMb: number | null;
  nodesCpuSec: number | null;
  benchCpuSec: number;
}

interface ProcSample {
  rssBytes: number;
  cpuSec: number;
}

function sample(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime); the slice starts at field 3.
    const cpuSec = (Number(fields[11]) + Number(fields[12])) / clockTicksPerSec;
    return { rssBytes: rss ? Number(rss[1]) * 1024 : 0, cpuSec };
  } catch {
    return undefined;
  }
}

/** Samples in the background; window() opens a per-workload measurement. */
export class Sampler {
  private timer?: NodeJS.Timeout;
  private nodePids: number[] = [];
  /** Last CPU seconds seen per pid, so a killed node's CPU still counts. */
  private readonly cpuByPid = new Map<number, number>();
  private serverPeak = 0;
  private nodesPeak = 0;
  private lastRefresh = 0;

  constructor(private readonly cluster: Cluster) {}

  async start(): Promise<void> {
    if (!this.cluster.serverPid) return;
    await this.refresh();
    this.timer = setInterval(() => this.tick(), sampleEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    this.lastRefresh = Date.now();
    const nodes = await this.cluster.nodePids().catch(() => []);
    this.nodePids = nodes.map((n) => n.pid);
  }

  private tick(): void {
    if (Date.now() - this.lastRefresh > refreshNodesEveryMs) void this.refresh();
    const s = this.cluster.serverPid ? sample(this.cluster.serverPid) : undefined;
    if (s) {
      this.serverPeak = Math.max(this.serverPeak, s.rssBytes);
      this.cpuByPid.set(this.cluster.serverPid!, s.cpuSec);
    }
    let nodesRss = 0;
    for (const pid of this.nodePids) {
      const n = sample(pid);
      if (!n) continue;
      nodesRss = Math.max(nodesRss, n.rssBytes);
      this.cpuByPid.set(pid, n.cpuSec);
    }
    this.nodesPeak = Math.max(this.nodesPeak, nodesRss);
  }

  private cpu(): { server: number; nodes: number } {
    this.tick();
    let nodes = 0;
    for (const [pid, sec] of this.cpuByPid) if (pid !== this.cluster.serverPid) nodes += sec;
    return { server: this.cpuByPid.get(this.cluster.serverPid ?? -1) ?? 0, nodes };
  }

  /** Starts a measurement; the returned function ends it. Node RSS is the largest single node. */
  window(): () => Usage {
    const have = Boolean(this.cluster.serverPid);
    const mb = (x: number) => Math.round(x / 1e6);
    const startRss = have ? mb(sample(this.cluster.serverPid!)?.rssBytes ?? 0) : null;
    this.serverPeak = 0;
    this.nodesPeak = 0;
    const c0 = this.cpu();
    const b0 = process.cpuUsage();
    return () => {
      const c1 = this.cpu();
      const b = process.cpuUsage(b0);
      const sec = (x: number) => Math.round(x * 100) / 100;
      return {
        serverStartRssMb: startRss,
        serverPeakRssMb: have ? mb(this.serverPeak) : null,
        serverCpuSec: have ? sec(c1.server - c0.server) : null,
        nodesPeakRssMb: have ? mb(this.nodesPeak) : null,
        nodesCpuSec: have ? sec(c1.nodes - c0.nodes) : null,
        benchCpuSec: sec((b.user + b.system) / 1e6),
      };
    };
  }
}
