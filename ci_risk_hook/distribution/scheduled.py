"""The team's scheduled job: retrain from the shared history, publish only a model that is not worse.

The current model is the one published at the destination (verified as a
pull verifies it), not a file on the machine that runs the job: a CI runner
starts empty every time. A destination that holds nothing yet takes the
first model; one whose manifest fails verification stops the job (a
forged or damaged team model is an incident to look at, not to overwrite).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, NamedTuple, Sequence

from ci_risk_hook.model.workflow import Scheduled, run_scheduled_retrain
from ci_risk_hook.outcomes.store import Store


class PublishedRetrain(NamedTuple):
    scheduled: Scheduled
    manifest: dict[str, Any] | None  # None: the published model was kept


def retrain_and_publish(
    store: Store,
    repo_ids: Sequence[int],
    names: Sequence[str],
    dest: str,
    *,
    max_rows: int,
    signing_key: str | None = None,
    trusted_keys: Sequence[str] = (),
    out: str | None = None,
    target_recall: float = 0.9,
    target_precision: float = 0.8,
    provenance: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> PublishedRetrain:
    """Train on a bounded sample of `store`, compare with the model published at `dest`, publish if not worse.

    `out`: also keep the new model there (default: a temporary file, gone after publishing).
    """
    from ci_risk_hook.distribution import keys
    from ci_risk_hook.distribution.published import artifact_bytes, publish, read_published

    if signing_key:
        keys.load_private(signing_key)  # a bad key fails before an hour of training, not after

    # Read (and verified) before training: a damaged or forged team model stops the job at once.
    published = read_published(dest, trusted_keys=trusted_keys)
    published_artifact = None if published is None else published.artifact

    def current() -> dict[str, Any] | None:
        return published_artifact

    with tempfile.TemporaryDirectory(prefix="ci-risk-retrain-") as scratch:
        path = out or os.path.join(scratch, "model.json")
        done = run_scheduled_retrain(
            store,
            repo_ids,
            names,
            path,
            max_rows=max_rows,
            current=current,
            target_recall=target_recall,
            target_precision=target_precision,
            log=log,
        )
        if done.trained is None:
            return PublishedRetrain(done, None)
        metrics = {
            "validation_pr_auc": _finite(done.new),
            "previous_model_pr_auc_same_builds": _finite(done.old),
            "sampled_builds": done.rows,
            "repositories": len(repo_ids),
        }
        manifest = publish(
            artifact_bytes(done.trained.artifact),
            dest,
            signing_key=signing_key,
            metrics=metrics,
            provenance=provenance,
        )
    return PublishedRetrain(done, manifest)


def _finite(value: float | None) -> float | None:
    """A manifest is strict JSON: an undefined figure is null, not NaN."""
    return value if value is not None and value == value and abs(value) != float("inf") else None
