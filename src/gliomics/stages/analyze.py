"""``gliomics analyze``: one new patient through the platform, one command.

``input_dir`` is one patient's folder of slices in the Kaggle naming
(``<folder>_<n>.tif``, n = 1..N; masks are not needed and, if present,
ignored). The command

1. checks the folder (:func:`check_patient_folder`, :func:`read_slices`):
   not empty, only ``.tif`` slices of one patient, slice numbers 1..N
   without gaps, every image 256x256x3 uint8 -- each problem is one
   :class:`GliomicsError` line;
2. loads the segmenter (default: the registry's champion when it was trained
   on real data, else the shipped ``models/pretrained/lgg-segmenter``; see
   :mod:`gliomics.registry.shipped`; the report says which and why) and, with ``--gate``, the
   slice classifier, whose "no tumour" slices get empty masks;
3. segments the slices (:mod:`gliomics.models.inference`, post-processing
   from ``params.yaml``), extracts the features
   (:func:`gliomics.features.patient_features`, settings from
   ``params.yaml``);
4. writes, into a temporary folder renamed to ``out_dir`` only at the end
   (no partial output on any error): ``report.html`` (self-contained),
   ``features.csv`` (one row) and ``masks/<folder>_<n>_mask.tif``.

The report places each feature in the reference cohort (the project's
``reports/features/features_truth.csv``, limited to the patients the model
was developed on: the training and validation folds of
``reports/split/splits.csv``, never its internal test patients; the whole
table when there is no split) and, for the associations that were
significant after Bonferroni in ``reports/associations/truth``, says which
cluster levels the value is typical of, with the cohort's AUC. It describes
the cohort; it is not a diagnosis.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from gliomics import io, layout
from gliomics.data.kaggle import SLICE_RE, patient_of, read_clinical
from gliomics.data.slices import read_images, write_mask
from gliomics.errors import GliomicsError
from gliomics.features import ALL_COLUMNS, FEATURE_COLUMNS, patient_features
from gliomics.features.patient import SLICE_MEAN_COLUMNS, feature_settings
from gliomics.features.shape3d import SHAPE3D_COLUMNS
from gliomics.models import inference
from gliomics.models.gate import load_segmentation_models, patient_probabilities
from gliomics.models.inference import describe_models
from gliomics.progress import progress
from gliomics.registry.shipped import choose_segmenter
from gliomics.report import html as h
from gliomics.report.html import shown_path
from gliomics.report.patient import feature_percentiles, statement_text, typical_levels
from gliomics.report.segmentation_plots import feature_positions, largest_slices, volume_3d

REFERENCE = str(layout.features_table("truth"))
SPLITS = str(layout.SPLITS)
ASSOCIATIONS = str(layout.associations("truth"))
REPORT = "report.html"
FEATURES = "features.csv"
MASKS = "masks"
#: Largest slices shown in the overlay.
N_LARGEST = 3
#: Said (report, index page, terminal) when the reference tables come from the synthetic demo cohort.
SYNTHETIC_REFERENCE = ("The reference cohort is the synthetic demo cohort (profile demo): the percentiles and "
                       "cluster statements describe synthetic patients, not TCGA-LGG. Run the pipeline on the real "
                       "cohort (gliomics ingest, profile cpu) for real reference values.")
DISCLAIMER = ("These statements describe where this patient's values lie among the reference cohort's "
              "patients. They are not a diagnosis and not a prediction of the patient's genomic subtype.")


# --------------------------------------------------------------------- input checks
def check_patient_folder(input_dir: str | Path) -> tuple[str, list[tuple[int, Path]]]:
    """``(folder name, [(slice number, image path), ...])`` of one patient's folder.

    One-line :class:`GliomicsError` for: no such folder, an empty folder, a
    sub-folder (a cohort was given), a file that is not a ``.tif``, a tif not
    named ``<folder>_<n>.tif``, slices of more than one patient, a repeated
    slice number, gaps in the numbers 1..N. ``_mask.tif`` files are ignored;
    so are hidden files (``.DS_Store``).
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        raise GliomicsError(f"{folder}: no such folder")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        raise GliomicsError(f"{folder}: empty folder (expected one patient's slices <folder>_<n>.tif)")
    subfolders = [p.name for p in entries if p.is_dir()]
    if subfolders:
        raise GliomicsError(f"{folder}: contains folder(s) {', '.join(subfolders[:3])}; pass one patient's folder "
                            "of <folder>_<n>.tif slices, not a cohort")
    not_tif = [p.name for p in entries if p.suffix.lower() not in (".tif", ".tiff")]
    if not_tif:
        more = f" and {len(not_tif) - 1} more" if len(not_tif) > 1 else ""
        raise GliomicsError(f"{folder}: not a .tif slice: {not_tif[0]}{more} (expected only <folder>_<n>.tif)")
    images = []
    for path in entries:
        match = SLICE_RE.match(path.name)
        if not match:
            raise GliomicsError(f"{path}: not named <folder>_<n>.tif")
        if not match["mask"]:
            images.append((match["folder"], int(match["n"]), path))
    if not images:
        raise GliomicsError(f"{folder}: only masks, no image slices <folder>_<n>.tif")
    prefixes = {prefix for prefix, _, _ in images}
    if len(prefixes) > 1:
        raise GliomicsError(f"{folder}: slices of more than one patient ({', '.join(sorted(prefixes)[:3])})")
    slices: dict[int, Path] = {}
    for _, number, path in images:
        if number in slices:  # e.g. <folder>_01.tif beside <folder>_1.tif
            raise GliomicsError(f"{folder}: slice {number} twice ({slices[number].name}, {path.name})")
        slices[number] = path
    numbers = sorted(slices)
    missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
    if missing or numbers[0] != 1:
        shown = ", ".join(str(n) for n in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise GliomicsError(f"{folder}: gaps in the slice numbers: missing {shown} (expected 1..{numbers[-1]})")
    return prefixes.pop(), [(n, slices[n]) for n in numbers]


def read_slices(slices: list[tuple[int, Path]]) -> np.ndarray:
    """The images stacked ``(n, 256, 256, 3)`` uint8, read and checked by :func:`gliomics.data.slices.read_images`
    (the reader of every command); an error names the first image that is not 256x256x3 uint8."""
    return read_images(path for _, path in slices)


def check_out_dir(out_dir: Path, input_dir: Path) -> None:
    """The output must not be inside the input, nor an existing folder that is not an analyze output."""
    _check_analyze_out(out_dir, [input_dir], REPORT, "analyze", lambda given: "the input folder")


def _check_analyze_out(out_dir: Path, inputs, earlier_file: str, what: str, naming) -> None:
    """The checks of one analysis and of a batch: ``out_dir`` is none of ``inputs``, not inside or above one
    (``naming(input)`` says which in the message), and, when it exists, a folder that is empty or holds
    ``earlier_file`` (an earlier ``what`` output)."""
    out = out_dir.resolve()
    for given in inputs:
        path = Path(given).resolve()
        if out == path or path in out.parents or out in path.parents:
            raise GliomicsError(f"{out_dir}: the output must not be {naming(given)}, inside it or above it")
    if out_dir.exists() and not out_dir.is_dir():
        raise GliomicsError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / earlier_file).exists():
        raise GliomicsError(f"{out_dir}: exists, is not empty and is not an earlier {what} output; "
                            "choose another --out")


