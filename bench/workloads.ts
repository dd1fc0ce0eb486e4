// The workloads, each bounded in count and time, each verifying every byte it reads.
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Cluster } from './cluster.js';
import { sleep } from './cluster.js';
import { bytes, stream, verifyBody } from './data.js';
import { pool, Recorder, rng } from './stats.js';

export interface Sizes {
  largeBytes: number;
  largePartBytes: number;
  largeQueue: number;
  mediumBytes: number;
  mediumCount: number;
  smallBytes: number;
  smallCount: number;
  smallConcurrency: number;
  /** Keys preloaded (untimed) for the listing, whatever the 4 KiB PUTs managed. */
  listKeys: number;
  listPageKeys: number;
  listPassesMax: number;
  rangeBytes: number;
  rangeCount: number;
  /** Small ranges: what a read costs when the bytes moved are next to nothing. */
  smallRangeBytes: number;
  smallRangeCount: number;
  rangeConcurrency: number;
  /** Whole GetObjects of the mediumBytes objects, one at a time, timed to their first body byte. */
  firstByteCount: number;
  mixedObjectBytes: number;
  mixedConcurrency: number;
  mixedSeconds: number;
  /** upload16: this many clients upload one object each, all at once. */
  uploadClients: number;
  uploadBytes: number;
  /** Ranged reads per uploaded object when checking it afterwards. */
  uploadSlices: number;
  /** Every workload stops at this, finished or not. */
  workloadTimeLimitMs: number;
  /** The same for upload16, which moves far more bytes than any other workload. */
  uploadTimeLimitMs: number;
}

export interface Ctx {
  s3: S3Client;
  bucket: string;
  sizes: Sizes;
  cluster: Cluster;
  log: (msg: string) => void;
}

/** Seeds: one per object, so each object's bytes differ and a misplaced read fails. */
const seed = {
  large: 1,
  medium: (i: number) => 100 + i,
  small: (i: number) => 10_000 + i,
  mixed: (i: number) => 1_000_000 + i,
  upload: (i: number) => 2_000_000 + i,
};

const smallKey = (i: number) => `small/${String(i).padStart(6, '0')}`;
export const listKey = (i: number) => `list/${String(i).padStart(6, '0')}`;
const uploadKey = (i: number) => `upload/${i}`;

/** An S3 client at the SDK's default settings, as an application would make one. */
export function client(cluster: Cluster): S3Client {
  return new S3Client({
    endpoint: cluster.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey },
  });
}

export async function largePut(ctx: Ctx): Promise<{ rec: Recorder; landed: boolean }> {
  const { largeBytes, largePartBytes, largeQueue } = ctx.sizes;
  const rec = new Recorder('large PUT (multipart)');
  const landed = await rec.time(async () => {
    const up = new Upload({
      client: ctx.s3,
      params: { Bucket: ctx.bucket, Key: 'large', Body: stream(seed.large, largeBytes) },
      partSize: largePartBytes,
      queueSize: largeQueue,
    });
    await withTimeout(up.done(), ctx.sizes.workloadTimeLimitMs, () => void up.abort());
    return largeBytes;
  });
  if (!landed) rec.notes.push('multipart upload failed; GET and ranged GET use the 64 MiB object');
  return { rec, landed };
}

export async function largeGet(ctx: Ctx): Promise<Recorder> {
  const rec = new Recorder('large GET');
  await rec.time(() => getVerified(ctx, 'large', seed.large, ctx.sizes.largeBytes));
  return rec;
}

export async function mediumPut(ctx: Ctx): Promise<Recorder> {
  const { mediumBytes, mediumCount, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${mib(mediumBytes)} PutObject`);
  await pool(mediumCount, 1, workloadTimeLimitMs, (i) =>
    rec.time(async () => {
      await ctx.s3.send(
        new PutObjectCommand({
          Bucket: ctx.bucket,
          Key: `medium/${i}`,
          Body: stream(seed.medium(i), mediumBytes),
          ContentLength: mediumBytes,
        }),
      );
      return mediumBytes;
    }),
  );
  return rec;
}

export async function mediumGet(ctx: Ctx, written: number): Promise<Recorder> {
  const { mediumBytes, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${mib(mediumBytes)} GetObject`);
  await pool(written, 1, workloadTimeLimitMs, (i) =>
    rec.time(() => getVerified(ctx, `medium/${i}`, seed.medium(i), mediumBytes)),
  );
  return rec;
}

