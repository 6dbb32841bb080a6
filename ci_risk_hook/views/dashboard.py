"""`ci-risk dashboard`: a local page with the pending push's score, a what-if panel, the history and the metrics.

Standard library only (http.server): one page with inline CSS and script,
nothing fetched from anywhere else, bound to 127.0.0.1 unless told
otherwise. The what-if panel scores edited features with the same model and
reason wording the hook uses.

The page shows author e-mails, branches and paths, so the server treats every
request as possibly hostile: it answers only Host names that mean this machine
(a DNS-rebinding page cannot read it), takes what-if requests only as JSON
from its own origin, bounds bodies and connections, and answers every bad
request with a one-line JSON error. Data from the repository and the model
reaches the page as text, never as markup or script.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import parse_qs, urlparse

from ci_risk_hook.errors import EXIT_USAGE, CiRiskError
from ci_risk_hook.features.extract import FEATURE_NAMES, Facts, FeatureResult
from ci_risk_hook.features.reasons import Reason, describe, top_reasons
from ci_risk_hook.gate.evaluate import GateReport
from ci_risk_hook.model import metrics
from ci_risk_hook.model.scoring import PortableModel
from ci_risk_hook.outcomes.monitor import empty_summary, live_summary
from ci_risk_hook.outcomes.store import Build
from ci_risk_hook.views.dashboard_page import CONTENT_SECURITY_POLICY, DATA_PLACEHOLDER, PAGE

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
    ("branch_mainline", "goes to the mainline branch", "checkbox"),
    ("prev_build_failed", "previous build on the branch", "select"),
)
_WHAT_IF_KIND = {name: kind for name, _, kind in WHAT_IF}

MAX_BODY = 64 * 1024  # a what-if request is a few hundred bytes
MAX_INPUT = 1e9  # a what-if count beyond this is a typing error, not a push
REQUEST_QUEUE = 512  # connections the kernel holds while threads start: a burst of 200 is answered, not reset
SOCKET_TIMEOUT = 15.0  # seconds a connection may stay silent (or trickle its body) before it is dropped
_LOOPBACK_NAMES = ("localhost",)
_WILDCARDS = ("", "0.0.0.0", "::")

# Column titles of a backtest, as `ci-risk backtest` prints them.
_BACKTEST_COLUMNS = dict(metrics.COLUMNS)


class RequestError(CiRiskError):
    """A request the dashboard refuses: the HTTP status and a one-line reason."""

    exit_code = EXIT_USAGE

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---- what arrives: Host, Origin, Content-Length, body -------------------------------------------------------------


def split_host(value: str) -> tuple[str, int] | None:
    """`name:port`, `[v6]:port` or `name` (port 80) as (lower-case host, port); None when malformed."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?", value.strip())
    if match is None:
        return None
    host = match.group(1).lower().strip("[]")
    port = int(match.group(2)) if match.group(2) else 80
    return (host, port) if 0 < port < 65536 else None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HostPolicy(NamedTuple):
    """Which `Host` values name this server: loopback, the configured --host, on its own port.

    A DNS-rebinding page reaches the server under the attacker's own name, so
    refusing unknown names keeps it from reading the page. IP literals are
    safe to accept when bound to every interface: rebinding needs a name.
    """

    configured: str
    port: int

    def allows(self, value: str | None) -> bool:
        parsed = split_host(value) if value else None
        if parsed is None or parsed[1] != self.port:
            return False
        host = parsed[0]
        configured = self.configured.lower().strip("[]")
        if host in _LOOPBACK_NAMES or host == configured:
            return True
        address = _ip(host)
        return address is not None and (address.is_loopback or configured in _WILDCARDS)


def check_origin(origin: str | None, host: str) -> None:
    """A browser's POST carries its page's origin; only this server's own page may score what-ifs."""
    if origin is None:
        return  # not a browser (curl, a script): the Host check already applies
    if not origin.lower().startswith("http://") or split_host(origin[len("http://") :]) != split_host(host):
        raise RequestError(403, f"cross-origin request refused (Origin {origin[:80]!r})")


