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
    r = result(
        files_ci=1, author_exp=1, la=1500, ld=340, nf=37, msg_fix=1, days_since_file_change=0.5, files_src_python=4
    )
    assert describe("files_ci", 1, r) == "touches CI configuration: .github/workflows/test.yml"
    assert describe("author_exp", 1, r) == "the author's 2nd commit in this repository"
    assert describe("la", 1500, r) == "1,840 lines changed in 37 files"
    assert describe("msg_fix", 1, r) == '1 commit mentions a fix: "Fix crash when the cache is empty"'
    assert describe("days_since_file_change", 0.5, r) == "the changed files were last changed 12 hours ago on average"
    assert describe("files_src_python", 4, r) == "touches Python source: a.py, b.py, c.py and 1 more"
    assert describe("prev_build_failed", None, r) == "no earlier build recorded on this branch"
    assert describe("nuc", None, r) == "distinct earlier commits that changed these files (NUC): unknown"
    assert describe("branch_mainline", 0, r) == "goes to a side branch (not main, master, trunk, develop or dev)"
    assert describe("branch_mainline", 1, r) == "goes to the mainline branch"


def test_ordinals() -> None:
    r = result()
    assert [describe("author_exp", n, r).split()[2] for n in (0, 1, 2, 10, 11, 20, 100)] == [
        "1st",
        "2nd",
        "3rd",
        "11th",
        "12th",
        "21st",
        "101st",
    ]


def test_top_reasons_rank_by_contribution_and_merge_the_same_fact() -> None:
    r = result(files_ci=1, la=500, ld=0, nf=2, author_exp=0, author_first_commit=1)
    contributions = {
        "la": 0.30,
        "nf": 0.25,
        "files_ci": 0.2,
        "author_first_commit": 0.1,
        "author_exp": 0.09,
        "n_commits": -0.05,
    }
    reasons = top_reasons(contributions, r)
    assert [x.feature for x in reasons] == ["la", "files_ci", "author_first_commit"]
    assert reasons[0].text == "500 lines changed in 2 files"


def test_risk_lowering_factors_fill_in_when_few_raise_it() -> None:
    r = result(files_ci=0, n_commits=1, author_exp=40)
    reasons = top_reasons({"files_ci": -0.2, "author_exp": -0.1, "n_commits": 0.01}, r)
    assert [x.feature for x in reasons] == ["n_commits", "files_ci", "author_exp"]
    assert reasons[1].text == "touches no CI configuration"


def test_features_that_say_the_same_thing_make_one_line_with_their_summed_weight() -> None:
    """A cold start leaves every branch-wise build-history feature unknown: one "no earlier build" line."""
    r = result(files_ci=1, la=200, ld=0, nf=1)
    contributions = {
        "prev_build_failed": 0.05,
        "fail_rate_last5": 0.04,
        "fail_rate_last20": 0.03,
        "builds_since_failure": 0.02,
        "hours_since_prev_build": 0.01,
        "files_ci": 0.08,
        "la": 0.06,
    }
    reasons = top_reasons(contributions, r)
    texts = [x.text for x in reasons]
    assert len(texts) == len(set(texts)), texts
    assert texts[0] == "no earlier build recorded on this branch"
    assert abs(reasons[0].contribution - 0.15) < 1e-12
    assert [x.feature for x in reasons[1:]] == ["files_ci", "la"]


def test_a_risk_lowering_factor_that_decides_the_score_is_shown() -> None:
    """A 0.02 score under three risk-raising reasons would leave the reader guessing why it is low."""
    r = result(files_ci=1, la=64_000, ld=399, nf=3, files_build=1, hours_since_prev_build=25_603.0)
    contributions = {"la": 0.9, "files_build": 0.5, "files_ci": 0.4, "hours_since_prev_build": -14.7}
    reasons = top_reasons(contributions, r)
    assert [x.feature for x in reasons] == ["la", "files_build", "hours_since_prev_build"]
    assert reasons[-1].text == "25,603.0 hours since the previous build"
    # When risk-raising reasons outweigh it, they keep all three places.
    assert "hours_since_prev_build" not in [
        x.feature for x in top_reasons({**contributions, "hours_since_prev_build": -0.3}, r)
    ]


def test_what_if_inputs_without_facts_still_read_as_whole_sentences() -> None:
    r = result(author_sexp=78, ns=2)
    r.facts.subsystems = []
    assert describe("author_sexp", 78, r) == "the author's 78 earlier commits in these subsystems"
    assert describe("ns", 2, r) == "touches 2 top-level subsystems"
