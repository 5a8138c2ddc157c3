// edgeloop annotation UI: plain ES modules, no build step, no CDN. Views are routed by
// the URL hash: #/ (queue), #/annotate/P/B[/i], #/review[/P/B], #/dataset, #/dashboard.

// seg encodes a value (a project, batch or example id) as one URL path segment.
const seg = encodeURIComponent;
// unseg decodes a path segment of the hash (a malformed one stays as it is).
const unseg = (s) => { try { return decodeURIComponent(s); } catch { return s; } };

const $ = (sel, root = document) => root.querySelector(sel);
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
  return el;
};

// ---- session -------------------------------------------------------------------------
const state = { token: null, me: null, project: null, projects: [], imgCache: new Map(), imgReady: new Map(), keyHandler: null, keyBuffer: [],
  timers: [], cleanups: [], gen: 0 };
// current says whether a view started in generation gen is still the one on screen: a
// slow page must not paint over, or listen for, the page that replaced it.
const current = (gen) => gen === state.gen;

// readToken keeps a token given in the link (#token=T, or after a page: #/dashboard&token=T)
// and takes it out of the address, leaving the page it named.
function readToken() {
  const m = location.hash.match(/[#&]token=([^&]+)/);
  if (m) {
    localStorage.setItem('edgeloop.token', decodeURIComponent(m[1]));
    const page = location.hash.replace(m[0], '').replace(/^#?&/, '#');
    history.replaceState(null, '', location.pathname + (page.startsWith('#/') ? page : '#/'));
  }
  return localStorage.getItem('edgeloop.token');
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: 'Bearer ' + state.token } };
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const res = await fetch('/api/v1' + path, opts);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const msg = (data && data.error) || res.statusText;
    if (res.status === 401) { localStorage.removeItem('edgeloop.token'); }
    throw new Error(msg);
  }
  return data;
}

// image loads an example's image once; imageNow is the image if it is already decoded.
function image(project, id) {
  const key = project + '/' + id;
  if (!state.imgCache.has(key)) {
    const p = (async () => {
      const res = await fetch(`/api/v1/projects/${seg(project)}/examples/${seg(id)}/image`, { headers: { Authorization: 'Bearer ' + state.token } });
      if (!res.ok) throw new Error('image ' + id + ': ' + res.status);
      const img = new Image();
      img.src = URL.createObjectURL(await res.blob());
      await img.decode();
      state.imgReady.set(key, img);
      return img;
    })();
    p.catch(() => state.imgCache.delete(key)); // a failed load is tried again next time
    state.imgCache.set(key, p);
  }
  return state.imgCache.get(key);
}
const imageNow = (project, id) => state.imgReady.get(project + '/' + id);

function toast(msg, error = false) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = 'show' + (error ? ' error' : '');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = ''), error ? 6000 : 2500);
}

const can = (role) => state.me && (state.me.roles.includes(role) || state.me.roles.includes('admin'));
const pct = (x) => (100 * x).toFixed(0) + '\u00a0%';

// ---- keys ----------------------------------------------------------------------------
// One keydown listener serves every page. Keys go to the page's handler; keys typed
// while a page loads wait for it and are then handled in order, so nothing typed is
// lost. Keys typed into a field, and Enter or Space on a focused button or link, are
// the browser's.
const typing = (el) => el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable);
const activates = (e) => (e.key === 'Enter' || e.key === ' ') && !e.ctrlKey && !e.metaKey && e.target && (e.target.tagName === 'BUTTON' || e.target.tagName === 'A');
const pageKeys = new Set(['Enter', 'Escape', 'Tab', 'Delete', 'Backspace', 'ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown']);
document.addEventListener('keydown', (e) => {
  if (typing(e.target) || activates(e)) return;
  if (state.keyHandler) { state.keyHandler(e); return; }
  if (state.keyBuffer && (e.key.length === 1 || pageKeys.has(e.key)) && !e.altKey && (!(e.ctrlKey || e.metaKey) || e.key === 'Enter')) {
    state.keyBuffer.push({ key: e.key, ctrlKey: e.ctrlKey, metaKey: e.metaKey, shiftKey: e.shiftKey, altKey: false, timeStamp: e.timeStamp,
      target: document.body, preventDefault() {} });
    e.preventDefault();
  }
});
// onKeys installs the page's key handler and hands it the keys typed while it loaded.
function onKeys(handler) {
  state.keyHandler = handler;
  const held = state.keyBuffer || [];
  state.keyBuffer = null;
  held.forEach(handler);
}

// keyTimes are the last key-to-next-item times in ms (read by the benchmark).
window.edgeloopKeyTimes = [];
// painted records the time from a key press (its event time stamp) to the frame that
// shows its result.
function painted(t0) {
  if (t0 === undefined) return;
  requestAnimationFrame(() => {
    const ch = new MessageChannel(); // runs right after the frame is painted
    ch.port1.onmessage = () => { const k = window.edgeloopKeyTimes; k.push(performance.now() - t0); if (k.length > 5000) k.shift(); };
    ch.port2.postMessage(0);
  });
}

// ---- routing -------------------------------------------------------------------------
function cleanup() {
  // Keys held while leaving a page for the next (claim next, review next) stay for it.
  state.keyBuffer = state.keyHandler || !state.keyBuffer ? [] : state.keyBuffer;
  state.keyHandler = null;
  state.timers.forEach(clearInterval); state.timers = [];
  state.cleanups.forEach((f) => f()); state.cleanups = [];
}

async function route() {
  cleanup();
  const gen = ++state.gen;
  const shown = $('#view');
  if (!state.token) return login(shown);
  // Each page renders into its own element, shown only if no newer route started; a
  // page may return a function to run once it is on screen (to size itself).
  const view = h('div');
  let after = null;
  const show = () => {
    if (!current(gen)) return;
    shown.replaceChildren(...view.childNodes);
    if (after) after();
    if (!state.keyHandler) onKeys(() => {}); // a page without keys drops those held for it
  };
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(unseg);
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.nav === (parts[0] || 'queue')));
  document.body.dataset.page = parts[0] || 'queue';
  try {
    // One session load shared by the routes that start while it runs.
    if (!state.session) state.session = loadSession().catch((e) => { state.session = null; throw e; });
    await state.session;
    switch (parts[0] || 'queue') {
      case 'queue': await queue(view, gen); break;
      case 'annotate': after = await annotate(view, parts[1], parts[2], Number(parts[3] || 0), gen); break;
      case 'review': after = await (parts[2] ? review(view, parts[1], parts[2], gen) : queue(view, gen, 'submitted')); break;
      case 'dataset': await dataset(view); break;
      case 'dashboard': await dashboard(view, gen, shown); break;
      default: view.replaceChildren(h('p', {}, 'Unknown page.'));
    }
    show();
  } catch (e) {
    if (!localStorage.getItem('edgeloop.token')) { state.token = null; state.me = null; state.session = null; return login(shown); }
    view.replaceChildren(h('p', { class: 'error' }, 'Error: ' + e.message));
    show();
    toast(e.message, true);
  }
}

async function loadSession() {
  state.me = await api('GET', '/me');
  $('#whoami').textContent = `${state.me.user} (${state.me.roles.join(', ')})`;
  state.projects = await api('GET', '/projects');
  const sel = $('#project');
  sel.replaceChildren(...state.projects.map((p) => h('option', { value: p.id }, `${p.id} · ${p.task}`)));
  state.project = localStorage.getItem('edgeloop.project');
  if (!state.projects.some((p) => p.id === state.project)) state.project = state.projects[0] && state.projects[0].id;
  sel.value = state.project || '';
  sel.onchange = () => { state.project = sel.value; localStorage.setItem('edgeloop.project', sel.value); sel.blur(); route(); };
}

const projectOf = (id) => state.projects.find((p) => p.id === id);

function login(view) {
  const input = h('input', { type: 'password', placeholder: 'bearer token', style: 'width:100%', id: 'token' });
  const go = () => { state.token = input.value.trim(); localStorage.setItem('edgeloop.token', state.token); state.me = null; state.session = null; route(); };
  input.addEventListener('keydown', (e) => e.key === 'Enter' && go());
  view.replaceChildren(h('div', { class: 'login' }, h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste your access token. make run prints annotator and reviewer tokens.'),
    input, h('p', {}, h('button', { class: 'primary', onclick: go }, 'Sign in'))));
  input.focus();
}

// ---- sampling reasons in the annotator's words ----------------------------------------
const reasonNames = { operator_flagged: 'flagged by an operator', close_to_threshold: 'model unsure', low_confidence: 'close call',
  random: 'random check', class_quota: 'rare class', detection_count: 'unusual object count', import: 'imported with labels' };
const reasonName = (k) => reasonNames[k] || (k || 'unknown').replaceAll('_', ' ');

