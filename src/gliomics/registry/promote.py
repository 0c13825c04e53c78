"""Promotion: who may hold an alias (``champion``), setting it, and mirroring it for DVC.

The rule (:func:`promotion_verdict`): a version may take the alias unless
the current holder has a strictly better test metric *on the same data*
(same DVC data hash); scores measured on different data are not comparable,
so a version tested on newer data may replace the holder. ``force``
overrides the rule. Higher metric values are better (Dice, accuracy, ROC AUC).

The holder of each alias is mirrored in ``reports/registry/<name>.json``
(``<name>@<alias>.json`` for aliases other than ``champion``), written
atomically, so that DVC stages that load ``models:/<name>@champion`` can list
that file as a dependency and re-run when the champion changes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gliomics import io
from gliomics.errors import GliomicsError
from gliomics.registry import CHAMPION, MIRROR_DIR, champion_uri, primary_metric
from gliomics.registry.listing import client, get_alias, get_version


class PromotionRefused(GliomicsError):
    """The current alias holder is better on the same data; ``force`` was not given."""


def promotion_verdict(candidate: dict, holder: dict | None, metric: str, alias: str = CHAMPION) -> tuple[bool, str]:
    """``(allowed, reason)`` for moving ``alias`` from ``holder`` to ``candidate``.

    Both are :func:`gliomics.registry.listing.version_info` dicts (``holder``
    None when nobody holds the alias). Pure: no registry access.
    """
    name, version = candidate["name"], candidate["version"]
    if holder is None:
        return True, f"{name} has no @{alias} yet"
    if holder["version"] == version:
        return True, f"version {version} already holds @{alias}"
    new, old = candidate["metrics"].get(metric), holder["metrics"].get(metric)
    if candidate["data_hash"] != holder["data_hash"]:
        return True, (f"@{alias} version {holder['version']} was tested on other data (data hash "
                      f"{holder['data_hash'] or '?'} vs {candidate['data_hash'] or '?'}): scores not comparable")
    if old is None:
        return True, f"@{alias} version {holder['version']} has no {metric} to compare"
    if new is None:
        return False, (f"version {version} has no {metric}, @{alias} version {holder['version']} has "
                       f"{old:.4f} on the same data; use --force to promote it anyway")
    if old > new:
        return False, (f"@{alias} version {holder['version']} has the better {metric} on the same data "
                       f"(hash {holder['data_hash'] or '?'}): {old:.4f} vs {new:.4f} for version {version}; "
                       "use --force to promote it anyway")
    return True, f"{metric} {new:.4f} >= {old:.4f} of @{alias} version {holder['version']} on the same data"


def mirror_path(name: str, alias: str = CHAMPION, mirror_dir: str | Path = MIRROR_DIR) -> Path:
    """``<mirror_dir>/<name>.json`` for the champion, ``<name>@<alias>.json`` for other aliases."""
    return Path(mirror_dir) / (f"{name}.json" if alias == CHAMPION else f"{name}@{alias}.json")


def write_mirror(info: dict, alias: str = CHAMPION, mirror_dir: str | Path = MIRROR_DIR) -> Path:
    """Write the mirror file of ``alias`` held by the version ``info`` (a version_info dict).

    An existing file that says the same (``updated_at`` aside) is left as it
    is, so that DVC stages depending on it do not re-run for nothing.
    """
    record = {
        "name": info["name"],
        "alias": alias,
        "version": info["version"],
        "model_uri": champion_uri(info["name"], alias),
        "version_uri": f"models:/{info['name']}/{info['version']}",
        **{key: value for key, value in sorted(info["metrics"].items())},
        "data_hash": info["data_hash"],
        "run_id": info["run_id"],
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = mirror_path(info["name"], alias, mirror_dir)
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = None
    if isinstance(previous, dict) and {k: v for k, v in previous.items() if k != "updated_at"} == \
            {k: v for k, v in record.items() if k != "updated_at"}:
        return path
    return io.write_json(path, record)


def promote(name: str, version: int | str, *, alias: str = CHAMPION, metric: str | None = None,
            force: bool = False, mirror_dir: str | Path | None = MIRROR_DIR) -> dict:
    """Give ``alias`` to ``name`` version ``version`` if :func:`promotion_verdict` allows it (or ``force``).

    Returns ``{name, version, alias, previous_version, promoted, forced, reason, metric, mirror}``.
    Raises :class:`PromotionRefused` (a GliomicsError saying why, with both
    numbers) when the rule refuses, and GliomicsError for an unknown version.
    ``mirror_dir`` None skips the mirror file.
    """
    metric = metric or primary_metric(name)
    candidate = get_version(name, version)
    holder = get_alias(name, alias)
    allowed, reason = promotion_verdict(candidate, holder, metric, alias)
    if not allowed and not force:
        raise PromotionRefused(f"models:/{name}/{candidate['version']}: not promoted to @{alias}: {reason}")
    if not allowed:
        reason = f"forced: {reason.removesuffix('; use --force to promote it anyway')}"
    client().set_registered_model_alias(name, alias, str(candidate["version"]))
    candidate = get_version(name, candidate["version"])
    mirror = write_mirror(candidate, alias, mirror_dir) if mirror_dir is not None else None
    return {
        "name": name,
        "version": candidate["version"],
        "alias": alias,
        "previous_version": holder["version"] if holder else None,
        "promoted": True,
        "forced": not allowed,
        "reason": reason,
        "metric": metric,
        "mirror": str(mirror) if mirror else None,
    }


def promote_per_policy(name: str, version: int | str, policy: str, *, metric: str,
                       mirror_dir: str | Path | None = MIRROR_DIR) -> tuple[bool, str]:
    """Apply ``register.promote`` to a freshly registered version: ``never`` leaves @champion alone,
    ``if_better`` promotes when :func:`promote` allows it, ``always`` forces it. Returns (promoted, reason)."""
    if policy == "never":
        return False, "register.promote is never: promote with `gliomics promote`"
    try:
        result = promote(name, version, alias=CHAMPION, metric=metric, force=policy == "always",
                         mirror_dir=mirror_dir)
    except PromotionRefused as exc:
        return False, str(exc)
    return True, result["reason"]


def sync_mirror(name: str, alias: str = CHAMPION, mirror_dir: str | Path = MIRROR_DIR) -> Path | None:
    """Rewrite the mirror from the registry (after aliases were changed elsewhere, e.g. in the MLflow UI).

    Removes the mirror file when no version holds ``alias``; returns the path written, or None.
    """
    holder = get_alias(name, alias)
    path = mirror_path(name, alias, mirror_dir)
    if holder is None:
        path.unlink(missing_ok=True)
        return None
    return write_mirror(holder, alias, mirror_dir)
