"""``params.yaml`` → typed settings: the one place for defaults.

Each pipeline stage has a frozen dataclass here; its field defaults are the
project's defaults, and ``params.yaml`` overrides them. A key that no
dataclass knows is an error naming the key (typos must not pass silently).
Unknown sections and keys are errors naming the nearest valid name; an empty params file is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    #: Optional pre-filter at full resolution: none, median or gaussian (the Kota (2024) thesis used both).
    prefilter: str = "none"
    batch_size: int = 8
    epochs: int = 3
    steps_per_epoch: int = 20
    #: Train for about this many minutes on this machine instead of ``epochs``: a short calibration
    #: measures the seconds per step here and fixes the epochs (gliomics.training.budget); 0 = use epochs.
    budget_minutes: float = 0.0
    #: Share of tumour slices in each training batch (most slices have no tumour).
    tumour_fraction: float = 0.5
    #: bce_dice (the Kota (2024) thesis), dice or focal_tversky.
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
class ClassifierParams(TrainParams):
    """Slice classifier training settings of one profile (``classifier.<profile>`` in params.yaml).

    The same loop and keys as :class:`TrainParams` (gliomics.training.fit.fit_classifier),
    plus the label definition; the best epoch is the best validation ROC AUC.
    """

    #: Model config for gliomics.models.build_from_config (arch resnet_classifier: depth 18/34/50,
    #: activation, stem_pooling, head_pooling, base_filters).
    model: dict = field(default_factory=lambda: {"arch": "resnet_classifier", "depth": 50, "base_filters": 4,
                                                 "stage_blocks": [1, 1, 1, 1]})
    #: Binary cross-entropy on the sigmoid probability.
    loss: str = "bce"
    #: A slice is "tumour" when its mask (at image_size) has at least this many tumour pixels.
    min_area_px: int = 1
    #: Decision threshold stored with the model: "validation" (the one maximising validation accuracy,
    #: gliomics.training.classification.choose_threshold) or a number in [0, 1] (0.5: the sigmoid's).
    threshold: str | float = field(default="validation", metadata={"types": (str, float)})


@dataclass(frozen=True)
class SegmentParams:
    """``gliomics segment`` options."""

    #: With --gate URI: slices whose classifier probability is below this are skipped (empty mask);
    #: 0: the classifier's own threshold (chosen on its validation patients).
    gate_threshold: float = 0.0


@dataclass(frozen=True)
class PostParams:
    """Post-processing of predicted masks (evaluate and segment)."""

    #: Probability threshold; 0 means the model's own (stored with it, default 0.5).
    threshold: float = 0.0
    #: Keep only the largest 3D connected component (as Buda et al. 2019).
    largest_component: bool = True
    #: Fill holes slice by slice.
    fill_holes: bool = True
    #: Flip test-time augmentation: average the prediction of each slice and of its left-right mirror.
    tta: bool = False

    def as_post(self) -> dict:
        return {"threshold": self.threshold or None, "largest_component": self.largest_component,
                "fill_holes": self.fill_holes, "tta": self.tta}


@dataclass(frozen=True)
class TuneSpaceParams:
    """The search space of ``gliomics tune`` (``tune.<profile>.space``).

    Categorical keys take a list of choices; ``learning_rate`` is ``[low, high]``
    (log-uniform) and ``augment_strength`` ``[low, high]`` (uniform; it scales the
    probabilities and limits of ``train.<profile>.augment``: 0 = none, 1 = as set).
    A one-element list fixes the value (not searched). ``backbone`` applies only
    to the segmentation-models archs, ``pooling`` only where the model has a
    pooling layer (plain_unet; resnet/resnext backbones).
    """

    arch: list = field(default_factory=lambda: ["plain_unet"])
    backbone: list = field(default_factory=lambda: ["resnet18"])
    activation: list = field(default_factory=lambda: ["relu"])
    pooling: list = field(default_factory=lambda: ["max"])
    loss: list = field(default_factory=lambda: ["bce_dice"])
    learning_rate: list = field(default_factory=lambda: [1e-4, 1e-2])
    batch_size: list = field(default_factory=lambda: [8])
    augment_strength: list = field(default_factory=lambda: [1.0])


@dataclass(frozen=True)
class LowFidelityParams:
    """The cheap settings of the search trials (``tune.<profile>.low_fidelity``)."""

    image_size: int = 64
    #: Share of the training patients (a subset drawn with ``sampler_seed``) the trials train on.
    train_patient_fraction: float = 0.5
    epochs: int = 3
    steps_per_epoch: int = 10


@dataclass(frozen=True)
class TuneParams:
    """Hyper-parameter search settings of one profile (``tune.<profile>`` in params.yaml)."""

    #: Study name; the stored study is ``<study_name>-<hash of data, split and settings>``.
    study_name: str = "segmenter"
    #: Low-fidelity trials to finish (COMPLETE + PRUNED, over all runs of the study).
    n_trials: int = 20
    #: Stop starting new trials once this many seconds of trial time are spent (0: no limit).
    timeout: float = 0.0
    #: tpe (seeded TPE over the space, the pruned search) or grid (every combination of the
    #: categorical choices once: optuna GridSampler; ranges must then be fixed to one value).
    sampler: str = "tpe"
    #: Seed of the sampler (TPE draws, grid order) and of the low-fidelity patient subset.
    sampler_seed: int = 0
    #: Random trials before TPE takes over.
    startup_trials: int = 10
    #: Pruner: {name: hyperband | successive_halving | median | none, ...its arguments}.
    pruner: dict = field(default_factory=lambda: {"name": "hyperband"})
    #: Best distinct low-fidelity configurations retrained at full fidelity (the profile's train settings);
    #: 0: no full-fidelity phase (best.json then describes the best low-fidelity trial, without a model).
    promote_top_k: int = 2
    space: TuneSpaceParams = field(default_factory=TuneSpaceParams)
    #: Fixed builder arguments per arch, e.g. {plain_unet: {base_filters: 8}, Unet: {decoder_filters: [...]}}.
    model_options: dict = field(default_factory=dict)
    low_fidelity: LowFidelityParams = field(default_factory=LowFidelityParams)


#: ``tune.<profile>.sampler`` values.
TUNE_SAMPLERS = ("tpe", "grid")
#: ``gliomics tune --task`` -> the params section holding its search settings.
TUNE_SECTIONS = {"segmenter": "tune", "classifier": "tune_classifier"}


def _build_tune(values: dict, where: str) -> TuneParams:
    """:class:`TuneParams` with its nested ``space`` and ``low_fidelity`` sections checked too."""
    values = dict(values)
    nested = {}
    for key, cls in (("space", TuneSpaceParams), ("low_fidelity", LowFidelityParams)):
        section = values.pop(key, None) or {}
        if not isinstance(section, dict):
            raise GliomicsError(f"{where}.{key}: expected a mapping, got {section!r}")
        nested[key] = _build(cls, section, f"{where}.{key}")
    tune = dataclasses.replace(_build(TuneParams, values, where), **nested)
    if tune.sampler not in TUNE_SAMPLERS:
        raise GliomicsError(f"{where}.sampler: expected one of {', '.join(TUNE_SAMPLERS)}, got {tune.sampler!r}")
    if tune.promote_top_k < 0:
        raise GliomicsError(f"{where}.promote_top_k: must be >= 0, got {tune.promote_top_k}")
    return tune


def _tune_profiles(section, source: str, name: str = "tune") -> dict:
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise GliomicsError(f"{source}: section '{name}' must map profiles ({', '.join(PROFILES)}) to settings")
    unknown = sorted(set(section) - set(PROFILES))
    if unknown:
        raise GliomicsError(f"{source}: {name}: unknown profile(s) {', '.join(unknown)}")
    return {profile: _build_tune(values, f"{source}: {name}.{profile}") for profile, values in section.items()}


def _default_classifier_tune() -> TuneParams:
    """A tiny classifier search (the demo's) for params files without ``tune_classifier``."""
    return TuneParams(study_name="demo-classifier", n_trials=2, startup_trials=2, pruner={"name": "none"},
                      promote_top_k=1,
                      space=TuneSpaceParams(arch=["resnet_classifier"], activation=["relu", "elu"],
                                            pooling=["avg"], loss=["bce"], learning_rate=[1e-3]),
                      low_fidelity=LowFidelityParams(image_size=32, epochs=1, steps_per_epoch=4))


#: What ``gliomics register`` does with the version it registers (register.promote).
PROMOTE_POLICIES = ("never", "if_better", "always")


@dataclass(frozen=True)
class RegisterParams:
    """Registering the tuned segmenter (``gliomics register``)."""

    #: never: only register; if_better: also make it champion unless the champion has a
    #: better internal-test Dice on the same data (the rule of `gliomics promote`); always: make it champion.
    promote: str = "if_better"

    def __post_init__(self):
        if self.promote not in PROMOTE_POLICIES:
            raise GliomicsError(f"register.promote must be one of {', '.join(PROMOTE_POLICIES)}, "
                                f"got {self.promote!r}")


@dataclass(frozen=True)
class Params:
    profile: str = "demo"
    data: DataParams = field(default_factory=DataParams)
    synth: SynthParams = field(default_factory=SynthParams)
    split: SplitParams = field(default_factory=SplitParams)
    features: FeaturesParams = field(default_factory=FeaturesParams)
    associate: AssociateParams = field(default_factory=AssociateParams)
    post: PostParams = field(default_factory=PostParams)
    register: RegisterParams = field(default_factory=RegisterParams)
    #: Training settings per profile; :meth:`train_settings` picks the active one.
    train: dict = field(default_factory=lambda: {"demo": TrainParams()})
    #: Slice classifier settings per profile; :meth:`classifier_settings` picks the active one.
    classifier: dict = field(default_factory=lambda: {"demo": ClassifierParams()})
    segment: SegmentParams = field(default_factory=SegmentParams)
    #: Hyper-parameter search settings per profile; :meth:`tune_settings` picks the active one.
    tune: dict = field(default_factory=lambda: {"demo": TuneParams()})
    #: Slice classifier search settings per profile (``gliomics tune --task classifier``).
    tune_classifier: dict = field(default_factory=lambda: {"demo": _default_classifier_tune()})
    #: Kept for callers of older versions: always empty (unknown sections are errors).
    extra: dict[str, Any] = field(default_factory=dict)

    def train_settings(self) -> TrainParams:
        """The training settings of the active profile."""
        if self.profile not in self.train:
            raise GliomicsError(f"params: no train.{self.profile} settings for profile {self.profile!r}")
        return self.train[self.profile]

    def classifier_settings(self) -> ClassifierParams:
        """The slice classifier settings of the active profile."""
        if self.profile not in self.classifier:
            raise GliomicsError(f"params: no classifier.{self.profile} settings for profile {self.profile!r}")
        return self.classifier[self.profile]

    def tune_settings(self, task: str = "segmenter") -> TuneParams:
        """The hyper-parameter search settings of the active profile for ``task``
        (segmenter: ``tune``, classifier: ``tune_classifier``)."""
        if task not in TUNE_SECTIONS:
            raise GliomicsError(f"tune: unknown task {task!r}; allowed: {', '.join(TUNE_SECTIONS)}")
        section = TUNE_SECTIONS[task]
        settings = getattr(self, section)
        if self.profile not in settings:
            raise GliomicsError(f"params: no {section}.{self.profile} settings for profile {self.profile!r}")
        return settings[self.profile]


_SECTIONS = {
    "data": DataParams,
    "synth": SynthParams,
    "split": SplitParams,
    "features": FeaturesParams,
    "associate": AssociateParams,
    "post": PostParams,
    "segment": SegmentParams,
    "register": RegisterParams,
}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read ``path`` (defaults apply when it does not exist) into :class:`Params`."""
    path = Path(path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise GliomicsError(f"{path}: not valid YAML ({_first_line(exc)})") from None
        if not raw:
            raise GliomicsError(f"{path}: the params file is empty (delete it to run on the defaults, or restore it "
                                "with `git checkout -- params.yaml`)")
        if not isinstance(raw, dict):
            raise GliomicsError(f"{path}: expected a mapping of sections at the top level")
    return params_from_dict(raw, source=str(path))


#: The top-level keys of params.yaml.
TOP_LEVEL = ("profile", "data", "synth", "split", "features", "associate", "train", "tune", "tune_classifier",
             "classifier", "segment", "post", "register")


def _nearest(key: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    match = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def params_from_dict(raw: dict[str, Any], source: str = PARAMS_FILE) -> Params:
    """Build :class:`Params` from a plain mapping, checking keys and types."""
    raw = dict(raw)
    for key in raw:
        if key not in TOP_LEVEL:
            raise GliomicsError(f"{source}: unknown section '{key}'{_nearest(key, TOP_LEVEL)}; "
                                f"known: {', '.join(TOP_LEVEL)}")
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
    sections["tune"] = _tune_profiles(raw.pop("tune", None) or {}, source) or {"demo": TuneParams()}
    sections["tune_classifier"] = (_tune_profiles(raw.pop("tune_classifier", None) or {}, source, "tune_classifier")
                                   or {"demo": _default_classifier_tune()})
    typed_classifier = _profiles(raw.pop("classifier", None) or {}, ClassifierParams, "classifier", source)
    return Params(profile=profile, extra=raw, train=typed_train or {"demo": TrainParams()},
                  classifier=typed_classifier or {"demo": ClassifierParams()}, **sections)


def _profiles(section, cls, name: str, source: str) -> dict:
    """A ``{profile: settings}`` section (like ``train``) typed as ``cls`` per profile."""
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise GliomicsError(f"{source}: section '{name}' must map profiles ({', '.join(PROFILES)}) to settings")
    unknown = sorted(set(section) - set(PROFILES))
    if unknown:
        raise GliomicsError(f"{source}: {name}: unknown profile(s) {', '.join(unknown)}")
    return {profile: _build(cls, values, f"{source}: {name}.{profile}") for profile, values in section.items()}


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GliomicsError(f"{where}: unknown key(s) {', '.join(unknown)}{_nearest(unknown[0], known)}; "
                            f"known: {', '.join(known)}")
    kwargs = {}
    for key, value in values.items():
        spec = known[key]
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        allowed = spec.metadata.get("types", (type(default),))  # a field may accept several types
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, allowed) or (int in allowed and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in allowed)
            raise GliomicsError(f"{where}.{key}: expected {names}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
