// A real storage-node process keeps the ChunkStore contract through NodeClient, survives SIGKILL mid-write, quarantines bitrot, refuses bad requests and full disks.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { LocalVolumeStore } from '../../gateway/storage/local-volumes.js';
import { Unauthorized } from '../../lib/chunk-store.js';
import { BadRequest, Corrupt, InsufficientStorage, NotFound, Unavailable } from '../../lib/errors.js';
import { newChunkId } from '../../lib/ids.js';
import { NodeClient } from '../../lib/node-client.js';
import { describeChunkStore, expectReject, readAll, sha256Of } from '../helpers/chunk-store-contract.js';
import { tempDir } from '../helpers/db.js';
import { type NodeProcess, NodeStartError, startNodeProcess } from '../helpers/node-process.js';

const secret = 'test-cluster-secret';

/** Every regular file under dir (recursively) but the volume's id marker (chunks/VOLUME). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const parent = e.parentPath ?? e.path;
    if (e.isFile() && !(e.name === 'VOLUME' && parent === dir)) out.push(path.join(parent, e.name));
  }
  return out;
}

/** The temp dir once the node has finished cleaning up after a failed request (or after 3 s). */
async function settledTmp(dataDir: string): Promise<string[]> {
  const tmp = path.join(dataDir, 'tmp');
  for (let i = 0; i < 60; i++) {
    const names = await readdir(tmp);
    if (names.length === 0) return names;
    await sleep(50);
  }
  return readdir(tmp);
}

interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function raw(
  node: NodeProcess,
  method: string,
  urlPath: string,
  headers: http.OutgoingHttpHeaders = {},
  body?: Buffer,
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    // path as given, not through URL, which would resolve `/chunk/../x` before it is sent
    const req = http.request({
      host: '127.0.0.1',
      port: node.port,
      path: urlPath,
      method,
      headers,
      agent: false,
    });
    req.on('error', reject);
    req.on('response', async (res) => {
      resolve({ status: res.statusCode!, headers: res.headers, body: await readAll(res) });
    });
    req.end(body);
  });
}

/** Sends exactly `head` (request line and headers) plus `body`, then reads until the node closes or replies. */
function rawSocket(
  node: NodeProcess,
  head: string,
  body = Buffer.alloc(0),
  endAfter = true,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(node.port, '127.0.0.1');
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (s: string) => {
      got += s;
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(got));
    sock.write(head);
    sock.write(body);
    if (endAfter) sock.end();
    else setTimeout(() => sock.destroy(), 1000);
  });
}

