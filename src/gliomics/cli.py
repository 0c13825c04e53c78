"""The ``gliomics`` command: one subcommand per pipeline stage.

Thin by design: parse arguments, call a stage function, report. Heavy
libraries (TensorFlow, MLflow, Great Expectations) are imported inside the
stage functions, so ``gliomics --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gliomics import __version__, layout
from gliomics.errors import GliomicsError, ValidationFailed

#: Problems printed before the rest are summarised as a count.
MAX_PROBLEMS_SHOWN = 50


def _params(args):
    from gliomics.config import load_params

    return load_params(args.params)


# --------------------------------------------------------------------- the output rule (gliomics.io.check_output)
#: What each command writes, by option: "folder" (replaced whole), "files" (written into it) or "file".
OUTPUTS = {
    "synth": {"out": "folder"}, "ingest": {"dest": "folder"}, "validate": {"out": "files"},
    "split": {"out": "files"}, "features": {"out": "file"}, "associate": {"out": "folder", "metrics": "file"},
    "train": {"out": "folder", "checkpoints": "files", "reports": "files"},
    "tune": {"out": "folder", "reports": "files", "store_root": "files", "work_dir": "files"},
    "evaluate": {"out": "files"}, "segment": {"out": "folder"}, "ensemble": {"out": "folder"},
    "train-classifier": {"out": "folder", "checkpoints": "files", "reports": "files", "store": "folder"},
    "register-classifier": {"out": "files"}, "calibrate-classifier": {"out": "folder"},
    "register": {"out": "files"}, "report": {"out": "file"}, "analyze": {"out": "folder"},
}
#: Outputs that are not marked: a cohort is versioned by data.dvc, whose hash a marker file would change.
UNMARKED = {("synth", "out"), ("ingest", "dest")}
#: Inputs the output may neither be, lie inside nor (a replaced folder) contain: cohorts, patients, models.
DATA_INPUTS = ("source", "data", "input", "model", "gate")
#: Inputs the output may neither be nor (a replaced folder) contain: the tables a command reads.
TABLE_INPUTS = ("manifest", "splits", "features", "clinical", "reference", "associations", "best", "reports")


def _is_cohort(folder: Path) -> bool:
    """A cohort in the Kaggle layout (what synth and ingest write): data.csv and TCGA_* folders only."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return (folder / "data.csv").is_file() and all(
        p.name == "data.csv" or (p.is_dir() and p.name.startswith("TCGA_")) for p in entries)


def _model_of_task(task: str):
    """``folder -> bool``: an MLflow model folder of ``task`` (its metadata's task; a segmenter when it has none,
    as models saved before tasks were recorded), never the models shipped with the project."""
    def accept(folder: Path) -> bool:
        import yaml

        if "pretrained" in folder.resolve().parts or not (folder / "MLmodel").is_file():
            return False
        try:
            metadata = (yaml.safe_load((folder / "MLmodel").read_text()) or {}).get("metadata") or {}
        except (OSError, yaml.YAMLError):
            return False
        return (metadata.get("gliomics") or {}).get("task", "segmenter") == task
    return accept


#: Existing folders a command may replace although they carry no marker of it (written before markers
#: existed, or not marked at all).
REPLACEABLE = {
    "ingest": _is_cohort, "synth": _is_cohort,
    "train": _model_of_task("segmenter"), "tune": lambda f: (f / "MLmodel").is_file() and "pretrained" not in
    f.resolve().parts, "train-classifier": _model_of_task("classifier"),
    "calibrate-classifier": _model_of_task("classifier"), "ensemble": _model_of_task("segmenter"),
    "associate": lambda f: (f / "summary.json").is_file() or (f / "validation_failed.json").is_file(),
    "analyze": lambda f: (f / "report.html").is_file() or ((f / "index.html").is_file() and (f / "index.csv").is_file()),
}
#: For train-classifier --store: an array store (its store.json) may be rebuilt.
STORE_REPLACEABLE = lambda f: (f / "store.json").is_file()  # noqa: E731


