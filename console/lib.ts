// What every page shares: the API client (bearer token from sessionStorage, never in a URL),
// polling hooks, formatting, and an accessible confirmation dialog.
import { html } from 'htm/preact';
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

const TOKEN_KEY = 's3dfs.adminToken';
/** How often live pages refresh: fast enough to watch a node go down, light on the manager. */
export const POLL_MS = 1500;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const session = {
  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Called when the manager refuses the token (401): the app goes back to sign-in. */
  onUnauthorized: (): void => {},
};

export async function api<T>(
  path: string,
  init: { method?: string; body?: unknown; token?: string } = {},
): Promise<T> {
  const token = init.token ?? session.token() ?? '';
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    cache: 'no-store',
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, 'BadResponse', `HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } }).error ?? {};
    if (res.status === 401 && init.token === undefined) session.onUnauthorized();
    throw new ApiError(res.status, err.code ?? 'Error', err.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  refresh: () => void;
}

/** GETs `path` now and every `intervalMs`; keeps the last good data when a poll fails. */
export function usePoll<T>(path: string | null, intervalMs = POLL_MS): Polled<T> {
  // Data is kept with the path it came from, so a page never shows another path's data.
  const [got, setGot] = useState<{ path: string; data: T } | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    if (path === null) return;
    let live = true;
    let timer: number | undefined;
    const run = async () => {
      try {
        const data = await api<T>(path);
        if (!live) return;
        setGot({ path, data });
        setError(undefined);
      } catch (e) {
        if (live) setError((e as Error).message);
      }
      if (live && intervalMs > 0) timer = window.setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [path, intervalMs, tick]);
  return { data: got && got.path === path ? got.data : undefined, error, refresh };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
}

export function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function duration(sec: number | null | undefined): string {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return '—';
  if (sec < 60) return `${Math.round(sec)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
  return `${Math.floor(sec / 3600)} h ${Math.round((sec % 3600) / 60)} min`;
}

export function ago(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return 'never';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms ago`;
  return `${duration(ms / 1000)} ago`;
}

export function time(iso: string): string {
  const d = new Date(iso);
  return `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB')}`;
}

export function pct(part: number, whole: number): number {
  return whole > 0 ? Math.min(100, Math.max(0, (100 * part) / whole)) : 0;
}

/** A labelled horizontal bar; `segments` stack (e.g. full / under / missing chunks). */
export function Bar(props: {
  label: string;
  segments: { value: number; cls: string; title: string }[];
  total: number;
}) {
  const { label, segments, total } = props;
  return html`<div class="bar" role="img" aria-label=${label}>
    ${segments.map(
      (s) =>
        html`<span class=${`seg ${s.cls}`} style=${{ width: `${pct(s.value, total)}%` }} title=${s.title}></span>`,
    )}
  </div>`;
}

export function StatusBadge({ status }: { status: string }) {
  return html`<span class=${`badge st-${status}`} data-status=${status}>${status}</span>`;
}

export function Loading({ error }: { error?: string }) {
  return error
    ? html`<p class="error" role="alert">Could not load: ${error}</p>`
    : html`<p class="muted" aria-live="polite">Loading…</p>`;
}

/**
 * A modal confirmation on the native <dialog>: showModal() makes the page behind it inert (focus
 * stays inside), Escape cancels, and focus returns to whatever opened it.
 */
export function ConfirmDialog(props: {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  error?: string;
  onConfirm: () => void;
  onCancel: () => void;
  children?: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const opener = document.activeElement as HTMLElement | null;
    const dialog = ref.current!;
    dialog.showModal();
    return () => {
      if (dialog.open) dialog.close();
      opener?.focus();
    };
  }, []);
  const cancel = (e: Event) => {
    e.preventDefault();
    if (!props.busy) props.onCancel();
  };
  return html`<dialog ref=${ref} class="dialog" aria-labelledby="dialog-title" onCancel=${cancel}>
    <form
      method="dialog"
      onSubmit=${(e: Event) => {
        e.preventDefault();
        if (!props.busy) props.onConfirm();
      }}
    >
      <h2 id="dialog-title">${props.title}</h2>
      <div class="dialog-body">${props.children}</div>
      ${props.error ? html`<p class="error" role="alert">${props.error}</p>` : null}
      <div class="dialog-actions">
        <button type="button" class="btn" onClick=${cancel} disabled=${props.busy}>Cancel</button>
        <button type="submit" class=${props.danger ? 'btn danger' : 'btn primary'} disabled=${props.busy}>
          ${props.busy ? 'Working…' : props.confirmLabel}
        </button>
      </div>
    </form>
  </dialog>`;
}
