// Browser test of the annotation UI, driven by pkg/curator's TestAnnotationUIInBrowser:
// an annotator claims a batch, corrects classes (classification) or boxes (detection)
// with keys and the mouse, submits; a reviewer approves. Screenshots of each view go to
// OUT. Input (env): BASE (curator URL), ANNOTATOR and REVIEWER (tokens), PROJECT, TASK,
// TRUTH (JSON: example id -> [{class, box}]), OUT, CHROMIUM. Prints a JSON summary.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const BASE = env('BASE'), PROJECT = env('PROJECT'), TASK = env('TASK'), OUT = env('OUT');
const truth = JSON.parse(env('TRUTH'));
fs.mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${TASK}-${name}.png`), fullPage: true });
const errors = [];

async function as(token) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`); });
  pages.push(page);
  await page.goto(`${BASE}/#token=${token}`);
  await page.waitForSelector('#whoami:not(:empty)');
  await page.selectOption('#project', PROJECT);
  return page;
}

const result = { task: TASK, annotated: 0 };
const pages = [];
try {
  // Annotator: queue -> claim -> correct every example -> submit.
  const annie = await as(env('ANNOTATOR'));
  await annie.waitForSelector('button[data-claim]');
  await shot(annie, '1-queue');
  const batchId = await annie.getAttribute('button[data-claim]', 'data-claim');
  result.batch = batchId;
  await annie.click(`button[data-claim="${batchId}"]`);
  await annie.waitForSelector('#canvas');
  for (let n = 0; n < 100; n++) {
    await annie.waitForSelector('#canvas');
    const status = await annie.textContent('.side .muted');
    const hash = await annie.evaluate(() => location.hash);
    const idx = Number(hash.split('/')[4] || 0);
    const batch = await annie.evaluate(async ([p, b]) => {
      const r = await fetch(`/api/v1/projects/${p}/batches/${b}`, { headers: { Authorization: 'Bearer ' + localStorage.getItem('edgeloop.token') } });
      return r.json();
    }, [PROJECT, batchId]);
    if (batch.items.every((it) => it.status)) break;
    const item = batch.items[idx];
    const want = truth[item.example_id];
    if (TASK === 'classify') {
      await annie.keyboard.press(want[0].class); // the class's key
      if (n === 0) await shot(annie, '2-annotate');
    } else {
      // Delete every pre-annotated box (Tab selects, Delete removes), then draw the truth.
      const count = await annie.locator('.boxes li').count();
      for (let i = 0; i < count; i++) { await annie.keyboard.press('Tab'); await annie.keyboard.press('Delete'); }
      const c = await annie.locator('#canvas').boundingBox();
      for (const l of want) {
        await annie.keyboard.press('Escape'); // nothing selected: the key sets the next box's class
        await annie.keyboard.press(l.class);
        await annie.mouse.move(c.x + l.box.x0 * c.width, c.y + l.box.y0 * c.height);
        await annie.mouse.down();
        await annie.mouse.move(c.x + ((l.box.x0 + l.box.x1) / 2) * c.width, c.y + ((l.box.y0 + l.box.y1) / 2) * c.height, { steps: 3 });
        await annie.mouse.move(c.x + l.box.x1 * c.width, c.y + l.box.y1 * c.height, { steps: 3 });
        await annie.mouse.up();
      }
      if (n === 0) {
        await annie.keyboard.press('+'); // zoom in for the screenshot, then back
        await shot(annie, '2-annotate');
        await annie.keyboard.press('-');
      }
    }
    await annie.keyboard.press('Enter');
    result.annotated++;
    await annie.waitForFunction((s) => document.querySelector('.side .muted')?.textContent !== s, status, { timeout: 10000 }).catch(() => {});
  }
  await annie.waitForSelector('#submit:not([disabled])');
  await shot(annie, '3-before-submit');
  await annie.click('#submit');
  await annie.waitForSelector('table, p.muted');

  // Reviewer: review page -> approve.
  const rex = await as(env('REVIEWER'));
  await rex.goto(`${BASE}/#/review`);
  await rex.waitForSelector(`a[data-review="${batchId}"]`);
  await rex.click(`a[data-review="${batchId}"]`);
  await rex.waitForSelector('.card canvas');
  await shot(rex, '4-review');
  await rex.click('#approve');
  await rex.waitForFunction(() => location.hash === '#/review');
  await rex.goto(`${BASE}/#/dataset`);
  await rex.waitForSelector('.big');
  await shot(rex, '5-dataset');
} catch (e) {
  // Say what the pages logged and keep a screenshot of each, then fail.
  console.error(`FAILED: ${e && e.stack || e}`);
  for (const [i, p] of pages.entries()) {
    await p.screenshot({ path: path.join(OUT, `${TASK}-failure-${i}.png`), fullPage: true }).catch(() => {});
  }
  console.error(`page errors: ${JSON.stringify(errors)}`);
  await browser.close();
  process.exit(1);
}
result.errors = errors;
await browser.close();
console.log(JSON.stringify(result));