def _paths(value) -> list:
    return [] if value is None else [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def resolve_default_outputs(args) -> None:
    """Fill in the output options whose defaults depend on other options, so that the output rule checks (and a
    re-run finds) the place the command will really write."""
    command = args.command
    if command == "train":
        _default_train_folders(args)
    elif command == "features":
        args.out = args.out or str(layout.features_table(args.masks))
    elif command == "evaluate":
        args.out = args.out or str(layout.CLASSIFIER_EVALUATE if args.task == "classifier" else layout.EVALUATE)
    elif command == "validate" and args.out is None:
        args.out = validate_out_dir(args.data or _params(args).data.raw, _params(args).data.raw)
    elif command == "calibrate-classifier":
        args.out = args.out or f"{str(args.model).rstrip('/')}-calibrated"
    elif command == "tune":
        from gliomics.stages.tune import MODEL_DIRS, REPORTS_DIRS

        args.reports = args.reports or str(REPORTS_DIRS[args.task])
        args.out = args.out or str(MODEL_DIRS[args.task])


def _outputs(args) -> list[tuple[str, str, str]]:
    """``[(option, path, kind), ...]``: the outputs this invocation writes."""
    return [(option, str(getattr(args, option)), kind) for option, kind in OUTPUTS.get(args.command, {}).items()
            if getattr(args, option, None)]


def check_outputs(args) -> None:
    """Apply :func:`gliomics.io.check_output` to every output of ``args`` before the command runs."""
    from gliomics import io

    resolve_default_outputs(args)
    outputs = _outputs(args)
    if not outputs:
        return
    own = set(OUTPUTS.get(args.command, {}))
    data = [p for option in DATA_INPUTS if option not in own for p in _paths(getattr(args, option, None))]
    if "data" in vars(args) and args.data is None and args.command not in ("synth", "ingest"):
        data.append(_params(args).data.raw)  # the default cohort is an input too
    tables = [p for option in TABLE_INPUTS if option not in own for p in _paths(getattr(args, option, None))]
    for option, path, kind in outputs:
        replaceable = STORE_REPLACEABLE if option == "store" else REPLACEABLE.get(args.command)
        io.check_output(path, command=f"gliomics {args.command}", kind=kind, data_inputs=data, other_inputs=tables,
                        force=bool(getattr(args, "force", False)), replaceable=replaceable)


def mark_outputs(args) -> None:
    """After success: mark each folder output as this command's, so that a re-run may replace it."""
    from gliomics import io

    for option, path, kind in _outputs(args):
        if kind == "folder" and (args.command, option) not in UNMARKED:
            io.mark_output(path, f"gliomics {args.command}")


def _add_force_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace the output folder even if it is not an earlier output of this command")


def _auc_text(auc: float | None) -> str:
    """A ROC AUC for a message: "n/a" where it is undefined (one class only)."""
    return "n/a" if auc is None else f"{auc:.3f}"


def cmd_synth(args) -> int:
    from gliomics.stages.cohort import synthesize

    params = _params(args).synth
    seed = params.seed if args.seed is None else args.seed
    n = params.n_patients if args.patients is None else args.patients
    out = synthesize(args.out, seed=seed, n_patients=n, force=args.force)
    print(f"synth: wrote {n} synthetic patients (seed {seed}) to {out}")
    return 0


def cmd_ingest(args) -> int:
    from gliomics.stages.cohort import ingest

    dest = ingest(args.source, args.dest, track_with_dvc=not args.no_dvc)
    print(f"ingest: copied {args.source} to {dest}" + ("" if args.no_dvc else " and updated data.dvc"))
    print("next: dvc repro   (validates the new cohort and re-runs what depends on it)")
    return 0


def validate_out_dir(data, pipeline_data) -> str:
    """Where ``validate`` writes without --out: the pipeline's reports/validate for the pipeline's cohort
    (data.raw), else reports/validate-<folder name>, so that checking another folder never replaces (or, when
    it fails, deletes) the manifest the pipeline trains on."""
    if Path(data).resolve() == Path(pipeline_data).resolve():
        return str(layout.VALIDATE)
    return str(layout.validate_elsewhere(data))


def cmd_validate(args) -> int:
    from gliomics.stages.validate import run_validate

    params = _params(args)
    data = args.data or params.data.raw
    out = args.out or validate_out_dir(data, params.data.raw)
    summary = run_validate(data, out, log_mlflow=not args.no_mlflow, profile=params.profile)
    for warning in summary.get("warnings", [])[:MAX_PROBLEMS_SHOWN]:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"validate: {summary['n_patients']} patients, {summary['n_slices']} slices "
        f"({summary['n_tumour_slices']} with tumour) passed all expectations in {summary['seconds']} s; "
        f"manifest: {Path(out) / 'manifest.csv'}"
    )
    return 0


def cmd_split(args) -> int:
    from gliomics.stages.split import split_cohort

    params = _params(args)
    data = args.data or params.data.raw
    summary = split_cohort(data, args.manifest, params.split, args.out, log_mlflow=not args.no_mlflow,
                           profile=params.profile)
    parts = ", ".join(f"{part}: {c['patients']}" for part, c in sorted(summary["parts"].items()))
    print(f"split: {summary['n_patients']} patients by patient (seed {summary['seed']}) → {parts}")
    return 0


def cmd_features(args) -> int:
    from gliomics.stages.features import run_features

    params = _params(args)
    data = args.data or params.data.raw
    out = args.out or str(layout.features_table(args.masks))
    summary = run_features(data, args.masks, out, params.features, log_mlflow=not args.no_mlflow,
                           profile=params.profile)
    print(f"features: {summary['n_patients']} patients ({summary['n_ok']} ok) from {args.masks} masks "
          f"in {summary['seconds']} s → {out}")
    return 0


def cmd_associate(args) -> int:
    from gliomics.stages.associate import run_associate

    params = _params(args)
    clinical = args.clinical or str(Path(params.data.raw) / "data.csv")
    summary = run_associate(args.features, clinical, args.out, params.associate, log_mlflow=not args.no_mlflow,
                            profile=params.profile, plots=not args.no_plots, force=args.force)
    if args.metrics:
        from gliomics import io

        io.write_json(args.metrics, {k: summary[k] for k in METRICS_KEYS if k in summary})
    print(f"associate: {summary['n_tests']} Fisher-Freeman-Halton tests, {summary['n_significant_bonferroni']} "
          f"significant after Bonferroni ({summary['n_significant_fdr']} after FDR), {summary['n_auc_top']} "
          f"feature-cluster pairs with AUC > {params.associate.auc_threshold} → {args.out}")
    return 0


#: Headline numbers of `associate` that `dvc metrics show/diff` compares.
METRICS_KEYS = ("n_patients", "n_tests", "n_tests_skipped", "n_significant_bonferroni", "n_significant_fdr",
                "smallest_p", "smallest_p_bonferroni", "n_auc_pairs", "n_auc_top", "best_auc")


def _default_train_folders(args) -> None:
    for option, folder in layout.train_folders(args.fold, args.final, args.seed).items():
        setattr(args, option, getattr(args, option) or folder)