export async function smallPut(ctx: Ctx): Promise<{ rec: Recorder; written: number }> {
  const { smallBytes, smallCount, smallConcurrency, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${kib(smallBytes)} PUT`);
  const written = await pool(smallCount, smallConcurrency, workloadTimeLimitMs, (i) =>
    rec.time(async () => {
      const body = bytes(seed.small(i), 0, smallBytes);
      await ctx.s3.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: smallKey(i), Body: body }));
      return smallBytes;
    }),
  );
  return { rec, written };
}

export async function smallGet(ctx: Ctx, written: number): Promise<Recorder> {
  const { smallBytes, smallConcurrency, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${kib(smallBytes)} GET`);
  await pool(written, smallConcurrency, workloadTimeLimitMs, (i) =>
    rec.time(() => getVerified(ctx, smallKey(i), seed.small(i), smallBytes)),
  );
  return rec;
}

export async function smallHead(ctx: Ctx, written: number): Promise<Recorder> {
  const { smallBytes, smallConcurrency, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${kib(smallBytes)} HEAD`);
  await pool(written, smallConcurrency, workloadTimeLimitMs, (i) =>
    rec.time(async () => {
      const res = await ctx.s3.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: smallKey(i) }));
      if (res.ContentLength !== smallBytes) throw new Error(`HEAD ${smallKey(i)}: size ${res.ContentLength}`);
      return 0;
    }),
  );
  return rec;
}

export async function smallDelete(ctx: Ctx, written: number): Promise<Recorder> {
  const { smallBytes, smallConcurrency, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${kib(smallBytes)} DELETE`);
  await pool(written, smallConcurrency, workloadTimeLimitMs, (i) =>
    rec.time(async () => {
      await ctx.s3.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: smallKey(i) }));
      return 0;
    }),
  );
  return rec;
}

/** Untimed: fills the list/ prefix with listKeys empty objects for the listing to page over. */
export async function preloadListing(ctx: Ctx): Promise<{ keys: string[]; failed: number }> {
  const { listKeys, smallConcurrency } = ctx.sizes;
  ctx.log(`preloading ${listKeys} keys for the listing (untimed)`);
  const landed: boolean[] = [];
  await pool(listKeys, smallConcurrency, Number.POSITIVE_INFINITY, async (i) => {
    try {
      await ctx.s3.send(
        new PutObjectCommand({ Bucket: ctx.bucket, Key: listKey(i), Body: '', ContentLength: 0 }),
      );
      landed[i] = true;
    } catch {
      // Counted below; the listing then expects only the keys that landed.
    }
  });
  const keys = Array.from({ length: listKeys }, (_, i) => i)
    .filter((i) => landed[i])
    .map(listKey);
  return { keys, failed: listKeys - keys.length };
}

/** Full listings of the list/ prefix, page by page; checks every key is there in order. */
export async function listing(ctx: Ctx, preload: { keys: string[]; failed: number }): Promise<Recorder> {
  const { listPageKeys, listPassesMax, workloadTimeLimitMs } = ctx.sizes;
  const { keys, failed } = preload;
  const rec = new Recorder(`ListObjectsV2 (${listPageKeys}/page)`);
  rec.notes.push(`${keys.length} keys`);
  if (failed > 0) {
    rec.notes.push(`${failed} preload PUTs failed (counted as errors)`);
    rec.errors += failed;
  }
  const deadline = Date.now() + workloadTimeLimitMs;
  for (let pass = 0; pass < listPassesMax && Date.now() < deadline; pass++) {
    let token: string | undefined;
    let seen = 0;
    do {
      const ok = await rec.time(async () => {
        const res = await ctx.s3.send(
          new ListObjectsV2Command({
            Bucket: ctx.bucket,
            Prefix: 'list/',
            MaxKeys: listPageKeys,
            ContinuationToken: token,
          }),
        );
        for (const o of res.Contents ?? []) {
          if (o.Key !== keys[seen]) throw new Error(`listing: expected ${keys[seen]}, got ${o.Key}`);
          seen++;
        }
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
        return 0;
      });
      if (!ok) break;
    } while (token && Date.now() < deadline);
    if (!token && seen !== keys.length) rec.fail(new Error(`listing: saw ${seen} of ${keys.length} keys`));
  }
  return rec;
}

