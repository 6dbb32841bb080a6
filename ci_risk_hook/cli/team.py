"""A team's shared model: `model publish`, `model pull`, `model keygen`, and what `retrain --all-repos --publish`
does once it has trained.
"""

from __future__ import annotations

from typing import Any

import click

from ci_risk_hook.cli.common import all_repos_store, note, repositories, settings_warnings
from ci_risk_hook.cli.extras import require
from ci_risk_hook.safetext import clean


@click.command("publish")
@click.argument("dest")
@click.option("--model", "model_path", default=None, help="Artifact to publish (default: this repository's model).")
@click.option("--sign", "key_file", default=None, help="Sign with this private key (from `ci-risk model keygen`).")
def model_publish(dest: str, model_path: str | None, key_file: str | None) -> None:
    """Publish a model to DEST (a directory, file://, s3:// or any fsspec URL): artifact first, manifest last."""
    require("team", dest)
    from ci_risk_hook.distribution.published import publish
    from ci_risk_hook.distribution.remote import redact
    from ci_risk_hook.model.scoring import read_artifact

    if model_path is None:
        from ci_risk_hook import paths
        from ci_risk_hook.git import repo as git

        model_path = paths.repo_model(git.repo_info().common_dir)
    manifest = publish(read_artifact(model_path), dest, signing_key=key_file, provenance=_publish_provenance())
    signed = f", signed by key {manifest['signature']['key_id']}" if "signature" in manifest else ", unsigned"
    click.echo(
        clean(
            f"published {manifest['artifact']['sha256'][:12]} to {redact(dest)} (created {manifest['created']}{signed})"
        )
    )


def _publish_provenance() -> dict[str, Any]:
    """Which store the publisher trains from (without its password), when this is a repository that has one."""
    from ci_risk_hook import config
    from ci_risk_hook.git import repo as git
    from ci_risk_hook.outcomes.store import redact, remembered

    try:
        info = git.repo_info()
    except git.GitError:
        return {}
    settings = config.resolve({}, toplevel=info.toplevel, tolerant=True)
    store = settings.db or remembered(info.common_dir)
    return {"store": redact(store)} if store else {}


@click.command("pull")
@click.argument("src", required=False)
@click.option("--force", is_flag=True, help="Accept a model older than the cached one (a deliberate rollback).")
def model_pull(src: str | None, force: bool) -> None:
    """Download, verify and cache the team model from SRC (default: the model_source setting)."""
    from ci_risk_hook import config
    from ci_risk_hook.git import repo as git

    try:
        toplevel = git.repo_info().toplevel
    except git.GitError:
        toplevel = None  # outside a repository: the environment and the user's config still count
    settings = config.resolve({}, toplevel=toplevel)
    settings_warnings(settings)
    source = src or settings.model_source
    if not source:
        raise click.UsageError("no source: give SRC or set model_source (CI_RISK_MODEL_SOURCE or the user config)")
    require("team", source)
    from ci_risk_hook.distribution.cache import pull
    from ci_risk_hook.distribution.remote import redact

    pulled = pull(source, settings.trusted_keys, force=force)
    verified = f", signature by key {pulled.signed_by} verified" if pulled.signed_by else ", no trusted keys configured"
    what = "already up to date with" if pulled.status == "current" else "pulled from"
    click.echo(
        clean(
            f"{what} {redact(source)}: {pulled.manifest['artifact']['sha256'][:12]} "
            f"(published {pulled.manifest.get('created')}{verified}) -> {pulled.path}"
        )
    )


@click.command("keygen")
@click.argument("private_file")
@click.option("--public-out", default=None, help="Also write the public key line to this file.")
def model_keygen(private_file: str, public_out: str | None) -> None:
    """Make an Ed25519 signing key: the private key to PRIVATE_FILE (0600), the public key printed."""
    require("team")
    from ci_risk_hook.distribution import keys

    try:  # opened first: a public key that cannot be written must not leave a private key without it
        public_fh = open(public_out, "w", encoding="ascii") if public_out else None
    except OSError as exc:
        raise keys.KeyError_(f"cannot write {public_out}: {exc.strerror or exc}") from None
    try:
        public = keys.generate(private_file)
        if public_fh is not None:
            public_fh.write(public + "\n")
    finally:
        if public_fh is not None:
            public_fh.close()
    click.echo(public)
    click.echo(
        clean(f"# private key: {private_file} (keep it secret); trust the public key with trusted_keys = {public}"),
        err=True,
    )


def scheduled_publish(
    db: str | None,
    out: str | None,
    max_rows: int | None,
    target_recall: float,
    target_precision: float,
    dest: str,
    key_file: str | None,
) -> None:
    """`retrain --all-repos --publish DEST`: the team's scheduled job; the current model is the published one."""
    require("team", dest)
    from ci_risk_hook import config
    from ci_risk_hook.distribution.remote import redact
    from ci_risk_hook.distribution.scheduled import retrain_and_publish
    from ci_risk_hook.model.bounded import DEFAULT_MAX_ROWS
    from ci_risk_hook.outcomes.store import open_existing
    from ci_risk_hook.outcomes.store import redact as redact_store

    settings = config.resolve({}, toplevel=None, tolerant=False)  # trusted keys: environment or user config
    _, url = all_repos_store(db)
    store = open_existing(url)
    try:
        ids, names = repositories(store)
        done = retrain_and_publish(
            store,
            ids,
            names,
            dest,
            max_rows=max_rows or DEFAULT_MAX_ROWS,
            signing_key=key_file,
            trusted_keys=settings.trusted_keys,
            out=out,
            target_recall=target_recall,
            target_precision=target_precision,
            provenance={"store": redact_store(url)},
            log=note,
        )
    finally:
        store.close()
    scheduled, shown = done.scheduled, redact(dest)
    was = "none published" if scheduled.old is None else f"{scheduled.old:.3f}"
    if done.manifest is None:
        click.echo(
            clean(
                f"ci-risk: kept the model published at {shown}: on the newest builds of the sample its PR-AUC {was} "
                f"beats the new one's {scheduled.new:.3f} ({scheduled.rows:,} builds of {len(ids)} repositories)"
            )
        )
        return
    signed = f"signed by key {done.manifest['signature']['key_id']}" if "signature" in done.manifest else "unsigned"
    click.echo(
        clean(
            f"ci-risk: published {done.manifest['artifact']['sha256'][:12]} to {shown} ({signed}): trained on "
            f"{scheduled.rows:,} builds of {len(ids)} repositories, validation PR-AUC {scheduled.new:.3f} "
            f"(published model: {was})"
        )
    )
