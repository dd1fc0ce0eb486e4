// FsChunkStore keeps the ChunkStore contract on disk, survives reopen, quarantines bitrot, and the node's config and identity are validated.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { ConfigError } from '../../lib/config.js';
import { Corrupt, InsufficientStorage } from '../../lib/errors.js';
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

  it('does not verify ranged reads (they cannot be), but still serves them', async () => {
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
