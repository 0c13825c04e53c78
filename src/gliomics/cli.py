"""The ``gliomics`` command: one subcommand per pipeline stage.

Thin by design: parse arguments, call a stage function, report. Heavy
libraries (TensorFlow, MLflow, Great Expectations) are imported inside the
stage functions, so ``gliomics --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gliomics import __version__
from gliomics.errors import GliomicsError, ValidationFailed

#: Problems printed before the rest are summarised as a count.
MAX_PROBLEMS_SHOWN = 50


def _params(args):
    from gliomics.config import load_params

    return load_params(args.params)


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


def cmd_validate(args) -> int:
    from gliomics.stages.validate import validate_cohort

    params = _params(args)
    data = args.data or params.data.raw
    summary = validate_cohort(data, args.out, log_mlflow=not args.no_mlflow, profile=params.profile)
    for warning in summary.get("warnings", [])[:MAX_PROBLEMS_SHOWN]:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"validate: {summary['n_patients']} patients, {summary['n_slices']} slices "
        f"({summary['n_tumour_slices']} with tumour) passed all expectations in {summary['seconds']} s; "
        f"manifest: {Path(args.out) / 'manifest.csv'}"
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
    out = args.out or f"reports/features/features_{args.masks}.csv"
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
                            profile=params.profile, plots=not args.no_plots)
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


def cmd_train(args) -> int:
    from gliomics.stages.train import run_train

    params = _params(args)
    summary = run_train(args.data or params.data.raw, args.manifest, args.splits, params.train_settings(),
                        out_dir=args.out, resume=args.resume, log_mlflow=not args.no_mlflow, profile=params.profile)
    print(f"train: {summary['epochs_run']} epochs ({params.profile} profile) in {summary['seconds']:.0f} s; best "
          f"validation per-patient 3D Dice {summary['best_val_dice_3d']:.3f}; model: {args.out} and "
          f"{summary['model_uri']}")
    return 0


def cmd_evaluate(args) -> int:
    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.split import patients_of_part

    params = _params(args)
    patients = patients_of_part(args.split, args.part) if args.split else None
    summary = run_evaluate(args.data or params.data.raw, args.model, args.out, patients=patients,
                           post=params.post.as_post(), log_mlflow=not args.no_mlflow, profile=params.profile)
    print(f"evaluate: {summary['n_patients']} patients, mean per-patient 3D Dice {summary['mean_dice_3d']:.3f} "
          f"(median {summary['median_dice_3d']:.3f}) → {args.out}")
    return 0


def cmd_segment(args) -> int:
    from gliomics.stages.segment import run_segment

    params = _params(args)
    summary = run_segment(args.input, args.model, args.out, post=params.post.as_post(),
                          log_mlflow=not args.no_mlflow, profile=params.profile)
    print(f"segment: predicted masks for {summary.get('n_patients', '?')} patients → {args.out}")
    return 0


def cmd_summary(args) -> int:
    from gliomics.stages.summary import print_summary

    print_summary(Path(args.reports))
    return 0


def cmd_ui(args) -> int:
    import os

    from gliomics.tracking import artifact_root, default_tracking_uri, tracking_uri

    uri = tracking_uri()
    url = f"http://{args.host}:{args.port}"
    print(f"ui: MLflow UI for {uri} at {url} (bound to {args.host}; Ctrl-C stops it)", flush=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", str(args.workers)]
    if uri == default_tracking_uri():
        command += ["--default-artifact-root", artifact_root()]
    # Become the MLflow process, so that Ctrl-C and signals reach it directly.
    os.execv(sys.executable, command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gliomics",
        description="Lower-grade glioma radiogenomics: validated data, patient-level splits, "
        "MLflow-tracked stages (run them all with `dvc repro`).",
    )
    parser.add_argument("--version", action="version", version=f"gliomics {__version__}")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
    # --params is accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=argparse.SUPPRESS, help="parameters file (default: params.yaml)")
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
    p.add_argument("--dest", default="data/raw", help="default: %(default)s")
    p.add_argument("--no-dvc", action="store_true", help="do not run `dvc add` afterwards")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="validate a cohort with Great Expectations; write the slice manifest",
                       description="Validate data.csv and every slice of a cohort in the Kaggle layout; write "
                       "manifest.csv, gx_results.json, summary.json and GX Data Docs to OUT.")
    p.add_argument("--data", help="cohort folder (default: data.raw from params)")
    p.add_argument("--out", default="reports/validate", help="default: %(default)s")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("split", help="patient-level internal test set and k folds",
                       description="Split the validated cohort by patient into a test set and k folds, "
                       "stratified by histology (and institution where counts allow).")
    p.add_argument("--data", help="cohort folder (default: data.raw from params)")
    p.add_argument("--manifest", default="reports/validate/manifest.csv", help="default: %(default)s")
    p.add_argument("--out", default="reports/split", help="default: %(default)s")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("features", help="shape and GLCM texture features per patient",
                       description="Compute the 10 shape + 4 GLCM thesis features (largest tumour slice; BEVR "
                       "in 3D), their all-slice means and 3D descriptors, one row per patient.")
    p.add_argument("--data", help="cohort folder (default: data.raw from params)")
    p.add_argument("--masks", choices=["truth", "predicted"], default="truth",
                   help="which masks: the cohort's own (truth) or a `gliomics segment` output folder (predicted)")
    p.add_argument("--out", help="CSV to write (default: reports/features/features_<masks>.csv)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("associate", help="feature x genomic cluster association tests, ROC AUC, plots",
                       description="Exact Fisher-Freeman-Halton tests (median split), Kruskal-Wallis, one-vs-rest "
                       "2x2 tests, Bonferroni and FDR, ROC AUC with bootstrap CIs, per histological type.")
    p.add_argument("--features", default="reports/features/features_truth.csv", help="default: %(default)s")
    p.add_argument("--clinical", help="data.csv (default: data.raw/data.csv from params)")
    p.add_argument("--out", default="reports/associations/truth", help="default: %(default)s")
    p.add_argument("--metrics", help="also write the headline numbers to this JSON file (for `dvc metrics`)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_associate)

    p = sub.add_parser("train", help="train a segmenter (settings: train.<profile> in params)",
                       description="Train a segmenter on the split's training folds, validate on train.val_fold "
                       "(never the test patients), checkpoint every epoch, log everything to MLflow.")
    p.add_argument("--data", help="cohort folder (default: data.raw from params)")
    p.add_argument("--manifest", default="reports/validate/manifest.csv", help="default: %(default)s")
    p.add_argument("--splits", default="reports/split/splits.csv", help="default: %(default)s")
    p.add_argument("--out", default="models/segmenter", help="local MLflow model folder (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch checkpoint")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="per-patient 3D Dice of a segmenter on a cohort",
                       description="Segment a cohort in the Kaggle layout (masks required) with a model and "
                       "score it: OUT/per_patient.csv and OUT/summary.json.")
    p.add_argument("--data", help="cohort folder (default: data.raw from params)")
    p.add_argument("--model", required=True,
                   help="MLflow model URI (runs:/…, models:/name/N, models:/name@alias) or a local model folder")
    p.add_argument("--out", default="reports/evaluate", help="default: %(default)s")
    p.add_argument("--split", help="splits.csv: evaluate only the patients of --part")
    p.add_argument("--part", default="test", help="part of --split to evaluate (default: %(default)s)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("segment", help="write predicted masks for a cohort",
                       description="Write a copy of a Kaggle-layout folder with predicted <folder>_<n>_mask.tif "
                       "(0/255), ready for `gliomics features --masks predicted`.")
    p.add_argument("--input", required=True, help="cohort folder in the Kaggle layout (masks not needed)")
    p.add_argument("--model", required=True, help="MLflow model URI or a local model folder")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--no-mlflow", action="store_true", help="do not log a run to MLflow")
    p.set_defaults(func=cmd_segment)

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
        return args.func(args)
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


if __name__ == "__main__":
    sys.exit(main())
