// Browser: buckets → objects (prefix navigation with '/'), and an object's page: its chunks, the
// nodes holding each replica with their health, and where the ring would place the chunk now.
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { bytes, Loading, num, StatusBadge, time, usePoll } from './lib.js';
import type { BucketRow, ChunkDetail, ObjectDetail, ObjectList } from './types.js';

const enc = encodeURIComponent;

export const links = {
  buckets: () => '#/browser',
  prefix: (bucket: string, prefix: string) => `#/browser/${enc(bucket)}${prefix ? `/${enc(prefix)}` : ''}`,
  object: (bucket: string, key: string) => `#/object/${enc(bucket)}/${enc(key)}`,
};

function Crumbs({ bucket, prefix }: { bucket: string; prefix: string }) {
  const parts = prefix.split('/').filter((_p, i, all) => i < all.length - 1 || _p !== '');
  let acc = '';
  return html`<nav class="crumbs" aria-label="Path">
    <a href=${links.buckets()}>Buckets</a> / <a href=${links.prefix(bucket, '')}>${bucket}</a>
    ${parts.map((p) => {
      acc += `${p}/`;
      return html` / <a href=${links.prefix(bucket, acc)}>${p}</a>`;
    })}
  </nav>`;
}

export function Buckets() {
  const { data, error } = usePoll<{ buckets: BucketRow[] }>('/api/console/buckets', 5000);
  if (!data) return html`<${Loading} error=${error} />`;
  return html`<section aria-labelledby="h-buckets">
    <h1 id="h-buckets">Buckets</h1>
    ${
      data.buckets.length === 0
        ? html`<p class="muted">No buckets yet. Create one with any S3 client.</p>`
        : html`<div class="table-wrap"><table class="table" data-testid="buckets-table">
            <thead><tr><th scope="col">Bucket</th><th scope="col">Objects</th><th scope="col">Size</th><th scope="col">Created</th></tr></thead>
            <tbody>
              ${data.buckets.map(
                (b) => html`<tr key=${b.name}>
                  <th scope="row"><a href=${links.prefix(b.name, '')}>${b.name}</a></th>
                  <td>${num(b.objects)}</td><td>${bytes(b.bytes)}</td><td>${time(b.createdAt)}</td>
                </tr>`,
              )}
            </tbody>
          </table></div>`
    }
  </section>`;
}

export function Objects({ bucket, prefix }: { bucket: string; prefix: string }) {
  const [after, setAfter] = useState<string[]>([]); // cursors of the pages before this one
  const cursor = after[after.length - 1] ?? '';
  const path = `/api/console/objects?bucket=${enc(bucket)}&prefix=${enc(prefix)}${cursor ? `&after=${enc(cursor)}` : ''}`;
  const { data, error } = usePoll<ObjectList>(path, 5000);
  return html`<section aria-labelledby="h-objects">
    <h1 id="h-objects">${bucket}</h1>
    <${Crumbs} bucket=${bucket} prefix=${prefix} />
    ${
      !data
        ? html`<${Loading} error=${error} />`
        : html`<div class="table-wrap"><table class="table" data-testid="objects-table">
            <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">ETag</th><th scope="col">Modified</th></tr></thead>
            <tbody>
              ${data.prefixes.map(
                (p) => html`<tr key=${`p:${p}`}>
                  <th scope="row"><a href=${links.prefix(bucket, p)}>📁 ${p.slice(prefix.length)}</a></th>
                  <td>—</td><td>—</td><td>—</td>
                </tr>`,
              )}
              ${data.objects.map(
                (o) => html`<tr key=${`o:${o.key}`}>
                  <th scope="row"><a href=${links.object(bucket, o.key)}>${o.key.slice(prefix.length) || o.key}</a></th>
                  <td>${bytes(o.size)}</td><td class="mono small">${o.etag}</td><td>${time(o.lastModified)}</td>
                </tr>`,
              )}
              ${data.prefixes.length + data.objects.length === 0 ? html`<tr><td colspan="4" class="muted">Nothing here.</td></tr>` : null}
            </tbody>
          </table></div>
          <div class="pager">
            ${after.length ? html`<button class="btn" onClick=${() => setAfter(after.slice(0, -1))}>← Previous</button>` : null}
            ${data.next ? html`<button class="btn" onClick=${() => setAfter([...after, data.next!])}>Next →</button>` : null}
          </div>`
    }
  </section>`;
}

