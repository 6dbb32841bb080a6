"""`ci-risk dashboard`: a local page with the pending push's score, a what-if panel, the history and the metrics.

Standard library only (http.server): one page with inline CSS and script,
nothing fetched from anywhere else, bound to 127.0.0.1 unless told
otherwise. The what-if panel scores edited features with the same model and
reason wording the hook uses.
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from .features import FEATURE_NAMES, Facts, FeatureResult
from .gate import GateReport
from .reasons import top_reasons
from .scoring import PortableModel
from .store import Build

# What a person can change in the what-if panel, with the feature each input sets.
WHAT_IF = (
    ("author_exp", "author's earlier commits here", "number"),
    ("nf", "files changed", "number"),
    ("la", "lines added", "number"),
    ("ld", "lines deleted", "number"),
    ("files_ci", "touches CI configuration", "checkbox"),
    ("files_build", "touches build/dependency manifests", "checkbox"),
    ("files_test", "touches tests", "checkbox"),
    ("files_docs", "touches docs", "checkbox"),
    ("prev_build_failed", "previous build on the branch", "select"),
)


class State:
    """What the page shows; built once by the CLI (or a test) and read by every request."""

    def __init__(self, model: PortableModel, model_label: str, pending: GateReport | None,
                 builds: list[tuple[Build, str | None]], metrics: dict[str, Any] | None,
                 typical: dict[str, float | None] | None = None) -> None:
        self.typical = typical  # the latest recorded build's features: where the what-if starts
        self.model = model
        self.model_label = model_label
        self.pending = pending
        self.builds = builds  # (build, author)
        self.metrics = metrics

    def base(self) -> tuple[dict[str, float | None], Facts]:
        if self.typical is not None:
            return dict(self.typical), Facts()
        if self.pending is not None and self.pending.ranges and self.pending.ranges[0].features.commits:
            features = self.pending.ranges[0].features
            return dict(features.values), features.facts
        values: dict[str, float | None] = {name: 0.0 for name in FEATURE_NAMES}
        values.update(n_commits=1.0, nf=1.0, la=10.0, author_exp=20.0, prev_build_failed=0.0)
        return values, Facts()

    def score(self, overrides: dict[str, Any]) -> dict[str, Any]:
        values, facts = self.base()
        for name, _, kind in WHAT_IF:
            if name not in overrides:
                continue
            raw = overrides[name]
            if kind == "select" and raw in ("", None, "unknown"):
                values[name] = None
            else:
                values[name] = float(raw)
        if (values.get("author_exp") or 0) > 0:
            values["author_first_commit"] = 0.0
        elif values.get("author_exp") == 0:
            values["author_first_commit"] = 1.0
        result = FeatureResult(values, facts, ["what-if"])
        explanation = self.model.explain(values)
        reasons = top_reasons(explanation.contributions, result)
        return {"probability": explanation.probability, "reasons": [r.text for r in reasons],
                "inputs": {name: values.get(name) for name, _, _ in WHAT_IF}}

    def pending_json(self) -> dict[str, Any]:
        if self.pending is None or not self.pending.ranges:
            return {"probability": None, "reasons": [], "range": "nothing to push", "decision": "empty"}
        entry = self.pending.ranges[0]
        return {"probability": entry.probability, "reasons": [r.text for r in entry.reasons],
                "range": entry.push_range.label or entry.push_range.describe(), "decision": entry.decision,
                "commits": len(entry.features.commits), "warn_at": self.pending.warn_at,
                "block_at": self.pending.block_at}

    def history_json(self, branch: str | None, author: str | None) -> dict[str, Any]:
        rows = [
            {"time": b.started_at, "commit": b.commit[:10], "status": b.status, "branch": b.branch, "author": a,
             "flaky": b.flaky}
            for b, a in self.builds
            if (not branch or b.branch == branch) and (not author or a == author)
        ]
        return {"builds": rows[-500:], "branches": sorted({b.branch for b, _ in self.builds if b.branch}),
                "authors": sorted({a for _, a in self.builds if a})}


def make_server(state: State, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def _send(self, body: bytes, kind: str, code: int = 200) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: Any, code: int = 200) -> None:
            self._send(json.dumps(data).encode(), "application/json", code)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/":
                self._send(PAGE.replace("__WHAT_IF__", json.dumps(WHAT_IF)).replace(
                    "__MODEL__", json.dumps(state.model_label)).encode(), "text/html; charset=utf-8")
            elif url.path == "/api/pending":
                self._json(state.pending_json())
            elif url.path == "/api/history":
                self._json(state.history_json(query.get("branch"), query.get("author")))
            elif url.path == "/api/metrics":
                self._json(state.metrics or {})
            else:
                self._json({"error": "not found"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            if urlparse(self.path).path != "/api/whatif":
                self._json({"error": "not found"}, 404)
                return
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            try:
                overrides = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(overrides, dict):
                    raise ValueError("expected an object")
                self._json(state.score(overrides))
            except (ValueError, TypeError) as exc:
                self._json({"error": str(exc)}, 400)

    return ThreadingHTTPServer((host, port), Handler)


def started_message(server: ThreadingHTTPServer) -> str:
    address = server.server_address
    host, port = str(address[0]), int(address[1])
    where = "loopback only" if host.startswith("127.") or host in ("::1", "localhost") else "REACHABLE FROM THE NETWORK"
    return f"ci-risk dashboard on http://{host}:{port}/ ({where}; Ctrl-C stops it) at {time.strftime('%H:%M:%S')}"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ci-risk dashboard</title>
<style>
body{font-family:sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#234;color:#fff;padding:.8em 1.5em}main{display:grid;grid-template-columns:1fr 1fr;gap:1em;padding:1em}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em}
.score{font-size:2.4em;font-weight:bold}.warn{color:#b60}.block{color:#b00}.pass{color:#070}
label{display:block;margin:.3em 0}input[type=number]{width:7em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eee;padding:.2em .4em;text-align:left;font-size:.9em}.fail{color:#b00}
#timeline{width:100%;height:60px}
</style></head><body>
<header><b>ci-risk</b> &mdash; model: <span id="model"></span></header>
<main>
<section><h2>This push</h2><div id="pending-range"></div><div class="score" id="pending-score">&hellip;</div>
<ol id="pending-reasons"></ol></section>
<section><h2>What if&hellip;</h2><form id="whatif"></form><div class="score" id="whatif-score">&hellip;</div>
<ol id="whatif-reasons"></ol></section>
<section><h2>History</h2>
<label>branch <select id="branch"><option value="">all</option></select></label>
<label>author <select id="author"><option value="">all</option></select></label>
<svg id="timeline" viewBox="0 0 1000 60" preserveAspectRatio="none"></svg>
<table><thead><tr><th>when</th><th>commit</th><th>branch</th><th>author</th><th>CI</th></tr></thead>
<tbody id="history"></tbody></table></section>
<section><h2>How the model backtested</h2><table id="metrics"></table></section>
</main>
<script>
const WHAT_IF = __WHAT_IF__;
document.getElementById('model').textContent = __MODEL__;
const pct = p => p === null || p === undefined ? 'not scored' : (100 * p).toFixed(0) + '%';
function cls(p, warn, block) { return p >= block ? 'block' : p >= warn ? 'warn' : 'pass'; }
let thresholds = {warn: 0.5, block: 0.8};
async function pending() {
  const r = await (await fetch('/api/pending')).json();
  document.getElementById('pending-range').textContent = r.range + (r.commits ? ' (' + r.commits + ' commits)' : '');
  const el = document.getElementById('pending-score');
  el.textContent = pct(r.probability);
  if (r.warn_at !== undefined) { thresholds = {warn: r.warn_at, block: r.block_at}; el.className = 'score ' + cls(r.probability, r.warn_at, r.block_at); }
  document.getElementById('pending-reasons').innerHTML = '';
  r.reasons.forEach(t => { const li = document.createElement('li'); li.textContent = t; document.getElementById('pending-reasons').appendChild(li); });
}
function form(inputs) {
  const f = document.getElementById('whatif'); f.innerHTML = '';
  WHAT_IF.forEach(([name, label, kind]) => {
    const l = document.createElement('label'); const v = inputs[name];
    let input;
    if (kind === 'select') {
      input = document.createElement('select');
      [['', 'unknown'], ['0', 'passed'], ['1', 'failed']].forEach(([val, text]) => { const o = document.createElement('option'); o.value = val; o.textContent = text; input.appendChild(o); });
      input.value = v === null ? '' : String(v);
    } else {
      input = document.createElement('input'); input.type = kind;
      if (kind === 'checkbox') input.checked = v > 0; else input.value = v === null ? 0 : v;
    }
    input.name = name; input.id = 'whatif-' + name;
    input.addEventListener('input', whatif); input.addEventListener('change', whatif);
    l.appendChild(input); l.appendChild(document.createTextNode(' ' + label)); f.appendChild(l);
  });
}
function collect() {
  const out = {};
  WHAT_IF.forEach(([name, , kind]) => { const i = document.getElementById('whatif-' + name);
    out[name] = kind === 'checkbox' ? (i.checked ? 1 : 0) : (kind === 'select' ? i.value : Number(i.value)); });
  return out;
}
async function whatif() {
  const r = await (await fetch('/api/whatif', {method: 'POST', body: JSON.stringify(collect())})).json();
  const el = document.getElementById('whatif-score'); el.textContent = pct(r.probability);
  el.className = 'score ' + cls(r.probability, thresholds.warn, thresholds.block);
  const ol = document.getElementById('whatif-reasons'); ol.innerHTML = '';
  r.reasons.forEach(t => { const li = document.createElement('li'); li.textContent = t; ol.appendChild(li); });
  return r;
}
async function history() {
  const b = document.getElementById('branch').value, a = document.getElementById('author').value;
  const r = await (await fetch('/api/history?branch=' + encodeURIComponent(b) + '&author=' + encodeURIComponent(a))).json();
  [['branch', r.branches], ['author', r.authors]].forEach(([id, values]) => { const s = document.getElementById(id);
    if (s.options.length === 1) values.forEach(v => { const o = document.createElement('option'); o.value = v; o.textContent = v; s.appendChild(o); }); });
  const body = document.getElementById('history'); body.innerHTML = '';
  r.builds.slice(-50).reverse().forEach(x => { const tr = document.createElement('tr');
    [new Date(x.time * 1000).toISOString().slice(0, 16).replace('T', ' '), x.commit, x.branch || '-', x.author || '-', x.status + (x.flaky ? ' (flaky)' : '')]
      .forEach(t => { const td = document.createElement('td'); td.textContent = t; tr.appendChild(td); });
    if (x.status === 'fail') tr.className = 'fail'; body.appendChild(tr); });
  const svg = document.getElementById('timeline'); svg.innerHTML = ''; const n = r.builds.length;
  r.builds.forEach((x, i) => { const c = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    c.setAttribute('x', (1000 * i / Math.max(n, 1)).toFixed(1)); c.setAttribute('y', x.status === 'fail' ? 5 : 35);
    c.setAttribute('width', Math.max(1000 / Math.max(n, 1) - 1, 1)); c.setAttribute('height', 20);
    c.setAttribute('fill', x.status === 'fail' ? '#b00' : '#7a7'); svg.appendChild(c); });
}
async function metrics() {
  const m = await (await fetch('/api/metrics')).json(); const t = document.getElementById('metrics');
  const who = Object.keys(m).filter(k => typeof m[k] === 'object' && m[k] && 'f1' in m[k]);
  if (!who.length) { t.innerHTML = '<tr><td>no backtest recorded for this model yet: run ci-risk retrain</td></tr>'; return; }
  let html = '<tr><th></th>' + who.map(w => '<th>' + w + '</th>').join('') + '</tr>';
  ['precision', 'recall', 'f1', 'roc_auc', 'pr_auc', 'brier', 'deferrable_at_90'].forEach(k => {
    html += '<tr><th>' + k + '</th>' + who.map(w => '<td>' + (m[w][k] === null ? '-' : Number(m[w][k]).toFixed(3)) + '</td>').join('') + '</tr>'; });
  t.innerHTML = html;
}
document.getElementById('branch').addEventListener('change', history);
document.getElementById('author').addEventListener('change', history);
(async () => { await pending(); const first = await (await fetch('/api/whatif', {method: 'POST', body: '{}'})).json();
  form(first.inputs); await whatif(); await history(); await metrics(); document.body.dataset.ready = '1'; })();
</script></body></html>
"""


