"""The dashboard's one page: markup, style and script, nothing fetched from anywhere else.

The script and style are constants so the Content-Security-Policy can allow
exactly them by hash; data reaches the page only through a JSON data block
(escaped by the server) and the JSON API, and is put into the document with
`textContent` and `createElement`, never parsed as markup. Every text shown
goes through `shown`, which escapes control and bidirectional characters as
`safetext.clean` does (its character class comes from there): a branch, file
or author name holding U+202E cannot reorder what the table shows.
"""

from __future__ import annotations

import base64
import hashlib
import json

from ci_risk_hook.model import metrics
from ci_risk_hook.safetext import javascript_class
from ci_risk_hook.views import live

DATA_PLACEHOLDER = "__PAGE_DATA__"

STYLE = """
body{font-family:sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#234;color:#fff;padding:.8em 1.5em;overflow-wrap:anywhere}
main{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1em;padding:1em}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;min-width:0}
.score{font-size:2.4em;font-weight:bold}.warn{color:#b60}.block{color:#b00}.pass{color:#070}
label{display:block;margin:.3em 0}input[type=number]{width:7em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eee;padding:.2em .4em;text-align:left;font-size:.9em;overflow-wrap:anywhere}
tr.fail{color:#b00}
ol.reasons li{margin:.25em 0;white-space:normal;overflow-wrap:anywhere}
.direction{font-weight:bold;font-size:.85em;margin-right:.4em}
li.raises .direction{color:#b00}li.lowers .direction{color:#070}
.contribution{color:#666;font-size:.85em;margin-left:.3em}
.note,.error{color:#555;font-size:.9em;overflow-wrap:anywhere}.error{color:#b00}
#timeline{width:100%;height:60px}
section.wide{grid-column:1/-1}
.answer{font-size:1.05em;border-left:4px solid #4477aa;padding:.3em .6em;background:#f3f6fa}
.drift{color:#b00}tr.group th{font-weight:bold;background:#f6f6f6}
#metrics td,#live-windows td{white-space:nowrap;overflow-wrap:normal}caption{text-align:left;font-size:.9em}
"""

