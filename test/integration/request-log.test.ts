// The gateway's request log line is written when the response is over: the status actually sent,
// the duration and the bytes in and out; a GET whose body fails mid-stream (every replica of a
// later block damaged) is logged as cut short, not as the 200 the handler returned with; a 501 for
// an unimplemented subresource is logged at info, naming it.
import { open, readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { bytes } from '../helpers/bytes.js';
import { waitFor } from '../helpers/cluster.js';
import { tempDir } from '../helpers/db.js';
import { keyPath, signedSend, signHeaders } from '../helpers/s3raw.js';
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js';

const chunk = 1024 * 1024;

interface LogLine {
  msg: string;
  op?: string;
  status?: number;
  bytesIn?: number;
  bytesOut?: number;
  cut?: boolean;
  level?: number;
  subresource?: string;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

/** GETs the object over a raw connection and reports how many body bytes came and how it ended. */
async function rawGet(
  s: ServerProcess,
  key: string,
): Promise<{ status: number; got: number; complete: boolean }> {
  const p = keyPath('logs', key);
  const headers = await signHeaders(s, { method: 'GET', path: p });
  const url = new URL(s.endpoint);
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: p, headers, agent: false },
      (res) => {
        let got = 0;
        res.on('data', (b: Buffer) => {
          got += b.length;
        });
        const done = () => resolve({ status: res.statusCode ?? 0, got, complete: res.complete });
        res.on('end', done);
        res.on('error', done);
        res.on('aborted', done);
      },
    );
    req.on('error', () => resolve({ status: 0, got: 0, complete: false }));
    req.end();
  });
}

describe('gateway request log', function () {
  this.timeout(120_000);
  let server: ServerProcess | undefined;
  const dataDir = tempDir('s3dfs-reqlog-');
  after(async () => server?.stop());

  function lines(): LogLine[] {
    return server!
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  }

  it('logs what was sent: bytes in and out, and a body cut mid-stream as cut', async () => {
    server = await startServerProcess({
      dataDir,
      portBase: 25000,
      adminToken: 'request-log-admin-token-0123456789',
      chunkSize: '1MiB',
      env: { LOG_LEVEL: 'info', S3DFS_HEAL_INTERVAL_MS: '0', S3DFS_LOCAL_READS: 'off' },
    });
    const s3 = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    });
    const size = 2 * chunk;
    await s3.send(new CreateBucketCommand({ Bucket: 'logs' }));
    await s3.send(new PutObjectCommand({ Bucket: 'logs', Key: 'whole', Body: bytes(size, 1) }));
    s3.destroy();
    const whole = await rawGet(server, 'whole');
    expect(whole).to.deep.include({ status: 200, got: size, complete: true });
    await waitFor(async () => lines().some((l) => l.op === 'GetObject'), 10_000);
    const put = lines().find((l) => l.op === 'PutObject')!;
    expect(put.status).to.equal(200);
    expect(put.bytesIn).to.be.at.least(size);
    const get = lines().find((l) => l.op === 'GetObject')!;
    expect(get).to.include({ msg: 'request', status: 200 });
    expect(get.cut).to.equal(undefined);
    expect(get.bytesOut).to.be.at.least(size);

    // Every replica of every chunk damaged at 512 KiB, past the first piece a node checks before it
    // answers: headers and the first half chunk go out, then no replica can serve the rest.
    for (const file of await filesUnder(path.join(dataDir, 'nodes'))) {
      if (!file.includes(`${path.sep}chunks${path.sep}`) || path.basename(file) === 'VOLUME') continue;
      const fh = await open(file, 'r+');
      await fh.write(Buffer.from('damage'), 0, 6, chunk / 2 + 100);
      await fh.close();
    }
    const cut = await rawGet(server, 'whole');
    expect(cut.status).to.equal(200);
    expect(cut.complete).to.equal(false);
    expect(cut.got).to.be.below(size);
    await waitFor(async () => lines().some((l) => l.cut), 10_000);
    const logged = lines().find((l) => l.cut)!;
    expect(logged).to.include({ msg: 'request cut short', op: 'GetObject', status: 200, cut: true });
    expect(logged.bytesOut).to.be.below(size);

    // A client that resets mid-PUT, while the handler is still storing: logged, as 499.
    const p = keyPath('logs', 'reset');
    const headers = await signHeaders(
      server,
      { method: 'PUT', path: p, headers: { 'content-length': String(size) } },
      { payload: 'UNSIGNED-PAYLOAD' },
    );
    const url = new URL(server.endpoint);
    const req = http.request({
      method: 'PUT',
      host: url.hostname,
      port: url.port,
      path: p,
      headers,
      agent: false,
    });
    req.on('error', () => {});
    req.write(bytes(chunk + 1000, 3));
    await new Promise((r) => setTimeout(r, 300));
    req.socket!.resetAndDestroy(); // a TCP reset, not a half-close
    await waitFor(async () => lines().filter((l) => l.op === 'PutObject').length === 2, 10_000);
    const gone = lines().filter((l) => l.op === 'PutObject')[1];
    expect(gone.status).to.equal(499);
    expect(gone.bytesIn).to.be.below(size);
  });

  it('logs a 501 for an unimplemented subresource at info, with the subresource', async () => {
    const res = await signedSend(server!, { method: 'GET', path: '/logs', query: { analytics: '' } });
    expect(res.status).to.equal(501);
    await waitFor(async () => lines().some((l) => l.status === 501), 10_000);
    const logged = lines().find((l) => l.status === 501)!;
    // pino's info is 30, error 50.
    expect(logged).to.include({ msg: 'request', op: 'NotImplemented', subresource: 'analytics', level: 30 });
  });
});
