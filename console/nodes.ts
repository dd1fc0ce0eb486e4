// Nodes: the live table and its actions (add, drain, remove), each confirmed in a dialog and
// followed until done: a new node until it is up, a drain until the node holds nothing, a removal
// until the node has left the table.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { ago, api, Bar, bytes, ConfirmDialog, Loading, num, StatusBadge, usePoll } from './lib.js';
import type { DrainProgress, Kpis, NodeEvent, NodeKpis } from './types.js';

type Action = { kind: 'add' } | { kind: 'drain'; node: NodeKpis } | { kind: 'remove'; node: NodeKpis };

/** Replicas a drain started with, per node, so its bar can show how far it has come. */
const drainStart = new Map<string, number>();

/** State changes shown per node, so a crash and restart between two polls still shows. */
const RECENT_PER_NODE = 3;

function Recent({ events }: { events: NodeEvent[] }) {
  if (events.length === 0) return null;
  return html`<ol class="recent" aria-label="recent state changes, newest first">
    ${events.map(
      (e) => html`<li data-to=${e.to} title=${`${new Date(e.at).toLocaleTimeString('en-GB')}: ${e.reason}`}>
        ${e.to} <span class="muted">${ago(Date.now() - new Date(e.at).getTime())}</span>
      </li>`,
    )}
  </ol>`;
}

function ms(v: number | null): string {
  return v === null ? '—' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
}

function DrainCell({ node, progress }: { node: NodeKpis; progress?: DrainProgress }) {
  if (!progress) return html`<span class="muted">waiting for the next healing pass…</span>`;
  const start = Math.max(drainStart.get(node.id) ?? 0, progress.replicasLeft);
  drainStart.set(node.id, start);
  if (progress.done)
    return html`<span class="good-text drain-done" data-testid="drain-done">drained — holds no replicas; safe to remove</span>`;
  return html`<div class="drain">
    <${Bar}
      label=${`drain of ${node.id}`}
      total=${start}
      segments=${[{ value: start - progress.replicasLeft, cls: 'full', title: 'moved' }]}
    />
    <span data-testid="drain-left">${num(progress.replicasLeft)} replicas (${bytes(progress.bytesLeft)}) left</span>
  </div>`;
}