// reasonText says why an example was sampled, from the reason's kind and the model's
// predictions; the edge's technical detail stays in the tooltip.
function reasonText(r, ex) {
  const preds = (ex.predictions || []).slice().sort((a, b) => b.confidence - a.confidence);
  const [p0, p1] = preds;
  switch (r.kind) {
    case 'operator_flagged':
      return ex.correction && ex.correction.length ? `An operator said the model was wrong; they say it is ${ex.correction.map((l) => l.class).join(', ')}.`
        : 'An operator said the model was wrong.';
    case 'close_to_threshold': {
      const p = preds.slice().sort((a, b) => Math.abs(a.confidence - 0.5) - Math.abs(b.confidence - 0.5))[0];
      return p ? `The model was unsure: ${pct(p.confidence)} sure it is ${p.class}.` : 'The model was unsure.';
    }
    case 'low_confidence':
      if (/^margin/.test(r.detail || '') && p1) return `The model hesitated between ${p0.class} (${pct(p0.confidence)}) and ${p1.class} (${pct(p1.confidence)}).`;
      if (/entropy/.test(r.detail || '')) return 'The model had no clear favourite.';
      return p0 ? `The model was only ${pct(p0.confidence)} sure it is ${p0.class}.` : 'The model was unsure.';
    case 'random': return 'Picked at random, to check the model on ordinary pictures.';
    case 'class_quota': return p0 ? `The model rarely sees ${p0.class} lately; kept to balance the data.` : 'A rarely seen class; kept to balance the data.';
    case 'detection_count': return `The model found ${preds.length} object${preds.length === 1 ? '' : 's'}, an unusual number.`;
    case 'import': return 'Imported with its labels (seed data).';
    default: return r.detail || reasonName(r.kind);
  }
}

// groupByFrame puts the items that show the same camera frame (one device's frame_id)
// together: the annotator sees each picture once, with every reason it was sampled for.
function groupByFrame(items, exs) {
  const groups = [], at = new Map();
  for (const it of items) {
    const ex = exs[it.example_id] || { predictions: [], reasons: [] };
    const key = ex.frame_id ? (ex.device || '') + '\u0000' + ex.frame_id : '\u0001' + it.example_id;
    if (!at.has(key)) { at.set(key, groups.length); groups.push({ ids: [], recs: [] }); }
    const g = groups[at.get(key)];
    g.ids.push(it.example_id); g.recs.push(ex);
  }
  for (const g of groups) {
    // The example an operator corrected leads: its correction is the best first guess.
    const lead = Math.max(0, g.recs.findIndex((r) => r.correction && r.correction.length));
    g.id = g.ids[lead]; g.ex = g.recs[lead];
    const seen = new Set();
    g.reasons = g.recs.flatMap((r) => r.reasons || []).filter((r) => !seen.has(r.kind) && seen.add(r.kind));
  }
  return groups;
}

function reasonList(g) {
  return h('ul', { class: 'reasons' }, g.reasons.map((r) => h('li', { title: r.detail || '' },
    h('span', { class: 'pill' }, reasonName(r.kind)), ' ', reasonText(r, g.ex))));
}

// ---- queue ---------------------------------------------------------------------------
async function queue(view, gen, fixedState) {
  const p = state.project;
  if (!p) { view.replaceChildren(h('p', {}, 'No project yet.')); return; }
  const proj = projectOf(p);
  const reviewing = fixedState === 'submitted';
  const f = { state: fixedState || sessionStorage.getItem('q.state') || '', reason: sessionStorage.getItem('q.reason') || '',
    class: sessionStorage.getItem('q.class') || '', min: sessionStorage.getItem('q.min') || '', max: sessionStorage.getItem('q.max') || '' };
  const qs = new URLSearchParams();
  if (f.state) qs.set('state', f.state);
  if (f.reason) qs.set('reason', f.reason);
  if (f.class) qs.set('class', f.class);
  if (f.min) qs.set('min_confidence', f.min);
  if (f.max) qs.set('max_confidence', f.max);
  const field = (label, input) => h('label', {}, label, input);
  const states = ['', 'open', 'ready', 'in_progress', 'submitted', 'approved'];
  const sel = (name, opts, val, label = (o) => o || 'any') => {
    const s = h('select', { 'data-filter': name }, ...opts.map((o) => h('option', { value: o, selected: o === val }, label(o))));
    s.onchange = () => { sessionStorage.setItem('q.' + name, s.value); route(); };
    return s;
  };
  const num = (name, val) => {
    const i = h('input', { type: 'number', min: 0, max: 1, step: 0.05, value: val, style: 'width:80px', 'data-filter': name });
    i.onchange = () => { sessionStorage.setItem('q.' + name, i.value); route(); };
    return i;
  };
  const row = (b) => {
    const mine = b.claim && b.claim.user === state.me.user;
    let action = '';
    if (b.state === 'ready' && can('annotator')) action = h('button', { class: 'primary', 'data-claim': b.id, onclick: () => claim(p, b.id) }, 'Claim');
    else if (b.state === 'in_progress' && mine) action = h('a', { class: 'button primary', href: `#/annotate/${seg(p)}/${seg(b.id)}`, 'data-continue': b.id }, 'Continue');
    else if (b.state === 'in_progress' && can('annotator') && new Date(b.claim.expires) < new Date()) action = h('button', { onclick: () => claim(p, b.id) }, 'Take over (lease expired)');
    else if (b.state === 'submitted' && can('reviewer')) action = h('a', { class: 'button primary', href: `#/review/${seg(p)}/${seg(b.id)}`, 'data-review': b.id }, 'Review');
    return h('tr', { 'data-batch': b.id },
      h('td', {}, h('strong', {}, b.id), b.returned_from ? h('div', { class: 'muted' }, 'returned from ' + b.returned_from) : ''),
      h('td', {}, h('span', { class: 'pill state-' + b.state }, b.state.replace('_', ' ')), b.claim ? h('span', { class: 'muted' }, ' ' + b.claim.user) : ''),
      b.state === 'open' ? h('td', {}, `${b.examples} waiting`) :
        h('td', {}, b.done + ' / ' + b.examples, h('div', { class: 'bar' }, h('div', { style: `width:${b.examples ? (100 * b.done) / b.examples : 0}%` })),
          b.accepted || b.rejected ? h('div', { class: 'muted' }, `${b.accepted || 0} accepted · ${b.rejected || 0} rejected`) : ''),
      b.predicted ? h('td', {}, pct(b.mean_confidence), h('span', { class: 'muted' }, ' (lowest ' + pct(b.min_confidence) + ')'))
        : h('td', { class: 'muted' }, b.examples ? '— no model prediction' : ''),
      h('td', {}, Object.entries(b.reasons).sort((x, y) => y[1] - x[1]).map(([k, v]) => h('span', { class: 'pill', title: k }, `${reasonName(k)} ${v}`))),
      h('td', {}, Object.entries(b.classes).sort().map(([k, v]) => h('span', { class: 'pill' }, `${k}:${v}`))),
      h('td', {}, b.comments ? h('span', { title: b.comments }, '💬 ') : '', action));
  };
  const tbody = h('tbody');
  const table = h('table', {}, h('thead', {}, h('tr', {}, ...['batch', 'state', 'progress', 'model confidence', 'why sampled', 'predicted classes', ''].map((t) => h('th', {}, t)))), tbody);
  const empty = h('p', { class: 'muted' }, 'No batch matches. This page updates by itself.');
  const next = h('div', { class: 'nextbar' });
  let last = '';
  const paint = (batches) => {
    const ready = batches.filter((b) => b.state === 'ready').length;
    const submitted = batches.filter((b) => b.state === 'submitted').length;
    const mine = batches.find((b) => b.state === 'in_progress' && b.claim && b.claim.user === state.me.user);
    next.replaceChildren(reviewing
      ? h('button', { class: 'primary', id: 'next', onclick: () => reviewNext(p), disabled: !can('reviewer') }, `Review next batch (${submitted} waiting) `, h('kbd', {}, 'N'))
      : h('button', { class: 'primary', id: 'next', onclick: () => claimNext(p), disabled: !can('annotator') },
        mine ? `Continue ${mine.id} ` : `Claim next batch (${ready} ready) `, h('kbd', {}, 'N')),
    h('span', { class: 'muted' }, ' updates by itself'));
    tbody.replaceChildren(...batches.map(row));
    table.hidden = !batches.length; empty.hidden = !!batches.length;
  };
  const load = async () => {
    const batches = await api('GET', `/projects/${seg(p)}/batches?` + qs);
    const j = JSON.stringify(batches);
    if (j !== last && current(gen)) { last = j; paint(batches); }
  };
  await load();
  view.replaceChildren(
    h('h1', {}, reviewing ? 'Batches to review' : 'Correction queue', h('span', { class: 'muted' }, ` · ${p} (${proj.task}, batches of ${proj.batch.min}–${proj.batch.max})`)),
    next,
    reviewing ? '' : h('div', { class: 'filters' },
      field('state', sel('state', states, f.state)), field('why sampled', sel('reason', [''].concat(Object.keys(reasonNames)), f.reason, (o) => (o ? reasonName(o) : 'any'))),
      field('predicted class', sel('class', [''].concat(proj.classes), f.class)),
      field('mean confidence ≥', num('min', f.min)), field('≤', num('max', f.max))),
    table, empty);
  // Live: poll while the tab is visible, and at once when it shows again.
  const poll = () => { if (!document.hidden) load().catch(() => {}); };
  state.timers.push(setInterval(poll, 3000));
  document.addEventListener('visibilitychange', poll);
  state.cleanups.push(() => document.removeEventListener('visibilitychange', poll));
  const keys = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.key.toLowerCase() !== 'n') return;
    e.preventDefault();
    // The keys typed from now on are for the batch about to open: hold them.
    state.keyHandler = null; state.keyBuffer = [];
    (reviewing ? reviewNext(p) : claimNext(p)).then((opened) => { if (!opened && current(gen)) onKeys(keys); });
  };
  onKeys(keys);
}

