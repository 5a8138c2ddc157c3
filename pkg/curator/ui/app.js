// edgeloop annotation UI: plain ES modules, no build step, no CDN. Views are routed by
// the URL hash: #/ (queue), #/annotate/P/B[/i], #/review[/P/B], #/dataset, #/dashboard.
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
const state = { token: null, me: null, project: null, projects: [], imgCache: new Map(), keyHandler: null, timers: [], gen: 0 };
// current says whether a view started in generation gen is still the one on screen: a
// slow page must not paint over, or listen for, the page that replaced it.
const current = (gen) => gen === state.gen;

function readToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem('edgeloop.token', decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + '#/');
  }
  return localStorage.getItem('edgeloop.token');
}

// seg encodes a value (a project, batch or example id) as one URL path segment.
const seg = encodeURIComponent;
// unseg decodes a path segment of the hash (a malformed one stays as it is).
const unseg = (s) => { try { return decodeURIComponent(s); } catch { return s; } };

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

async function image(project, id) {
  const key = project + '/' + id;
  if (!state.imgCache.has(key)) {
    state.imgCache.set(key, (async () => {
      const res = await fetch(`/api/v1/projects/${seg(project)}/examples/${seg(id)}/image`, { headers: { Authorization: 'Bearer ' + state.token } });
      if (!res.ok) throw new Error('image ' + id + ': ' + res.status);
      const img = new Image();
      img.src = URL.createObjectURL(await res.blob());
      await img.decode();
      return img;
    })());
  }
  return state.imgCache.get(key);
}

function toast(msg, error = false) {
  const t = $('#toast');
  t.textContent = msg;
  t.className = 'show' + (error ? ' error' : '');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = ''), error ? 6000 : 2500);
}

const can = (role) => state.me && (state.me.roles.includes(role) || state.me.roles.includes('admin'));
const pct = (x) => (100 * x).toFixed(0) + '%';

// ---- routing -------------------------------------------------------------------------
function cleanup() {
  if (state.keyHandler) { document.removeEventListener('keydown', state.keyHandler); state.keyHandler = null; }
  state.timers.forEach(clearInterval); state.timers = [];
}

