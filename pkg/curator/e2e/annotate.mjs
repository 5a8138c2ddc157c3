// Browser test of the annotation UI, driven by pkg/curator's TestAnnotationUIInBrowser
// and by bench/annotate, at 1280x720 in Chromium. Keyboard only for classification: an
// annotator claims the ready batch with N and types every class at once (no waiting for
// the page), goes back and forth over a changed item, skips one, submits with
// Ctrl+Enter; a reviewer, whose list updates by itself, opens it with N, accepts items
// with A, rejects one with R and a comment, approves with Ctrl+Enter. Detection: the
// same keys, plus boxes deleted, created, moved and resized with keys, and one drawn
// with the mouse. With PLAN (detection on one large colour scene of many boxes): zoom
// in with the wheel at a point (which must stay under the cursor), pan with Alt+arrows
// and back, draw the missing box with the mouse on the zoomed picture, cycle the boxes
// with Tab / Shift+Tab (the selected one scrolled into view) to fix one's class with its
// digit key and delete a spurious one. With PICK (detection, a project of more classes
// than digit keys): set classes beyond the tenth with the class picker (/), its filter
// typed at once after N, command keys among it. Screenshots of each view go to OUT.
//
// Input (env): BASE (curator URL), ANNOTATOR and REVIEWER (tokens), PROJECT, TASK,
// TRUTH (JSON: example id -> [{class, box}]), OUT, CHROMIUM, PACE_MS (optional), PLAN
// (optional, JSON: {draw: {class, box}, fix: {index, class, box}, delete}), PICK
// (optional, JSON: {first, escape, second: {type, down}}), SHOTS (the
// screenshots' name prefix, default TASK). Prints a JSON summary: the
// batch, the pictures (groups of example ids), the skipped and rejected examples, the
// key-to-next-item times in ms, the seconds from the first key to the submitted batch
// (and those of the pictures typed without pauses),
// mouse events seen on the keyboard-only pages, overflow of the item page, page errors.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const BASE = env('BASE'), PROJECT = env('PROJECT'), TASK = env('TASK'), OUT = env('OUT');
const truth = JSON.parse(env('TRUTH'));
const PACE = Number(process.env.PACE_MS || 0); // a pause after each picture, as a person takes
const W = 1280, H = 720;
fs.mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const SHOTS = process.env.SHOTS || TASK;
const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${SHOTS}-${name}.png`) });
const errors = [];
const pages = [];

async function as(token, hash = '#/') {
  const ctx = await browser.newContext({ viewport: { width: W, height: H } });
  // Count real pointer input: the keyboard-only flow must see none.
  await ctx.addInitScript(() => {
    window.__mouse = 0;
    for (const t of ['mousedown', 'mouseup', 'mousemove', 'pointerdown', 'wheel']) addEventListener(t, (e) => { if (e.isTrusted) window.__mouse++; }, true);
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`); });
  pages.push(page);
  await page.goto(`${BASE}/#token=${token}`);
  await page.waitForSelector('#whoami:not(:empty)');
  await page.evaluate((p) => localStorage.setItem('edgeloop.project', p), PROJECT);
  await page.goto(`${BASE}/${hash}`);
  await page.reload();
  await page.waitForSelector('#next');
  return page;
}

// fetchBatch reads a batch through the API with the page's token.
const fetchBatch = (page, id) => page.evaluate(async ([p, b]) => {
  const r = await fetch(`/api/v1/projects/${p}/batches/${b}`, { headers: { Authorization: 'Bearer ' + localStorage.getItem('edgeloop.token') } });
  return r.json();
}, [PROJECT, id]);
const listBatches = (page, q) => page.evaluate(async ([p, q]) => {
  const r = await fetch(`/api/v1/projects/${p}/batches?${q}`, { headers: { Authorization: 'Bearer ' + localStorage.getItem('edgeloop.token') } });
  return r.json();
}, [PROJECT, q]);

// groups are the pictures the UI shows, in its order: items sharing a device's frame
// are one.
function groupsOf(batch) {
  const out = [], at = new Map();
  for (const it of batch.items) {
    const ex = batch.examples[it.example_id];
    const key = ex.frame_id ? ex.device + '\u0000' + ex.frame_id : '\u0001' + it.example_id;
    if (!at.has(key)) { at.set(key, out.length); out.push([]); }
    out[at.get(key)].push(it.example_id);
  }
  return out;
}

