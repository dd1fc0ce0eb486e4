// Proves that what s3dfs keeps at rest is its owner's alone, whatever the umask, and no secret leaks:
// a real `s3dfs server` started under umask 000 keeps every dir under its data dir 0700 and every
// file 0600 (PGlite's and chunk files included; an existing world-writable data dir made private),
// another local user reads neither a chunk nor a metadata file, no printed or logged line holds the
// root secret key, and its storage-node processes get neither the S3 secret nor the admin token.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { tempDir } from '../helpers/db.js';
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js';

// Private to this file: 28000-28099 for the server with generated keys, 28100-28199 for the other.
const PORT_BASE_GENERATED = 28000;
const PORT_BASE_FROM_ENV = 28100;
const ADMIN_TOKEN = `admin-${randomBytes(12).toString('hex')}`;
const ENV_SECRET_KEY = `env-secret-${randomBytes(16).toString('hex')}`;
const chunkFile = /^[0-9a-f]{32}\.[0-9a-f]{64}$/;
/** What a storage-node process may find in its environment (manager/runtime/process.ts). */
const nodeEnvAllowed = [
  'PATH',
  'HOME',
  'TMPDIR',
  'TZ',
  'LANG',
  'LC_ALL',
  'NODE_OPTIONS',
  'NODE_ENV',
  'LOG_LEVEL',
  'S3DFS_CLUSTER_SECRET',
  'S3DFS_CHUNK_SIZE_MAX',
  // Node's own, for the IPC channel the runtime opens to each node.
  'NODE_CHANNEL_FD',
  'NODE_CHANNEL_SERIALIZATION_MODE',
];

interface Entry {
  file: string;
  mode: number;
  dir: boolean;
}

/** Every dir and file under `root`, root included; entries vanishing during the walk are skipped. */
function walk(root: string): Entry[] {
  const out: Entry[] = [];
  const visit = (p: string) => {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    out.push({ file: p, mode: st.mode & 0o777, dir: st.isDirectory() });
    if (!st.isDirectory()) return;
    let names: string[] = [];
    try {
      names = readdirSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const n of names) visit(path.join(p, n));
  };
  visit(root);
  return out;
}

/** Entries whose mode is not 0700 (dirs) or 0600 (files), as `mode path` lines. */
function wideModes(entries: Entry[]): string[] {
  return entries
    .filter((e) => e.mode !== (e.dir ? 0o700 : 0o600))
    .map((e) => `${e.mode.toString(8)} ${e.file}`);
}