def body_length(values: list[str], chunked: bool) -> int:
    """The declared body size, refused unless it is one plain number within MAX_BODY."""
    if chunked:
        raise RequestError(400, "chunked request bodies are not supported: send Content-Length")
    if not values:
        raise RequestError(400, "Content-Length is required")
    if len(set(values)) > 1:
        raise RequestError(400, "conflicting Content-Length headers")
    raw = values[0].strip()
    if not re.fullmatch(r"[0-9]+", raw):
        raise RequestError(400, f"Content-Length is not a byte count: {raw[:40]!r}")
    if len(raw) > len(str(MAX_BODY)) or int(raw) > MAX_BODY:
        shown = raw if len(raw) <= 20 else raw[:20] + "..."
        raise RequestError(400, f"body too large: {shown} bytes (at most {MAX_BODY})")
    return int(raw)


def check_content_type(value: str | None) -> None:
    if (value or "").split(";", 1)[0].strip().lower() != "application/json":
        raise RequestError(400, f"expected Content-Type application/json, got {(value or 'none')[:60]!r}")


def _refuse_constant(name: str) -> float:
    raise RequestError(400, f"non-finite number in body: {name}")


def parse_whatif(body: bytes) -> dict[str, float | None]:
    """The what-if inputs in a request body: a flat JSON object of known inputs with finite, non-negative numbers."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise RequestError(400, "body is not UTF-8") from None
    except RecursionError:
        raise RequestError(400, "body is nested too deeply") from None
    except ValueError as exc:
        raise RequestError(400, f"body is not JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "expected a JSON object of what-if inputs")
    return {str(name): _whatif_value(str(name), value) for name, value in data.items()}


def _whatif_value(name: str, value: Any) -> float | None:
    kind = _WHAT_IF_KIND.get(name)
    if kind is None:
        raise RequestError(400, f"unknown what-if input: {name[:40]!r}")
    if kind == "select":
        if value in (None, "", "unknown"):
            return None
        if value in (0, 1, "0", "1"):
            return float(value)
        raise RequestError(400, f'{name}: expected 0 (passed), 1 (failed) or "unknown"')
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, (int, float)) or not 0 <= value <= MAX_INPUT:  # NaN fails the comparison too
        raise RequestError(400, f"{name}: expected a number from 0 to {MAX_INPUT:,.0f}")
    if kind == "checkbox" and value not in (0, 1):
        raise RequestError(400, f"{name}: expected 0 or 1")
    return float(value)


# ---- what leaves: JSON without NaN, script data that cannot close its element --------------------------------------


def finite(value: Any) -> Any:
    """JSON has no NaN or Infinity (browsers refuse them): non-finite numbers become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value: Any) -> str:
    """JSON safe inside an HTML <script> element: no `</script>`, `<!--` or line separators survive as such."""
    text = json.dumps(finite(value), allow_nan=False)
    for raw, escaped in _SCRIPT_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def render_page(model_label: str) -> bytes:
    data = script_json({"what_if": WHAT_IF, "model": model_label})
    return PAGE.replace(DATA_PLACEHOLDER, data).encode("utf-8")


# ---- what the page shows ------------------------------------------------------------------------------------------