// below reports the elements whose bottom is under the fold.
const below = (page, sels) => page.evaluate(([sels, h]) => sels.filter((s) => {
  const el = document.querySelector(s);
  return !el || el.getBoundingClientRect().bottom > h;
}), [sels, H]);

// picture reads what the item's canvas shows beside the image itself (the API's bytes,
// decoded by the browser at their natural size): both sizes, the RGB of both at a grid
// of points (normalised to the picture), and the canvas's pixels across each box's left
// edge, halfway down.
const picture = (page, id, labels) => page.evaluate(async ([p, id, labels]) => {
  const c = document.querySelector('#canvas');
  const r = await fetch(`/api/v1/projects/${encodeURIComponent(p)}/examples/${encodeURIComponent(id)}/image`,
    { headers: { Authorization: 'Bearer ' + localStorage.getItem('edgeloop.token') } });
  const bmp = await createImageBitmap(await r.blob());
  const off = new OffscreenCanvas(bmp.width, bmp.height).getContext('2d');
  off.drawImage(bmp, 0, 0);
  const shown = c.getContext('2d');
  const rgb = (g, x, y) => Array.from(g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data.slice(0, 3));
  const points = [];
  for (let i = 1; i < 40; i++) for (let j = 1; j < 40; j++) {
    const x = i / 40, y = j / 40;
    points.push({ x, y, image: rgb(off, x * bmp.width, y * bmp.height), shown: rgb(shown, x * c.width, y * c.height) });
  }
  const edges = labels.filter((l) => l.box).map((l) => {
    const x = l.box.x0 * c.width, y = ((l.box.y0 + l.box.y1) / 2) * c.height;
    return { box: l.box, pixels: [-2, -1, 0, 1, 2].map((d) => rgb(shown, x + d, y)) };
  });
  return { natural: [bmp.width, bmp.height], canvas: [c.width, c.height], points, edges };
}, [PROJECT, id, labels]);

// scene corrects one large picture of many boxes as PLAN says, and reports what it saw:
// the canvas before and after the zoom, the picture's point under the cursor after it
// (want: the one it zoomed at), the stage's scroll before, during and after the pan, the
// location after Alt+arrows (want: unchanged), the box lines selected by Tab and Shift+Tab,
// whether the fixed box was in view once selected.
async function scene(page, plan) {
  const kb = page.keyboard, out = {};
  await kb.press('n');
  await page.waitForSelector('#canvas[data-example]');
  await page.waitForFunction(() => document.querySelectorAll('.boxes li').length > 0);
  out.boxes_before = await page.locator('.boxes li').count();
  const canvas = page.locator('#canvas');
  const c0 = await canvas.boundingBox();
  const d = plan.draw.box, fx = (d.x0 + d.x1) / 2, fy = (d.y0 + d.y1) / 2;
  const mx = c0.x + fx * c0.width, my = c0.y + fy * c0.height;
  await page.mouse.move(mx, my);
  const z0 = Number(await canvas.getAttribute('data-zoom'));
  for (let i = 0; i < 3; i++) await page.mouse.wheel(0, -120);
  await page.waitForFunction((z) => Number(document.querySelector('#canvas').dataset.zoom) === z, z0 + 3);
  const c1 = await canvas.boundingBox();
  out.zoom = { before: [c0.width, c0.height], after: [c1.width, c1.height], anchor: [(mx - c1.x) / c1.width, (my - c1.y) / c1.height], want: [fx, fy] };
  await shot(page, '2-zoomed');
  // Pan where there is room for a whole step (a quarter of the view), and back.
  const scroll = () => page.evaluate(() => { const s = document.querySelector('.stage'); return [s.scrollLeft, s.scrollTop, s.scrollWidth - s.clientWidth, s.scrollHeight - s.clientHeight, s.clientWidth, s.clientHeight]; });
  const hash = await page.evaluate(() => location.hash);
  const s0 = await scroll();
  const room = { ArrowRight: s0[2] - s0[0] - s0[4] / 4, ArrowLeft: s0[0] - s0[4] / 4, ArrowDown: s0[3] - s0[1] - s0[5] / 4, ArrowUp: s0[1] - s0[5] / 4 };
  const dir = Object.keys(room).find((k) => room[k] >= 1) || 'ArrowDown';
  const [go, back] = ['Alt+' + dir, 'Alt+' + { ArrowRight: 'ArrowLeft', ArrowLeft: 'ArrowRight', ArrowDown: 'ArrowUp', ArrowUp: 'ArrowDown' }[dir]];
  await kb.press(go);
  const s1 = await scroll();
  await kb.press(back);
  const s2 = await scroll();
  out.pan = { before: s0.slice(0, 2), moved: s1.slice(0, 2), back: s2.slice(0, 2), room: s0.slice(2, 4), key: go, hash_kept: hash === (await page.evaluate(() => location.hash)) };
  // Draw the missing box on the zoomed picture.
  await kb.press('Escape');
  await kb.press(plan.draw.class);
  const c2 = await canvas.boundingBox();
  await page.mouse.move(c2.x + d.x0 * c2.width, c2.y + d.y0 * c2.height);
  await page.mouse.down();
  await page.mouse.move(c2.x + fx * c2.width, c2.y + fy * c2.height, { steps: 4 });
  await page.mouse.move(c2.x + d.x1 * c2.width, c2.y + d.y1 * c2.height, { steps: 4 });
  await page.mouse.up();
  const selectedLine = () => page.evaluate(() => document.querySelector('.boxes li.selected span')?.textContent || '');
  out.selected = [await selectedLine()];
  // Tab from the drawn (last) box wraps to the first, then on to the one to fix.
  for (let i = 0; i <= plan.fix.index; i++) await kb.press('Tab');
  out.selected.push(await selectedLine());
  const f = plan.fix.box, c3 = await canvas.boundingBox();
  out.fix_in_view = await page.evaluate(([f, c]) => {
    const s = document.querySelector('.stage').getBoundingClientRect();
    return c.x + f.x0 * c.width >= s.left - 1 && c.x + f.x1 * c.width <= s.right + 1 && c.y + f.y0 * c.height >= s.top - 1 && c.y + f.y1 * c.height <= s.bottom + 1;
  }, [f, c3]);
  await kb.press(plan.fix.class);
  // On past the spurious box and back to it with Shift+Tab, then delete it.
  for (let i = plan.fix.index; i <= plan.delete; i++) await kb.press('Tab');
  await kb.press('Shift+Tab');
  out.selected.push(await selectedLine());
  await kb.press('Delete');
  out.boxes_after = await page.locator('.boxes li').count();
  await shot(page, '3-fixed');
  result.below_fold = await below(page, ['#submit', '.keys', '#save-next']);
  await kb.press('Enter');
  return out;
}

