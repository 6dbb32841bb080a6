"""Turn the model's per-feature contributions into reasons a person can check.

The ranking comes from the model (contributions along the tree paths, or
coefficient times deviation); the words come from the facts of this push,
so a reason always names the concrete thing: which file, which commit, how
many lines.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Optional, Sequence

from ci_risk_hook.features import categories
from ci_risk_hook.features.extract import BY_NAME, Facts, FeatureResult


class Reason(NamedTuple):
    feature: str
    value: float | None
    contribution: float
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution, "text": self.text}


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _plural(n: float, word: str, plural: str | None = None) -> str:
    count = int(n)
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _days(days: float) -> str:
    if days < 1:
        return _plural(round(days * 24), "hour")
    return _plural(round(days), "day")


def _some(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(_printable(p) for p in paths[:limit])
    more = len(paths) - limit
    return shown + (f" and {more:,} more" if more > 0 else "")


def _printable(path: str) -> str:
    # Newlines and undecodable bytes in file names must not break the output.
    return path.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n").replace("\t", "\\t")


def _colon(listing: str) -> str:
    # What-if inputs come without the files and subjects behind them: the sentence must still end.
    return f": {listing}" if listing else ""


def _quote(subjects: Sequence[str]) -> str:
    if not subjects:
        return ""
    first = subjects[0]
    if len(first) > 60:
        first = first[:57] + "..."
    return f'"{first}"' + (f" and {len(subjects) - 1} more" if len(subjects) > 1 else "")


def _size(v: Mapping[str, float | None], facts: Facts) -> str:
    lines = int((v.get("la") or 0) + (v.get("ld") or 0))
    return f"{lines:,} lines changed in {_plural(v.get('nf') or 0, 'file')}"


def _category(cat: str) -> Callable[[float, Mapping[str, float | None], Facts], str]:
    label = categories.LABELS[cat]

    def describe(value: float, v: Mapping[str, float | None], facts: Facts) -> str:
        paths = facts.paths_by_category.get(cat, [])
        if not value:
            return f"touches no {label}"
        if not paths:  # a what-if input: a count without files behind it
            return f"touches {label}"
        return f"touches {label}: {_some(paths)}"

    return describe


_Describer = Callable[[float, Mapping[str, Optional[float]], Facts], str]  # Optional: evaluated at run time on 3.9

_DESCRIBE: dict[str, _Describer] = {
    "n_commits": lambda x, v, f: f"{_plural(x, 'commit')} in this push",
    "n_merges": lambda x, v, f: f"{_plural(x, 'merge commit')} in this push",
    "nf": lambda x, v, f: _size(v, f),
    "la": lambda x, v, f: _size(v, f),
    "ld": lambda x, v, f: _size(v, f),
    "nd": lambda x, v, f: f"changes spread over {_plural(x, 'directory', 'directories')}",
    "ns": lambda x, v, f: f"touches {_plural(x, 'top-level subsystem')}{_colon(_some(f.subsystems))}",
    "entropy": lambda x, v, f: (
        f"changes spread over {_plural(v.get('nf') or 0, 'file')} (entropy {max(x, 0.0):.1f} bits)"
    ),
    "new_files": lambda x, v, f: (
        f"adds {_plural(x, 'new file')}{_colon(_some(f.new_paths))}" if x else "adds no new files"
    ),
    "file_age_days": lambda x, v, f: f"the changed files are {_days(x)} old on average",
    "days_since_file_change": lambda x, v, f: f"the changed files were last changed {_days(x)} ago on average",
    "nuc": lambda x, v, f: f"the changed files had {_plural(x, 'earlier commit')}",
    "ndev": lambda x, v, f: f"{_plural(x, 'person', 'people')} changed these files before",
    "lt": lambda x, v, f: f"the changed files held {int(x):,} lines before this push",
    "author_exp": lambda x, v, f: f"the author's {_ordinal(int(x) + 1)} commit in this repository",
    "author_rexp": lambda x, v, f: (
        f"the author's recent experience here is {x:.1f} (commits weighted by 1/(years ago + 1))"
    ),
    "author_sexp": lambda x, v, f: (
        f"the author's {_plural(x, 'earlier commit')} in {_some(f.subsystems) or 'these subsystems'}"
    ),
    "author_first_commit": lambda x, v, f: (
        "the author's first commit in this repository" if x else "the author has committed here before"
    ),
    "author_tenure_days": lambda x, v, f: f"the author's first commit here was {_days(x)} ago",
    "msg_fix": lambda x, v, f: (
        f"{_plural(x, 'commit')} {'mentions' if x == 1 else 'mention'} a fix{_colon(_quote(f.fix_subjects))}"
        if x
        else "no commit message mentions a fix"
    ),
    "msg_revert": lambda x, v, f: (
        f"reverts{_colon(_quote(f.revert_subjects)) or ' an earlier commit'}" if x else "no reverts"
    ),
    "msg_wip": lambda x, v, f: (
        f"work-in-progress commit{_colon(_quote(f.wip_subjects))}" if x else "no work-in-progress commits"
    ),
    "branch_mainline": lambda x, v, f: (
        "goes to the mainline branch" if x else "goes to a side branch (not main, master, trunk, develop or dev)"
    ),
    "prev_build_failed": lambda x, v, f: (
        "the previous build on this branch failed" if x else "the previous build on this branch passed"
    ),
    "fail_rate_last5": lambda x, v, f: f"{x:.0%} of the last 5 builds failed",
    "fail_rate_last20": lambda x, v, f: f"{x:.0%} of the last 20 builds failed",
    "builds_since_failure": lambda x, v, f: f"{_plural(x, 'build')} since the last failure",
    "hours_since_prev_build": lambda x, v, f: f"{x:,.1f} hours since the previous build",
    "prev_any_failed": lambda x, v, f: (
        "the latest build in this repository failed" if x else "the latest build in this repository passed"
    ),
    "fail_rate_any_last5": lambda x, v, f: f"{x:.0%} of the latest 5 builds in this repository failed",
    "touched_files_fail_rate": lambda x, v, f: f"{x:.0%} of earlier builds touching these files failed",
    "author_fail_rate": lambda x, v, f: f"{x:.0%} of the author's recent builds failed",
    "fail_streak": lambda x, v, f: (
        f"the last {_plural(x, 'build')} on this branch failed in a row" if x else "the previous build passed"
    ),
    "hours_since_failure": lambda x, v, f: f"{x:,.1f} hours since the last failed build on this branch",
    "fixes_last_failure": lambda x, v, f: f"touches {x:.0%} of the files of the last failed build again",
}
for _cat in categories.CATEGORIES:
    _DESCRIBE[f"files_{_cat}"] = _category(_cat)

# Features that describe the same fact; only the strongest one is shown.
_SAME_FACT = {"nf": "size", "la": "size", "ld": "size", "author_exp": "exp", "author_first_commit": "exp"}


def describe(name: str, value: float | None, result: FeatureResult) -> str:
    if value is None:
        if BY_NAME[name].group == "history_store":
            # The model learnt what "no build history" means; say it in those words.
            branch_wise = name in (
                "prev_build_failed",
                "fail_rate_last5",
                "fail_rate_last20",
                "builds_since_failure",
                "hours_since_prev_build",
                "fail_streak",
            )
            if name in ("hours_since_failure", "fixes_last_failure"):
                return "no failed build recorded on this branch"
            return (
                "no earlier build recorded on this branch"
                if branch_wise
                else f"{BY_NAME[name].doc}: no builds recorded"
            )
        return f"{BY_NAME[name].doc}: unknown"
    describer = _DESCRIBE.get(name)
    if describer is None:
        return f"{BY_NAME[name].doc}: {value:g}"
    return describer(value, result.values, result.facts)


def top_reasons(contributions: Mapping[str, float], result: FeatureResult, count: int = 3) -> list[Reason]:
    """The strongest risk-raising factors, and the strongest risk-lowering one when it outweighs them all.

    Features that state the same fact (lines and files changed; several build-history features that are all
    "no earlier build recorded") make one reason carrying their summed contribution, so no line repeats.
    Risk-lowering factors also fill in when fewer than `count` raise the risk.
    """
    merged = _merge_same_facts(contributions, result)
    raising = sorted((r for r in merged if r.contribution > 0), key=lambda r: -r.contribution)
    lowering = sorted((r for r in merged if r.contribution < 0), key=lambda r: r.contribution)
    if lowering and (not raising or -lowering[0].contribution >= raising[0].contribution):
        # It decides the score (a low score under risk-raising reasons would otherwise be unexplained).
        return [*raising[: count - 1], lowering[0], *lowering[1:]][:count]
    return [*raising, *lowering][:count]


def _merge_same_facts(contributions: Mapping[str, float], result: FeatureResult) -> list[Reason]:
    """One reason per fact, named after its strongest feature, with the contributions of all its features."""
    groups: dict[str, list[tuple[str, float, str]]] = {}
    for name, contribution in contributions.items():
        if not contribution:
            continue
        value = result.values.get(name)
        text = describe(name, value, result)
        groups.setdefault(_SAME_FACT.get(name, text), []).append((name, contribution, text))
    reasons = []
    for members in groups.values():
        name, _, text = max(members, key=lambda m: abs(m[1]))
        reasons.append(Reason(name, result.values.get(name), sum(m[1] for m in members), text))
    return reasons
