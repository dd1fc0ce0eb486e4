// The one contract every ChunkStore keeps (FsChunkStore on disk, NodeClient over HTTP, any later
// store): run it with describeChunkStore(name, factory) from each implementation's test file.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import { type ChunkStore, RangeNotSatisfiable } from '../../lib/chunk-store.js';
import { BadRequest, Conflict, NotFound } from '../../lib/errors.js';
import { newChunkId } from '../../lib/ids.js';

export interface ChunkStoreFixture {
  store: ChunkStore;
  /** Files left in the store's temp area, when the fixture can see it: must be empty after failures. */
  leftovers?(): Promise<string[]>;
  close(): Promise<void>;
}

export function sha256Of(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** A body delivered in pieces, as a network stream would. */
export function piecewise(buf: Buffer, pieceBytes = 64 * 1024): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0; i < buf.length; i += pieceBytes) pieces.push(buf.subarray(i, i + pieceBytes));
  return Readable.from(pieces);
}

export async function expectReject(p: Promise<unknown>, type: abstract new (...args: never[]) => Error) {
  try {
    await p;
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(type);
    return err as Error;
  }
  expect.fail(`expected ${type.name}, but it succeeded`);
}

export function describeChunkStore(name: string, factory: () => Promise<ChunkStoreFixture>): void {
  describe(`ChunkStore contract: ${name}`, () => {
    let fx: ChunkStoreFixture;
    let store: ChunkStore;
    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.close();
    });

    async function expectAbsent(id: string) {
      expect(await store.head(id)).to.equal(undefined);
      await expectReject(store.get(id), NotFound);
      const page = await store.list(undefined, 10_000);
      expect(page.chunks.map((c) => c.id)).not.to.include(id);
      if (fx.leftovers) expect(await fx.leftovers()).to.deep.equal([]);
    }

    it('stores a streamed chunk and reads it back whole with its sha256', async () => {
      const data = randomBytes(1024 * 1024 + 17);
      const id = newChunkId();
      const put = await store.put(id, piecewise(data), data.length);
      expect(put).to.deep.equal({ id, size: data.length, sha256: sha256Of(data), created: true });
      const got = await store.get(id);
      expect(got.size).to.equal(data.length);
      expect(got.length).to.equal(data.length);
      expect(got.sha256).to.equal(sha256Of(data));
      expect(got.range).to.equal(undefined);
      expect((await readAll(got.stream)).equals(data)).to.equal(true);
    });

    it('accepts a Buffer body and an expected sha256 that matches', async () => {
      const data = randomBytes(4096);
      const id = newChunkId();
      const put = await store.put(id, data, data.length, sha256Of(data));
      expect(put.created).to.equal(true);
      expect((await readAll((await store.get(id)).stream)).equals(data)).to.equal(true);
    });

    it('stores and serves an empty chunk', async () => {
      const id = newChunkId();
      const put = await store.put(id, Buffer.alloc(0), 0);
      expect(put.sha256).to.equal(sha256Of(Buffer.alloc(0)));
      const got = await store.get(id);
      expect(got.size).to.equal(0);
      expect((await readAll(got.stream)).length).to.equal(0);
    });

    it('serves inclusive byte ranges, clamps the end, refuses a start past the end', async () => {
      const data = randomBytes(10_000);
      const id = newChunkId();
      await store.put(id, data, data.length);
      const mid = await store.get(id, { start: 100, end: 199 });
      expect(mid.size).to.equal(data.length);
      expect(mid.length).to.equal(100);
      expect(mid.range).to.deep.equal({ start: 100, end: 199 });
      expect((await readAll(mid.stream)).equals(data.subarray(100, 200))).to.equal(true);
      const tail = await store.get(id, { start: 9_990, end: 1_000_000 });
      expect(tail.range).to.deep.equal({ start: 9_990, end: 9_999 });
      expect((await readAll(tail.stream)).equals(data.subarray(9_990))).to.equal(true);
      await expectReject(store.get(id, { start: 10_000, end: 10_005 }), RangeNotSatisfiable);
    });

    it('heads a chunk, and reports a missing one as absent / NotFound', async () => {
      const data = randomBytes(333);
      const id = newChunkId();
      await store.put(id, data, data.length);
      const info = await store.head(id);
      expect(info).to.include({ id, size: 333, sha256: sha256Of(data) });
      expect(info!.mtimeMs).to.be.within(Date.now() - 60_000, Date.now() + 60_000);
      await expectAbsent(newChunkId());
    });

    it('deletes a chunk, and deleting a missing chunk succeeds', async () => {
      const id = newChunkId();
      await store.put(id, Buffer.from('bye'), 3);
      await store.delete(id);
      await expectAbsent(id);
      await store.delete(id);
      await store.delete(newChunkId());
    });

    it('lists every chunk in id order, page by page', async () => {
      const ids = Array.from({ length: 25 }, () => newChunkId());
      await Promise.all(ids.map((id, i) => store.put(id, Buffer.from(`chunk ${i}`), `chunk ${i}`.length)));
      const sorted = [...ids].sort();
      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await store.list(after, 10);
        pages += 1;
        expect(page.chunks.length).to.be.at.most(10);
        seen.push(...page.chunks.map((c) => c.id));
        if (page.next === null) break;
        expect(page.next).to.equal(page.chunks[page.chunks.length - 1].id);
        after = page.next;
      }
      expect(seen).to.deep.equal(sorted);
      expect(pages).to.equal(3);
      const one = (await store.list(sorted[11], 1)).chunks[0];
      expect(one).to.include({ id: sorted[12], size: Buffer.byteLength(`chunk ${ids.indexOf(sorted[12])}`) });
      expect(one.sha256).to.equal(sha256Of(Buffer.from(`chunk ${ids.indexOf(sorted[12])}`)));
      expect(await store.list(sorted[24])).to.deep.equal({ chunks: [], next: null });
      await expectReject(store.list('../etc'), BadRequest);
      await expectReject(store.list(undefined, 0), BadRequest);
    });

    it('treats a second put of the same content as an idempotent success', async () => {
      const data = randomBytes(2048);
      const id = newChunkId();
      expect((await store.put(id, data, data.length)).created).to.equal(true);
      const again = await store.put(id, piecewise(data, 100), data.length, sha256Of(data));
      expect(again).to.deep.equal({ id, size: data.length, sha256: sha256Of(data), created: false });
    });

    it('refuses different content under an existing id with Conflict, keeping the original', async () => {
      const data = randomBytes(2048);
      const id = newChunkId();
      await store.put(id, data, data.length);
      await expectReject(store.put(id, randomBytes(2048), 2048), Conflict);
      expect((await readAll((await store.get(id)).stream)).equals(data)).to.equal(true);
      if (fx.leftovers) expect(await fx.leftovers()).to.deep.equal([]);
    });

    it('keeps nothing when the body does not match the expected sha256', async () => {
      const data = randomBytes(100_000);
      const id = newChunkId();
      await expectReject(
        store.put(id, piecewise(data), data.length, sha256Of(Buffer.from('other'))),
        BadRequest,
      );
      await expectAbsent(id);
    });

    it('keeps nothing when the body is shorter or longer than its declared size', async () => {
      const id = newChunkId();
      await expectReject(store.put(id, piecewise(randomBytes(1000)), 2000), BadRequest);
      await expectAbsent(id);
      await expectReject(store.put(id, piecewise(randomBytes(3000)), 2000), BadRequest);
      await expectAbsent(id);
    });

    it('refuses ids that are not 32 lowercase hex characters', async () => {
      for (const bad of ['../x', 'abc', newChunkId().toUpperCase(), `${newChunkId()}0`]) {
        await expectReject(store.put(bad, Buffer.from('x'), 1), BadRequest);
        await expectReject(store.get(bad), BadRequest);
      }
    });

    it('settles concurrent puts of one id: same content all succeed once, different content one wins', async () => {
      const data = randomBytes(200_000);
      const id = newChunkId();
      const same = await Promise.all(
        Array.from({ length: 6 }, () => store.put(id, piecewise(data), data.length)),
      );
      expect(same.filter((r) => r.created)).to.have.length(1);
      expect(same.every((r) => r.sha256 === sha256Of(data))).to.equal(true);

      const other = newChunkId();
      const bodies = Array.from({ length: 6 }, () => randomBytes(50_000));
      const results = await Promise.allSettled(bodies.map((b) => store.put(other, piecewise(b), b.length)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).to.have.length(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).to.be.instanceOf(Conflict);
      const winner = (won[0] as PromiseFulfilledResult<{ sha256: string }>).value.sha256;
      const stored = await readAll((await store.get(other)).stream);
      expect(sha256Of(stored)).to.equal(winner);
      if (fx.leftovers) expect(await fx.leftovers()).to.deep.equal([]);
    });

    it('reads the same chunk many times at once', async () => {
      const data = randomBytes(300_000);
      const id = newChunkId();
      await store.put(id, data, data.length);
      const reads = await Promise.all(
        Array.from({ length: 8 }, async () => readAll((await store.get(id)).stream)),
      );
      for (const r of reads) expect(r.equals(data)).to.equal(true);
    });
  });
}
