"""The shipped segmenter: 16-bit storage, flip TTA and missing sequences, measured on the internal test patients.

Run in a project clone holding the real cohort and its split (after `gliomics train` of the recipe to ship):

    python benchmarks/bench_shipped_segmenter.py --model models/segmenter \
        --ship ../main/models/pretrained/lgg-segmenter --out benchmarks/results/shipped_segmenter_<date>

or, for the final fit on every cross-validation fold (`gliomics train --final`), ``--model models/segmenter-final
--train-reports reports/train-final`` (the validation-fold steps below are then skipped: fold 0 is trained on).
Several ``--model`` folders (with one ``--train-reports`` and ``--train-runs`` id each): their ensemble, packed
into one model folder (:func:`gliomics.training.export.pack_ensemble`) and scored as one model.

1. exports the trained model folder (or packs the members) to ``--ship``: float32 compute, weights stored in
   16 bits (:func:`gliomics.training.export.export_model`);
2. `gliomics evaluate` on the split's test patients: the model as trained (bf16 compute where it was trained
   so), a float32 export with float32 weights (to isolate the 16-bit rounding), the shipped copy, the
   shipped copy with flip TTA (each an MLflow run of experiment ``evaluate``);
3. the same test patients with pre- and post-contrast replaced by FLAIR on every slice (how the dataset fills
   missing sequences), without and with TTA;
4. `gliomics analyze` of one test patient with the shipped model, without and with TTA (wall seconds);

and writes ``summary.json`` and ``per_patient.csv`` (one column per configuration) to ``--out``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (LICENCE, cpu_description, flair_only_copy, project_out_dir, run_logged,  # noqa: E402
                     segmenter_as_slice_classifier, ship_copy, shipping_parser,
                     training_run)

def write_card(ship: Path, summary: dict, trainings: list[dict], merged, data_hash: str) -> Path:
    """``ship/README.md``: what the shipped segmenter is, how it was trained and scored, how to train it again.
    ``trainings``: one per member (one for a single model, several for an ensemble of one recipe)."""
    from gliomics.io import write_text

    train = trainings[0]
    p = train["params"]
    m = dict(train["metrics"])
    m.setdefault("total_steps", int(m["epochs_run"]) * int(p.get("train.steps_per_epoch", 0)))  # older metrics.json
    configs = summary["configs"]
    final = bool(m.get("final_fit"))
    seeds = [str(t["params"].get("train.seed", "?")) for t in trainings]
    several = len(trainings) > 1
    if final:  # gliomics train --final: every cross-validation fold trains, the last epoch is the model
        patients = (f"""{m["n_train_patients"]} training patients (all five cross-validation folds: the recipe
  was chosen on fold 0 before, and this final fit adds those patients), {summary["n_test_patients"]} internal test
  patients never used for training or selection. No patient is left to select an epoch: the last one
  ({m["epochs_run"]}, at the end of the cosine schedule) is the model.""")
    else:
        patients = (f"""{m["n_train_patients"]} training patients (folds 1-4), {m["n_val_patients"]}
  validation patients (fold 0: selects the epoch), {summary["n_test_patients"]} internal test patients never
  used for training or selection. The best epoch ({m["best_epoch"]}) by validation per-patient 3D Dice
  {m["best_val_dice_3d"]:.3f}.""")
    base_folder = "models/segmenter-final" if final else "models/segmenter"
    commands, folders = [], []
    for index, seed in enumerate(seeds):
        other_seed = several and index > 0
        commands.append(f"gliomics train {'--final ' if final else ''}--steps {m['total_steps']}"
                        f"{f' --seed {seed}' if other_seed else ''}")
        folders.append(f"{base_folder}{f'-seed{seed}' if other_seed else ''}")
    reports = [f.replace("models/segmenter", "reports/train") for f in folders]
    command = "\n".join(f"{c}   # train.cpu for exactly these steps{' (seed ' + s + ')' if several else ''}"
                         for c, s in zip(commands, seeds))
    replay = f"--model {' '.join(folders)} --train-reports {' '.join(reports)}"
    minutes = sum(t["metrics"]["train_seconds"] for t in trainings) / 60
    if several:
        what = (f"The mean probability of {len(trainings)} plain U-Nets (Buda et al. 2019 style), one recipe trained "
                f"with seeds {', '.join(seeds)}, packed into one model (`gliomics ensemble`)")
        member_line = (f"- Ensemble: {len(trainings)} members, identical recipe and data, seeds {', '.join(seeds)}; "
                       "the model outputs the mean of their probabilities (one forward pass each), as nnU-Net "
                       "averages its fold models.\n")
        runs = ", ".join(f"`{t['run_id']}` (seed {s})" for t, s in zip(trainings, seeds))
        mlflow_line = f"- MLflow: training runs {runs} (experiment `train` of the project where they were trained)."
    else:
        what = "A plain U-Net (Buda et al. 2019 style)"
        member_line = ""
        mlflow_line = f"- MLflow: training run `{train['run_id']}` (experiment `train` of the project where it was trained)."
    rows = "\n".join(f"| {r.patient} | {r.sequences} | {r.shipped:.3f} | {r.shipped_tta:.3f} | {r.flair_only:.3f} |"
                     for r in merged.rename(columns={"16bit": "shipped", "16bit_tta": "shipped_tta",
                                                     "16bit_flair_only": "flair_only"}).itertuples())
    text = f"""# lgg-segmenter: the segmenter shipped with gliomics

