"""The gate: range -> features -> model -> decision. Shared by the hook, `check` and CI.

No click, no scikit-learn, no pandas: this is the hot path of every push.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

from ci_risk_hook import paths
from ci_risk_hook.config import CONFIG_FILE, RECALL_CUT, Settings
from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import FEATURE_NAMES, FeatureResult, Limits, push_features, store_features
from ci_risk_hook.features.reasons import Reason, top_reasons
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from ci_risk_hook.model.scoring import PortableModel, load_model

if TYPE_CHECKING:
    from ci_risk_hook.outcomes.store import Prediction, PriorBuild, Store

PLACES = ("hook", "manual", "ci")  # where a prediction was made, as recorded
_RECORD_WAIT_S = 600.0  # how long the store's worker waits for the push's predictions before giving up


class ModelChoice(NamedTuple):
    model: PortableModel
    path: str
    source: str  # "option", "$CI_RISK_MODEL", "user config", "team (SOURCE)", ".ci-risk.ini", "repository", "bundled"


class RangeReport:
    def __init__(self, push_range: PushRange, features: FeatureResult) -> None:
        self.push_range = push_range
        self.features = features
        self.probability: float | None = None
        self.decision = "pass"  # pass | warn | block | empty
        self.reasons: list[Reason] = []
        self.space = "probability"


class GateReport:
    def __init__(self, settings: Settings, warn_at: float, block_at: float, model: ModelChoice | None) -> None:
        self.ranges: list[RangeReport] = []
        self.settings = settings
        self.warn_at = warn_at
        self.block_at = block_at
        self.model = model
        self.notes: list[str] = []

    @property
    def decision(self) -> str:
        order = {"empty": 0, "pass": 1, "warn": 2, "block": 3}
        if not self.ranges:
            return "empty"
        return max((r.decision for r in self.ranges), key=lambda d: order[d])

    @property
    def exit_code(self) -> int:
        return 1 if self.decision == "block" and self.settings.mode == "block" else 0


def repo_model_path(info: git.RepoInfo) -> str:
    return paths.repo_model(info.common_dir)


def bundled_model_path() -> str | None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the ci_risk_hook package
    for candidate in (
        os.path.join(here, "bundled_model", paths.MODEL_FILE),  # installed: model/ is mapped into the package
        os.path.join(os.path.dirname(here), "model", paths.MODEL_FILE),  # running from a source checkout
    ):
        if os.path.isfile(candidate):
            return candidate
    return None


def choose_model(
    settings: Settings, info: git.RepoInfo, notes: list[str] | None = None, *, refresh: bool = False
) -> ModelChoice | None:
    """The first model found, by precedence (README, "Which model is used"):

    1. `model` from an option, CI_RISK_MODEL or the user's config;
    2. the team model pulled from `model_source` (the cached copy; with
       `refresh`, a background refresh when due);
    3. `model` from the repository's .ci-risk.ini (a regular file inside the
       work tree, config.repository_model);
    4. the model `ci-risk train` wrote for this repository;
    5. the bundled model.

    Why the team model falls through (none pulled yet, last refresh failed)
    is appended to `notes`, one line each. Every source is size-capped and
    range-checked by load_model.
    """
    notes = [] if notes is None else notes
    from_repository = settings.sources.get("model") == CONFIG_FILE
    if settings.model and not from_repository:
        return ModelChoice(_load(settings.model), settings.model, settings.sources.get("model", "option"))
    if settings.model_source:
        team = _team_model(settings, notes, refresh)
        if team is not None:
            return team
    if settings.model:
        return ModelChoice(_load(settings.model), settings.model, CONFIG_FILE)
    repo_path = repo_model_path(info)
    if os.path.isfile(repo_path):
        return ModelChoice(_load(repo_path), repo_path, "repository")
    bundled = bundled_model_path()
    if bundled is not None:
        return ModelChoice(_load(bundled), bundled, "bundled")
    return None


def _team_model(settings: Settings, notes: list[str], refresh: bool) -> ModelChoice | None:
    from ci_risk_hook.distribution import team
    from ci_risk_hook.model.scoring import ModelError

    assert settings.model_source is not None
    cached = team.cached_model(
        settings.model_source, settings.trusted_keys, settings.model_refresh, notes, refresh=refresh
    )
    if cached is None:
        return None
    try:
        return ModelChoice(_load(cached.path), cached.path, cached.label)
    except ModelError as exc:
        notes.append(f"team model: the cached copy is unusable ({exc}); using the next model")
        return None


def _load(path: str) -> PortableModel:
    return load_model(path, known_features=FEATURE_NAMES)


def decide(probability: float, mode: str, warn_at: float, block_at: float) -> str:
    """What the gate says; observe mode records the same decisions warn mode would show."""
    if probability >= block_at:
        return "block" if mode == "block" else "warn"
    if probability >= warn_at:
        return "warn"
    return "pass"


def evaluate(
    ranges: Sequence[PushRange],
    settings: Settings,
    info: git.RepoInfo,
    progress: Callable[[int], None] | None = None,
    cwd: str | None = None,
    now: int | None = None,
    refresh: bool = True,
    place: str | None = None,
    ci_run: str = "",
) -> GateReport:
    """Score each range; `now` (default: the clock) is when the push happens, for build-history features.

    `refresh`: a push starts the team model's background refresh when due; a CI step pulls in the foreground
    before (`ci.gate`) and leaves nothing running after the job. `place` (one of PLACES) records the
    predictions in the store, when one is configured and `record_predictions` is on; None records nothing.
    """
    notes: list[str] = []
    choice = choose_model(settings, info, notes, refresh=refresh)
    warn_at, block_at = settings.thresholds(choice.model.thresholds if choice else None)
    report = GateReport(settings, warn_at, block_at, choice)
    report.notes.extend(notes)
    limits = Limits(max_commits=settings.max_commits)
    when = int(time.time()) if now is None else now
    recording = place is not None and settings.record_predictions
    history = _BuildHistory(
        settings, info, cwd, when, [r.branch for r in ranges], recording, moving_cut=settings.warn_at == RECALL_CUT
    )
    try:
        _score(ranges, settings, info, progress, cwd, history, report, limits)
    finally:
        if recording and history.worker is not None:
            rows = _predictions(report, place, ci_run, when)
            if place == "hook":  # the push waits for no disk: the next push moves them into the store
                from ci_risk_hook.outcomes import spool

                spool.append(info.common_dir, rows)
                rows = []
            history.record(rows)
            report.notes.extend(history.move_notes)
    return report


def _score(
    ranges: Sequence[PushRange],
    settings: Settings,
    info: git.RepoInfo,
    progress: Callable[[int], None] | None,
    cwd: str | None,
    history: _BuildHistory,
    report: GateReport,
    limits: Limits,
) -> None:
    choice, warn_at, block_at = report.model, report.warn_at, report.block_at
    moved = False
    for push_range in ranges:
        features = analyze(push_range, info, limits, progress, cwd, index_budget=settings.index_budget)
        if features.commits:
            features.values.update(push_features(push_range.branch))
        history.fill(push_range, features)
        if not moved and history.read.is_set() and history.recall_cut is not None:
            moved = True  # decided once, for every range of the push alike
            report.warn_at = warn_at = min(history.recall_cut, block_at)
            report.notes.append(
                f"warn at {warn_at:.3f}: the 90 %-recall cut as the {history.cut_failures} latest failures this "
                "repository's gate scored have moved it"
            )
        entry = RangeReport(push_range, features)
        report.ranges.append(entry)
        if not features.commits:
            entry.decision = "empty"
            continue
        if choice is None:
            continue
        explanation = choice.model.explain(features.values)
        entry.probability = explanation.probability
        entry.space = explanation.space
        entry.reasons = top_reasons(explanation.contributions, features)
        entry.decision = decide(explanation.probability, settings.mode, warn_at, block_at)
    if choice is None:
        report.notes.append(
            "no model available yet (none configured, trained for this repository, or bundled): push not scored"
        )


def _predictions(report: GateReport, place: str | None, ci_run: str, now: int) -> list[Prediction]:
    """The rows to record: one per scored range, its tip the newest commit read."""
    from ci_risk_hook.outcomes.store import Prediction

    if place is None or report.model is None:
        return []
    return [  # nothing here can raise: every field is already known
        Prediction(
            r.features.commits[0],
            r.push_range.exclude[0] if r.push_range.exclude else None,
            r.push_range.branch,
            r.probability,
            r.decision,
            report.settings.mode,
            report.model.model.sha256,
            report.warn_at,
            report.block_at,
            place,
            ci_run,
            r.features.facts.author_email or None,
            now,
        )
        for r in report.ranges
        if r.probability is not None and r.features.commits
    ]


class _BuildHistory:
    """Build-history features from the outcomes store, when this repository has one.

    The store is only opened if one was configured or has been written for
    this repository, so a push never creates it; any trouble with it leaves
    these features unknown and says so, it never stops the push. It is read
    in a thread started before the push's commits are analysed, and the push
    waits for it at most `store_budget` seconds from then: a server that
    accepts connections and never answers costs the push that budget, not the
    driver's connect timeout (libpq's minimum is 2 s). A store file on a hung
    network mount can still hold up the process's exit: nothing bounds that.

    With `recording`, the same worker and connection then record predictions:
    the store is opened for writing if it exists (never created; an SQLite file
    is never upgraded by a push: older than the `predictions` table, it records
    nothing until a command upgrades it). A push's own predictions go to the spool
    (`outcomes.spool`) and the worker moves earlier pushes' spooled ones in
    while this push's commits are read, so the push itself waits for no
    commit of its own; `check` and CI hand theirs over (`record`). Either
    waits for the worker's writing at most `store_budget`.
    Trouble writing is silent: a prediction lost costs the push nothing.
    """

    def __init__(
        self,
        settings: Settings,
        info: git.RepoInfo,
        cwd: str | None,
        now: int,
        branches: Sequence[str | None],
        recording: bool = False,
        moving_cut: bool = False,
    ) -> None:
        from ci_risk_hook.outcomes.store import remembered  # not on the path of a repository without a store

        self.now = now
        self.budget = settings.store_budget
        self.deadline = time.monotonic() + self.budget
        self.url = settings.db or remembered(info.common_dir)
        self.prior: dict[str | None, list[PriorBuild]] = {}
        self.author_id: Callable[[str | None], str | None] = lambda author: author  # as the store holds authors
        self.problem: str | None = None
        self.error: BaseException | None = None
        self.reported = False
        self.recording = recording
        self.moving_cut = moving_cut  # read the scored failures too (`--warn-at recall90`)
        self.recall_cut: float | None = None
        self.cut_failures = 0
        self.pending: queue.Queue[list[Prediction]] = queue.Queue(maxsize=1)
        self.record_problem: str | None = None
        self.move_notes: list[str] = []  # what moving earlier pushes' predictions in found lost (spool.Moved)
        self.read = threading.Event()  # set when the worker has read (or given up): it may go on to record
        self.written = threading.Event()  # set when the predictions are committed (or will not be)
        self.worker: threading.Thread | None = None
        if self.url is not None:
            self.worker = threading.Thread(
                target=self._work, args=(info, cwd, list(dict.fromkeys(branches))), name="ci-risk-store", daemon=True
            )
            self.worker.start()

    def _work(self, info: git.RepoInfo, cwd: str | None, branches: list[str | None]) -> None:
        """The worker: read, then (recording) write; whatever happens, nobody waits for it in vain."""
        try:
            self._read(info, cwd, branches)
        finally:
            self.read.set()
            self.written.set()

    def _read(self, info: git.RepoInfo, cwd: str | None, branches: list[str | None]) -> None:
        """In the worker: every branch's earlier builds, read in one visit to the store."""
        from ci_risk_hook.outcomes.store import AuthorModeError, StoreError, exists, is_postgres, open_store

        assert self.url is not None
        store = None
        repo_id = root = None
        try:
            root = git.root_commit(info, cwd)
            if root is None:
                return
            writing = self.recording and exists(self.url)
            # As a reader always did: a PostgreSQL store is brought up to date by whoever connects first (under
            # its lock), an SQLite file never by a push (opened for writing here, it is still not upgraded). A
            # database without ci-risk's tables is no store: a push (or the dashboard) never creates them.
            migrate = is_postgres(self.url)
            try:
                store = open_store(self.url, create=writing, timeout=self.budget, migrate=migrate, existing=True)
            except AuthorModeError:
                if not writing:
                    raise
                # A writer's setting that cannot be met (hash_authors without its key): read as before, record
                # nothing (a prediction written unhashed would claim the store for plain authors).
                self.recording = False
                store = open_store(self.url, create=False, timeout=self.budget, migrate=migrate, existing=True)
            repo_id = store.find_repository(root)
            if repo_id is not None:
                self.prior = {branch: store.prior_builds(repo_id, self.now, branch) for branch in branches}
                if self.moving_cut:
                    from ci_risk_hook.model import recall_cut

                    failures = store.scored_failures(repo_id, self.now, recall_cut.REPLAY)
                    self.cut_failures = len(failures)
                    self.recall_cut = recall_cut.replay(failures, self.now)
                self.author_id = store.author_id  # a store of hashed authors: this push's author hashed alike
        except (StoreError, git.GitError) as exc:
            self.problem = f"build history unavailable ({exc}); its features are unknown"
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread, which fails open
            self.error = exc
        finally:
            if store is not None and not (self.recording and root and self.problem is None and self.error is None):
                store.close()
                store = None
            self.read.set()
        if store is not None and root is not None:
            self._write(store, repo_id, root, info.common_dir)

    def _write(self, store: Store, repo_id: int | None, root: str, common_dir: str) -> None:
        """In the worker, after reading: move earlier pushes' predictions in, then this run's (`check`, CI)."""
        from ci_risk_hook.outcomes import spool
        from ci_risk_hook.outcomes.store import PREDICTIONS_FROM

        try:
            if store.read_only or store.schema_version() < PREDICTIONS_FROM:
                return
            store.for_a_quick_write()
            self.move_notes = spool.move(store, repo_id, root, common_dir).notes  # while the commits are read
            rows = self.pending.get(timeout=_RECORD_WAIT_S)
            if rows:
                store.add_predictions(store.repository_id(root) if repo_id is None else repo_id, rows)
        except Exception as exc:  # noqa: BLE001 - best effort: a prediction lost must not cost the push
            self.record_problem = str(exc)
        finally:
            self.written.set()  # committed (or given up): the caller need not wait for the close below
            store.close()

    def record(self, rows: list[Prediction]) -> None:
        """On the main thread: hand the predictions to the worker and wait for them at most `store_budget`.

        A push hands none (its own are spooled) and waits only for the move of earlier ones, which ran
        while its commits were read: usually finished by then (`bench/prediction_recording.py`).
        """
        if not self.recording or self.worker is None:
            return
        try:
            self.pending.put_nowait(rows)
        except queue.Full:
            return
        # A push waits for the move of earlier predictions only within the store's budget from its start (a cut
        # move is finished by a later push); `check` and CI give their own rows the whole budget.
        self.written.wait(self.budget if rows else max(0.0, self.deadline - time.monotonic()))

    def fill(self, push_range: PushRange, features: FeatureResult) -> None:
        if not features.commits or self.worker is None:
            return
        if not self.read.wait(max(0.0, self.deadline - time.monotonic())):
            from ci_risk_hook.outcomes.store import redact

            self._note(
                features,
                f"build history skipped: the outcomes store {redact(self.url or '')} did not answer "
                f"within {self.budget:g} s; its features are unknown for this push",
            )
            return
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.problem is not None:
            self._note(features, self.problem)
            return
        prior = self.prior.get(push_range.branch)
        if prior is None:
            return
        files = [p for paths in features.facts.paths_by_category.values() for p in paths]
        author = self.author_id(features.facts.author_email)
        features.values.update(store_features(prior, push_range.branch, files, author, self.now))

    def _note(self, features: FeatureResult, text: str) -> None:
        """Once per push, on the first range that needed the store."""
        if not self.reported:
            self.reported = True
            features.notes.append(text)