_SCRIPT = """
'use strict';
const PAGE = JSON.parse(document.getElementById('page-data').textContent);
const WORDS = __LIVE_WORDS__;
const $ = id => document.getElementById(id);
const UNSAFE = new RegExp(__UNSAFE__, 'gu');
const NAMED = {'\\n': '\\\\n', '\\r': '\\\\r', '\\t': '\\\\t'};
const hex = (code, width) => code.toString(16).padStart(width, '0');
function shown(text) {  // as safetext.clean: control and layout characters as escapes, everything else as it is
  return String(text).replace(UNSAFE, c => { const code = c.charCodeAt(0);
    if (NAMED[c]) return NAMED[c];
    if (code >= 0xdc80 && code <= 0xdcff) return '\\\\x' + hex(code - 0xdc00, 2);  // a byte that was not UTF-8
    return code <= 0xff ? '\\\\x' + hex(code, 2) : '\\\\u' + hex(code, 4); });
}
function show(id, text) { $(id).textContent = shown(text); }
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = shown(text);
  if (className) node.className = className;
  return node;
}
const pct = p => typeof p !== 'number' ? 'not scored' : (100 * p).toFixed(0) + '%';
function cls(p, warn, block) { return p >= block ? 'block' : p >= warn ? 'warn' : 'pass'; }
let thresholds = {warn: 0.5, block: 0.8};
async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
  return body;
}
function showReasons(list, reasons, space) {
  const unit = space === 'log-odds' ? ' log-odds' : '';
  list.replaceChildren(...reasons.map(r => {
    const lowers = r.direction === 'lowers';
    const li = el('li', null, lowers ? 'lowers' : 'raises');
    li.append(el('span', lowers ? '\\u25bc lowers risk' : '\\u25b2 raises risk', 'direction'), ' ',
              el('span', r.text, 'reason'), ' ',
              el('span', '(' + (r.contribution >= 0 ? '+' : '') + Number(r.contribution).toFixed(2) + unit + ')',
                 'contribution'));
    return li;
  }));
}
function showError(where, error) { $(where).replaceChildren(el('li', String(error.message || error), 'error')); }
async function pending() {
  const r = await api('/api/pending');
  show('pending-range', r.range + (r.commits ? ' (' + r.commits + ' commits)' : ''));
  const score = $('pending-score');
  score.textContent = pct(r.probability);
  if (typeof r.warn_at === 'number') {
    thresholds = {warn: r.warn_at, block: r.block_at};
    if (typeof r.probability === 'number') score.className = 'score ' + cls(r.probability, r.warn_at, r.block_at);
  }
  showReasons($('pending-reasons'), r.reasons, r.space);
}
function form(inputs) {
  const f = $('whatif');
  f.replaceChildren();
  f.addEventListener('submit', event => event.preventDefault());
  PAGE.what_if.forEach(([name, label, kind]) => {
    const l = el('label'); const v = inputs[name];
    let input;
    if (kind === 'select') {
      input = el('select');
      [['', 'unknown'], ['0', 'passed'], ['1', 'failed']].forEach(([val, text]) => {
        const o = el('option', text); o.value = val; input.appendChild(o); });
      input.value = v === null || v === undefined ? '' : String(v);
    } else {
      input = el('input'); input.type = kind; input.min = '0';
      if (kind === 'checkbox') input.checked = v > 0; else input.value = v === null || v === undefined ? 0 : v;
    }
    input.name = name; input.id = 'whatif-' + name;
    input.addEventListener('input', whatif); input.addEventListener('change', whatif);
    l.append(input, ' ' + label); f.appendChild(l);
  });
}
function collect() {
  const out = {};
  PAGE.what_if.forEach(([name, , kind]) => { const i = $('whatif-' + name);
    out[name] = kind === 'checkbox' ? (i.checked ? 1 : 0) : (kind === 'select' ? i.value : Number(i.value)); });
  return out;
}
async function scoreWhatIf(inputs) {
  return api('/api/whatif', {method: 'POST', headers: {'Content-Type': 'application/json'},
                             body: JSON.stringify(inputs)});
}
async function whatif() {
  let r;
  try { r = await scoreWhatIf(collect()); } catch (error) { showError('whatif-reasons', error); return; }
  const score = $('whatif-score'); score.textContent = pct(r.probability);
  score.className = 'score ' + cls(r.probability, thresholds.warn, thresholds.block);
  showReasons($('whatif-reasons'), r.reasons, r.space);
  return r;
}
async function history() {
  const b = $('branch').value, a = $('author').value;
  const r = await api('/api/history?branch=' + encodeURIComponent(b) + '&author=' + encodeURIComponent(a));
  [['branch', r.branches], ['author', r.authors]].forEach(([id, values]) => { const s = $(id);
    if (s.options.length === 1) values.forEach(v => { const o = el('option', v); o.value = v; s.appendChild(o); }); });
  $('history').replaceChildren(...r.builds.slice(-50).reverse().map(x => {
    const tr = el('tr', null, x.status === 'fail' ? 'fail' : '');
    [new Date(x.time * 1000).toISOString().slice(0, 16).replace('T', ' '), x.commit, x.branch || '-', x.author || '-',
     x.status + (x.flaky ? ' (flaky)' : '')].forEach(t => tr.appendChild(el('td', t)));
    return tr; }));
  const n = r.builds.length;
  $('timeline').replaceChildren(...r.builds.map((x, i) => {
    const c = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    c.setAttribute('x', (1000 * i / Math.max(n, 1)).toFixed(1)); c.setAttribute('y', x.status === 'fail' ? 5 : 35);
    c.setAttribute('width', Math.max(1000 / Math.max(n, 1) - 1, 1)); c.setAttribute('height', 20);
    c.setAttribute('fill', x.status === 'fail' ? '#b00' : '#7a7'); return c; }));
}
async function metrics() {
  const m = await api('/api/metrics');
  show('metrics-title', m.title);
  show('metrics-detail', m.detail);
  show('metrics-answer', m.answer || '');
  const head = el('tr'); head.appendChild(el('th'));
  m.columns.forEach(c => head.appendChild(el('th', c)));
  const rows = m.rows.map(row => { const tr = el('tr'); tr.appendChild(el('th', row.label));
    row.values.forEach(v => tr.appendChild(el('td', typeof v === 'number' ? v.toFixed(3) : '-'))); return tr; });
  $('metrics').replaceChildren(...(m.rows.length ? [head, ...rows] : []));
}
function liveTable(windows) {
  const num = v => typeof v === 'number' ? v.toFixed(3) : '-';
  const row = (title, cells, className) => { const tr = el('tr', null, className); tr.appendChild(el('th', title));
    cells.forEach(c => tr.appendChild(el('td', c))); return tr; };
  const head = el('tr'); head.appendChild(el('th'));
  windows.forEach(w => head.appendChild(el('th', w.name)));
  const rows = [head, row('builds with an outcome', windows.map(w => w.builds)),
                row('failures', windows.map(w => w.failures))];
  [['model', 'ci-risk'], ['baseline', WORDS.baseline]].forEach(([who, title]) => {
    const group = el('tr', null, 'group'); const th = el('th', title); th.colSpan = windows.length + 1;
    group.appendChild(th); rows.push(group);
    ['precision', 'recall', 'f1'].forEach(k => rows.push(row(WORDS[k], windows.map(w => num((w[who] || {})[k])))));
  });
  rows.push(row(WORDS.deferred_share, windows.map(w => num(w.deferred_share))));
  [['warned', 'pushed despite a warning'], ['blocked', 'pushed despite a block']].forEach(([k, title]) =>
    rows.push(row(title, windows.map(w => { const o = w.overrides || {};
      return (o[k] || 0) + ' (' + (o[k + '_failed'] || 0) + ' failed)'; }))));
  $('live-windows').replaceChildren(...rows);
}
function showLive(s) {
  if (!s.predictions) { $('live-detail').textContent = WORDS.no_predictions; return; }
  show('live-detail', s.predictions + ' predictions recorded; ' + s.joined +
    ' of their builds have an outcome, measured beside ' + WORDS.baseline + ' on the same builds.');
  const drift = (s.drift || []).map(d => el('li', d.message || d.kind, 'drift'));
  if (s.retrain_would_help) {
    drift.push(el('li', 'Retraining on the recent builds would help: ci-risk retrain', 'drift'));
  }
  $('live-drift').replaceChildren(...drift);
  const windows = s.windows || [];
  if (windows.length) liveTable(windows);
  const seen = new Map();
  windows.forEach(w => (w.deferred_failures || []).forEach(d => { if (!seen.has(d.commit)) seen.set(d.commit, d); }));
  const deferred = [...seen.values()].sort((a, b) => (b.finished_at || 0) - (a.finished_at || 0));
  $('live-deferred-title').textContent = deferred.length ? WORDS.deferred : WORDS.no_deferred;
  $('live-deferred').replaceChildren(...deferred.slice(0, 20).map(d => {
    const li = el('li'); li.append(el('code', String(d.commit).slice(0, 12)));
    if (d.branch) li.append(' on ', el('code', d.branch));
    li.append(': risk ' + (typeof d.score === 'number' ? d.score.toFixed(3) : '-') + ', failed ' +
              new Date(d.finished_at * 1000).toISOString().slice(0, 16).replace('T', ' ') + ' UTC');
    return li; }));
  const line = (tag, cells) => { const tr = el('tr'); cells.forEach(t => tr.appendChild(el(tag, t))); return tr; };
  const num = v => typeof v === 'number' ? v.toFixed(3) : '-';
  const widest = windows.reduce((a, w) => (w.builds || 0) > ((a && a.builds) || 0) ? w : a, windows[0]);
  const buckets = (widest && widest.calibration) || [];
  $('live-calibration').replaceChildren(...(buckets.length ? [
    el('caption', WORDS.calibration + ' (' + widest.name + ')'),
    line('th', ['predicted risk', 'builds', 'predicted failure rate', 'observed failure rate']),
    ...buckets.map(b => line('td', [num(b.low) + '-' + num(b.high), b.builds, num(b.predicted), num(b.observed)]))]
    : []));
  const bypass = s.bypass || [];
  $('live-bypass').replaceChildren(...(bypass.length ? [el('caption', WORDS.bypass),
    line('th', ['author', 'builds', 'without a prediction']),
    ...bypass.map(b => line('td', [b.author, b.builds, b.without_prediction]))] : []));
}
async function live() {
  const response = await fetch('/api/live');
  if (response.status === 404) { $('live-detail').textContent = WORDS.none; return; }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
  showLive(body);
}
show('model', PAGE.model);
$('branch').addEventListener('change', history);
$('author').addEventListener('change', history);
(async () => {
  await pending().catch(error => showError('pending-reasons', error));  // sets the thresholds the what-if uses
  await Promise.all([
    scoreWhatIf({}).then(first => { form(first.inputs); return whatif(); })
      .catch(error => showError('whatif-reasons', error)),
    history().catch(error => $('history').replaceChildren(el('tr', String(error.message || error), 'error'))),
    metrics().catch(error => show('metrics-detail', error.message || error)),
    live().catch(error => show('live-detail', error.message || error)),
  ]);
  document.body.dataset.ready = '1';
})();
"""

