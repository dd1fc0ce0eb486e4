// Ring: each node's share of the key space (first replicas, by arc) against its weight's share.
import { html } from 'htm/preact';
import { Loading, StatusBadge, usePoll } from './lib.js';
import type { RingShares } from './types.js';

export function RingPage() {
  const { data, error } = usePoll<RingShares>('/api/console/ring', 2000);
  if (!data) return html`<${Loading} error=${error} />`;
  const max = Math.max(0.0001, ...data.nodes.map((n) => Math.max(n.share, n.targetShare)));
  return html`<section aria-labelledby="h-ring">
    <h1 id="h-ring">Ring</h1>
    <div class="stats">
      <div class="stat"><div class="stat-label">Version</div><div class="stat-value" data-testid="ring-version">${data.version}</div></div>
      <div class="stat">
        <div class="stat-label">Balance (max/mean, 1 is perfect)</div>
        <div class="stat-value" data-testid="ring-balance">${data.balance.toFixed(3)}</div>
      </div>
      <div class="stat"><div class="stat-label">Replicas per chunk</div><div class="stat-value">${data.replication}</div></div>
    </div>
    <div class="panel">
      <h2>Share of the ring</h2>
      <p class="muted">
        Bars: the fraction of chunks whose first replica lands on each node. The tick marks the share its
        weight asks for. Nodes that are not up own nothing.
      </p>
      <ul class="shares" data-testid="ring-shares">
        ${data.nodes.map(
          (n) => html`<li key=${n.id} data-node-id=${n.id}>
            <div class="share-head">
              <strong>${n.id}</strong> <${StatusBadge} status=${n.status} />
              <span class="muted small">weight ${n.weight} · ${n.vnodes} vnodes${n.zone ? ` · zone ${n.zone}` : ''}</span>
              <span class="share-pct">${(100 * n.share).toFixed(1)} %</span>
            </div>
            <div class="share-track" role="img" aria-label=${`${n.id} owns ${(100 * n.share).toFixed(1)} percent`}>
              <span class="share-fill" style=${{ width: `${(100 * n.share) / max}%` }}></span>
              ${n.targetShare > 0 ? html`<span class="share-target" style=${{ left: `${(100 * n.targetShare) / max}%` }}></span>` : null}
            </div>
          </li>`,
        )}
      </ul>
    </div>
  </section>`;
}