def cmd_train(args) -> int:
    import dataclasses

    from gliomics.stages.train import run_train

    params = _params(args)
    settings = params.train_settings()
    if args.fold is not None:  # one cross-validation fold model of an ensemble: its own folders
        settings = dataclasses.replace(settings, val_fold=int(args.fold))
    if args.seed is not None:  # another member of an ensemble of the same recipe: its own folders
        settings = dataclasses.replace(settings, seed=int(args.seed))
    _default_train_folders(args)
    summary = run_train(args.data or params.data.raw, args.manifest, args.splits, settings, resume=args.resume,
                        log_mlflow=not args.no_mlflow, profile=params.profile, steps=args.steps, final=args.final,
                        out_dir=args.out, checkpoint_dir=args.checkpoints, reports_dir=args.reports)
    dice = summary["best_val_dice_3d"]
    score = (f"last epoch's 3D Dice on fold {settings.val_fold} (trained on) {dice:.3f}" if args.final
             else f"best validation per-patient 3D Dice {dice:.3f}")
    print(f"train: {summary['epochs_run']} epochs, {summary['total_steps']} steps ({params.profile} profile) in "
          f"{summary['seconds']:.0f} s; {score}; model: {args.out} and {summary['model_uri']}")
    return 0


def cmd_tune(args) -> int:
    from gliomics.stages import tune

    params = _params(args)
    common = dict(storage=args.storage, study=args.study, n_trials=args.n_trials, timeout=args.timeout,
                  store_root=args.store_root, work_dir=args.work_dir, task=args.task)
    data = args.data or params.data.raw
    if args.worker:
        ran = tune.run_worker(params, data, args.manifest, args.splits, phase=args.phase, trials=args.worker_trials,
                              parent_run_id=args.parent_run_id, log_mlflow=not args.no_mlflow, **common)
        print(f"tune worker: ran {ran} {args.phase}-fidelity trial(s)", file=sys.stderr)
        return 0
    reports = args.reports or tune.REPORTS_DIRS[args.task]
    out = args.out or tune.MODEL_DIRS[args.task]
    best = tune.run_tune(params, data, args.manifest, args.splits, workers=args.workers,
                         log_mlflow=not args.no_mlflow, reports_dir=reports, model_dir=out,
                         params_file=args.params, **common)
    chosen = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(best["params"].items()))
    print(f"tune: {args.task} study {best['study_name']} ({best['sampler']}): {best['n_trials']} low-fidelity "
          f"trials ({best['n_complete']} complete, {best['n_pruned']} pruned, {best['n_failed']} failed), "
          f"{best['n_full']} at full fidelity, {best['seconds']:.0f} s")
    print(f"tune: best validation {best['metric']} {best['val_value']:.3f} ({best['fidelity']}-fidelity trial "
          f"{best['trial_number']}): {chosen or 'nothing searched'}")
    if best["model_uri"]:
        print(f"tune: model {out} and {best['model_uri']}; reports in {reports}")
    else:
        print(f"tune: no model (promote_top_k 0: no full-fidelity phase); reports in {reports}")
    return 0


def cmd_evaluate(args) -> int:
    from gliomics.data.splits import patients_of_part

    params = _with_tta(_params(args), args)
    patients = patients_of_part(args.split, args.part) if args.split else None
    if args.task == "classifier":
        return _evaluate_classifier(args, params, patients)
    from gliomics.stages.evaluate import run_evaluate

    out = args.out or str(layout.EVALUATE)
    gate = {"gate": args.gate, "gate_threshold": params.segment.gate_threshold} if args.gate else {}
    summary = run_evaluate(args.data or params.data.raw, args.model, out, patients=patients,
                           post=params.post.as_post(), log_mlflow=not args.no_mlflow, profile=params.profile, **gate)
    print(f"evaluate: {summary['n_patients']} patients, mean per-patient 3D Dice {summary['mean_dice_3d']:.3f} "
          f"(median {summary['median_dice_3d']:.3f}) → {out}")
    groups = summary.get("by_sequences") or {}
    if len(groups) > 1:
        print("evaluate: by MRI sequences: " + "; ".join(
            f"{name} {g['n_patients']} patients, mean {g['mean_dice_3d']:.3f}" for name, g in groups.items()))
    return 0


def cmd_register_classifier(args) -> int:
    from gliomics.stages.register_classifier import run_register_classifier

    params = _params(args)
    s = run_register_classifier(args.model_json, args.evaluation, args.out, data_dir=args.data or params.data.raw,
                                promote_policy=args.promote or params.register.promote, profile=params.profile,
                                mirror_dir=args.registry_dir)
    auc = _auc_text(s["test_roc_auc"])
    print(f"register-classifier: {s['model_uri']}: internal test ROC AUC {auc}, accuracy {s['test_accuracy']:.3f}; "
          + (f"now models:/{s['name']}@champion" if s["promoted"] else f"not promoted: {s['promotion_reason']}"))
    return 0


def _evaluate_classifier(args, params, patients) -> int:
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    if len(args.model) != 1 and not args.from_segmenter:
        raise GliomicsError("evaluate --task classifier: give one --model (ensembles are for segmenters)")
    model = args.model if args.from_segmenter else args.model[0]
    out = args.out or str(layout.CLASSIFIER_EVALUATE)
    s = run_evaluate_classifier(args.data or params.data.raw, model, out, patients=patients,
                                min_area_px=params.classifier_settings().min_area_px, threshold=args.threshold,
                                log_mlflow=not args.no_mlflow, profile=params.profile,
                                from_segmenter=args.from_segmenter)
    auc = _auc_text(s["roc_auc"])
    print(f"evaluate: {s['n_slices']} slices of {s['n_patients']} patients, accuracy {s['accuracy']:.3f}, "
          f"ROC AUC {auc}, F1 {s['f1']:.3f} → {out}")
    return 0