export function Nodes({ kpis, error, refresh }: { kpis?: Kpis; error?: string; refresh: () => void }) {
  const [action, setAction] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const [count, setCount] = useState(1);
  const [zone, setZone] = useState('');
  const [purge, setPurge] = useState(false);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [added, setAdded] = useState<string[]>([]);
  const [removing, setRemoving] = useState<string[]>([]);
  const events = usePoll<{ events: NodeEvent[] }>('/api/events?limit=100');
  if (!kpis) return html`<${Loading} error=${error} />`;

  const recent = new Map<string, NodeEvent[]>();
  for (const e of events.data?.events ?? []) {
    const list = recent.get(e.nodeId) ?? [];
    if (list.length < RECENT_PER_NODE) list.push(e);
    recent.set(e.nodeId, list);
  }
  const drains = new Map((kpis.cluster.healing?.drain.nodes ?? []).map((d) => [d.nodeId, d]));
  const open = (a: Action) => {
    setActionError(undefined);
    setPurge(false);
    setAction(a);
  };
  const run = async () => {
    if (!action) return;
    setBusy(true);
    setActionError(undefined);
    try {
      if (action.kind === 'add') {
        const res = await api<{ nodes: NodeKpis[] }>('/api/nodes', {
          method: 'POST',
          body: { count, ...(zone.trim() ? { zone: zone.trim() } : {}) },
        });
        setAdded(res.nodes.map((n) => n.id));
        setNotice(`Added ${res.nodes.map((n) => n.id).join(', ')}; the ring rebalances onto them.`);
      } else if (action.kind === 'drain') {
        await api(`/api/nodes/${encodeURIComponent(action.node.id)}/drain`, { method: 'POST' });
        setNotice(`Draining ${action.node.id}: its chunks are being copied to other nodes.`);
      } else {
        setRemoving([action.node.id]);
        await api(`/api/nodes/${encodeURIComponent(action.node.id)}${purge ? '?purge=true' : ''}`, {
          method: 'DELETE',
        });
        drainStart.delete(action.node.id);
        setNotice(`Removed ${action.node.id}${purge ? ' and deleted its data' : ''}.`);
      }
      setAction(null);
      refresh();
    } catch (e) {
      setActionError((e as Error).message);
      setRemoving([]);
    } finally {
      setBusy(false);
    }
  };

  const starting = added.filter((id) => kpis.nodes.some((n) => n.id === id && n.status !== 'up'));
  const stillThere = removing.filter((id) => kpis.nodes.some((n) => n.id === id));

  return html`<section aria-labelledby="h-nodes">
    <div class="title-row">
      <h1 id="h-nodes">Nodes</h1>
      <button class="btn primary" onClick=${() => open({ kind: 'add' })}>Add nodes…</button>
    </div>
    ${error ? html`<p class="error" role="alert">Live update failed: ${error}</p>` : null}
    <div aria-live="polite">
      ${notice ? html`<p class="notice">${notice}</p>` : null}
      ${starting.length ? html`<p class="notice">Waiting for ${starting.join(', ')} to come up…</p>` : null}
      ${stillThere.length ? html`<p class="notice">Removing ${stillThere.join(', ')}…</p>` : null}
    </div>
    <div class="table-wrap">
      <table class="table nodes" data-testid="nodes-table">
        <thead>
          <tr>
            <th scope="col">Node</th><th scope="col">Status</th><th scope="col">Address</th><th scope="col">Zone</th>
            <th scope="col" class="w-bar">Used / capacity</th><th scope="col">Chunks</th>
            <th scope="col">p99 read / write</th><th scope="col">Last heartbeat</th><th scope="col">Restarts</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          ${kpis.nodes.map(
            (n) => html`<tr key=${n.id} data-node-id=${n.id}>
              <th scope="row">${n.id}</th>
              <td data-label="Status">
                <${StatusBadge} status=${n.status} />
                ${n.full ? html` <${StatusBadge} status="disk-full" /><div class="small muted">free space below the reserve (S3DFS_NODE_FREE_RESERVE): serves reads, takes no new replicas</div>` : null}
                ${n.lastError && n.status !== 'up' ? html`<div class="small muted" title=${n.lastError}>${n.lastError}</div>` : null}
                <${Recent} events=${recent.get(n.id) ?? []} />
              </td>
              <td data-label="Address" class="mono">${n.host}:${n.port}</td>
              <td data-label="Zone">${n.zone ?? '—'}</td>
              <td data-label="Used / capacity">
                <${Bar}
                  label=${`${n.id} used`}
                  total=${n.capacityBytes}
                  segments=${[{ value: n.usedBytes, cls: 'used', title: 'used' }]}
                />
                <span class="small">${bytes(n.usedBytes)} / ${bytes(n.capacityBytes)}</span>
              </td>
              <td data-label="Chunks" data-testid="chunk-count">${num(n.chunkCount)}</td>
              <td data-label="p99 read / write">${ms(n.readP99Ms)} / ${ms(n.writeP99Ms)}</td>
              <td data-label="Last heartbeat">${ago(n.heartbeatAgeMs)}</td>
              <td data-label="Restarts">${num(n.restarts)}</td>
              <td class="actions">
                ${
                  n.status === 'draining'
                    ? html`<${DrainCell} node=${n} progress=${drains.get(n.id)} />`
                    : html`<button class="btn" onClick=${() => open({ kind: 'drain', node: n })}>
                        Drain<span class="sr-only"> ${n.id}</span>
                      </button>`
                }
                <button class="btn danger" onClick=${() => open({ kind: 'remove', node: n })}>
                  Remove<span class="sr-only"> ${n.id}</span>
                </button>
              </td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${action ? renderDialog() : null}
  </section>`;

  function renderDialog() {
    const common = { busy, error: actionError, onConfirm: run, onCancel: () => setAction(null) };
    if (action?.kind === 'add') {
      return html`<${ConfirmDialog} title="Add storage nodes" confirmLabel="Add" ...${common}>
        <label class="field">Count
          <input type="number" min="1" max="16" value=${count} required
            onInput=${(e: Event) => setCount(Number((e.target as HTMLInputElement).value))} />
        </label>
        <label class="field">Zone (optional)
          <input type="text" maxLength="64" value=${zone} onInput=${(e: Event) => setZone((e.target as HTMLInputElement).value)} />
        </label>
        <p class="muted">New nodes take ports from the pool; about 1/N of the chunks move onto them.</p>
      <//>`;
    }
    if (action?.kind === 'drain') {
      return html`<${ConfirmDialog} title=${`Drain ${action.node.id}?`} confirmLabel="Drain" danger=${true} ...${common}>
        <p>
          ${action.node.id} leaves the ring at once and its ${num(action.node.chunkCount)} chunks
          (${bytes(action.node.usedBytes)}) are copied to other nodes. Remove it once it is empty.
        </p>
      <//>`;
    }
    if (action?.kind === 'remove') {
      return html`<${ConfirmDialog} title=${`Remove ${action.node.id}?`} confirmLabel="Remove" danger=${true} ...${common}>
        <p>
          The node is stopped and forgotten; its copies no longer count. The manager refuses while it holds
          the only healthy copy of any chunk — drain it first.
        </p>
        <label class="check">
          <input type="checkbox" checked=${purge} onChange=${(e: Event) => setPurge((e.target as HTMLInputElement).checked)} />
          Also delete its data
        </label>
      <//>`;
    }
    return null;
  }
}
