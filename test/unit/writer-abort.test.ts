// The writer under an abort that lands while a local replica's write is still being begun: the
// body fails right after a new chunk's first bytes, before any node has answered. Nodes are
// stand-ins here (slow to begin, on a temp dir) because only their timing matters; the real
// protocol is covered in local-volumes.test.ts.
import { mkdirSync } from 'node:fs';
import { readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import type { ClusterView, Replica } from '../../gateway/storage/cluster.js';
import { LocalVolumeStore } from '../../gateway/storage/local-volumes.js';
import { writeChunks } from '../../gateway/storage/writer.js';
import { InsufficientStorage } from '../../lib/errors.js';
import type { NodeClient } from '../../lib/node-client.js';
import { tempDir } from '../helpers/db.js';

const chunk = 256 * 1024;

function standInCluster(volume: string, beginDelayMs: number) {
  mkdirSync(path.join(volume, 'tmp'), { recursive: true });
  const calls = { begun: 0, committed: 0, aborted: 0, deleted: 0 };
  const client = {
    async beginLocalWrite(id: string) {
      await new Promise((r) => setTimeout(r, beginDelayMs));
      const name = `${id}.${(calls.begun++).toString(16).padStart(4, '0')}.tmp`;
      await writeFile(path.join(volume, 'tmp', name), '');
      return name;
    },
    async commitLocalWrite(name: string, sha256: string) {
      calls.committed++;
      await rename(path.join(volume, 'tmp', name), path.join(volume, name));
      // A node takes the block sums the writer leaves beside the temp file (lib/chunk-file.ts) too.
      await rename(path.join(volume, 'tmp', `${name}.sums`), path.join(volume, `${name}.sums`));
      return { id: 'x', size: chunk, sha256, created: true };
    },
    async abortLocalWrite(name: string) {
      calls.aborted++;
      await rm(path.join(volume, 'tmp', name), { force: true });
      await rm(path.join(volume, 'tmp', `${name}.sums`), { force: true });
    },
    async delete() {
      calls.deleted++;
    },
  };
  // The gateway's own LocalVolumeStore, in front of a stand-in node.
  const local = new LocalVolumeStore(volume, client as unknown as NodeClient);
  const replicas = ['a', 'b', 'c'].map((id) => ({ node: { id }, client, local }) as unknown as Replica);
  const cluster = {
    place: () => replicas,
    readOrder: () => replicas,
    localVolumes: { forget() {} },
  } as unknown as ClusterView;
  // The intent log, as the writer sees it: what it recorded and what it handed back.
  const intents = {
    recorded: [] as string[],
    abandoned: [] as string[],
    async record(id: string) {
      intents.recorded.push(id);
    },
    async abandon(ids: string[]) {
      intents.abandoned.push(...ids);
    },
  };
  return { cluster, calls, intents };
}

describe('writer: an abort while local writes are being begun', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('s3dfs-writer-');
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('fails the write with the body error, crashes nothing and leaves no temp file', async () => {
    const { cluster, calls, intents } = standInCluster(dir, 50);
    async function* body() {
      yield Buffer.alloc(chunk, 1); // a whole chunk: its replicas are begun
      yield Buffer.alloc(1024, 2); // the next chunk's first bytes, then the client is gone
      throw new Error('client went away');
    }
    const write = writeChunks(body(), cluster, {
      size: 3 * chunk,
      chunkSize: chunk,
      replication: 3,
      writeQuorum: 2,
      intents,
    });
    const err = await write.then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.equal('client went away');
    // Give the begun writes time to be answered, aborted and cleaned up.
    await new Promise((r) => setTimeout(r, 300));
    expect(await readdir(path.join(dir, 'tmp'))).to.deep.equal([]);
    expect(calls.begun).to.equal(6);
    expect(calls.aborted).to.equal(3);
    // The first chunk, complete, was committed and then removed again: nothing of a failed write stays.
    expect(calls.committed).to.equal(3);
    expect(calls.deleted).to.equal(3);
    // Both chunks begun, the stored one and the cut one, are handed back for the manager to clean.
    expect(intents.recorded).to.have.length(2);
    expect([...intents.abandoned].sort()).to.deep.equal([...intents.recorded].sort());
  });

  it('a chunk that fails after its last byte (a full disk at commit) ends the upload, never unhandled', async () => {
    const { cluster, intents } = standInCluster(dir, 0);
    const replicas = cluster.place('x', 3);
    const client = replicas[0].client as unknown as { commitLocalWrite: () => Promise<never> };
    client.commitLocalWrite = async () => {
      throw new InsufficientStorage('the disk is full');
    };
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    let pieces = 0;
    async function* body() {
      for (let i = 0; i < 16; i++) {
        pieces++;
        yield Buffer.alloc(chunk, i);
        // Slower than a commit: the first chunk has failed before the body is half read.
        await new Promise((r) => setTimeout(r, 30));
      }
    }
    try {
      const err = await writeChunks(body(), cluster, {
        size: 16 * chunk,
        chunkSize: chunk,
        replication: 3,
        writeQuorum: 2,
        intents,
      }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(InsufficientStorage);
      expect(pieces).to.be.lessThan(16);
      await new Promise((r) => setTimeout(r, 100));
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', record);
    }
  });
});