async function route() {
  cleanup();
  const gen = ++state.gen;
  const shown = $('#view');
  if (!state.token) return login(shown);
  // Each page renders into its own element, shown only if no newer route started.
  const view = h('div');
  const show = () => { if (current(gen)) shown.replaceChildren(...view.childNodes); };
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(unseg);
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.nav === (parts[0] || 'queue')));
  try {
    // One session load shared by the routes that start while it runs.
    if (!state.session) state.session = loadSession().catch((e) => { state.session = null; throw e; });
    await state.session;
    switch (parts[0] || 'queue') {
      case 'queue': await queue(view); break;
      case 'annotate': await annotate(view, parts[1], parts[2], Number(parts[3] || 0), gen); break;
      case 'review': await (parts[2] ? review(view, parts[1], parts[2]) : queue(view, 'submitted')); break;
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
  sel.onchange = () => { state.project = sel.value; localStorage.setItem('edgeloop.project', sel.value); route(); };
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

// ---- queue ---------------------------------------------------------------------------
async function queue(view, fixedState) {
  const p = state.project;
  if (!p) { view.replaceChildren(h('p', {}, 'No project yet.')); return; }
  const proj = projectOf(p);
  const f = { state: fixedState || sessionStorage.getItem('q.state') || '', reason: sessionStorage.getItem('q.reason') || '',
    class: sessionStorage.getItem('q.class') || '', min: sessionStorage.getItem('q.min') || '', max: sessionStorage.getItem('q.max') || '' };
  const qs = new URLSearchParams();
  if (f.state) qs.set('state', f.state);
  if (f.reason) qs.set('reason', f.reason);
  if (f.class) qs.set('class', f.class);
  if (f.min) qs.set('min_confidence', f.min);
  if (f.max) qs.set('max_confidence', f.max);
  const batches = await api('GET', `/projects/${seg(p)}/batches?` + qs);
  const field = (label, input) => h('label', {}, label, input);
  const states = ['', 'open', 'ready', 'in_progress', 'submitted', 'approved'];
  const reasons = ['', 'operator_flagged', 'close_to_threshold', 'low_confidence', 'detection_count', 'class_quota', 'random'];
  const sel = (name, opts, val) => {
    const s = h('select', { 'data-filter': name }, ...opts.map((o) => h('option', { value: o, selected: o === val }, o || 'any')));
    s.onchange = () => { sessionStorage.setItem('q.' + name, s.value); route(); };
    return s;
  };
  const num = (name, val) => {
    const i = h('input', { type: 'number', min: 0, max: 1, step: 0.05, value: val, style: 'width:80px', 'data-filter': name });
    i.onchange = () => { sessionStorage.setItem('q.' + name, i.value); route(); };
    return i;
  };
  const rows = batches.map((b) => {
    const mine = b.claim && b.claim.user === state.me.user;
    let action = '';
    if (b.state === 'ready' && can('annotator')) action = h('button', { class: 'primary', 'data-claim': b.id, onclick: () => claim(p, b.id) }, 'Claim');
    else if (b.state === 'in_progress' && mine) action = h('a', { class: 'button primary', href: `#/annotate/${seg(p)}/${seg(b.id)}` }, 'Continue');
    else if (b.state === 'in_progress' && can('annotator') && new Date(b.claim.expires) < new Date()) action = h('button', { onclick: () => claim(p, b.id) }, 'Take over (lease expired)');
    else if (b.state === 'submitted' && can('reviewer')) action = h('a', { class: 'button primary', href: `#/review/${seg(p)}/${seg(b.id)}`, 'data-review': b.id }, 'Review');
    return h('tr', { 'data-batch': b.id },
      h('td', {}, h('strong', {}, b.id)),
      h('td', {}, h('span', { class: 'pill state-' + b.state }, b.state.replace('_', ' ')), b.claim ? h('span', { class: 'muted' }, ' ' + b.claim.user) : ''),
      b.state === 'open' ? h('td', {}, `${b.examples} waiting`) :
        h('td', {}, b.done + ' / ' + b.examples, h('div', { class: 'bar' }, h('div', { style: `width:${b.examples ? (100 * b.done) / b.examples : 0}%` }))),
      h('td', {}, pct(b.mean_confidence), h('span', { class: 'muted' }, ' (min ' + pct(b.min_confidence) + ')')),
      h('td', {}, Object.entries(b.reasons).map(([k, v]) => h('span', { class: 'pill' }, `${k.replaceAll('_', ' ')} ${v}`))),
      h('td', {}, Object.entries(b.classes).sort().map(([k, v]) => h('span', { class: 'pill' }, `${k}:${v}`))),
      h('td', {}, b.comments ? h('span', { title: b.comments }, '💬 ') : '', action));
  });
  view.replaceChildren(
    h('h1', {}, fixedState === 'submitted' ? 'Batches to review' : 'Correction queue', h('span', { class: 'muted' }, ` · ${p} (${proj.task}, batches of ${proj.batch.min}–${proj.batch.max})`)),
    fixedState ? '' : h('div', { class: 'filters' },
      field('state', sel('state', states, f.state)), field('reason', sel('reason', reasons, f.reason)),
      field('predicted class', sel('class', [''].concat(proj.classes), f.class)),
      field('mean confidence ≥', num('min', f.min)), field('≤', num('max', f.max))),
    batches.length ? h('table', {}, h('thead', {}, h('tr', {}, ...['batch', 'state', 'progress', 'confidence', 'why sampled', 'predicted classes', ''].map((t) => h('th', {}, t)))), h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No batch matches.'));
}

async function claim(p, id) {
  try {
    await api('POST', `/projects/${seg(p)}/batches/${seg(id)}/claim`);
    location.hash = `#/annotate/${seg(p)}/${seg(id)}`;
  } catch (e) { toast(e.message, true); }
}

// ---- annotate ------------------------------------------------------------------------
function keymap(classes) {
  const single = classes.every((c) => c.length === 1) && new Set(classes.map((c) => c.toLowerCase())).size === classes.length;
  const keys = {};
  classes.forEach((c, i) => { const k = single ? c.toLowerCase() : (i < 9 ? String(i + 1) : i === 9 ? '0' : null); if (k) keys[k] = c; });
  return keys;
}

function initialLabels(item, ex, task) {
  if (item.labels && item.status === 'done') return structuredClone(item.labels);
  if (ex.correction && ex.correction.length) return structuredClone(ex.correction);
  if (task === 'classify') { const top = ex.predictions[0]; return top ? [{ class: top.class }] : []; }
  return ex.predictions.filter((p) => p.box && p.confidence >= 0.25).map((p) => ({ class: p.class, box: { ...p.box } }));
}

async function annotate(view, p, id, index, gen) {
  const proj = projectOf(p);
  let batch = await api('GET', `/projects/${seg(p)}/batches/${seg(id)}`);
  const items = batch.items;
  index = Math.max(0, Math.min(items.length - 1, index || 0));
  const item = items[index];
  const ex = batch.examples[item.example_id];
  const keys = keymap(proj.classes);
  const keyOf = Object.fromEntries(Object.entries(keys).map(([k, c]) => [c, k]));
  let labels = initialLabels(item, ex, proj.task);
  let selected = labels.length ? 0 : -1;
  let drawClass = labels[0] ? labels[0].class : proj.classes[0];
  let zoom = Number(sessionStorage.getItem('zoom') || 0);
  const img = await image(p, item.example_id);
  const detect = proj.task === 'detect';
  const canvas = h('canvas', { id: 'canvas', tabindex: 0 });
  const ctx = canvas.getContext('2d');
  const fit = () => Math.max(1, Math.floor(Math.min(560 / img.width, 560 / img.height)));
  const scale = () => Math.max(0.5, fit() * Math.pow(1.25, zoom));
  const done = items.filter((it) => it.status).length;

  const draw = () => {
    const s = scale();
    canvas.width = img.width * s; canvas.height = img.height * s;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    if (!detect) return;
    labels.forEach((l, i) => {
      const b = l.box, x = b.x0 * canvas.width, y = b.y0 * canvas.height, w = (b.x1 - b.x0) * canvas.width, hh = (b.y1 - b.y0) * canvas.height;
      ctx.lineWidth = i === selected ? 3 : 2;
      ctx.strokeStyle = i === selected ? '#f59e0b' : '#22c55e';
      ctx.strokeRect(x, y, w, hh);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = 'bold 13px system-ui';
      ctx.fillRect(x, y - 16, ctx.measureText(l.class).width + 8, 16);
      ctx.fillStyle = '#000'; ctx.fillText(l.class, x + 4, y - 4);
      if (i === selected) for (const [hx, hy] of [[x, y], [x + w, y], [x, y + hh], [x + w, y + hh]]) { ctx.fillStyle = '#f59e0b'; ctx.fillRect(hx - 4, hy - 4, 8, 8); }
    });
  };

  // Mouse: draw new boxes, select, move, resize by the corners.
  let drag = null;
  const pos = (e) => { const r = canvas.getBoundingClientRect(); return { x: Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), y: Math.min(1, Math.max(0, (e.clientY - r.top) / r.height)) }; };
  const near = (a, b) => Math.abs(a - b) < 8 / canvas.width * (canvas.width / canvas.getBoundingClientRect().width) + 0.015;
  if (detect) {
    canvas.addEventListener('mousedown', (e) => {
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
    window.addEventListener('mousemove', (e) => {
      if (!drag || selected < 0) return;
      const q = pos(e), b = labels[selected].box;
      if (drag.mode === 'new') { b.x0 = Math.min(drag.from.x, q.x); b.x1 = Math.max(drag.from.x, q.x); b.y0 = Math.min(drag.from.y, q.y); b.y1 = Math.max(drag.from.y, q.y); }
      if (drag.mode === 'move') {
        const dx = Math.min(1 - drag.orig.x1, Math.max(-drag.orig.x0, q.x - drag.from.x)), dy = Math.min(1 - drag.orig.y1, Math.max(-drag.orig.y0, q.y - drag.from.y));
        Object.assign(b, { x0: drag.orig.x0 + dx, x1: drag.orig.x1 + dx, y0: drag.orig.y0 + dy, y1: drag.orig.y1 + dy });
      }
      if (drag.mode === 'resize') { b[drag.cx] = q.x; b[drag.cy] = q.y; }
      draw();
    });
    window.addEventListener('mouseup', () => {
      if (!drag) return;
      const b = labels[selected] && labels[selected].box;
      if (b) { [b.x0, b.x1] = [Math.min(b.x0, b.x1), Math.max(b.x0, b.x1)]; [b.y0, b.y1] = [Math.min(b.y0, b.y1), Math.max(b.y0, b.y1)]; }
      if (b && (b.x1 - b.x0 < 0.01 || b.y1 - b.y0 < 0.01)) { labels.splice(selected, 1); selected = labels.length - 1; }
      drag = null; render();
    }, { once: false });
  }

  const setClass = (c) => {
    drawClass = c;
    if (!detect) labels = [{ class: c }];
    else if (selected >= 0) labels[selected].class = c;
    render();
  };

  const save = async (status) => {
    try {
      batch = await api('PUT', `/projects/${seg(p)}/batches/${seg(id)}/items/${seg(item.example_id)}`, { labels: status === 'skipped' ? [] : labels.map((l) => ({ class: l.class, box: l.box })), status });
      return true;
    } catch (e) { toast(e.message, true); return false; }
  };
  const go = (i) => { location.hash = `#/annotate/${seg(p)}/${seg(id)}/${i}`; };
  const next = async (status = 'done') => {
    if (!(await save(status))) return;
    const todo = batch.items.findIndex((it, i) => i > index && !it.status);
    const any = batch.items.findIndex((it) => !it.status);
    if (todo >= 0) go(todo); else if (any >= 0) go(any); else route();
  };
  const submit = async () => {
    try { await api('POST', `/projects/${seg(p)}/batches/${seg(id)}/submit`); toast('Batch submitted for review'); location.hash = '#/'; }
    catch (e) { toast(e.message, true); }
  };

  const side = h('div', { class: 'side' });
  const render = () => {
    draw();
    const top = ex.predictions.slice().sort((a, b) => b.confidence - a.confidence);
    side.replaceChildren(
      h('div', { class: 'muted' }, `example ${index + 1} of ${items.length} · ${item.status ? 'saved (' + item.status + ')' : 'to do'}`),
      h('h2', {}, 'Model said'),
      h('ul', { class: 'reasons' }, top.slice(0, detect ? 8 : 3).map((pr) => h('li', {}, h('strong', {}, pr.class), ' ', pct(pr.confidence), pr.box ? h('span', { class: 'muted' }, ' box') : ''))),
      h('h2', {}, 'Why it was sampled'),
      h('ul', { class: 'reasons' }, ex.reasons.map((r) => h('li', {}, h('span', { class: 'pill' }, r.kind.replaceAll('_', ' ')), ' ', h('span', { class: 'muted' }, r.detail)))),
      ex.correction && ex.correction.length ? h('p', {}, 'Operator said: ', h('strong', {}, ex.correction.map((l) => l.class).join(', '))) : '',
      h('p', { class: 'muted' }, `device ${ex.device} · model v${ex.model_version}`),
      h('h2', {}, detect ? 'Class of the selected / next box' : 'Class'),
      h('div', { class: 'classes' }, proj.classes.map((c) => h('button', { class: (detect ? drawClass : labels[0] && labels[0].class) === c ? 'chosen' : '', 'data-class': c, onclick: () => setClass(c) }, c, ' ', keyOf[c] ? h('kbd', {}, keyOf[c]) : ''))),
      detect ? h('ul', { class: 'boxes' }, labels.map((l, i) => h('li', { class: i === selected ? 'selected' : '' },
        h('span', { onclick: () => { selected = i; drawClass = l.class; render(); }, style: 'cursor:pointer' }, `#${i + 1} ${l.class}`),
        h('button', { 'data-delete': i, onclick: () => { labels.splice(i, 1); selected = Math.min(selected, labels.length - 1); render(); } }, '✕')))) : '',
      h('div', { class: 'nav' },
        h('button', { onclick: () => go(index - 1), disabled: index === 0 }, '← Prev'),
        h('button', { class: 'primary', id: 'save-next', onclick: () => next('done') }, 'Save & next ↵'),
        h('button', { onclick: () => next('skipped'), title: 'unusable image' }, 'Skip (S)')),
      h('div', { class: 'nav' }, h('button', { class: 'ok', id: 'submit', disabled: batch.items.some((it) => !it.status), onclick: submit }, 'Submit batch for review')),
      h('div', { class: 'keys' }, 'Keys: class ', h('kbd', {}, proj.classes.length <= 10 ? Object.keys(keys).join(' ') : '1–9 0'),
        ' · save & next ', h('kbd', {}, 'Enter'), ' · prev/next ', h('kbd', {}, '←'), h('kbd', {}, '→'), ' · skip ', h('kbd', {}, 'S'),
        detect ? [' · delete box ', h('kbd', {}, 'Del'), ' · next box ', h('kbd', {}, 'Tab'), ' · deselect ', h('kbd', {}, 'Esc'),
          ' (a class key then sets the class of the next box you draw) · draw: drag on the image · move: drag a box · resize: drag a corner'] : '',
        ' · zoom ', h('kbd', {}, '+'), h('kbd', {}, '−')));
  };

  const progress = h('div', { class: 'nav' }, h('strong', {}, `${batch.id}`), h('span', { class: 'muted' }, `${done} / ${items.length} annotated`),
    h('div', { class: 'bar', style: 'flex:1' }, h('div', { style: `width:${(100 * done) / items.length}%` })));
  view.replaceChildren(h('h1', {}, 'Correct ', h('span', { class: 'muted' }, `${p}`)),
    batch.comments ? h('div', { class: 'comments' }, h('strong', {}, 'Reviewer: '), batch.comments) : '',
    progress, h('div', { class: 'annotate' }, h('div', { class: 'stage' }, canvas), side));
  render();

  if (!current(gen)) return;
  state.keyHandler = (e) => {
    if (e.target.tagName === 'INPUT' || e.target.tagName === 'TEXTAREA') return;
    const k = e.key.toLowerCase();
    if (keys[k]) { setClass(keys[k]); e.preventDefault(); }
    else if (e.key === 'Enter') { next('done'); e.preventDefault(); }
    else if (k === 's') { next('skipped'); e.preventDefault(); }
    else if (e.key === 'ArrowRight') go(Math.min(items.length - 1, index + 1));
    else if (e.key === 'ArrowLeft') go(Math.max(0, index - 1));
    else if (e.key === '+' || e.key === '=') { zoom++; sessionStorage.setItem('zoom', zoom); render(); }
    else if (e.key === '-') { zoom--; sessionStorage.setItem('zoom', zoom); render(); }
    else if (detect && (e.key === 'Delete' || e.key === 'Backspace') && selected >= 0) { labels.splice(selected, 1); selected = labels.length - 1; render(); e.preventDefault(); }
    else if (detect && e.key === 'Tab' && labels.length) { selected = (selected + 1) % labels.length; drawClass = labels[selected].class; render(); e.preventDefault(); }
    else if (detect && e.key === 'Escape') { selected = -1; render(); }
  };
  document.addEventListener('keydown', state.keyHandler);
  // Keep the lease while the page is open.
  state.timers.push(setInterval(() => api('POST', `/projects/${seg(p)}/batches/${seg(id)}/renew`).catch((e) => toast(e.message, true)), 5 * 60 * 1000));
}

// ---- review --------------------------------------------------------------------------
async function thumb(p, itemLabels, id, task) {
  const img = await image(p, id);
  const c = h('canvas');
  const s = Math.max(1, Math.floor(140 / Math.max(img.width, img.height)));
  c.width = img.width * s; c.height = img.height * s;
  const ctx = c.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(img, 0, 0, c.width, c.height);
  if (task === 'detect') for (const l of itemLabels || []) {
    const b = l.box; ctx.strokeStyle = '#22c55e'; ctx.lineWidth = 2;
    ctx.strokeRect(b.x0 * c.width, b.y0 * c.height, (b.x1 - b.x0) * c.width, (b.y1 - b.y0) * c.height);
    ctx.fillStyle = '#22c55e'; ctx.font = 'bold 12px system-ui'; ctx.fillText(l.class, b.x0 * c.width + 2, b.y0 * c.height + 12);
  }
  return c;
}

async function review(view, p, id) {
  const proj = projectOf(p);
  const batch = await api('GET', `/projects/${seg(p)}/batches/${seg(id)}`);
  const cards = await Promise.all(batch.items.map(async (it) => {
    const ex = batch.examples[it.example_id];
    const said = (ex.predictions[0] || {}).class;
    const now = it.labels && it.labels.map((l) => l.class).join(', ');
    const changed = proj.task === 'classify' ? said !== now : true;
    return h('div', { class: 'card' + (changed && it.status === 'done' ? ' changed' : ''), 'data-example': it.example_id },
      await thumb(p, it.labels, it.example_id, proj.task),
      h('div', {}, it.status === 'skipped' ? h('em', {}, 'skipped') : h('strong', {}, now || '—')),
      h('div', { class: 'muted' }, 'model: ', said || '—', ' ', pct((ex.predictions[0] || { confidence: 0 }).confidence)));
  }));
  const comments = h('textarea', { id: 'comments', rows: 3, style: 'width:100%', placeholder: 'what to fix (required to reject)' });
  const act = async (what) => {
    try {
      await api('POST', `/projects/${seg(p)}/batches/${seg(id)}/${what}`, what === 'reject' ? { comments: comments.value } : undefined);
      toast(what === 'approve' ? 'Approved: the examples joined the dataset' : 'Sent back to the annotator');
      location.hash = '#/review';
    } catch (e) { toast(e.message, true); }
  };
  const annotator = [...batch.audit].reverse().find((a) => a.action === 'submit');
  view.replaceChildren(h('h1', {}, 'Review ', batch.id, h('span', { class: 'muted' }, ` · ${batch.items.length} examples by ${annotator ? annotator.user : '?'} · amber: changed from the model`)),
    h('div', { class: 'grid' }, cards),
    h('h2', {}, 'Decision'), comments,
    h('div', { class: 'nav' }, h('button', { class: 'ok', id: 'approve', onclick: () => act('approve'), disabled: !can('reviewer') }, 'Approve'),
      h('button', { class: 'bad', id: 'reject', onclick: () => act('reject'), disabled: !can('reviewer') }, 'Reject with comments')));
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

function renderDashboard(view, p, d) {
  const acc = (d.edge_accuracy || []).map((a) => h('tr', {}, h('td', {}, 'v' + a.version), h('td', {}, a.frames), h('td', {}, h('strong', {}, pct(a.accuracy)))));
  const trainings = (d.trainings || []).slice(-6).reverse();
  view.replaceChildren(h('h1', {}, 'Dashboard ', h('span', { class: 'muted' }, `· ${p} · release v${d.release || '—'}`)),
    h('div', { class: 'cards' },
      h('div', { class: 'panel', id: 'edge-accuracy' }, h('div', { class: 'muted' }, 'accuracy at the edge, per model version'),
        h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'model'), h('th', {}, 'frames'), h('th', {}, 'accuracy'))), h('tbody', {}, acc))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'accuracy at the edge over time'),
        line((d.edge_series || []).map((s, i) => ({ color: palette[i % palette.length], points: s.points })), { yMin: 0, yMax: 1 }),
        h('div', {}, (d.edge_series || []).map((s, i) => h('span', { class: 'pill', style: `color:${palette[i % palette.length]}` }, s.name)))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'examples by sampling reason'),
        h('p', {}, Object.entries(d.examples_by_reason || {}).map(([k, v]) => h('span', { class: 'pill' }, `${k.replaceAll('_', ' ')} ${v}`)))),
      h('div', { class: 'panel' }, h('div', { class: 'muted' }, 'batches by state'),
        h('p', {}, Object.entries(d.batches_by_state || {}).map(([k, v]) => h('span', { class: 'pill state-' + k }, `${k.replace('_', ' ')} ${v}`))))),
    h('h2', {}, 'Trainings'),
    h('div', { class: 'cards' }, trainings.map((t) => h('div', { class: 'panel' },
      h('div', {}, h('strong', {}, `v${t.version}`), ` from v${t.parent || 0} · `, h('span', { class: 'pill verdict-' + t.verdict }, t.verdict === 'first' ? 'first model, published' : t.verdict),
        h('span', { class: 'muted' }, t.parent ? ` ${t.metric} ${t.candidate.toFixed(3)} vs ${t.current.toFixed(3)} on ${t.test_examples} test` : (t.test_examples ? ` ${t.metric} ${t.candidate.toFixed(3)} on ${t.test_examples} test` : ' no test split yet'))),
      line([{ color: palette[0], points: t.loss.map((v, i) => [i + 1, v]) }, { color: palette[1], points: t.val_loss.map((v, i) => [i + 1, v]) }],
        { yMin: 0, yMax: Math.max(0.1, ...t.loss, ...t.val_loss), xs: t.loss.map((_, i) => i + 1) }),
      h('div', { class: 'muted' }, h('span', { style: 'color:' + palette[0] }, 'loss'), ' · ', h('span', { style: 'color:' + palette[1] }, 'val loss')),
      gateEvidence(t)))),
    h('h2', {}, 'Releases'),
    h('table', {}, h('tbody', {}, (d.releases || []).slice().reverse().map((r) => h('tr', {}, h('td', {}, 'v' + r.version), h('td', {}, r.reason), h('td', {}, new Date(r.at).toLocaleString()), h('td', {}, r.metric))))));
}

window.addEventListener('hashchange', route);
state.token = readToken();
route();