// picker sets the classes of a picture's two boxes with the class picker, as PICK says,
// and reports what the page showed after each step (seen): N, / and the filter
// plan.first typed at once (while the batch opens: the keys wait for the page), Enter
// (the first box's class); Tab to the second box, / and plan.escape, Esc (nothing may
// change); / and plan.second.type, ↓ plan.second.down times, Enter.
async function picker(page, plan) {
  const kb = page.keyboard, out = {};
  const seen = () => page.evaluate(() => {
    const input = document.querySelector('#class-filter'), list = document.querySelector('#class-options');
    const id = input && input.getAttribute('aria-activedescendant'), opt = id && document.getElementById(id);
    return {
      open: !!input && !document.querySelector('#class-picker').hidden,
      focused: !!input && document.activeElement === input,
      aria: !!input && input.getAttribute('role') === 'combobox' && list.getAttribute('role') === 'listbox' && input.getAttribute('aria-controls') === list.id
        && (!opt || (opt.getAttribute('role') === 'option' && list.contains(opt) && opt.getAttribute('aria-selected') === 'true')),
      filter: input ? input.value : '',
      active: opt ? opt.dataset.class : '',
      options: list ? [...list.querySelectorAll('[role=option]')].map((o) => o.dataset.class) : [],
      selected: document.querySelector('.boxes li.selected span')?.textContent || '',
      boxes: document.querySelectorAll('.boxes li').length,
      done: document.querySelector('#done-count')?.textContent || '',
      example: document.querySelector('#canvas')?.dataset.example || '',
    };
  });
  await kb.press('n');
  await kb.press('/');
  await kb.type(plan.first);
  await page.waitForSelector('#canvas[data-example]');
  out.typed = await seen();
  await shot(page, '2-picker');
  await kb.press('Enter');
  out.picked = await seen();
  await kb.press('Tab');
  await kb.press('/');
  await kb.type(plan.escape);
  out.before_escape = await seen();
  await kb.press('Escape');
  out.escaped = await seen();
  await kb.press('/');
  await kb.type(plan.second.type);
  for (let i = 0; i < plan.second.down; i++) await kb.press('ArrowDown');
  out.moved = await seen();
  await kb.press('Enter');
  out.second = await seen();
  await shot(page, '3-picked');
  result.below_fold = await below(page, ['#submit', '.keys', '#save-next']);
  await kb.press('Enter');
  return out;
}

