// Proves the web console in a real browser (Debian's Chromium via playwright-core) against a real
// cluster: sign-in, live node state through a kill -9 and restart, add/drain/remove from the UI, and
// an object's chunks with their replicas. Screenshots of each page go to test-artifacts/console/.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import type { Browser, Page } from 'playwright-core';
import type { ProcessRuntime } from '../../manager/runtime/process.js';
import { launchChromium, requireChromium } from '../helpers/browser.js';
import { startTestCluster, type TestCluster, waitFor } from '../helpers/cluster.js';

const SHOTS = path.resolve('test-artifacts/console');
const TOKEN = 'console-test-admin-token-0123456789';
const HEALTH_INTERVAL_MS = 200;
const DOWN_AFTER_MS = 1000;
/** The console polls every 1.5 s; it must show a state change within one more poll. */
const UI_POLL_MS = 1500;
const CHUNK_BYTES = 64 * 1024;
const BUCKET = 'console-bucket';
const KEY = 'photos/2024/cat.bin';

describe('web console (real browser)', function () {
  this.timeout(180_000);
  let cluster: TestCluster;
  let browser: Browser;
  let page: Page;

  before(async function () {
    requireChromium(this);
    mkdirSync(SHOTS, { recursive: true });
    cluster = await startTestCluster({
      portBase: 25_100,
      nodes: 3,
      chunkSize: CHUNK_BYTES,
      env: {
        S3DFS_ADMIN_TOKEN: TOKEN,
        S3DFS_HEALTH_INTERVAL_MS: String(HEALTH_INTERVAL_MS),
        S3DFS_DOWN_AFTER_MS: String(DOWN_AFTER_MS),
        S3DFS_HEAL_INTERVAL_MS: '300',
        S3DFS_REPAIR_GRACE_MS: '500',
      },
    });
    const s3 = cluster.client();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const body = Buffer.alloc(3 * CHUNK_BYTES + 1000, 7);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: body }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'readme.txt', Body: 'hello' }));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const go = async (hash: string) => {
    await page.goto(`${cluster.manager.url}/${hash}`);
  };
  const row = (id: string) => page.locator(`tr[data-node-id="${id}"]`);
  const statusOf = (id: string) => row(id).locator('[data-status]').first().getAttribute('data-status');

  it('serves the page without a token, refuses a wrong token and accepts the right one', async () => {
    const res = await fetch(`${cluster.manager.url}/`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-security-policy')).to.include("script-src 'self'");
    expect((await fetch(`${cluster.manager.url}/api/console/buckets`)).status).to.equal(401);
    // The icon every page load asks for is served without a token, not answered 401.
    const icon = await fetch(`${cluster.manager.url}/favicon.ico`);
    expect(icon.status).to.equal(200);
    expect(icon.headers.get('content-type')).to.equal('image/svg+xml');
    expect(await icon.text()).to.match(/^<svg /);

    await go('');
    await page.getByLabel('Admin token').fill('wrong-token-wrong-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('signin-error').waitFor();
    expect(await page.getByTestId('signin-error').textContent()).to.match(/refused/);
    await shot('signin');

    await page.getByLabel('Admin token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    expect(page.url()).to.not.include(TOKEN);
  });

  it('shows three nodes up on the overview, with capacity, chunk health and charts', async () => {
    await page.waitForFunction(
      () => document.querySelector('[data-testid="nodes-up"]')?.textContent === '3 / 3',
    );
    expect(await page.getByTestId('objects').textContent()).to.equal('2');
    // cat.bin's 4 chunks; readme.txt is small enough to be kept inline in its metadata row.
    expect(await page.getByTestId('chunk-health').textContent()).to.match(/4 full/);
    expect(await page.locator('.chart canvas').count()).to.be.greaterThan(2);
    await page.waitForTimeout(3 * UI_POLL_MS); // a few points on the charts
    await shot('overview');
  });

  it('shows a kill -9 as down within the monitor deadline, then up again after the restart', async () => {
    await go('#/nodes');
    const id = cluster.manager.ring().nodes[0].id;
    await row(id).waitFor();
    const pid = (cluster.manager.runtime as ProcessRuntime).pid(id)!;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    // The runtime restarts the process after ~100 ms, so 'down' may last less than one poll: the row's
    // recent changes keep it visible (and the status column shows it when a poll lands on it).
    await row(id)
      .locator('.recent [data-to="down"][title*="SIGKILL"]')
      .waitFor({ timeout: DOWN_AFTER_MS + 2 * UI_POLL_MS + 1000 });
    const seenMs = Date.now() - killedAt;
    console.log(`      (console showed the kill as down after ${seenMs} ms)`);
    expect(seenMs).to.be.lessThan(DOWN_AFTER_MS + 2 * UI_POLL_MS + 1000);
    await shot('nodes-after-kill');
    // Up again after one restart. Both are read together: a poll that lands just after the kill can
    // already list the down event while the row still says up (and no restart yet).
    const restarts = () => row(id).locator('td').nth(7).textContent();
    await waitFor(async () => (await statusOf(id)) === 'up' && (await restarts()) === '1', 20_000, 100);
    expect(await restarts()).to.equal('1');
  });

  it('adds a node from a confirmed dialog that returns focus on Escape, and shows it come up', async () => {
    const add = page.getByRole('button', { name: 'Add nodes…' });
    await add.click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    expect(await page.evaluate(() => !!document.activeElement?.closest('dialog'))).to.equal(true);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await page.evaluate(() => document.activeElement?.textContent)).to.equal('Add nodes…');

    await add.click();
    await dialog.getByRole('button', { name: 'Add' }).click();
    await dialog.waitFor({ state: 'detached' });
    await waitFor(async () => (await page.locator('tr[data-node-id]').count()) === 4, 20_000, 100);
    await waitFor(
      async () => (await page.locator('tr[data-node-id] [data-status="up"]').count()) === 4,
      20_000,
      100,
    );
  });

  it('drains a node from the UI until it is empty, then removes it', async () => {
    const id = cluster.manager.ring().nodes.find((n) => n.status === 'up')!.id;
    await row(id)
      .getByRole('button', { name: `Drain ${id}` })
      .click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Drain' }).click();
    await dialog.waitFor({ state: 'detached' });
    await waitFor(async () => (await statusOf(id)) === 'draining', 10_000, 100);
    await row(id).getByTestId('drain-done').waitFor({ timeout: 60_000 });
    await waitFor(async () => (await row(id).getByTestId('chunk-count').textContent()) === '0', 20_000, 100);
    await shot('nodes-drained');

    await row(id)
      .getByRole('button', { name: `Remove ${id}` })
      .click();
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await row(id).waitFor({ state: 'detached', timeout: 20_000 });
    expect(await page.locator('tr[data-node-id]').count()).to.equal(3);
  });

  it("draws the ring's shares and lists the events", async () => {
    await go('#/ring');
    await page.getByTestId('ring-shares').waitFor();
    expect(await page.locator('[data-testid="ring-shares"] li').count()).to.equal(3);
    await shot('ring');
    await go('#/events');
    await page.locator('[data-testid="events"] li[data-to="down"]').first().waitFor();
    await page.getByLabel('State').selectOption('draining');
    await waitFor(async () => (await page.locator('[data-testid="events"] li[data-to="up"]').count()) === 0);
    expect(await page.locator('[data-testid="events"] li[data-to="draining"]').count()).to.be.greaterThan(0);
    await page.getByLabel('State').selectOption('');
    await shot('events');
  });

  it("browses to an object and shows each chunk's replicas and the ring's choice", async () => {
    await go('#/browser');
    await page.getByRole('link', { name: BUCKET }).click();
    await page.getByRole('link', { name: /photos\// }).click();
    await page.getByRole('link', { name: /2024\// }).click();
    await shot('browser-prefix');
    await page.getByRole('link', { name: 'cat.bin' }).click();
    await page.getByTestId('chunks-table').waitFor();
    const chunkRows = page.locator('[data-testid="chunks-table"] tr[data-chunk-id]');
    expect(await chunkRows.count()).to.equal(4);
    // Every chunk ends up with 3 healthy replicas on the nodes left after the drain.
    await waitFor(
      async () => (await page.locator('[data-testid="chunks-table"] li[data-health="ok"]').count()) === 4 * 3,
      20_000,
      200,
    );
    const ids = new Set(cluster.manager.ops.nodeKpis().map((n) => n.id));
    for (const r of await page.locator('[data-testid="chunks-table"] li[data-replica]').all()) {
      expect(ids.has((await r.getAttribute('data-replica'))!)).to.equal(true);
    }
    await shot('object');
    await go('#/browser');
    await page.getByRole('link', { name: BUCKET }).click();
    await page.getByRole('link', { name: 'readme.txt' }).click();
    expect(await page.getByTestId('stored-inline').textContent()).to.match(/inline/);
  });

  it('fits a phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await go('#/overview');
    await page.getByTestId('nodes-up').waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).to.be.at.most(
      1,
    );
    await shot('overview-phone');
    await go('#/nodes');
    await page.getByTestId('nodes-table').waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).to.be.at.most(
      1,
    );
    await shot('nodes-phone');
  });
});
