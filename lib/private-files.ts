// What s3dfs keeps on disk is its owner's alone: directories 0700, files 0600, whatever the umask
// it was started under. The metadata (PGlite's WAL holds the cluster secret and the S3 keys) and
// the chunks (every object's bytes) are not for the host's other users to read.
//
// Three layers: every s3dfs process runs under umask 077 (bin/s3dfs.ts), so whatever it creates
// without naming a mode is private; what must be private whatever the umask (chunk files, the
// credentials, the volume and data dirs) is created or chmod'ed with an explicit mode; and the
// directories an older version may have left wide are chmod'ed at start. A private directory
// keeps others out of everything below it, so chunk files an older version wrote 0644 (there may
// be millions) are not walked at every start: their directories (the top ones, chmod'ed here at
// start, and the fan-out ones, made 0700) already stop any other user.
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from './config.js';

export const privateDirMode = 0o700;
export const privateFileMode = 0o600;
/** Group and other get no bits of anything an s3dfs process creates. */
export const privateUmask = 0o077;

/** Sets this process's umask to 077; called first thing by every s3dfs command (bin/s3dfs.ts). */
export function restrictUmask(): void {
  process.umask(privateUmask);
}

/**
 * Makes `dir` (missing parents too) and makes it 0700 even if it existed: made by an older version
 * or under a wider umask. A directory that is not ours to chmod (a shared one given as the data
 * dir) stops the start with a clear message rather than leaving the data readable.
 */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: privateDirMode });
  try {
    if ((lstatSync(dir).mode & 0o777) !== privateDirMode) chmodSync(dir, privateDirMode);
  } catch (err) {
    throw new ConfigError([
      `${dir}: cannot make it private (mode 0700): ${(err as Error).message}; give s3dfs a directory of its own`,
    ]);
  }
}

/** Makes an existing file 0600 (an older version wrote some wider); a missing one is fine. */
export function privateFile(file: string): void {
  try {
    if ((lstatSync(file).mode & 0o777) !== privateFileMode) chmodSync(file, privateFileMode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Makes every directory under `root` 0700 and every file 0600, once, at start: for the small
 * trees only (the metadata dir: about a thousand files, PGlite's 1 GiB segments and bounded WAL
 * keep it in the thousands even for a large catalogue), never for a node's chunks. Symlinks are
 * left alone (chmod would follow them out of the tree). Returns how many entries it changed.
 */
export function privateTree(root: string): number {
  let changed = 0;
  const visit = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    const want = st.isDirectory() ? privateDirMode : privateFileMode;
    if ((st.mode & 0o777) !== want) {
      chmodSync(p, want);
      changed += 1;
    }
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(path.join(p, name));
  };
  visit(root);
  return changed;
}