{what} that segments the FLAIR abnormality of lower-grade gliomas on
TCGA-LGG slices (pre-contrast, FLAIR, post-contrast; 256x256, resized to 128x128 for the model). An
MLflow model folder (tensorflow flavour, tf-keras): `gliomics analyze`, `segment` and `evaluate` take it with
`--model models/pretrained/lgg-segmenter`, and `analyze` uses it by default unless a champion trained on real
data is registered.

## Recipe
{member_line}- Model: `{p.get("train.model.arch", "?")}`, {p.get("train.model.base_filters", "?")} base filters, depth
  {p.get("train.model.depth", "?")}, {p.get("train.model.activation", "?")}, {p.get("train.model.pooling", "?")}
  pooling, batch-norm momentum {p.get("train.model.bn_momentum", "?")}; input {m["image_size"]} px.
- Training{" (each member)" if several else ""}: `train.cpu` of params.yaml, {m["epochs_run"]} epochs x {p.get("train.steps_per_epoch", "?")} steps x
  batch {p.get("train.batch_size", "?")} = {m["total_steps"]} steps, {m["total_steps"] * int(p.get("train.batch_size", 16)):,}
  training images; Adam {p.get("train.learning_rate", "?")} with cosine decay to 0; loss
  {p.get("train.loss", "?")}; half of each batch tumour slices; augmentation: flips, affine, grid distortion,
  brightness/contrast, and pre/post-contrast replaced by FLAIR on 25 % of slices (missing sequences);
  precision {m["precision"]} on this CPU ({", ".join(summary["machine"]["flags"])}), seed{"s" if several else ""}
  {", ".join(seeds)}. {minutes:.0f} min of training{" in all" if several else ""} ({m["seconds_per_image"]:.3f} s per
  training image{" for the first member" if several else ""}).
- Data: the 88-patient working copy of the dataset, DVC hash `{data_hash}`; patient-level split
  `reports/split/splits.csv` (seed 42): {patients}
{mlflow_line}
- Stored for shipping: float32 compute, weights rounded to float16 (`stored_weights` in the metadata;
  {summary["storage"]["folder_bytes"] / 1e6:.1f} MB). Largest per-patient 3D Dice change on the internal test
  patients: {summary["max_abs_dice_change_16bit_weights_only"]:.1e} from the 16-bit weights alone (against float32
  weights, both float32 compute), {summary["max_abs_dice_change_16bit"]:.1e} against the model as trained (bf16
  compute).

## Train it again
```bash
gliomics ingest /path/to/kaggle_3m && sed -i 's/^profile: demo/profile: cpu/' params.yaml
dvc repro split                      # validate + the patient-level split (seed 42)
{command}
```
Then `python benchmarks/bench_shipped_segmenter.py {replay} --ship models/pretrained/lgg-segmenter`
{"packs" if several else "exports"} and scores it as below{f" (the packing alone: `gliomics ensemble --model {' '.join(folders)} --out DIR`)" if several else ""}.