_SCORED_KEEP = 50
_SCORED_MAX_BYTES = 256 * 1024  # past this the log is trimmed to the newest _SCORED_KEEP; readers read no more


def remember_scores(info: git.RepoInfo, report: GateReport) -> None:
    """Append this push's scores and reasons to .git/ci-risk/scored.jsonl (the report shows the latest).

    Best effort: a full disk or a read-only git dir must not cost the push anything,
    and neither must a damaged log (its bad lines are dropped when it is trimmed).
    """
    import json

    entries = [
        {
            "time": int(time.time()),
            "range": r.push_range.label or r.push_range.describe(),
            "commits": len(r.features.commits),
            "probability": r.probability,
            "decision": r.decision,
            "reasons": [x.text for x in r.reasons],
            "model": report.model.model.sha256[:12] if report.model else None,
        }
        for r in report.ranges
        if r.probability is not None
    ]
    if not entries:
        return
    path = paths.scored_log(info.common_dir)
    text = "".join(json.dumps(e, allow_nan=False) + "\n" for e in entries)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as fh:
            if fh.tell() and not _ends_with_newline(path):
                text = "\n" + text  # a torn last line must not swallow this entry
            fh.write(text.encode("utf-8"))
        if os.path.getsize(path) > _SCORED_MAX_BYTES:
            keep = _read_scored(path)[-_SCORED_KEEP:]
            temporary = path + ".tmp"
            with open(temporary, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(e, allow_nan=False) + "\n" for e in keep)
            os.replace(temporary, path)
    except (OSError, ValueError):
        pass


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def scored_pushes(info: git.RepoInfo, limit: int = 10) -> list[dict[str, object]]:
    """The newest scored pushes, oldest first; lines that are not a valid entry are skipped."""
    try:
        return _read_scored(paths.scored_log(info.common_dir))[-limit:]
    except OSError:
        return []


def _read_scored(path: str) -> list[dict[str, object]]:
    """Valid entries of the log's last _SCORED_MAX_BYTES (a first partial line is dropped)."""
    import json

    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _SCORED_MAX_BYTES))
        data = fh.read()
    lines = data.split(b"\n")
    if size > _SCORED_MAX_BYTES:
        lines = lines[1:]
    entries = []
    for line in lines:
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if _valid_scored(entry):
            entries.append(entry)
    return entries


def _valid_scored(entry: object) -> bool:
    """What the report reads of an entry is there and of the right type (a probability is a finite 0..1)."""
    if not isinstance(entry, dict):
        return False
    reasons = entry.get("reasons")
    return (
        _is_number(entry.get("probability"))
        and 0.0 <= entry["probability"] <= 1.0
        and _is_number(entry.get("time", 0))
        and isinstance(entry.get("range"), str)
        and isinstance(entry.get("decision"), str)
        and isinstance(reasons, list)
        and all(isinstance(r, str) for r in reasons)
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN
