// sha256OfFd hashes open files on worker threads: right digests under concurrency, errors reported
// per job, and the pool still serves after one.
import { createHash, randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { sha256OfFd } from '../../lib/file-hash.js';
import { tempDir } from '../helpers/db.js';

describe('sha256OfFd', () => {
  const dir = tempDir('s3dfs-file-hash-');

  it('hashes whole files, more at once than there are workers, each to its own digest', async () => {
    // Sizes around the worker's 1 MiB read buffer, and an empty file.
    const sizes = [0, 1, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17];
    const files = await Promise.all(
      sizes.map(async (size, i) => {
        const data = randomBytes(size);
        const file = path.join(dir, `f${i}`);
        await writeFile(file, data);
        return { fh: await open(file, 'r'), want: createHash('sha256').update(data).digest('hex') };
      }),
    );
    try {
      const got = await Promise.all(files.map((f) => sha256OfFd(f.fh.fd)));
      expect(got).to.deep.equal(files.map((f) => f.want));
    } finally {
      await Promise.all(files.map((f) => f.fh.close()));
    }
  });

  it('rejects a descriptor it cannot read, and goes on working', async () => {
    const err = await sha256OfFd(987_654).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/EBADF|bad file descriptor/i);
    const file = path.join(dir, 'after');
    await writeFile(file, 'still here');
    const fh = await open(file, 'r');
    try {
      expect(await sha256OfFd(fh.fd)).to.equal(createHash('sha256').update('still here').digest('hex'));
    } finally {
      await fh.close();
    }
  });
});
