// `npm run bench` end to end, kept short: it starts its own cluster (embedded PGlite), measures the
// machine's limits and the client's own ceiling against the null server, runs the 4 KiB workloads
// with every byte read back checked, and prints a JSON document whose ratios use those limits.
// Numbers are not asserted (speed is measured, not tested); what is asserted is that they exist,
// are positive and come from error-free work.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const benchPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/bench.js');

interface Doc {
  limits: { disk3xMBps: number; client: Record<string, { opsPerSec: number; mbPerSec: number }> };
  results: {
    name: string;
    ops: number;
    errors: number;
    opsPerSec: number;
    limit: { name: string; value: number; ratio: number } | null;
    target: { met: boolean; atLeast?: number; clientCeiling?: number } | null;
  }[];
  summary: { errors: number };
}

function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [benchPath, ...args],
      { timeout: 240_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('npm run bench', function () {
  this.timeout(300_000);

  it('measures the 4 KiB workloads with the machine limits and the client ceiling, in JSON', async () => {
    const r = await bench(['--quick', '--only', 'small', '--time-limit', '2', '--json']);
    expect(r.code, r.stderr.slice(-2000)).to.equal(0);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.summary.errors).to.equal(0);
    expect(doc.limits.disk3xMBps).to.be.greaterThan(0);

    const names = ['4 KiB PUT', '4 KiB GET', '4 KiB HEAD', '4 KiB DELETE'];
    expect(doc.results.map((x) => x.name)).to.deep.equal(names);
    for (const name of names) {
      // The null server answered the same workload, GETs with the bytes the bench checks.
      expect(doc.limits.client[name]?.opsPerSec, `client ceiling of ${name}`).to.be.greaterThan(0);
      const row = doc.results.find((x) => x.name === name)!;
      expect(row.ops).to.be.greaterThan(0);
      expect(row.limit, `limit of ${name}`).to.not.equal(null);
      expect(row.limit!.ratio).to.equal(Math.round((row.opsPerSec / row.limit!.value) * 100) / 100);
    }
    // GET and HEAD have no machine limit of their own: theirs is the client's.
    expect(doc.results.find((x) => x.name === '4 KiB GET')!.limit!.name).to.equal('client alone ops/s');
    const get = doc.results.find((x) => x.name === '4 KiB GET')!;
    expect(get.target).to.not.equal(null);
    // A target the client alone cannot reach is said so, with the client's figure.
    const ceiling = doc.limits.client['4 KiB GET'].opsPerSec;
    if (ceiling < get.target!.atLeast!) expect(get.target!.clientCeiling).to.equal(ceiling);
    else expect(get.target!.clientCeiling).to.equal(undefined);
  });

  it('rejects an unknown workload group with a usage message and exit code 2', async () => {
    const r = await bench(['--only', 'nope']);
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--only: unknown group nope/);
  });
});
