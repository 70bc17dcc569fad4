/*
 * app.js - the nnd dashboard: one page, routed in the browser, a client of
 * the HTTP API only (same origin, nothing from anywhere else). uPlot (its
 * minified build comes first in this file, from npm) draws the charts.
 *
 * Live data comes from event streams read with fetch (EventSource cannot
 * send the Authorization header): GET /v1/events for the job list and the
 * compare page (one connection for every run), a job's own stream for its
 * page. History comes from GET .../metrics?max_points= (min and max per
 * bucket, so a long curve keeps its peaks).
 */
(function () {
'use strict';

/* ---------------------------------------------------------------- DOM */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel, root) => (root || document).querySelector(sel);
const main = () => $('#main');

function fmt(v, digits) {
  if (v == null || typeof v !== 'number') return v == null ? '–' : String(v);
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(digits || 4)).toString();
}
function when(s) { return s ? s.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–'; }
function link(path, text) { return h('a', { href: path }, text); }

/* ---------------------------------------------------------------- API */

const KEY_ITEM = 'nnd_api_key';
let keyPrompt = null;

function authHeaders(extra) {
  const hd = Object.assign({}, extra || {});
  const k = sessionStorage.getItem(KEY_ITEM);
  if (k) hd.Authorization = 'Bearer ' + k;
  return hd;
}

/* Shows the key form once for every request that met a 401. */
function askKey(wrong) {
  if (keyPrompt) return keyPrompt;
  const box = $('#keybox'), form = $('#keyform'), input = $('#keyinput');
  $('#keyerr').textContent = wrong ? 'That key was refused.' : '';
  box.hidden = false;
  input.value = '';
  input.focus();
  keyPrompt = new Promise(resolve => {
    form.onsubmit = ev => {
      ev.preventDefault();
      sessionStorage.setItem(KEY_ITEM, input.value.trim());
      box.hidden = true;
      keyPrompt = null;
      resolve();
    };
  });
  return keyPrompt;
}

/* fetch with the key; a 401 asks for it and retries. */
async function request(path, opts) {
  opts = opts || {};
  for (;;) {
    const res = await fetch(path, Object.assign({}, opts, { headers: authHeaders(opts.headers) }));
    if (res.status !== 401) return res;
    await askKey(!!sessionStorage.getItem(KEY_ITEM));
  }
}

async function api(path, opts) {
  const res = await request(path, opts);
  const ct = res.headers.get('Content-Type') || '';
  const body = ct.includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    const err = new Error((body && (body.detail || body.title)) || ('HTTP ' + res.status));
    err.status = res.status;
    err.body = body;
    throw err;
  }
  return body;
}

function postJSON(path, doc) {
  return api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                     body: JSON.stringify(doc) });
}

/* Reads a Server-Sent Events stream through fetch: onEvent(name, data, id)
 * for each event; resolves when the stream ends, rejects on errors. */
async function readSSE(path, onEvent, signal, lastId, onOpen) {
  const headers = lastId != null ? { 'Last-Event-ID': String(lastId) } : {};
  const res = await request(path, { headers, signal });
  if (!res.ok) throw new Error('HTTP ' + res.status);
  if (onOpen) onOpen();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = 'message', data = '', id = null;
      for (const line of block.split('\n')) {
        const c = line.indexOf(':');
        if (c <= 0) continue;
        const f = line.slice(0, c), v = line.slice(c + 1).replace(/^ /, '');
        if (f === 'event') name = v;
        else if (f === 'data') data += v;
        else if (f === 'id') id = v;
      }
      if (data) onEvent(name, JSON.parse(data), id);
    }
  }
}

/* The one connection to GET /v1/events?all=true, shared by the pages:
 * subscribers get (name, data); it reconnects with Last-Event-ID. Each
 * time the stream opens they also get ('open', null): what happened before
 * (between a page's first fetch and the stream's start, or while it was
 * away) is not in the stream, so a page fetches its state again then. */
const Events = {
  subs: new Set(), lastId: null, running: false,
  on(fn) { this.subs.add(fn); this.start(); return () => this.subs.delete(fn); },
  async start() {
    if (this.running) return;
    this.running = true;
    const live = $('#live');
    for (;;) {
      try {
        live.textContent = 'connecting';
        await readSSE('/v1/events?all=true', (name, data, id) => {
          if (id != null) this.lastId = id;
          for (const fn of this.subs) fn(name, data);
        }, undefined, this.lastId, () => {
          live.textContent = 'live';
          live.className = 'on';
          for (const fn of this.subs) fn('open', null);
        });
      } catch (e) { /* the daemon went away: retry */ }
      live.textContent = 'offline';
      live.className = '';
      await new Promise(r => setTimeout(r, 1500));
    }
  },
};

/* ---------------------------------------------------------------- charts */

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
                '#7f7f7f', '#bcbd22', '#17becf'];

/* Exponential moving average with TensorBoard's debiasing; nulls stay. */
function smooth(ys, a) {
  if (!a) return ys;
  let last = 0, w = 0;
  return ys.map(v => {
    if (v == null || !isFinite(v)) return null;
    last = last * a + (1 - a) * v;
    w = w * a + (1 - a);
    return last / w;
  });
}

let smoothing = 0;
const charts = new Set();

/* x values are epochs or steps: whole-number ticks */
const INT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];

/* A linear y range with a margin; a flat curve (a constant learning rate)
 * gets one around its value instead of a zero-width range. */
function yRange(u, min, max) {
  if (min == null || max == null) return [0, 1];
  if (min === max) { const d = Math.abs(min) * 0.5 || 1; return [min - d, max + d]; }
  return uPlot.rangeNum(min, max, 0.1, true);
}

/* A chart card: a title, a log-scale switch, a CSV link, a note, and a
 * uPlot chart of series sharing one x. set() replaces the data; add()
 * appends one x value's points. */