async function claim(p, id) {
  try {
    await api('POST', `/projects/${seg(p)}/batches/${seg(id)}/claim`);
    location.hash = `#/annotate/${seg(p)}/${seg(id)}`;
  } catch (e) { toast(e.message, true); }
}

// claimNext continues the caller's batch in progress, else claims the oldest ready one.
async function claimNext(p) {
  try {
    const list = await api('GET', `/projects/${seg(p)}/batches`);
    const mine = list.find((b) => b.state === 'in_progress' && b.claim && b.claim.user === state.me.user);
    if (mine) { location.hash = `#/annotate/${seg(p)}/${seg(mine.id)}`; return true; }
    for (const b of list.filter((b) => b.state === 'ready').sort((a, b) => (a.id < b.id ? -1 : 1))) {
      try { await api('POST', `/projects/${seg(p)}/batches/${seg(b.id)}/claim`); location.hash = `#/annotate/${seg(p)}/${seg(b.id)}`; return true; } catch { /* taken meanwhile: the next */ }
    }
    toast('No batch is ready yet; the queue updates by itself.');
  } catch (e) { toast(e.message, true); }
  return false;
}

async function reviewNext(p) {
  try {
    const list = await api('GET', `/projects/${seg(p)}/batches?state=submitted`);
    const b = list.sort((a, b) => (a.id < b.id ? -1 : 1))[0];
    if (b) { location.hash = `#/review/${seg(p)}/${seg(b.id)}`; return true; }
    toast('Nothing to review yet; the list updates by itself.');
  } catch (e) { toast(e.message, true); }
  return false;
}

// ---- annotate ------------------------------------------------------------------------
// Keys the pages use for commands (/ opens the class picker); single-character class
// names that clash get digit keys.
const commandKeys = new Set(['s', 'n', 'a', 'r', 't', '+', '-', '=', '/']);

function keymap(classes) {
  const single = classes.every((c) => c.length === 1 && !commandKeys.has(c.toLowerCase())) && new Set(classes.map((c) => c.toLowerCase())).size === classes.length;
  const keys = {};
  classes.forEach((c, i) => { const k = single ? c.toLowerCase() : (i < 9 ? String(i + 1) : i === 9 ? '0' : null); if (k) keys[k] = c; });
  return keys;
}

// classPicker reaches any class from the keyboard, however many there are (the digit
// keys reach the first ten): open, it is a focused filter box over the list of classes
// (a combobox with its listbox); typing narrows the list to the names that start with
// the text, then those that contain it; ↑ ↓ (or Tab) move, Enter calls pick with the
// class, Esc closes with nothing changed. While it is open every key is its own: the
// page hands it the keys that reach the page instead (those typed while the page
// loaded, before the box could take the focus), in order, so none is lost.
function classPicker(classes, keyOf, pick) {
  const input = h('input', { id: 'class-filter', type: 'text', role: 'combobox', autocomplete: 'off', spellcheck: 'false',
    'aria-autocomplete': 'list', 'aria-expanded': 'true', 'aria-controls': 'class-options', 'aria-label': 'find a class', placeholder: 'type to find a class' });
  const list = h('ul', { id: 'class-options', role: 'listbox', 'aria-label': 'classes' });
  const note = h('div', { class: 'muted', 'aria-live': 'polite' });
  const el = h('div', { class: 'picker', id: 'class-picker', hidden: true }, input, list, note,
    h('div', { class: 'keys' }, h('kbd', {}, '↑'), h('kbd', {}, '↓'), ' choose · ', h('kbd', {}, 'Enter'), ' set the class · ', h('kbd', {}, 'Esc'), ' close'));
  let shown = [], active = 0, open = false, back = null;
  const filter = () => {
    const q = input.value.trim().toLowerCase(), starts = [], has = [];
    classes.forEach((c, i) => { const n = c.toLowerCase(); if (n.startsWith(q)) starts.push(i); else if (n.includes(q)) has.push(i); });
    shown = starts.concat(has);
  };
  const paint = () => {
    active = shown.length ? clamp(active, 0, shown.length - 1) : 0;
    list.replaceChildren(...shown.map((ci, j) => h('li', { id: `class-option-${ci}`, role: 'option', 'aria-selected': j === active ? 'true' : 'false',
      class: j === active ? 'active' : '', 'data-class': classes[ci], onmousedown: (e) => e.preventDefault(), onclick: () => { active = j; choose(); } },
    classes[ci], keyOf[classes[ci]] ? h('kbd', {}, keyOf[classes[ci]]) : '')));
    if (shown.length) input.setAttribute('aria-activedescendant', `class-option-${shown[active]}`);
    else input.removeAttribute('aria-activedescendant');
    note.textContent = shown.length ? (shown.length === classes.length ? '' : `${shown.length} of ${classes.length} classes`) : 'no class matches';
    const li = list.children[active];
    if (li && (li.offsetTop < list.scrollTop || li.offsetTop + li.offsetHeight > list.scrollTop + list.clientHeight)) list.scrollTop = li.offsetTop - list.clientHeight / 2;
  };
  const close = () => {
    if (!open) return;
    open = false;
    const to = back; back = null;
    if (to && to !== document.body && to.isConnected) to.focus({ preventScroll: true }); else input.blur();
    el.hidden = true;
  };
  const choose = () => { if (!shown.length) return; const c = classes[shown[active]]; close(); pick(c); };
  // key acts on one key: those typed in the box (its own keys: Enter, Esc, arrows, Tab)
  // and those the page hands on (any key: characters and Backspace edit the filter).
  const key = (e) => {
    const k = e.key;
    if (k === 'Escape') close();
    else if (k === 'Enter') { if (!e.isComposing) choose(); }
    else if (k === 'ArrowDown' || k === 'ArrowUp' || k === 'Tab') {
      if (shown.length) { active = (active + ((k === 'ArrowUp' || (k === 'Tab' && e.shiftKey)) ? -1 : 1) + shown.length) % shown.length; paint(); }
    } else if (e.target === input) return;
    else if (k === 'Backspace') { input.value = input.value.slice(0, -1); filter(); active = 0; paint(); }
    else if (k.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) { input.value += k; filter(); active = 0; paint(); }
    e.preventDefault();
  };
  input.addEventListener('keydown', (e) => { key(e); e.stopPropagation(); });
  input.addEventListener('input', () => { filter(); active = 0; paint(); });
  // A click elsewhere on the page closes it (not the window losing the focus).
  input.addEventListener('blur', () => { if (open && document.hasFocus()) close(); });
  return {
    el, key,
    isOpen: () => open,
    // open shows every class with the current one chosen, and takes the focus.
    open: (current) => {
      if (open) return;
      open = true;
      back = document.activeElement;
      input.value = ''; filter(); active = Math.max(0, shown.indexOf(classes.indexOf(current)));
      el.hidden = false; paint(); input.focus();
    },
    // focus gives the box the focus once the page is on screen (it opened while loading).
    focus: () => { if (open && document.activeElement !== input) input.focus(); },
  };
}

// initialLabels is what an item starts from: its saved annotation, the labels a
// reviewer sent back, the operator's correction, else the model's predictions.
function initialLabels(item, g, task) {
  if (item.labels && item.labels.length && (item.status === 'done' || item.feedback)) return structuredClone(item.labels);
  const corrected = g.recs.find((r) => r.correction && r.correction.length);
  if (corrected) return structuredClone(corrected.correction);
  const ex = g.ex;
  if (task === 'classify') { const top = ex.predictions.slice().sort((a, b) => b.confidence - a.confidence)[0]; return top ? [{ class: top.class }] : []; }
  return ex.predictions.filter((p) => p.box && p.confidence >= 0.25).map((p) => ({ class: p.class, box: { ...p.box } }));
}

// stageCanvas draws an image scaled to fit its stage, pixel-sharp when enlarged.
function fitScale(stage, img, zoom) {
  const w = Math.max(100, stage.clientWidth - 22), hh = Math.max(100, stage.clientHeight - 22);
  let s = Math.min(w / img.width, hh / img.height);
  if (s >= 1) s = Math.floor(s);
  return Math.max(0.05, s * Math.pow(1.25, zoom));
}