describeChunkStore('NodeClient → storage-node process', async () => {
  const dataDir = tempDir('s3dfs-node-');
  const node = await startNodeProcess({ dataDir, secret });
  return {
    store: new NodeClient({ baseUrl: node.url, secret }),
    leftovers: () => settledTmp(dataDir),
    async close() {
      await node.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

// The gateway's short circuit to a node volume on the same host keeps the same contract: reads
// from the files, writes into a temp file the node begins and commits.
describeChunkStore('LocalVolumeStore → the volume of a storage-node process on this host', async () => {
  const dataDir = tempDir('s3dfs-node-');
  const node = await startNodeProcess({ dataDir, secret });
  return {
    store: new LocalVolumeStore(dataDir, new NodeClient({ baseUrl: node.url, secret })),
    leftovers: () => settledTmp(dataDir),
    async close() {
      await node.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

describe('storage-node process', () => {
  const dirs: string[] = [];
  const nodes: NodeProcess[] = [];
  function dir(): string {
    const d = tempDir('s3dfs-node-');
    dirs.push(d);
    return d;
  }
  async function start(opts: Parameters<typeof startNodeProcess>[0]): Promise<NodeProcess> {
    const node = await startNodeProcess(opts);
    nodes.push(node);
    return node;
  }
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  it('reports its port and id, keeps the id across restarts, refuses another id, exits 0 on SIGTERM', async () => {
    const dataDir = dir();
    const first = await start({ dataDir });
    expect(first.port).to.be.above(0);
    expect(first.url).to.equal(`http://127.0.0.1:${first.port}`);
    const persisted = JSON.parse(await readFile(path.join(dataDir, 'node.json'), 'utf8'));
    expect(persisted.id).to.equal(first.id);
    await first.stop();
    expect(await first.exited).to.equal(0);

    const again = await start({ dataDir });
    expect(again.id).to.equal(first.id);
    await again.stop();

    const err = await expectReject(start({ dataDir, id: 'another-node' }), NodeStartError);
    expect((err as NodeStartError).exitCode).to.equal(2);
    expect((err as NodeStartError).stderr).to.contain(`belongs to node '${first.id}'`);
  });

  it('refuses bad flags and environment with one clear message and exit code 2', async () => {
    const err = (await expectReject(
      start({ dataDir: dir(), args: ['--capacity', 'huge'], env: { S3DFS_CHUNK_SIZE_MAX: 'big' } }),
      NodeStartError,
    )) as NodeStartError;
    expect(err.exitCode).to.equal(2);
    expect(err.stderr).to.contain('invalid configuration');
    expect(err.stderr).to.contain('--capacity=huge');
    expect(err.stderr).to.contain('S3DFS_CHUNK_SIZE_MAX=big');
  });

  it('serves /health without the secret and refuses everything else without the right one', async () => {
    const node = await start({ dataDir: dir(), secret, capacity: '1GiB' });
    const health = await new NodeClient({ baseUrl: node.url }).health(2000);
    expect(health).to.include({ status: 'ok', nodeId: node.id, capacityBytes: 1024 ** 3, usedBytes: 0 });
    expect(health.version).to.match(/^\d+\.\d+\.\d+/);
    expect(health.counters).to.have.keys(
      'reads',
      'localReads',
      'writes',
      'localWrites',
      'deletes',
      'bytesIn',
      'bytesOut',
      'errors',
      'corruptions',
    );
    expect(health.latency).to.have.keys('readP50Ms', 'readP99Ms', 'writeP50Ms', 'writeP99Ms');

    const id = newChunkId();
    await expectReject(new NodeClient({ baseUrl: node.url }).put(id, Buffer.from('x'), 1), Unauthorized);
    await expectReject(new NodeClient({ baseUrl: node.url, secret: 'wrong' }).head(id), Unauthorized);
    expect((await raw(node, 'GET', '/chunks')).status).to.equal(401);

    const client = new NodeClient({ baseUrl: node.url, secret });
    await client.put(id, Buffer.from('hello'), 5);
    await readAll((await client.get(id)).stream);
    const after = await client.health();
    expect(after).to.include({ usedBytes: 5, chunkCount: 1 });
    expect(after.counters).to.include({ writes: 1, reads: 1, bytesIn: 5, bytesOut: 5 });
    expect(after.latency.writeP99Ms).to.be.above(0);

    // Reads a gateway on this host made from the files directly are reported and counted too.
    await client.reportLocalReads(3, 3000);
    expect((await client.health()).counters).to.include({ reads: 4, localReads: 3, bytesOut: 3005 });
  });

  it('takes local-read reports only with the secret and only as two non-negative integers', async () => {
    const node = await start({ dataDir: dir(), secret });
    await expectReject(new NodeClient({ baseUrl: node.url }).reportLocalReads(1, 1), Unauthorized);
    const auth = { 'x-s3dfs-secret': secret };
    for (const bad of [
      '{"reads":-1,"bytes":0}',
      '{"reads":1.5,"bytes":0}',
      '{"reads":1}',
      '[1,2]',
      'null',
      'nope',
    ]) {
      const body = Buffer.from(bad);
      const r = await raw(node, 'POST', '/local-reads', { ...auth, 'content-length': body.length }, body);
      expect(r.status, bad).to.equal(400);
    }
    const big = Buffer.alloc(2048, 32);
    expect(
      (await raw(node, 'POST', '/local-reads', { ...auth, 'content-length': big.length }, big)).status,
    ).to.equal(400);
    expect((await raw(node, 'GET', '/local-reads', auth)).status).to.equal(405);
    const health = await new NodeClient({ baseUrl: node.url }).health();
    expect(health.counters).to.include({ reads: 0, localReads: 0, bytesOut: 0 });
  });

  it('lets a writer on its host fill a temp file and commits it as a chunk, counted as a write', async () => {
    const dataDir = dir();
    const node = await start({ dataDir, secret, capacity: '1MiB' });
    const client = new NodeClient({ baseUrl: node.url, secret });
    await expectReject(new NodeClient({ baseUrl: node.url }).beginLocalWrite(newChunkId(), 1), Unauthorized);

    const id = newChunkId();
    const data = randomBytes(300 * 1024);
    const name = await client.beginLocalWrite(id, data.length);
    expect(await readdir(path.join(dataDir, 'tmp'))).to.deep.equal([name]);
    // Reserved: another write that would not fit beside it is refused.
    await expectReject(client.beginLocalWrite(newChunkId(), 800 * 1024), InsufficientStorage);
    await writeFile(path.join(dataDir, 'tmp', name), data);
    expect(await client.commitLocalWrite(name, sha256Of(data))).to.include({
      id,
      size: data.length,
      sha256: sha256Of(data),
      created: true,
    });
    expect((await readAll((await client.get(id)).stream)).equals(data)).to.equal(true);
    const health = await client.health();
    expect(health).to.include({ usedBytes: data.length, chunkCount: 1 });
    expect(health.counters).to.include({ writes: 1, localWrites: 1, bytesIn: data.length });

    // A spent or unknown name, a wrong size: refused, nothing kept, the reservation freed.
    await expectReject(client.commitLocalWrite(name, sha256Of(data)), NotFound);
    const short = await client.beginLocalWrite(newChunkId(), 10);
    await writeFile(path.join(dataDir, 'tmp', short), 'short');
    await expectReject(client.commitLocalWrite(short, sha256Of(Buffer.from('short'))), BadRequest);
    const dropped = await client.beginLocalWrite(newChunkId(), 700 * 1024);
    await client.abortLocalWrite(dropped);
    expect(await readdir(path.join(dataDir, 'tmp'))).to.deep.equal([]);
    expect((await client.health()).freeBytes).to.equal(1024 ** 2 - data.length);

    const auth = { 'x-s3dfs-secret': secret };
    for (const [route, bad] of [
      ['/local-writes', '{"id":"../x","size":1}'],
      ['/local-writes', '{"id":"0123456789abcdef0123456789abcdef","size":-1}'],
      ['/local-writes', '[]'],
      ['/local-writes/commit', '{"name":"x"}'],
      ['/local-writes/abort', '{}'],
      ['/local-writes/commit', 'nope'],
    ]) {
      const body = Buffer.from(bad);
      const r = await raw(node, 'POST', route, { ...auth, 'content-length': body.length }, body);
      expect(r.status, `${route} ${bad}`).to.equal(400);
    }
    expect((await raw(node, 'GET', '/local-writes', auth)).status).to.equal(405);
    expect(
      (await raw(node, 'POST', '/local-writes/other', { ...auth, 'content-length': 2 }, Buffer.from('{}')))
        .status,
    ).to.equal(404);
  });

  it('answers malformed requests with a clear 4xx and keeps nothing on disk', async () => {
    const dataDir = dir();
    const node = await start({ dataDir, secret, env: { S3DFS_CHUNK_SIZE_MAX: '64KiB' } });
    const auth = { 'x-s3dfs-secret': secret };
    const body = Buffer.from('some bytes');
    const len = { ...auth, 'content-length': body.length };
    for (const bad of ['../x', '..%2Fx', 'abc', newChunkId().toUpperCase(), `${newChunkId()}.x`]) {
      const r = await raw(node, 'PUT', `/chunk/${bad}`, len, body);
      expect(r.status, bad).to.equal(400);
      expect(JSON.parse(r.body.toString()).message).to.contain('32 lowercase hex');
    }
    const id = newChunkId();
    // No Content-Length: Node sends the body chunked.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${node.url}/chunk/${id}`, { method: 'PUT', headers: auth, agent: false });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write(body);
      req.end();
    });
    expect(chunked).to.equal(411);
    expect(
      await rawSocket(node, `PUT /chunk/${id} HTTP/1.1\r\nHost: x\r\nx-s3dfs-secret: ${secret}\r\n\r\n`),
    ).to.match(/^HTTP\/1.1 411/);
    expect(
      await rawSocket(node, `PUT /chunk/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n`, body),
    ).to.match(/^HTTP\/1.1 400/);
    // Fewer bytes than Content-Length, then the client goes away: an aborted upload.
    await rawSocket(
      node,
      `PUT /chunk/${id} HTTP/1.1\r\nHost: x\r\nx-s3dfs-secret: ${secret}\r\nContent-Length: 1000\r\n\r\n`,
      body,
      false,
    );
    const wrongSha = await raw(
      node,
      'PUT',
      `/chunk/${id}`,
      { ...len, 'x-s3dfs-sha256': sha256Of(Buffer.from('no')) },
      body,
    );
    expect(wrongSha.status).to.equal(400);
    expect(JSON.parse(wrongSha.body.toString()).message).to.contain('does not match');
    const badSha = await raw(node, 'PUT', `/chunk/${id}`, { ...len, 'x-s3dfs-sha256': 'xyz' }, body);
    expect(badSha.status).to.equal(400);
    // Oversized: refused on the headers alone.
    const big = await rawSocket(
      node,
      `PUT /chunk/${id} HTTP/1.1\r\nHost: x\r\nx-s3dfs-secret: ${secret}\r\nContent-Length: ${64 * 1024 + 1}\r\n\r\n`,
      Buffer.alloc(0),
      false,
    );
    expect(big).to.match(/^HTTP\/1.1 413/);
    expect((await raw(node, 'PATCH', `/chunk/${id}`, auth)).status).to.equal(405);
    expect((await raw(node, 'GET', '/nowhere', auth)).status).to.equal(404);
    expect((await raw(node, 'GET', '/chunks?limit=100000', auth)).status).to.equal(400);

    expect(await settledTmp(dataDir)).to.deep.equal([]);
    expect(await filesUnder(path.join(dataDir, 'chunks'))).to.deep.equal([]);
    expect((await raw(node, 'HEAD', `/chunk/${id}`, auth)).status).to.equal(404);
  });

  it('serves single byte ranges, ignores multi-range, answers 416 past the end', async () => {
    const node = await start({ dataDir: dir() });
    const id = newChunkId();
    await new NodeClient({ baseUrl: node.url }).put(id, Buffer.from('0123456789'), 10);
    const get = (range: string) => raw(node, 'GET', `/chunk/${id}`, { range });
    const a = await get('bytes=2-4');
    expect([a.status, a.body.toString(), a.headers['content-range']]).to.deep.equal([
      206,
      '234',
      'bytes 2-4/10',
    ]);
    const b = await get('bytes=7-');
    expect([b.status, b.body.toString(), b.headers['content-range']]).to.deep.equal([
      206,
      '789',
      'bytes 7-9/10',
    ]);
    const c = await get('bytes=-3');
    expect([c.status, c.body.toString(), c.headers['content-range']]).to.deep.equal([
      206,
      '789',
      'bytes 7-9/10',
    ]);
    const d = await get('bytes=0-1,4-5');
    expect([d.status, d.body.toString()]).to.deep.equal([200, '0123456789']);
    const e = await get('bytes=10-');
    expect([e.status, e.headers['content-range']]).to.deep.equal([416, 'bytes */10']);
    const h = await raw(node, 'HEAD', `/chunk/${id}`);
    expect(h.headers).to.include({
      'content-length': '10',
      'x-s3dfs-sha256': sha256Of(Buffer.from('0123456789')),
    });
    expect((await raw(node, 'DELETE', `/chunk/${id}`)).status).to.equal(204);
    expect((await raw(node, 'DELETE', `/chunk/${id}`)).status).to.equal(204);
    expect((await raw(node, 'GET', `/chunk/${id}`)).status).to.equal(404);
  });

  it('keeps nothing of a large PUT cut by SIGKILL, and cleans its temp file on restart', async () => {
    const dataDir = dir();
    const node = await start({ dataDir });
    const client = new NodeClient({ baseUrl: node.url });
    const id = newChunkId();
    const pieceBytes = 256 * 1024;
    const pieces = 128; // 32 MiB
    async function* slowBody() {
      for (let i = 0; i < pieces; i++) {
        yield randomBytes(pieceBytes);
        await sleep(10);
      }
    }
    const put = client.put(id, Readable.from(slowBody()), pieces * pieceBytes);
    put.catch(() => {});
    // Kill once a good part of the body is on disk in the temp file.
    const tmp = path.join(dataDir, 'tmp');
    for (let i = 0; i < 400; i++) {
      const names = await readdir(tmp);
      if (names.length === 1 && (await stat(path.join(tmp, names[0]))).size >= 8 * 1024 ** 2) break;
      await sleep(10);
    }
    node.kill('SIGKILL');
    await node.exited;
    await expectReject(put, Unavailable);
    expect(await readdir(tmp), 'the crash left a partial temp file').to.have.length(1);

    const again = await start({ dataDir });
    const client2 = new NodeClient({ baseUrl: again.url });
    expect(await client2.head(id)).to.equal(undefined);
    expect((await client2.list()).chunks).to.deep.equal([]);
    expect(await readdir(tmp)).to.deep.equal([]);
    expect(await filesUnder(path.join(dataDir, 'chunks'))).to.deep.equal([]);
  });

  it('fails a GET of a corrupt chunk at its bad block, tells the reader it is Corrupt, and quarantines the file', async () => {
    const dataDir = dir();
    const node = await start({ dataDir });
    const client = new NodeClient({ baseUrl: node.url });
    const id = newChunkId();
    const data = randomBytes(3 * 1024 ** 2);
    await client.put(id, data, data.length);
    const [file] = await filesUnder(path.join(dataDir, 'chunks'));
    const bytes = await readFile(file);
    bytes[1_000_000] ^= 0x01;
    await writeFile(file, bytes);

    // Block 15 of 48: the blocks before it go out (checked) before the node meets it.
    await expectReject(
      client.get(id).then((got) => readAll(got.stream)),
      Corrupt,
    );
    let head = await client.head(id);
    for (let i = 0; i < 50 && head; i++) {
      await sleep(20);
      head = await client.head(id);
    }
    expect(head).to.equal(undefined);
    const quarantined = await readdir(path.join(dataDir, 'quarantine'));
    expect(quarantined).to.have.length(1);
    expect(quarantined[0]).to.match(new RegExp(`^${id}\\.`));
    const health = await client.health();
    expect(health.counters.corruptions).to.equal(1);
    expect(health).to.include({ chunkCount: 0, usedBytes: 0 });
    // Repair can write the id again once the bad copy is out of the way.
    expect((await client.put(id, data, data.length)).created).to.equal(true);
  });

  it('answers 507 when the disk is full and keeps nothing', async function () {
    // A real full disk: a 1 MiB tmpfs. Mounting needs root (CI runs as root); elsewhere this test
    // is skipped, never faked.
    const mnt = dir();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      this.skip();
    }
    try {
      // A declared capacity well above the disk, so the disk itself runs out, not the quota.
      const node = await start({ dataDir: mnt, capacity: '1GiB' });
      const client = new NodeClient({ baseUrl: node.url });
      const id = newChunkId();
      await expectReject(client.put(id, randomBytes(2 * 1024 ** 2), 2 * 1024 ** 2), InsufficientStorage);
      expect(await settledTmp(mnt)).to.deep.equal([]);
      expect(await client.head(id)).to.equal(undefined);
      // The space came back: a chunk that fits is stored.
      const small = randomBytes(10_000);
      expect((await client.put(id, small, small.length)).created).to.equal(true);
      await node.stop();
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
