// Proves the admin CLI (`s3dfs status|nodes|ring|events|fsck|keys`) against a real manager: tables
// and --json, the token from flag or data dir, distinct exit codes and clear messages for a wrong
// token or an unreachable manager, extra S3 keys that work and stop working, a drain followed to
// the end with the data intact.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { binPath } from '../helpers/node-process.js';

// Private to this file (the e2e range is 23000-23999, one 100-port pool per cluster).
const PORT_BASE = 23200;
// gateway/credentials.ts caches a key's secret this long.
const SECRET_CACHE_MS = 5_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('admin CLI', function () {
  this.timeout(120_000);
  let c: TestCluster;

  /** Runs `s3dfs ARGS` asynchronously: the manager it talks to lives in this process. */
  const cli = (args: string[], env: Record<string, string | undefined> = {}): Promise<Result> =>
    new Promise((resolve) => {
      const full = { ...process.env, S3DFS_MANAGER_URL: undefined, S3DFS_ADMIN_TOKEN: undefined, ...env };
      execFile(
        process.execPath,
        [binPath, ...args],
        { env: full, timeout: 60_000 },
        (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
        },
      );
    });
  const admin = async (...args: string[]) => {
    const r = await cli([...args, '--url', c.manager.url, '--token', c.manager.adminToken]);
    if (r.code !== 0) throw new Error(`s3dfs ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const adminJson = async (...args: string[]) => JSON.parse(await admin(...args, '--json'));

  before(async () => {
    c = await startTestCluster({ portBase: PORT_BASE, nodes: 3, chunkSize: 64 * 1024 });
  });
  after(async () => {
    await c?.stop();
  });

  it('status shows the cluster and every node as a table, and as JSON with --json', async () => {
    const out = await admin('status');
    expect(out).to.match(/^nodes\s+3\/3 up · replication 3$/m);
    expect(out).to.match(/^NODE\s+STATUS\s+ZONE\s+ADDRESS/m);
    for (const n of c.manager.ring().nodes) expect(out).to.match(new RegExp(`^${n.id}\\s+up\\s`, 'm'));
    const json = await adminJson('status');
    expect(json.cluster.nodesUp).to.equal(3);
    expect(json.nodes).to.have.length(3);
  });

  it('reads the token from $S3DFS_DATA_DIR/admin-token and the URL from S3DFS_MANAGER_URL', async () => {
    const r = await cli(['ring', '--json'], { S3DFS_DATA_DIR: c.dataDir, S3DFS_MANAGER_URL: c.manager.url });
    expect(r.code, r.stderr).to.equal(0);
    // Generated, and safe to pass as `--token <token>` (a leading '-' would read as a flag).
    expect(c.manager.adminToken).to.match(/^[0-9a-f]{48}$/);
    expect(JSON.parse(r.stdout).version).to.equal(c.manager.ring().version);
  });

  it('says clearly, with distinct exit codes, when the token is wrong or the manager unreachable', async () => {
    const wrong = await cli(['status', '--url', c.manager.url, '--token', 'not-the-token-at-all']);
    expect(wrong.code).to.equal(4);
    expect(wrong.stderr).to.include('the admin token was refused');
    const down = await cli(['status', '--url', 'http://127.0.0.1:23299', '--token', 'x']);
    expect(down.code).to.equal(3);
    expect(down.stderr).to.include('cannot reach the manager at http://127.0.0.1:23299');
    const none = await cli(['status', '--url', c.manager.url], { S3DFS_DATA_DIR: '/nonexistent' });
    expect(none.code).to.equal(2);
    expect(none.stderr).to.include('no admin token');
    const usage = await cli(['nodes', 'frobnicate', '--url', c.manager.url, '--token', 'x']);
    expect(usage.code).to.equal(2);
    const missing = await cli([
      'nodes',
      'rm',
      'node-nope',
      '--url',
      c.manager.url,
      '--token',
      c.manager.adminToken,
    ]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/404: NotFound/);
  });

  it('keys create gives a working S3 key; ls never shows secrets; rm revokes it; the root key stays', async () => {
    const created = await adminJson('keys', 'create', '--description', 'ci robot ü');
    expect(created.accessKey).to.match(/^[A-Z0-9]{16,}$/);
    // Letters and digits only: a secret starting with '-' would be read as a flag by --secret-key.
    expect(created.secretKey).to.match(/^[A-Za-z0-9]{40}$/);
    const s3 = new S3Client({
      endpoint: c.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: created.accessKey, secretAccessKey: created.secretKey },
    });
    await s3.send(new ListBucketsCommand({}));

    const listed = await admin('keys', 'ls', '--json');
    expect(listed).to.not.include(created.secretKey);
    const mine = JSON.parse(listed).keys.find(
      (k: { accessKey: string }) => k.accessKey === created.accessKey,
    );
    expect(mine).to.include({ description: 'ci robot ü', root: false });
    expect(Object.keys(mine).sort()).to.deep.equal(['accessKey', 'createdAt', 'description', 'root']);
    expect(await admin('keys', 'ls')).to.match(new RegExp(`^${created.accessKey}\\s.*ci robot ü$`, 'm'));

    await c.db('credentials').insert({ access_key: 'ROOTKEYROW', secret_key: 'secret-root-row', root: true });
    const root = await cli([
      'keys',
      'rm',
      'ROOTKEYROW',
      '--url',
      c.manager.url,
      '--token',
      c.manager.adminToken,
    ]);
    expect(root.code).to.equal(1);
    expect(root.stderr).to.include('root key');

    await admin('keys', 'rm', created.accessKey);
    expect(await admin('keys', 'ls')).to.not.include(created.accessKey);
    await new Promise((r) => setTimeout(r, SECRET_CACHE_MS + 200));
    const err = await s3.send(new ListBucketsCommand({})).catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).name).to.equal('InvalidAccessKeyId');
  });

  it('nodes add, then nodes drain --rm follows the drain to the end; the data stays readable', async () => {
    const s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket: 'cli-drain' }));
    const bodies = [0, 1, 2].map(() => randomBytes(200 * 1024 + 17));
    for (const [i, Body] of bodies.entries())
      await s3.send(new PutObjectCommand({ Bucket: 'cli-drain', Key: `o${i}`, Body }));

    const added = await adminJson('nodes', 'add', '--count', '1', '--capacity', '1GiB');
    expect(added.nodes).to.have.length(1);
    const victim = c.manager.ring().nodes.find((n) => n.id !== added.nodes[0].id)!.id;

    const out = await admin('nodes', 'drain', victim, '--rm');
    expect(out).to.include(`draining ${victim}`);
    expect(out).to.match(new RegExp(`drain ${victim}: done, \\d+ replicas moved`));
    expect(out).to.include(`removed ${victim}`);
    expect((await adminJson('nodes', 'ls')).nodes.map((n: { id: string }) => n.id)).to.not.include(victim);
    for (const [i, body] of bodies.entries()) {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'cli-drain', Key: `o${i}` }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).to.equal(true);
    }
    const events = await admin('events', '--node', victim, '--limit', '20');
    expect(events).to.match(/draining/);
    expect(events).to.match(/removed/);
    // A deleted object's chunks wait out the GC grace: fsck lists them as pending deletes, by id.
    await s3.send(new DeleteObjectCommand({ Bucket: 'cli-drain', Key: 'o0' }));
    const fsck = await cli(['fsck', '--url', c.manager.url, '--token', c.manager.adminToken]);
    expect(fsck.stdout).to.match(/^fsck: (clean|NOT CLEAN)/);
    expect(fsck.stdout).to.match(/pendingDeletes\s+\d+\s+[0-9a-f]{32}/);
    expect(fsck.stdout).to.not.include('[object Object]');
  });
});
