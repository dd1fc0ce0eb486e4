// Storage nodes as Docker containers through dockerode. One container per node, named after the
// node id and labelled with it and the cluster, so a restarted manager adopts what it finds
// instead of starting duplicates. Each node's data is a named volume `s3dfs-<id>`, so a crashed or
// removed container comes back with the same chunks. The node listens on its pool port inside
// the container too, published on `hostIp:<port>`.
import Docker from 'dockerode';
import type { Logger } from '../../lib/logger.js';
import type { NodeRuntime, NodeSpec, RuntimeState } from './runtime.js';

export const LABEL_NODE = 's3dfs.node-id';
export const LABEL_CLUSTER = 's3dfs.cluster';
export const LABEL_ROLE = 's3dfs.role';
/** Seconds between SIGTERM and SIGKILL when a container is stopped. */
const STOP_GRACE_SEC = 5;
const DATA_DIR = '/data';

export interface DockerRuntimeOptions {
  /** Unix socket path or tcp://host:port; unset: the local default socket. */
  dockerHost?: string;
  image: string;
  hostIp: string;
  clusterName: string;
  clusterSecret: string;
  chunkSizeBytes: number;
  logger: Logger;
}

export function dockerClient(dockerHost?: string): Docker {
  if (!dockerHost) return new Docker();
  if (dockerHost.startsWith('/')) return new Docker({ socketPath: dockerHost });
  const u = new URL(dockerHost);
  return new Docker({
    host: u.hostname,
    port: Number(u.port),
    protocol: u.protocol === 'https:' ? 'https' : 'http',
  });
}

export function volumeName(nodeId: string): string {
  return `s3dfs-${nodeId}`;
}

export class DockerRuntime implements NodeRuntime {
  readonly kind = 'docker' as const;
  readonly docker: Docker;

  constructor(private readonly opts: DockerRuntimeOptions) {
    this.docker = dockerClient(opts.dockerHost);
  }

  private labels(id: string): Record<string, string> {
    return { [LABEL_NODE]: id, [LABEL_CLUSTER]: this.opts.clusterName, [LABEL_ROLE]: 'storage-node' };
  }

  async start(spec: NodeSpec): Promise<string> {
    const existing = await this.inspectRaw(spec.id);
    if (existing) {
      if (existing.Config.Labels?.[LABEL_CLUSTER] !== this.opts.clusterName) {
        throw new Error(`container ${spec.id} exists but belongs to another cluster`);
      }
      if (!existing.State.Running) await this.docker.getContainer(existing.Id).start();
      return existing.Id;
    }
    await this.ensureVolume(spec.id);
    const portKey = `${spec.port}/tcp`;
    const cmd = [
      'node',
      '--port',
      String(spec.port),
      '--data',
      DATA_DIR,
      '--id',
      spec.id,
      '--host',
      '0.0.0.0',
    ];
    if (spec.capacityBytes) cmd.push('--capacity', String(spec.capacityBytes));
    const container = await this.docker.createContainer({
      name: spec.id,
      Image: this.opts.image,
      Cmd: cmd,
      // All a node needs, and nothing of the manager's own environment (its S3 and admin secrets,
      // DATABASE_URL): the image supplies PATH and NODE_ENV.
      Env: [
        `S3DFS_CLUSTER_SECRET=${this.opts.clusterSecret}`,
        `S3DFS_CHUNK_SIZE_MAX=${this.opts.chunkSizeBytes}`,
      ],
      Labels: this.labels(spec.id),
      ExposedPorts: { [portKey]: {} },
      HostConfig: {
        PortBindings: { [portKey]: [{ HostIp: this.opts.hostIp, HostPort: String(spec.port) }] },
        Mounts: [{ Type: 'volume', Source: volumeName(spec.id), Target: DATA_DIR }],
        RestartPolicy: { Name: 'unless-stopped' },
      },
    });
    await container.start();
    this.opts.logger.info({ nodeId: spec.id, container: container.id, port: spec.port }, 'container created');
    return container.id;
  }

  private async ensureVolume(id: string): Promise<void> {
    const name = volumeName(id);
    try {
      await this.docker.getVolume(name).inspect();
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      await this.docker.createVolume({ Name: name, Labels: this.labels(id) });
    }
  }

  private async inspectRaw(id: string): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async stop(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: STOP_GRACE_SEC });
    } catch (err) {
      if (statusOf(err) !== 404 && statusOf(err) !== 304) throw err;
    }
  }

  async remove(id: string, purge: boolean): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    if (purge) {
      try {
        await this.docker.getVolume(volumeName(id)).remove();
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
    }
  }

  async inspect(id: string): Promise<RuntimeState | undefined> {
    const info = await this.inspectRaw(id);
    if (!info) return undefined;
    const s = info.State;
    return {
      running: s.Running && !s.Restarting,
      handle: info.Id,
      detail: s.Running
        ? undefined
        : `container ${s.Status} (exit code ${s.ExitCode}${s.OOMKilled ? ', OOM' : ''})`,
    };
  }

  async list(): Promise<{ id: string; state: RuntimeState }[]> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_CLUSTER}=${this.opts.clusterName}`, `${LABEL_ROLE}=storage-node`] },
    });
    return containers.map((c) => ({
      id: c.Labels[LABEL_NODE],
      state: { running: c.State === 'running', handle: c.Id, detail: c.Status },
    }));
  }

  /** Containers outlive the manager: that is what adoption is for. */
  async close(): Promise<void> {}
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}