def check_alias(uri: str, what: str) -> None:
    """For ``models:/<name>@<alias>``: a one-line error when no version holds the alias."""
    if uri.startswith("models:/") and "@" in uri:
        from gliomics.registry.listing import get_alias  # only for a registry URI: MLflow's import is seconds

        name, alias = uri.removeprefix("models:/").split("@", 1)
        try:
            holder = get_alias(name, alias)
        except Exception:  # noqa: BLE001 - an unreachable store is the same answer for the user
            holder = None
        if holder is None:
            raise GliomicsError(f"{uri}: no {alias} {what} registered (no version of {name} has alias "
                                f"@{alias}; run `gliomics register` or `gliomics promote --name {name} "
                                "--version N`, or pass a local model folder)")


# --------------------------------------------------------------------- the report
def _volume(value) -> str:
    return f"{value:,.0f}" if value is not None and math.isfinite(value) else "n/a"


def _extreme(column, value) -> bool:
    return column == "percentile" and (value < 5 or value > 95)


def development_patients(reference, splits_csv: Path | None):
    """``(reference rows of the split's non-test patients, a phrase saying which)``; all rows without a split."""
    if reference is None or splits_csv is None or not Path(splits_csv).is_file():
        return reference, "all patients of the table"
    try:
        splits = pd.read_csv(splits_csv)
        development = set(splits.loc[splits["part"] != "test", "patient"])
    except (OSError, ValueError, KeyError):
        raise GliomicsError(f"{splits_csv}: not a splits table (columns patient, part); "
                            "run `gliomics split` or pass --splits") from None
    kept = reference[reference["patient"].isin(development)]
    if kept.empty:
        raise GliomicsError(f"{splits_csv}: none of its training/validation patients is in the reference table; "
                            "pass the reference cohort's own split with --splits")

    return kept, f"the model's development patients (training and validation folds of {shown_path(splits_csv)})"