function drawBoxes(ctx, labels, selected, W, H) {
  labels.forEach((l, i) => {
    if (!l.box) return;
    const b = l.box, x = b.x0 * W, y = b.y0 * H, w = (b.x1 - b.x0) * W, hh = (b.y1 - b.y0) * H;
    ctx.lineWidth = i === selected ? 3 : 2;
    ctx.strokeStyle = i === selected ? '#f59e0b' : '#22c55e';
    ctx.strokeRect(x, y, w, hh);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.font = 'bold 13px system-ui';
    ctx.fillRect(x, Math.max(0, y - 16), ctx.measureText(l.class).width + 8, 16);
    ctx.fillStyle = '#000'; ctx.fillText(l.class, x + 4, Math.max(12, y - 4));
    if (i === selected) for (const [hx, hy] of [[x, y], [x + w, y], [x, y + hh], [x + w, y + hh]]) { ctx.fillStyle = '#f59e0b'; ctx.fillRect(hx - 4, hy - 4, 8, 8); }
  });
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const boxStep = 0.02;

// annotate is one batch's correction page. The batch loads once; moving between items
// happens in the page (no reload), so a key always applies to the item on screen, and
// saves run in the background, in order.
async function annotate(view, p, id, index, gen) {
  const proj = projectOf(p);
  if (!proj) throw new Error(`project ${p} does not exist`);
  const batch = await api('GET', `/projects/${seg(p)}/batches/${seg(id)}`);
  const items = new Map(batch.items.map((it) => [it.example_id, it]));
  const groups = groupByFrame(batch.items, batch.examples);
  const detect = proj.task === 'detect';
  const keys = keymap(proj.classes);
  const keyOf = Object.fromEntries(Object.entries(keys).map(([k, c]) => [c, k]));
  const drafts = new Map(), dirty = new Set();
  const statusOf = (gi) => { const st = groups[gi].ids.map((e) => items.get(e).status || ''); return st.every((s) => s === st[0]) ? st[0] : ''; };
  const draftFor = (gi) => { if (!drafts.has(gi)) drafts.set(gi, initialLabels(items.get(groups[gi].id), groups[gi], proj.task)); return drafts.get(gi); };
  index = clamp(index || 0, 0, groups.length - 1);
  let labels = draftFor(index);
  let selected = detect && labels.length ? 0 : -1;
  let drawClass = labels[0] ? labels[0].class : proj.classes[0];
  let zoom = Number(sessionStorage.getItem('zoom') || 0);
  let pendingT0, saving = Promise.resolve(), unsaved = 0, submitting = false;
  const canvas = h('canvas', { id: 'canvas', tabindex: 0 });
  const stage = h('div', { class: 'stage' }, canvas);
  const ctx = canvas.getContext('2d');
  const side = h('div', { class: 'side' });
  const progress = h('div', { class: 'nav progress' });

  const draw = () => {
    const g = groups[index];
    canvas.dataset.example = g.id;
    const img = imageNow(p, g.id);
    if (!img) {
      canvas.width = 300; canvas.height = 200; ctx.fillStyle = '#999'; ctx.font = '14px system-ui'; ctx.fillText('loading…', 120, 100);
      const want = index;
      image(p, g.id).then(() => { if (current(gen) && index === want) draw(); }, (e) => toast(e.message, true));
      return;
    }
    const s = fitScale(stage, img, zoom);
    canvas.width = Math.round(img.width * s); canvas.height = Math.round(img.height * s);
    canvas.dataset.zoom = zoom;
    ctx.imageSmoothingEnabled = s < 1;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (detect) drawBoxes(ctx, labels, selected, canvas.width, canvas.height);
    painted(pendingT0); pendingT0 = undefined;
  };
  // Prefetch: the next pictures first, then the whole batch, four at a time, so that
  // the next item shows at once however fast the keys come.
  const prefetch = () => { for (const d of [1, 2, 3, -1]) { const g = groups[index + d]; if (g) image(p, g.id).catch(() => {}); } };
  const prefetchAll = () => {
    const order = groups.map((_, i) => groups[(index + i) % groups.length].id);
    const worker = async () => { while (order.length && current(gen)) await image(p, order.shift()).catch(() => {}); };
    for (let i = 0; i < 4; i++) worker();
  };

  // Saving: the items' state changes at once; the requests run one after another.
  const save = (gi, status) => {
    const g = groups[gi];
    const ls = status === 'skipped' ? [] : draftFor(gi).map((l) => ({ class: l.class, box: l.box ? { ...l.box } : undefined }));
    dirty.delete(gi);
    for (const eid of g.ids) {
      const it = items.get(eid);
      it.status = status; it.labels = ls;
      unsaved++;
      saving = saving.then(() => api('PUT', `/projects/${seg(p)}/batches/${seg(id)}/items/${seg(eid)}`, { labels: ls, status }))
        .catch((e) => { if (it.labels === ls) it.status = ''; toast(`example ${gi + 1} is not saved: ${e.message}`, true); })
        .finally(() => { unsaved--; if (current(gen)) renderProgress(); });
    }
  };
  const mark = () => dirty.add(index);
  const show = (gi, t0) => {
    index = gi;
    history.replaceState(null, '', `#/annotate/${seg(p)}/${seg(id)}/${gi}`);
    labels = draftFor(gi);
    selected = detect && labels.length ? 0 : -1;
    if (labels[0]) drawClass = labels[0].class;
    pendingT0 = t0;
    render(); prefetch();
  };
  const leave = (gi, t0) => { if (gi === index) return; if (dirty.has(index)) save(index, 'done'); show(gi, t0); };
  const nextTodo = (from) => {
    for (let d = 1; d <= groups.length; d++) { const gi = (from + d) % groups.length; if (!statusOf(gi)) return gi; }
    return -1;
  };
  const next = (status, t0) => {
    save(index, status);
    const todo = nextTodo(index);
    if (todo >= 0) show(todo, t0);
    else { render(); toast(`All ${groups.length} done: Ctrl+Enter submits the batch`); }
  };
  const submit = async () => {
    if (submitting) return;
    if (dirty.has(index)) save(index, 'done');
    const todo = nextTodo(index - 1 < 0 ? groups.length - 1 : index - 1);
    if (todo >= 0) { toast(`${groups.filter((_, gi) => !statusOf(gi)).length} examples still to do`, true); show(todo); return; }
    submitting = true; render();
    await saving;
    try {
      if (batch.items.some((it) => !items.get(it.example_id).status)) throw new Error('some examples could not be saved; save them again');
      await api('POST', `/projects/${seg(p)}/batches/${seg(id)}/submit`);
      toast('Batch submitted for review');
      if (current(gen)) location.hash = '#/';
    } catch (e) { toast(e.message, true); submitting = false; if (current(gen)) render(); }
  };

  const setClass = (c) => {
    drawClass = c;
    if (!detect) { labels.length = 0; labels.push({ class: c }); mark(); }
    else if (selected >= 0) { labels[selected].class = c; mark(); }
    render();
  };
  const newBox = () => {
    labels.push({ class: drawClass, box: { x0: 0.35, y0: 0.35, x1: 0.65, y1: 0.65 } });
    selected = labels.length - 1; mark(); render();
  };
  const moveBox = (dx, dy) => {
    const b = labels[selected].box;
    dx = clamp(dx, -b.x0, 1 - b.x1); dy = clamp(dy, -b.y0, 1 - b.y1);
    b.x0 += dx; b.x1 += dx; b.y0 += dy; b.y1 += dy; mark(); render();
  };
  const resizeBox = (dw, dh) => {
    const b = labels[selected].box;
    b.x1 = clamp(b.x1 + dw, b.x0 + boxStep, 1); b.y1 = clamp(b.y1 + dh, b.y0 + boxStep, 1); mark(); render();
  };
  const deleteBox = (i) => { labels.splice(i, 1); selected = Math.min(i, labels.length - 1); mark(); render(); };
  const picker = classPicker(proj.classes, keyOf, setClass);

  // Zoom and pan. The stage scrolls a picture larger than itself; zooming keeps the
  // picture's point under the cursor (wheel) or at the middle of the view (keys) where
  // it was. Alt+arrows and a middle-button drag pan; Tab brings the box it selects into view.
  const setZoom = (z, clientX, clientY) => {
    z = clamp(z, -6, 10);
    if (z === zoom) return;
    const sr = stage.getBoundingClientRect();
    const cx = clientX ?? sr.left + sr.width / 2, cy = clientY ?? sr.top + sr.height / 2;
    const r = canvas.getBoundingClientRect();
    const fx = clamp((cx - r.left) / r.width, 0, 1), fy = clamp((cy - r.top) / r.height, 0, 1);
    zoom = z; sessionStorage.setItem('zoom', zoom); draw();
    const r2 = canvas.getBoundingClientRect();
    stage.scrollLeft += r2.left + fx * r2.width - cx; stage.scrollTop += r2.top + fy * r2.height - cy;
  };
  const pan = (dx, dy) => stage.scrollBy(dx * stage.clientWidth * 0.25, dy * stage.clientHeight * 0.25);
  const reveal = (i) => {
    const l = labels[i];
    if (!l || !l.box) return;
    const r = canvas.getBoundingClientRect(), sr = stage.getBoundingClientRect();
    const x0 = r.left + l.box.x0 * r.width, x1 = r.left + l.box.x1 * r.width, y0 = r.top + l.box.y0 * r.height, y1 = r.top + l.box.y1 * r.height;
    if (x0 < sr.left || x1 > sr.right) stage.scrollLeft += (x0 + x1) / 2 - (sr.left + sr.width / 2);
    if (y0 < sr.top || y1 > sr.bottom) stage.scrollTop += (y0 + y1) / 2 - (sr.top + sr.height / 2);
  };
  stage.addEventListener('wheel', (e) => {
    if (e.shiftKey || !e.deltaY) return; // Shift+wheel scrolls sideways, as everywhere
    e.preventDefault();
    setZoom(zoom + (e.deltaY < 0 ? 1 : -1), e.clientX, e.clientY);
  }, { passive: false });
  let panning = null;
  stage.addEventListener('mousedown', (e) => {
    if (e.button !== 1) return;
    e.preventDefault();
    panning = { x: e.clientX, y: e.clientY, left: stage.scrollLeft, top: stage.scrollTop };
  });
  const panMove = (e) => { if (panning) { stage.scrollLeft = panning.left - (e.clientX - panning.x); stage.scrollTop = panning.top - (e.clientY - panning.y); } };
  const panEnd = () => { panning = null; };
  window.addEventListener('mousemove', panMove);
  window.addEventListener('mouseup', panEnd);
  state.cleanups.push(() => { window.removeEventListener('mousemove', panMove); window.removeEventListener('mouseup', panEnd); });

  // Mouse: draw new boxes, select, move, resize by the corners.
  let drag = null;
  const pos = (e) => { const r = canvas.getBoundingClientRect(); return { x: clamp((e.clientX - r.left) / r.width, 0, 1), y: clamp((e.clientY - r.top) / r.height, 0, 1) }; };
  const near = (a, b) => Math.abs(a - b) < 8 / canvas.getBoundingClientRect().width + 0.015;
  if (detect) {
    canvas.addEventListener('mousedown', (e) => {
      if (e.button !== 0) return; // the middle button pans
      const q = pos(e);
      const sel = labels[selected];
      if (sel) {
        const b = sel.box;
        for (const [cx, cy] of [['x0', 'y0'], ['x1', 'y0'], ['x0', 'y1'], ['x1', 'y1']]) {
          if (near(q.x, b[cx]) && near(q.y, b[cy])) { drag = { mode: 'resize', cx, cy }; return; }
        }
      }
      const hit = labels.findIndex((l) => q.x >= l.box.x0 && q.x <= l.box.x1 && q.y >= l.box.y0 && q.y <= l.box.y1);
      if (hit >= 0) { selected = hit; drawClass = labels[hit].class; drag = { mode: 'move', from: q, orig: { ...labels[hit].box } }; render(); return; }
      labels.push({ class: drawClass, box: { x0: q.x, y0: q.y, x1: q.x, y1: q.y } });
      selected = labels.length - 1;
      drag = { mode: 'new', from: q };
    });
    const move = (e) => {
      if (!drag || selected < 0) return;
      const q = pos(e), b = labels[selected].box;
      if (drag.mode === 'new') { b.x0 = Math.min(drag.from.x, q.x); b.x1 = Math.max(drag.from.x, q.x); b.y0 = Math.min(drag.from.y, q.y); b.y1 = Math.max(drag.from.y, q.y); }
      if (drag.mode === 'move') {
        const dx = clamp(q.x - drag.from.x, -drag.orig.x0, 1 - drag.orig.x1), dy = clamp(q.y - drag.from.y, -drag.orig.y0, 1 - drag.orig.y1);
        Object.assign(b, { x0: drag.orig.x0 + dx, x1: drag.orig.x1 + dx, y0: drag.orig.y0 + dy, y1: drag.orig.y1 + dy });
      }
      if (drag.mode === 'resize') { b[drag.cx] = q.x; b[drag.cy] = q.y; }
      draw();
    };
    const up = () => {
      if (!drag) return;
      const b = labels[selected] && labels[selected].box;
      if (b) { [b.x0, b.x1] = [Math.min(b.x0, b.x1), Math.max(b.x0, b.x1)]; [b.y0, b.y1] = [Math.min(b.y0, b.y1), Math.max(b.y0, b.y1)]; }
      if (b && (b.x1 - b.x0 < 0.01 || b.y1 - b.y0 < 0.01)) { labels.splice(selected, 1); selected = labels.length - 1; }
      drag = null; mark(); render();
    };
    window.addEventListener('mousemove', move);
    window.addEventListener('mouseup', up);
    state.cleanups.push(() => { window.removeEventListener('mousemove', move); window.removeEventListener('mouseup', up); });
  }

  // Buttons act on click but never take the focus from the page on a mouse click, so
  // the page's keys keep working; a button reached by Tab takes Enter and Space.
  const btn = (attrs, ...kids) => h('button', { onmousedown: (e) => e.preventDefault(), ...attrs }, ...kids);
  const renderProgress = () => {
    const done = groups.filter((_, gi) => statusOf(gi)).length;
    progress.replaceChildren(h('strong', {}, batch.id), h('span', { class: 'muted', id: 'done-count' }, `${done} / ${groups.length} done`),
      h('div', { class: 'bar', style: 'flex:1' }, h('div', { style: `width:${(100 * done) / groups.length}%` })),
      h('span', { class: 'muted', id: 'saving' }, unsaved ? `saving ${unsaved}…` : 'all saved'));
  };
  const render = () => {
    draw();
    renderProgress();
    const g = groups[index], item = items.get(g.id), ex = g.ex, st = statusOf(index);
    const top = ex.predictions.slice().sort((a, b) => b.confidence - a.confidence);
    const feedback = g.ids.map((e) => items.get(e).feedback).find(Boolean);
    const allDone = nextTodo(index) < 0 && st;
    side.replaceChildren(
      h('div', { class: 'status', id: 'item-status' }, `example ${index + 1} of ${groups.length} · `,
        h('strong', {}, st === 'done' ? 'saved' : st === 'skipped' ? 'skipped' : 'to do'), dirty.has(index) ? ' · changed, saved when you leave' : '',
        g.ids.length > 1 ? h('span', { class: 'muted' }, ` · one picture, sampled ${g.ids.length} times`) : ''),
      feedback ? h('div', { class: 'comments', id: 'feedback' }, h('strong', {}, `${feedback.by}: `), feedback.comment) : '',
      h('div', { class: 'classes', title: 'a class\'s key sets it; / finds any class by name' }, proj.classes.map((c) => btn({ class: (detect ? drawClass : labels[0] && labels[0].class) === c ? 'chosen' : '', 'data-class': c, title: c, onclick: () => setClass(c) },
        h('span', {}, c), keyOf[c] ? h('kbd', {}, keyOf[c]) : ''))),
      detect ? h('ul', { class: 'boxes', id: 'boxes' }, labels.map((l, i) => h('li', { class: i === selected ? 'selected' : '' },
        h('span', { onclick: () => { selected = i; drawClass = l.class; render(); }, style: 'cursor:pointer' }, `#${i + 1} ${l.class}`),
        btn({ 'data-delete': i, onclick: () => deleteBox(i), title: 'delete box' }, '✕')))) : '',
      h('div', { class: 'nav' },
        btn({ onclick: () => leave(Math.max(0, index - 1)), disabled: index === 0 }, '← Prev'),
        btn({ class: 'primary', id: 'save-next', onclick: () => next('done') }, 'Save & next ', h('kbd', {}, 'Enter')),
        btn({ onclick: () => next('skipped'), title: 'unusable image', id: 'skip' }, 'Skip ', h('kbd', {}, 'S')),
        btn({ onclick: () => leave(Math.min(groups.length - 1, index + 1)), disabled: index === groups.length - 1 }, 'Next →')),
      h('div', { class: 'nav' }, btn({ class: 'ok' + (allDone ? ' ready' : ''), id: 'submit', disabled: submitting, onclick: submit },
        submitting ? 'Submitting…' : 'Submit batch for review ', submitting ? '' : h('kbd', {}, 'Ctrl+Enter'))),
      h('div', { class: 'keys' }, 'Keys: class ', h('kbd', {}, proj.classes.length <= 10 ? Object.keys(keys).join(' ') : '1–9 0'),
        ' · find any class ', h('kbd', {}, '/'), ' · save & next ', h('kbd', {}, 'Enter'), ' · skip ', h('kbd', {}, 'S'), ' · prev/next ', h('kbd', {}, '←'), h('kbd', {}, '→'),
        ' · submit ', h('kbd', {}, 'Ctrl+Enter'), ' · zoom ', h('kbd', {}, '+'), h('kbd', {}, '-'), ' or wheel · pan ', h('kbd', {}, 'Alt+arrows'),
        detect ? [h('br'), 'boxes: new ', h('kbd', {}, 'N'), ' · next/prev box ', h('kbd', {}, 'Tab'), h('kbd', {}, 'Shift+Tab'), ' · move ', h('kbd', {}, 'Shift+arrows'),
          ' · resize ', h('kbd', {}, 'Ctrl+arrows'), ' · delete ', h('kbd', {}, 'Del'), ' · none selected ', h('kbd', {}, 'Esc'),
          ' (then a class key sets the next new box\'s class) · mouse: drag to draw, drag a box to move, a corner to resize'] : ''),
      h('h2', {}, 'Why it was sampled'), reasonList(g),
      h('h2', {}, 'Model said'),
      h('ul', { class: 'reasons' }, top.slice(0, detect ? 8 : 3).map((pr) => h('li', {}, h('strong', {}, pr.class), ' ', pct(pr.confidence), pr.box ? h('span', { class: 'muted' }, ' box') : ''))),
      h('p', { class: 'muted' }, `device ${ex.device} · model v${ex.model_version}` + (item.annotated_by ? ` · saved by ${item.annotated_by}` : '')));
    // The selected box's line in a long list of boxes stays in view.
    const li = side.querySelector('.boxes li.selected'), ul = li && li.parentElement;
    if (li && (li.offsetTop < ul.scrollTop || li.offsetTop + li.offsetHeight > ul.scrollTop + ul.clientHeight)) ul.scrollTop = li.offsetTop - ul.clientHeight / 2;
  };

  view.replaceChildren(h('h1', {}, 'Correct ', h('span', { class: 'muted' }, `${p}`)),
    batch.comments ? h('div', { class: 'comments' }, h('strong', {}, 'Reviewer: '), batch.comments) : '',
    progress, h('div', { class: 'annotate' }, stage, side, picker.el));
  await image(p, groups[index].id).catch(() => {});
  if (!current(gen)) return null;
  onKeys((e) => {
    if (picker.isOpen()) { picker.key(e); return; } // its keys, even those not typed in its box
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const mod = e.ctrlKey || e.metaKey;
    if (k === 'Enter' && mod) { e.preventDefault(); submit(); return; }
    if (detect && selected >= 0 && k.startsWith('Arrow') && (e.shiftKey || mod) && !e.altKey) {
      const [dx, dy] = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[k];
      if (mod) resizeBox(dx * boxStep, dy * boxStep); else moveBox(dx * boxStep, dy * boxStep);
      e.preventDefault(); return;
    }
    if (detect && k === 'Tab' && labels.length) {
      selected = ((selected < 0 ? (e.shiftKey ? 0 : -1) : selected) + (e.shiftKey ? -1 : 1) + labels.length) % labels.length;
      drawClass = labels[selected].class; render(); reveal(selected); e.preventDefault(); return;
    }
    if (e.altKey && !mod && !e.shiftKey && k.startsWith('Arrow')) {
      const [dx, dy] = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[k];
      pan(dx, dy); e.preventDefault(); return;
    }
    if (mod || e.altKey) return;
    if (k === '/') picker.open(detect ? drawClass : labels[0] && labels[0].class);
    else if (keys[k]) setClass(keys[k]);
    else if (k === 'Enter') next('done', e.timeStamp);
    else if (k === 's') next('skipped', e.timeStamp);
    else if (k === 'ArrowRight') leave(Math.min(groups.length - 1, index + 1), e.timeStamp);
    else if (k === 'ArrowLeft') leave(Math.max(0, index - 1), e.timeStamp);
    else if (k === '+' || k === '=') setZoom(zoom + 1);
    else if (k === '-') setZoom(zoom - 1);
    else if (detect && k === 'n') newBox();
    else if (detect && (k === 'Delete' || k === 'Backspace') && selected >= 0) deleteBox(selected);
    else if (detect && k === 'Escape') { selected = -1; render(); }
    else return;
    e.preventDefault();
  });
  // Keep the lease while the page is open.
  state.timers.push(setInterval(() => api('POST', `/projects/${seg(p)}/batches/${seg(id)}/renew`).catch((e) => toast(e.message, true)), 5 * 60 * 1000));
  // Nothing typed is lost on leaving: a changed item is saved first.
  const bye = () => { if (dirty.has(index)) save(index, 'done'); };
  window.addEventListener('pagehide', bye);
  state.cleanups.push(() => { bye(); window.removeEventListener('pagehide', bye); });
  return () => { render(); picker.focus(); prefetchAll(); };
}

// ---- review --------------------------------------------------------------------------
async function thumb(p, itemLabels, id, task) {
  const img = await image(p, id);
  const c = h('canvas');
  const s = Math.min(140 / img.width, 140 / img.height);
  c.width = Math.round(img.width * s); c.height = Math.round(img.height * s);
  const ctx = c.getContext('2d');
  ctx.imageSmoothingEnabled = s < 1;
  ctx.drawImage(img, 0, 0, c.width, c.height);
  if (task === 'detect') drawBoxes(ctx, itemLabels || [], -1, c.width, c.height);
  return c;
}

// review is one submitted batch's review page: item by item, accept or reject (with a
// comment), then approve; rejected items go back to the annotator or to the queue.
async function review(view, p, id, gen) {
  const proj = projectOf(p);
  if (!proj) throw new Error(`project ${p} does not exist`);
  const batch = await api('GET', `/projects/${seg(p)}/batches/${seg(id)}`);
  const detect = proj.task === 'detect';
  const items = new Map(batch.items.map((it) => [it.example_id, it]));
  const groups = groupByFrame(batch.items, batch.examples);
  const verdictOf = (gi) => { const r = items.get(groups[gi].id).review; return r ? r.verdict : ''; };
  let index = Math.max(0, groups.findIndex((_, gi) => !verdictOf(gi)));
  let returnTo = sessionStorage.getItem('review.returnTo') || 'annotator';
  let saving = Promise.resolve(), busy = false, pendingT0;
  const annotator = [...batch.audit].reverse().find((a) => a.action === 'submit');
  const canvas = h('canvas', { id: 'canvas' });
  const stage = h('div', { class: 'stage' }, canvas);
  const ctx = canvas.getContext('2d');
  const side = h('div', { class: 'side' });
  const progress = h('div', { class: 'nav progress' });
  const comment = h('input', { id: 'comment', placeholder: 'what is wrong (Enter rejects, Esc cancels)', style: 'width:100%' });
  const batchComment = h('input', { id: 'batch-comment', placeholder: 'what to fix in the whole batch', style: 'flex:1' });
  const grid = h('div', { class: 'grid' });
  const btn = (attrs, ...kids) => h('button', { onmousedown: (e) => e.preventDefault(), ...attrs }, ...kids);
  const cards = groups.map((g, gi) => h('div', { class: 'card', 'data-example': g.id, onclick: () => show(gi) }));

  const draw = () => {
    const g = groups[index], it = items.get(g.id);
    canvas.dataset.example = g.id;
    const img = imageNow(p, g.id);
    if (!img) { const want = index; image(p, g.id).then(() => { if (current(gen) && index === want) draw(); }, (e) => toast(e.message, true)); return; }
    const s = fitScale(stage, img, 0);
    canvas.width = Math.round(img.width * s); canvas.height = Math.round(img.height * s);
    ctx.imageSmoothingEnabled = s < 1;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (detect) drawBoxes(ctx, it.labels || [], -1, canvas.width, canvas.height);
    painted(pendingT0); pendingT0 = undefined;
  };
  const setVerdict = (gi, verdict, text) => {
    for (const eid of groups[gi].ids) {
      const it = items.get(eid);
      it.review = { verdict, comment: text, by: state.me.user };
      saving = saving.then(() => api('PUT', `/projects/${seg(p)}/batches/${seg(id)}/items/${seg(eid)}/review`, { verdict, comment: text }))
        .catch((e) => { it.review = null; toast(`example ${gi + 1}: ${e.message}`, true); if (current(gen)) render(); });
    }
  };
  const nextOpen = () => {
    for (let d = 1; d <= groups.length; d++) { const gi = (index + d) % groups.length; if (!verdictOf(gi)) return gi; }
    return -1;
  };
  const advance = (t0) => { const n = nextOpen(); if (n >= 0) show(n, t0); else { render(); toast('Every example reviewed: Ctrl+Enter approves the batch'); } };
  const accept = (t0) => { setVerdict(index, 'accepted', ''); advance(t0); };
  const reject = (t0) => {
    const text = comment.value.trim();
    if (!text) { toast('Say what is wrong: the comment goes to whoever corrects it', true); comment.focus(); return; }
    setVerdict(index, 'rejected', text); comment.value = ''; comment.blur(); advance(t0);
  };
  const show = (gi, t0) => { index = gi; pendingT0 = t0; render(); for (const d of [1, 2]) { const g = groups[gi + d]; if (g) image(p, g.id).catch(() => {}); } };
  const act = async (what) => {
    if (busy) return;
    busy = true; render();
    await saving;
    try {
      const body = what === 'reject' ? { comments: batchComment.value } : { return_to: returnTo };
      const out = await api('POST', `/projects/${seg(p)}/batches/${seg(id)}/${what}`, body);
      toast(what === 'reject' ? 'Sent back to the annotator'
        : out.returned_to ? `Approved; the rejected examples went to ${returnTo === 'queue' ? 'the queue' : 'the annotator'} as ${out.returned_to}` : 'Approved: the examples joined the dataset');
      if (current(gen)) location.hash = '#/review';
    } catch (e) { toast(e.message, true); busy = false; if (current(gen)) render(); }
  };
  const toggleReturn = () => { returnTo = returnTo === 'annotator' ? 'queue' : 'annotator'; sessionStorage.setItem('review.returnTo', returnTo); render(); };
  comment.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.ctrlKey && !e.metaKey) { e.preventDefault(); reject(e.timeStamp); }
    else if (e.key === 'Escape') { e.preventDefault(); comment.blur(); }
  });

  const render = () => {
    draw();
    const g = groups[index], it = items.get(g.id), ex = g.ex, v = verdictOf(index);
    const counts = { accepted: 0, rejected: 0 };
    groups.forEach((_, gi) => { const x = verdictOf(gi); if (x) counts[x]++; });
    const open = groups.length - counts.accepted - counts.rejected;
    progress.replaceChildren(h('strong', {}, batch.id), h('span', { class: 'muted', id: 'review-count' },
      `${counts.accepted} accepted · ${counts.rejected} rejected · ${open} to review (approving accepts them)`));
    const said = (ex.predictions.slice().sort((a, b) => b.confidence - a.confidence)[0] || {});
    const now = it.status === 'skipped' ? 'skipped (unusable)' : (it.labels || []).map((l) => l.class).join(', ') || '—';
    side.replaceChildren(
      h('div', { class: 'status', id: 'item-status' }, `example ${index + 1} of ${groups.length} · `,
        h('strong', { class: 'verdict-' + (v || 'open') }, v || 'not reviewed'), g.ids.length > 1 ? h('span', { class: 'muted' }, ` · one picture, sampled ${g.ids.length} times`) : ''),
      h('div', { class: 'label-now' }, h('span', { class: 'muted' }, `${annotator ? annotator.user : 'annotator'} says `), h('strong', { id: 'label-now' }, now)),
      h('div', { class: 'muted' }, 'model said ', said.class || '—', said.confidence !== undefined ? ` (${pct(said.confidence)})` : '',
        !detect && said.class && it.status === 'done' && said.class !== now ? h('strong', { class: 'changed-note' }, ' · changed') : ''),
      v === 'rejected' ? h('div', { class: 'comments' }, 'rejected: ', it.review.comment) : '',
      h('div', { class: 'nav' },
        btn({ class: 'ok', id: 'accept', onclick: () => accept() }, 'Accept ', h('kbd', {}, 'A')),
        btn({ class: 'bad', id: 'reject', onclick: () => (comment.value.trim() ? reject() : comment.focus()) }, 'Reject ', h('kbd', {}, 'R')),
        btn({ onclick: () => show(Math.max(0, index - 1)), disabled: index === 0 }, '←'),
        btn({ onclick: () => show(Math.min(groups.length - 1, index + 1)), disabled: index === groups.length - 1 }, '→')),
      comment,
      h('h2', {}, 'Decision'),
      h('div', { class: 'nav' }, h('span', {}, 'Rejected examples go to '),
        btn({ id: 'return-to', onclick: toggleReturn, 'data-value': returnTo }, returnTo === 'queue' ? 'the queue (anyone)' : `the annotator${annotator ? ' (' + annotator.user + ')' : ''}`, ' ', h('kbd', {}, 'T'))),
      h('div', { class: 'nav' }, btn({ class: 'ok', id: 'approve', onclick: () => act('approve'), disabled: busy || !can('reviewer') },
        counts.rejected ? `Approve ${groups.length - counts.rejected}, return ${counts.rejected} ` : 'Approve batch ', h('kbd', {}, 'Ctrl+Enter'))),
      h('div', { class: 'nav' }, batchComment, btn({ class: 'bad', id: 'reject-batch', onclick: () => act('reject'), disabled: busy || !can('reviewer') }, 'Send whole batch back')),
      h('div', { class: 'keys' }, 'Keys: accept & next ', h('kbd', {}, 'A'), h('kbd', {}, 'Enter'), ' · reject ', h('kbd', {}, 'R'), ' then the comment and ', h('kbd', {}, 'Enter'),
        ' · prev/next ', h('kbd', {}, '←'), h('kbd', {}, '→'), ' · rejected go to annotator/queue ', h('kbd', {}, 'T'), ' · approve ', h('kbd', {}, 'Ctrl+Enter')),
      h('h2', {}, 'Why it was sampled'), reasonList(g));
    cards.forEach((c, gi) => { c.className = 'card verdict-' + (verdictOf(gi) || 'open') + (gi === index ? ' current' : ''); });
  };

  await Promise.all(groups.map(async (g, gi) => {
    const it = items.get(g.id), said = (g.ex.predictions.slice().sort((a, b) => b.confidence - a.confidence)[0] || {}).class;
    const now = it.labels && it.labels.map((l) => l.class).join(', ');
    cards[gi].replaceChildren(await thumb(p, it.labels, g.id, proj.task),
      h('div', {}, it.status === 'skipped' ? h('em', {}, 'skipped') : h('strong', {}, now || '—')),
      h('div', { class: 'muted' }, 'model: ', said || '—'));
  }));
  grid.replaceChildren(...cards);
  view.replaceChildren(h('h1', {}, 'Review ', batch.id, h('span', { class: 'muted' }, ` · ${groups.length} pictures` + (groups.length !== batch.items.length ? ` (${batch.items.length} examples)` : '') + ` by ${annotator ? annotator.user : '?'}`)),
    progress, h('div', { class: 'annotate' }, stage, side), h('h2', {}, 'All examples'), grid);
  if (!current(gen)) return null;
  onKeys((e) => {
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (k === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); act('approve'); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (k === 'a' || k === 'Enter') accept(e.timeStamp);
    else if (k === 'r') comment.focus();
    else if (k === 't') toggleReturn();
    else if (k === 'ArrowRight') show(Math.min(groups.length - 1, index + 1), e.timeStamp);
    else if (k === 'ArrowLeft') show(Math.max(0, index - 1), e.timeStamp);
    else return;
    e.preventDefault();
  });
  return () => render();
}

