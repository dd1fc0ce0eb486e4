// Proves bucket CORS from a real browser (Debian's Chromium via playwright-core): a page on another origin PUTs through a presigned URL with a custom header (a preflight first), reads an exposed header and a 404's status, and is blocked once no rule names its origin.
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutBucketCorsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireChromium } from '../helpers/browser.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { keyPath, presign, queryString, steadyEnv } from '../helpers/s3raw.js';

const Bucket = 'browser-cors';

describe('bucket CORS (real browser, page on another origin)', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let s3: S3Client;
  let site: Server;
  let origin: string;
  let browser: Browser;
  let page: Page;

  before(async function () {
    requireChromium(this);
    c = await startTestCluster({ portBase: 32900, env: steadyEnv });
    s3 = c.client();
    await s3.send(new CreateBucketCommand({ Bucket }));
    // The page's origin: another port, so another origin than the S3 endpoint.
    site = http.createServer((_req, res) => res.end('<!doctype html><title>app</title>'));
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${origin}/`);
  });

  after(async () => {
    await browser?.close();
    site?.close();
    s3?.destroy();
    await c?.stop();
  });

  const url = async (method: string, key: string) => {
    const req = await presign(c, { method, path: keyPath(Bucket, key) }, 300);
    return `${c.endpoint}${req.path}?${queryString(req.query)}`;
  };

  /** fetch() in the page: its status and chosen headers, or the error a blocked request gives. */
  const fetchInPage = (
    target: string,
    init: { method: string; body?: string; headers?: Record<string, string> },
  ) =>
    page.evaluate(
      async ({ target, init }) => {
        try {
          const res = await fetch(target, init);
          return { status: res.status, etag: res.headers.get('etag'), body: await res.text() };
        } catch (err) {
          return { error: String(err) };
        }
      },
      { target, init },
    );

  it('PUTs with a preflight, reads an exposed ETag and an error status', async () => {
    await s3.send(
      new PutBucketCorsCommand({
        Bucket,
        CORSConfiguration: {
          CORSRules: [
            {
              AllowedOrigins: [origin],
              AllowedMethods: ['GET', 'PUT'],
              AllowedHeaders: ['*'],
              ExposeHeaders: ['ETag'],
              MaxAgeSeconds: 0,
            },
          ],
        },
      }),
    );
    const put = await fetchInPage(await url('PUT', 'from-browser.txt'), {
      method: 'PUT',
      body: 'uploaded by a page',
      // Not a CORS-safelisted header: the browser preflights the PUT.
      headers: { 'x-amz-meta-from': 'browser' },
    });
    expect(put, JSON.stringify(put)).to.include({ status: 200 });
    expect(put.etag).to.match(/^"[0-9a-f]{32}"$/);
    const stored = await s3.send(new GetObjectCommand({ Bucket, Key: 'from-browser.txt' }));
    expect(await stored.Body!.transformToString()).to.equal('uploaded by a page');
    expect(stored.Metadata).to.deep.equal({ from: 'browser' });

    const missing = await fetchInPage(await url('GET', 'missing.txt'), { method: 'GET' });
    expect(missing, JSON.stringify(missing)).to.include({ status: 404 });
    expect(missing.body).to.include('<Code>NoSuchKey</Code>');
  });

  it('is blocked by the browser when no rule names its origin', async () => {
    await s3.send(
      new PutBucketCorsCommand({
        Bucket,
        CORSConfiguration: {
          CORSRules: [{ AllowedOrigins: ['https://other.example'], AllowedMethods: ['GET'] }],
        },
      }),
    );
    const blocked = await fetchInPage(await url('GET', 'from-browser.txt'), { method: 'GET' });
    expect(blocked.error, JSON.stringify(blocked)).to.match(/TypeError/);
  });
});