def _reference_tables(reference_csv: Path, associations: Path, clinical_csv: Path | None):
    def read(path, required=()):
        """The table at ``path``; None when it does not exist (the report then says which command makes it);
        one line when it exists but is not the expected table."""
        if path is None or not Path(path).exists():
            return None
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise GliomicsError(f"{path}: not a CSV table ({str(error).splitlines()[0][:120]})") from None
        missing = [column for column in required if column not in table.columns]
        if missing:
            raise GliomicsError(f"{path}: no column {', '.join(missing)}; expected the output of "
                                f"`gliomics {'features' if 'patient' in required else 'associate'}`")
        return table

    clinical = None
    if clinical_csv is not None and Path(clinical_csv).is_file():
        try:
            clinical = read_clinical(Path(clinical_csv))
        except GliomicsError:
            clinical = None
    return (read(reference_csv, ("patient",)), read(associations / "tests.csv", ("feature",)),
            read(associations / "roc_auc.csv", ("feature",)), clinical)


def render_patient_report(folder: str, images, masks, row: dict, *, summary: dict, reference, tests, roc, clinical,
                          spacing, reference_csv: Path, associations: Path,
                          reference_scope: str = "all patients of the table", reference_note: str | None = None) -> str:
    """The self-contained HTML page of one analysed patient."""
    sections = []
    overview = h.Section("Patient")
    overview.add(h.cards({"slices": summary["n_slices"], "slices with tumour": summary["n_tumour_slices"],
                          "tumour voxels": summary["tumour_voxels"],
                          "volume (px³)": _volume(row.get("volume_3d"))}))
    overview.add(h.key_values({"input": h.shown_path(summary["input"]), "patient folder": folder,
                               "model": h.shown_path(summary["model_uri"]),
                               "why this model": summary.get("model_reason", ""),
                               "test-time augmentation": "left-right flip" if (summary.get("post") or {}).get("tta")
                               else "none",
                               "slice gate": summary.get("gate_uri") or "none",
                               "slices gated out": summary.get("n_gated_out", 0),
                               "feature status": row.get("status"),
                               "seconds (segmentation and features)": summary.get("seconds")}))
    sections.append(overview)

    seg = h.Section("Segmentation")
    seg.add(h.image(largest_slices(images, masks, n=N_LARGEST, slice_numbers=summary["slice_numbers"]),
                    caption=f"the {N_LARGEST} slices with the largest predicted tumour: FLAIR above, prediction "
                            "(orange) below"))
    seg.add(h.image(volume_3d(masks, spacing), caption="predicted tumour surface in 3D (slices "
                                                       f"{spacing[0]:g} pixels apart)"))
    sections.append(seg)

    feats = h.Section("Features")
    columns = list(FEATURE_COLUMNS) + ["glcm_asm", *SLICE_MEAN_COLUMNS, *SHAPE3D_COLUMNS]
    if reference is None:
        feats.add(h.placeholder("The reference cohort", "gliomics features --masks truth", missing=[reference_csv]))

        feats.add(h.table(pd.DataFrame({"feature": columns, "value": [row.get(c) for c in columns]})))
    else:
        table = feature_percentiles(row, reference, columns)
        feats.add(h.paragraph(f"Each value's percentile among the {len(reference)} patients of the reference "
                              f"cohort ({h.shown_path(reference_csv)}, truth masks; {reference_scope})."))
        if reference_note:
            feats.add(h.note(reference_note))
        feats.add(h.image(feature_positions(reference, row, FEATURE_COLUMNS),
                          caption="the 14 thesis features"))
        feats.add(h.table(table, caption="feature values and their percentile in the reference cohort "
                                         "(highlighted: below the 5th or above the 95th)",
                          formats={"percentile": ".0f"}, highlight=_extreme))
    sections.append(feats)

    cohort = h.Section("What the cohort analysis says")
    if reference is None or tests is None or clinical is None:
        cohort.available = False
        cohort.add(h.placeholder("The cohort's association results", "gliomics associate",
                                 missing=[associations / "tests.csv", reference_csv]))
    else:
        items = typical_levels(row, reference, clinical, tests, roc)
        if not items:
            cohort.add(h.paragraph("No feature was associated with a cluster family after Bonferroni correction "
                                   "in the reference cohort (or this patient has no value for those features), "
                                   "so there is nothing to place the patient against."))
        for item in items:
            cohort.add(f'<div class="statement">{h.escape(statement_text(item))}</div>')
        cohort.add(h.note(DISCLAIMER))
    sections.append(cohort)
    return h.render(f"gliomics analyze: {folder}", sections,
                    subtitle=f"{summary['n_slices']} slices analysed with {h.shown_path(summary['model_uri'])}",
                    footer="Written by <code>gliomics analyze</code>; every figure is embedded.")