# The live panel's words, from the tables the report uses too (constants: the script's hash stays fixed).
LIVE_WORDS = {
    **{key: metrics.label(key) for key in ("precision", "recall", "f1", "deferred_share")},
    "baseline": live.BASELINE,
    "none": live.ABSENT,
    "no_predictions": live.NO_PREDICTIONS,
    "deferred": live.DEFERRED,
    "no_deferred": live.NO_DEFERRED,
    "bypass": live.BYPASS,
    "calibration": live.CALIBRATION,
}
SCRIPT = _SCRIPT.replace("__LIVE_WORDS__", json.dumps(LIVE_WORDS).replace("<", "\\u003c")).replace(
    "__UNSAFE__", json.dumps(javascript_class())
)

BODY = """<header><b>ci-risk</b> &mdash; model: <span id="model"></span></header>
<main>
<section><h2>This push</h2><div id="pending-range"></div><div class="score" id="pending-score">&hellip;</div>
<ol class="reasons" id="pending-reasons"></ol></section>
<section><h2>What if&hellip;</h2><form id="whatif"></form><div class="score" id="whatif-score">&hellip;</div>
<ol class="reasons" id="whatif-reasons"></ol></section>
<section><h2 id="metrics-title">How the model was evaluated</h2><p class="answer" id="metrics-answer"></p>
<p class="note" id="metrics-detail"></p><table id="metrics"></table></section>
<section id="live"><h2>Is it helping? (live)</h2><p class="note" id="live-detail">&hellip;</p>
<ul id="live-drift"></ul><table id="live-windows"></table><p id="live-deferred-title"></p><ul id="live-deferred"></ul>
<table id="live-calibration"></table><table id="live-bypass"></table></section>
<section class="wide"><h2>History</h2>
<label>branch <select id="branch"><option value="">all</option></select></label>
<label>author <select id="author"><option value="">all</option></select></label>
<svg id="timeline" viewBox="0 0 1000 60" preserveAspectRatio="none"></svg>
<table><thead><tr><th>when</th><th>commit</th><th>branch</th><th>author</th><th>CI</th></tr></thead>
<tbody id="history"></tbody></table></section>
</main>"""

PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>ci-risk dashboard</title>\n'
    '<link rel="icon" href="data:,">\n'
    f"<style>{STYLE}</style></head><body>\n{BODY}\n"
    f'<script type="application/json" id="page-data">{DATA_PLACEHOLDER}</script>\n'
    f"<script>{SCRIPT}</script></body></html>\n"
)


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# Only this page's own script and style run; it talks to its own server and nowhere else.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_sha256_source(SCRIPT)}",
        f"style-src {_sha256_source(STYLE)}",
        "connect-src 'self'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
