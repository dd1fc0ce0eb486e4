// How storage nodes are run. The manager speaks only this interface; `process` runs them as child
// processes (the embedded default), `docker` as containers through dockerode.

export interface NodeSpec {
  id: string;
  /** The pool port: the node listens on it and gateways reach it there. */
  port: number;
  capacityBytes?: number;
}

export interface RuntimeState {
  running: boolean;
  /** pid or container id. */
  handle?: string;
  /** Why it is not running, when known (exit code, signal, missing container). */
  detail?: string;
}

export interface RuntimeEvents {
  /** The node's process or container stopped without being asked to. */
  onExit(id: string, detail: string): void;
  /** The runtime brought it back (same data). */
  onRestart(id: string, detail: string, handle?: string): void;
}

export interface NodeRuntime {
  readonly kind: 'process' | 'docker';
  /**
   * Makes the node run: adopts it when already running, starts it when stopped, recreates it on
   * its existing data when its container or process is gone. Returns the handle.
   */
  start(spec: NodeSpec): Promise<string>;
  /** Stops the node, keeping its data. */
  stop(id: string): Promise<void>;
  /** Stops and forgets the node; `purge` deletes its data (volume or directory) too. */
  remove(id: string, purge: boolean): Promise<void>;
  /** undefined when the runtime has no trace of the node. */
  inspect(id: string): Promise<RuntimeState | undefined>;
  /** Nodes of this cluster the runtime knows about, for adoption. */
  list(): Promise<{ id: string; state: RuntimeState }[]>;
  /** Called when the manager stops: child processes stop with it; containers keep running. */
  close(): Promise<void>;
}
