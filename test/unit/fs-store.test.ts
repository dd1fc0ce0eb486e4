// FsChunkStore keeps the ChunkStore contract on disk, survives reopen, quarantines bitrot, and the node's config and identity are validated.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { writeChunkFile } from '../../lib/chunk-file.js';
import { ConfigError } from '../../lib/config.js';
import { BadRequest, Conflict, Corrupt, InsufficientStorage, NotFound } from '../../lib/errors.js';
import { newChunkId } from '../../lib/ids.js';
import { loadNodeConfig } from '../../storage-node/config.js';
import { FsChunkStore, loadNodeIdentity } from '../../storage-node/store.js';
import {
  describeChunkStore,
  expectReject,
  piecewise,
  readAll,
  sha256Of,
} from '../helpers/chunk-store-contract.js';
import { tempDir } from '../helpers/db.js';

const mib = 1024 ** 2;

async function openStore(dataDir: string, capacityBytes?: number) {
  return FsChunkStore.open({ dataDir, chunkSizeMax: 8 * mib, capacityBytes });
}

describeChunkStore('FsChunkStore', async () => {
  const dir = tempDir('s3dfs-fs-store-');
  const store = await openStore(dir);
  return {
    store,
    leftovers: () => readdir(store.tmpDir),
    close: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('FsChunkStore on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('s3dfs-fs-store-');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fans chunks out as chunks/ab/cd/<id>.<sha256> with nothing left in tmp', async () => {
    const store = await openStore(dir);
    const id = newChunkId();
    const data = Buffer.from('hello chunk');
    await store.put(id, data, data.length);
    const leaf = path.join(dir, 'chunks', id.slice(0, 2), id.slice(2, 4));
    expect(await readdir(leaf)).to.deep.equal([`${id}.${sha256Of(data)}`]);
    expect(await readdir(store.tmpDir)).to.deep.equal([]);
  });

  it('stores a large body arriving in many small pieces intact, with nothing left in tmp', async () => {
    // Pieces are written in batches and synced early as they arrive; neither may lose or reorder a byte.
    const store = await FsChunkStore.open({ dataDir: dir, chunkSizeMax: 32 * mib });
    const data = randomBytes(20 * mib + 3);
    const id = newChunkId();
    const put = await store.put(id, piecewise(data, 1000), data.length);
    expect(put).to.include({ size: data.length, sha256: sha256Of(data), created: true });
    expect((await readAll((await store.get(id)).stream)).equals(data)).to.equal(true);
    expect(await readdir(store.tmpDir)).to.deep.equal([]);
  });

  it('counts used bytes and chunks incrementally and again from disk on reopen; clears tmp leftovers', async () => {
    const store = await openStore(dir);
    const ids = [newChunkId(), newChunkId(), newChunkId()];
    for (const [i, id] of ids.entries()) await store.put(id, Buffer.alloc(100 * (i + 1)), 100 * (i + 1));
    await store.delete(ids[0]);
    expect(store.stats()).to.include({ usedBytes: 500, chunkCount: 2 });
    await writeFile(path.join(store.tmpDir, `${newChunkId()}.crash.tmp`), 'half a chunk');

    const reopened = await openStore(dir);
    expect(reopened.stats()).to.include({ usedBytes: 500, chunkCount: 2 });
    expect(await readdir(reopened.tmpDir)).to.deep.equal([]);
    expect((await reopened.head(ids[2]))?.size).to.equal(300);
  });

  it('lists correctly past thousands of files spread over many fan-out directories', async () => {
    const ids = Array.from({ length: 5000 }, () => newChunkId()).sort();
    const sha = sha256Of(Buffer.from('x'));
    // Written straight into the layout: the point is the walk, not 5000 fsyncs.
    for (const id of ids) {
      const leaf = path.join(dir, 'chunks', id.slice(0, 2), id.slice(2, 4));
      await mkdir(leaf, { recursive: true });
      await writeFile(path.join(leaf, `${id}.${sha}`), 'x');
    }
    const store = await openStore(dir);
    expect(store.stats()).to.include({ chunkCount: 5000, usedBytes: 5000 });
    const seen: string[] = [];
    let after: string | undefined;
    do {
      const page = await store.list(after, 777);
      seen.push(...page.chunks.map((c) => c.id));
      after = page.next ?? undefined;
    } while (after);
    expect(seen).to.deep.equal(ids);
    // Starting after an id whose fan-out directories hold nothing later still finds what follows.
    const mid = ids[2500];
    expect((await store.list(mid, 3)).chunks.map((c) => c.id)).to.deep.equal(ids.slice(2501, 2504));
  });

  it('refuses a whole read of a corrupt chunk before its first byte, quarantines it and counts it', async () => {
    const store = await openStore(dir);
    const id = newChunkId();
    const data = Buffer.alloc(600_000, 7);
    await store.put(id, data, data.length);
    const leaf = path.join(dir, 'chunks', id.slice(0, 2), id.slice(2, 4));
    const file = path.join(leaf, (await readdir(leaf))[0]);
    const bytes = await readFile(file);
    bytes[12345] ^= 0xff;
    await writeFile(file, bytes);

    // Nothing is handed out: a reader can fail over without having forwarded bad bytes.
    await expectReject(store.get(id), Corrupt);
    // Quarantine runs right after the failed check; give it a moment.
    for (let i = 0; i < 50 && (await store.head(id)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await store.head(id)).to.equal(undefined);
    expect(await readdir(store.quarantineDir)).to.have.length(1);
    expect(store.stats()).to.include({ corruptions: 1, chunkCount: 0, usedBytes: 0 });
    // Repair can write a good copy again.
    expect((await store.put(id, data, data.length)).created).to.equal(true);
  });

  it('serves ranged reads', async () => {
    const store = await openStore(dir);
    const id = newChunkId();
    await store.put(id, Buffer.from('0123456789'), 10);
    const got = await store.get(id, { start: 2, end: 4 });
    expect((await readAll(got.stream)).toString()).to.equal('234');
  });

  it('refuses a write that would exceed the declared capacity, keeping nothing', async () => {
    const store = await openStore(dir, 1000);
    await store.put(newChunkId(), Buffer.alloc(600), 600);
    const id = newChunkId();
    await expectReject(store.put(id, Buffer.alloc(600), 600), InsufficientStorage);
    expect(await store.head(id)).to.equal(undefined);
    expect(await readdir(store.tmpDir)).to.deep.equal([]);
    expect(await store.freeBytes()).to.equal(400);
  });
});

describe('FsChunkStore local writes', () => {
  // A gateway on the node's host fills a temp file the store hands out; the store checks, reserves,
  // commits and counts. These drive the store the way gateway/storage/writer.ts does.
  let dir: string;
  beforeEach(() => {
    dir = tempDir('s3dfs-fs-local-');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reserves on begin, and on commit puts the filled temp file in place and counts it', async () => {
    const store = await openStore(dir, 1000);
    const id = newChunkId();
    const data = randomBytes(600);
    const name = await store.beginLocalWrite(id, data.length);
    expect(await readdir(store.tmpDir)).to.deep.equal([name]);
    expect(await store.freeBytes()).to.equal(400);
    // The reservation holds against other writes, local or not.
    await expectReject(store.beginLocalWrite(newChunkId(), 500), InsufficientStorage);
    await expectReject(store.put(newChunkId(), Buffer.alloc(500), 500), InsufficientStorage);

    await writeChunkFile(path.join(store.tmpDir, name), piecewise(data, 100), data.length, {
      create: false,
      hash: false,
    });
    const put = await store.commitLocalWrite(name, sha256Of(data));
    expect(put).to.include({ id, size: 600, sha256: sha256Of(data), created: true });
    expect((await readAll((await store.get(id)).stream)).equals(data)).to.equal(true);
    expect(store.stats()).to.include({ usedBytes: 600, chunkCount: 1 });
    expect(await store.freeBytes()).to.equal(400);
    expect(await readdir(store.tmpDir)).to.deep.equal([]);
    // Committed once: the name is spent.
    await expectReject(store.commitLocalWrite(name, sha256Of(data)), NotFound);
  });

  it('lets only as many concurrent begins through as the capacity holds', async () => {
    const store = await openStore(dir, 1000);
    const begun = await Promise.allSettled([1, 2, 3].map(() => store.beginLocalWrite(newChunkId(), 400)));
    expect(begun.filter((b) => b.status === 'fulfilled')).to.have.length(2);
    const refused = begun.find((b) => b.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).to.be.instanceOf(InsufficientStorage);
    expect(await readdir(store.tmpDir)).to.have.length(2);
    expect(await store.freeBytes()).to.equal(200);
  });

  it('refuses a temp file of the wrong size or a bad sha256, and an id already stored otherwise', async () => {
    const store = await openStore(dir, 1000);
    const id = newChunkId();
    const short = await store.beginLocalWrite(id, 10);
    await writeFile(path.join(store.tmpDir, short), 'only 7 b');
    await expectReject(store.commitLocalWrite(short, sha256Of(Buffer.from('only 7 b'))), BadRequest);
    await expectReject(store.commitLocalWrite('x', 'nothex'), BadRequest);

    await store.put(id, Buffer.from('original'), 8);
    const other = await store.beginLocalWrite(id, 5);
    await writeFile(path.join(store.tmpDir, other), 'other');
    await expectReject(store.commitLocalWrite(other, sha256Of(Buffer.from('other'))), Conflict);
    expect((await readAll((await store.get(id)).stream)).toString()).to.equal('original');
    expect(await readdir(store.tmpDir)).to.deep.equal([]);
    expect(store.stats()).to.include({ usedBytes: 8, chunkCount: 1 });
    expect(await store.freeBytes()).to.equal(992);
    // Refused up front, before any temp file: a bad id, a chunk over the limit.
    await expectReject(store.beginLocalWrite('../../etc', 1), BadRequest);
    await expectReject(store.beginLocalWrite(newChunkId(), 9 * mib), Error);
    expect(await readdir(store.tmpDir)).to.deep.equal([]);
  });

  it('aborts on request and expires writes whose temp file went quiet, freeing their reservations', async () => {
    const store = await openStore(dir, 1000);
    const aborted = await store.beginLocalWrite(newChunkId(), 300);
    const quiet = await store.beginLocalWrite(newChunkId(), 300);
    const busy = await store.beginLocalWrite(newChunkId(), 300);
    expect(await store.freeBytes()).to.equal(100);
    await store.abortLocalWrite(aborted);
    await store.abortLocalWrite('never-begun.tmp');
    // Quiet for ten minutes, by its mtime; the busy one was just written to.
    const old = new Date(Date.now() - 10 * 60_000);
    await utimes(path.join(store.tmpDir, quiet), old, old);
    await writeFile(path.join(store.tmpDir, busy), 'more bytes');
    await store.expireLocalWrites(2 * 60_000);
    expect(await readdir(store.tmpDir)).to.deep.equal([busy]);
    expect(await store.freeBytes()).to.equal(700);
    await expectReject(store.commitLocalWrite(quiet, sha256Of(Buffer.alloc(0))), NotFound);
  });
});

describe('storage node identity and config', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('s3dfs-node-id-');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates an id once, keeps it, and refuses a different --id on the same dir', async () => {
    const first = await loadNodeIdentity(dir);
    expect((await loadNodeIdentity(dir)).id).to.equal(first.id);
    expect((await loadNodeIdentity(dir, first.id)).id).to.equal(first.id);
    const err = await expectReject(loadNodeIdentity(dir, 'someone-else'), ConfigError);
    expect(err.message).to.contain(first.id).and.contain('someone-else');
    const named = tempDir('s3dfs-node-id-');
    expect((await loadNodeIdentity(named, 'node-7')).id).to.equal('node-7');
    await rm(named, { recursive: true, force: true });
  });

  it('reads flags before environment and reports every bad value at once', () => {
    const env = { S3DFS_NODE_PORT: '9100', S3DFS_NODE_DATA: '/srv/node', S3DFS_NODE_CAPACITY: '2GiB' };
    const c = loadNodeConfig(['--port', '0', '--host', '0.0.0.0'], env);
    expect(c).to.include({ port: 0, host: '0.0.0.0', dataDir: '/srv/node', capacityBytes: 2 * 1024 ** 3 });
    expect(c.chunkSizeMax).to.equal(64 * mib);
    expect(loadNodeConfig([], env)).to.include({ port: 9100, host: '127.0.0.1' });

    let err: unknown;
    try {
      loadNodeConfig(['--port', 'abc', '--capacity', 'lots', '--id', '../x'], { S3DFS_CHUNK_SIZE_MAX: '0' });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const word of [
      '--port=abc',
      '--capacity=lots',
      '--id=../x',
      'S3DFS_CHUNK_SIZE_MAX=0',
      'data directory',
    ]) {
      expect(problems).to.contain(word);
    }
    expect(() => loadNodeConfig(['--bogus'], env)).to.throw(ConfigError, /bogus/);
    expect(() => loadNodeConfig(['--data', dir], {})).to.throw(ConfigError, /port is required/);
  });
});