class Chart {
  constructor(parent, o) {
    this.o = Object.assign({ xLabel: 'epoch', log: false, smoothable: true }, o);
    this.x = [];
    this.ys = this.o.names.map(() => []);
    this.log = this.o.log;
    this.note = h('span', { class: 'note' });
    const logBox = h('input', { type: 'checkbox', checked: this.log,
                                onchange: e => { this.log = e.target.checked; this.build(); } });
    this.box = h('div', { class: 'plot' });
    this.card = h('section', { class: 'card chart' },
      h('div', { class: 'charthead' }, h('h3', {}, this.o.title), this.note,
        h('label', { class: 'ctl' }, logBox, ' log scale'),
        h('a', { href: '#', class: 'ctl', onclick: e => { e.preventDefault(); this.csv(); } },
          'CSV')),
      this.box);
    parent.append(this.card);
    charts.add(this);
    this.build();
  }
  names() { return this.o.names; }
  addSeries(name) {
    this.o.names.push(name);
    this.ys.push(this.x.map(() => null));
    this.build();
    return this.o.names.length - 1;
  }
  data() {
    const a = this.o.smoothable ? smoothing : 0;
    return [this.x, ...this.ys.map(y => {
      const s = smooth(y, a);
      return this.log ? s.map(v => (v != null && v > 0 ? v : null)) : s;
    })];
  }
  build() {
    if (this.u) this.u.destroy();
    const width = Math.max(300, this.box.clientWidth || this.card.clientWidth - 24 || 600);
    const many = this.o.names.length > 12;
    const opts = {
      width, height: this.o.height || 230,
      scales: { x: this.o.logX ? { time: false, distr: 3 } : { time: false },
                y: this.log ? { distr: 3 } : { range: yRange } },
      axes: [{ label: this.o.xLabel, size: 40, incrs: this.o.scatter || this.o.logX ? undefined : INT_INCRS },
             { size: 60, values: (u, ticks) => ticks.map(v => (v == null ? '' : fmt(v, 3))) }],
      /* many runs: no legend, no hover dots, 1-pixel lines (fractional
       * widths cost the rasterizer several times more) */
      legend: { show: !many },
      cursor: many ? { points: { show: false } } : {},
      series: [{ label: this.o.xLabel }, ...this.o.names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: many ? 1 : 1.6, spanGaps: true,
        points: this.o.scatter || this.o.logX ? { show: true, size: 7, fill: COLORS[i % COLORS.length] } : { show: false },
        paths: this.o.scatter ? () => null : undefined }))],
    };
    this.u = new uPlot(opts, this.data(), this.box);
  }
  redraw() { if (this.u) this.u.setData(this.data()); }
  set(x, ys) { this.x = x; this.ys = ys; this.redraw(); }
  /* One x value with a value per series (undefined: none). x must grow. */
  add(xv, vals) {
    let i = this.x.length;
    if (i && this.x[i - 1] === xv) i--;
    else if (i && this.x[i - 1] > xv) return;
    else { this.x.push(xv); this.ys.forEach(y => y.push(null)); }
    vals.forEach((v, k) => { if (v !== undefined) this.ys[k][i] = v; });
    this.redraw();
  }
  setNote(t) { this.note.textContent = t || ''; }
  /* Takes the chart off the page for good. */
  remove() { if (this.u) this.u.destroy(); this.card.remove(); charts.delete(this); }
  resize() {
    if (this.u && this.box.clientWidth) this.u.setSize({ width: this.box.clientWidth, height: this.u.height });
  }
  csv() {
    const q = s => /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    const rows = [[this.o.xLabel, ...this.o.names].map(q).join(',')];
    this.x.forEach((xv, i) => rows.push([xv, ...this.ys.map(y => (y[i] == null ? '' : y[i]))].join(',')));
    download(rows.join('\n') + '\n', 'text/csv',
             (this.o.file || this.o.title).replace(/[^\w.-]+/g, '_') + '.csv');
  }
}