const result = { task: TASK, skipped: [], rejected: {}, key_ms: [], mouse: 0, below_fold: [] };
try {
  // Annotator: the queue, N claims the ready batch, and the keys typed at once wait for it.
  const annie = await as(env('ANNOTATOR'));
  const rex = await as(env('REVIEWER'), '#/review'); // its list must update by itself
  await annie.waitForSelector('button[data-claim]');
  await shot(annie, '1-queue');
  const ready = await listBatches(annie, 'state=ready');
  if (ready.length !== 1) throw new Error(`${ready.length} ready batches, want 1`);
  result.batch = ready[0].id;
  const batch = await fetchBatch(annie, result.batch);
  const groups = groupsOf(batch);
  result.groups = groups;
  const cls = (gi) => truth[groups[gi][0]][0].class;
  const kb = annie.keyboard;
  const t0 = Date.now();
  if (TASK === 'classify') {
    const wrong = (gi) => String((Number(cls(gi)) + 5) % 10);
    await kb.press('n');
    await kb.press(cls(0)); // typed while the batch opens
    await kb.press('Enter');
    // A changed item survives going away and back.
    await kb.press(wrong(1));
    await kb.press('ArrowRight');
    await kb.press('ArrowLeft');
    await annie.waitForFunction((c) => document.querySelector('.classes button.chosen')?.dataset.class === c, wrong(1), { timeout: 10000 })
      .catch(async () => { throw new Error(`after → ←, example 2 shows ${await annie.getAttribute('.classes button.chosen', 'data-class')}, want the draft ${wrong(1)}`); });
    await shot(annie, '2-annotate');
    result.below_fold = await below(annie, ['#submit', '.keys', '#save-next']);
    await kb.press(cls(1));
    await kb.press('Enter');
    await kb.press('s'); // an unusable picture
    result.skipped.push(...groups[2]);
    const tf = Date.now();
    for (let gi = 3; gi < groups.length; gi++) { // as fast as the keys go, or at PACE_MS
      await kb.press(cls(gi));
      await kb.press('Enter');
      if (PACE) await annie.waitForTimeout(PACE);
    }
    result.typed = { pictures: groups.length - 3, seconds: (Date.now() - tf) / 1000 };
  } else if (process.env.PICK) {
    result.picker = await picker(annie, JSON.parse(process.env.PICK));
  } else if (process.env.PLAN) {
    result.scene = await scene(annie, JSON.parse(process.env.PLAN));
  } else {
    await kb.press('n');
    await annie.waitForSelector('#canvas[data-example]');
    for (let gi = 0; gi < groups.length; gi++) {
      await annie.waitForFunction((ids) => ids.includes(document.querySelector('#canvas')?.dataset.example), groups[gi]);
      const want = truth[groups[gi][0]];
      const count = await annie.locator('.boxes li').count();
      for (let i = 0; i < count; i++) await kb.press('Delete');
      // The first box with keys: new, move, resize (steps of 2 %).
      const [k0, k1] = want;
      await kb.press('Escape');
      await kb.press(k0.class);
      await kb.press('n');
      const presses = async (key, n) => { for (let i = 0; i < Math.abs(n); i++) await kb.press(key); };
      await presses(k0.box.x0 > 0.35 ? 'Shift+ArrowRight' : 'Shift+ArrowLeft', Math.round((k0.box.x0 - 0.35) / 0.02));
      await presses(k0.box.y0 > 0.35 ? 'Shift+ArrowDown' : 'Shift+ArrowUp', Math.round((k0.box.y0 - 0.35) / 0.02));
      const dw = Math.round((k0.box.x1 - k0.box.x0 - 0.3) / 0.02), dh = Math.round((k0.box.y1 - k0.box.y0 - 0.3) / 0.02);
      await presses(dw > 0 ? 'Control+ArrowRight' : 'Control+ArrowLeft', dw);
      await presses(dh > 0 ? 'Control+ArrowDown' : 'Control+ArrowUp', dh);
      // The second with the mouse.
      const c = await annie.locator('#canvas').boundingBox();
      await kb.press('Escape');
      await kb.press(k1.class);
      await annie.mouse.move(c.x + k1.box.x0 * c.width, c.y + k1.box.y0 * c.height);
      await annie.mouse.down();
      await annie.mouse.move(c.x + ((k1.box.x0 + k1.box.x1) / 2) * c.width, c.y + ((k1.box.y0 + k1.box.y1) / 2) * c.height, { steps: 3 });
      await annie.mouse.move(c.x + k1.box.x1 * c.width, c.y + k1.box.y1 * c.height, { steps: 3 });
      await annie.mouse.up();
      if (gi === 0) {
        await kb.press('Tab');
        await shot(annie, '2-annotate');
        result.below_fold = await below(annie, ['#submit', '.keys', '#save-next']);
      }
      await kb.press('Enter');
    }
  }
  await kb.press('Control+Enter');
  await annie.waitForFunction(() => location.hash === '#/', null, { timeout: 20000 });
  result.seconds = (Date.now() - t0) / 1000;
  result.key_ms = await annie.evaluate(() => window.edgeloopKeyTimes);
  if (TASK === 'classify') result.mouse += await annie.evaluate(() => window.__mouse);

  // Reviewer: the submitted batch shows up without a reload; N opens it.
  await rex.waitForFunction((b) => document.querySelector(`a[data-review="${b}"]`), result.batch, { timeout: 15000 });
  await rex.keyboard.press('n');
  await rex.waitForSelector('#canvas[data-example]');
  await rex.waitForSelector('.card canvas');
  for (let gi = 0; gi < groups.length; gi++) {
    await rex.waitForFunction((ids) => ids.includes(document.querySelector('#canvas')?.dataset.example), groups[gi]);
    if (TASK === 'detect' && gi === 0) { // the colour picture as the reviewer sees it, with the saved boxes
      const id = await rex.evaluate(() => document.querySelector('#canvas').dataset.example);
      const item = (await fetchBatch(rex, result.batch)).items.find((it) => it.example_id === id);
      result.picture = await picture(rex, id, item.labels || []);
      result.picture.example = id;
    }
    if (TASK === 'classify' && gi === 3) {
      await rex.keyboard.press('r');
      await rex.keyboard.type('the digit is not a ' + cls(gi));
      await rex.keyboard.press('Enter');
      for (const id of groups[gi]) result.rejected[id] = 'the digit is not a ' + cls(gi);
    } else {
      await rex.keyboard.press('a');
    }
    if (gi === 4) {
      await shot(rex, '3-review');
      result.below_fold.push(...(await below(rex, ['#approve', '#accept', '.keys'])).map((s) => 'review ' + s));
    }
  }
  await rex.waitForFunction((n) => document.querySelector('#review-count')?.textContent.includes(`${n} to review`) , 0);
  await rex.keyboard.press('Control+Enter');
  await rex.waitForFunction(() => location.hash === '#/review', null, { timeout: 20000 });
  result.mouse += await rex.evaluate(() => window.__mouse);
  await rex.goto(`${BASE}/#/dataset`);
  await rex.waitForSelector('.big');
  await shot(rex, '4-dataset');
  await annie.waitForSelector('#next');
  await shot(annie, '5-queue-after');
  // A link that names a page and a token (the standalone's dashboard link) logs a fresh
  // browser in on that page and takes the token out of the address.
  const fresh = await (await browser.newContext()).newPage();
  pages.push(fresh);
  await fresh.goto(`${BASE}/#/dashboard&token=${env('REVIEWER')}`);
  await fresh.waitForSelector('body[data-page=dashboard] #whoami:not(:empty)');
  // Drawn, or said to have no data (no dashboard on this server); not index.html's "Loading…".
  await fresh.waitForFunction(() => document.querySelector('#view h1') || document.querySelector('#view').textContent.includes('No dashboard data yet'));
  result.linked = await fresh.evaluate(() => location.hash);
  result.training = await fresh.evaluate(() => document.querySelector('#training')?.textContent || '');
} catch (e) {
  // Say what the pages logged and keep a screenshot of each, then fail.
  console.error(`FAILED: ${e && e.stack || e}`);
  for (const [i, p] of pages.entries()) {
    await p.screenshot({ path: path.join(OUT, `${SHOTS}-failure-${i}.png`), fullPage: true }).catch(() => {});
  }
  console.error(`page errors: ${JSON.stringify(errors)}`);
  await browser.close();
  process.exit(1);
}
result.errors = errors;
await browser.close();
console.log(JSON.stringify(result));
