"""Benchmark: ci-risk's JIT features and SZZ labels beside the published ApacheJIT dataset (MSR 2022).

For each project it runs the real `ci-risk backfill` on a clone with a temporary store (features of
every commit, revert labels, SZZ), once with ci-risk's own fix detection and once with
`--bug-issues` built from ApacheJIT's JIRA bug exports, reads the store, and prints per feature the
share of commits that match ApacheJIT exactly and within tolerance and the median absolute
difference, SZZ precision/recall/F1 against ApacheJIT's `buggy` labels, and the commits missing
on either side.

Usage:
  python bench/apachejit_check.py --dataset /work/data-ext/apachejit --repos-dir /work/ext \
      [--projects zookeeper activemq] [--features-csv NEUROJIT/data/dataset/baseline/activemq.csv] \
      [--store-dir DIR] [--json OUT]

`--dataset` is a clone of the ApacheJIT replication package (hosseinkshvrz/apachejit); `--repos-dir`
holds work-tree clones named `apache+<project>` or `<project>` (`apache+zookeeper`, `activemq`, ...). Both stay outside
this project and are read at run time, never copied. `--store-dir` keeps the stores (so a second
run resumes instead of mining again); without it they live in a temporary directory.

Where ApacheJIT's figures come from:
  * `dataset/apachejit_total.csv` (every commit, its metrics and `buggy`), when the clone has it;
  * otherwise (the file is over 4 MiB and some copies lack it) the labels are rebuilt from the
    package's own intermediate files, as its `dataset_construction` notebook builds them:
    buggy = the bug side of `data/commit_links_<KEY>.csv` kept by the GumTree filters
    (`data/keys_apachejava_ast.csv`, buggy and fixing commits), clean = `data/keys_clean_ast.csv`,
    years 2003-2019 (the notebook's one-year strata from 2003-01-01); the rebuild is checked against
    the `buggy` column of every split file present (`apachejit_test_small.csv`...), and the agreement
    printed. Metrics then come from the split files present and from `--features-csv` (a table with
    ApacheJIT's metric columns in any letter case, e.g. NeuroJIT's `baseline/<project>.csv`).

Feature mapping (ApacheJIT -> ci-risk store feature) and the definitions that differ:
  la -> la, ld -> ld, nf -> nf: same definitions (ci-risk leaves binary files' lines out of la/ld).
  nd -> nd, ns -> ns: ci-risk counts distinct directories and top-level directories. ApacheJIT's
      numbers (seen on ZooKeeper) count distinct directory *names* (src/main/x/util and src/test/x/util
      are one) and every file at the root as a directory and a subsystem of its own.
  ent -> entropy: Shannon entropy in bits of the changed lines over files, not normalised, in both.
  aexp -> author_exp, arexp -> author_rexp, asexp -> author_sexp: the author's earlier commits.
      ci-risk: the same e-mail after .mailmap (lower-cased); ApacheJIT: the same author *name*
      (ZooKeeper's committers changed address often). ApacheJIT's asexp is a weighted figure on
      multi-subsystem commits (values such as 0.000244), not a count.
  ndev -> ndev, nuc -> nuc: ApacheJIT averages per changed file (developers / earlier commits of each
      file, divided by nf: 0.25 on a four-file commit); ci-risk counts distinct developers / commits
      over all the files. The two coincide on single-file commits, so those are reported apart.
  ndev, nuc, age: ci-risk follows a file's history across renames; ApacheJIT does not (after
      ZooKeeper's 2018 move to Maven its files' histories restart).
  age -> days_since_file_change: ApacheJIT's mean over all nf files of whole days since the file's
      last change (a new file counting 0); ci-risk's mean over files with a history, in fractional
      days (so exact matches are rare by construction). The ApacheJIT form is rebuilt as
      days_since_file_change * (nf - new_files) / nf and compared too (`age_all_files`).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from harness import CI_RISK, isolated_env  # noqa: E402

from ci_risk_hook import paths  # noqa: E402

# Project name (the clone's directory name) -> JIRA key in ApacheJIT's file names and issue keys.
JIRA_KEY = {
    "activemq": "AMQ",
    "camel": "CAMEL",
    "cassandra": "CASSANDRA",
    "flink": "FLINK",
    "groovy": "GROOVY",
    "hbase": "HBASE",
    "hadoop-hdfs": "HDFS",
    "hive": "HIVE",
    "ignite": "IGNITE",
    "kafka": "KAFKA",
    "hadoop-mapreduce": "MAPREDUCE",
    "spark": "SPARK",
    "zeppelin": "ZEPPELIN",
    "zookeeper": "ZOOKEEPER",
}
SPLIT_FILES = ("apachejit_total.csv", "apachejit_train.csv", "apachejit_test_large.csv", "apachejit_test_small.csv")
# The notebook's strata: one-year bins from 2003-01-01 (its own constant); years past 2019 dropped.
STRATA_START, STRATA_SECONDS, LAST_YEAR = 1041397200, 60 * 60 * 24 * 365.25, 2019

# ApacheJIT metric -> (ci-risk store feature, absolute tolerance, relative tolerance).
# Within tolerance: |ci-risk - ApacheJIT| <= max(absolute, relative * |ApacheJIT|).
FEATURES: dict[str, tuple[str, float, float]] = {
    "la": ("la", 1.0, 0.05),
    "ld": ("ld", 1.0, 0.05),
    "nf": ("nf", 0.0, 0.05),
    "nd": ("nd", 0.0, 0.05),
    "ns": ("ns", 0.0, 0.0),
    "ent": ("entropy", 0.01, 0.05),
    "ndev": ("ndev", 0.0, 0.10),
    "nuc": ("nuc", 0.0, 0.10),
    "age": ("days_since_file_change", 1.0, 0.10),
    "aexp": ("author_exp", 1.0, 0.10),
    "arexp": ("author_rexp", 1.0, 0.10),
    "asexp": ("author_sexp", 1.0, 0.10),
}
# Other spellings of ApacheJIT's metric columns (NeuroJIT's copy: EXP, REXP, SEXP, Entropy).
ALIASES = {"exp": "aexp", "rexp": "arexp", "sexp": "asexp", "entropy": "ent"}
PER_FILE_MEAN = ("ndev", "nuc", "age")  # averaged over files by ApacheJIT: single-file commits reported apart


# --- ApacheJIT's side ------------------------------------------------------------------------------


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _present(path: Path) -> bool:
    """A real file, not a missing large object or a Git LFS pointer."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as fh:
        return not fh.read(64).startswith(b"version https://git-lfs")