def cmd_train_classifier(args) -> int:
    from gliomics.stages.train_classifier import run_train_classifier

    params = _params(args)
    s = run_train_classifier(args.data or params.data.raw, args.manifest, args.splits, params.classifier_settings(),
                             out_dir=args.out, store_dir=args.store, checkpoint_dir=args.checkpoints,
                             reports_dir=args.reports, resume=args.resume, log_mlflow=not args.no_mlflow,
                             profile=params.profile, steps=args.steps)
    auc = _auc_text(s["best_val_roc_auc"])
    print(f"train-classifier: {s['epochs_run']} epochs ({params.profile} profile) in {s['seconds']:.0f} s; best "
          f"validation ROC AUC {auc} (epoch {s['best_epoch']}), accuracy {s['val_accuracy']:.3f} at threshold "
          f"{s['threshold']:.3f}; model: {args.out} and {s['model_uri']}")
    return 0


def cmd_calibrate_classifier(args) -> int:
    from gliomics.stages.train_classifier import run_calibrate_classifier

    params = _params(args)
    settings = params.classifier_settings()
    s = run_calibrate_classifier(args.model, args.splits, args.data or params.data.raw, val_fold=settings.val_fold,
                                 out_dir=args.out, setting=settings.threshold)
    print(f"calibrate-classifier: threshold {s['previous_threshold']:.3f} -> {s['threshold']:.4f} on "
          f"{s['n_val_slices']} validation slices ({len(s['val_patients'])} patients): accuracy "
          f"{s['val_accuracy_at_default']:.3f} at 0.5, {s['val_accuracy']:.3f} at the new threshold → {s['out_dir']}")
    return 0


def cmd_segment(args) -> int:
    from gliomics.stages.segment import run_segment

    params = _with_tta(_params(args), args)
    gate = {"gate": args.gate, "gate_threshold": params.segment.gate_threshold} if args.gate else {}
    summary = run_segment(args.input, args.model, args.out, post=params.post.as_post(),
                          log_mlflow=not args.no_mlflow, profile=params.profile, **gate)
    print(f"segment: predicted masks for {summary.get('n_patients', '?')} patients with {summary['model_uri']} "
          f"→ {args.out}")
    return 0


def cmd_ensemble(args) -> int:
    from gliomics.training.export import pack_ensemble

    storage = pack_ensemble(args.model, args.out, half=not args.float32_weights)
    print(f"ensemble: the mean of {len(args.model)} segmenters → {args.out} ({storage['folder_bytes'] / 1e6:.1f} MB"
          f"{', 16-bit weights' if not args.float32_weights else ''}); use it like one model: --model {args.out}")
    return 0


def cmd_register(args) -> int:
    from dataclasses import replace

    from gliomics.stages.register import run_register

    params = _params(args)
    register = replace(params.register, promote=args.promote) if args.promote else params.register
    s = run_register(args.best, args.data or params.data.raw, args.splits, args.out, params=register,
                     post=params.post.as_post(), profile=params.profile, mirror_dir=args.registry_dir)
    print(f"register: {s['model_uri']} (study {s['study_name']}, trial {s['trial_number']}): validation 3D Dice "
          f"{s['val_dice_3d']:.3f}, internal test {s['test_mean_dice_3d']:.3f} on {s['n_test_patients']} patients")
    if s["promoted"]:
        print(f"register: now models:/{s['name']}@champion ({s['promotion_reason']})")
    else:
        print(f"register: not promoted: {s['promotion_reason']}")
    print(f"register: model card {Path(args.out) / 'model_card.md'}")
    return 0


def cmd_promote(args) -> int:
    from gliomics.registry.promote import promote

    result = promote(args.name, args.version, alias=args.alias, metric=args.metric, force=args.force,
                     mirror_dir=args.registry_dir)
    previous = f" (was version {result['previous_version']})" if result["previous_version"] else ""
    print(f"promote: models:/{result['name']}@{result['alias']} is version {result['version']}{previous}: "
          f"{result['reason']}")
    return 0


def cmd_models(args) -> int:
    from gliomics.registry.listing import format_table, list_versions, registered_names

    names = [args.name] if args.name else registered_names()
    rows = [row for name in names for row in list_versions(name)]
    if not rows:
        what = f"no versions of {args.name}" if args.name else "no registered models"
        print(f"models: {what} yet; `gliomics register` adds one")
        return 0
    print(format_table(rows))
    return 0


def cmd_report(args) -> int:
    from gliomics.stages.report import run_report

    params = _params(args)
    summary = run_report(args.reports, args.out, params, data_dir=args.data, overlays=not args.no_overlays,
                         log_mlflow=not args.no_mlflow, profile=params.profile)
    missing = [name for name, ok in summary["sections"].items() if not ok]
    print(f"report: {len(summary['sections'])} sections, {summary['n_images']} images embedded "
          f"({summary['bytes'] / 1e6:.1f} MB) in {summary['seconds']:.0f} s → {args.out}"
          + (f"; not available yet: {', '.join(missing)}" if missing else ""))
    return 0