# --------------------------------------------------------------------- the stage
@dataclass
class Analyzer:
    """What every patient of a run shares: the loaded models, settings and reference tables."""

    model: object
    preprocessing: object
    settings: dict
    gate: object
    model_uri: object
    model_reason: str
    gate_uri: str | None
    feature_kw: dict
    reference: object
    tests: object
    roc: object
    clinical: object
    reference_scope: str
    reference_csv: Path
    associations: Path
    batch_size: int = 8
    reference_note: str | None = None  # SYNTHETIC_REFERENCE when the reference is the demo cohort


def prepare_analyzer(params, *, model_uri=None, gate_uri: str | None = None,
                     reference_csv: str | Path = REFERENCE, associations: str | Path = ASSOCIATIONS,
                     clinical_csv: str | Path | None = None, splits_csv: str | Path | None = None,
                     batch_size: int = 8) -> Analyzer:
    """Load the segmenter (and gate) and the reference tables once, for one patient or many.

    ``model_uri``: one segmenter URI or several (an ensemble); None chooses
    (:func:`gliomics.registry.shipped.choose_segmenter`: a champion trained on real data, else the shipped
    segmenter), and ``model_reason`` says why that model.
    """
    choice = choose_segmenter(model_uri)
    for uri in ([choice.uri] if isinstance(choice.uri, (str, Path)) else choice.uri):
        check_alias(str(uri), "segmenter")
    if gate_uri:
        check_alias(gate_uri, "slice classifier")
    model, preprocessing, settings, gate = load_segmentation_models(
        choice.uri, params.post.as_post(), gate_uri, params.segment.gate_threshold)
    reference, tests, roc, clinical = _reference_tables(
        Path(reference_csv), Path(associations),
        Path(clinical_csv) if clinical_csv else Path(params.data.raw) / "data.csv")
    reference, reference_scope = development_patients(reference, Path(splits_csv) if splits_csv else None)
    return Analyzer(model=model, preprocessing=preprocessing, settings=settings, gate=gate, model_uri=choice.uri,
                    model_reason=choice.reason, gate_uri=gate_uri, feature_kw=feature_settings(params.features),
                    reference=reference, tests=tests, roc=roc, clinical=clinical, reference_scope=reference_scope,
                    reference_note=SYNTHETIC_REFERENCE if reference is not None and params.profile == "demo" else None,
                    reference_csv=Path(reference_csv), associations=Path(associations), batch_size=batch_size)


