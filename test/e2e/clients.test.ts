// Proves that real clients (AWS CLI, rclone, s3cmd), configured exactly as the README tells a user,
// work end to end against `s3dfs server` started as a user starts it: byte-exact round trips of
// 0-byte, 1-byte, multi-chunk and multipart-sized files under keys with spaces, `+`, unicode and
// deep prefixes, syncs both ways, listings, server-side copies and moves, presigned URLs, deletes.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { tempDir } from '../helpers/db.js';
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;
// Private to this file (the e2e range is 23000-23999, one 100-port pool per cluster).
const PORT_BASE = 23100;
/** Small chunks so a few-MiB file spans several chunks and a multipart part several more. */
const CHUNK_SIZE = '1MiB';
/** A client command that takes longer than this is hung, not slow. */
const COMMAND_TIMEOUT_MS = 120_000;

// Keys where clients and servers disagree about encoding (S3-PITFALLS.md §5).
const ODD_NAME = 'with space +plus ünïcødé 日本 & é.bin';
const DEEP_PREFIX = 'deep/a/b/c/d/e/f/';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env, timeout: COMMAND_TIMEOUT_MS, maxBuffer: 64 * MiB, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr: err && !stderr ? String(err.message) : stderr });
      },
    );
  });
}

async function ok(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, env);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r.stdout;
}

/**
 * The environment a user's shell has: no AWS_* variables of this machine's (AWS_CA_BUNDLE makes
 * rclone refuse to start), so only the config files under test are in play.
 */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
}

function hasTool(name: string): boolean {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .some((dir) => dir !== '' && statSync(path.join(dir, name), { throwIfNoEntry: false })?.isFile());
}

/** In CI a missing client is a failure; locally the suite is skipped with a note. */
function requireTool(ctx: Mocha.Context, name: string, install: string): void {
  if (hasTool(name)) return;
  if (process.env.CI) throw new Error(`CI is set but '${name}' is not on PATH: .ci/run must ${install}`);
  console.log(`      (skipped: '${name}' is not installed; ${install})`);
  ctx.skip();
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest();
const fileSha = (p: string) => sha256(readFileSync(p));

/** Relative path → sha256 of every file under dir (empty directories do not exist in S3). */
function tree(dir: string, base = dir, out: Record<string, string> = {}): Record<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) tree(p, base, out);
    else out[path.relative(base, p).split(path.sep).join('/')] = fileSha(p);
  }
  return out;
}

/** Files every client uploads: sizes at the edges and across chunk and part boundaries. */
interface Fixtures {
  dir: string;
  empty: string;
  one: string;
  multiChunk: string;
  /** Above the 8 MiB multipart thresholds used here; 3 s3cmd parts of 5 MiB, 2 AWS CLI parts. */
  big: string;
  /** A directory tree for sync, with odd names, deep prefixes and the edge sizes. */
  tree: string;
}

function makeFixtures(root: string): Fixtures {
  const f: Fixtures = {
    dir: root,
    empty: path.join(root, 'empty.bin'),
    one: path.join(root, 'one.bin'),
    multiChunk: path.join(root, 'multi-chunk.bin'),
    big: path.join(root, 'big.bin'),
    tree: path.join(root, 'tree'),
  };
  mkdirSync(root, { recursive: true });
  writeFileSync(f.empty, Buffer.alloc(0));
  writeFileSync(f.one, Buffer.from('x'));
  writeFileSync(f.multiChunk, randomBytes(3 * MiB + 123));
  writeFileSync(f.big, randomBytes(12 * MiB + 4567));
  const files: Record<string, Buffer> = {
    'empty.bin': Buffer.alloc(0),
    'one.bin': Buffer.from('1'),
    'plain.txt': Buffer.from('hello from s3dfs\n'),
    [`with space/${ODD_NAME}`]: randomBytes(2 * MiB + 7),
    'plus+sign/a+b=c.txt': Buffer.from('plus\n'),
    'ünïcødé/日本語 ファイル.txt': Buffer.from('unicode\n'),
    [`${DEEP_PREFIX}deep.txt`]: Buffer.from('deep\n'),
  };
  for (const [rel, body] of Object.entries(files)) {
    const p = path.join(f.tree, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, body);
  }
  return f;
}

