"""Reading the registry: versions, their aliases and metrics, and the table of ``gliomics models``."""

from __future__ import annotations

import datetime as dt

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gliomics import tracking
from gliomics.errors import GliomicsError
from gliomics.registry import TAG_DATA_HASH

#: Version tags read as numbers: anything starting with these prefixes.
METRIC_PREFIXES = ("val_", "test_")


def client():
    """An ``MlflowClient`` on the project's store (:mod:`gliomics.tracking`)."""
    tracking.configure()
    return MlflowClient()


def version_info(version) -> dict:
    """A plain dict of an MLflow ``ModelVersion``: what listings, mirrors and reports need.

    ``metrics`` holds the version tags that start with ``val_``/``test_`` and
    parse as numbers; ``created`` is ISO 8601 in UTC.
    """
    tags = dict(version.tags or {})
    metrics = {}
    for key, value in tags.items():
        if key.startswith(METRIC_PREFIXES):
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                pass
    created = dt.datetime.fromtimestamp((version.creation_timestamp or 0) / 1000, tz=dt.timezone.utc)
    return {
        "name": version.name,
        "version": int(version.version),
        "aliases": sorted(version.aliases or []),
        "run_id": version.run_id,
        "source": version.source,
        "data_hash": tags.get(TAG_DATA_HASH, ""),
        "metrics": metrics,
        "tags": tags,
        "created": created.isoformat(timespec="seconds"),
    }


def get_version(name: str, version: int | str) -> dict:
    """:func:`version_info` of ``name`` version ``version``; a GliomicsError listing what exists otherwise."""
    try:
        found = client().get_model_version(name, str(version))
    except MlflowException:
        raise GliomicsError(f"models:/{name}/{version}: no such model version; {describe_registry(name)}") from None
    return version_info(found)


def get_alias(name: str, alias: str) -> dict | None:
    """:func:`version_info` of the version holding ``alias``, or None when no version does."""
    try:
        return version_info(client().get_model_version_by_alias(name, alias))
    except MlflowException:
        return None


def list_versions(name: str) -> list[dict]:
    """Every version of ``name`` (oldest first) as :func:`version_info` dicts; [] when ``name`` is unknown."""
    mlflow_client = client()
    try:
        # search_model_versions does not fill in aliases on every store; the registered model has them all.
        holders = dict(mlflow_client.get_registered_model(name).aliases or {})
    except MlflowException:
        return []
    rows = sorted((version_info(v) for v in mlflow_client.search_model_versions(f"name = '{name}'")),
                  key=lambda row: row["version"])
    for row in rows:
        row["aliases"] = sorted(alias for alias, number in holders.items() if int(number) == row["version"])
    return rows


def registered_names() -> list[str]:
    """Names of all registered models in the store."""
    return sorted(model.name for model in client().search_registered_models())


def describe_registry(name: str | None = None) -> str:
    """One line saying which versions (and aliases) exist, for error messages."""
    names = [name] if name else registered_names()
    if name and name not in registered_names():
        others = registered_names()
        return f"no registered model {name!r}" + (f" (registered: {', '.join(others)})" if others else
                                                   "; no registered models exist yet")
    parts = []
    for each in names:
        versions = list_versions(each)
        described = ", ".join(f"{v['version']}" + "".join(f" @{a}" for a in v["aliases"]) for v in versions)
        parts.append(f"{each} versions: {described or 'none'}")
    return "; ".join(parts) or "no registered models exist yet"


def format_table(rows: list[dict], metrics: list[str] | None = None) -> str:
    """A fixed-width text table of versions: version, aliases, metric columns, data hash, created, run.

    ``metrics`` defaults to every metric tag found, validation first.
    """
    if metrics is None:
        found = {key for row in rows for key in row["metrics"]}
        metrics = sorted(found, key=lambda key: (not key.startswith("val_"), key))
    header = ["name", "version", "aliases", *metrics, "data_hash", "created", "run_id"]
    body = []
    for row in rows:
        values = [row["name"], str(row["version"]), ",".join(row["aliases"]) or "-"]
        values += [f"{row['metrics'][m]:.4f}" if m in row["metrics"] else "-" for m in metrics]
        values += [(row["data_hash"] or "-")[:12], row["created"].replace("+00:00", "Z"), (row["run_id"] or "-")[:12]]
        body.append(values)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *body]]
    return "\n".join(lines)
