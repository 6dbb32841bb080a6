"""The dashboard: a real server on loopback, raw HTTP from hostile clients, and a real headless Chromium.

Chromium and ChromeDriver come from Debian (`chromium`, `chromium-driver`),
installed by .ci/run; elsewhere the browser tests are skipped, visibly (and
under CI=true they fail instead). The repository's data and the model's
provenance are treated as hostile: nothing in them may run in the page.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from ci_risk_hook.features.extract import FEATURE_NAMES, Facts, FeatureResult
from ci_risk_hook.features.reasons import describe
from ci_risk_hook.gate.evaluate import bundled_model_path
from ci_risk_hook.model import metrics
from ci_risk_hook.model.scoring import PortableModel
from ci_risk_hook.views import dashboard, dashboard_page, demo, live
from testing.live_summary import HOSTILE, live_summary_by_hand
from testing.repos import REPO_ROOT, Repo, lines, make_repo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = REPO_ROOT / "test-artifacts"
ON_CI = os.environ.get("CI") == "true"
HAVE_BROWSER = os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)
PWN_SCRIPT = "</script><script>window.__pwned=1</script>"
PWN_KEY = "<img src=x onerror=window.__pwned=2>"


def require_browser() -> None:
    if HAVE_BROWSER:
        return
    message = "needs Debian's chromium and chromium-driver (installed by .ci/run)"
    if ON_CI:
        pytest.fail(message + ": CI must run the browser tests")
    pytest.skip(message)


@contextlib.contextmanager
def serving(state: dashboard.State, host: str = "127.0.0.1") -> Iterator[dashboard.DashboardServer]:
    server = dashboard.make_server(state, host, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base_url(server: dashboard.DashboardServer) -> str:
    host = str(server.server_address[0])
    return f"http://{'[' + host + ']' if ':' in host else host}:{server.server_address[1]}/"


def raw_request(
    server: dashboard.DashboardServer,
    method: str,
    path: str,
    headers: dict[str, str | None],
    body: bytes = b"",
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (a None value leaves the header out, Host included)."""
    host = str(server.server_address[0])
    conn = http.client.HTTPConnection(host, server.server_address[1], timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            if value is not None:
                conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def own_host(server: dashboard.DashboardServer) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


def post_whatif(
    server: dashboard.DashboardServer, body: bytes, **headers: str | None
) -> tuple[int, dict[str, str], bytes]:
    sent: dict[str, str | None] = {
        "Host": own_host(server),
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
    }
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return raw_request(server, "POST", "/api/whatif", sent, body)


def one_line_error(body: bytes) -> str:
    text = body.decode("utf-8")
    assert "\n" not in text.strip() and "Traceback" not in text, text
    error = json.loads(text)["error"]
    assert isinstance(error, str) and error and "\n" not in error
    return error


# ---- a model whose coefficients we choose, and whose provenance is hostile ------------------------------------------

COEFFICIENTS = {
    "la": 0.01,
    "files_ci": 2.0,
    "files_build": 2.0,
    "files_test": 3.0,
    "n_commits": -10.0,
    "author_sexp": 0.1,
}


def linear_artifact(coefficients: dict[str, float], provenance: dict[str, Any], intercept: float = -1.0) -> dict:
    """A logistic model over every feature with exactly these coefficients (mean 0): contributions are coef * value."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from ci_risk_hook.model.export import export_model

    n = len(FEATURE_NAMES)
    X = np.zeros((4, n))
    X[1, 0] = X[3, 0] = 1.0
    lr = LogisticRegression().fit(X, [0, 1, 0, 1])
    lr.coef_ = np.array([[coefficients.get(name, 0.0) for name in FEATURE_NAMES]])
    lr.intercept_ = np.array([intercept])
    return export_model(
        lr,
        list(FEATURE_NAMES),
        imputation={name: 0.0 for name in FEATURE_NAMES},
        feature_means=[0.0] * n,
        provenance=provenance,
    )


METRICS = {
    "precision": 0.5,
    "recall": 0.75,
    "f1": 0.6,
    "roc_auc": 0.8,
    "pr_auc": 0.55,
    "brier": 0.12,
    "deferrable_at_90": 0.3,
    "recall_at_defer_threshold": 0.875,
}
HOSTILE_PROVENANCE = {
    "chosen": PWN_SCRIPT + "\u2028<!--",
    "rows": 120,
    "backtest": {
        "builds": 120,
        "predicted": "<b id=pwned-b>70</b>",
        "retrains": 3,
        "model": METRICS,
        "parrot": {**METRICS, "f1": 0.4},
        PWN_KEY: {**METRICS, "f1": 0.2},
    },
}


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """A project with recorded builds, a long test file name, and a repository model with hostile provenance.

    Built once per module (the tests only read it), with git's configuration isolated as conftest does.
    """
    from ci_risk_hook.model.export import write_artifact
    from ci_risk_hook.outcomes.record import compute_build_features, open_for_repo
    from ci_risk_hook.outcomes.records import BuildRecord

    home = tmp_path_factory.mktemp("hostile-home")
    (home / ".gitconfig").write_text("[user]\n\tname = Test Person\n\temail = test@example.com\n")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(home))
        env.setenv("CI_RISK_HOME", str(home / "ci-risk"))
        env.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        env.setenv("GIT_CONFIG_NOSYSTEM", "1")
        repo = make_repo(tmp_path_factory.mktemp("hostile") / "project")
        maintainer = "Maintainer <maint@example.com>"
        repo.commit(
            {"src/app.py": lines(50), "README.md": "# app\n", "setup.py": "setup()\n"},
            "initial import",
            author=maintainer,
        )
        for i in range(5):
            repo.commit(
                {"src/app.py": lines(51 + i), "tests/test_app.py": lines(10 + i, "test")},
                f"improve {i}",
                author=maintainer,
            )
        repo.commit({"tests/test_" + "x" * 180 + ".py": lines(3)}, "a test with a long name", author=maintainer)
        target = open_for_repo(str(store_path(repo)), str(repo.path))
        try:
            commits = repo.git("log", "--reverse", "--format=%H %ct").splitlines()
            target.store.add_builds(
                target.repo_id,
                [
                    BuildRecord(
                        commit=sha,
                        status="fail" if i == 2 else "pass",
                        source="record",
                        branch="main",
                        started_at=int(at) + 60,
                        finished_at=int(at) + 600,
                    )
                    for i, (sha, at) in enumerate(line.split() for line in commits)
                ],
            )
            compute_build_features(target, str(repo.path))
        finally:
            target.store.close()
        write_artifact(linear_artifact(COEFFICIENTS, HOSTILE_PROVENANCE), repo.path / ".git" / "ci-risk" / "model.json")
        yield repo


def store_path(repo: Repo) -> Path:
    return repo.path / ".git" / "ci-risk" / "history.sqlite"


@pytest.fixture(scope="module")
def hostile(hostile_repo: Repo) -> Iterator[dashboard.DashboardServer]:
    state = dashboard.load_state(str(store_path(hostile_repo)), cwd=str(hostile_repo.path))
    with serving(state) as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dashboard.DashboardServer]:
    repo = tmp_path_factory.mktemp("dash") / "demo"
    demo.build(str(repo), seed=4, commits=100)
    os.environ["CI_RISK_DB"] = str(repo / ".git" / "ci-risk" / "history.sqlite")
    try:
        state = dashboard.load_state(cwd=str(repo))
    finally:
        del os.environ["CI_RISK_DB"]
    with serving(state) as server:
        yield server


# ---- the API ------------------------------------------------------------------------------------------------------


def test_api_scores_what_if_inputs(served: dashboard.DashboardServer) -> None:
    def whatif(body: dict) -> dict:
        request = urllib.request.Request(
            base_url(served) + "api/whatif",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    calm = whatif({"files_ci": 0, "files_build": 0, "la": 10, "author_exp": 80})
    risky = whatif({"files_ci": 1, "files_build": 1, "la": 600, "nf": 3, "author_exp": 0})
    assert risky["probability"] > calm["probability"]
    assert len(risky["reasons"]) == 3
    with urllib.request.urlopen(base_url(served) + "api/history?branch=main") as response:
        history = json.loads(response.read())
    assert history["builds"] and all(b["branch"] == "main" for b in history["builds"])


def test_server_binds_loopback_and_says_so() -> None:
    server = dashboard.make_server(dashboard.State.__new__(dashboard.State), "127.0.0.1", 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert "loopback only" in dashboard.started_message(server)
    finally:
        server.server_close()


def test_reasons_carry_their_direction_and_a_dominant_lowering_factor_is_shown(
    hostile: dashboard.DashboardServer,
) -> None:
    """Three reasons raise the risk, yet the score is low: the factor lowering it must be on the page, as lowering."""
    status, _, body = raw_request(hostile, "GET", "/api/pending", {"Host": own_host(hostile)})
    pending = json.loads(body)
    assert status == 200 and pending["probability"] < 0.01, pending
    directions = {r["feature"]: r["direction"] for r in pending["reasons"]}
    assert directions["n_commits"] == "lowers", pending["reasons"]
    assert [d for d in directions.values() if d == "raises"], pending["reasons"]
    for reason in pending["reasons"]:
        assert (reason["contribution"] < 0) == (reason["direction"] == "lowers"), reason
    lowering = next(r for r in pending["reasons"] if r["feature"] == "n_commits")
    assert lowering["text"] == "7 commits in this push" and lowering["contribution"] == pytest.approx(-70.0)

    status, _, body = post_whatif(hostile, b'{"files_ci": 1, "la": 300}')
    whatif = json.loads(body)
    assert status == 200 and whatif["space"] == "log-odds"
    directions = [r["direction"] for r in whatif["reasons"]]
    assert directions.count("lowers") == 1 and directions.count("raises") >= 2, whatif["reasons"]
    assert [r for r in whatif["reasons"] if r["direction"] == "lowers"][0]["feature"] == "n_commits"


def test_what_if_reasons_are_whole_sentences_without_the_facts_behind_them() -> None:
    """The what-if starts from the latest build's numbers, with no file list or subjects: no sentence may dangle."""
    model = PortableModel.from_dict(linear_artifact({"author_sexp": 0.1}, {}))
    typical = {name: 0.0 for name in FEATURE_NAMES}
    typical.update(author_sexp=78.0, n_commits=1.0, nf=1.0, la=10.0)
    state = dashboard.State(model, "test", None, [], typical=typical)
    first = state.score({})["reasons"][0]
    assert first["feature"] == "author_sexp" and first["text"].startswith("the author's 78 earlier commits in "), first
    assert not re.search(r'(:|\bin|"")\s*$', first["text"]), first
    values = {**typical, "ns": 2.0, "new_files": 1.0, "msg_fix": 1.0, "msg_revert": 1.0, "msg_wip": 1.0}
    result = FeatureResult(values, Facts(), ["what-if"])
    for name in ("author_sexp", "ns", "new_files", "msg_fix", "msg_revert", "msg_wip"):
        text = describe(name, values[name], result)
        assert not re.search(r'(:|\bin|"")\s*$', text), (name, text)


def test_the_metrics_panel_shows_the_evaluation_the_demo_model_carries(served: dashboard.DashboardServer) -> None:
    """After `ci-risk demo` the panel is never empty: the model's backtest, else its training validation."""
    status, _, body = raw_request(served, "GET", "/api/metrics", {"Host": own_host(served)})
    panel = json.loads(body)
    assert status == 200
    assert panel["title"] in ("How the model backtested on this repository", "How the model was validated in training")
    # A baseline may lack a figure (None); the model's own column never does.
    assert panel["rows"] and all(isinstance(row["values"][0], float) for row in panel["rows"]), panel
    assert all(v is None or isinstance(v, float) for row in panel["rows"] for v in row["values"]), panel
    if panel["title"].endswith("in training"):
        assert "Not a backtest" in panel["detail"] and any(row["label"].endswith("(chosen)") for row in panel["rows"])


def test_the_metrics_panel_names_each_kind_of_evaluation() -> None:
    backtest = dashboard.metrics_panel(
        {"backtest": {"builds": 300, "predicted": 250, "retrains": 10, "model": METRICS, "parrot": METRICS}}
    )
    assert backtest["columns"] == ["ci-risk", "Parrot"] and "250 of 300 builds" in backtest["detail"]
    assert [row["label"] for row in backtest["rows"]][:4] == [
        "precision (flagged builds that failed)",
        "recall (failures caught)",
        "F1 (precision and recall together)",
        "ROC-AUC (ranking quality)",
    ]
    validation = dashboard.metrics_panel(
        {"validation_average_precision": {"forest": 0.7, "gbdt": float("nan")}, "chosen": "forest", "rows": 300}
    )
    assert validation["title"] == "How the model was validated in training"
    assert validation["rows"] == [{"label": "forest (chosen)", "values": [0.7]}, {"label": "gbdt", "values": [None]}]
    bundled_path = bundled_model_path()
    assert bundled_path is not None
    with open(bundled_path, encoding="utf-8") as fh:
        bundled = dashboard.metrics_panel(json.load(fh)["provenance"])
    assert bundled["title"] == "How the model was evaluated on other projects"
    assert "not on this repository" in bundled["detail"] and bundled["columns"] == ["ci-risk", "Parrot"]
    nothing = dashboard.metrics_panel({"backtest": "junk", "evaluation": [1], "validation_average_precision": 3})
    assert nothing["rows"] == [] and "no evaluation" in nothing["detail"]


# ---- hostile clients ----------------------------------------------------------------------------------------------

LOOPBACK_HOSTS = ("127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}", "127.0.0.2:{port}")


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example:{port}",
        "localhost:{other}",
        "127.0.0.1",
        "localhost:{port}@evil.example",
        "10.0.0.1:{port}",
        "",
        None,
    ],
)
def test_only_loopback_host_names_are_answered(hostile: dashboard.DashboardServer, host: str | None) -> None:
    """DNS rebinding: an attacker's name resolving to 127.0.0.1 must not read e-mails, branches and paths."""
    port = hostile.server_address[1]
    value = None if host is None else host.format(port=port, other=port + 1 if port < 65535 else port - 1)
    for path in ("/", "/api/history", "/api/pending", "/api/metrics"):
        status, headers, body = raw_request(hostile, "GET", path, {"Host": value})
        assert status == 421, (value, path, status)
        assert "maint@example.com" not in body.decode() and "Host" in one_line_error(body)
    status, _, body = post_whatif(hostile, b"{}", Host=value)
    assert status == 421 and "probability" not in body.decode()
    for loopback in LOOPBACK_HOSTS:
        status, _, body = raw_request(hostile, "GET", "/api/history", {"Host": loopback.format(port=port)})
        assert status == 200 and "maint@example.com" in body.decode(), loopback


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://localhost.evil.example:{port}",
        "null",
        "https://127.0.0.1:{port}",
        "http://127.0.0.1:{other}",
    ],
)
def test_only_same_origin_what_if_posts_are_scored(hostile: dashboard.DashboardServer, origin: str) -> None:
    port = hostile.server_address[1]
    status, headers, body = post_whatif(hostile, b'{"la": 10}', Origin=origin.format(port=port, other=port + 1))
    assert status == 403 and "Origin" in one_line_error(body)
    assert "access-control-allow-origin" not in headers
    for own in (f"http://{own_host(hostile)}", f"http://localhost:{port}", None):  # None: curl, a script
        status, _, body = post_whatif(
            hostile, b'{"la": 10}', Origin=own, Host=own[len("http://") :] if own else own_host(hostile)
        )
        assert status == 200 and 0 <= json.loads(body)["probability"] <= 1, own


