"""Which commits a push (or a manual check) would publish.

Three sources, one result type: pre-commit's environment, a raw git pre-push
hook's stdin, and explicit `--from/--to` (default: upstream..HEAD).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

from ci_risk_hook.errors import EXIT_OK, EXIT_USAGE, CiRiskError
from ci_risk_hook.git import repo as git


class RangeError(CiRiskError):
    """The requested range cannot be resolved (a bad revision: a usage error)."""

    exit_code = EXIT_USAGE


class NothingPending(RangeError):
    """There is nothing to check yet (a branch without commits): not an error."""

    exit_code = EXIT_OK


class PushRange(NamedTuple):
    tip: str
    exclude: tuple[str, ...] = ()
    # None: exclude nothing more; "": every remote-tracking ref; else one remote.
    exclude_remotes: str | None = None
    label: str = ""
    branch: str | None = None  # the branch CI will build, for build-history features
    # With exclude_remotes: a remote-tracking ref (`origin/feature`) left out of the exclusion, so a CI
    # checkout of a new branch scores the commits on no *other* remote branch.
    except_ref: str | None = None

    def rev_args(self) -> list[str]:
        args = [self.tip, *(f"^{sha}" for sha in self.exclude)]
        if self.exclude_remotes is not None:
            args.append("--not")
            if self.except_ref:
                args.append(f"--exclude={self.except_ref}")
            args.append(f"--remotes={self.exclude_remotes}" if self.exclude_remotes else "--remotes")
        return args

    def describe(self) -> str:
        if self.exclude:
            base = ", ".join(sha[:10] for sha in self.exclude)
            return f"{base}..{self.tip[:10]}"
        if self.exclude_remotes is not None:
            where = f"remote '{self.exclude_remotes}'" if self.exclude_remotes else "any remote"
            if self.except_ref:
                where = f"any remote branch but {self.except_ref}"
            return f"{self.tip[:10]} (commits not on {where})"
        return f"{self.tip[:10]} (whole history)"


def from_pre_commit_env(env: Mapping[str, str], cwd: str | None = None) -> list[PushRange] | None:
    """Ranges from pre-commit's pre-push variables, or None outside such a run.

    pre-commit passes FROM/TO only when both are known; a new branch whose
    first commit is a root commit gets neither, so then the local branch's
    commits that no remote-tracking ref has are scored.
    """
    from_ref = env.get("PRE_COMMIT_FROM_REF") or env.get("PRE_COMMIT_SOURCE")
    to_ref = env.get("PRE_COMMIT_TO_REF") or env.get("PRE_COMMIT_ORIGIN")
    label = env.get("PRE_COMMIT_REMOTE_BRANCH", "")
    branch = git.short_branch(label or env.get("PRE_COMMIT_LOCAL_BRANCH"))
    if from_ref and to_ref:
        return [PushRange(tip=to_ref, exclude=(from_ref,), label=label, branch=branch)]
    remote = env.get("PRE_COMMIT_REMOTE_NAME")
    if remote is None:
        return None
    local = env.get("PRE_COMMIT_LOCAL_BRANCH") or "HEAD"
    try:
        tip = (
            git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{local}^{{commit}}"], cwd)
            .decode()
            .strip()
        )
    except git.GitError:
        return []
    return [PushRange(tip=tip, exclude_remotes=remote, label=label, branch=branch)]


def from_hook_stdin(lines: Sequence[str], remote_name: str, cwd: str | None = None) -> list[PushRange]:
    """Ranges from git's pre-push stdin: `<local ref> <local sha> <remote ref> <remote sha>`.

    A deletion pushes nothing. When the remote sha is all zeros (new branch)
    or unknown locally (someone else pushed since our last fetch), the range
    is the commits that no remote-tracking ref of this remote has.
    """
    parsed: list[tuple[str, str, str, str]] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        parsed.append((parts[0], parts[1], parts[2], parts[3]))
    known = git.existing_commits([remote_sha for _, _, _, remote_sha in parsed], cwd)
    ranges: list[PushRange] = []
    for local_ref, local_sha, remote_ref, remote_sha in parsed:
        if local_sha == git.ZERO_SHA:
            continue
        label = f"{local_ref} -> {remote_ref}"
        branch = git.short_branch(remote_ref)
        if remote_sha in known:
            ranges.append(PushRange(tip=local_sha, exclude=(remote_sha,), label=label, branch=branch))
        else:
            ranges.append(PushRange(tip=local_sha, exclude_remotes=remote_name, label=label, branch=branch))
    return ranges


def _resolve(rev: str, cwd: str | None) -> str:
    try:
        return (
            git.run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], cwd).decode().strip()
        )
    except git.GitError as exc:
        raise RangeError(f"not a commit: {rev}") from exc


def explicit(from_rev: str | None, to_rev: str | None, cwd: str | None = None) -> PushRange:
    """`--from/--to`; without --from, upstream..TO, else TO's commits on no remote."""
    tip_rev = to_rev or "HEAD"
    if from_rev is not None:
        # Both in one git process (this is on every push's path); only a
        # failure pays for resolving each alone to say which one is wrong.
        try:
            out = git.run(["rev-parse", "--end-of-options", f"{from_rev}^{{commit}}", f"{tip_rev}^{{commit}}"], cwd)
            base, tip = out.decode().split()
            return PushRange(tip=tip, exclude=(base,), label=f"{from_rev}..{tip_rev}")
        except (git.GitError, ValueError):
            _resolve(from_rev, cwd)
    try:
        tip = _resolve(tip_rev, cwd)
    except RangeError:
        if to_rev is None:
            raise NothingPending("nothing to check: this branch has no commits yet") from None
        raise
    if from_rev is not None:
        return PushRange(tip=tip, exclude=(_resolve(from_rev, cwd),), label=f"{from_rev}..{tip_rev}")
    if to_rev is None:
        try:
            upstream = _resolve("@{upstream}", cwd)
            return PushRange(tip=tip, exclude=(upstream,), label="HEAD vs @{upstream}")
        except RangeError:
            pass
    return PushRange(tip=tip, exclude_remotes="", label=f"{tip_rev} (not on any remote)")
