"""Where the pipeline keeps what it writes: every stage's output folder and file, relative to the project.

The CLI's defaults, the stages and the study report read these names; ``tests/test_layout.py`` checks that
dvc.yaml's commands and outputs use the same ones. Change a location here (and in dvc.yaml), nowhere else.
"""

from __future__ import annotations

from pathlib import Path

#: The cohort the pipeline runs on (``data.raw`` in params.yaml; this is its default).
RAW = Path("data/raw")
#: The array stores of training and of the search (caches, rebuilt on demand).
ARRAYS = Path("data/arrays")
ARRAYS_TUNE = Path("data/arrays_tune")
#: The cohort's copy with the champion's predicted masks (``segment``).
PREDICTED = Path("data/predicted")

REPORTS = Path("reports")
VALIDATE = REPORTS / "validate"
MANIFEST = VALIDATE / "manifest.csv"
SPLIT = REPORTS / "split"
SPLITS = SPLIT / "splits.csv"
FEATURES = REPORTS / "features"
ASSOCIATIONS = REPORTS / "associations"
TRAIN_REPORTS = REPORTS / "train"
EVALUATE = REPORTS / "evaluate"
TUNE = REPORTS / "tune"
BEST = TUNE / "best.json"
REGISTER = REPORTS / "register"
CLASSIFIER_REPORTS = REPORTS / "classifier"
CLASSIFIER_TRAIN = CLASSIFIER_REPORTS / "train"
CLASSIFIER_EVALUATE = CLASSIFIER_REPORTS / "evaluate"
CLASSIFIER_REGISTER = CLASSIFIER_REPORTS / "register"
CLASSIFIER_TUNE = CLASSIFIER_REPORTS / "tune"
#: The registry's champion mirrors (the DVC dependency of the stages that load a champion).
REGISTRY_MIRROR = REPORTS / "registry"
STUDY_REPORT = REPORTS / "index.html"

MODELS = Path("models")
SEGMENTER = MODELS / "segmenter"
TUNED = MODELS / "tuned"
CLASSIFIER = MODELS / "classifier"
TUNED_CLASSIFIER = MODELS / "tuned_classifier"
#: The segmenter shipped with the project (committed, not a stage output).
SHIPPED_SEGMENTER = MODELS / "pretrained" / "lgg-segmenter"

CHECKPOINTS = Path("checkpoints")
TRAIN_CHECKPOINTS = CHECKPOINTS / "train"
CLASSIFIER_CHECKPOINTS = CHECKPOINTS / "classifier"
TUNE_CHECKPOINTS = CHECKPOINTS / "tune"


def features_table(masks: str) -> Path:
    """``reports/features/features_<masks>.csv``: the features of the truth or the predicted masks."""
    return FEATURES / f"features_{masks}.csv"


def associations(masks: str) -> Path:
    """``reports/associations/<masks>``: the association tests of one features table."""
    return ASSOCIATIONS / masks


def validate_elsewhere(data) -> Path:
    """Where ``validate`` writes for a cohort other than the pipeline's: ``reports/validate-<folder name>``."""
    return REPORTS / f"validate-{Path(data).resolve().name}"


def fold_suffix(fold: int | None, final: bool = False, seed: int | None = None) -> str:
    """``-fold<k>`` for a fold model's folders (``models/segmenter-fold2``), ``-final`` for a final fit's
    (``models/segmenter-final``, trained on every fold), ``""`` for the pipeline's; then ``-seed<s>`` when the
    seed is given on the command line (another member of an ensemble: ``models/segmenter-final-seed1``)."""
    base = "-final" if final else "" if fold is None else f"-fold{fold}"
    return base if seed is None else f"{base}-seed{seed}"


def train_folders(fold: int | None = None, final: bool = False, seed: int | None = None) -> dict[str, str]:
    """``gliomics train``'s default model, checkpoint and reports folders (see :func:`fold_suffix`)."""
    suffix = fold_suffix(fold, final, seed)
    return {"out": f"{SEGMENTER}{suffix}", "checkpoints": f"{TRAIN_CHECKPOINTS}{suffix}",
            "reports": f"{TRAIN_REPORTS}{suffix}"}