def cmd_analyze(args) -> int:
    from gliomics.stages.analyze import is_batch_input, run_analyze, run_analyze_batch

    params = _with_tta(_params(args), args)
    options = dict(model_uri=args.model, gate_uri=args.gate, reference_csv=args.reference,
                   associations=args.associations, clinical_csv=args.clinical, splits_csv=args.splits)
    if is_batch_input(args.input):
        summary = run_analyze_batch(args.input, args.out, params, **options)
        print(f"analyze: {summary['n_patients'] - summary['n_failed']} of {summary['n_patients']} patients analysed "
              f"in {summary['seconds']:.0f} s → {args.out}/index.html, {args.out}/index.csv, {args.out}/<folder>/")
        print(f"analyze: model {summary['model_uri']}: {summary['model_reason']}")
        if summary.get("reference_note"):
            print(f"analyze: warning: {summary['reference_note']}", file=sys.stderr)
        if summary["n_failed"]:
            print(f"analyze: {summary['n_failed']} failed ({', '.join(summary['failed'][:5])}"
                  f"{' …' if summary['n_failed'] > 5 else ''}); why: {args.out}/index.html", file=sys.stderr)
            return 1
        return 0
    summary = run_analyze(args.input, args.out, params, **options)
    print(f"analyze: {summary['folder']}: {summary['n_slices']} slices, tumour on {summary['n_tumour_slices']} "
          f"({summary['tumour_voxels']} voxels) in {summary['seconds']:.1f} s → {args.out}/report.html, "
          "features.csv, masks/")
    print(f"analyze: model {summary['model_uri']}: {summary['model_reason']}")
    if summary.get("reference_note"):
        print(f"analyze: warning: {summary['reference_note']}", file=sys.stderr)
    return 0


def cmd_summary(args) -> int:
    from gliomics.stages.summary import print_summary

    print_summary(Path(args.reports))
    return 0


def cmd_ui(args) -> int:
    import os

    from gliomics.tracking import artifact_root, default_tracking_uri, relocate, tracking_uri, user_tracking_uri

    if user_tracking_uri() is None:
        relocate()  # a moved or copied project: its store's artifact locations point into this folder first
    uri = tracking_uri()
    url = f"http://{args.host}:{args.port}"
    local = args.host in ("127.0.0.1", "localhost", "::1")
    reach = ("this machine only; --host 0.0.0.0 to share it" if local
             else "reachable from other machines: anyone who can reach this port sees every run")
    print(f"ui: MLflow UI for {uri} at {url} (bound to {args.host}: {reach}; Ctrl-C stops it)", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", str(args.workers)]
    if uri == default_tracking_uri():
        command += ["--default-artifact-root", artifact_root()]
    # MLflow 3 otherwise starts ~8 background job workers we never use.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # Become the MLflow process, so that Ctrl-C and signals reach it directly.
    os.execv(sys.executable, command)
    return 0  # not reached


def _add_data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="cohort folder (default: data.raw from params)")


def _add_cohort_args(p: argparse.ArgumentParser, *, manifest: bool = True, splits: bool = True) -> None:
    """--data, and where the stage reads them, --manifest and --splits (the outputs of validate and split)."""
    _add_data_arg(p)
    if manifest:
        p.add_argument("--manifest", default=str(layout.MANIFEST), help="default: %(default)s")
    if splits:
        p.add_argument("--splits", default=str(layout.SPLITS), help="default: %(default)s")


def _add_no_mlflow_arg(p: argparse.ArgumentParser, what: str = "a run") -> None:
    p.add_argument("--no-mlflow", action="store_true", help=f"do not log {what} to MLflow")


def _add_tta_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test-time augmentation: average each slice's prediction with its left-right mirror's "
                   "(default: post.tta in params)")


def _with_tta(params, args):
    """``params`` with --tta/--no-tta applied to ``post.tta`` (unchanged without either)."""
    import dataclasses

    if getattr(args, "tta", None) is None:
        return params
    return dataclasses.replace(params, post=dataclasses.replace(params.post, tta=bool(args.tta)))


