// Proves docker-compose.yml is a valid Compose file that wires what the README promises: Postgres,
// a one-shot migration before the services, a manager with the Docker runtime and socket, gateways
// with health checks, and only S3DFS_* variables the services actually read. (Running it needs
// images pulled from a registry, which CI cannot do; the Docker runtime itself is proven by
// manager-docker.test.ts.)
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

/** The repository root: the first directory above this compiled file with a package.json. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'docker-compose.yml'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('docker-compose.yml not found above the test');
    dir = up;
  }
  return dir;
}

const root = repoRoot();
const composeFile = path.join(root, 'docker-compose.yml');
const TOKEN = 'compose-test-token-0123456789';

function compose(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const full: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const k of Object.keys(full)) if (k.startsWith('S3DFS_') && !(k in env)) delete full[k];
    execFile(
      'docker-compose',
      ['-f', composeFile, '--project-directory', root, '--env-file', emptyEnvFile(), ...args],
      { env: full, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
    );
  });
}

/** A developer's own .env must not leak into what is checked. */
function emptyEnvFile(): string {
  const file = path.join(os.tmpdir(), `s3dfs-compose-${process.pid}.env`);
  writeFileSync(file, '');
  return file;
}

function hasDockerCompose(): boolean {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .some((d) => d !== '' && statSync(path.join(d, 'docker-compose'), { throwIfNoEntry: false })?.isFile());
}

/** Every S3DFS_* name the services read, from their config readers. */
function variablesRead(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && e.name !== 'node_modules') walk(p);
      else if (e.name.endsWith('.ts'))
        for (const m of readFileSync(p, 'utf8').matchAll(/'(S3DFS_[A-Z0-9_]+)'/g)) names.add(m[1]);
    }
  };
  for (const dir of ['bin', 'lib', 'gateway', 'manager', 'storage-node']) walk(path.join(root, dir));
  return names;
}

describe('docker-compose.yml', function () {
  this.timeout(60_000);
  const yml = readFileSync(composeFile, 'utf8');

  it('sets only S3DFS_* variables the services read', () => {
    const known = variablesRead();
    // Names on the left of `KEY: value` in environment blocks (the right side may use compose-only ones).
    const set = [...yml.matchAll(/^\s+(S3DFS_[A-Z0-9_]+):/gm)].map((m) => m[1]);
    expect(set.length).to.be.greaterThan(10);
    expect(set.filter((n) => !known.has(n))).to.deep.equal([]);
  });

  describe('`docker-compose config`', () => {
    before(function () {
      if (hasDockerCompose()) return;
      if (process.env.CI)
        throw new Error(
          "CI is set but 'docker-compose' is not on PATH: .ci/run must apt-get install docker-compose",
        );
      console.log("      (skipped: 'docker-compose' is not installed; apt-get install docker-compose)");
      this.skip();
    });

    it('accepts the file and lists the services, the second gateway behind a profile', async () => {
      const r = await compose(['config', '--services'], { S3DFS_ADMIN_TOKEN: TOKEN });
      expect(r.code, r.out).to.equal(0);
      expect(r.out.trim().split('\n').sort()).to.deep.equal([
        'gateway',
        'gateway-2',
        'manager',
        'migrate',
        'postgres',
      ]);
      const full = await compose(['config'], { S3DFS_ADMIN_TOKEN: TOKEN });
      expect(full.out).to.match(/^ {2}gateway-2:\n(?: {4,}.*\n)*? {4}profiles:\n {4}- scale$/m);
    });

    it('wires migrations first, the Docker runtime and socket, health checks and the shared token', async () => {
      const r = await compose(['config'], { S3DFS_ADMIN_TOKEN: TOKEN, S3DFS_S3_PORT: '9500' });
      expect(r.code, r.out).to.equal(0);
      const service = (name: string) => {
        const m = new RegExp(`^  ${name}:\\n((?:    .*\\n|      .*\\n)*)`, 'm').exec(r.out);
        expect(m, `service ${name}`).to.not.equal(null);
        return m![1];
      };
      const manager = service('manager');
      expect(manager).to.include('S3DFS_RUNTIME: docker');
      expect(manager).to.include('/var/run/docker.sock:/var/run/docker.sock');
      expect(manager).to.match(/migrate:\n\s+condition: service_completed_successfully/);
      expect(manager).to.include(`S3DFS_ADMIN_TOKEN: ${TOKEN}`);
      expect(manager).to.include('healthcheck:');
      const gateway = service('gateway');
      expect(gateway).to.match(/manager:\n\s+condition: service_healthy/);
      expect(gateway).to.include('S3DFS_S3_HOST: 0.0.0.0');
      expect(gateway).to.include("S3DFS_S3_PORT: '9500'");
      expect(gateway).to.include('http://127.0.0.1:9500/');
      expect(gateway).to.include(`S3DFS_ADMIN_TOKEN: ${TOKEN}`);
      expect(gateway).to.include('DATABASE_URL: postgres://');
      expect(service('migrate')).to.match(/command:\n\s+- migrate/);
      expect(service('migrate')).to.match(/postgres:\n\s+condition: service_healthy/);
      expect(service('postgres')).to.include('image: postgres:16');
      for (const s of ['migrate', 'manager', 'gateway'])
        expect(service(s)).to.match(/build:\n\s+args:\n\s+BASE_IMAGE: /);
    });

    it('refuses to start without an admin token, saying which variable to set', async () => {
      const r = await compose(['config'], {});
      expect(r.code).to.not.equal(0);
      expect(r.out).to.include('set S3DFS_ADMIN_TOKEN');
    });
  });
});
