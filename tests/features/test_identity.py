"""One person with several e-mail addresses is one author, through the repository's .mailmap (issue 12, fix 2)."""

from __future__ import annotations

from ci_risk_hook.features.analysis import analyze
from ci_risk_hook.features.extract import Limits
from ci_risk_hook.git import repo as git
from ci_risk_hook.git.ranges import PushRange
from testing.repos import Repo, lines

OLD = "Alice <alice@old.example.com>"
WORK = "Alice <Alice.Smith@Work.example.com>"
NEW = "Alice <alice@new.example.com>"
MAILMAP = (
    "Alice <alice@new.example.com> <alice@old.example.com>\n"
    "Alice <alice@new.example.com> <alice.smith@work.example.com>\n"
)


def push_features(repo: Repo, base: str) -> dict[str, float | None]:
    info = git.repo_info(str(repo.path))
    return analyze(PushRange(tip=repo.head(), exclude=(base,)), info, Limits(), cwd=str(repo.path)).values


def alice_history(repo: Repo) -> None:
    for i in range(3):
        repo.commit({"src/app.py": lines(10 + i)}, f"old address {i}", author=OLD)
    for i in range(2):
        repo.commit({"src/app.py": lines(20 + i)}, f"work address {i}", author=WORK)
    repo.commit({"src/app.py": lines(30)}, "new address", author=NEW)


def test_mailmap_merges_an_authors_addresses(repo: Repo) -> None:
    alice_history(repo)
    repo.commit({".mailmap": MAILMAP}, "map Alice", author=NEW)
    base = repo.head()
    repo.commit({"src/app.py": lines(31)}, "more", author=OLD)
    v = push_features(repo, base)
    assert (v["author_exp"], v["author_first_commit"], v["ndev"]) == (7, 0, 1)
    tip = next(git.iter_commits(["HEAD", "-1"], str(repo.path)))
    assert tip.author_email == "alice@new.example.com"


def test_without_mailmap_the_lower_cased_address_is_the_identity(repo: Repo) -> None:
    alice_history(repo)
    base = repo.head()
    repo.commit({"src/app.py": lines(31)}, "more", author="Alice <alice.smith@work.example.com>")
    v = push_features(repo, base)
    assert v["author_exp"] == 2  # the two commits as Alice.Smith@Work..., whatever the case
    assert v["ndev"] == 3


def test_a_new_mailmap_rebuilds_the_history_index_with_the_merged_identities(repo: Repo) -> None:
    alice_history(repo)
    base = repo.head()
    repo.commit({"src/app.py": lines(31)}, "more", author=NEW)
    assert push_features(repo, base)["author_exp"] == 1  # the index now holds three Alices
    repo.commit({".mailmap": MAILMAP}, "map Alice", author=NEW)
    base = repo.head()
    repo.commit({"src/app.py": lines(32)}, "again", author=NEW)
    v = push_features(repo, base)
    assert (v["author_exp"], v["ndev"]) == (8, 1)