def page_reasons(contributions: Mapping[str, float], result: FeatureResult) -> list[dict[str, Any]]:
    """The hook's reasons, each with its direction; plus the strongest risk-lowering factor when it decides the score.

    A score can be low although every listed reason raises it: one factor
    lowering it outweighs them all. Listing only the raising ones would make
    the page contradict itself, so that factor is shown too, marked as such.
    """
    reasons = top_reasons(contributions, result)
    lowest = min(contributions.items(), key=lambda kv: kv[1], default=None)
    if lowest is not None and lowest[1] < 0 and all(r.feature != lowest[0] for r in reasons):
        raising = sum(r.contribution for r in reasons if r.contribution > 0)
        if -lowest[1] > raising:
            name, contribution = lowest
            value = result.values.get(name)
            text = describe(name, value, result)
            if all(r.text != text for r in reasons):
                reasons.append(Reason(name, value, contribution, text))
    return [
        {
            "text": r.text,
            "feature": r.feature,
            "contribution": r.contribution,
            "direction": "lowers" if r.contribution < 0 else "raises",
        }
        for r in reasons
    ]


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _metric_columns(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    known = [(title, report[key]) for key, title in _BACKTEST_COLUMNS.items() if isinstance(report.get(key), dict)]
    other = [
        (str(key), value)
        for key, value in report.items()
        if key not in _BACKTEST_COLUMNS and isinstance(value, dict) and "f1" in value
    ]
    return known + other


def _metric_table(report: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    columns = _metric_columns(report)
    rows = [
        {"label": title, "values": [_number(column.get(key)) for _, column in columns]}
        for key, title in metrics.METRICS
    ]
    return [title for title, _ in columns], rows


def metrics_panel(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation this model carries, named for what it is: a backtest, a training validation, or neither."""
    backtest = provenance.get("backtest")
    if isinstance(backtest, dict) and _metric_columns(backtest):
        columns, rows = _metric_table(backtest)
        detail = (
            f"Each build predicted by a model trained only on the builds finished before it: "
            f"{backtest.get('predicted', '?')} of {backtest.get('builds', '?')} builds, "
            f"{backtest.get('retrains', '?')} retrains. Parrot: the outcome of the last build that had "
            "finished; Parrot*: the previous build in push order (optimistic)."
        )
        return {
            "title": "How the model backtested on this repository",
            "answer": metrics.answer(backtest),
            "detail": detail,
            "columns": columns,
            "rows": rows,
        }
    evaluation = provenance.get("evaluation")
    median = evaluation.get("median") if isinstance(evaluation, dict) else None
    with_history = median.get("with_history") if isinstance(median, dict) else None
    if isinstance(with_history, dict) and _metric_columns(with_history):
        projects = evaluation.get("projects") if isinstance(evaluation, dict) else None
        count = len(projects) if isinstance(projects, list) else "several"
        columns, rows = _metric_table(with_history)
        detail = (
            f"Measured on {count} other projects it was not trained on (median, with their build history), "
            "not on this repository: `ci-risk retrain` backtests a model trained here."
        )
        return {
            "title": "How the model was evaluated on other projects",
            "detail": detail,
            "columns": columns,
            "rows": rows,
        }
    validation = provenance.get("validation_average_precision")
    if isinstance(validation, dict) and validation:
        chosen = provenance.get("chosen")
        rows = [
            {"label": f"{name} (chosen)" if name == chosen else str(name), "values": [_number(score)]}
            for name, score in validation.items()
        ]
        detail = (
            f"Not a backtest: while training on {provenance.get('rows', '?')} builds, each candidate was fit "
            "on the oldest 60 %, calibrated on the next 20 % and ranked by average precision (1.0 = every "
            "failure ranked first) on the newest 20 %. `ci-risk retrain` records a rolling backtest."
        )
        return {
            "title": "How the model was validated in training",
            "detail": detail,
            "columns": ["average precision"],
            "rows": rows,
        }
    return {
        "title": "How the model was evaluated",
        "columns": [],
        "rows": [],
        "detail": "This model carries no evaluation: `ci-risk retrain` trains and backtests one here.",
    }


class State:
    """What the page shows; built once by the CLI (or a test) and read by every request."""

    def __init__(
        self,
        model: PortableModel,
        model_label: str,
        pending: GateReport | None,
        builds: list[tuple[Build, str | None]],
        panel: dict[str, Any] | None = None,
        typical: dict[str, float | None] | None = None,
        live: dict[str, Any] | None = None,
    ) -> None:
        self.typical = typical  # the latest recorded build's features: where the what-if starts
        self.model = model
        self.model_label = model_label
        self.pending = pending
        self.builds = builds  # (build, author)
        self.panel = panel if panel is not None else metrics_panel(model.provenance)
        self.live = live if live is not None else empty_summary()  # `ci-risk monitor`'s figures, for /api/live

    def base(self) -> tuple[dict[str, float | None], Facts]:
        if self.typical is not None:
            return dict(self.typical), Facts()
        if self.pending is not None and self.pending.ranges and self.pending.ranges[0].features.commits:
            features = self.pending.ranges[0].features
            return dict(features.values), features.facts
        values: dict[str, float | None] = {name: 0.0 for name in FEATURE_NAMES}
        values.update(n_commits=1.0, nf=1.0, la=10.0, author_exp=20.0, branch_mainline=1.0, prev_build_failed=0.0)
        return values, Facts()

    def score(self, overrides: Mapping[str, float | None]) -> dict[str, Any]:
        """Score the what-if base with `overrides` (checked by `parse_whatif`)."""
        values, facts = self.base()
        for name, _, _ in WHAT_IF:
            if name in overrides:
                values[name] = overrides[name]
        if (values.get("author_exp") or 0) > 0:
            values["author_first_commit"] = 0.0
        elif values.get("author_exp") == 0:
            values["author_first_commit"] = 1.0
        result = FeatureResult(values, facts, ["what-if"])
        explanation = self.model.explain(values)
        return {
            "probability": explanation.probability,
            "space": explanation.space,
            "reasons": page_reasons(explanation.contributions, result),
            "inputs": {name: values.get(name) for name, _, _ in WHAT_IF},
        }

    def pending_json(self) -> dict[str, Any]:
        if self.pending is None or not self.pending.ranges:
            return {"probability": None, "reasons": [], "range": "nothing to push", "decision": "empty"}
        entry = self.pending.ranges[0]
        reasons: list[dict[str, Any]] = []
        space = entry.space
        if entry.probability is not None:
            explanation = self.model.explain(entry.features.values)
            reasons, space = page_reasons(explanation.contributions, entry.features), explanation.space
        return {
            "probability": entry.probability,
            "reasons": reasons,
            "space": space,
            "range": entry.push_range.label or entry.push_range.describe(),
            "decision": entry.decision,
            "commits": len(entry.features.commits),
            "warn_at": self.pending.warn_at,
            "block_at": self.pending.block_at,
        }

    def history_json(self, branch: str | None, author: str | None) -> dict[str, Any]:
        rows = [
            {
                "time": b.started_at,
                "commit": b.commit[:10],
                "status": b.status,
                "branch": b.branch,
                "author": a,
                "flaky": b.flaky,
            }
            for b, a in self.builds
            if (not branch or b.branch == branch) and (not author or a == author)
        ]
        return {
            "builds": rows[-500:],
            "branches": sorted({b.branch for b, _ in self.builds if b.branch}),
            "authors": sorted({a for _, a in self.builds if a}),
        }


# ---- the server ---------------------------------------------------------------------------------------------------

_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


class DashboardServer(ThreadingHTTPServer):
    """One thread per connection, a listen queue deep enough for a burst, IPv4 or IPv6 as the address says."""

    request_queue_size = REQUEST_QUEUE
    daemon_threads = True
    socket_timeout = SOCKET_TIMEOUT

    def __init__(self, address: tuple[Any, ...], family: int, state: State, configured_host: str) -> None:
        self.address_family = family
        self.state = state
        super().__init__(address, _Handler)
        self.hosts = HostPolicy(configured_host, int(self.server_address[1]))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer is not news; anything else gets one line, never a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            print(f"ci-risk dashboard: request failed: {type(error).__name__}: {error}", file=sys.stderr)


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    error_content_type = "application/json"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.socket_timeout)  # a silent or trickling client is dropped

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def version_string(self) -> str:
        return "ci-risk-dashboard"  # not the Python version

    def _send(self, body: bytes, kind: str, code: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (*_SECURITY_HEADERS, *headers):
            self.send_header(name, value)
        if code >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, code: int = 200) -> None:
        body = json.dumps(finite(data), allow_nan=False).encode()
        self._send(body, "application/json", code, (("Content-Security-Policy", "default-src 'none'"),))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, unknown method, long headers) as one-line JSON too."""
        text = message or self.responses.get(code, ("error",))[0]
        self._json({"error": " ".join(str(text).split())}, code)

    def _guarded(self, handle: Callable[[], None]) -> None:
        try:
            if not self.server.hosts.allows(self.headers.get("Host")):
                raise RequestError(
                    421,
                    f"unknown Host {str(self.headers.get('Host'))[:80]!r}: open the dashboard "
                    "by the address it printed",
                )
            handle()
        except RequestError as exc:
            self._json({"error": str(exc)}, exc.status)
        except Exception as exc:  # noqa: BLE001 - one line to the client, never a traceback
            self._json({"error": f"internal error: {type(exc).__name__}: {exc}"[:200]}, 500)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._guarded(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    def _get(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        state = self.server.state
        if url.path == "/":
            self._send(
                render_page(state.model_label),
                "text/html; charset=utf-8",
                headers=(("Content-Security-Policy", CONTENT_SECURITY_POLICY),),
            )
        elif url.path == "/api/pending":
            self._json(state.pending_json())
        elif url.path == "/api/history":
            self._json(state.history_json(query.get("branch"), query.get("author")))
        elif url.path == "/api/metrics":
            self._json(state.panel)
        elif url.path == "/api/live":
            self._json(state.live)
        else:
            raise RequestError(404, "not found")

    def _post(self) -> None:
        if urlparse(self.path).path != "/api/whatif":
            raise RequestError(404, "not found")
        check_origin(self.headers.get("Origin"), str(self.headers.get("Host")))
        check_content_type(self.headers.get("Content-Type"))
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        length = body_length(self.headers.get_all("Content-Length") or [], chunked)
        try:
            body = self.rfile.read(length)
        except OSError:
            raise RequestError(400, "the body did not arrive in time") from None
        if len(body) < length:
            raise RequestError(400, f"body shorter than its Content-Length ({len(body)} of {length} bytes)")
        self._json(self.server.state.score(parse_whatif(body)))


def _bind_address(host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    """The socket family and address for `host`: `::1` and other IPv6 addresses need AF_INET6."""
    infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return family, address


def make_server(state: State, host: str = "127.0.0.1", port: int = 0) -> DashboardServer:
    family, address = _bind_address(host, port)
    return DashboardServer(address, family, state, host)


def started_message(server: ThreadingHTTPServer) -> str:
    address = server.server_address
    host, port = str(address[0]), int(address[1])
    ip = _ip(host)
    loopback = (ip is not None and ip.is_loopback) or host in _LOOPBACK_NAMES
    where = "loopback only" if loopback else "REACHABLE FROM THE NETWORK"
    shown = f"[{host}]" if ":" in host else host
    return f"ci-risk dashboard on http://{shown}:{port}/ ({where}; Ctrl-C stops it) at {time.strftime('%H:%M:%S')}"


def load_state(db: str | None = None, cwd: str | None = None) -> State:
    """Everything the page shows, for the repository at `cwd`: model, pending push, history, metrics."""
    from ci_risk_hook import config
    from ci_risk_hook.gate.evaluate import choose_model, evaluate
    from ci_risk_hook.git import ranges
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.outcomes.store import open_existing, remembered

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
    live: dict[str, Any] | None = None
    url = settings.db or remembered(info.common_dir)
    root = git.root_commit(info, cwd)
    if url and root:
        # A store named or recorded into that is not there, or cannot be read, is refused as by every reading
        # command (StoreError, one line): an empty page would say "no history" of a mistyped --db.
        store = open_existing(url, create=False)
        try:
            repo_id = store.find_repository(root)
            if repo_id is not None:
                authors = {i: a for i, (a, _, _) in store.build_features(repo_id).items()}
                builds = [(b, authors.get(b.id)) for b in store.builds(repo_id)]
                typical = _latest_build_features(store, repo_id)
                live = live_summary(store, repo_id)
        finally:
            store.close()
    prov = choice.model.provenance
    label = f"{choice.source} {choice.model.kind}" + (f" ({prov['chosen']})" if prov.get("chosen") else "")
    return State(choice.model, label, pending, builds, metrics_panel(prov), typical, live)


def _latest_build_features(store: Any, repo_id: int) -> dict[str, float | None] | None:
    """The newest recorded build's features, build history included, as training saw them."""
    from ci_risk_hook.model.dataset import ci_table

    table = ci_table(store, repo_id)
    if not len(table):
        return None
    return {name: (None if math.isnan(v) else float(v)) for name, v in zip(FEATURE_NAMES, table.X[-1])}