## Internal test patients ({summary["n_test_patients"]}, never seen in training or selection)
Per-patient 3D Dice after post-processing (threshold 0.5, holes filled, largest 3D component):
mean **{configs["16bit"]["mean_dice_3d"]:.3f}** (median {configs["16bit"]["median_dice_3d"]:.3f}); with flip
test-time augmentation (`--tta`) {configs["16bit_tta"]["mean_dice_3d"]:.3f} (median
{configs["16bit_tta"]["median_dice_3d"]:.3f}); with pre- and post-contrast replaced by FLAIR on every slice
{configs["16bit_flair_only"]["mean_dice_3d"]:.3f} (median {configs["16bit_flair_only"]["median_dice_3d"]:.3f}).
`benchmarks/results/` of the gliomics repository keeps the benchmark's files.

| patient | sequences | Dice | Dice, TTA | Dice, FLAIR only |
|---|---|---|---|---|
{rows}

## Limits
- Trained on {m["n_train_patients"]} patients of the TCGA-LGG collection (FLAIR-centred axial slices of five
  TCGA sites); other scanners, protocols or slice orientations are untested. A research tool, not a medical
  device.
- Load it with gliomics (`gliomics.models.inference.load_model`): the folder carries no pickled objects, and
  gliomics registers its custom objects by name (MLflow's own loader may ask for them).
- The 22 patients of the original 110 outside this copy are the project's independent test set.

## Licence
{LICENCE}
"""
    return write_text(ship / "README.md", text)


def evaluate(name: str, model, data: Path, out: Path, extra: list[str]) -> dict:
    target = out / name
    models = [str(model)] if isinstance(model, (str, Path)) else [str(m) for m in model]
    seconds = run_logged(["gliomics", "evaluate", "--data", str(data), "--model", *models, "--out", str(target),
                          *extra], out / f"{name}.log")
    summary = json.loads((target / "summary.json").read_text())
    summary["wall_seconds"] = round(seconds, 1)
    print(f"{name}: mean per-patient 3D Dice {summary['mean_dice_3d']:.4f} (median {summary['median_dice_3d']:.4f}) "
          f"in {seconds:.0f} s", flush=True)
    return summary


THRESHOLDS = (0.3, 0.4, 0.5)


def post_processing_ablation(model: str, data: Path, splits: str) -> dict:
    """Mean per-patient 3D Dice of the validation fold (0) and the test patients under each post-processing
    variant (probability threshold x largest 3D component kept or not) x flip TTA (off/on): the validation
    numbers choose, as nnU-Net chooses its post-processing on cross-validation; the test numbers only report."""
    import pandas as pd

    from gliomics.models.inference import AveragedSegmenter, load_model, predict_patient, segment_volume
    from gliomics.data.cohort_io import cohort_patients, read_images, read_masks
    from gliomics.training.metrics import dice_3d

    table = pd.read_csv(splits)
    model_, preprocessing, _ = load_model(model)
    variants = {}
    for part in ("fold0", "test"):
        patients = sorted(table.loc[table["part"] == part, "patient"].astype(str))
        root, by_folder = cohort_patients(data, need_masks=True, patients=patients)
        scores = {}
        for folder, folder_slices in by_folder.items():
            images = read_images(folder_slices, root)
            truth = read_masks(folder_slices, images.shape[1:3], root)
            for tta in (False, True):
                prob = predict_patient(AveragedSegmenter([model_], tta=tta), preprocessing, images)
                for threshold in THRESHOLDS:
                    for largest in (True, False):
                        pred = segment_volume(prob, preprocessing, {"largest_component": largest,
                                                                    "threshold": threshold})
                        key = f"tta={tta},threshold={threshold},largest_component={largest}"
                        scores.setdefault(key, []).append(dice_3d(truth, pred))
        variants[part] = {key: {"mean_dice_3d": float(np.mean(v)), "median_dice_3d": float(np.median(v)),
                                "min_dice_3d": float(np.min(v))} for key, v in scores.items()}
        print(f"post-processing on {part}: " + "; ".join(f"{k} {v['mean_dice_3d']:.4f}"
                                                          for k, v in variants[part].items()), flush=True)
    return variants


def main() -> int:
    parser = shipping_parser(__doc__.splitlines()[0], "segmenter", model="models/segmenter",
                             train_reports="reports/train", several=True)
    args = parser.parse_args()
    runs = args.train_runs or [None] * len(args.model)
    if not len(args.model) == len(args.train_reports) == len(runs):
        parser.error("give one --train-reports (and --train-runs, if any) per --model")
    out = project_out_dir("bench_shipped_segmenter", args.out)
    if out is None:
        return 0
    import pandas as pd

    ship = Path(args.ship)
    storage = ship_copy(args.model, ship)

    splits = pd.read_csv(args.splits)
    test = sorted(splits.loc[splits["part"] == "test", "patient"].astype(str))
    on_test = ["--split", args.splits, "--part", "test"]
    data = Path(args.data)
    full_weights = out / "float32_weights_model"
    ship_copy(args.model, full_weights, half=False)
    results = {
        "trained": evaluate("trained", args.model, data, out, on_test),
        "float32_weights": evaluate("float32_weights", str(full_weights), data, out, on_test),
        "16bit": evaluate("16bit", str(ship), data, out, on_test),
        "16bit_tta": evaluate("16bit_tta", str(ship), data, out, [*on_test, "--tta"]),
    }
    with tempfile.TemporaryDirectory(prefix="flair-only-") as tmp:
        flair = flair_only_copy(data, test, Path(tmp))
        results["16bit_flair_only"] = evaluate("16bit_flair_only", str(ship), flair, out, [])
        results["16bit_tta_flair_only"] = evaluate("16bit_tta_flair_only", str(ship), flair, out, ["--tta"])

    trainings = [training_run("train", Path(reports), run) for reports, run in zip(args.train_reports, runs)]
    final = all(bool(t["metrics"].get("final_fit")) for t in trainings)
    slice_classifier = segmenter_as_slice_classifier(str(ship), data, args.splits, out, validated=not final)
    # A final fit trains on fold 0: no validation patients left to choose the post-processing on.
    post_processing = None if final else post_processing_ablation(str(ship), data, args.splits)

    from gliomics.data.kaggle import resolve_cohort_dir, slices_by_folder

    folders = {ss[0].patient: f for f, ss in slices_by_folder(resolve_cohort_dir(data)).items()}
    patient = test[0]
    timing = {}
    for name, extra in (("analyze", []), ("analyze_tta", ["--tta"])):
        with tempfile.TemporaryDirectory(prefix="analyze-") as tmp:
            runs = [run_logged(["gliomics", "analyze", "--input", str(resolve_cohort_dir(data) / folders[patient]),
                                "--out", f"{tmp}/{i}", "--model", str(ship), *extra], out / f"{name}.log")
                    for i in range(2)]
        timing[name] = {"patient": patient, "wall_seconds": [round(s, 2) for s in runs]}
        print(f"{name} {patient}: {runs} s", flush=True)

    first = pd.read_csv(out / "trained" / "per_patient.csv").set_index("patient")
    merged = first[["sequences"]].copy()
    for name in results:
        merged[name] = pd.read_csv(out / name / "per_patient.csv").set_index("patient")["dice_3d"]
    merged = merged.reset_index()
    merged.to_csv(out / "per_patient.csv", index=False, float_format="%.4f")
    diff = (merged["16bit"] - merged["trained"]).abs().max()
    weights_diff = (merged["16bit"] - merged["float32_weights"]).abs().max()
    shutil.rmtree(full_weights)
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": cpu_description(), "model": args.model, "ship": str(ship),
        "storage": storage, "max_abs_dice_change_16bit": float(diff),
        "max_abs_dice_change_16bit_weights_only": float(weights_diff), "n_test_patients": len(test),
        "configs": {name: {k: r.get(k) for k in ("mean_dice_3d", "median_dice_3d", "mean_iou_3d", "by_sequences",
                                                   "worst_patients", "seconds", "wall_seconds")}
                    for name, r in results.items()},
        "min_dice_3d": {name: float(merged[name].min()) for name in results},
        "analyze_seconds": timing,
        "slice_classifier": slice_classifier,
        "post_processing": post_processing,
    }
    from gliomics.io import write_json
    from gliomics.tracking import dvc_data_hash

    summary["training"] = trainings[0] if len(trainings) == 1 else trainings
    write_json(out / "summary.json", summary)
    write_card(ship, summary, trainings, merged, dvc_data_hash(data))
    print(f"shipped vs trained: max per-patient Dice change {diff:.2e} ({weights_diff:.2e} from the 16-bit weights "
          f"alone); summary → {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