def analyze_patient(analyzer: Analyzer, input_dir: Path, out_dir: Path, slices, folder: str,
                    step=lambda done: None) -> tuple[dict, dict]:
    """Segment, measure and report one checked patient folder into ``out_dir`` (atomically).

    Returns ``(summary, features row)``; ``step(k)`` is called after reading (3), segmenting (4),
    features (5) and the report (6), the numbering of :func:`run_analyze`'s progress.
    """
    started = time.perf_counter()
    images = read_slices(slices)
    step(3)
    prob = patient_probabilities(analyzer.model, analyzer.preprocessing, images, analyzer.gate,
                                 batch_size=analyzer.batch_size)
    n_gated_out = analyzer.gate.n_skipped if analyzer.gate is not None else 0
    masks = inference.segment_volume(prob, analyzer.preprocessing, analyzer.settings)
    step(4)
    row = {"patient": patient_of(folder), "folder": folder, **patient_features(images, masks, **analyzer.feature_kw)}
    step(5)
    reference = analyzer.reference
    summary = {
        "input": str(input_dir), "out": str(out_dir), "folder": folder, "n_slices": len(slices),
        "slice_numbers": [n for n, _ in slices],
        "n_tumour_slices": int(masks.reshape(len(masks), -1).any(axis=1).sum()),
        "tumour_voxels": int(masks.sum()), "model_uri": inference.describe_models(analyzer.model_uri),
        "model_reason": analyzer.model_reason, "gate_uri": analyzer.gate_uri,
        "n_gated_out": n_gated_out, "post": analyzer.settings,
        "n_reference_patients": 0 if reference is None else int(len(reference)),
        "reference_scope": analyzer.reference_scope, "reference_note": analyzer.reference_note,
        "seconds": round(time.perf_counter() - started, 2),
    }
    page = render_patient_report(folder, images, masks, row, summary=summary, reference=reference,
                                 tests=analyzer.tests, roc=analyzer.roc, clinical=analyzer.clinical,
                                 spacing=analyzer.feature_kw["spacing"], reference_csv=analyzer.reference_csv,
                                 associations=analyzer.associations, reference_scope=analyzer.reference_scope,
                                 reference_note=analyzer.reference_note)
    with io.atomic_path(out_dir) as tmp:
        (tmp / MASKS).mkdir(parents=True)
        for (number, _), mask in zip(slices, masks):
            write_mask(tmp / MASKS / f"{folder}_{number}_mask.tif", mask)
        pd.DataFrame([row], columns=["patient", "folder", *ALL_COLUMNS]).to_csv(tmp / FEATURES, index=False)
        (tmp / REPORT).write_text(page, encoding="utf-8")
    step(6)
    summary.pop("slice_numbers")
    return summary, row


def run_analyze(input_dir: str | Path, out_dir: str | Path, params, *, model_uri=None,
                gate_uri: str | None = None, reference_csv: str | Path = REFERENCE,
                associations: str | Path = ASSOCIATIONS, clinical_csv: str | Path | None = None,
                splits_csv: str | Path | None = None, batch_size: int = 8) -> dict:
    """Analyse one patient's folder; write ``out_dir`` (atomically); return a summary.

    ``model_uri``: one segmenter URI or several (an ensemble); None chooses
    (:func:`gliomics.registry.shipped.choose_segmenter`: a champion trained on real data, else the shipped
    segmenter), and the summary's ``model_reason`` says why that model.
    """
    started = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    steps = ["checking input", "loading model", "reading slices", "segmenting", "features", "report"]
    timings: dict[str, float] = {}
    with progress("analyze", len(steps)) as update:

        def step(done: int) -> None:
            timings[steps[done - 1]] = round(time.perf_counter() - started - sum(timings.values()), 2)
            update(done, len(steps))

        folder, slices = check_patient_folder(input_dir)
        check_out_dir(out_dir, input_dir)
        step(1)
        analyzer = prepare_analyzer(params, model_uri=model_uri, gate_uri=gate_uri, reference_csv=reference_csv,
                                    associations=associations, clinical_csv=clinical_csv, splits_csv=splits_csv,
                                    batch_size=batch_size)
        step(2)
        summary, _ = analyze_patient(analyzer, input_dir, out_dir, slices, folder, step)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["timings"] = timings
    return summary