def _add_promotion_args(p: argparse.ArgumentParser, registry_dir: str) -> None:
    """--promote and --registry-dir of the register commands."""
    p.add_argument("--promote", choices=["never", "if_better", "always"], help="override register.promote")
    p.add_argument("--registry-dir", default=registry_dir, help="champion mirror files (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from gliomics.registry import CHAMPION, MIRROR_DIR, SEGMENTER, champion_uri

    parser = argparse.ArgumentParser(
        prog="gliomics",
        description="Lower-grade glioma radiogenomics: validated data, patient-level splits, "
        "MLflow-tracked stages (run them all with `dvc repro`).",
    )
    parser.add_argument("--version", action="version", version=f"gliomics {__version__}")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    # --params and --debug are accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=argparse.SUPPRESS, help="parameters file (default: params.yaml)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)  # noqa: E731

    p = sub.add_parser("synth", help="write the synthetic demo cohort in the Kaggle layout",
                       description="Write a deterministic synthetic cohort (Kaggle kaggle_3m layout) to OUT.")
    p.add_argument("--out", required=True, help="folder to create (e.g. data/raw)")
    p.add_argument("--seed", type=int, help="override synth.seed")
    p.add_argument("--patients", type=int, help="override synth.n_patients")
    p.add_argument("--force", action="store_true", help="replace OUT if it is not empty")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("ingest", help="copy a real Kaggle download into data/raw and version it with DVC",
                       description="Copy a cohort in the Kaggle layout (the download as is: kaggle_3m or the "
                       "folder above it) into DEST, replacing it atomically, then `dvc add DEST`.")
    p.add_argument("source", help="the Kaggle download (…/kaggle_3m or a folder containing it)")
    p.add_argument("--dest", default=str(layout.RAW), help="default: %(default)s")
    _add_force_arg(p)
    p.add_argument("--no-dvc", action="store_true", help="do not run `dvc add` afterwards")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="validate a cohort with Great Expectations; write the slice manifest",
                       description="Validate data.csv and every slice of a cohort in the Kaggle layout; write "
                       "manifest.csv, gx_results.json, summary.json and GX Data Docs to OUT.")
    _add_data_arg(p)
    p.add_argument("--out", help="default: reports/validate for the pipeline's cohort (data.raw), "
                   "reports/validate-<folder name> for any other --data")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("split", help="patient-level internal test set and k folds",
                       description="Split the validated cohort by patient into a test set and k folds, "
                       "stratified by histology (and institution where counts allow).")
    _add_cohort_args(p, splits=False)
    p.add_argument("--out", default=str(layout.SPLIT), help="default: %(default)s")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("features", help="shape and GLCM texture features per patient",
                       description="Compute the 10 shape + 4 GLCM thesis features (largest tumour slice; BEVR "
                       "in 3D), their all-slice means and 3D descriptors, one row per patient.")
    _add_data_arg(p)
    p.add_argument("--masks", choices=["truth", "predicted"], default="truth",
                   help="which masks: the cohort's own (truth) or a `gliomics segment` output folder (predicted)")
    p.add_argument("--out", help="CSV to write (default: reports/features/features_<masks>.csv)")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("associate", help="feature x genomic cluster association tests, ROC AUC, plots",
                       description="Exact Fisher-Freeman-Halton tests (median split), Kruskal-Wallis, one-vs-rest "
                       "2x2 tests, Bonferroni and FDR, ROC AUC with bootstrap CIs, per histological type.")
    p.add_argument("--features", default=str(layout.features_table("truth")), help="default: %(default)s")
    p.add_argument("--clinical", help="data.csv (default: data.raw/data.csv from params)")
    p.add_argument("--out", default=str(layout.associations("truth")), help="default: %(default)s")
    p.add_argument("--metrics", help="also write the headline numbers to this JSON file (for `dvc metrics`)")
    _add_force_arg(p)
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_associate)

    p = sub.add_parser("train", help="train a segmenter (settings: train.<profile> in params)",
                       description="Train a segmenter on the split's training folds, validate on train.val_fold "
                       "(never the test patients), checkpoint every epoch, log everything to MLflow.")
    _add_cohort_args(p)
    p.add_argument("--out", help="local MLflow model folder (default: models/segmenter, "
                   "models/segmenter-fold<k> with --fold, models/segmenter-final with --final)")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--steps", type=int, help="train exactly this many steps (a multiple of steps_per_epoch) instead "
                   "of epochs or budget_minutes: replays a budgeted run, whose total steps MLflow logged")
    p.add_argument("--checkpoints", help="checkpoint folder (default: checkpoints/train, checkpoints/train-fold<k>)")
    p.add_argument("--reports", help="reports folder (default: reports/train, reports/train-fold<k>)")
    p.add_argument("--seed", type=int, help="random seed instead of train.<profile>.seed (another member of an "
                   "ensemble of one recipe; default folders get -seed<s>, e.g. models/segmenter-final-seed1)")
    fit = p.add_mutually_exclusive_group()
    fit.add_argument("--fold", type=int, help="validate on this cross-validation fold instead of train.val_fold "
                     "(train one model per fold for an ensemble: evaluate/segment/analyze --model A B ...)")
    fit.add_argument("--final", action="store_true", help="final fit, once the recipe is chosen: train on every "
                     "cross-validation fold (never the test part) and keep the last epoch; train.val_fold is "
                     "scored for progress only (default folders: models/segmenter-final, ...-final)")
    _add_no_mlflow_arg(p)
    _add_force_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="Optuna search of the segmenter or slice classifier (settings: "
                       "tune.<profile> / tune_classifier.<profile> in params)",
                       description="Multi-fidelity Optuna search (seeded TPE with pruning on the per-epoch "
                       "validation metric, or an exhaustive grid), the best configurations retrained at full "
                       "fidelity; every trial a nested MLflow run. Re-running continues the same study.")
    p.add_argument("--task", choices=["segmenter", "classifier"], default="segmenter",
                   help="segmenter (tune.<profile>, metric val_dice_3d) or classifier (tune_classifier.<profile>, "
                   "val_roc_auc) (default: %(default)s)")
    _add_cohort_args(p)
    p.add_argument("--storage", help="Optuna RDB storage URL (default: sqlite:///<project>/optuna/optuna.db)")
    p.add_argument("--study", help="study name (default: tune.study_name plus a hash of data and settings)")
    p.add_argument("--n-trials", type=int, help="override tune.n_trials (finished low-fidelity trials)")
    p.add_argument("--timeout", type=float, help="override tune.timeout (seconds of trials; 0: none)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the study (default: 1)")
    p.add_argument("--reports", help="default: reports/tune (segmenter), reports/classifier/tune (classifier)")
    p.add_argument("--out", help="the best model's local MLflow folder (default: models/tuned, "
                   "models/tuned_classifier)")
    _add_no_mlflow_arg(p, "runs")
    # Set by the coordinator for its worker processes (or by hand to join a search from another machine).
    p.add_argument("--worker", action="store_true", help="run trials of an existing search only (no reports)")
    p.add_argument("--phase", default="low", help=argparse.SUPPRESS)
    p.add_argument("--worker-trials", type=int, help=argparse.SUPPRESS)
    p.add_argument("--parent-run-id", help=argparse.SUPPRESS)
    p.add_argument("--store-root", default=str(layout.ARRAYS_TUNE), help=argparse.SUPPRESS)
    p.add_argument("--work-dir", default=str(layout.TUNE_CHECKPOINTS), help=argparse.SUPPRESS)
    _add_force_arg(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("evaluate", help="per-patient 3D Dice of a segmenter (or slice scores of a classifier)",
                       description="Segment a cohort in the Kaggle layout (masks required) with a model and "
                       "score it: OUT/per_patient.csv and OUT/summary.json. With --task classifier: classify "
                       "every slice: OUT/per_slice.csv, OUT/summary.json, confusion matrix and ROC plots.")
    p.add_argument("--task", choices=["segmenter", "classifier"], default="segmenter",
                   help="what the model is (default: %(default)s)")
    _add_data_arg(p)
    p.add_argument("--model", required=True, nargs="+",
                   help="MLflow model URI (runs:/…, models:/name/N, models:/name@alias) or a local model folder; "
                   "several segmenters: their ensemble (mean probability)")
    _add_tta_arg(p)
    p.add_argument("--out", help="default: reports/evaluate (segmenter), reports/classifier/evaluate (classifier)")
    p.add_argument("--gate", help="segmenter only: slice classifier URI; slices it calls tumour-free are not "
                   "segmented (empty masks; threshold segment.gate_threshold)")
    p.add_argument("--from-segmenter", action="store_true",
                   help="classifier task: --model is a segmenter; a slice's score is its largest tumour probability")
    p.add_argument("--threshold", type=float,
                   help="classifier task: decision threshold (default: the model's own; 0.5 for a segmenter)")
    p.add_argument("--split", help="splits.csv: evaluate only the patients of --part")
    p.add_argument("--part", default="test", help="part of --split to evaluate (default: %(default)s)")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("segment", help="write predicted masks for a cohort",
                       description="Write a copy of a Kaggle-layout folder with predicted <folder>_<n>_mask.tif "
                       "(0/255), ready for `gliomics features --masks predicted`.")
    p.add_argument("--input", required=True, help="cohort folder in the Kaggle layout (masks not needed)")
    p.add_argument("--model", default=[champion_uri(SEGMENTER)], nargs="+",
                   help="MLflow model URI or a local model folder (default: %(default)s, set by `gliomics promote`); "
                   "several: their ensemble (mean probability)")
    _add_tta_arg(p)
    p.add_argument("--out", required=True, help="folder to write")
    _add_force_arg(p)
    p.add_argument("--gate", help="slice classifier URI: slices it calls tumour-free are not segmented "
                   "(empty masks; threshold segment.gate_threshold). Off by default")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("ensemble", help="pack several segmenters into one model that averages them",
                       description="Write one MLflow model folder whose model outputs the mean probability of the "
                       "given segmenters (e.g. the fold models of `train --fold k`, or final fits with different "
                       "--seed): ship it and use it like a single segmenter. The members must share "
                       "their preprocessing; each member's source and training metadata are recorded.")
    p.add_argument("--model", required=True, nargs="+", help="two or more MLflow model URIs or local model folders")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--float32-weights", action="store_true",
                   help="store the weights in 32 bits (default: 16 bits; computation is float32 either way)")
    _add_force_arg(p)
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("train-classifier", help="train the tumour / no-tumour slice classifier "
                       "(settings: classifier.<profile>)",
                       description="Train a ResNet slice classifier on the split's training folds, select on the "
                       "validation ROC AUC of classifier.val_fold (never the test patients), checkpoint every "
                       "epoch, log everything to MLflow (experiment train_classifier).")
    _add_cohort_args(p)
    p.add_argument("--out", default=str(layout.CLASSIFIER), help="local MLflow model folder (default: %(default)s)")
    _add_force_arg(p)
    p.add_argument("--store", default=str(layout.ARRAYS), help="array store cache (default: %(default)s)")
    p.add_argument("--reports", default=str(layout.CLASSIFIER_TRAIN), help="default: %(default)s")
    p.add_argument("--checkpoints", default=str(layout.CLASSIFIER_CHECKPOINTS), help="default: %(default)s")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--steps", type=int, help="train exactly this many steps (a multiple of steps_per_epoch) instead "
                   "of epochs or budget_minutes: replays a budgeted run, whose total steps MLflow logged")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("register-classifier", help="register the trained slice classifier with its test scores",
                       description="Register the model of train-classifier (MODEL_JSON) as a new version of "
                       "gliomics-slice-classifier with the scores of `evaluate --task classifier` on the test "
                       "patients, write a model card, and promote it to @champion per register.promote.")
    p.add_argument("--model-json", default=str(layout.CLASSIFIER_TRAIN / "model.json"), help="default: %(default)s")
    p.add_argument("--evaluation", default=str(layout.CLASSIFIER_EVALUATE / "summary.json"),
                   help="default: %(default)s")
    p.add_argument("--data", help="cohort folder, for the data hash (default: data.raw from params)")
    p.add_argument("--out", default=str(layout.CLASSIFIER_REGISTER), help="default: %(default)s")
    _add_promotion_args(p, MIRROR_DIR)
    p.set_defaults(func=cmd_register_classifier)

    p = sub.add_parser("calibrate-classifier", help="re-choose a trained slice classifier's decision threshold "
                       "on the validation fold (no retraining)",
                       description="Predict the validation patients (fold classifier.val_fold of SPLITS; never the "
                       "test part) with the model, choose the threshold per classifier.threshold (validation: the "
                       "most accurate one), and write a copy of the model folder that carries it.")
    p.add_argument("--model", default=str(layout.CLASSIFIER), help="local MLflow model folder (default: %(default)s)")
    _add_cohort_args(p, manifest=False)
    p.add_argument("--out", help="default: MODEL-calibrated")
    _add_force_arg(p)
    p.set_defaults(func=cmd_calibrate_classifier)

    p = sub.add_parser("register", help="score the tuned segmenter on the test patients and register it",
                       description="Evaluate best.json's model on the split's test patients, register it as a new "
                       f"version of {SEGMENTER} with provenance tags and a model card, then apply "
                       "register.promote (never, if_better, always).")
    p.add_argument("--best", default=str(layout.BEST), help="written by `gliomics tune` (default: %(default)s)")
    _add_cohort_args(p, manifest=False)
    p.add_argument("--out", default=str(layout.REGISTER), help="default: %(default)s")
    _add_promotion_args(p, MIRROR_DIR)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("promote", help="give a registered version the alias the pipeline uses (champion)",
                       description="Set an MLflow alias on a model version. Refuses to replace a holder with a "
                       "better test score on the same data (DVC data hash) unless --force.")
    p.add_argument("--version", required=True, type=int, help="version number (see `gliomics models`)")
    p.add_argument("--alias", default=CHAMPION, help="default: %(default)s")
    p.add_argument("--name", default=SEGMENTER, help="registered model (default: %(default)s)")
    p.add_argument("--metric", help="test metric tag to compare (default: test_mean_dice_3d for the segmenter, "
                   "test_roc_auc for the slice classifier)")
    p.add_argument("--force", action="store_true", help="promote even if the current holder scores better")
    p.add_argument("--registry-dir", default=MIRROR_DIR, help="champion mirror files (default: %(default)s)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("models", help="list registered versions, their aliases and metrics",
                       description="A table of the registered model versions: aliases, validation and test "
                       "scores, data hash, creation time, run.")
    p.add_argument("--name", help="only this registered model (default: all)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("report", help="the study report: one self-contained HTML file",
                       description="Build reports/index.html from what the stages wrote (cohort, segmentation, "
                       "classifier, radiogenomics, truth vs predicted masks, methods); figures embedded, "
                       "sections not yet available say which command fills them.")
    p.add_argument("--out", default=str(layout.STUDY_REPORT), help="default: %(default)s")
    p.add_argument("--reports", default="reports", help="folder of the stage reports (default: %(default)s)")
    _add_data_arg(p)
    p.add_argument("--no-overlays", action="store_true",
                   help="skip the worst test patients' overlay strips (no model is loaded)")
    _add_no_mlflow_arg(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("analyze", help="new patients: segment, features, report",
                       description="Segment one patient's folder of <folder>_<n>.tif slices with the champion, "
                       "extract the features and write OUT/report.html, OUT/features.csv and OUT/masks/. "
                       "Given a folder of patient folders (or a text file listing them, one per line), do so "
                       "for each into OUT/<folder>/ and write OUT/index.html and OUT/index.csv, one row per "
                       "patient; a patient that fails is reported and the others go on (exit 1 if any failed).")
    p.add_argument("--input", required=True,
                   help="one patient's folder of <folder>_<n>.tif slices, a folder of such folders, or a list file")
    p.add_argument("--out", required=True, help="folder to write (a patient's folder is replaced only when "
                   "everything for that patient succeeded)")
    p.add_argument("--model", nargs="+",
                   help="segmenter: MLflow model URI or local model folder, several for an ensemble (default: "
                   "the registry's champion if it was trained on real data, else the shipped "
                   "models/pretrained/lgg-segmenter)")
    _add_tta_arg(p)
    p.add_argument("--gate", help="slice classifier URI: slices it calls tumour-free get empty masks")
    p.add_argument("--reference", default=str(layout.features_table("truth")),
                   help="reference cohort's features table (default: %(default)s)")
    p.add_argument("--associations", default=str(layout.associations("truth")),
                   help="the cohort's association results (default: %(default)s)")
    p.add_argument("--clinical", help="the reference cohort's data.csv (default: data.raw/data.csv from params)")
    p.add_argument("--splits", default=str(layout.SPLITS),
                   help="the reference keeps this split's training/validation patients, the data the model was "
                        "developed on (default: %(default)s; all patients of --reference when the file is absent)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("summary", help="print what the pipeline produced and how to look at it",
                       description="Summarise the reports of the stages that have run.")
    p.add_argument("--reports", default="reports", help="default: %(default)s")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("ui", help="start the MLflow UI on the project's store",
                       description="Start `mlflow ui` on the project's tracking store and print its URL.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=5000, help="default: %(default)s")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default: %(default)s; one user needs one, and it starts fastest)")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_outputs(args)
        status = args.func(args)
        if status == 0:
            mark_outputs(args)
        return status
    except ValidationFailed as exc:
        for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
            print(f"error: {problem}", file=sys.stderr)
        if len(exc.problems) > MAX_PROBLEMS_SHOWN:
            print(f"error: … and {len(exc.problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)
        print(f"gliomics {args.command}: {exc.summary}", file=sys.stderr)
        return 1
    except GliomicsError as exc:
        print(f"gliomics {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gliomics {args.command}: interrupted (a stage writes its outputs atomically: nothing half-written "
              "is left; `--resume` continues a training)", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        # An unwritable folder, a full disk, a file that vanished, a value a library refused: one line naming
        # the file; the traceback only when asked for.
        if getattr(args, "debug", False):
            raise
        print(f"gliomics {args.command}: error: {_describe_os_error(exc)} (--debug shows the traceback)",
              file=sys.stderr)
        return 2


def _describe_os_error(exc: Exception) -> str:
    """``path: reason`` for an OSError (both paths of a rename), the message otherwise; a missing file that a
    pipeline stage writes also says which stage to run."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [str(n) for n in (exc.filename, exc.filename2) if n]
        hint = _stage_hint(names[0]) if isinstance(exc, FileNotFoundError) and names else ""
        return (f"{' -> '.join(names)}: {exc.strerror}" if names else exc.strerror) + hint
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _stage_hint(missing: str) -> str:
    """``"; written by the DVC stage 'split': run `dvc repro split`"`` when ``missing`` (or a folder above it)
    is an output of a stage in ./dvc.yaml; ``""`` otherwise."""
    try:
        import yaml

        stages = yaml.safe_load(Path("dvc.yaml").read_text()).get("stages", {})
        target = Path(missing).resolve()
        for name, stage in stages.items():
            for out in [*stage.get("outs", []), *stage.get("metrics", [])]:
                path = Path(next(iter(out)) if isinstance(out, dict) else str(out)).resolve()
                if target == path or path in target.parents:
                    return f"; written by the DVC stage '{name}': run `dvc repro {name}`"
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return ""


if __name__ == "__main__":
    sys.exit(main())
