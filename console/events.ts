// Events: node-state and repair timeline, newest first, filtered by node and by state.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { Loading, StatusBadge, time, usePoll } from './lib.js';
import type { NodeEvent } from './types.js';

const STATES = ['starting', 'up', 'suspect', 'down', 'draining', 'disk-full', 'removed'];
/** Events fetched per poll; enough for a screenful of history without paging. */
const EVENTS_LIMIT = 300;

export function Events({ nodeIds }: { nodeIds: string[] }) {
  const [node, setNode] = useState('');
  const [state, setState] = useState('');
  const path = `/api/events?limit=${EVENTS_LIMIT}${node ? `&node=${encodeURIComponent(node)}` : ''}`;
  const { data, error } = usePoll<{ events: NodeEvent[] }>(path, 2000);
  const events = (data?.events ?? []).filter((e) => !state || e.to === state);
  const known = [...new Set([...nodeIds, ...(data?.events ?? []).map((e) => e.nodeId)])].sort();
  return html`<section aria-labelledby="h-events">
    <h1 id="h-events">Events</h1>
    <div class="filters">
      <label class="field inline">Node
        <select value=${node} onChange=${(e: Event) => setNode((e.target as HTMLSelectElement).value)}>
          <option value="">all nodes</option>
          ${known.map((id) => html`<option value=${id}>${id}</option>`)}
        </select>
      </label>
      <label class="field inline">State
        <select value=${state} onChange=${(e: Event) => setState((e.target as HTMLSelectElement).value)}>
          <option value="">any state</option>
          ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
    </div>
    ${
      !data
        ? html`<${Loading} error=${error} />`
        : events.length === 0
          ? html`<p class="muted">No events match.</p>`
          : html`<ol class="timeline" data-testid="events">
              ${events.map(
                (e) => html`<li data-node-id=${e.nodeId} data-to=${e.to}>
                  <time datetime=${e.at}>${time(e.at)}</time>
                  <span class="ev-node">${e.nodeId}</span>
                  <span class="ev-move">${e.from ? html`<${StatusBadge} status=${e.from} /> →` : null} <${StatusBadge} status=${e.to} /></span>
                  <span class="ev-reason">${e.reason}</span>
                </li>`,
              )}
            </ol>`
    }
  </section>`;
}