def load_state(db: str | None = None, cwd: str | None = None) -> State:
    """Everything the page shows, for the repository at `cwd`: model, pending push, history, metrics."""
    from . import config, git, ranges
    from .gate import choose_model, evaluate
    from .store import StoreError, open_store, remembered

    info = git.repo_info(cwd)
    settings = config.resolve({"db": db}, toplevel=info.toplevel)
    choice = choose_model(settings, info)
    if choice is None:
        raise ValueError("no model available: `ci-risk train` (or the bundled model) is needed")
    try:
        push = ranges.explicit(None, None, cwd)._replace(branch=git.current_branch(info))
        pending: GateReport | None = evaluate([push], settings, info, cwd=cwd)
    except ranges.RangeError:
        pending = None
    builds: list[tuple[Build, str | None]] = []
    typical: dict[str, float | None] | None = None
    url = settings.db or remembered(info.common_dir)
    root = git.root_commit(info, cwd)
    if url and root:
        try:
            store = open_store(url, create=False)
            try:
                repo_id = store.find_repository(root)
                if repo_id is not None:
                    authors = {i: a for i, (a, _, _) in store.build_features(repo_id).items()}
                    builds = [(b, authors.get(b.id)) for b in store.builds(repo_id)]
                    typical = _latest_build_features(store, repo_id)
            finally:
                store.close()
        except StoreError:
            builds = []
    prov = choice.model.provenance
    metrics = prov.get("backtest") or (prov.get("evaluation", {}).get("median", {}).get("with_history"))
    label = f"{choice.source} {choice.model.kind}" + (f" ({prov['chosen']})" if prov.get("chosen") else "")
    return State(choice.model, label, pending, builds, metrics, typical)


def _latest_build_features(store: Any, repo_id: int) -> dict[str, float | None] | None:
    """The newest recorded build's features, build history included, as training saw them."""
    import math

    from .dataset import ci_table

    table = ci_table(store, repo_id)
    if not len(table):
        return None
    return {name: (None if math.isnan(v) else float(v)) for name, v in zip(FEATURE_NAMES, table.X[-1])}
