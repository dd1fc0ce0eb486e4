// Builds the storage-node image from the already compiled tree (the Dockerfile's `prebuilt`
// target), so neither npm nor a shell is needed inside any image: the build context is a tar of
// Dockerfile, package.json, the compiled output and the production node_modules only.
//   node dist/manager/runtime/docker-image.js
// reads S3DFS_DOCKER_BASE_IMAGE (default node:20-bookworm-slim), S3DFS_DOCKER_IMAGE and
// S3DFS_DOCKER_HOST.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { dockerClient } from './docker.js';

export const BASE_IMAGE_DEFAULT = 'node:20-bookworm-slim';

export interface BuildImageOptions {
  docker?: Docker;
  image?: string;
  baseImage?: string;
  /** Receives the build's output lines. */
  onLine?: (line: string) => void;
}

/** The compiled output this file belongs to (dist/ or any other outDir) and the repo above it. */
export function buildTree(): { repoRoot: string; outDir: string } {
  const outDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  let dir = outDir;
  while (!existsSync(path.join(dir, 'Dockerfile'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no Dockerfile above ${outDir}`);
    dir = parent;
  }
  return { repoRoot: dir, outDir };
}

/** Top-level paths of the production dependencies, relative to the repo; all of node_modules if npm is absent. */
export async function productionModules(repoRoot: string): Promise<string[]> {
  let stdout = '';
  try {
    ({ stdout } = await promisify(execFile)('npm', ['ls', '--omit=dev', '--parseable', '--all'], {
      cwd: repoRoot,
      maxBuffer: 16 * 1024 * 1024,
    }));
  } catch (err) {
    stdout = (err as { stdout?: string }).stdout ?? '';
  }
  const rels = stdout
    .split('\n')
    .map((p) => path.relative(repoRoot, p.trim()))
    .filter((p) => p.startsWith(`node_modules${path.sep}`))
    .sort();
  if (rels.length === 0) return ['node_modules'];
  const kept: string[] = [];
  for (const p of rels) {
    if (!kept.some((k) => p.startsWith(`${k}${path.sep}`))) kept.push(p);
  }
  return kept;
}

export async function buildNodeImage(opts: BuildImageOptions = {}): Promise<string> {
  const docker = opts.docker ?? dockerClient(process.env.S3DFS_DOCKER_HOST);
  const image = opts.image ?? 's3dfs-storage-node';
  const { repoRoot, outDir } = buildTree();
  const distRel = path.relative(repoRoot, outDir);
  const modules = await productionModules(repoRoot);
  const tar = spawn(
    'tar',
    ['-c', '-C', repoRoot, '-f', '-', 'Dockerfile', 'package.json', distRel, ...modules],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let tarErr = '';
  tar.stderr.on('data', (b: Buffer) => {
    tarErr += b.toString();
  });
  const stream = await docker.buildImage(tar.stdout, {
    t: image,
    target: 'prebuilt',
    buildargs: { BASE_IMAGE: opts.baseImage ?? BASE_IMAGE_DEFAULT, DIST_DIR: distRel },
    labels: { 's3dfs.role': 'storage-node-image' },
  });
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, output: { error?: string; errorDetail?: { message: string } }[]) => {
        const failed = err?.message ?? output?.find((o) => o.error)?.error;
        if (failed)
          reject(new Error(`docker build of ${image} failed: ${failed}${tarErr ? `\n${tarErr}` : ''}`));
        else resolve();
      },
      (event: { stream?: string }) => {
        if (event.stream && opts.onLine) opts.onLine(event.stream.trimEnd());
      },
    );
  });
  return image;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildNodeImage({
    image: process.env.S3DFS_DOCKER_IMAGE,
    baseImage: process.env.S3DFS_DOCKER_BASE_IMAGE,
    onLine: (l) => console.log(l),
  }).then(
    (image) => console.log(`built ${image}`),
    (err) => {
      console.error(String(err));
      process.exit(1);
    },
  );
}