function Replicas({ chunk }: { chunk: ChunkDetail }) {
  if (chunk.replicas.length === 0) return html`<span class="error">no replica</span>`;
  return html`<ul class="chips">
    ${chunk.replicas.map(
      (r) => html`<li class=${`chip h-${r.health}`} data-replica=${r.nodeId} data-health=${r.health}
        title=${`${r.nodeId}: replica ${r.state}, node ${r.nodeStatus}${r.onRing ? ', where the ring puts it' : ', not where the ring puts it'}`}>
        ${r.nodeId} <small>${r.health === 'ok' ? 'ok' : r.health === 'corrupt' ? 'corrupt' : r.nodeStatus}</small>${r.onRing ? '' : ' ⤳'}
      </li>`,
    )}
  </ul>`;
}

function RingChoice({ chunk }: { chunk: ChunkDetail }) {
  return html`<ol class="chips">
    ${chunk.placement.chosen.map(
      (
        n,
      ) => html`<li class=${`chip ${n.holds ? 'h-ok' : 'h-missing-copy'}`} title=${n.holds ? 'holds a replica' : 'does not hold a replica yet'}>
        ${n.id}${n.holds ? ' ✓' : ' ✗'}
      </li>`,
    )}
  </ol>
  ${
    chunk.placement.skipped.length
      ? html`<details class="small"><summary>${chunk.placement.skipped.length} passed over</summary>
          <ul>${chunk.placement.skipped.map((s) => html`<li>${s.id}: ${s.reason}</li>`)}</ul>
        </details>`
      : null
  }`;
}

export function ObjectPage({ bucket, keyName }: { bucket: string; keyName: string }) {
  const [afterSeq, setAfterSeq] = useState<number[]>([]);
  const from = afterSeq[afterSeq.length - 1] ?? -1;
  const path = `/api/console/object?bucket=${enc(bucket)}&key=${enc(keyName)}${from >= 0 ? `&afterSeq=${from}` : ''}`;
  const { data, error } = usePoll<ObjectDetail>(path, 2000);
  const slash = keyName.lastIndexOf('/');
  return html`<section aria-labelledby="h-object">
    <h1 id="h-object" class="break">${keyName}</h1>
    <${Crumbs} bucket=${bucket} prefix=${slash >= 0 ? keyName.slice(0, slash + 1) : ''} />
    ${
      !data
        ? html`<${Loading} error=${error} />`
        : html`<dl class="meta">
            <dt>Size</dt><dd data-testid="object-size">${bytes(data.size)} (${num(data.size)} B)</dd>
            <dt>ETag</dt><dd class="mono">${data.etag}</dd>
            <dt>Modified</dt><dd>${time(data.lastModified)}</dd>
            <dt>Content type</dt><dd>${data.contentType ?? '—'}</dd>
            ${data.partsCount ? html`<dt>Parts</dt><dd>${data.partsCount}</dd>` : null}
            ${
              data.inline
                ? html`<dt>Stored</dt><dd data-testid="stored-inline">inline in its metadata row (small object)</dd>`
                : html`<dt>Chunks</dt><dd data-testid="chunks-total">${num(data.chunksTotal)} × up to ${data.replication} replicas</dd>`
            }
          </dl>
          <p class="muted small">
            Replicas: where the bytes are (green ok, red on a node that is not up, orange corrupt; ⤳ not where the ring
            wants it). Ring's choice: the nodes the placement ring picks for the chunk now (✓ holds a copy).
          </p>
          <div class="table-wrap"><table class="table chunks" data-testid="chunks-table">
            <thead><tr><th scope="col">#</th><th scope="col">Chunk</th><th scope="col">Offset</th><th scope="col">Size</th>
              <th scope="col">Health</th><th scope="col">Replicas</th><th scope="col">Ring's choice</th></tr></thead>
            <tbody>
              ${data.chunks.map(
                (c) => html`<tr key=${c.id} data-chunk-id=${c.id}>
                  <td>${c.seq}${c.partNumber !== null ? html`<div class="small muted">part ${c.partNumber}</div>` : null}</td>
                  <td class="mono small" title=${`sha256 ${c.sha256}`}>${c.id}</td>
                  <td>${num(c.offset)}</td>
                  <td>${bytes(c.size)}</td>
                  <td><${StatusBadge} status=${c.status} /> <span class="small">${c.healthy}/${data.replication}</span></td>
                  <td><${Replicas} chunk=${c} /></td>
                  <td><${RingChoice} chunk=${c} /></td>
                </tr>`,
              )}
            </tbody>
          </table></div>
          <div class="pager">
            ${afterSeq.length ? html`<button class="btn" onClick=${() => setAfterSeq(afterSeq.slice(0, -1))}>← Previous chunks</button>` : null}
            ${data.nextAfterSeq !== null ? html`<button class="btn" onClick=${() => setAfterSeq([...afterSeq, data.nextAfterSeq!])}>Next chunks →</button>` : null}
          </div>`
    }
  </section>`;
}
