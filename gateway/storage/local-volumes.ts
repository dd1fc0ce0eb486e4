import { constants as fsConstants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { volumeDirs } from '../../lib/chunk-file.js';
import type { Logger } from '../../lib/logger.js';
import type { NodeClient } from '../../lib/node-client.js';

// Local reads and writes (HDFS's "short-circuit local reads", taken to writes too): when a storage
// node's volume is on this host, as with the embedded default's node processes, the gateway reads
// chunk files itself rather than through the node's HTTP server, and writes a new chunk's bytes
// into a temp file the node hands it. A chunk then costs one pass through the disk cache, not a
// second process and two socket copies. The node still owns its volume: a local write is begun and
// committed by the node (id and capacity checks, reservation, fsync, rename, accounting), and reads
// stay verified: lib/chunk-file.ts, which the node serves its own reads through, checks every block
// a read touches before any byte of it goes out.
//
// A node's volume counts as local only once proven: the node names its data dir and identity stamp
// in /health, and node.json at that path here must carry the same id and stamp. A node in a
// container names a path inside the container, which this host does not see, so it stays remote.

interface Known {
  addr: string;
  /** The node's data dir, when local; null when not. */
  dataDir: string | null;
  /** This process may create files in its tmp/ (a gateway of another user, a read-only mount: not). */
  writable: boolean;
  /** When an answer that may change (node unreachable, a local read failed) is checked again. */
  recheckAt: number;
}

/** Local reads are reported to their node this often, so its read KPIs still count them. */
const reportEveryMs = 1000;
/** A node that did not answer (starting, restarting) is asked again this soon. */
const unreachableRecheckMs = 1000;
/** After a local read or write failed for a reason not about the chunk, it goes over HTTP this long. */
const failedRecheckMs = 30_000;

export class LocalVolumes {
  private readonly known = new Map<string, Known>();
  private readonly probing = new Set<string>();
  /** Local reads per node not yet reported to it. */
  private readonly unreported = new Map<string, { client: NodeClient; reads: number; bytes: number }>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly enabled: boolean,
    private readonly log?: Logger,
  ) {
    if (!enabled) return;
    this.timer = setInterval(() => this.report(), reportEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.report();
  }

  /** One local read of a chunk file of `replica`'s volume, `bytes` long, to be reported to the node. */
  record(replica: { node: { id: string }; client: NodeClient }, bytes: number): void {
    const u = this.unreported.get(replica.node.id) ?? { client: replica.client, reads: 0, bytes: 0 };
    u.reads += 1;
    u.bytes += bytes;
    this.unreported.set(replica.node.id, u);
  }

  /** Best effort: a report that fails is dropped (these are KPIs, not data). */
  private report(): void {
    for (const [nodeId, u] of this.unreported) {
      this.unreported.delete(nodeId);
      u.client.reportLocalReads(u.reads, u.bytes).catch((err) => {
        this.log?.debug({ node: nodeId, err: String(err) }, 'could not report local reads');
      });
    }
  }

  /**
   * The node's data dir if its volume is local (and, for 'write', writable from here). The first
   * call for a node (or a node at a new address) starts the check in the background and answers
   * undefined: chunks go over HTTP until the check has answered.
   */
  dataDir(
    nodeId: string,
    addr: string,
    client: NodeClient,
    use: 'read' | 'write' = 'read',
  ): string | undefined {
    if (!this.enabled) return undefined;
    const k = this.known.get(nodeId);
    if (k && k.addr === addr && Date.now() < k.recheckAt) {
      return use === 'write' && !k.writable ? undefined : (k.dataDir ?? undefined);
    }
    if (!this.probing.has(nodeId)) {
      this.probing.add(nodeId);
      void this.probe(nodeId, addr, client).finally(() => this.probing.delete(nodeId));
    }
    return undefined;
  }

  /** Local access failed for a reason other than the chunk itself: use this node over HTTP again. */
  forget(nodeId: string): void {
    const k = this.known.get(nodeId);
    if (k) Object.assign(k, { dataDir: null, recheckAt: Date.now() + failedRecheckMs });
  }

  private async probe(nodeId: string, addr: string, client: NodeClient): Promise<void> {
    let dataDir: string | null = null;
    let writable = false;
    // A proven answer (local or not) holds for as long as the node keeps its address.
    let recheckAt = Number.POSITIVE_INFINITY;
    try {
      const health = await client.health().catch((err) => {
        recheckAt = Date.now() + unreachableRecheckMs;
        throw err;
      });
      const volume = health.volume;
      if (volume && health.nodeId === nodeId && path.isAbsolute(volume.dataDir)) {
        const here = JSON.parse(await readFile(path.join(volume.dataDir, 'node.json'), 'utf8'));
        if (here?.id === nodeId && here?.createdAt === volume.createdAt) {
          dataDir = volume.dataDir;
          writable = await access(volumeDirs(dataDir).tmp, fsConstants.W_OK).then(
            () => true,
            () => false,
          );
        }
      }
    } catch {
      // Not reachable, not visible from here, not readable: remote it is.
    }
    this.known.set(nodeId, { addr, dataDir, writable, recheckAt });
    if (dataDir) {
      this.log?.info({ node: nodeId, dataDir, writable }, 'storage node volume is local: using it directly');
    }
  }
}
