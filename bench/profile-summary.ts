// Top self-time functions of .cpuprofile files (node --cpu-prof), aggregated by function and file:
//   node dist/bench/profile-summary.js DIR_OR_FILE... [--top N] [--stacks]
// --stacks adds, under each function, the call paths (a few frames up) its self time came from.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function files(args: string[]): string[] {
  return args.flatMap((a) =>
    statSync(a).isDirectory()
      ? readdirSync(a)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => path.join(a, f))
      : [a],
  );
}

/** Frames of call path shown per function with --stacks. */
const stackFrames = 6;

function label(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url
    ? `${url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '~/')}:${lineNumber + 1}`
    : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
}

function main(argv: string[]): void {
  const topAt = argv.indexOf('--top');
  const top = topAt >= 0 ? Number(argv[topAt + 1]) : 15;
  const stacks = argv.includes('--stacks');
  const inputs = argv.filter((a, i) => i !== topAt && i !== topAt + 1 && a !== '--stacks');
  for (const file of files(inputs)) {
    const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const path = (id: number): string => {
      const out: string[] = [];
      for (let p = parent.get(id); p !== undefined && out.length < stackFrames; p = parent.get(p)) {
        out.push(label(byId.get(p)!).replace(/ .*\//, ' '));
      }
      return out.join(' < ');
    };
    const paths = new Map<string, Map<string, number>>();
    const selfUs = new Map<string, number>();
    let totalUs = 0;
    prof.samples.forEach((id, i) => {
      const dt = prof.timeDeltas[i] ?? 0;
      totalUs += dt;
      const key = label(byId.get(id)!);
      selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
      if (stacks) {
        const m = paths.get(key) ?? new Map<string, number>();
        const p = path(id);
        m.set(p, (m.get(p) ?? 0) + dt);
        paths.set(key, m);
      }
    });
    const idle = selfUs.get('(idle)') ?? 0;
    console.log(
      `\n${file}: ${(totalUs / 1e6).toFixed(1)} s sampled, ${((totalUs - idle) / 1e6).toFixed(1)} s busy`,
    );
    const rows = [...selfUs].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
    for (const [k, us] of rows.slice(0, top)) {
      console.log(
        `${(us / 1e3).toFixed(0).padStart(8)} ms ${((100 * us) / (totalUs - idle)).toFixed(1).padStart(5)}%  ${k}`,
      );
      const top3 = [...(paths.get(k) ?? [])].sort((a, b) => b[1] - a[1]).slice(0, 3);
      for (const [p, pus] of top3) console.log(`${' '.repeat(18)}${(pus / 1e3).toFixed(0)} ms  < ${p}`);
    }
  }
}

main(process.argv.slice(2));