# --------------------------------------------------------------------- many patients
INDEX_HTML = "index.html"
INDEX_CSV = "index.csv"


def is_batch_input(source: str | Path) -> bool:
    """True for a list file, or a folder holding patient folders (a cohort), not one patient's slices."""
    source = Path(source)
    if source.is_file():
        return source.suffix.lower() not in (".tif", ".tiff")
    return source.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in source.iterdir())


def patient_folders(source: str | Path) -> list[Path]:
    """The patient folders of a batch: the sub-folders of a cohort folder (files such as ``data.csv`` are
    ignored), or the lines of a list file (one folder per line, relative to the list file's folder;
    blank lines and ``#`` comments skipped). Two patients with the same folder name are an error, since
    each gets ``OUT/<folder name>/``."""
    source = Path(source)
    if source.is_file():
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise GliomicsError(f"{source}: not a text list of patient folders ({error})") from None
        folders = [source.parent / line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not folders:
            raise GliomicsError(f"{source}: lists no patient folder (expected one folder per line)")
    elif source.is_dir():
        folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise GliomicsError(f"{source}: holds no patient folders")
    else:
        raise GliomicsError(f"{source}: no such folder or list file")
    names: dict[str, Path] = {}
    for folder in folders:
        if folder.name in names:
            raise GliomicsError(f"{source}: two patient folders named {folder.name} ({names[folder.name]}, {folder}); "
                                "each patient's output is OUT/<folder name>")
        names[folder.name] = folder
    return folders


def check_batch_out_dir(out_dir: Path, source: Path, folders: list[Path]) -> None:
    """The batch output must not be, contain or lie inside any input; an existing non-empty folder must be
    an earlier batch output (it holds ``index.html``)."""
    inputs = [source, *folders] if source.is_dir() else folders  # a list file's folder is no input
    _check_analyze_out(out_dir, inputs, INDEX_HTML, "batch analyze", lambda given: f"an input folder ({given})")


def _error_text(error: Exception) -> str:
    return str(error) if isinstance(error, GliomicsError) else f"{type(error).__name__}: {error}"


def render_index(records, analyzer: Analyzer, source: Path) -> str:
    """The batch's index page: one row per patient (status, volume, features, percentiles), each linked to its
    report; the patients that failed, with why."""
    frame = pd.DataFrame.from_records(records)
    done = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    report_link = {"folder": lambda name: f"{urllib.parse.quote(str(name))}/{REPORT}"}
    overview = h.Section("Patients")
    overview.add(h.cards({"patients": len(frame), "analysed": len(done), "failed": len(failed)}))
    overview.add(h.key_values({"input": h.shown_path(source), "model": h.shown_path(inference_name(analyzer)),
                               "why this model": analyzer.model_reason,
                               "reference cohort": f"{h.shown_path(analyzer.reference_csv)} ({analyzer.reference_scope})"
                               if analyzer.reference is not None else "not available"}))
    if analyzer.reference_note:
        overview.add(h.note(analyzer.reference_note))
    columns = ["folder", "n_slices", "n_tumour_slices", "tumour_voxels", "volume_3d", *FEATURE_COLUMNS]
    if not done.empty:
        overview.add(h.table(done[[c for c in columns if c in done]], links=report_link,
                             caption="features of each analysed patient (click a folder for its report)"))
        percentile_columns = [f"pct_{c}" for c in FEATURE_COLUMNS if f"pct_{c}" in done]
        if percentile_columns:
            shown = done[["folder", *percentile_columns]].rename(columns=lambda c: c.removeprefix("pct_"))
            overview.add(h.table(shown, links=report_link, formats={c: ".0f" for c in FEATURE_COLUMNS},
                                 highlight=lambda column, value: column != "folder" and (value < 5 or value > 95),
                                 caption="percentile of each feature in the reference cohort (highlighted: below "
                                         "the 5th or above the 95th)"))
    sections = [overview]
    if not failed.empty:
        errors = h.Section("Failed")
        errors.add(h.table(failed[["folder", "error"]], caption="patients that could not be analysed, and why"))
        sections.append(errors)
    return h.render(f"gliomics analyze: {len(frame)} patients", sections,
                    subtitle=f"{len(done)} analysed, {len(failed)} failed",
                    footer="Written by <code>gliomics analyze</code> on a folder of patients; each report is "
                           "self-contained.")


def inference_name(analyzer: Analyzer) -> str:
    return describe_models(analyzer.model_uri)


def run_analyze_batch(source: str | Path, out_dir: str | Path, params, *, model_uri=None,
                      gate_uri: str | None = None, reference_csv: str | Path = REFERENCE,
                      associations: str | Path = ASSOCIATIONS, clinical_csv: str | Path | None = None,
                      splits_csv: str | Path | None = None, batch_size: int = 8) -> dict:
    """Analyse every patient folder of ``source`` (a cohort folder or a list file) into ``OUT/<folder>/``.

    The model and reference tables are loaded once. A patient that fails (bad slices, unreadable files) gets
    one line on stderr and a row in the index; the others go on. ``OUT/index.html`` and
    ``OUT/index.csv`` (one row per patient: status, error, volume, features, ``pct_<feature>``
    percentiles in the reference cohort) are written last, atomically.
    """
    started = time.perf_counter()
    source, out_dir = Path(source), Path(out_dir)
    folders = patient_folders(source)
    check_batch_out_dir(out_dir, source, folders)
    analyzer = prepare_analyzer(params, model_uri=model_uri, gate_uri=gate_uri, reference_csv=reference_csv,
                                associations=associations, clinical_csv=clinical_csv, splits_csv=splits_csv,
                                batch_size=batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for folder_path in tqdm(folders, desc="analyze", unit="patient", disable=None, leave=False):
        record = {"folder": folder_path.name, "status": "ok", "error": ""}
        try:
            folder, slices = check_patient_folder(folder_path)
            summary, row = analyze_patient(analyzer, folder_path, out_dir / folder_path.name, slices, folder)
        except Exception as error:  # noqa: BLE001 - one patient's failure must not stop the batch
            # The folder's name, not its path on this machine: the index is shared.
            record.update(status="failed", error=_error_text(error).replace(str(folder_path), folder_path.name))
            tqdm.write(f"analyze: {folder_path.name}: failed: {record['error']}", file=sys.stderr)
            earlier = out_dir / folder_path.name
            if (earlier / REPORT).is_file():  # an earlier run's report must not stand for this run
                shutil.rmtree(earlier)
        else:
            record.update({**row, "n_slices": summary["n_slices"], "n_tumour_slices": summary["n_tumour_slices"],
                           "tumour_voxels": summary["tumour_voxels"], "seconds": summary["seconds"]})
            if analyzer.reference is not None:
                percentiles = feature_percentiles(row, analyzer.reference, FEATURE_COLUMNS)
                record.update({f"pct_{f}": p for f, p in zip(percentiles["feature"], percentiles["percentile"])})
        records.append(record)
    io.write_csv(out_dir / INDEX_CSV, pd.DataFrame.from_records(records))
    io.write_text(out_dir / INDEX_HTML, render_index(records, analyzer, source))
    failed = [r["folder"] for r in records if r["status"] != "ok"]
    return {"n_patients": len(records), "n_failed": len(failed), "failed": failed,
            "model_uri": inference_name(analyzer), "model_reason": analyzer.model_reason,
            "reference_note": analyzer.reference_note,
            "seconds": round(time.perf_counter() - started, 2)}
