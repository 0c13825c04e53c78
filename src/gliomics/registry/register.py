"""Registering a logged model as a new version, with its provenance and model card."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from gliomics import tracking
from gliomics.errors import GliomicsError
from gliomics.registry import CHAMPION
from gliomics.registry.listing import client, get_alias, get_version

#: Where a version's model card lies among its run's artifacts.
CARD_ARTIFACT_DIR = "model_card"
CARD_FILE = "model_card.md"
#: MLflow limits a tag value to 8000 characters (5000 on older stores); keep well below.
MAX_TAG_CHARS = 4000


def tag_value(value) -> str:
    """A version tag value: numbers as ``repr`` (full precision), mappings/lists as compact JSON."""
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    return text[:MAX_TAG_CHARS]


def register_version(name: str, model_uri: str, *, tags: dict, description: str | None = None) -> dict:
    """Register ``model_uri`` (``runs:/<run>/<path>`` or ``models:/…``) as a new version of ``name``.

    ``tags`` become version tags (metrics under ``val_*``/``test_*`` keys,
    provenance such as ``git_commit``, ``dvc_data_hash``, ``profile``).
    The registered model is created on first use. Returns the version as a
    :func:`gliomics.registry.listing.version_info` dict.
    """
    tracking.configure()
    try:
        version = mlflow.register_model(model_uri, name, tags={k: tag_value(v) for k, v in tags.items()})
    except MlflowException as exc:
        raise GliomicsError(f"{model_uri}: cannot register as {name!r} ({str(exc).splitlines()[0][:200]})") from None
    if description:
        client().update_model_version(name, version.version, description=description)
    return get_version(name, version.version)


def attach_model_card(info: dict, card_markdown: str) -> str:
    """Store the card as ``model_card/model_card.md`` in the version's run; return its artifact URI.

    Also sets the version's description to the card (the MLflow UI renders it
    as markdown on the version page).
    """
    run_id = info["run_id"]
    if not run_id:
        raise GliomicsError(f"models:/{info['name']}/{info['version']}: the version has no run to hold its card")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CARD_FILE
        path.write_text(card_markdown, encoding="utf-8")
        client().log_artifact(run_id, str(path), CARD_ARTIFACT_DIR)
    uri = f"runs:/{run_id}/{CARD_ARTIFACT_DIR}/{CARD_FILE}"
    description = card_markdown
    if len(description) > MAX_TAG_CHARS:  # the store's limit on descriptions: cut, and point to the whole card
        note = f"\n\n… (cut here: the whole card is {uri})\n"
        description = description[: MAX_TAG_CHARS - len(note)].rsplit("\n", 1)[0] + note
    client().update_model_version(info["name"], str(info["version"]), description=description)
    return uri


def registered_record(name: str, info: dict, *, promoted: bool, reason: str) -> dict:
    """What every register stage's ``registered.json`` says of the new version: name, version, its run and
    ``models:/`` URI, whether it was promoted and why, and which version is champion now."""
    holder = get_alias(name, CHAMPION)
    return {"name": name, "version": info["version"], "run_id": info["run_id"],
            "model_uri": f"models:/{name}/{info['version']}", "promoted": promoted, "promotion_reason": reason,
            "champion_version": holder["version"] if holder else None}