// ---- dataset -------------------------------------------------------------------------
async function download(path, name) {
  const res = await fetch('/api/v1' + path, { headers: { Authorization: 'Bearer ' + state.token } });
  if (!res.ok) { toast((await res.json()).error, true); return; }
  const a = h('a', { href: URL.createObjectURL(await res.blob()), download: name });
  document.body.append(a); a.click(); a.remove();
}

async function dataset(view) {
  const p = state.project;
  const d = await api('GET', `/projects/${seg(p)}/dataset`);
  const fmts = [['coco', 'COCO JSON'], ['yolo', 'YOLO'], ['voc', 'Pascal VOC'], ['labelstudio', 'Label Studio']];
  view.replaceChildren(h('h1', {}, 'Dataset ', h('span', { class: 'muted' }, `· ${p} · snapshot ${d.snapshot} · ${d.batches} batches`)),
    h('div', { class: 'cards' },
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'examples'), h('div', { class: 'big' }, d.total),
        h('p', {}, Object.entries(d.by_split).map(([k, v]) => h('span', { class: 'pill' }, `${k} ${v}`)))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'labels per class'),
        h('p', {}, Object.entries(d.by_class).sort().map(([k, v]) => h('span', { class: 'pill' }, `${k}: ${v}`))))),
    h('h2', {}, 'Export'),
    h('table', {}, h('tbody', {}, fmts.map(([f, name]) => h('tr', {}, h('td', {}, name),
      ['', 'train', 'val', 'test'].map((s) => h('td', {}, h('button', { onclick: () => download(`/projects/${seg(p)}/dataset/export?format=${f}${s ? '&split=' + s : ''}`, `${p}-${f}${s ? '-' + s : ''}.zip`) }, s || 'all'))))))));
}