def _project_rows(path: Path, project: str) -> list[dict[str, str]]:
    """The rows of one of ApacheJIT's tables that are `project`'s (its `project` or `repo` column, owner or not)."""
    return [
        r for r in _read_rows(path) if (r.get("project") or r.get("repo") or "").lower().rsplit("/", 1)[-1] == project
    ]


def _add_metrics(metrics: dict[str, dict[str, float]], rows: list[dict[str, str]]) -> None:
    for row in rows:
        metrics.setdefault(row["commit_id"], {}).update(_metrics(row))


def _metrics(row: dict[str, str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for column, text in row.items():
        name = column.strip().lower()
        name = ALIASES.get(name, name)
        if name in FEATURES and text not in (None, ""):
            try:
                values[name] = float(text)
            except ValueError:
                pass
    return values


class ApacheJit:
    """One project's commits in ApacheJIT: labels, metrics where published, and where they came from."""

    def __init__(self) -> None:
        self.buggy: set[str] = set()
        self.commits: set[str] = set()  # every commit of the project in the dataset (buggy, fix or clean)
        self.metrics: dict[str, dict[str, float]] = {}
        self.sources: list[str] = []
        self.rebuild_check: dict[str, Any] | None = None


def load_apachejit(
    dataset: Path, project: str, features_csv: Iterable[Path], author_times: dict[str, int]
) -> ApacheJit:
    out = ApacheJit()
    splits = [path for path in (dataset / "dataset" / name for name in SPLIT_FILES) if _present(path)]
    total = dataset / "dataset" / SPLIT_FILES[0]
    if total in splits:
        rows = _project_rows(total, project)
        out.commits = {r["commit_id"] for r in rows}
        out.buggy = {r["commit_id"] for r in rows if _truthy(r["buggy"])}
        out.sources.append(f"{total} (labels and metrics)")
    else:
        out.sources.append(f"{total} absent: labels rebuilt from data/commit_links_*, keys_*_ast.csv")
        out.commits, out.buggy, out.rebuild_check = _rebuild_labels(dataset, project, author_times, splits)
    for path in splits:
        _add_metrics(out.metrics, _project_rows(path, project))
        if path != total:
            out.sources.append(f"{path} (metrics)")
    for path in features_csv:
        rows = _project_rows(path, project)
        _add_metrics(out.metrics, rows)
        out.sources.append(f"{path} (metrics, {len(rows)} rows)")
    return out


def _rebuild_labels(
    dataset: Path, project: str, author_times: dict[str, int], splits: list[Path]
) -> tuple[set[str], set[str], dict[str, Any]]:
    key = JIRA_KEY[project]
    data = dataset / "data"
    kept = {r["commit_id"] for r in _read_rows(data / "keys_apachejava_ast.csv")}
    clean = {r["commit_id"] for r in _read_rows(data / "keys_clean_ast.csv")}
    links = _read_rows(data / f"commit_links_{key}.csv")
    buggy = {r["bug_hash"] for r in links if r["bug_hash"] in kept}
    # kept: the buggy and fixing commits (of every project); the clone's own in ApacheJIT's years are this project's.
    commits = {c for c in (kept | clean) if c in author_times and _year(author_times[c]) <= LAST_YEAR}
    # The rebuild beside the published `buggy` column, over the split files present (any project).
    all_buggy_links: set[str] = set()
    for links_file in data.glob("commit_links_*.csv"):
        all_buggy_links |= {r["bug_hash"] for r in _read_rows(links_file) if r["bug_hash"] in kept}
    agree = total = 0
    for path in splits:
        for row in _read_rows(path):
            total += 1
            agree += (row["commit_id"] in all_buggy_links) == _truthy(row["buggy"])
    check = {"rows": total, "agree": agree, "share": round(agree / total, 4) if total else None}
    return commits, buggy & commits, check


def _year(author_time: int) -> int:
    return int((author_time - STRATA_START) // STRATA_SECONDS) + 2003


def clone_commits(clone: Path) -> dict[str, int]:
    """Every commit of every ref in the clone, with its author time."""
    out = subprocess.run(
        ["git", "log", "--all", "--format=%H %at"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout
    times = {}
    for line in out.splitlines():
        sha, _, at = line.partition(" ")
        times[sha] = int(at)
    return times


def bug_issues_file(dataset: Path, project: str, into: Path) -> tuple[Path, int]:
    """ApacheJIT's JIRA exports (data/20XX.csv) as `--bug-issues` rows KEY,REPORTED for this project's bugs."""
    prefix = JIRA_KEY[project] + "-"
    bugs: dict[str, str] = {}
    for path in sorted((dataset / "data").glob("20[0-9][0-9].csv")):
        for row in _read_rows(path):
            key = row.get("Issue key", "")
            if row.get("Issue Type") == "Bug" and key.startswith(prefix):
                created = datetime.strptime(row["Created"], "%d/%b/%y %H:%M").replace(tzinfo=timezone.utc)
                bugs[key] = created.isoformat()
    target = into / f"{project}-bugs.csv"
    with open(target, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(sorted(bugs.items()))
    return target, len(bugs)


# --- ci-risk's side --------------------------------------------------------------------------------


def run_backfill(clone: Path, store_dir: Path, extra: list[str]) -> dict[str, Any]:
    """`ci-risk backfill` on the clone with its store in `store_dir`: its output lines and seconds."""
    started = time.monotonic()
    proc = subprocess.run(
        [CI_RISK, "backfill", *extra], cwd=clone, env=isolated_env(store_dir), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"ci-risk backfill failed in {clone}: {proc.stderr.strip()[-500:]}")
    return {"seconds": round(time.monotonic() - started, 1), "output": proc.stdout.strip().splitlines()}


def read_store(store_dir: Path) -> tuple[dict[str, dict[str, float | None]], dict[str, set[str]]]:
    from ci_risk_hook.outcomes.store import open_store

    store = open_store(isolated_env(store_dir)[paths.DB_ENV], create=False)
    try:
        repo_ids = [int(r[0]) for r in store.execute("SELECT id FROM repositories").fetchall()]
        features: dict[str, dict[str, float | None]] = {}
        labels: dict[str, set[str]] = {}
        for repo_id in repo_ids:
            for sha, _, _, values in store.commit_features(repo_id):
                features[sha] = values
            for sha, source, _, _ in store.labels(repo_id):
                labels.setdefault(source, set()).add(sha)
    finally:
        store.close()
    return features, labels


# --- comparison ------------------------------------------------------------------------------------


def compare_features(
    theirs: dict[str, dict[str, float]], ours: dict[str, dict[str, float | None]]
) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    rows = [(m, ours[sha]) for sha, m in theirs.items() if sha in ours]

    def add(name: str, pairs: list[tuple[float, float]], abs_tol: float, rel_tol: float) -> None:
        if not pairs:
            return
        diffs = [abs(a - b) for a, b in pairs]
        exact = sum(1 for a, b in pairs if abs(a - b) < 1e-6)
        close = sum(1 for a, b in pairs if abs(a - b) <= max(abs_tol, rel_tol * abs(b)) + 1e-9)
        table[name] = {
            "n": len(pairs),
            "exact": round(exact / len(pairs), 4),
            "within_tolerance": round(close / len(pairs), 4),
            "median_abs_diff": round(statistics.median(diffs), 4),
            "ci_risk_median": round(statistics.median(a for a, _ in pairs), 4),
            "apachejit_median": round(statistics.median(b for _, b in pairs), 4),
        }

    for metric, (feature, abs_tol, rel_tol) in FEATURES.items():
        pairs = [
            (float(o[feature]), m[metric], o.get("nf")) for m, o in rows if metric in m and o.get(feature) is not None
        ]
        add(metric, [(a, b) for a, b, _ in pairs], abs_tol, rel_tol)
        if metric in PER_FILE_MEAN:
            add(f"{metric}[nf=1]", [(a, b) for a, b, nf in pairs if nf == 1.0], abs_tol, rel_tol)
    age_pairs = []
    for m, o in rows:
        nf, new, since = o.get("nf"), o.get("new_files"), o.get("days_since_file_change")
        if "age" in m and nf and new is not None and since is not None:
            age_pairs.append((float(since) * (nf - new) / nf, m["age"]))
    add("age_all_files", age_pairs, *FEATURES["age"][1:])
    return table


def szz_scores(truth_commits: set[str], truth_buggy: set[str], ours: set[str], found: set[str]) -> dict[str, Any]:
    both = truth_commits & ours
    positive = truth_buggy & both
    predicted = found & both
    tp = len(positive & predicted)
    fp, fn = len(predicted - positive), len(positive - predicted)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "commits": len(both),
        "apachejit_buggy": len(positive),
        "ci_risk_labelled": len(predicted),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }


def check_project(args: argparse.Namespace, project: str, store_root: Path) -> dict[str, Any]:
    # Clones named `apache+<project>` (as the other benchmarks name them) or just `<project>`.
    named = [args.repos_dir / f"apache+{project}", args.repos_dir / project]
    clone = next((p.resolve() for p in named if (p / ".git").exists()), None)
    if clone is None:
        return {"project": project, "error": f"no clone at {named[0]} or {named[1]}"}
    author_times = clone_commits(clone)
    repo_commits = set(author_times)
    features_csv = [p for p in args.features_csv if project in p.stem.lower()]
    truth = load_apachejit(args.dataset, project, features_csv, author_times)
    report: dict[str, Any] = {"project": project, "apachejit_sources": truth.sources}
    if truth.rebuild_check is not None:
        report["label_rebuild_vs_published"] = truth.rebuild_check

    store_dir = store_root / project
    store_dir.mkdir(parents=True, exist_ok=True)
    report["backfill"] = run_backfill(clone, store_dir, [])
    ours, labels = read_store(store_dir)
    own_szz = labels.get("szz", set())
    reverted = labels.get("revert", set())

    bugs_path, n_bugs = bug_issues_file(args.dataset, project, store_dir)
    report["backfill_bug_issues"] = {
        "bug_reports": n_bugs,
        **run_backfill(clone, store_dir, ["--bug-issues", str(bugs_path)]),
    }
    _, labels = read_store(store_dir)
    tracker_szz = labels.get("szz", set())

    in_ours = set(ours)
    report["commits"] = {
        "clone_all_refs": len(repo_commits),
        "ci_risk_features": len(in_ours),
        "apachejit": len(truth.commits),
        "apachejit_not_in_clone": len(truth.commits - repo_commits),
        "apachejit_in_clone_not_backfilled": len((truth.commits & repo_commits) - in_ours),
        "both": len(truth.commits & in_ours),
        "apachejit_with_metrics": len(truth.metrics),
        "metrics_in_both": len(set(truth.metrics) & in_ours),
    }
    report["features"] = compare_features(truth.metrics, ours)
    report["szz"] = {
        "ci_risk_fix_words": szz_scores(truth.commits, truth.buggy, in_ours, own_szz),
        "ci_risk_bug_issues": szz_scores(truth.commits, truth.buggy, in_ours, tracker_szz),
        "ci_risk_bug_issues_or_revert": szz_scores(truth.commits, truth.buggy, in_ours, tracker_szz | reverted),
    }
    span = [t for c, t in author_times.items() if c in truth.commits]
    if span:
        first, last = min(span), max(span)
        inside = {c for c in in_ours if first <= author_times.get(c, -1) <= last}
        report["szz"]["labelled_in_span_not_in_apachejit"] = {
            "fix_words": len((own_szz & inside) - truth.commits),
            "bug_issues": len((tracker_szz & inside) - truth.commits),
            "backfilled_in_span_not_in_apachejit": len(inside - truth.commits),
        }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"\n== {report['project']}")
    if "error" in report:
        print(f"  error: {report['error']}")
        return
    for source in report["apachejit_sources"]:
        print(f"  ApacheJIT: {source}")
    if "label_rebuild_vs_published" in report:
        c = report["label_rebuild_vs_published"]
        print(f"  rebuilt labels vs the published buggy column: {c['agree']}/{c['rows']} agree ({c['share']})")
    for key in ("backfill", "backfill_bug_issues"):
        print(f"  {key} ({report[key]['seconds']} s): " + " | ".join(report[key]["output"]))
    print("  commits: " + ", ".join(f"{k} {v}" for k, v in report["commits"].items()))
    print(f"  {'feature':<16}{'n':>6}{'exact':>8}{'within':>8}{'med|d|':>10}{'ci-risk med':>13}{'ApacheJIT med':>15}")
    for name, row in report["features"].items():
        print(
            f"  {name:<16}{row['n']:>6}{row['exact']:>8.3f}{row['within_tolerance']:>8.3f}"
            f"{row['median_abs_diff']:>10.3f}{row['ci_risk_median']:>13.3f}{row['apachejit_median']:>15.3f}"
        )
    for name, row in report["szz"].items():
        if "precision" in row:
            print(
                f"  SZZ {name}: P {row['precision']:.3f} R {row['recall']:.3f} F1 {row['f1']:.3f} "
                f"(tp {row['tp']} fp {row['fp']} fn {row['fn']}; {row['apachejit_buggy']} buggy of {row['commits']})"
            )
        else:
            print(f"  SZZ {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="clone of the ApacheJIT replication package")
    parser.add_argument("--repos-dir", type=Path, required=True, help="holds a work-tree clone per project")
    parser.add_argument("--projects", nargs="+", default=["zookeeper"], choices=sorted(JIRA_KEY))
    parser.add_argument("--features-csv", type=Path, nargs="*", default=[], help="extra ApacheJIT metric tables")
    parser.add_argument("--store-dir", type=Path, default=None, help="keep the stores here (resumable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store_dir.resolve() if args.store_dir else Path(tmp)
        for project in args.projects:
            report = check_project(args, project, root)
            print_report(report)
            reports.append(report)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
