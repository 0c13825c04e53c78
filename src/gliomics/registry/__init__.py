"""The MLflow model registry, as the pipeline uses it.

Registered models (:data:`SEGMENTER`, :data:`CLASSIFIER`) get one version
per ``gliomics register``; the version the pipeline uses carries the alias
:data:`CHAMPION` (MLflow aliases, not the deprecated stages). Every function
takes the registered model's name and the key of its test metric, so the
segmenter (``test_mean_dice_3d``) and the slice classifier
(``test_roc_auc`` / ``test_accuracy``) share one code path:

- :mod:`.register`: a new version with its provenance tags;
- :mod:`.promote`: the promotion rule, setting the alias, and the mirror
  file ``reports/registry/<name>.json`` that DVC stages depend on;
- :mod:`.listing`: the versions table of ``gliomics models``;
- :mod:`.model_card`: the markdown model card stored with a version.
"""

from __future__ import annotations

from gliomics import layout

SEGMENTER = "gliomics-segmenter"
CLASSIFIER = "gliomics-slice-classifier"
CHAMPION = "champion"

#: Test metric (a version tag) that promotion compares, per registered model.
#: Higher is better for all of them.
PRIMARY_METRIC = {SEGMENTER: "test_mean_dice_3d", CLASSIFIER: "test_roc_auc"}

#: Where the current champion of each registered model is mirrored (one JSON per name).
MIRROR_DIR = str(layout.REGISTRY_MIRROR)

#: Version tags every gliomics version carries (besides its metrics).
TAG_DATA_HASH = "dvc_data_hash"
TAG_GIT_COMMIT = "git_commit"
TAG_PROFILE = "profile"


def primary_metric(name: str) -> str:
    """The test metric that promotion compares for ``name`` (``test_mean_dice_3d`` when unknown)."""
    return PRIMARY_METRIC.get(name, "test_mean_dice_3d")


def champion_uri(name: str = SEGMENTER, alias: str = CHAMPION) -> str:
    """``models:/<name>@<alias>``: what the pipeline loads."""
    return f"models:/{name}@{alias}"