// ---- dashboard (filled by the retrain service's endpoints when present) -------------
async function dashboard(view, gen, shown) {
  const p = state.project;
  let dash = null;
  try { dash = await api('GET', `/projects/${seg(p)}/dashboard`); } catch (e) { dash = null; }
  if (!dash) { view.replaceChildren(h('p', { class: 'muted' }, 'No dashboard data yet.')); return; }
  renderDashboard(view, p, dash);
  if (!current(gen)) return;
  // Live: refresh in place every 3 s while the page is shown.
  state.timers.push(setInterval(async () => {
    try { const d = await api('GET', `/projects/${seg(p)}/dashboard`); if (current(gen)) renderDashboard(shown, p, d); } catch {}
  }, 3000));
}

function line(series, { yMin = 0, yMax = 1, xs }) {
  const W = 420, H = 190, L = 34, B = 18;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`); svg.classList.add('chart');
  const allX = series.flatMap((s) => s.points.map((p) => p[0]));
  const x0 = Math.min(...allX, 0), x1 = Math.max(...allX, 1);
  const X = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - 6), Y = (y) => H - B - ((y - yMin) / (yMax - yMin || 1)) * (H - B - 6);
  let out = '';
  for (let i = 0; i <= 4; i++) { const y = yMin + ((yMax - yMin) * i) / 4; out += `<line x1="${L}" x2="${W}" y1="${Y(y)}" y2="${Y(y)}" stroke="#e5e7eb"/><text x="2" y="${Y(y) + 3}">${y.toFixed(2)}</text>`; }
  (xs || []).forEach((x) => { out += `<text x="${X(x) - 6}" y="${H - 4}">${x}</text>`; });
  series.forEach((s) => {
    if (!s.points.length) return;
    out += `<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dashed ? 'stroke-dasharray="4 3"' : ''} points="${s.points.map((p) => X(p[0]) + ',' + Y(p[1])).join(' ')}"/>`;
    s.points.forEach((p) => { out += `<circle cx="${X(p[0])}" cy="${Y(p[1])}" r="2.5" fill="${s.color}"/>`; });
  });
  svg.innerHTML = out;
  return svg;
}

const palette = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000'];

// gateEvidence shows why the gate decided as it did: its reasons in words, the paired
// counts and interval, and the classes that moved.
function gateEvidence(t) {
  const e = t.evidence;
  const pts = (x) => (x >= 0 ? '+' : '') + (100 * x).toFixed(1);
  const parts = [h('ul', { class: 'reasons gate-reasons' }, (t.reasons || []).map((r) => h('li', {}, r)))];
  if (!e) return h('div', {}, parts);
  parts.push(h('div', { class: 'muted' }, `${e.method} on ${e.n} paired test ${e.method === 'paired bootstrap' ? 'images' : 'examples'}`,
    e.method === 'paired bootstrap' ? '' : ` · ${e.gained || 0} gained, ${e.lost || 0} lost`,
    ` · difference ${pts(e.difference)} points, ${Math.round(100 * e.confidence)} % bounds [${pts(e.lower)}, ${pts(e.upper)}] · p ${e.p < 0.001 ? '< 0.001' : e.p.toFixed(3)}`));
  const moved = (e.classes || []).filter((c) => c.gained || c.lost || c.regressed);
  if (moved.length) {
    parts.push(h('details', {}, h('summary', { class: 'muted' }, `per class (${e.per_class_policy}): ${moved.length} moved, ${moved.filter((c) => c.regressed).length} regressed`),
      h('table', { class: 'gate-classes' }, h('thead', {}, h('tr', {}, ['class', 'test', 'gained', 'lost', 'before → after', 'p'].map((x) => h('th', {}, x)))),
        h('tbody', {}, moved.map((c) => h('tr', { class: c.regressed ? 'regressed' : '' }, h('td', {}, c.class), h('td', {}, c.n), h('td', {}, c.gained), h('td', {}, c.lost),
          h('td', {}, `${c.current.toFixed(3)} → ${c.candidate.toFixed(3)}`), h('td', {}, c.p.toFixed(3))))))));
  }
  return h('div', {}, parts);
}

// trainingLine says what the project's retraining does now: a training under way (or
// stalled: its trainer stopped without finishing), one failing (how many times in a
// row, the next try and the last error), or approvals counted towards the next.
function trainingLine(tr) {
  if (!tr) return false;
  const at = (s) => new Date(s).toLocaleString();
  const run = tr.running;
  if (run && new Date(run.until) < new Date()) {
    return h('p', { id: 'training', class: 'training-failing' }, h('span', { class: 'pill' }, 'training stalled'),
      ` ${run.owner} stopped without finishing ${run.trigger} (lease ran out ${at(run.until)}); a trainer that starts resumes it`);
  }
  if (run) {
    return h('p', { id: 'training' }, h('span', { class: 'pill' }, 'training now'),
      ` ${run.trigger}${run.mode ? ' (' + run.mode + ')' : ''} since ${at(run.started)}`);
  }
  if (tr.failures) {
    return h('p', { id: 'training', class: 'training-failing' }, h('span', { class: 'pill' }, `training failing: ${tr.failures} in a row`),
      ` next try at ${at(tr.retry_at)}${tr.last && tr.last.error ? ' · last error: ' + tr.last.error : ''}`);
  }
  if (tr.manual) return h('p', { id: 'training' }, h('span', { class: 'pill' }, 'training asked for'), ' by an admin');
  if (tr.due) return h('p', { id: 'training' }, h('span', { class: 'pill' }, 'approvals waiting'), ` ${tr.new_examples} new examples towards the next training (the project's retrain policy says when)`);
  return false;
}

