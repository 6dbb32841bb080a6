"""`ci-risk report`: real PNG images of the expected size, and one HTML page holding them and the metrics.

The page opens with the backtest's answer in one sentence, names every metric
in words, says under each chart how to read it, and puts the live figures
("is it helping?") beside the backtest ("would it have helped?").
"""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ci_risk_hook.features.extract import BY_NAME, FEATURE_NAMES
from ci_risk_hook.model import metrics
from ci_risk_hook.views import demo, live
from ci_risk_hook.views.report import CAPTIONS, CHARTS
from testing.live_summary import HOSTILE, live_summary_by_hand
from testing.wording import raw_metric_ids

CI_RISK = str(Path(sys.executable).parent / "ci-risk")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class _Visible(HTMLParser):
    """The text a reader sees (and image alt texts): not the style sheet, not attribute values."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._hidden += 1
        self.parts.extend(v or "" for k, v in attrs if k == "alt")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _Visible()
    parser.feed(page)
    return " ".join(parser.parts)


def percent(value: float) -> str:
    return f"{round(100 * value)} %"


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "demo"
    demo.build(str(path), seed=5, commits=150)
    return path


def test_report_writes_each_chart_and_a_self_contained_page(demo_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env_db = str(demo_repo / ".git" / "ci-risk" / "history.sqlite")
    scored = subprocess.run(
        [CI_RISK, "check", "--from", "main", "--to", "new-ci", "--db", env_db],
        cwd=demo_repo,
        capture_output=True,
        text=True,
    )
    assert scored.returncode == 0 and scored.stdout.startswith("ci-risk: risk"), scored.stderr
    proc = subprocess.run(
        [CI_RISK, "report", "--out", str(out), "--html", "--db", env_db], cwd=demo_repo, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for name in CHARTS:
        assert png_size(out / f"{name}.png") == (800, 500), name
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(CHARTS)
    assert '<table id="metrics">' in page and "<th>ROC-AUC (ranking quality)</th>" in page
    assert "<th>builds deferrable at 90 % recall</th>" in page
    assert "Reasons for the latest builds" in page
    pushes = page.split('<ul id="scored">')[1].split("</ul></li></ul>")[0]
    assert "main..new-ci: risk 0." in pushes
    # Each reason the check gave for that push (the demo's simulation decides which ones they are).
    last = json.loads((demo_repo / ".git" / "ci-risk" / "scored.jsonl").read_text().splitlines()[-1])
    assert last["range"] == "main..new-ci" and len(last["reasons"]) == 3
    assert all(html.escape(reason) in pushes for reason in last["reasons"]), (last["reasons"], pushes)
    assert 'src="http' not in page and 'href="http' not in page  # readable offline: nothing fetched


def test_report_without_recorded_history_is_a_one_line_error(tmp_path: Path, history_repo: object) -> None:
    db = tmp_path / "h.sqlite"
    proc = subprocess.run(
        [CI_RISK, "report", "--db", str(db)],
        cwd=history_repo.path,  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"Error: {db}: no history store there") and proc.stderr.count("\n") == 1
    assert not db.exists()  # a report reads: it creates no store


def test_report_skips_damaged_lines_of_the_scored_log(demo_repo: Path, tmp_path: Path) -> None:
    """A torn write, a stray editor or another tool's garbage in scored.jsonl costs those lines, not the report."""
    log = demo_repo / ".git" / "ci-risk" / "scored.jsonl"
    kept = log.read_bytes() if log.exists() else None
    good = b'{"time": 1, "range": "main..good", "probability": 0.5, "decision": "warn", "reasons": ["a reason"]}\n'
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(
            good + b'[1, 2]\n"text"\n42\n{"range": "main..no-probability"}\n'
            b'{"range": "main..typed", "probability": "0.5", "decision": "warn", "reasons": []}\n'
            b'{"range": "main..reasons", "probability": 0.5, "decision": "warn", "reasons": "x"}\n'
            b'{"range": "main..nan", "probability": NaN, "decision": "warn", "reasons": []}\n'
            b"\xff\xfe\x00 binary garbage \x80\n" + b"[" * 100_000 + b"\n" + b'{"unterminated": '
        )
        env_db = str(demo_repo / ".git" / "ci-risk" / "history.sqlite")
        proc = subprocess.run(
            [CI_RISK, "report", "--out", str(tmp_path / "out"), "--html", "--db", env_db],
            cwd=demo_repo,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        pushes = (tmp_path / "out" / "report.html").read_text().split('<ul id="scored">')[1].split("</ul>\n")[0]
        assert "main..good: risk 0.50 (warn)" in pushes and "a reason" in pushes
        for damaged in ("no-probability", "typed", "reasons", "nan", "unterminated"):
            assert damaged not in pushes
    finally:
        if kept is None:
            log.unlink()
        else:
            log.write_bytes(kept)


def test_the_report_opens_with_the_backtest_answer_and_names_everything_for_people(
    demo_repo: Path, tmp_path: Path
) -> None:
    """The sentence's figures are the ones `ci-risk backtest` prints for the same history, run on its own."""
    db = str(demo_repo / ".git" / "ci-risk" / "history.sqlite")

    def cli(*args: str) -> str:
        proc = subprocess.run([CI_RISK, *args, "--db", db], cwd=demo_repo, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    predictions = tmp_path / "predictions.csv"
    backtest = json.loads(cli("backtest", "--format", "json", "--predictions", str(predictions)))
    failures = sum(int(row.split(",")[3]) for row in predictions.read_text().splitlines()[1:])
    cli("report", "--out", str(tmp_path / "out"), "--html")
    page = (tmp_path / "out" / "report.html").read_text()

    answer = html.unescape(page.split('<p class="answer" id="answer">')[1].split("</p>")[0])
    model, parrot = backtest["model"], backtest["parrot"]
    assert answer.startswith(
        f"On this history, ci-risk would have let you defer {percent(model['deferrable_at_90'])} of builds while "
        f"catching {percent(model['recall_at_defer_threshold'])} of failures; repeating the previous build's "
        f"outcome: {percent(parrot['deferrable_at_90'])} of builds"
    ), answer
    # The previous-build rule defers at the recall ci-risk reached: the two shares compare like with like.
    assert parrot["recall_at_defer_threshold"] == model["recall_at_defer_threshold"]
    assert failures >= metrics.MIN_FAILURES and "too short" not in answer
    assert page.index('id="answer"') < page.index("<h2>")  # the page opens with it
    assert f"({failures} of them failed)" in page

    text = visible_text(page)
    assert raw_metric_ids(text) == [], raw_metric_ids(text)
    for name in CHARTS:
        title, how = CAPTIONS[name]
        figure = page.split(f'<figure id="chart-{name}">')[1].split("</figure>")[0]
        caption = html.unescape(figure.split("<figcaption>")[1].split("</figcaption>")[0])
        assert title in caption and how in caption and name not in caption, caption
        assert len(how) > 80, name  # says how to read the chart, not just what it is

    # "Would it have helped" and "is it helping" side by side; without the monitor, the live side says why not.
    side = page.split('<div class="side">')[1].split("</div>")[0]
    assert "Would it have helped? (backtest)" in side and "Is it helping? (live)" in side
    try:
        from ci_risk_hook.outcomes.monitor import live_summary  # noqa: F401
    except ImportError:
        assert html.escape(live.ABSENT) in side
    else:
        assert html.escape(live.ABSENT) not in side

    backtest_text = cli("backtest")
    assert answer.split(";")[0] in backtest_text and raw_metric_ids(backtest_text) == [], backtest_text
    shown = subprocess.run([CI_RISK, "model", "show"], cwd=demo_repo, capture_output=True, text=True)
    assert shown.returncode == 0 and "ROC-AUC (ranking quality)" in shown.stdout, shown.stderr
    assert "On this history, ci-risk would have let you defer" in shown.stdout  # the trained model's own backtest
    assert raw_metric_ids(shown.stdout) == [], shown.stdout


def test_the_answer_says_when_the_history_is_too_short_or_has_no_failure() -> None:
    report = {
        "predicted": 60,
        "model": {"deferrable_at_90": 0.4149, "recall_at_defer_threshold": 0.875},
        "parrot": {"deferrable_at_90": 0.1, "recall_at_defer_threshold": 0.875},
    }
    enough = metrics.answer(report, failures=metrics.MIN_FAILURES)
    assert enough == (
        "On this history, ci-risk would have let you defer 41 % of builds while catching 88 % of failures; "
        "repeating the previous build's outcome: 10 % of builds at the same share of failures caught."
    )
    short = metrics.answer(report, failures=8)
    assert short.startswith(enough) and "too short" in short and "only 8 failures among the 60 builds" in short
    unknown = metrics.answer({"model": {"deferrable_at_90": None}, "parrot": {}}, failures=0)
    assert "did not measure" in unknown and "%" not in unknown
    hostile = metrics.answer({"model": {"deferrable_at_90": "0.5", "recall_at_defer_threshold": float("nan")}})
    assert hostile == unknown  # a hand-edited model file: no figure, no crash


def test_charts_name_features_in_words(demo_repo: Path) -> None:
    from ci_risk_hook.model.dataset import ci_table
    from ci_risk_hook.model.scoring import load_model
    from ci_risk_hook.outcomes.store import open_store
    from ci_risk_hook.views import report

    store = open_store(str(demo_repo / ".git" / "ci-risk" / "history.sqlite"), create=False)
    try:
        table = ci_table(store, store.find_repository(_root(demo_repo)))
    finally:
        store.close()
    model = load_model(demo_repo / ".git" / "ci-risk" / "model.json")
    fig = report.draw_feature_importance(model, table)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    report._pyplot().close(fig)
    docs = {" ".join(BY_NAME[name].doc.split()) for name in FEATURE_NAMES}
    assert labels and all(" ".join(label.split()) in docs for label in labels), labels
    assert not set(labels) & set(FEATURE_NAMES)


def _root(repo: Path) -> str:
    out = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=repo, capture_output=True, text=True)
    return out.stdout.split()[0]


def test_live_figures_render_from_the_summary_and_escape_what_the_store_says() -> None:
    page = live.live_html(live_summary_by_hand())
    assert "<script" not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # escaped once more, shown as written
    text = visible_text(page)
    assert "55 predictions recorded; 40 of their builds have an outcome" in text
    windows = page.split('<table id="live-windows">')[1].split("</table>")[0]
    head = re.findall(r"<th>([^<]*)</th>", windows.split("</tr>")[0])
    assert head == ["", "last 50 builds", "last 200 builds", "last 30 days"]
    rows = {
        html.unescape(re.search(r"<th>([^<]*)</th>", row).group(1)): re.findall(r"<td>([^<]*)</td>", row)
        for row in windows.split("</tr>")
        if "<td>" in row
    }
    assert rows["builds with an outcome"] == ["40", "40", "12"]
    assert rows[metrics.label("deferred_share")] == ["0.625"] * 3
    assert rows["pushed despite a warning"] == ["5 (2 failed)"] * 3
    # ci-risk's rows come first, then the previous-build rule's under its own heading.
    assert windows.index("ci-risk") < windows.index(html.escape(live.BASELINE)) and "-" in windows
    assert text.count(metrics.label("recall")) == 2
    deferred = page.split('<ul id="live-deferred">')[1].split("</ul>")[0]
    assert deferred.count("<li>") == 2 and "1970-01-02 00:00 UTC" in deferred  # newest first, listed once
    assert deferred.index("0123456789ab") < deferred.index("abc123def456")
    assert "live recall 0.60 below the target 0.90" in text and "ci-risk retrain" in text
    assert "dev@example.com" in text and "blame" not in text.lower()
    assert raw_metric_ids(text) == []


def test_live_figures_say_why_there_are_none() -> None:
    assert live.ABSENT in live.live_html(None)
    assert "no prediction recorded for this repository" in live.live_html({"predictions": 0, "windows": []})
    unreadable = live.live_html({"error": "history store " + HOSTILE + " is too old"})
    assert "live figures unavailable: history store &lt;script&gt;" in unreadable and "<script" not in unreadable


def test_live_figures_show_control_and_bidi_characters_from_the_store_as_escapes() -> None:
    summary = live_summary_by_hand()
    summary["bypass"] = [{"author": "\u202eliam\x1b[2J@example.com", "builds": 3, "without_prediction": 1}]
    page = live.live_html(summary)
    assert "\u202e" not in page and "\x1b" not in page
    assert "\\u202eliam\\x1b[2J@example.com" in page
