"""``gliomics report``: the study report, one self-contained HTML file.

Reads what the stages wrote under ``reports/`` (validate, split, features,
associations, train, evaluate, and -- when they have run -- tune, register,
registry, classifier, predicted-mask features) plus the cohort's
``data.csv``, and writes ``reports/index.html``: every figure embedded as a
base64 PNG, sortable tables, a table of contents, no server and no internet.
Sections whose inputs do not exist yet say which command fills them
(:mod:`gliomics.report.sections`).

The only model inference here draws the overlay strips of the five worst
internal test patients: the model named in the evaluation's
``summary.json`` (the champion when ``gliomics register`` evaluated it)
segments those patients again. When it cannot be loaded the strips are
replaced by a box saying why; the rest of the report is unaffected.

The HTML file and every input file it embedded are logged to MLflow
(experiment ``report``).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import mlflow
import numpy as np

from gliomics import io, tracking
from gliomics.data.cohort_io import cohort_patients, read_images, read_masks
from gliomics.errors import GliomicsError
from gliomics.models import inference
from gliomics.report.html import DATA_URI_PREFIX, render, shown_path
from gliomics.report.sections import SECTION_BUILDERS, ReportInputs, evaluation_of_test_patients
from gliomics.report.segmentation_plots import OverlayCase, overlay_strips
from gliomics.tracking import stage_run

N_WORST = 5
TITLE = "gliomics study report"


def worst_overlays(ctx, *, post: dict | None = None, n: int = N_WORST):
    """The overlay strips of the ``n`` worst test patients, or the reason there are none (a string)."""
    table, summary, folder = evaluation_of_test_patients(ctx)
    if table is None:
        return None
    model_uri = summary.get("model_uri")
    if not model_uri:
        return f"reports/{folder}/summary.json names no model"
    if ctx.data_dir is None or not Path(ctx.data_dir).exists():
        return f"cohort folder {ctx.data_dir} not found"
    worst = table.sort_values("dice_3d", kind="stable").head(n)
    try:
        root, by_folder = cohort_patients(ctx.data_dir, need_masks=True, patients=list(worst["patient"]))
        model, preprocessing, _ = inference.load_model(model_uri)
        settings = inference.post_settings(post, preprocessing)
        cases = {}
        for folder_name, slices in by_folder.items():
            images = read_images(slices, root)
            truth = read_masks(slices, images.shape[1:3], root)
            prob = inference.predict_patient(model, preprocessing, images)
            pred = inference.segment_volume(prob, preprocessing, settings)
            areas = truth.reshape(len(truth), -1).sum(axis=1)
            if not areas.any():
                areas = pred.reshape(len(pred), -1).sum(axis=1)
            z = int(np.argmax(areas))
            patient = slices[0].patient
            match = worst[(worst["patient"] == patient) | (worst["patient"] == folder_name)]
            dice = float(match["dice_3d"].iloc[0]) if len(match) else float("nan")
            cases[patient] = OverlayCase(patient, slices[z].slice, images[z][..., 1], truth[z], pred[z], dice)
    except GliomicsError as exc:
        return str(exc).splitlines()[0][:300]
    except Exception as exc:  # noqa: BLE001 - an optional figure must not stop the report
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    ordered = [cases[p] for p in worst["patient"] if p in cases]
    return overlay_strips(ordered)


def build_report(reports_dir: str | Path, out: str | Path, params, *, data_dir: str | Path | None = None,
                 overlays: bool = True):
    """``(html_text, ReportInputs, sections)``: the report, without writing it."""
    reports = Path(reports_dir)
    data = Path(data_dir) if data_dir is not None else Path(params.data.raw)
    ctx = ReportInputs(reports=reports, params=params, data_dir=data, out_dir=Path(out).resolve().parent)
    ctx.reports = reports.resolve()
    if overlays:
        ctx.overlays = worst_overlays(ctx, post=params.post.as_post())
    sections = [build(ctx) for build in SECTION_BUILDERS]
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data_hash = tracking.dvc_data_hash(data)
    data_version = "not tracked by DVC" if data_hash.startswith("untracked:") else f"DVC md5 {data_hash}"
    subtitle = (f"generated {generated} · git {tracking.git_commit()[:12]} · data {shown_path(data)} "
                f"({data_version}) · profile {params.profile}")
    footer = ("Built by <code>gliomics report</code> from the files under reports/; every figure is embedded, "
              "so this file can be sent on its own.")
    return render(TITLE, sections, subtitle=subtitle, footer=footer), ctx, sections


def run_report(reports_dir: str | Path, out: str | Path, params, *, data_dir: str | Path | None = None,
               overlays: bool = True, log_mlflow: bool = True, profile: str | None = None) -> dict:
    """Write the study report to ``out``; log it to MLflow; return a summary."""
    started = time.perf_counter()
    reports = Path(reports_dir)
    if not reports.is_dir():
        raise GliomicsError(f"{reports}: no such folder (run `dvc repro` or the stages first)")
    text, ctx, sections = build_report(reports, out, params, data_dir=data_dir, overlays=overlays)
    io.write_text(out, text)
    used = sorted(set(ctx.used))
    summary = {
        "out": str(out),
        "sections": {s.title: s.available for s in sections},
        "n_images": text.count(DATA_URI_PREFIX),
        "n_inputs": len(used),
        "overlays": ctx.overlays is not None and not isinstance(ctx.overlays, str),
        "bytes": len(text.encode("utf-8")),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if log_mlflow:
        _log(Path(out), ctx, used, summary, params, profile)
    return summary


def _log(out: Path, ctx, used: list[Path], summary: dict, params, profile) -> None:
    with stage_run("report", data_dir=ctx.data_dir, params={"reports": str(ctx.reports), "out": str(out)},
                   profile=profile or params.profile):
        mlflow.log_metrics({"n_images": summary["n_images"], "n_inputs": summary["n_inputs"],
                            "seconds": summary["seconds"]})
        mlflow.log_dict(summary, "report_summary.json")
        mlflow.log_artifact(str(out))
        for path in used:
            try:
                relative = path.resolve().relative_to(ctx.reports)
            except ValueError:
                relative = Path(path.name)
            mlflow.log_artifact(str(path), artifact_path=str(Path("inputs") / relative.parent))
