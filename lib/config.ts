// Environment readers shared by every service's config.ts. Each reader records a problem instead
// of throwing, so a bad configuration is reported as one message listing everything wrong.

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export type Env = Record<string, string | undefined>;

export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env = process.env) {}

  str(name: string, fallback: string): string {
    const v = this.env[name];
    return v === undefined || v === '' ? fallback : v;
  }

  optional(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === '' ? undefined : v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      this.problems.push(`${name}=${raw}: expected an integer in ${min}..${max}`);
      return fallback;
    }
    return n;
  }

  /** Sizes accept plain bytes or a KiB/MiB/GiB suffix ("64MiB", "512KiB"). */
  bytes(name: string, fallback: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = parseBytes(raw);
    if (n === undefined || n < min || n > max) {
      this.problems.push(`${name}=${raw}: expected a size in ${min}..${max} bytes (e.g. 64MiB)`);
      return fallback;
    }
    return n;
  }

  /** A size ("512MiB") or a share of something ("2%"), for limits that scale with a disk. */
  sizeOrPercent(
    name: string,
    fallback: { bytes: number } | { percent: number },
  ): { bytes: number } | { percent: number } {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(raw);
    if (pct && Number(pct[1]) < 100) return { percent: Number(pct[1]) };
    const n = pct ? undefined : parseBytes(raw);
    if (n === undefined) {
      this.problems.push(`${name}=${raw}: expected a size (e.g. 1GiB) or a percentage below 100 (e.g. 2%)`);
      return fallback;
    }
    return { bytes: n };
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name}=${raw}: expected one of ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  }

  range(name: string, fallback: [number, number]): [number, number] {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const m = /^(\d+)-(\d+)$/.exec(raw);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m ? Number(m[2]) : Number.NaN;
    if (!m || lo < 1 || hi > 65535 || lo > hi) {
      this.problems.push(`${name}=${raw}: expected a port range like 9100-9199`);
      return fallback;
    }
    return [lo, hi];
  }

  check(condition: boolean, problem: string): void {
    if (!condition) this.problems.push(problem);
  }

  /** Throws one ConfigError listing every problem seen so far. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

export function parseBytes(raw: string): number | undefined {
  const m = /^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/i.exec(raw.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = {
    b: 1,
    kb: 1e3,
    kib: 1024,
    mb: 1e6,
    mib: 1024 ** 2,
    gb: 1e9,
    gib: 1024 ** 3,
    tb: 1e12,
    tib: 1024 ** 4,
  };
  return Number(m[1]) * mult[unit];
}
