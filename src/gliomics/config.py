"""``params.yaml`` → typed settings: the one place for defaults.

Each pipeline stage has a frozen dataclass here; its field defaults are the
project's defaults, and ``params.yaml`` overrides them. A key that no
dataclass knows is an error naming the key (typos must not pass silently).
Sections that later stages add are kept, untyped, in :attr:`Params.extra`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gliomics.errors import GliomicsError

PARAMS_FILE = "params.yaml"
PROFILES = ("demo", "cpu", "full")


@dataclass(frozen=True)
class DataParams:
    #: Cohort in the Kaggle ``kaggle_3m`` layout, versioned by ``data.dvc``.
    raw: str = "data/raw"


@dataclass(frozen=True)
class SynthParams:
    #: Seed of the synthetic demo cohort; the cohort is a pure function of it.
    seed: int = 20240601
    #: Number of synthetic patients (the demo keeps it small: minutes, not hours).
    n_patients: int = 16


@dataclass(frozen=True)
class SplitParams:
    #: Seed of the patient-level split.
    seed: int = 42
    #: Share of patients held out as the internal test set (never tuned on).
    test_fraction: float = 0.2
    #: Number of cross-validation folds over the remaining patients.
    n_folds: int = 5
    #: Also stratify by institution (TCGA tissue source site) where counts allow.
    stratify_institution: bool = True


@dataclass(frozen=True)
class FeaturesParams:
    #: Through-plane / in-plane spacing ratio (the data carry no spacing; TCGA-LGG
    #: FLAIR is ~5-6.5 mm slices over ~1 mm pixels). Used by the 3D descriptors;
    #: BEVR does not depend on it.
    slice_spacing_ratio: float = 6.0
    #: Image channel for texture: 0 pre-contrast, 1 FLAIR, 2 post-contrast.
    channel: int = 1
    #: GLCM pixel-pair distances (pixels) and angles (degrees).
    glcm_distances: list = field(default_factory=lambda: [1])
    glcm_angles_deg: list = field(default_factory=lambda: [0, 45, 90, 135])
    #: GLCM grey-level quantisation: a fixed number of bins over the ROI's range...
    glcm_n_bins: int = 32
    #: ...or, when > 0, a fixed bin width in intensity units (overrides glcm_n_bins).
    glcm_bin_width: float = 0.0
    #: Count each pixel pair in both directions (symmetric GLCM).
    glcm_symmetric: bool = True


@dataclass(frozen=True)
class AssociateParams:
    #: Cluster families tested (columns of data.csv).
    families: list = field(default_factory=lambda: [
        "RNASeqCluster", "MethylationCluster", "miRNACluster", "CNCluster",
        "RPPACluster", "OncosignCluster", "COCCluster"])
    #: Extra outcome columns of data.csv tested like the families.
    extra_outcomes: list = field(default_factory=lambda: ["neoplasm_histologic_grade", "death01"])
    #: Hypotheses sharing one Bonferroni/FDR correction: 'group' (all tests of one
    #: kind in one histology group: one thesis table), 'group_family', or 'all'.
    correction_family: str = "group"
    #: Fewer patients (with label and feature) than this in a group: test skipped, with a reason.
    min_patients: int = 10
    #: Stratified bootstrap resamples for the ROC AUC confidence intervals, and their seed.
    n_boot: int = 1000
    seed: int = 0
    #: Bootstrap interval: 'bca' (default, better coverage) or 'percentile'.
    ci_method: str = "bca"
    #: Cluster levels with fewer patients than this on either side get no AUC.
    min_class_size: int = 5
    #: AUC listed in roc_auc_top.csv (thesis Table 13) above this value.
    auc_threshold: float = 0.7


@dataclass(frozen=True)
class TrainParams:
    """Segmenter training settings of one profile (``train.<profile>`` in params.yaml)."""

    #: Model config for gliomics.models.build_from_config (arch + builder arguments).
    model: dict = field(default_factory=lambda: {"arch": "plain_unet", "base_filters": 8, "depth": 3})
    #: Slices are resized to image_size x image_size (128 or 256 for real work).
    image_size: int = 64
    #: Optional pre-filter at full resolution: none, median or gaussian (the thesis used both).
    prefilter: str = "none"
    batch_size: int = 8
    epochs: int = 3
    steps_per_epoch: int = 20
    #: Share of tumour slices in each training batch (most slices have no tumour).
    tumour_fraction: float = 0.5
    #: bce_dice (the thesis), dice or focal_tversky.
    loss: str = "bce_dice"
    learning_rate: float = 1e-3
    #: constant or cosine (decay to 0 over all steps).
    schedule: str = "cosine"
    #: Stop when validation per-patient 3D Dice has not improved for this many epochs.
    early_stopping_patience: int = 10
    #: Augmentation probabilities (gliomics.data.pipeline.Augment fields); {} = defaults.
    augment: dict = field(default_factory=dict)
    #: auto (bfloat16 where the CPU has avx512_bf16/amx_bf16), bf16 or fp32.
    precision: str = "fp32"
    #: Compile with XLA (jit_compile).
    xla: bool = False
    seed: int = 0
    #: Which cross-validation fold of the split validates (the others train; test is never used).
    val_fold: int = 0


@dataclass(frozen=True)
class PostParams:
    """Post-processing of predicted masks (evaluate and segment)."""

    #: Probability threshold; 0 means the model's own (stored with it, default 0.5).
    threshold: float = 0.0
    #: Keep only the largest 3D connected component (as Buda et al. 2019).
    largest_component: bool = True
    #: Fill holes slice by slice.
    fill_holes: bool = True

    def as_post(self) -> dict:
        return {"threshold": self.threshold or None, "largest_component": self.largest_component,
                "fill_holes": self.fill_holes}


@dataclass(frozen=True)
class Params:
    profile: str = "demo"
    data: DataParams = field(default_factory=DataParams)
    synth: SynthParams = field(default_factory=SynthParams)
    split: SplitParams = field(default_factory=SplitParams)
    features: FeaturesParams = field(default_factory=FeaturesParams)
    associate: AssociateParams = field(default_factory=AssociateParams)
    post: PostParams = field(default_factory=PostParams)
    #: Training settings per profile; :meth:`train_settings` picks the active one.
    train: dict = field(default_factory=lambda: {"demo": TrainParams()})
    #: Sections that no typed dataclass covers yet (added by later stages).
    extra: dict[str, Any] = field(default_factory=dict)

    def train_settings(self) -> TrainParams:
        """The training settings of the active profile."""
        if self.profile not in self.train:
            raise GliomicsError(f"params: no train.{self.profile} settings for profile {self.profile!r}")
        return self.train[self.profile]


_SECTIONS = {
    "data": DataParams,
    "synth": SynthParams,
    "split": SplitParams,
    "features": FeaturesParams,
    "associate": AssociateParams,
    "post": PostParams,
}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read ``path`` (defaults apply when it does not exist) into :class:`Params`."""
    import yaml

    path = Path(path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise GliomicsError(f"{path}: not valid YAML ({_first_line(exc)})") from None
        if not isinstance(raw, dict):
            raise GliomicsError(f"{path}: expected a mapping of sections at the top level")
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: dict[str, Any], source: str = PARAMS_FILE) -> Params:
    """Build :class:`Params` from a plain mapping, checking keys and types."""
    raw = dict(raw)
    profile = raw.pop("profile", Params.profile)
    if profile not in PROFILES:
        raise GliomicsError(f"{source}: profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.pop(name, None) or {}
        if not isinstance(values, dict):
            raise GliomicsError(f"{source}: section '{name}' must be a mapping")
        sections[name] = _build(cls, values, f"{source}: {name}")
    train = raw.pop("train", None) or {}
    if not isinstance(train, dict) or not all(isinstance(v, dict) for v in train.values()):
        raise GliomicsError(f"{source}: section 'train' must map profiles ({', '.join(PROFILES)}) to settings")
    unknown_profiles = sorted(set(train) - set(PROFILES))
    if unknown_profiles:
        raise GliomicsError(f"{source}: train: unknown profile(s) {', '.join(unknown_profiles)}")
    typed_train = {name: _build(TrainParams, values, f"{source}: train.{name}") for name, values in train.items()}
    return Params(profile=profile, extra=raw, train=typed_train or {"demo": TrainParams()}, **sections)


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GliomicsError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    kwargs = {}
    for key, value in values.items():
        spec = known[key]
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise GliomicsError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