function asNobody(file: string): { status: number | null; stderr: string } {
  const r = spawnSync('runuser', ['-u', 'nobody', '--', 'cat', file], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

async function putObject(s: ServerProcess): Promise<void> {
  const client = new S3Client({
    endpoint: s.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
  });
  await client.send(new CreateBucketCommand({ Bucket: 'private' }));
  // Several chunks (1 MiB each), past the inline limit.
  await client.send(
    new PutObjectCommand({ Bucket: 'private', Key: 'k', Body: randomBytes(2.5 * 1024 ** 2) }),
  );
  client.destroy();
}

describe('data at rest', function () {
  this.timeout(120_000);
  let parent: string;
  let generated: ServerProcess;
  let fromEnv: ServerProcess;

  before(async () => {
    // The parent is open to everyone, so only the modes s3dfs sets stand between a local user and
    // the data; the data dir exists already, world-writable, as an older version under umask 000
    // may have left it.
    parent = tempDir('s3dfs-at-rest-');
    chmodSync(parent, 0o755);
    const generatedDir = path.join(parent, 'generated');
    mkdirSync(generatedDir);
    chmodSync(generatedDir, 0o777);
    [generated, fromEnv] = await Promise.all([
      startServerProcess({
        dataDir: generatedDir,
        portBase: PORT_BASE_GENERATED,
        adminToken: ADMIN_TOKEN,
        umask: 0o000,
        env: { LOG_LEVEL: 'debug' },
      }),
      startServerProcess({
        dataDir: path.join(parent, 'from-env'),
        portBase: PORT_BASE_FROM_ENV,
        nodes: 1,
        adminToken: ADMIN_TOKEN,
        umask: 0o000,
        env: {
          LOG_LEVEL: 'debug',
          S3DFS_REPLICATION: '1',
          S3DFS_ACCESS_KEY: 'ENVACCESSKEY',
          S3DFS_SECRET_KEY: ENV_SECRET_KEY,
        },
      }),
    ]);
    await Promise.all([putObject(generated), putObject(fromEnv)]);
  });

  after(async () => {
    await generated?.stop();
    await fromEnv?.stop();
    if (parent) rmSync(parent, { recursive: true, force: true });
  });

  it('keeps every dir 0700 and every file 0600 under umask 000, PGlite and chunk files included', () => {
    for (const s of [generated, fromEnv]) {
      const entries = walk(s.dataDir);
      const meta = entries.filter(
        (e) => !e.dir && e.file.startsWith(path.join(s.dataDir, 'meta') + path.sep),
      );
      const chunks = entries.filter((e) => !e.dir && chunkFile.test(path.basename(e.file)));
      expect(meta.length, 'PGlite files').to.be.greaterThan(100);
      expect(chunks.length, 'chunk files').to.be.greaterThan(0);
      expect(wideModes(entries), `${s.dataDir}: modes other than 0700/0600`).to.deep.equal([]);
    }
  });

  it('lets no other local user read a chunk file or a metadata file', function () {
    if (process.getuid?.() !== 0) this.skip();
    // runuser itself works: nobody reads what everyone may.
    expect(asNobody('/etc/passwd').status).to.equal(0);
    const entries = walk(generated.dataDir).filter((e) => !e.dir);
    const chunk = entries.find((e) => chunkFile.test(path.basename(e.file)))!;
    const wal = entries.find(
      (e) => e.file.includes(`${path.sep}pg_wal${path.sep}`) && /^[0-9A-F]{24}$/.test(path.basename(e.file)),
    )!;
    expect(chunk, 'a chunk file').to.not.equal(undefined);
    expect(wal, 'a PGlite WAL segment').to.not.equal(undefined);
    for (const file of [chunk.file, wal.file, path.join(generated.dataDir, 'credentials.json')]) {
      const r = asNobody(file);
      expect(r.status, `nobody reads ${file}`).to.not.equal(0);
      expect(r.stderr).to.include('Permission denied');
    }
  });

  it('prints and logs no root secret key, generated or configured', () => {
    const secret = JSON.parse(
      readFileSync(path.join(generated.dataDir, 'credentials.json'), 'utf8'),
    ).secretKey;
    expect(secret).to.match(/^[A-Za-z0-9]{40}$/);
    // LOG_LEVEL=debug: every logger line, the storage nodes' relayed ones included, is in the output.
    const out = generated.output();
    expect(out.includes(secret), 'the generated secret in the output').to.equal(false);
    expect(fromEnv.output().includes(ENV_SECRET_KEY), 'S3DFS_SECRET_KEY in the output').to.equal(false);
    for (const s of [generated, fromEnv]) expect(s.output().includes(ADMIN_TOKEN)).to.equal(false);
    // The banner still names the access key and where the secret is kept.
    expect(out).to.include(generated.accessKey);
    expect(out).to.include(path.join(generated.dataDir, 'credentials.json'));
  });

  it('starts storage-node processes with neither the S3 secret nor the admin token in their environment', async () => {
    for (const s of [generated, fromEnv]) {
      const res = await fetch(`${s.managerUrl}/api/nodes`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      const { nodes } = (await res.json()) as { nodes: { id: string; handle: string }[] };
      expect(nodes.length).to.be.greaterThan(0);
      for (const n of nodes) {
        const environ = readFileSync(`/proc/${Number(n.handle)}/environ`, 'utf8');
        const vars = environ.split('\0').filter((v) => v !== '');
        const names = vars.map((v) => v.slice(0, v.indexOf('=')));
        expect(environ.includes(ENV_SECRET_KEY), `${n.id}: S3 secret key`).to.equal(false);
        expect(environ.includes(ADMIN_TOKEN), `${n.id}: admin token`).to.equal(false);
        expect(names, `${n.id}: variables`).to.include('S3DFS_CLUSTER_SECRET');
        expect(
          names.filter((k) => !nodeEnvAllowed.includes(k)),
          `${n.id}: variables it does not need`,
        ).to.deep.equal([]);
      }
    }
  });

  it('leaves the metadata files 0600 after a clean stop too', async () => {
    generated.proc.kill('SIGTERM');
    await once(generated.proc, 'exit');
    expect(wideModes(walk(generated.dataDir))).to.deep.equal([]);
  });
});