function renderDashboard(view, p, d) {
  const acc = (d.edge_accuracy || []).map((a) => h('tr', {}, h('td', {}, 'v' + a.version), h('td', {}, a.frames), h('td', {}, h('strong', {}, pct(a.accuracy)))));
  const trainings = (d.trainings || []).slice(-6).reverse();
  view.replaceChildren(h('h1', {}, 'Dashboard ', h('span', { class: 'muted' }, `· ${p} · release v${d.release || '—'}`)),
    trainingLine(d.training),
    h('div', { class: 'cards' },
      h('div', { class: 'panel', id: 'edge-accuracy' }, h('div', { class: 'muted' }, 'accuracy at the edge, per model version'),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'model'), h('th', {}, 'frames'), h('th', {}, 'accuracy'))), h('tbody', {}, acc))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'accuracy at the edge over time'),
        line((d.edge_series || []).map((s, i) => ({ color: palette[i % palette.length], points: s.points })), { yMin: 0, yMax: 1 }),
        h('div', {}, (d.edge_series || []).map((s, i) => h('span', { class: 'pill', style: `color:${palette[i % palette.length]}` }, s.name)))),
      h('div', { class: 'panel', id: 'label-curve' }, h('div', { class: 'muted' }, 'labels spent → accuracy at the edge, per released model'),
        line([{ color: palette[2], points: (d.label_curve || []).map((p) => [p.labels, p.accuracy]) }],
          { yMin: 0, yMax: 1, xs: (d.label_curve || []).map((p) => p.labels) }),
        h('div', { class: 'muted' }, (d.label_curve || []).map((p) => `v${p.version}: ${p.labels} labels, ${pct(p.accuracy)}`).join(' · '))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'examples by why they were sampled'),
        h('p', {}, Object.entries(d.examples_by_reason || {}).map(([k, v]) => h('span', { class: 'pill', title: k }, `${reasonName(k)} ${v}`)))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'batches by state'),
        h('p', {}, Object.entries(d.batches_by_state || {}).map(([k, v]) => h('span', { class: 'pill state-' + k }, `${k.replace('_', ' ')} ${v}`))),
        h('p', { class: 'muted', id: 'candidates' }, `candidates waiting for a batch ${(d.candidates || {}).waiting || 0} · expired unpicked ${(d.candidates || {}).expired || 0}`))),
    h('h2', {}, 'Trainings'),
    h('div', { class: 'cards' }, trainings.map((t) => h('div', { class: 'panel' },
      h('div', {}, h('strong', {}, `v${t.version}`), ` from v${t.parent || 0}${t.site ? ' for site ' + t.site : ''} · `, h('span', { class: 'pill verdict-' + t.verdict }, t.verdict === 'first' ? 'first model, published' : t.verdict),
        h('span', { class: 'muted', 'data-gate': t.version }, !t.test_examples ? ' no test split yet'
          : t.parent ? ` ${t.metric} ${t.candidate.toFixed(3)} vs ${t.current.toFixed(3)} on ${t.test_examples} test` : ` ${t.metric} ${t.candidate.toFixed(3)} on ${t.test_examples} test`)),
      line([{ color: palette[0], points: t.loss.map((v, i) => [i + 1, v]) }, { color: palette[1], points: t.val_loss.map((v, i) => [i + 1, v]) }],
        { yMin: 0, yMax: Math.max(0.1, ...t.loss, ...t.val_loss), xs: t.loss.map((_, i) => i + 1) }),
      h('div', { class: 'muted' }, h('span', { style: 'color:' + palette[0] }, 'loss'), ' · ', h('span', { style: 'color:' + palette[1] }, 'val loss')),
      gateEvidence(t)))),
    h('h2', {}, 'Releases'),
    h('table', {}, h('tbody', {}, (d.releases || []).slice().reverse().map((r) => h('tr', {}, h('td', {}, 'v' + r.version), h('td', {}, r.site ? 'site ' + r.site : 'project'), h('td', {}, r.reason), h('td', {}, new Date(r.at).toLocaleString()), h('td', {}, r.metric || ''))))),
    (d.sites || []).length ? h('h2', {}, 'Site releases') : false,
    (d.sites || []).length ? h('table', {}, h('tbody', {}, d.sites.map((s) => h('tr', {}, h('td', {}, s.site), h('td', {}, 'v' + s.version), h('td', {}, s.status), h('td', {}, 'adapted from v' + s.base_version))))) : false);
}

window.addEventListener('hashchange', route);
state.token = readToken();
route();
