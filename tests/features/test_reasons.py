"""Reasons: ranked by the model's contributions, worded with the push's own facts."""
from __future__ import annotations

from ci_risk_hook.features.extract import FEATURE_NAMES, Facts, FeatureResult
from ci_risk_hook.features.reasons import describe, top_reasons


def result(**values: float) -> FeatureResult:
    facts = Facts()
    facts.paths_by_category = {"ci": [".github/workflows/test.yml"], "src_python": ["a.py", "b.py", "c.py", "d.py"]}
    facts.subsystems = ["src", "docs"]
    facts.fix_subjects = ["Fix crash when the cache is empty"]
    full: dict[str, float | None] = {name: None for name in FEATURE_NAMES}
    full.update(values)
    return FeatureResult(full, facts, ["abc"])


def test_words_name_the_concrete_fact() -> None:
    r = result(files_ci=1, author_exp=1, la=1500, ld=340, nf=37, msg_fix=1, days_since_file_change=0.5,
               files_src_python=4)
    assert describe("files_ci", 1, r) == "touches CI configuration: .github/workflows/test.yml"
    assert describe("author_exp", 1, r) == "the author's 2nd commit in this repository"
    assert describe("la", 1500, r) == "1,840 lines changed in 37 files"
    assert describe("msg_fix", 1, r) == '1 commit mentions a fix: "Fix crash when the cache is empty"'
    assert describe("days_since_file_change", 0.5, r) == "the changed files were last changed 12 hours ago on average"
    assert describe("files_src_python", 4, r) == "touches Python source: a.py, b.py, c.py and 1 more"
    assert describe("prev_build_failed", None, r) == "no earlier build recorded on this branch"
    assert describe("nuc", None, r) == "distinct earlier commits that changed these files (NUC): unknown"


def test_ordinals() -> None:
    r = result()
    assert [describe("author_exp", n, r).split()[2] for n in (0, 1, 2, 10, 11, 20, 100)] == [
        "1st", "2nd", "3rd", "11th", "12th", "21st", "101st"]


def test_top_reasons_rank_by_contribution_and_merge_the_same_fact() -> None:
    r = result(files_ci=1, la=500, ld=0, nf=2, author_exp=0, author_first_commit=1)
    contributions = {"la": 0.30, "nf": 0.25, "files_ci": 0.2, "author_first_commit": 0.1, "author_exp": 0.09,
                     "n_commits": -0.05}
    reasons = top_reasons(contributions, r)
    assert [x.feature for x in reasons] == ["la", "files_ci", "author_first_commit"]
    assert reasons[0].text == "500 lines changed in 2 files"


def test_risk_lowering_factors_fill_in_when_few_raise_it() -> None:
    r = result(files_ci=0, n_commits=1, author_exp=40)
    reasons = top_reasons({"files_ci": -0.2, "author_exp": -0.1, "n_commits": 0.01}, r)
    assert [x.feature for x in reasons] == ["n_commits", "files_ci", "author_exp"]
    assert reasons[1].text == "touches no CI configuration"