@pytest.mark.parametrize(
    "headers, body, says",
    [
        ({"Content-Length": None}, b'{"la": 1}', "Content-Length is required"),
        ({"Content-Length": "-5"}, b'{"la": 1}', "Content-Length"),
        ({"Content-Length": "ten"}, b'{"la": 1}', "Content-Length"),
        ({"Content-Length": "1e3"}, b'{"la": 1}', "Content-Length"),
        ({"Content-Length": "9" * 5000}, b'{"la": 1}', "too large"),
        ({"Content-Length": str(10**12)}, b'{"la": 1}', "too large"),
        ({"Content-Length": str(dashboard.MAX_BODY + 1)}, b'{"la": 1}', "too large"),
        ({"Content-Length": None, "Transfer-Encoding": "chunked"}, b'9\r\n{"la": 1}\r\n0\r\n\r\n', "chunked"),
        ({"Content-Type": "text/plain"}, b'{"la": 1}', "Content-Type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"la=1", "Content-Type"),
        ({"Content-Type": None}, b'{"la": 1}', "Content-Type"),
        ({}, b'{"la": NaN}', "non-finite"),
        ({}, b'{"la": Infinity}', "non-finite"),
        ({}, b'{"la": -Infinity}', "non-finite"),
        ({}, b'{"la": 1e999}', "la"),
        ({}, b'{"la": "nan"}', "la"),
        ({}, b'{"la": -1}', "la"),
        ({}, b'{"la": ' + b"9" * 400 + b"}", "la"),
        ({}, b'{"la": [1]}', "la"),
        ({}, b'{"files_ci": 7}', "files_ci"),
        ({}, b'{"prev_build_failed": "maybe"}', "prev_build_failed"),
        ({}, b'{"__proto__": 1}', "unknown what-if input"),
        ({}, b"[" * 30000 + b"]" * 30000, "nested too deeply"),
        ({}, b'{"a":' * 10000 + b"1" + b"}" * 10000, "nested too deeply"),
        ({}, b"[1, 2]", "JSON object"),
        ({}, b"{not json", "not JSON"),
        ({}, b'{"la": 1}\xff', "UTF-8"),
    ],
)
def test_bad_what_if_requests_get_a_one_line_json_400(
    hostile: dashboard.DashboardServer,
    capfd: pytest.CaptureFixture[str],
    headers: dict[str, str | None],
    body: bytes,
    says: str,
) -> None:
    status, response_headers, answer = post_whatif(
        hostile, body, **{k.replace("-", "_"): v for k, v in headers.items()}
    )
    assert status == 400, (status, answer)
    assert says in one_line_error(answer)
    assert response_headers["content-type"] == "application/json"
    assert "Traceback" not in capfd.readouterr().err


def test_a_body_shorter_than_its_length_is_refused_once_the_client_goes_quiet(
    hostile: dashboard.DashboardServer,
) -> None:
    hostile.socket_timeout = 0.5
    try:
        status, _, body = post_whatif(hostile, b'{"la": 1}', Content_Length="100")
    finally:
        hostile.socket_timeout = dashboard.SOCKET_TIMEOUT
    assert status == 400 and "did not arrive" in one_line_error(body)


def test_unknown_methods_and_paths_get_json_errors(hostile: dashboard.DashboardServer) -> None:
    for method, path, code in (
        ("GET", "/nope", 404),
        ("POST", "/api/pending", 404),
        ("DELETE", "/", 501),
        ("OPTIONS", "/api/whatif", 501),
    ):
        status, headers, body = raw_request(
            hostile, method, path, {"Host": own_host(hostile), "Origin": "http://evil.example"}
        )
        assert status == code and one_line_error(body)
        assert "access-control-allow-origin" not in headers


def test_responses_carry_a_strict_content_security_policy_and_nosniff(hostile: dashboard.DashboardServer) -> None:
    status, headers, body = raw_request(
        hostile, "GET", "/", {"Host": own_host(hostile), "Origin": "http://evil.example"}
    )
    assert status == 200 and headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in headers
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
    page = body.decode("utf-8")
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    runnable = [text for attributes, text in scripts if 'type="application/json"' not in attributes]
    assert len(scripts) == 2 and len(runnable) == 1
    digest = base64.b64encode(hashlib.sha256(runnable[0].encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    for path in ("/api/pending", "/api/history", "/api/metrics"):
        status, headers, _ = raw_request(hostile, "GET", path, {"Host": own_host(hostile)})
        assert status == 200 and headers["x-content-type-options"] == "nosniff"
        assert headers["content-type"] == "application/json" and "access-control-allow-origin" not in headers


def test_model_provenance_cannot_close_the_inline_script(hostile: dashboard.DashboardServer) -> None:
    _, _, body = raw_request(hostile, "GET", "/", {"Host": own_host(hostile)})
    page = body.decode("utf-8")
    assert PWN_SCRIPT not in page and "<!--" not in page and "\u2028" not in page
    assert page.count("</script>") == 2
    data = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page, flags=re.S)
    assert data is not None and json.loads(data.group(1))["model"].startswith("repository logistic (" + PWN_SCRIPT)


def test_the_page_script_never_parses_data_as_markup() -> None:
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in dashboard_page.SCRIPT, sink


def test_two_hundred_parallel_requests_are_all_answered(served: dashboard.DashboardServer) -> None:
    count = 200
    start = threading.Barrier(count)
    answers: list[object] = [None] * count

    def ask(i: int) -> None:
        start.wait()
        try:
            if i % 2:
                status, _, body = post_whatif(served, json.dumps({"la": i}).encode())
            else:
                status, _, body = raw_request(served, "GET", "/api/pending", {"Host": own_host(served)})
            json.loads(body)
            answers[i] = status
        except OSError as exc:
            answers[i] = repr(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [a for a in answers if a != 200]
    assert not failed, f"{len(failed)} of {count} unanswered: {failed[:5]}"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_the_dashboard_serves_on_ipv6_loopback(hostile_repo: Repo) -> None:
    if not ipv6_loopback():
        if ON_CI:
            pytest.fail("this CI machine has no IPv6 loopback: `--host ::1` went untested")
        pytest.skip("no IPv6 loopback on this machine")
    state = dashboard.load_state(str(store_path(hostile_repo)), cwd=str(hostile_repo.path))
    with serving(state, "::1") as server:
        assert server.server_address[0] == "::1"
        assert dashboard.started_message(server).startswith(f"ci-risk dashboard on {base_url(server)} (loopback only")
        port = server.server_address[1]
        for host in (f"[::1]:{port}", f"localhost:{port}"):
            status, _, body = raw_request(server, "GET", "/api/history", {"Host": host})
            assert status == 200 and "maint@example.com" in body.decode()
        status, _, _ = raw_request(server, "GET", "/api/history", {"Host": f"evil.example:{port}"})
        assert status == 421


# ---- in a real browser --------------------------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")


def test_browser_what_if_changes_the_score(served: dashboard.DashboardServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    open_page(driver, base_url(served))
    wait = WebDriverWait(driver, 20)
    before = driver.find_element(By.ID, "whatif-score").text
    assert before.endswith("%"), before
    ci = driver.find_element(By.ID, "whatif-files_ci")
    if not ci.is_selected():
        ci.click()
    build = driver.find_element(By.ID, "whatif-files_build")
    if not build.is_selected():
        build.click()
    lines_added = driver.find_element(By.ID, "whatif-la")
    lines_added.clear()
    lines_added.send_keys("900")
    wait.until(lambda d: d.find_element(By.ID, "whatif-score").text != before)
    after = driver.find_element(By.ID, "whatif-score").text
    assert int(after.rstrip("%")) > int(before.rstrip("%")), (before, after)
    assert driver.find_elements(By.CSS_SELECTOR, "#history tr"), "the history table is empty"
    metrics = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#metrics tr")]
    assert len(metrics) > 1 and "retrain" not in driver.find_element(By.ID, "metrics").text, metrics
    # The demo records outcomes but no push went through a hook: /api/live answers, with no prediction yet.
    assert driver.find_element(By.ID, "live-detail").text == live.NO_PREDICTIONS
    assert driver.get_log("browser") == []
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))


class _LiveHandler(dashboard._Handler):
    """The dashboard's handler plus `/api/live` answering LIVE: a stand-in for the monitor's endpoint."""

    live: Any = None

    def _get(self) -> None:
        if self.path == "/api/live":
            self._json(self.live)
        else:
            super()._get()


@contextlib.contextmanager
def serving_live(state: dashboard.State, summary: Any) -> Iterator[dashboard.DashboardServer]:
    handler = type("Handler", (_LiveHandler,), {"live": summary})
    with serving(state) as server:
        server.RequestHandlerClass = handler
        yield server


def test_browser_shows_live_figures_beside_the_backtest(hostile_repo: Repo, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    state = dashboard.load_state(str(store_path(hostile_repo)), cwd=str(hostile_repo.path))
    driver = browser
    with serving_live(state, live_summary_by_hand()) as server:
        open_page(driver, base_url(server))
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live-windows tr"))
        assert driver.execute_script("return window.__pwned") is None
        assert len(driver.find_elements(By.TAG_NAME, "script")) == 2
        detail = driver.find_element(By.ID, "live-detail").text
        assert detail.startswith("55 predictions recorded; 40 of their builds have an outcome"), detail
        rows = [
            [c.get_attribute("textContent") for c in tr.find_elements(By.CSS_SELECTOR, "th, td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#live-windows tr")
        ]
        assert rows[0] == ["", "last 50 builds", "last 200 builds", "last 30 days"]
        assert ["builds with an outcome", "40", "40", "12"] in rows
        assert [metrics.label("recall"), "0.750", "0.750", "0.750"] in rows
        assert [metrics.label("recall"), "0.375", "0.375", "0.375"] in rows  # the previous-build rule's
        assert [metrics.label("f1"), "-", "-", "-"] in rows and [live.BASELINE] in rows
        assert [metrics.label("deferred_share"), "0.625", "0.625", "0.625"] in rows
        assert ["pushed despite a block", "1 (1 failed)", "1 (1 failed)", "1 (1 failed)"] in rows
        deferred = [
            li.get_attribute("textContent") for li in driver.find_elements(By.CSS_SELECTOR, "#live-deferred li")
        ]
        assert len(deferred) == 2 and deferred[0].startswith("0123456789ab: risk 0.200"), deferred
        assert deferred[1].startswith("abc123def456 on " + HOSTILE + "&amp;: risk 0.125"), deferred
        drift = driver.find_element(By.ID, "live-drift").get_attribute("textContent")
        assert "live recall 0.60 below the target 0.90 " + HOSTILE in drift and "ci-risk retrain" in drift
        calibration = [
            [c.get_attribute("textContent") for c in tr.find_elements(By.CSS_SELECTOR, "th, td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#live-calibration tr")
        ]
        assert calibration[1:] == [["0.000-0.500", "32", "0.100", "0.125"], ["0.500-1.000", "0", "0.700", "-"]]
        bypass = driver.find_element(By.ID, "live-bypass").get_attribute("textContent")
        assert HOSTILE + "dev@example.com" in bypass and "without a prediction" in bypass
        # Side by side: the backtest's panel and the live panel share a row of the grid.
        backtest = driver.find_element(By.ID, "metrics-title").location["y"]
        live_panel = driver.find_element(By.CSS_SELECTOR, "#live h2").location["y"]
        assert backtest == live_panel, (backtest, live_panel)
        assert driver.find_element(By.ID, "metrics-answer").text == (
            "On this history, ci-risk would have let you defer 30 % of builds while catching 88 % of failures; "
            "repeating the previous build's outcome: 30 % of builds at the same share of failures caught."
        )
        violations = [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        assert violations == [] and driver.get_log("browser") == []
        overflowing = driver.execute_script(
            "return [...document.querySelectorAll('#live li, #live td, #live th')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.slice(0, 60))"
        )
        assert overflowing == [], overflowing
        ARTIFACTS.mkdir(exist_ok=True)
        driver.execute_script("document.getElementById('live').scrollIntoView()")
        driver.save_screenshot(str(ARTIFACTS / "dashboard-live.png"))


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_the_page_escapes_what_it_shows_exactly_as_clean_does() -> None:
    """The page's `shown` (in node) against `safetext.clean` on the characters a terminal or a page reorders."""
    import subprocess

    from ci_risk_hook.safetext import clean

    samples = [
        "main\u202eevil",
        "a\x1b[31mb\n\t\r",
        "bad\udc80byte",
        "emoji \U0001f600 ok",
        "\u2066x\u2069\u061c",
        "\x7f\x9f",
    ]
    script = dashboard_page.SCRIPT
    shown = script[script.index("const UNSAFE") : script.index("function show(id")]
    done = subprocess.run(
        [
            "node",
            "-e",
            shown + "process.stdout.write(JSON.stringify(JSON.parse(require('fs').readFileSync(0)).map(shown)))",
        ],
        input=json.dumps(samples),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [clean(s) for s in samples]


BIDI_BRANCH = "fix\u202e\u2066txt.exe\u2069\x1b[2J"  # reversed by U+202E, an isolate, an escape sequence
BIDI_AUTHOR = "dev\u200f@example.com\u2028\udc80"  # a mark, a line separator, a byte that was not UTF-8


def test_browser_shows_bidi_and_control_characters_of_names_as_escapes(hostile_repo: Repo, browser: Any) -> None:
    """Names go in with textContent, but U+202E and friends would still reorder what a person reads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    summary = live_summary_by_hand()
    summary["windows"][0]["deferred_failures"][0]["branch"] = BIDI_BRANCH  # type: ignore[index]
    summary["bypass"][0]["author"] = BIDI_AUTHOR  # type: ignore[index]
    state = dashboard.load_state(str(store_path(hostile_repo)), cwd=str(hostile_repo.path))
    with serving_live(state, summary) as server:
        open_page(browser, base_url(server))
        WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live-deferred li"))
        # Read through JSON.stringify: a lone surrogate on the page would not even cross WebDriver's wire.
        deferred, bypass, page = (
            json.loads(browser.execute_script(f"return JSON.stringify({element}.textContent)"))
            for element in (
                "document.getElementById('live-deferred')",
                "document.getElementById('live-bypass')",
                "document.body",
            )
        )
    assert "fix\\u202e\\u2066txt.exe\\u2069\\x1b[2J" in deferred  # as safetext.clean shows it in a terminal
    assert "dev\\u200f@example.com\\u2028\\x80" in bypass
    assert not any(c in page for c in "\u202e\u2066\u2069\u200f\u2028\x1b\udc80"), "a control character was shown"


def test_browser_live_panel_without_predictions_says_so(hostile_repo: Repo, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    state = dashboard.load_state(str(store_path(hostile_repo)), cwd=str(hostile_repo.path))
    with serving_live(state, {"predictions": 0, "joined": 0, "windows": [], "drift": [], "bypass": []}) as server:
        open_page(browser, base_url(server))
        assert browser.find_element(By.ID, "live-detail").text == live.NO_PREDICTIONS
        assert browser.find_elements(By.CSS_SELECTOR, "#live-windows tr") == []


def test_browser_runs_nothing_from_the_model_or_the_repository(
    hostile: dashboard.DashboardServer, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, base_url(hostile))
    assert driver.execute_script("return window.__pwned") is None
    assert driver.find_elements(By.TAG_NAME, "img") == [] and driver.find_elements(By.ID, "pwned-b") == []
    assert len(driver.find_elements(By.TAG_NAME, "script")) == 2
    label = driver.execute_script("return document.getElementById('model').textContent")
    assert label == "repository logistic (" + PWN_SCRIPT + "\\u2028<!--)"  # shown as an escape, not a line break
    headers = [
        th.get_attribute("textContent") for th in driver.find_elements(By.CSS_SELECTOR, "#metrics tr:first-child th")
    ]
    assert headers == ["", "ci-risk", "Parrot", PWN_KEY], headers
    assert "<b id=pwned-b>70</b> of 120 builds" in driver.find_element(By.ID, "metrics-detail").text
    assert driver.find_element(By.ID, "metrics-title").text == "How the model backtested on this repository"
    violations = [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == [], violations


def test_browser_marks_reasons_that_lower_the_risk_and_wraps_long_ones(
    hostile: dashboard.DashboardServer, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    open_page(driver, base_url(hostile))
    assert driver.find_element(By.ID, "pending-score").text == "0%"
    pending = driver.find_elements(By.CSS_SELECTOR, "#pending-reasons li")
    lowering = driver.find_elements(By.CSS_SELECTOR, "#pending-reasons li.lowers")
    assert len(lowering) == 1 and "lowers risk" in lowering[0].text and "7 commits in this push" in lowering[0].text
    assert "(-70.00 log-odds)" in lowering[0].text
    raising = [li for li in pending if "raises" in li.get_attribute("class").split()]
    assert len(raising) >= 2 and all("raises risk" in li.text and "(+" in li.text for li in raising)
    assert any("x" * 180 in li.text for li in raising), [li.text for li in raising]
    ci = driver.find_element(By.ID, "whatif-files_ci")
    ci.click()
    WebDriverWait(driver, 20).until(lambda d: "CI configuration" in d.find_element(By.ID, "whatif-reasons").text)
    assert driver.find_elements(By.CSS_SELECTOR, "#whatif-reasons li.lowers")
    overflowing = driver.execute_script(
        "return [...document.querySelectorAll('li, td, th')].filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.textContent.slice(0, 60))"
    )
    assert overflowing == [], overflowing
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
