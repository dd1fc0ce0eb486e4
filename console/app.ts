// The s3dfs web console: sign-in with the admin token, then Overview, Nodes, Ring, Events and
// Browser pages, refreshed by short polling. Routing is by URL hash, so the manager serves one page.
import { html, render } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Buckets, ObjectPage, Objects } from './browser.js';
import { Events } from './events.js';
import { api, POLL_MS, session, usePoll } from './lib.js';
import { Nodes } from './nodes.js';
import { type History, Overview } from './overview.js';
import { RingPage } from './ring.js';
import './style.css';
import type { Kpis } from './types.js';

/** Chart history kept in the browser: 10 minutes at the poll interval. */
const HISTORY_POINTS = Math.ceil((10 * 60 * 1000) / POLL_MS);

const PAGES = [
  { id: 'overview', label: 'Overview' },
  { id: 'nodes', label: 'Nodes' },
  { id: 'ring', label: 'Ring' },
  { id: 'events', label: 'Events' },
  { id: 'browser', label: 'Browser' },
] as const;

interface Route {
  page: string;
  args: string[];
}

function parseHash(): Route {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const page = parts[0] || 'overview';
  try {
    return { page, args: parts.slice(1).map(decodeURIComponent) };
  } catch {
    return { page, args: [] };
  }
}

function useRoute(): Route {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

function emptyHistory(): History {
  return { t: [], reads: [], writes: [], bytesIn: [], bytesOut: [], errors: [] };
}

/** Cluster-wide rates from each poll of /api/kpis; error rate from the nodes' error counters. */
function useHistory(kpis: Kpis | undefined): History {
  const hist = useRef<History>(emptyHistory());
  const prevErrors = useRef<{ at: number; byNode: Map<string, number> } | null>(null);
  const [snapshot, setSnapshot] = useState<History>(hist.current);
  useEffect(() => {
    if (!kpis) return;
    const now = Date.now();
    const h = hist.current;
    const sum = (f: (n: Kpis['nodes'][number]) => number) => kpis.nodes.reduce((a, n) => a + f(n), 0);
    let errorsPerSec = 0;
    const byNode = new Map(kpis.nodes.map((n) => [n.id, n.errors]));
    const prev = prevErrors.current;
    if (prev && now > prev.at) {
      let d = 0;
      for (const [id, e] of byNode) d += Math.max(0, e - (prev.byNode.get(id) ?? e)); // restarts reset counters
      errorsPerSec = d / ((now - prev.at) / 1000);
    }
    prevErrors.current = { at: now, byNode };
    const push = (arr: number[], v: number) => {
      arr.push(v);
      if (arr.length > HISTORY_POINTS) arr.shift();
    };
    push(h.t, now / 1000);
    push(
      h.reads,
      sum((n) => n.readsPerSec),
    );
    push(
      h.writes,
      sum((n) => n.writesPerSec),
    );
    push(
      h.bytesIn,
      sum((n) => n.bytesInPerSec),
    );
    push(
      h.bytesOut,
      sum((n) => n.bytesOutPerSec),
    );
    push(h.errors, errorsPerSec);
    setSnapshot({ ...h, t: [...h.t] });
  }, [kpis]);
  return snapshot;
}

function SignIn({ onSignedIn, reason }: { onSignedIn: () => void; reason?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api('/api/cluster', { token: token.trim() });
      session.set(token.trim());
      onSignedIn();
    } catch (err) {
      const status = (err as { status?: number }).status;
      setError(status === 401 ? 'That token was refused.' : `Could not sign in: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <form class="panel" onSubmit=${submit} aria-labelledby="h-signin">
      <h1 id="h-signin">s3dfs console</h1>
      <p class="muted">Sign in with the admin token (S3DFS_ADMIN_TOKEN, or the data dir's admin-token file).</p>
      <label class="field">Admin token
        <input type="password" name="token" autocomplete="current-password" required autofocus
          value=${token} onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
      </label>
      ${error ? html`<p class="error" role="alert" data-testid="signin-error">${error}</p>` : null}
      <button class="btn primary" type="submit" disabled=${busy}>${busy ? 'Checking…' : 'Sign in'}</button>
    </form>
  </main>`;
}

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const route = useRoute();
  const kpis = usePoll<Kpis>('/api/kpis');
  const history = useHistory(kpis.data);
  const main = useRef<HTMLElement>(null);
  const active = route.page === 'object' ? 'browser' : route.page;
  // Move focus to the new page's heading so keyboard and screen-reader users land on it.
  useEffect(() => {
    const heading = main.current?.querySelector<HTMLElement>('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }, [route.page, route.args.join('/')]);

  let page: unknown;
  switch (route.page) {
    case 'nodes':
      page = html`<${Nodes} kpis=${kpis.data} error=${kpis.error} refresh=${kpis.refresh} />`;
      break;
    case 'ring':
      page = html`<${RingPage} />`;
      break;
    case 'events':
      page = html`<${Events} nodeIds=${(kpis.data?.nodes ?? []).map((n) => n.id)} />`;
      break;
    case 'browser':
      page =
        route.args[0] === undefined
          ? html`<${Buckets} />`
          : html`<${Objects} key=${route.args.join('/')} bucket=${route.args[0]} prefix=${route.args[1] ?? ''} />`;
      break;
    case 'object':
      page = html`<${ObjectPage} key=${route.args.join('/')} bucket=${route.args[0]} keyName=${route.args[1] ?? ''} />`;
      break;
    default:
      page = html`<${Overview} kpis=${kpis.data} error=${kpis.error} history=${history} />`;
  }
  const c = kpis.data?.cluster;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e: Event) => {
      e.preventDefault();
      main.current?.focus();
    }}>Skip to content</a>
    <header class="top">
      <span class="brand">s3dfs</span>
      <nav aria-label="Pages">
        <ul>
          ${PAGES.map(
            (p) =>
              html`<li><a href=${`#/${p.id}`} aria-current=${active === p.id ? 'page' : undefined}>${p.label}</a></li>`,
          )}
        </ul>
      </nav>
      <span class="top-status" aria-live="polite">
        ${c ? html`<span class=${c.nodesUp < c.nodesTotal ? 'warn-text' : 'good-text'}>${c.nodesUp}/${c.nodesTotal} up</span>` : null}
        ${kpis.error ? html` <span class="error">offline</span>` : null}
      </span>
      <button class="btn small" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main" ref=${main} tabindex="-1">${page}</main>
  </div>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(() => session.token() !== null);
  const [reason, setReason] = useState<string | undefined>(undefined);
  useEffect(() => {
    session.onUnauthorized = () => {
      session.clear();
      setReason('The manager no longer accepts this token; sign in again.');
      setSignedIn(false);
    };
  }, []);
  if (!signedIn) return html`<${SignIn} reason=${reason} onSignedIn=${() => setSignedIn(true)} />`;
  return html`<${Shell}
    onSignOut=${() => {
      session.clear();
      setReason(undefined);
      setSignedIn(false);
    }}
  />`;
}

render(html`<${App} />`, document.getElementById('root')!);
