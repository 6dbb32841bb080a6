"""`ci-risk check --ci`: the gate as a CI step.

The range comes from the CI system's variables (`detect`), is made whole in
a shallow clone within a time budget (`shallow`), and the report goes where
the system shows it: a job summary and an annotation on GitHub, a folded log
section on GitLab, text elsewhere; `--format` and `--output` choose too.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from typing import Any, Mapping, TextIO

from ci_risk_hook import paths
from ci_risk_hook.ci import detect
from ci_risk_hook.git import ranges
from ci_risk_hook.git import repo as git
from ci_risk_hook.safetext import clean


class NotInCi(ranges.RangeError):
    """--ci outside a CI system ci-risk knows, without --from/--to: a usage error (exit 2)."""


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class CiCheck:
    """One `check --ci` run: what was detected, what was fetched, where the outputs go."""

    def __init__(
        self,
        from_rev: str | None,
        to_rev: str | None,
        branch: str | None,
        output_file: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.from_rev, self.to_rev, self.branch = from_rev, to_rev, branch
        self.output_file = output_file
        self.env = os.environ if env is None else env
        self.context: detect.CiContext | None = None
        self.notes: list[str] = []
        self.where = ""
        self._saved_repo: str | None = None  # CI_RISK_REPO before this run set it

    # -- the range ----------------------------------------------------------------

    def source(self, info: git.RepoInfo, settings: Any) -> list[ranges.PushRange]:
        from ci_risk_hook.ci import shallow

        self.context = detect.detect(self.env)
        self._pull_team_model(settings)
        if self.from_rev is not None or self.to_rev is not None:
            found = ranges.explicit(self.from_rev, self.to_rev)
            branch = self.branch or (self.context.branch if self.context else None) or git.current_branch(info)
            self.where = f"--from/--to: {found.describe()}"
            _err(clean(f"ci-risk: {self.where}"))
            return [found._replace(branch=git.short_branch(branch))]
        if self.context is None:
            raise NotInCi(f"{detect.NOT_DETECTED}; outside CI give the range with --from/--to")
        context = self.context
        if self.branch:
            context = context._replace(branch=self.branch)
        _err(f"ci-risk: {detect.describe(context)}")
        self._note_job_start(info)
        prepared = shallow.prepare(context, info, settings.deepen_budget)
        self.notes.extend(prepared.notes)
        self._find_repository(info, settings)
        self.where = f"{context.name} {context.event}: {prepared.push_range.describe()}"
        return [prepared.push_range._replace(label=self.where, branch=git.short_branch(context.branch))]

    def _pull_team_model(self, settings: Any) -> None:
        """A CI step pulls the team model in the foreground, bounded; trouble at the source is a note, not a failure."""
        from ci_risk_hook.distribution import team

        line = team.refresh_for_ci(settings)
        if line:
            _err(clean(f"ci-risk: {line}"))

    def _note_job_start(self, info: git.RepoInfo) -> None:
        """The job's start for `record --ci` (GitHub has no variable for it): the first `check --ci` of the job."""
        assert self.context is not None
        key = job_marker_key(self.context)
        path = paths.ci_job_start(info.common_dir)
        if read_job_start(info.common_dir, key) is not None:
            return
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(f"{int(time.time())} {key}\n")
        except OSError:
            pass  # only the recorded duration is lost

    def _find_repository(self, info: git.RepoInfo, settings: Any) -> None:
        """In a shallow clone, the store's repository named by the CI slug gives build-history features."""
        from ci_risk_hook.ci import identity
        from ci_risk_hook.outcomes.store import StoreError, open_store, remembered

        assert self.context is not None
        info = git.repo_info()  # deepening may have completed the clone: then its root commit is known
        if not self.context.repository or identity.known_root(info) is not None:
            return
        url = settings.db or os.environ.get(paths.DB_ENV) or remembered(info.common_dir)
        if not url:
            return
        try:
            store = open_store(url, create=False, timeout=settings.store_budget, existing=True)
            try:
                root = identity.root_by_name(store, self.context.repository)
            finally:
                store.close()
        except (StoreError, OSError) as exc:
            self.notes.append(f"repository not looked up by name in the store: {exc}")
            return
        if root is not None:
            # Read by the gate's build-history look-up, during this run only (`render` and `failed` restore it).
            self._saved_repo = os.environ.get(paths.REPO_ENV, "")
            os.environ[paths.REPO_ENV] = root
            self.notes.append(f"shallow clone: repository found in the store by its name {self.context.repository}")

    # -- the outputs ----------------------------------------------------------------

    def render(self, report: Any, output_format: str) -> str:
        """What stdout shows: the format asked for; in text, as the CI system shows logs best."""
        from ci_risk_hook.ci import outputs

        self._restore_env()
        report.notes[:0] = self.notes
        if not self.where:  # --output without --ci: the ranges scored
            self.where = ", ".join(entry.push_range.describe() for entry in report.ranges)
        if output_format == "json":
            return outputs.json_extra(outputs.render(report, "json"), self.ci_dict())
        if output_format == "text" and self.context is not None and self.context.system == "gitlab":
            return outputs.render(report, "gitlab")
        return outputs.render(report, output_format, self.where)

    def publish(self, report: Any, rendered: str, output_format: str) -> list[str]:
        """Side outputs: the GitHub job summary, the --output file; returns extra stdout lines (annotations).

        With --format json stdout stays one JSON document: no annotation line (the summary is still written).
        """
        from ci_risk_hook.ci import outputs

        lines: list[str] = []
        if self.output_file:
            try:
                with _open_unblocked(self.output_file, append=False) as fh:
                    fh.write(rendered + "\n")
            except OSError as exc:
                _err(clean(f"ci-risk: warning: cannot write {self.output_file}: {_why(exc)}"))
        if self.context is not None and self.context.system == "github":
            summary = self.env.get("GITHUB_STEP_SUMMARY", "")
            if summary:
                try:
                    with _open_unblocked(summary, append=True) as fh:
                        fh.write(outputs.step_summary(report, self.where))
                except OSError as exc:
                    _err(clean(f"ci-risk: warning: cannot append to GITHUB_STEP_SUMMARY: {_why(exc)}"))
            line = outputs.annotation(report)
            if line and output_format not in ("json", "github"):  # --format github prints it already
                lines.append(line)
        return lines

    def failed(self, message: str, strict: bool, output_format: str) -> list[str]:
        """ci-risk could not check the change: on GitHub, an annotation says so where people look."""
        from ci_risk_hook.safetext import workflow_data

        self._restore_env()
        if self.env.get("GITHUB_ACTIONS") != "true" or output_format == "json":  # the context may be what failed
            return []
        level = "error" if strict else "warning"
        return [f"::{level} title=ci-risk did not check this change::{workflow_data(clean(message))}"]

    def _restore_env(self) -> None:
        if self._saved_repo is not None:
            if self._saved_repo:
                os.environ[paths.REPO_ENV] = self._saved_repo
            else:
                os.environ.pop(paths.REPO_ENV, None)
            self._saved_repo = None

    def ci_dict(self) -> dict[str, Any]:
        c = self.context
        base: dict[str, Any] = {"range": self.where}
        if c is None:
            return {"system": None, **base}
        return {
            "system": c.system,
            "event": c.event,
            "source": c.source,
            "branch": c.branch,
            "run_id": c.run_id,
            "attempt": c.attempt,
            "job": c.job,
            "repository": c.repository,
            **base,
        }


def _open_unblocked(path: str, append: bool) -> TextIO:
    """`path` opened for writing without waiting: a FIFO nobody reads is refused at once (ENXIO), not waited on.

    A plain `open` of such a FIFO blocks until a reader comes, which in a CI job is never. Files, terminals
    and pipes with a reader (`--output /dev/stderr`, `>(cat)`) open as usual, and writes then block as usual.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags, 0o666)
    try:
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENXIO:
        return "a FIFO that nobody reads"
    return str(exc.strerror or exc)


def job_marker_key(context: detect.CiContext) -> str:
    return "\t".join((context.system, context.run_id, str(context.attempt), context.job)).replace("\n", " ")


def read_job_start(common_dir: str, key: str) -> int | None:
    """When `check --ci` first ran in the job named by `key`, if it did."""
    try:
        with open(paths.ci_job_start(common_dir), encoding="utf-8") as fh:
            stamp, _, noted = fh.read().rstrip("\n").partition(" ")
        return int(stamp) if noted == key and stamp.isdigit() else None
    except (OSError, ValueError):
        return None