function download(data, type, name) {
  const url = URL.createObjectURL(data instanceof Blob ? data : new Blob([data], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

window.addEventListener('resize', () => charts.forEach(c => c.resize()));

function smoothingControl() {
  const out = h('span', {}, String(smoothing));
  return h('label', { class: 'ctl' }, 'smoothing ',
    h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: String(smoothing),
                 oninput: e => { smoothing = Number(e.target.value); out.textContent = smoothing;
                                 charts.forEach(c => c.redraw()); } }), ' ', out);
}

/* Merges sorted record lists by x into aligned columns for a chart. */
function columns(records, xKey, keys, pick) {
  const x = [], ys = keys.map(() => []);
  for (const r of records) {
    if (r[xKey] == null) continue;
    x.push(r[xKey]);
    keys.forEach((k, i) => { const v = pick ? pick(r, k) : r[k]; ys[i].push(v == null ? null : v); });
  }
  return [x, ys];
}

/* ---------------------------------------------------------------- pages */

let page = { off: [], abort: new AbortController() };

function leave() {
  page.off.forEach(f => f());
  page.abort.abort();
  charts.clear();
  page = { off: [], abort: new AbortController() };
}

function title(text, ...rest) { return h('div', { class: 'title' }, h('h1', {}, text), ...rest); }
function stateBadge(s) { return h('span', { class: 'state ' + s }, s); }
function problem(e) { return h('p', { class: 'err' }, e.message || String(e)); }

/* -- jobs */

const jobRows = new Map();

function jobRow(j, sel) {
  const m = j.metrics || {};
  const prog = h('progress', { max: 1, value: j.progress || 0 });
  return h('tr', { 'data-job': j.id },
    h('td', {}, h('input', { type: 'checkbox', class: 'pick', value: j.id, checked: sel.has(j.id),
                             onchange: e => { e.target.checked ? sel.add(j.id) : sel.delete(j.id); } })),
    h('td', {}, link('/ui/jobs/' + j.id, j.id), j.study ? h('div', { class: 'muted' }, 'study ' + j.study) : null),
    h('td', {}, j.model ? link('/ui/models/' + j.model, j.model) : '–'),
    h('td', {}, j.dataset ? link('/ui/datasets/' + j.dataset, j.dataset) : '–'),
    h('td', { class: 'st' }, stateBadge(j.state)),
    h('td', {}, prog, ' ', h('span', { class: 'ep' }, j.epoch != null ? 'epoch ' + j.epoch : '')),
    h('td', { class: 'num tl' }, fmt(m.train_loss)),
    h('td', { class: 'num vl' }, fmt(m.val_loss)),
    h('td', { class: 'num va' }, fmt(m.val_accuracy)),
    h('td', {}, when(j.created_at)));
}

async function pageJobs() {
  const sel = new Set();
  const tbody = h('tbody');
  const main_ = main();
  main_.replaceChildren(title('Jobs',
    h('button', { onclick: () => { if (sel.size) go('/ui/compare?jobs=' + [...sel].join(',')); } },
      'Compare selected')),
    h('table', { class: 'list', id: 'jobs' },
      h('thead', {}, h('tr', {}, ['', 'job', 'model', 'data set', 'state', 'progress',
                                  'train loss', 'val loss', 'val acc', 'created'].map(t => h('th', {}, t)))),
      tbody),
    newJobForm());
  const load = async () => {
    const list = await api('/v1/jobs?limit=200');
    tbody.querySelectorAll('tr.none').forEach(r => r.remove());
    for (const j of list.jobs) {
      const old = tbody.querySelector(`tr[data-job="${j.id}"]`);
      if (old) old.replaceWith(jobRow(j, sel)); else tbody.append(jobRow(j, sel));
    }
    if (!list.jobs.length) tbody.append(h('tr', { class: 'none' }, h('td', { colspan: 10, class: 'muted' }, 'No jobs yet.')));
  };
  const update = (name, d) => {
    if (name === 'open') load().catch(e => main_.append(problem(e)));
    else if (name === 'state' && d.id && d.id.startsWith('job_')) {
      const row = jobRow(d, sel), old = tbody.querySelector(`tr[data-job="${d.id}"]`);
      if (old) old.replaceWith(row); else tbody.prepend(row);
    } else if (name === 'epoch' && d.job) {
      const row = tbody.querySelector(`tr[data-job="${d.job}"]`);
      if (!row) return;
      row.querySelector('.tl').textContent = fmt(d.train_loss);
      row.querySelector('.vl').textContent = fmt(d.val_loss);
      row.querySelector('.va').textContent = fmt(d.val_accuracy);
      row.querySelector('.ep').textContent = 'epoch ' + d.epoch;
    }
  };
  page.off.push(Events.on(update));
  try { await load(); } catch (e) { main_.append(problem(e)); }
}

function newJobForm() {
  const msel = h('select', { name: 'model', required: true }), dsel = h('select', { name: 'dataset', required: true });
  const num = (name, value, step) => h('input', { name, type: 'number', value, step: step || 'any', required: true });
  const err = h('p', { class: 'err' });
  const form = h('form', { class: 'card grid', onsubmit: async ev => {
    ev.preventDefault();
    const f = new FormData(form);
    const doc = { model: f.get('model'), dataset: f.get('dataset'), epochs: Number(f.get('epochs')),
                  batch_size: Number(f.get('batch_size')), standardize: true,
                  optimizer: { type: f.get('optimizer'), lr: Number(f.get('lr')) } };
    if (Number(f.get('val'))) doc.validation = { fraction: Number(f.get('val')) };
    try { const j = await postJSON('/v1/jobs', doc); go('/ui/jobs/' + j.id); }
    catch (e) { err.textContent = e.message + ((e.body && e.body.errors) ? ': ' + e.body.errors.map(x => x.field + ' ' + x.message).join('; ') : ''); }
  } },
    h('h3', {}, 'Start a job'),
    h('label', {}, 'model ', msel), h('label', {}, 'data set ', dsel),
    h('label', {}, 'epochs ', num('epochs', 10, 1)), h('label', {}, 'batch size ', num('batch_size', 32, 1)),
    h('label', {}, 'optimizer ', h('select', { name: 'optimizer' },
      ['adam', 'sgd', 'momentum', 'nesterov', 'rmsprop', 'adagrad', 'adamw'].map(o => h('option', {}, o)))),
    h('label', {}, 'learning rate ', num('lr', 0.001)),
    h('label', {}, 'validation fraction ', num('val', 0.1)),
    h('button', { type: 'submit' }, 'Start'), err);
  Promise.all([api('/v1/models?limit=1000'), api('/v1/datasets?limit=1000')]).then(([m, d]) => {
    msel.append(...m.models.map(x => h('option', { value: x.id }, `${x.name || x.id} (${x.id})`)));
    dsel.append(...d.datasets.map(x => h('option', { value: x.id }, `${x.name || x.id} (${x.id})`)));
  }).catch(() => {});
  return form;
}

/* -- one job */

async function pageJob(id) {
  const m = main();
  let job;
  try { job = await api('/v1/jobs/' + id); } catch (e) { m.replaceChildren(problem(e)); return; }
  const head = h('div', { class: 'card jobhead' });
  const grid = h('div', { class: 'charts' });
  const cancel = h('button', { onclick: async () => {
    try { await api('/v1/jobs/' + id + '/cancel', { method: 'POST' }); } catch (e) { alert(e.message); }
  } }, 'Cancel');
  m.replaceChildren(title('Job ' + id, cancel, ' ', smoothingControl(),
                          h('a', { class: 'ctl', href: '/ui/compare?jobs=' + id }, 'compare…')),
                    head, grid,
                    h('section', { class: 'card' }, h('h3', {}, 'Config'),
                      h('pre', { id: 'config' }, JSON.stringify(job.config, null, 2))));
  const showHead = j => {
    job = j;
    cancel.disabled = !(j.state === 'queued' || j.state === 'running');
    const mm = j.metrics || {};
    head.replaceChildren(
      h('div', {}, stateBadge(j.state), ' ', h('progress', { max: 1, value: j.progress || 0 }),
        ' ', h('span', { id: 'epochs-seen' }, j.epoch != null ? 'epoch ' + j.epoch : '')),
      h('dl', {}, [['model', j.model && link('/ui/models/' + j.model, j.model)],
                   ['data set', j.dataset && link('/ui/datasets/' + j.dataset, j.dataset)],
                   ['train loss', fmt(mm.train_loss)], ['val loss', fmt(mm.val_loss)],
                   ['val accuracy', fmt(mm.val_accuracy)], ['samples/s', fmt(mm.samples_per_second, 3)],
                   ['best', j.best ? `epoch ${j.best.epoch}, val loss ${fmt(j.best.val_loss)}` : '–'],
                   ['started', when(j.started_at)], ['finished', when(j.finished_at)],
                   ['error', j.error ? j.error.code + ': ' + j.error.detail : null]]
        .filter(p => p[1] != null).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  };
  showHead(job);
  const f = 'job-' + id + '-';
  const cLoss = new Chart(grid, { title: 'Loss by epoch', names: ['train_loss', 'val_loss'], file: f + 'loss' });
  const cStep = new Chart(grid, { title: 'Loss by step', names: ['loss'], xLabel: 'step', file: f + 'step-loss' });
  const cAcc = new Chart(grid, { title: 'Validation accuracy', names: ['val_accuracy'], file: f + 'accuracy' });
  const cLr = new Chart(grid, { title: 'Learning rate', names: ['lr'], smoothable: false, file: f + 'lr' });
  const cGrad = new Chart(grid, { title: 'Gradient norm per layer', names: [], log: true, file: f + 'grad-norms' });
  const cSps = new Chart(grid, { title: 'Samples per second', names: ['samples_per_second'], file: f + 'samples-per-second' });
  let lastEpoch = -1, lastStep = -1;
  const gradIndex = new Map();
  const gradCol = name => {
    if (!gradIndex.has(name)) gradIndex.set(name, cGrad.addSeries(name));
    return gradIndex.get(name);
  };
  const addEpoch = r => {
    if (r.epoch == null || r.epoch <= lastEpoch) return;
    lastEpoch = r.epoch;
    const opt = v => (v === undefined ? undefined : v);
    cLoss.add(r.epoch, [opt(r.train_loss), opt(r.val_loss)]);
    cAcc.add(r.epoch, [opt(r.val_accuracy)]);
    cLr.add(r.epoch, [opt(r.lr)]);
    cSps.add(r.epoch, [opt(r.samples_per_second)]);
    const g = r.grad_norms || {};
    const names = Object.keys(g);
    names.forEach(gradCol);
    if (names.length) {
      const vals = cGrad.names().map(n => (n in g ? g[n] : undefined));
      cGrad.add(r.epoch, vals);
    }
    $('#epochs-seen').textContent = 'epoch ' + r.epoch;
  };
  const addStep = r => {
    if (r.step == null || r.step <= lastStep) return;
    lastStep = r.step;
    if (r.loss !== undefined) cStep.add(r.step, [r.loss]);
  };
  /* history (thinned), then the job's live stream after it */
  try {
    const hist = await api(`/v1/jobs/${id}/metrics?max_points=2000`);
    const note = hist.downsampled ? 'downsampled (min and max per bucket)' : '';
    const gnames = [...new Set(hist.epochs.flatMap(r => Object.keys(r.grad_norms || {})))];
    gnames.forEach(gradCol);
    let [x, ys] = columns(hist.epochs, 'epoch', ['train_loss', 'val_loss']);
    cLoss.set(x, ys);
    [x, ys] = columns(hist.epochs, 'epoch', ['val_accuracy']); cAcc.set(x, ys);
    [x, ys] = columns(hist.epochs, 'epoch', ['lr']); cLr.set(x, ys);
    [x, ys] = columns(hist.epochs, 'epoch', ['samples_per_second']); cSps.set(x, ys);
    [x, ys] = columns(hist.epochs, 'epoch', cGrad.names(), (r, k) => (r.grad_norms || {})[k]);
    cGrad.set(x, ys);
    [x, ys] = columns(hist.steps, 'step', ['loss']); cStep.set(x, ys);
    [cLoss, cStep, cAcc, cLr, cGrad, cSps].forEach(c => c.setNote(note));
    if (hist.epochs.length) { lastEpoch = hist.epochs[hist.epochs.length - 1].epoch; $('#epochs-seen').textContent = 'epoch ' + lastEpoch; }
    if (hist.steps.length) lastStep = hist.steps[hist.steps.length - 1].step;
  } catch (e) { grid.prepend(problem(e)); }
  if (!['queued', 'running'].includes(job.state)) return;
  const signal = page.abort.signal;
  const follow = async () => {
    let after = lastStep >= 0 ? lastStep : null;
    while (!signal.aborted) {
      let ended = false;
      try {
        await readSSE(`/v1/jobs/${id}/events`, (name, d, evid) => {
          if (evid != null) after = evid;
          if (name === 'epoch') addEpoch(d);
          else if (name === 'step') addStep(d);
          else if (name === 'state') { showHead(d); ended = !['queued', 'running'].includes(d.state); }
        }, signal, after);
      } catch (e) { if (signal.aborted) return; }
      if (ended) return;
      await new Promise(r => setTimeout(r, 1000));
    }
  };
  follow();
}

/* -- compare */

function flatten(o, prefix, out) {
  out = out || {};
  if (o !== null && typeof o === 'object') {
    const arr = Array.isArray(o);
    const keys = Object.keys(o);
    if (!keys.length) out[prefix] = arr ? '[]' : '{}';
    for (const k of keys) flatten(o[k], prefix + (arr ? `[${k}]` : (prefix ? '.' : '') + k), out);
  } else out[prefix] = o;
  return out;
}

async function pageCompare() {
  const m = main();
  const ids = (new URLSearchParams(location.search).get('jobs') || '').split(',').filter(Boolean);
  const input = h('input', { value: ids.join(','), size: 60, placeholder: 'job_…,job_…' });
  const metric = h('select', {}, ['train_loss', 'val_loss', 'val_accuracy', 'lr', 'samples_per_second'].map(x => h('option', {}, x)));
  m.replaceChildren(title('Compare runs',
    h('form', { onsubmit: e => { e.preventDefault(); go('/ui/compare?jobs=' + input.value.replace(/\s+/g, '')); } },
      input, ' ', h('button', {}, 'Compare')), ' ', smoothingControl()));
  if (!ids.length) { m.append(h('p', { class: 'muted' }, 'Pick runs on the Jobs page, or list job ids above.')); return; }
  const grid = h('div', { class: 'charts wide' });
  const table = h('section', { class: 'card' });
  m.append(h('div', { class: 'ctlrow' }, h('label', {}, 'metric ', metric)), grid, table);
  /* subscribed before the fetches: epochs that come meanwhile wait for
   * the chart (those the history already has are dropped) */
  let onEpoch = null;
  const early = [];
  page.off.push(Events.on((name, d) => {
    if (name !== 'epoch' || !ids.includes(d.job)) return;
    if (onEpoch) onEpoch(d); else early.push(d);
  }));
  let runs;
  try {
    runs = await Promise.all(ids.map(async id => {
      const [job, hist] = await Promise.all([api('/v1/jobs/' + id), api(`/v1/jobs/${id}/metrics?max_points=2000`)]);
      let model = null;
      try { model = await api('/v1/models/' + job.model); } catch (e) { /* deleted */ }
      return { id, job, model, epochs: hist.epochs, down: hist.downsampled };
    }));
  } catch (e) { m.append(problem(e)); return; }
  let chart;
  const draw = () => {
    grid.replaceChildren();
    const k = metric.value;
    chart = new Chart(grid, { title: k + ' by epoch', names: runs.map(r => r.id), height: 320, file: 'compare-' + k });
    const xs = [...new Set(runs.flatMap(r => r.epochs.map(e => e.epoch)))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const ys = runs.map(r => { const y = xs.map(() => null); r.epochs.forEach(e => { if (e[k] != null) y[at.get(e.epoch)] = e[k]; }); return y; });
    chart.set(xs, ys);
    if (runs.some(r => r.down)) chart.setNote('downsampled (min and max per bucket)');
  };
  metric.onchange = draw;
  draw();
  onEpoch = d => {
    const i = ids.indexOf(d.job), ep = runs[i].epochs;
    if (ep.length && d.epoch <= ep[ep.length - 1].epoch) return;
    ep.push(d);
    const vals = runs.map((r, k) => (k === i ? d[metric.value] : undefined));
    chart.add(d.epoch, vals);
  };
  early.forEach(onEpoch);
  /* the differences of their configs (and models) */
  const flat = runs.map(r => Object.assign(flatten(r.job.config, 'job'),
    r.model ? flatten({ layers: r.model.layers, inputs: r.model.inputs, outputs: r.model.outputs }, 'model') : {},
    { 'job.dataset': r.job.dataset }));
  const keys = [...new Set(flat.flatMap(o => Object.keys(o)))].sort();
  const diff = keys.filter(k => new Set(flat.map(o => JSON.stringify(o[k]))).size > 1);
  table.append(h('h3', {}, diff.length ? 'Config differences' : 'The configs are the same'),
    diff.length ? h('table', { class: 'list', id: 'diff' },
      h('thead', {}, h('tr', {}, h('th', {}, 'field'), runs.map(r => h('th', {}, link('/ui/jobs/' + r.id, r.id))))),
      h('tbody', {}, diff.map(k => h('tr', {}, h('td', {}, k), flat.map(o => h('td', {}, o[k] === undefined ? '–' : JSON.stringify(o[k]))))))) : null);
}

/* -- data sets */

async function pageDatasets() {
  const m = main();
  m.replaceChildren(title('Data sets'));
  try {
    const l = await api('/v1/datasets?limit=1000');
    m.append(h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['data set', 'name', 'task', 'rows', 'features', 'classes', 'created'].map(t => h('th', {}, t)))),
      h('tbody', {}, l.datasets.map(d => h('tr', {}, h('td', {}, link('/ui/datasets/' + d.id, d.id)), h('td', {}, d.name || ''),
        h('td', {}, d.task), h('td', { class: 'num' }, d.rows), h('td', { class: 'num' }, d.features),
        h('td', {}, d.classes ? d.classes.length : '–'), h('td', {}, when(d.created_at)))))));
  } catch (e) { m.append(problem(e)); }
}

function imageCanvas(x, img, scale) {
  const c = h('canvas', { width: img.width, height: img.height, class: 'digit' });
  const ctx = c.getContext('2d'), im = ctx.createImageData(img.width, img.height);
  const ch = img.channels || 1;
  for (let p = 0; p < img.width * img.height; p++) {
    for (let k = 0; k < 3; k++) im.data[p * 4 + k] = x[p * ch + (ch === 3 ? k : 0)] || 0;
    im.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(im, 0, 0);
  c.style.width = (img.width * scale) + 'px';
  return c;
}

async function pageDataset(id) {
  const m = main();
  let d;
  try { d = await api('/v1/datasets/' + id); } catch (e) { m.replaceChildren(problem(e)); return; }
  const facts = [['name', d.name], ['task', d.task], ['rows', d.rows], ['features', d.features],
                 ['outputs', d.outputs], ['image', d.image ? `${d.image.width} × ${d.image.height} × ${d.image.channels}` : null],
                 ['bytes', d.bytes], ['created', when(d.created_at)]].filter(p => p[1] != null);
  m.replaceChildren(title('Data set ' + id),
    h('section', { class: 'card' }, h('dl', {}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
    d.classes ? h('section', { class: 'card' }, h('h3', {}, `Classes (${d.classes.length})`),
                  h('p', {}, d.classes.map((c, i) => h('span', { class: 'tag' }, i + ': ' + c)))) : null);
  const cols = d.columns || (d.image ? null : (d.feature_names || []).map(n => ({ name: n, type: 'numeric' })));
  if (cols && cols.length)
    m.append(h('section', { class: 'card' }, h('h3', {}, 'Fields'), h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['name', 'type', 'levels', 'missing', 'mean', 'std'].map(t => h('th', {}, t)))),
      h('tbody', {}, cols.map(c => h('tr', {}, h('td', {}, c.name), h('td', {}, c.type),
        h('td', {}, c.levels ? c.levels.join(', ') : ''), h('td', {}, fmt(c.missing)), h('td', {}, fmt(c.mean)), h('td', {}, fmt(c.std))))))));
  const rows = h('section', { class: 'card' }, h('h3', {}, 'First rows'));
  m.append(rows);
  try {
    const r = await api(`/v1/datasets/${id}/data?offset=0&limit=${d.image ? 24 : 10}`, { headers: { Accept: 'application/json' } });
    const label = y => (d.classes && Number.isInteger(y) ? d.classes[y] : fmt(y));
    if (d.image)
      rows.append(h('div', { class: 'digits' }, r.x.map((x, i) => h('figure', {}, imageCanvas(x, d.image, 3), h('figcaption', {}, label(r.y[i]))))));
    else
      rows.append(h('table', { class: 'list' },
        h('thead', {}, h('tr', {}, (d.columns ? d.columns.map(c => c.name) : d.feature_names || []).map(n => h('th', {}, n)), h('th', {}, 'label'))),
        h('tbody', {}, r.x.map((x, i) => h('tr', {}, x.map(v => h('td', {}, v == null ? '' : fmt(v))), h('td', {}, label(r.y[i])))))));
  } catch (e) {
    rows.append(h('p', { class: 'muted' }, e.status === 404 || e.status === 405 ? 'This daemon does not serve rows (GET /v1/datasets/{id}/data).' : e.message));
  }
}

/* -- models */

async function pageModels() {
  const m = main();
  m.replaceChildren(title('Models'));
  try {
    const l = await api('/v1/models?limit=1000');
    m.append(h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['model', 'name', 'task', 'inputs', 'outputs', 'parameters', 'version', 'created'].map(t => h('th', {}, t)))),
      h('tbody', {}, l.models.map(d => h('tr', {}, h('td', {}, link('/ui/models/' + d.id, d.id)), h('td', {}, d.name || ''),
        h('td', {}, d.task), h('td', { class: 'num' }, d.inputs), h('td', { class: 'num' }, d.outputs),
        h('td', { class: 'num' }, d.parameters), h('td', { class: 'num' }, d.version), h('td', {}, when(d.created_at)))))));
  } catch (e) { m.append(problem(e)); }
}

function layerText(l) {
  const parts = [l.type];
  if (l.units) parts.push(l.units + ' units');
  if (l.activation) parts.push(l.activation);
  if (l.function) parts.push(l.function);
  if (l.rate != null) parts.push('rate ' + l.rate);
  if (l.layers) parts.push('[' + l.layers.map(layerText).join(', ') + ']');
  return parts.join(' ');
}

async function pageModel(id) {
  const m = main();
  let md;
  try { md = await api('/v1/models/' + id); } catch (e) { m.replaceChildren(problem(e)); return; }
  const facts = [['name', md.name], ['task', md.task], ['inputs', md.inputs], ['outputs', md.outputs],
                 ['parameters', md.parameters], ['version', md.version],
                 ['trained by', md.trained_by && link('/ui/jobs/' + md.trained_by, md.trained_by)],
                 ['created', when(md.created_at)]].filter(p => p[1] != null);
  const weights = h('button', { onclick: async () => {
    const res = await request(`/v1/models/${id}/weights`);
    download(await res.blob(), 'application/json', `${id}-v${md.version}-weights.json`);
  } }, 'Download weights (JSON)');
  const onnx = h('button', { onclick: async () => {
    const res = await request(`/v1/models/${id}/export?format=onnx`);
    if (res.ok) download(await res.blob(), 'application/octet-stream', `${id}-v${md.version}.onnx`);
    else alert('export: HTTP ' + res.status);
  } }, 'Export ONNX');
  m.replaceChildren(title('Model ' + id, weights, onnx),
    h('section', { class: 'card' }, h('dl', {}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      md.metrics ? h('p', {}, 'final metrics: ' + Object.entries(md.metrics).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')) : null),
    h('section', { class: 'card' }, h('h3', {}, 'Layers'),
      h('ol', {}, (md.layers || []).map(l => h('li', {}, layerText(l))))));
  /* the data set it learnt from gives the image shape or the field names */
  let ds = null;
  try {
    if (md.trained_by) { const j = await api('/v1/jobs/' + md.trained_by); ds = await api('/v1/datasets/' + j.dataset); }
  } catch (e) { /* gone */ }
  m.append(predictCard(md, ds));
}

function predictCard(md, ds) {
  const out = h('div', { id: 'prediction' });
  const card = h('section', { class: 'card' }, h('h3', {}, 'Try a prediction'));
  const show = p => {
    if (md.task !== 'classification') { out.replaceChildren(h('p', {}, 'outputs: ', h('b', {}, p.map(v => fmt(v)).join(', ')))); return; }
    out.replaceChildren(h('p', {}, 'class ', h('b', { id: 'pred-label' }, p.label), ` (index ${p.class})`),
      h('table', { class: 'probs' }, h('tbody', {}, p.probabilities.map((v, i) => {
        const bar = h('div', { class: 'bar' });
        bar.style.width = (v * 100).toFixed(1) + '%';
        return h('tr', {}, h('td', {}, md.classes ? md.classes[i] : i), h('td', { class: 'barcell' }, bar), h('td', { class: 'num' }, fmt(v, 3)));
      }))));
  };
  const predict = async inst => {
    try {
      const r = await postJSON(`/v1/models/${md.id}/predict`, { instances: [inst] });
      show(r.predictions[0]);
      out.dataset.instance = JSON.stringify(inst);
    } catch (e) { out.replaceChildren(problem(e)); }
  };
  const img = ds && ds.image;
  if (img && img.width * img.height * (img.channels || 1) === md.inputs) {
    card.append(drawPad(img, predict), out);
  } else {
    const cols = md.columns || (ds && ds.columns);
    const names = md.feature_names || (ds && ds.feature_names) || Array.from({ length: md.inputs }, (_, i) => 'x' + i);
    const useCols = md.columns && md.columns.length;
    const fields = useCols ? md.columns.filter(c => c.type !== 'empty').map(c => c.type === 'categorical'
      ? h('label', {}, c.name + ' ', h('select', { name: c.name }, h('option', { value: '' }, '(missing)'), c.levels.map(v => h('option', {}, v))))
      : h('label', {}, c.name + ' ', h('input', { name: c.name, type: 'number', step: 'any', value: c.mean != null ? fmt(c.mean) : '' })))
      : names.map((n, i) => h('label', {}, n + ' ', h('input', { name: 'f' + i, type: 'number', step: 'any', value: '0', required: true })));
    const form = h('form', { class: 'grid', id: 'predict-form', onsubmit: e => {
      e.preventDefault();
      const f = new FormData(form);
      if (useCols) {
        const o = {};
        for (const c of md.columns) if (c.type !== 'empty') { const v = f.get(c.name); o[c.name] = v === '' || v == null ? null : (c.type === 'numeric' ? Number(v) : v); }
        predict(o);
      } else predict(names.map((_, i) => Number(f.get('f' + i))));
    } }, fields, h('button', { type: 'submit' }, 'Predict'));
    if (cols && !useCols) card.append(h('p', { class: 'muted' }, 'Inputs are the encoded features.'));
    card.append(form, out);
  }
  return card;
}

/* A canvas to draw a digit or a piece of clothing on: white on black, as
 * in MNIST, scaled down to the model's image size on Predict. */
function drawPad(img, predict) {
  const S = 280;
  const c = h('canvas', { width: S, height: S, class: 'pad', id: 'pad' });
  const ctx = c.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, S, S); };
  clear();
  ctx.strokeStyle = '#fff'; ctx.lineWidth = 22; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  let down = false;
  const pos = e => { const r = c.getBoundingClientRect(); return [(e.clientX - r.left) * S / r.width, (e.clientY - r.top) * S / r.height]; };
  c.addEventListener('pointerdown', e => { down = true; const [x, y] = pos(e); ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.1, y); ctx.stroke(); });
  c.addEventListener('pointermove', e => { if (!down) return; const [x, y] = pos(e); ctx.lineTo(x, y); ctx.stroke(); });
  window.addEventListener('pointerup', () => { down = false; });
  const pixels = () => {
    const small = h('canvas', { width: img.width, height: img.height });
    const sc = small.getContext('2d');
    sc.imageSmoothingEnabled = true; sc.imageSmoothingQuality = 'high';
    sc.drawImage(c, 0, 0, img.width, img.height);
    const d = sc.getImageData(0, 0, img.width, img.height).data, ch = img.channels || 1, x = [];
    for (let p = 0; p < img.width * img.height; p++) for (let k = 0; k < ch; k++) x.push(d[p * 4 + (ch === 3 ? k : 0)]);
    return x;
  };
  return h('div', { class: 'padbox' }, c,
    h('div', {}, h('button', { id: 'predict-draw', onclick: () => predict(pixels()) }, 'Predict'), ' ',
      h('button', { onclick: clear }, 'Clear'),
      h('p', { class: 'muted' }, `Draw in white; the drawing is scaled to ${img.width} × ${img.height}.`)));
}

/* -- studies (when the daemon has them) */

async function pageStudies() {
  const m = main();
  m.replaceChildren(title('Studies'));
  try {
    const l = await api('/v1/studies?limit=1000');
    m.append(h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, ['study', 'name', 'state', 'trials', 'best', 'created'].map(t => h('th', {}, t)))),
      h('tbody', {}, l.studies.map(s => h('tr', {}, h('td', {}, link('/ui/studies/' + s.id, s.id)), h('td', {}, s.name || ''),
        h('td', {}, stateBadge(s.state)), h('td', { class: 'num' }, s.trials ? s.trials.total : '–'),
        h('td', {}, s.best ? fmt(s.best.value) : '–'), h('td', {}, when(s.created_at)))))));
  } catch (e) {
    m.append(h('p', { class: 'muted' }, e.status === 404 ? 'This daemon has no studies (GET /v1/studies).' : e.message));
  }
}

/* A trial's parameter as a number for a chart: numbers as they are, other
 * choices by their index among the distinct values seen. */
function paramAxis(trials, key) {
  const vals = trials.map(t => (t.params || {})[key]);
  if (vals.every(v => typeof v === 'number')) return { nums: vals, labels: null };
  const distinct = [...new Set(vals.map(v => JSON.stringify(v)))];
  return { nums: vals.map(v => distinct.indexOf(JSON.stringify(v))), labels: distinct };
}

