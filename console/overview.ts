// Overview: nodes, capacity, objects, chunk health, healing progress and the traffic charts.
import { html } from 'htm/preact';
import { TimeChart } from './chart.js';
import { Bar, bytes, duration, Loading, num, pct } from './lib.js';
import type { Kpis } from './types.js';

export interface History {
  /** [t (s), reads/s, writes/s, bytes in/s, bytes out/s, errors/s] */
  t: number[];
  reads: number[];
  writes: number[];
  bytesIn: number[];
  bytesOut: number[];
  errors: number[];
}

const REQ_SERIES = [
  { label: 'reads/s', color: '#3b82f6' },
  { label: 'writes/s', color: '#f59e0b' },
];
const BYTES_SERIES = [
  { label: 'in', color: '#10b981' },
  { label: 'out', color: '#8b5cf6' },
];
const ERR_SERIES = [{ label: 'errors/s', color: '#ef4444' }];

const rate = (v: number) => `${num(v, v < 10 ? 1 : 0)}/s`;
const byteRate = (v: number) => `${bytes(v)}/s`;

function Stat(props: { label: string; value: string; testid: string; tone?: string }) {
  return html`<div class=${`stat ${props.tone ?? ''}`}>
    <div class="stat-label">${props.label}</div>
    <div class="stat-value" data-testid=${props.testid}>${props.value}</div>
  </div>`;
}

export function Overview({ kpis, error, history }: { kpis?: Kpis; error?: string; history: History }) {
  if (!kpis) return html`<${Loading} error=${error} />`;
  const c = kpis.cluster;
  const h = c.healing;
  const activities = h
    ? ([
        ['Repair', h.repair],
        ['Rebalance', h.rebalance],
        ['Drain', h.drain],
        ['GC', h.gc],
      ] as const)
    : [];
  return html`<section aria-labelledby="h-overview">
    <h1 id="h-overview">Overview</h1>
    ${error ? html`<p class="error" role="alert">Live update failed: ${error}</p>` : null}
    <div class="stats">
      <${Stat}
        label="Nodes up"
        value=${`${c.nodesUp} / ${c.nodesTotal}`}
        testid="nodes-up"
        tone=${c.nodesUp < c.nodesTotal ? 'warn' : 'good'}
      />
      <${Stat} label="Objects" value=${num(c.objects)} testid="objects" />
      <${Stat} label="Buckets" value=${num(c.buckets)} testid="buckets" />
      <${Stat} label="Ring" value=${`v${c.ringVersion} · balance ${c.ringBalance.toFixed(2)}`} testid="ring" />
    </div>
    <div class="panels">
      <div class="panel">
        <h2>Capacity</h2>
        <p>Raw: ${bytes(c.rawUsedBytes)} of ${bytes(c.rawCapacityBytes)} (${pct(c.rawUsedBytes, c.rawCapacityBytes).toFixed(1)} %)</p>
        <${Bar}
          label="raw capacity used"
          total=${c.rawCapacityBytes}
          segments=${[{ value: c.rawUsedBytes, cls: 'used', title: 'used' }]}
        />
        <p>
          Logical (÷${c.replication} replicas): ${bytes(c.logicalUsedBytes)} of ${bytes(c.logicalCapacityBytes)}
        </p>
        <${Bar}
          label="logical capacity used"
          total=${c.logicalCapacityBytes}
          segments=${[{ value: c.logicalUsedBytes, cls: 'used', title: 'used' }]}
        />
      </div>
      <div class="panel">
        <h2>Chunks by replica health</h2>
        <p data-testid="chunk-health">
          <span class="dot full"></span> ${num(c.fullChunks)} full ·
          <span class="dot under"></span> ${num(c.underReplicatedChunks)} under-replicated ·
          <span class="dot missing"></span> ${num(c.missingChunks)} missing
        </p>
        ${c.starting ? html`<p class="muted" data-testid="starting">Starting: ${num(c.unconfirmedChunks ?? 0)} chunks wait for their nodes' first health probe before they count.</p>` : null}
        <${Bar}
          label="chunks by replica health"
          total=${c.chunks}
          segments=${[
            { value: c.fullChunks, cls: 'full', title: 'full' },
            { value: c.underReplicatedChunks, cls: 'under', title: 'under-replicated' },
            { value: c.missingChunks, cls: 'missing', title: 'missing' },
          ]}
        />
        <p class="muted">${num(c.chunks)} chunks in all, ${c.replication} replicas each.</p>
      </div>
    </div>
    <div class="panel">
      <h2>Healing</h2>
      ${
        h
          ? html`<div class="table-wrap"><table class="table" data-testid="healing">
              <thead><tr><th scope="col">Activity</th><th scope="col">Queued</th><th scope="col">Done</th>
                <th scope="col">Rate</th><th scope="col">ETA</th><th scope="col" class="w-bar">Progress</th></tr></thead>
              <tbody>
                ${activities.map(
                  ([name, a]) => html`<tr>
                    <th scope="row">${name}</th>
                    <td>${num(a.queued)} (${bytes(a.queuedBytes)})</td>
                    <td>${num(a.done)}${a.failed ? html` <span class="error">(${a.failed} failed)</span>` : null}</td>
                    <td>${byteRate(a.bytesPerSec)}</td>
                    <td>${a.queued === 0 ? 'idle' : duration(a.etaSec)}</td>
                    <td>
                      <${Bar}
                        label=${`${name} progress`}
                        total=${a.done + a.queued}
                        segments=${[{ value: a.done, cls: 'full', title: 'done' }]}
                      />
                    </td>
                  </tr>`,
                )}
              </tbody>
            </table></div>
            ${h.lastError ? html`<p class="error">Last healing error: ${h.lastError}</p>` : null}`
          : html`<p class="muted">Healing is not running on this manager.</p>`
      }
    </div>
    <div class="charts">
      <${TimeChart}
        title="Request rate"
        series=${REQ_SERIES}
        data=${[history.t, history.reads, history.writes]}
        format=${rate}
      />
      <${TimeChart}
        title="Throughput"
        series=${BYTES_SERIES}
        data=${[history.t, history.bytesIn, history.bytesOut]}
        format=${byteRate}
      />
      <${TimeChart} title="Error rate" series=${ERR_SERIES} data=${[history.t, history.errors]} format=${rate} />
    </div>
  </section>`;
}