export async function rangedGets(
  ctx: Ctx,
  src: { key: string; seed: number; size: number },
  rangeBytes: number,
  count: number,
): Promise<Recorder> {
  const { rangeConcurrency, workloadTimeLimitMs } = ctx.sizes;
  const { key, seed: objSeed, size } = src;
  const rec = new Recorder(`${kib(rangeBytes)} ranged GET`);
  rec.notes.push(`random offsets in ${mib(size)} '${key}', ${rangeConcurrency} clients`);
  const next = rng(42);
  await pool(count, rangeConcurrency, workloadTimeLimitMs, () => {
    const offset = Math.floor(next() * (size - rangeBytes));
    return rec.time(() => getRangeVerified(ctx, key, objSeed, offset, rangeBytes));
  });
  return rec;
}

/**
 * Time to first byte of whole GetObjects: one at a time, so no other transfer shares the wait, over
 * the `written` mediumBytes objects in turn. Each body is still read to its end and checked.
 */
export async function firstByteGets(ctx: Ctx, written: number): Promise<Recorder> {
  const { mediumBytes, firstByteCount, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${mib(mediumBytes)} GET first byte`);
  rec.notes.push('p50/p99: from the SDK sending the GET to its first body byte; MB/s: the whole GETs');
  await pool(firstByteCount, 1, workloadTimeLimitMs, (i) => {
    const n = i % written;
    return rec.time((mark) => getVerified(ctx, `medium/${n}`, seed.medium(n), mediumBytes, mark));
  });
  return rec;
}

/**
 * upload16: uploadClients uploads at once, each by its own default S3Client, each one streamed
 * PutObject of a generated body with ContentLength set. At default settings the SDK sends such a
 * stream aws-chunked with a CRC32 trailer, without buffering it, so the client holds ~1 MiB per
 * upload and the server's RSS is what this measures.
 */
export async function uploads(ctx: Ctx): Promise<{ rec: Recorder; landed: number[] }> {
  const { uploadClients, uploadBytes, uploadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(`${uploadClients} clients × ${mib(uploadBytes)} PUT`);
  const landed: number[] = [];
  await Promise.all(
    Array.from({ length: uploadClients }, async (_, i) => {
      const s3 = client(ctx.cluster);
      try {
        const ok = await rec.time(async () => {
          const put = new PutObjectCommand({
            Bucket: ctx.bucket,
            Key: uploadKey(i),
            Body: stream(seed.upload(i), uploadBytes),
            ContentLength: uploadBytes,
          });
          await s3.send(put, { abortSignal: AbortSignal.timeout(uploadTimeLimitMs) });
          return uploadBytes;
        });
        if (ok) landed.push(i);
      } finally {
        s3.destroy();
      }
    }),
  );
  return { rec, landed };
}

/**
 * Checks what upload16 left: HEAD sizes and a few verified ranged reads per object, then deletes
 * every upload key (landed or not) so the next workload or run has its disk back.
 */
export async function checkUploads(ctx: Ctx, landed: number[]): Promise<Recorder> {
  const { uploadClients, uploadBytes, uploadSlices, rangeBytes, workloadTimeLimitMs } = ctx.sizes;
  const rec = new Recorder(
    `${uploadClients} clients × ${mib(uploadBytes)} check (HEAD, ranged read, DELETE)`,
  );
  const next = rng(99);
  await pool(landed.length, 4, workloadTimeLimitMs, async (j) => {
    const i = landed[j];
    await rec.time(async () => {
      const res = await ctx.s3.send(new HeadObjectCommand({ Bucket: ctx.bucket, Key: uploadKey(i) }));
      if (res.ContentLength !== uploadBytes)
        throw new Error(`HEAD ${uploadKey(i)}: size ${res.ContentLength}`);
      return 0;
    });
    for (let k = 0; k < uploadSlices; k++) {
      const offset = Math.floor(next() * (uploadBytes - rangeBytes));
      await rec.time(() => getRangeVerified(ctx, uploadKey(i), seed.upload(i), offset, rangeBytes));
    }
  });
  await pool(uploadClients, 4, Number.POSITIVE_INFINITY, (i) =>
    rec.time(async () => {
      await ctx.s3.send(new DeleteObjectCommand({ Bucket: ctx.bucket, Key: uploadKey(i) }));
      return 0;
    }),
  );
  if (landed.length < uploadClients) rec.notes.push(`${uploadClients - landed.length} uploads did not land`);
  return rec;
}

export const largeKey = { key: 'large', seed: seed.large };
export const mediumKey = { key: 'medium/0', seed: seed.medium(0) };

/**
 * What a GET of key returns, for the null server (null-s3.ts): its seed and size, and whether the
 * real server answers it with a whole-object checksum the SDK then validates (objects stored by
 * PutObject; a multipart object's checksum is composite, which the SDK does not check).
 */
export function objectOf(
  key: string,
  sizes: Sizes,
): { seed: number; size: number; wholeChecksum: boolean } | undefined {
  if (key === largeKey.key) return { seed: seed.large, size: sizes.largeBytes, wholeChecksum: false };
  const m = /^(medium|small)\/(\d+)$/.exec(key);
  if (!m) return undefined;
  const i = Number(m[2]);
  return m[1] === 'medium'
    ? { seed: seed.medium(i), size: sizes.mediumBytes, wholeChecksum: true }
    : { seed: seed.small(i), size: sizes.smallBytes, wholeChecksum: true };
}

/**
 * Reads and writes at once while one storage node is killed with SIGKILL a third of the way in.
 * Every error the client sees (after the SDK's own retries) counts.
 */
export async function mixedWithFailure(ctx: Ctx): Promise<Recorder> {
  const { mixedObjectBytes, mixedConcurrency, mixedSeconds } = ctx.sizes;
  const rec = new Recorder(`mixed ${kib(mixedObjectBytes)} r/w, node killed`);
  const written: number[] = [];
  let nextId = 0;
  const put = async () => {
    const id = nextId++;
    const ok = await rec.time(async () => {
      const body = bytes(seed.mixed(id), 0, mixedObjectBytes);
      await ctx.s3.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: `mixed/${id}`, Body: body }));
      return mixedObjectBytes;
    });
    if (ok) written.push(id);
  };
  for (let i = 0; i < mixedConcurrency * 2; i++) await put();
  const preload = rec.result();
  const r = new Recorder(rec.name);
  r.notes.push(`preload: ${preload.ops} writes, ${preload.errors} errors`);

  const next = rng(7);
  const endAt = Date.now() + mixedSeconds * 1000;
  const killAt = Date.now() + (mixedSeconds * 1000) / 3;
  let errorsBeforeKill: number | undefined;
  const killer = (async () => {
    await sleep(killAt - Date.now());
    errorsBeforeKill = r.errors;
    const nodes = await ctx.cluster.nodePids().catch(() => []);
    const victim = nodes[0];
    if (!victim) {
      r.notes.push('no storage-node pid found: nothing killed (external endpoint?)');
      return;
    }
    process.kill(victim.pid, 'SIGKILL');
    ctx.log(`killed storage node ${victim.id} (pid ${victim.pid}, port ${victim.port})`);
    r.notes.push(`killed node ${victim.id} pid ${victim.pid} at ${Math.round(mixedSeconds / 3)} s`);
  })();
  const worker = async () => {
    while (Date.now() < endAt) {
      if (next() < 0.5 || written.length === 0) {
        const id = nextId++;
        const ok = await r.time(async () => {
          const body = bytes(seed.mixed(id), 0, mixedObjectBytes);
          await ctx.s3.send(new PutObjectCommand({ Bucket: ctx.bucket, Key: `mixed/${id}`, Body: body }));
          return mixedObjectBytes;
        });
        if (ok) written.push(id);
      } else {
        const id = written[Math.floor(next() * written.length)];
        await r.time(() => getVerified(ctx, `mixed/${id}`, seed.mixed(id), mixedObjectBytes));
      }
    }
  };
  await Promise.all([killer, ...Array.from({ length: mixedConcurrency }, worker)]);
  if (errorsBeforeKill !== undefined) {
    r.notes.push(`errors before kill: ${errorsBeforeKill}, after: ${r.errors - errorsBeforeKill}`);
  }
  return r;
}

async function getVerified(
  ctx: Ctx,
  key: string,
  objSeed: number,
  size: number,
  onBytes?: () => void,
): Promise<number> {
  const res = await ctx.s3.send(new GetObjectCommand({ Bucket: ctx.bucket, Key: key }));
  return verifyBody(res.Body as AsyncIterable<Uint8Array>, objSeed, 0, size, key, onBytes);
}

async function getRangeVerified(
  ctx: Ctx,
  key: string,
  objSeed: number,
  offset: number,
  length: number,
): Promise<number> {
  const res = await ctx.s3.send(
    new GetObjectCommand({ Bucket: ctx.bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}` }),
  );
  return verifyBody(res.Body as AsyncIterable<Uint8Array>, objSeed, offset, length, `${key} range ${offset}`);
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`timed out after ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export function mib(n: number): string {
  return n >= 1024 ** 3 ? `${n / 1024 ** 3} GiB` : `${n / 1024 ** 2} MiB`;
}

function kib(n: number): string {
  return n >= 1024 ** 2 ? mib(n) : `${n / 1024} KiB`;
}