describe('real S3 clients against `s3dfs server`', function () {
  this.timeout(300_000);
  let server: ServerProcess;
  let fx: Fixtures;
  let work: string;

  before(async () => {
    work = tempDir('s3dfs-clients-');
    fx = makeFixtures(path.join(work, 'fixtures'));
    server = await startServerProcess({
      dataDir: path.join(work, 'data'),
      portBase: PORT_BASE,
      chunkSize: CHUNK_SIZE,
      adminToken: 'e2e-admin-token-0123456789',
    });
  });

  after(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const sdk = () =>
    new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    });

  /** A fresh empty directory under the test's work dir. */
  let dirs = 0;
  const freshDir = (name: string) => {
    const d = path.join(work, `${name}-${dirs++}`);
    mkdirSync(d, { recursive: true });
    return d;
  };

  describe('AWS CLI', () => {
    let env: NodeJS.ProcessEnv;
    const bucket = 'aws-e2e';
    const aws = (...args: string[]) => ok('aws', args, env);
    const awsJson = async (...args: string[]) => JSON.parse(await aws(...args, '--output', 'json'));

    before(function () {
      requireTool(this, 'aws', 'install the AWS CLI (pip install awscli)');
      const dir = freshDir('aws-config');
      // Exactly the README's files: ~/.aws/config and ~/.aws/credentials.
      writeFileSync(
        path.join(dir, 'config'),
        `[default]
region = us-east-1
endpoint_url = ${server.endpoint}
s3 =
    addressing_style = path
    signature_version = s3v4
    multipart_threshold = 8MB
    multipart_chunksize = 8MB
`,
      );
      writeFileSync(
        path.join(dir, 'credentials'),
        `[default]
aws_access_key_id = ${server.accessKey}
aws_secret_access_key = ${server.secretKey}
`,
      );
      env = { ...userEnv(), AWS_CONFIG_FILE: path.join(dir, 'config') };
      env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'credentials');
    });

    it('mb, then ls shows the bucket', async () => {
      await aws('s3', 'mb', `s3://${bucket}`);
      expect(await aws('s3', 'ls')).to.match(new RegExp(`\\s${bucket}\\n`));
    });

    it('cp up and down: 0 bytes, 1 byte, several chunks, multipart-sized, under odd keys', async () => {
      // Two invocations (the CLI's start-up dominates on a busy machine): up and down recursively.
      const up = freshDir('aws-up');
      const files = [fx.empty, fx.one, fx.multiChunk, fx.big];
      for (const [i, file] of files.entries()) copyFileSync(file, path.join(up, `${i} ${ODD_NAME}`));
      await aws('s3', 'cp', '--recursive', up, `s3://${bucket}/${DEEP_PREFIX}`);
      const down = freshDir('aws-down');
      await aws('s3', 'cp', '--recursive', `s3://${bucket}/deep/`, down);
      for (const [i, file] of files.entries()) {
        const local = path.join(down, DEEP_PREFIX.slice('deep/'.length), `${i} ${ODD_NAME}`);
        expect(fileSha(local), path.basename(file)).to.equal(fileSha(file));
      }
      // The 12 MiB file went up in two 8 MiB-threshold parts: S3's multipart ETag (pitfall §4).
      const head = await awsJson(
        's3api',
        'head-object',
        '--bucket',
        bucket,
        '--key',
        `${DEEP_PREFIX}3 ${ODD_NAME}`,
      );
      const big = readFileSync(fx.big);
      const parts = [big.subarray(0, 8 * MiB), big.subarray(8 * MiB)];
      const etag = `"${createHash('md5')
        .update(Buffer.concat(parts.map(md5)))
        .digest('hex')}-2"`;
      expect(head.ETag).to.equal(etag);
      expect(head.ContentLength).to.equal(big.length);
    });

    it('ls --recursive lists every key exactly, in byte order', async () => {
      const out = await aws('s3', 'ls', '--recursive', `s3://${bucket}/`);
      const keys = out
        .trim()
        .split('\n')
        .map((l) => l.replace(/^\S+\s+\S+\s+\d+\s/, ''));
      expect(keys).to.deep.equal([0, 1, 2, 3].map((i) => `${DEEP_PREFIX}${i} ${ODD_NAME}`));
    });

    it('sync up, sync down, and a second sync has nothing to do', async () => {
      await aws('s3', 'sync', fx.tree, `s3://${bucket}/tree/`);
      const down = freshDir('aws-sync');
      await aws('s3', 'sync', `s3://${bucket}/tree/`, down);
      expect(tree(down)).to.deep.equal(tree(fx.tree));
      expect((await aws('s3', 'sync', fx.tree, `s3://${bucket}/tree/`)).trim()).to.equal('');
      expect((await aws('s3', 'sync', `s3://${bucket}/tree/`, down)).trim()).to.equal('');
    });

    it('mv moves an object server-side under an odd key', async () => {
      const from = `s3://${bucket}/tree/plus+sign/a+b=c.txt`;
      const to = `s3://${bucket}/moved/${ODD_NAME}.txt`;
      await aws('s3', 'mv', from, to);
      const got = await run(
        'aws',
        ['s3api', 'head-object', '--bucket', bucket, '--key', 'tree/plus+sign/a+b=c.txt'],
        env,
      );
      expect(got.code, 'the source is gone').to.not.equal(0);
      expect(got.stderr).to.match(/404|Not Found/);
      const local = path.join(freshDir('aws-mv'), 'x');
      await aws('s3', 'cp', to, local);
      expect(readFileSync(local, 'utf8')).to.equal('plus\n');
    });

    it('presign gives a URL curl can fetch without credentials', async () => {
      const url = (
        await aws('s3', 'presign', `s3://${bucket}/${DEEP_PREFIX}2 ${ODD_NAME}`, '--expires-in', '300')
      ).trim();
      const out = path.join(freshDir('aws-presign'), 'x');
      await ok('curl', ['-sS', '--fail', '-o', out, url]);
      expect(fileSha(out)).to.equal(fileSha(fx.multiChunk));
      const tampered = url.replace(
        /X-Amz-Signature=[0-9a-f]/,
        (m) => `${m.slice(0, -1)}${m.endsWith('0') ? '1' : '0'}`,
      );
      const status = await ok('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', tampered]);
      expect(status).to.equal('403');
    });

    it('s3api put-object/head-object/get-object/copy-object keep and replace metadata', async () => {
      const key = `meta/${ODD_NAME}`;
      await aws(
        's3api',
        'put-object',
        '--bucket',
        bucket,
        '--key',
        key,
        '--body',
        fx.multiChunk,
        '--content-type',
        'application/x-test',
        '--metadata',
        'color=blue,owner=e2e',
      );
      const head = await awsJson('s3api', 'head-object', '--bucket', bucket, '--key', key);
      expect(head.Metadata).to.deep.equal({ color: 'blue', owner: 'e2e' });
      expect(head.ContentType).to.equal('application/x-test');
      expect(head.ContentLength).to.equal(3 * MiB + 123);
      expect(head.ETag).to.equal(`"${md5(readFileSync(fx.multiChunk)).toString('hex')}"`);

      const out = path.join(freshDir('aws-get'), 'x');
      const got = JSON.parse(
        await aws('s3api', 'get-object', '--bucket', bucket, '--key', key, out, '--output', 'json'),
      );
      expect(got.Metadata).to.deep.equal({ color: 'blue', owner: 'e2e' });
      expect(fileSha(out)).to.equal(fileSha(fx.multiChunk));

      // The CLI URL-encodes the copy source (pitfall §12).
      const copy = `meta/copy of ${ODD_NAME}`;
      await aws(
        's3api',
        'copy-object',
        '--bucket',
        bucket,
        '--key',
        copy,
        '--copy-source',
        `${bucket}/${key}`,
      );
      expect(
        (await awsJson('s3api', 'head-object', '--bucket', bucket, '--key', copy)).Metadata,
      ).to.deep.equal({
        color: 'blue',
        owner: 'e2e',
      });
      await aws(
        's3api',
        'copy-object',
        '--bucket',
        bucket,
        '--key',
        copy,
        '--copy-source',
        `${bucket}/${key}`,
        '--metadata-directive',
        'REPLACE',
        '--metadata',
        'color=red',
      );
      const replaced = await awsJson('s3api', 'head-object', '--bucket', bucket, '--key', copy);
      expect(replaced.Metadata).to.deep.equal({ color: 'red' });
      await aws('s3api', 'get-object', '--bucket', bucket, '--key', copy, out);
      expect(fileSha(out)).to.equal(fileSha(fx.multiChunk));
    });

    it('s3api list-objects-v2 with prefix, delimiter and pagination', async () => {
      const top = await awsJson(
        's3api',
        'list-objects-v2',
        '--bucket',
        bucket,
        '--prefix',
        'tree/',
        '--delimiter',
        '/',
      );
      expect((top.Contents ?? []).map((o: { Key: string }) => o.Key)).to.deep.equal([
        'tree/empty.bin',
        'tree/one.bin',
        'tree/plain.txt',
      ]);
      expect(top.CommonPrefixes.map((p: { Prefix: string }) => p.Prefix)).to.deep.equal([
        'tree/deep/',
        'tree/with space/',
        'tree/ünïcødé/',
      ]);
      // --page-size 2 makes the CLI follow continuation tokens across every odd key.
      const all = await awsJson(
        's3api',
        'list-objects-v2',
        '--bucket',
        bucket,
        '--prefix',
        'tree/',
        '--page-size',
        '2',
      );
      expect(all.Contents.map((o: { Key: string }) => o.Key)).to.deep.equal(
        Object.keys(tree(fx.tree))
          .filter((k) => k !== 'plus+sign/a+b=c.txt')
          .map((k) => `tree/${k}`)
          .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
      );
    });

    it('s3api create-multipart-upload/upload-part/complete-multipart-upload', async () => {
      const key = `${DEEP_PREFIX}mpu ${ODD_NAME}`;
      const big = readFileSync(fx.big);
      const parts = [big.subarray(0, 5 * MiB), big.subarray(5 * MiB, 10 * MiB), big.subarray(10 * MiB)];
      const dir = freshDir('aws-mpu');
      const { UploadId } = await awsJson(
        's3api',
        'create-multipart-upload',
        '--bucket',
        bucket,
        '--key',
        key,
      );
      const done: { PartNumber: number; ETag: string }[] = [];
      for (const [i, part] of parts.entries()) {
        const file = path.join(dir, `part${i + 1}`);
        writeFileSync(file, part);
        const r = await awsJson(
          's3api',
          'upload-part',
          '--bucket',
          bucket,
          '--key',
          key,
          '--upload-id',
          UploadId,
          '--part-number',
          String(i + 1),
          '--body',
          file,
        );
        expect(r.ETag).to.equal(`"${md5(part).toString('hex')}"`);
        done.push({ PartNumber: i + 1, ETag: r.ETag });
      }
      const partsFile = path.join(dir, 'parts.json');
      writeFileSync(partsFile, JSON.stringify({ Parts: done }));
      const completed = await awsJson(
        's3api',
        'complete-multipart-upload',
        '--bucket',
        bucket,
        '--key',
        key,
        '--upload-id',
        UploadId,
        '--multipart-upload',
        `file://${partsFile}`,
      );
      const etag = `"${createHash('md5')
        .update(Buffer.concat(parts.map(md5)))
        .digest('hex')}-3"`;
      expect(completed.ETag).to.equal(etag);
      const out = path.join(dir, 'out');
      await aws('s3api', 'get-object', '--bucket', bucket, '--key', key, out);
      expect(fileSha(out)).to.equal(sha256(big));
    });

    it('rm --recursive empties the bucket and rb removes it', async () => {
      await aws('s3', 'rm', '--recursive', `s3://${bucket}/`);
      expect((await aws('s3', 'ls', '--recursive', `s3://${bucket}/`)).trim()).to.equal('');
      await aws('s3', 'rb', `s3://${bucket}`);
      expect(await aws('s3', 'ls')).to.not.include(bucket);
    });
  });

  describe('rclone', () => {
    let env: NodeJS.ProcessEnv;
    const remote = 's3dfs:rclone-e2e';
    const rclone = (...args: string[]) => ok('rclone', args, env);
    // A modification time far from now, so keeping it cannot happen by accident.
    const mtime = new Date('2001-02-03T04:05:06Z');

    before(function () {
      requireTool(this, 'rclone', 'apt-get install rclone');
      const dir = freshDir('rclone-config');
      // Exactly the README's ~/.config/rclone/rclone.conf section.
      writeFileSync(
        path.join(dir, 'rclone.conf'),
        `[s3dfs]
type = s3
provider = Other
access_key_id = ${server.accessKey}
secret_access_key = ${server.secretKey}
endpoint = ${server.endpoint}
region = us-east-1
force_path_style = true
`,
      );
      env = { ...userEnv(), RCLONE_CONFIG: path.join(dir, 'rclone.conf') };
      for (const file of Object.keys(tree(fx.tree))) utimesSync(path.join(fx.tree, file), mtime, mtime);
      utimesSync(fx.big, mtime, mtime);
    });

    it('mkdir + copy a tree, then check agrees on md5 and size', async () => {
      await rclone('mkdir', remote);
      await rclone('copy', fx.tree, `${remote}/tree`);
      const out = await run('rclone', ['check', fx.tree, `${remote}/tree`], env);
      expect(out.code, out.stderr).to.equal(0);
      expect(out.stderr).to.match(/0 differences found/);
      expect(out.stderr).to.match(/7 matching files/);
      expect(out.stderr, 'hashes were compared, not just sizes').to.not.match(/hashes could not be checked/);
    });

    it('copies a multipart-sized file (upload cutoff 5M) and checks it', async () => {
      await rclone('copy', '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M', fx.big, `${remote}/big`);
      const out = await run(
        'rclone',
        ['check', '--one-way', fx.dir, `${remote}/big`, '--include', 'big.bin'],
        env,
      );
      expect(out.code, out.stderr).to.equal(0);
      const down = freshDir('rclone-big');
      await rclone('copy', `${remote}/big/big.bin`, down);
      expect(fileSha(path.join(down, 'big.bin'))).to.equal(fileSha(fx.big));
    });

    it('ls and lsf list the keys and sizes; lsl shows the source mtime', async () => {
      const files = tree(fx.tree);
      const lsf = (await rclone('lsf', '-R', '--files-only', `${remote}/tree`)).trim().split('\n');
      expect(lsf.sort()).to.deep.equal(Object.keys(files).sort());
      const ls = await rclone('ls', `${remote}/tree`);
      expect(ls).to.match(new RegExp(`^\\s*${2 * MiB + 7} with space/${escapeRe(ODD_NAME)}$`, 'm'));
      expect(ls).to.match(/^\s*0 empty\.bin$/m);
      const lsl = (await rclone('lsl', `${remote}/tree`)).trim().split('\n');
      expect(lsl).to.have.length(7);
      for (const line of lsl) expect(line).to.match(/^\s*\d+ 2001-02-03 04:05:06\.0+ /);
      const big = await rclone('lsl', `${remote}/big`);
      expect(big).to.match(/2001-02-03 04:05:06\.0+ big\.bin/);
    });

    it('sync makes the remote match a changed local tree, and back', async () => {
      const local = freshDir('rclone-sync');
      await rclone('sync', `${remote}/tree`, local);
      expect(tree(local)).to.deep.equal(tree(fx.tree));
      rmSync(path.join(local, 'plain.txt'));
      writeFileSync(path.join(local, 'ünïcødé', 'new + file.txt'), 'new\n');
      writeFileSync(path.join(local, 'one.bin'), 'changed');
      await rclone('sync', local, `${remote}/tree`);
      const out = await run('rclone', ['check', local, `${remote}/tree`], env);
      expect(out.code, out.stderr).to.equal(0);
      const back = freshDir('rclone-back');
      await rclone('sync', `${remote}/tree`, back);
      expect(tree(back)).to.deep.equal(tree(local));
    });

    it('moveto is a server-side copy and delete', async () => {
      const from = `${remote}/tree/with space/${ODD_NAME}`;
      const to = `${remote}/moved/${ODD_NAME}`;
      const r = await run('rclone', ['moveto', '-v', from, to], env);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/server-side/i);
      const lsf = await rclone('lsf', '-R', `${remote}`);
      expect(lsf).to.include(`moved/${ODD_NAME}`);
      expect(lsf).to.not.include(`tree/with space/${ODD_NAME}`);
      const down = freshDir('rclone-moved');
      await rclone('copy', to, down);
      expect(fileSha(path.join(down, ODD_NAME))).to.equal(
        fileSha(path.join(fx.tree, 'with space', ODD_NAME)),
      );
    });

    it('delete removes matching files; purge removes everything and the bucket', async () => {
      await rclone('delete', `${remote}/tree`, '--include', '*.txt');
      const left = (await rclone('lsf', '-R', '--files-only', `${remote}/tree`)).trim().split('\n').sort();
      expect(left).to.deep.equal(['empty.bin', 'one.bin']);
      await rclone('purge', remote);
      expect(await rclone('lsd', 's3dfs:')).to.not.include('rclone-e2e');
    });
  });

  describe('s3cmd', () => {
    let cfg: string;
    const bucket = 's3://s3cmd-e2e';
    const s3cmd = (...args: string[]) => ok('s3cmd', ['-c', cfg, ...args], userEnv());

    before(function () {
      requireTool(this, 's3cmd', 'apt-get install s3cmd');
      const hostPort = new URL(server.endpoint).host;
      cfg = path.join(freshDir('s3cmd-config'), 's3cfg');
      // Exactly the README's ~/.s3cfg: path-style (host_bucket without %(bucket)s), SigV4, HTTP.
      writeFileSync(
        cfg,
        `[default]
access_key = ${server.accessKey}
secret_key = ${server.secretKey}
host_base = ${hostPort}
host_bucket = ${hostPort}
bucket_location = us-east-1
use_https = False
signature_v2 = False
`,
      );
    });

    it('mb, then ls shows the bucket', async () => {
      await s3cmd('mb', bucket);
      expect(await s3cmd('ls')).to.include(bucket);
    });

    it('put and get: 0 bytes, 1 byte, several chunks, under odd keys', async () => {
      const down = freshDir('s3cmd-down');
      for (const [i, file] of [fx.empty, fx.one, fx.multiChunk].entries()) {
        const key = `${bucket}/${DEEP_PREFIX}${i} ${ODD_NAME}`;
        await s3cmd('put', file, key);
        const local = path.join(down, `${i}.bin`);
        await s3cmd('get', key, local);
        expect(fileSha(local), key).to.equal(fileSha(file));
      }
    });

    it('put with its multipart (5 MiB parts) and get it back; info shows size and MD5', async () => {
      const key = `${bucket}/big/${ODD_NAME}`;
      await s3cmd('put', '--multipart-chunk-size-mb=5', fx.big, key);
      // s3cmd prints parts only on a terminal; the ETag says how it was uploaded.
      const head = await sdk().send(new HeadObjectCommand({ Bucket: 's3cmd-e2e', Key: `big/${ODD_NAME}` }));
      expect(head.ETag).to.match(/^"[0-9a-f]{32}-3"$/);
      const local = path.join(freshDir('s3cmd-big'), 'big');
      await s3cmd('get', key, local);
      expect(fileSha(local)).to.equal(fileSha(fx.big));
      const info = await s3cmd('info', key);
      expect(info).to.match(new RegExp(`File size:\\s+${12 * MiB + 4567}`));
      // s3cmd keeps the whole file's MD5 in its x-amz-meta-s3cmd-attrs and shows it here.
      expect(info).to.include(md5(readFileSync(fx.big)).toString('hex'));
    });

    it('ls and la list keys with sizes', async () => {
      const ls = await s3cmd('ls', '--recursive', `${bucket}/`);
      expect(ls).to.include(`${bucket}/${DEEP_PREFIX}0 ${ODD_NAME}`);
      expect(ls).to.match(
        new RegExp(`\\s${3 * MiB + 123}\\s+${escapeRe(`${bucket}/${DEEP_PREFIX}2 ${ODD_NAME}`)}`),
      );
      const top = await s3cmd('ls', `${bucket}/`);
      expect(top).to.match(/DIR\s+s3:\/\/s3cmd-e2e\/big\//);
      expect(top).to.match(/DIR\s+s3:\/\/s3cmd-e2e\/deep\//);
      const la = await s3cmd('la', '--recursive');
      expect(la).to.include(`${bucket}/big/${ODD_NAME}`);
    });

    it('sync up and down, with odd names', async () => {
      await s3cmd('sync', `${fx.tree}/`, `${bucket}/tree/`);
      const down = freshDir('s3cmd-sync');
      await s3cmd('sync', `${bucket}/tree/`, `${down}/`);
      expect(tree(down)).to.deep.equal(tree(fx.tree));
      // Nothing changed: s3cmd compares size and MD5 (the ETag) and uploads nothing.
      const again = await s3cmd('sync', `${fx.tree}/`, `${bucket}/tree/`);
      expect(again).to.not.match(/upload:/);
    });

    it('del removes objects; del --recursive and rb remove the rest', async () => {
      await s3cmd('del', `${bucket}/big/${ODD_NAME}`);
      expect(await s3cmd('ls', '--recursive', `${bucket}/`)).to.not.include(`big/${ODD_NAME}`);
      await s3cmd('del', '--recursive', '--force', `${bucket}/`);
      expect((await s3cmd('ls', '--recursive', `${bucket}/`)).trim()).to.equal('');
      await s3cmd('rb', bucket);
      expect(await s3cmd('ls')).to.not.include(bucket);
    });
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