/* Positive values spanning two decades or more: a log axis reads them. */
function wideRange(v) {
  const pos = v.filter(x => x > 0);
  return pos.length === v.length && pos.length > 1 && Math.max(...pos) / Math.min(...pos) >= 100;
}

/* Ordinary least squares of log(value) on log(rows) over every value. */
function logFit(points) {
  const xs = [], ys = [];
  for (const p of points) for (const v of p.values || []) if (v > 0) { xs.push(Math.log(p.rows)); ys.push(Math.log(v)); }
  if (xs.length < 2) return null;
  const mx = xs.reduce((a, b) => a + b) / xs.length, my = ys.reduce((a, b) => a + b) / ys.length;
  let sxy = 0, sxx = 0;
  xs.forEach((x, i) => { sxy += (x - mx) * (ys[i] - my); sxx += (x - mx) ** 2; });
  return sxx > 0 ? { slope: sxy / sxx, mx, my } : null;
}

async function pageStudy(id) {
  const m = main();
  /* subscribed before the first fetch: an event of this study (or the
   * stream's opening) that comes while the page builds itself is noted,
   * and the page fetches again once built */
  let onEvent = null, missed = false;
  page.off.push(Events.on((name, d) => {
    if (onEvent) onEvent(name, d);
    else if (name === 'open' || (d && (d.id === id || d.study === id))) missed = true;
  }));
  let st;
  try { st = await api('/v1/studies/' + id); } catch (e) { m.replaceChildren(problem(e)); return; }
  const head = h('section', { class: 'card' }), board = h('section', { class: 'card' });
  const charts = h('div', { class: 'charts' });
  const cancel = h('button', { onclick: async () => {
    try { await api('/v1/studies/' + id + '/cancel', { method: 'POST' }); } catch (e) { alert(e.message); }
  } }, 'Cancel');
  m.replaceChildren(title('Study ' + id, cancel), head, charts, board,
    h('section', { class: 'card' }, h('h3', {}, 'Config'), h('pre', {}, JSON.stringify(st.config, null, 2))));
  const showHead = s => {
    st = s;
    cancel.disabled = !['queued', 'running'].includes(s.state);
    const t = s.trials || {}, best = s.best;
    const obj = (s.config && s.config.objective) || {};
    head.replaceChildren(h('div', {}, stateBadge(s.state), ' ', s.name || ''),
      h('dl', { id: 'study-facts' }, [['objective', `${obj.goal || ''} ${obj.metric || ''}`],
        ['trials', ['total', 'queued', 'running', 'succeeded', 'pruned', 'failed', 'cancelled']
          .filter(k => t[k]).map(k => `${t[k]} ${k}`).join(', ')],
        ['best', best ? [`trial ${best.trial}: ${fmt(best.value)} `, JSON.stringify(best.params), ' ',
                         best.job ? link('/ui/jobs/' + best.job, best.job) : ''] : '–'],
        ['epochs run', s.epochs_run], ['started', when(s.started_at)], ['finished', when(s.finished_at)]]
        .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  };
  showHead(st);
  let trials = [];
  const keys = Object.keys((st.config && st.config.space) || {});
  const psel = h('select', {}, keys.map(k => h('option', {}, k)));
  let scatter = null;
  let curveCharts = [];
  const drawScatter = () => {
    if (scatter) scatter.remove();
    scatter = null;
    charts.querySelectorAll('.scatter').forEach(e => e.remove());
    if (!keys.length) return;
    const done = trials.filter(t => t.value != null);
    const ax = paramAxis(done, psel.value);
    const order = done.map((t, i) => i).sort((a, b) => ax.nums[a] - ax.nums[b]);
    const box = h('div', { class: 'scatter' });
    charts.prepend(box);
    box.append(h('div', { class: 'ctlrow' }, h('label', {}, 'parameter ', psel)));
    scatter = new Chart(box, { title: `objective against ${psel.value}`, names: ['value'], xLabel: psel.value,
                               scatter: true, smoothable: false, file: id + '-trials',
                               logX: !ax.labels && wideRange(ax.nums) });
    scatter.set(order.map(i => ax.nums[i]), [order.map(i => done[i].value)]);
    if (ax.labels) scatter.setNote(ax.labels.map((l, i) => `${i} = ${l}`).join(', '));
  };
  psel.onchange = drawScatter;
  const drawCurves = () => {
    curveCharts.forEach(c => c.remove());
    curveCharts = [];
    charts.querySelectorAll('.curves').forEach(e => e.remove());
    for (const [ci, c] of (st.curves || []).entries()) {
      const pts = (c.points || []).filter(p => p.mean != null && p.mean > 0);
      if (!pts.length) continue;
      const fit = logFit(c.points || []);
      const xs = pts.map(p => p.rows);
      const line = slope => (fit ? xs.map(x => Math.exp(fit.my + slope * (Math.log(x) - fit.mx))) : xs.map(() => null));
      const names = ['mean', `fit: slope ${fmt(c.slope, 3)}` + (c.slope_ci95 ? ` [${fmt(c.slope_ci95[0], 3)}, ${fmt(c.slope_ci95[1], 3)}]` : '')];
      const ys = [pts.map(p => p.mean), fit && c.slope != null ? line(c.slope) : xs.map(() => null)];
      if (c.theory_slope != null) { names.push(`theory: slope ${fmt(c.theory_slope, 3)}`); ys.push(line(c.theory_slope)); }
      const box = h('div', { class: 'curves' });
      charts.append(box);
      const pl = c.params && Object.keys(c.params).length ? ' ' + JSON.stringify(c.params) : '';
      const ch = new Chart(box, { title: 'Learning curve' + pl, names, xLabel: 'rows',
                                  log: true, logX: true, smoothable: false, file: `${id}-curve-${ci}` });
      ch.set(xs, ys);
      curveCharts.push(ch);
    }
  };
  const loadTrials = async () => {
    try {
      const r = await api(`/v1/studies/${id}/trials?limit=1000`);
      trials = r.trials;
      board.replaceChildren(h('h3', {}, `Leaderboard (${r.total} trials)`), h('table', { class: 'list', id: 'leaderboard' },
        h('thead', {}, h('tr', {}, ['#', 'params', 'state', 'value', 'epochs', 'seconds', 'rows', 'job'].map(t => h('th', {}, t)))),
        h('tbody', {}, trials.map(t => h('tr', {}, h('td', {}, t.number), h('td', {}, JSON.stringify(t.params)),
          h('td', {}, stateBadge(t.state)), h('td', { class: 'num' }, fmt(t.value)), h('td', { class: 'num' }, fmt(t.epochs)),
          h('td', { class: 'num' }, fmt(t.seconds, 3)), h('td', { class: 'num' }, fmt(t.rows)),
          h('td', {}, t.job ? link('/ui/jobs/' + t.job, t.job) : '–'))))));
      drawScatter();
    } catch (e) { board.replaceChildren(problem(e)); }
  };
  await loadTrials();
  drawCurves();
  /* live: a state event carries the study (its head and curves); trial
   * events refresh the leaderboard and the curves (at most once a second);
   * the stream's (re)opening, all of it */
  const reload = async () => {
    const live = s => ['queued', 'running'].includes(s.state);
    try {
      const s = await api('/v1/studies/' + id);
      if (live(s) && !live(st)) return loadTrials();  /* a final state event came first */
      showHead(s);
      drawCurves();
    } catch (e) { /* the next event tries again */ }
    await loadTrials();
  };
  let pending = null;
  onEvent = (name, d) => {
    if (name === 'open') { reload(); return; }
    if (name === 'state' && d.id === id) { showHead(d); drawCurves(); }
    if (name === 'state' && d.id === id && !['queued', 'running'].includes(d.state)) loadTrials();
    else if ((name === 'trial' && d.study === id) || (name === 'state' && d.id === id)) {
      if (!pending) pending = setTimeout(() => { pending = null; reload(); }, 1000);
    }
  };
  if (missed) reload();
}

/* ---------------------------------------------------------------- router */

const routes = [
  [/^\/ui\/?$/, pageJobs, 'jobs'],
  [/^\/ui\/jobs\/(job_[0-9a-f]{16})$/, pageJob, 'jobs'],
  [/^\/ui\/compare$/, pageCompare, 'compare'],
  [/^\/ui\/datasets$/, pageDatasets, 'datasets'],
  [/^\/ui\/datasets\/(ds_[0-9a-f]{16})$/, pageDataset, 'datasets'],
  [/^\/ui\/models$/, pageModels, 'models'],
  [/^\/ui\/models\/(mdl_[0-9a-f]{16})$/, pageModel, 'models'],
  [/^\/ui\/studies$/, pageStudies, 'studies'],
  [/^\/ui\/studies\/(std_[0-9a-f]{16})$/, pageStudy, 'studies'],
];

function render() {
  leave();
  const path = location.pathname;
  for (const [re, fn, nav] of routes) {
    const mt = path.match(re);
    if (!mt) continue;
    document.querySelectorAll('nav a').forEach(a => a.classList.toggle('here', a.dataset.nav === nav));
    document.title = 'nnd · ' + nav;
    Promise.resolve(fn(mt[1])).catch(e => main().append(problem(e)));
    return;
  }
  main().replaceChildren(problem(new Error('No such page: ' + path)));
}

function go(path) { history.pushState(null, '', path); render(); }

document.addEventListener('click', e => {
  const a = e.target.closest('a[href^="/ui/"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

/* for benchmarks and tests driving the page: the chart class */
window.nnd = { Chart, charts };
Events.start();
render();
})();
