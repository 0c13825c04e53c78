"""The shipped slice classifier: 16-bit storage, missing sequences and the segmenter as the alternative gate,
measured on the internal test patients.

Run in a project clone holding the real cohort and its split (after `gliomics train-classifier` of the recipe
to ship):

    python benchmarks/bench_shipped_classifier.py --model models/classifier \
        --ship ../main/models/pretrained/lgg-slice-classifier --out benchmarks/results/shipped_classifier_<date>

1. exports the trained model folder to ``--ship``: float32 compute, weights stored in 16 bits, its
   validation-chosen threshold kept (:func:`gliomics.training.export.export_model`);
2. `gliomics evaluate --task classifier` on the split's test patients: the model as trained, the shipped copy
   (largest change of a slice probability between the two), the shipped copy at 0.5;
3. the same test patients with pre- and post-contrast replaced by FLAIR on every slice (how the dataset fills
   missing sequences);
4. the segmenter's own slice score (``--from-segmenter``, its threshold chosen on the validation fold) on the
   same slices: the cheap alternative gate;
5. `gliomics analyze` of one test patient with the shipped segmenter, without and with the shipped gate;

and writes ``summary.json`` and the model card (``--ship``/README.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (LICENCE, cpu_description, flair_only_copy, project_out_dir, run_logged,  # noqa: E402
                     segmenter_as_slice_classifier, ship_copy, shipping_parser,
                     training_run)

SCORES = ("threshold", "accuracy", "roc_auc", "sensitivity", "specificity", "f1", "n_slices", "n_patients")


def evaluate(name: str, model: str, data: Path, out: Path, extra: list[str]) -> dict:
    target = out / name
    seconds = run_logged(["gliomics", "evaluate", "--task", "classifier", "--data", str(data), "--model", model,
                          "--out", str(target), *extra], out / f"{name}.log")
    summary = json.loads((target / "summary.json").read_text())
    result = {k: summary.get(k) for k in SCORES}
    result["wall_seconds"] = round(seconds, 1)
    print(f"{name}: accuracy {result['accuracy']:.4f}, ROC AUC {result['roc_auc']:.4f} at threshold "
          f"{result['threshold']:.3f} ({result['n_slices']} slices) in {seconds:.0f} s", flush=True)
    return result


def write_card(ship: Path, summary: dict, train: dict, data_hash: str) -> Path:
    """``ship/README.md``: what the shipped classifier is, how it was trained and scored, how to train it again."""
    from gliomics.io import write_text

    p = train["params"]
    m = train["metrics"]
    steps = int(m["epochs_run"]) * int(p.get("classifier.steps_per_epoch", 0))
    batch = int(p.get("classifier.batch_size", 32))
    r = summary["configs"]
    seg = summary["segmenter_score"]["threshold_validation"]
    text = f"""# lgg-slice-classifier: the slice classifier shipped with gliomics

A ResNet-{p.get("classifier.model.depth", "?")} (keras-cv backbone, random initialisation; the Kota (2024)
thesis used a ResNet50) that says whether one TCGA-LGG slice (pre-contrast, FLAIR, post-contrast; 256x256,
resized to {m["image_size"]}x{m["image_size"]}) holds tumour. An MLflow model folder (tensorflow flavour,
tf-keras) with its decision threshold ({r["16bit"]["threshold"]:.3f}, chosen on the validation slices):
`gliomics segment --gate`, `analyze --gate` and `evaluate --task classifier` take it with
`models/pretrained/lgg-slice-classifier`.

## Recipe
- Model: `resnet_classifier`, depth {p.get("classifier.model.depth", "?")}, {p.get("classifier.model.base_filters", "?")}
  base filters, {p.get("classifier.model.activation", "?")}, stem pooling {p.get("classifier.model.stem_pooling", "?")},
  head pooling {p.get("classifier.model.head_pooling", "?")}; input {m["image_size"]} px.
- Training: `classifier.cpu` of params.yaml, {m["epochs_run"]} epochs x {p.get("classifier.steps_per_epoch", "?")}
  steps x batch {batch} = {steps} steps, {steps * batch:,} training slices, half of each batch tumour slices
  (a slice is tumour when its mask has >= {m["min_area_px"]} pixel at the model's size); Adam
  {p.get("classifier.learning_rate", "?")} with cosine decay to 0; binary cross-entropy; augmentation: flips,
  affine, grid distortion, brightness/contrast, and pre/post-contrast replaced by FLAIR on 25 % of slices;
  precision {m["precision"]} on this CPU ({", ".join(summary["machine"]["flags"])}), seed
  {p.get("classifier.seed", "?")}. {m["train_seconds"] / 60:.0f} min of training ({m["seconds_per_image"]:.4f} s per
  training slice).
- Data: the 88-patient working copy of the dataset, DVC hash `{data_hash}`; patient-level split
  `reports/split/splits.csv` (seed 42): {m["n_train_patients"]} training patients, {m["n_val_patients"]} validation
  patients (fold 0: selects the epoch by ROC AUC and the threshold by accuracy), {r["16bit"]["n_patients"]}
  internal test patients never used for training or selection. Best epoch {m["best_epoch"]}: validation ROC AUC
  {m["best_val_roc_auc"]:.4f}.
- MLflow: training run `{train["run_id"]}` (experiment `train_classifier` of the project where it was trained).
- Stored for shipping: float32 compute, weights rounded to float16 ({summary["storage"]["folder_bytes"] / 1e6:.1f} MB);
  largest change of a test slice's probability against the model as trained: {summary["max_abs_prob_change"]:.1e}.

## Train it again
```bash
gliomics ingest /path/to/kaggle_3m && sed -i 's/^profile: demo/profile: cpu/' params.yaml
dvc repro split                           # validate + the patient-level split (seed 42)
gliomics train-classifier --steps {steps}      # classifier.cpu for exactly these steps
```
Then `python benchmarks/bench_shipped_classifier.py --model models/classifier --ship
models/pretrained/lgg-slice-classifier` exports and scores it as below.

## Internal test slices ({r["16bit"]["n_slices"]} slices of {r["16bit"]["n_patients"]} patients)

| configuration | accuracy | ROC AUC | sensitivity | specificity |
|---|---|---|---|---|
| shipped, its threshold {r["16bit"]["threshold"]:.3f} | **{r["16bit"]["accuracy"]:.3f}** | **{r["16bit"]["roc_auc"]:.3f}** | {r["16bit"]["sensitivity"]:.3f} | {r["16bit"]["specificity"]:.3f} |
| shipped at 0.5 | {r["16bit_0.5"]["accuracy"]:.3f} | {r["16bit_0.5"]["roc_auc"]:.3f} | {r["16bit_0.5"]["sensitivity"]:.3f} | {r["16bit_0.5"]["specificity"]:.3f} |
| shipped, pre/post replaced by FLAIR | {r["16bit_flair_only"]["accuracy"]:.3f} | {r["16bit_flair_only"]["roc_auc"]:.3f} | {r["16bit_flair_only"]["sensitivity"]:.3f} | {r["16bit_flair_only"]["specificity"]:.3f} |
| the shipped segmenter's slice score (threshold {seg["threshold"]:.3f} from validation) | {seg["accuracy"]:.3f} | {seg["roc_auc"]:.3f} | {seg["sensitivity"]:.3f} | {seg["specificity"]:.3f} |

{"The segmenter's own slice score classifies these slices better than this model" if seg["accuracy"] > r["16bit"]["accuracy"] else "This model classifies these slices better than the segmenter's own slice score"}
(accuracy {seg["accuracy"]:.3f} vs {r["16bit"]["accuracy"]:.3f}); the gate stays off by default.

## Limits
- A slice counts as tumour from one mask pixel on: the smallest tumour specks are the hardest slices.
- Trained on TCGA-LGG (five TCGA sites); other scanners and protocols are untested. A research tool, not a
  medical device. Load it with gliomics: the folder carries no pickled objects.

## Licence
{LICENCE}
"""
    return write_text(ship / "README.md", text)


def max_prob_change(a: Path, b: Path) -> float:
    import pandas as pd

    first, second = pd.read_csv(a / "per_slice.csv"), pd.read_csv(b / "per_slice.csv")
    return float((first["prob"] - second["prob"]).abs().max())


def main() -> int:
    parser = shipping_parser(__doc__.splitlines()[0], "classifier", model="models/classifier",
                             train_reports="reports/classifier/train")
    parser.add_argument("--segmenter", default="models/pretrained/lgg-segmenter",
                        help="the segmenter whose slice score is compared, and that analyze uses")
    args = parser.parse_args()
    out = project_out_dir("bench_shipped_classifier", args.out)
    if out is None:
        return 0
    import pandas as pd

    from gliomics.data.kaggle import resolve_cohort_dir, slices_by_folder
    from gliomics.io import write_json
    from gliomics.tracking import dvc_data_hash

    ship = Path(args.ship)
    storage = ship_copy(args.model, ship)
    data = Path(args.data)
    test = sorted(pd.read_csv(args.splits).query("part == 'test'")["patient"].astype(str))
    on_test = ["--split", args.splits, "--part", "test"]
    configs = {
        "trained": evaluate("trained", args.model, data, out, on_test),
        "16bit": evaluate("16bit", str(ship), data, out, on_test),
        "16bit_0.5": evaluate("16bit_0.5", str(ship), data, out, [*on_test, "--threshold", "0.5"]),
    }
    with tempfile.TemporaryDirectory(prefix="flair-only-") as tmp:
        flair = flair_only_copy(data, test, Path(tmp))
        configs["16bit_flair_only"] = evaluate("16bit_flair_only", str(ship), flair, out, [])
    segmenter_score = segmenter_as_slice_classifier(args.segmenter, data, args.splits, out)

    root = resolve_cohort_dir(data)
    folders = {ss[0].patient: f for f, ss in slices_by_folder(root).items()}
    timing = {}
    for name, extra in (("analyze", []), ("analyze_gate", ["--gate", str(ship)])):
        with tempfile.TemporaryDirectory(prefix="analyze-") as tmp:
            runs = [run_logged(["gliomics", "analyze", "--input", str(root / folders[test[0]]), "--out",
                                f"{tmp}/{i}", "--model", args.segmenter, *extra], out / f"{name}.log")
                    for i in range(2)]
        timing[name] = {"patient": test[0], "wall_seconds": [round(s, 2) for s in runs]}
        print(f"{name} {test[0]}: {runs} s", flush=True)

    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": cpu_description(), "model": args.model, "ship": str(ship),
        "storage": storage, "max_abs_prob_change": max_prob_change(out / "trained", out / "16bit"),
        "configs": configs, "segmenter_score": segmenter_score, "analyze_seconds": timing,
        "training": training_run("train_classifier", Path(args.train_reports)),
    }
    write_json(out / "summary.json", summary)
    write_card(ship, summary, summary["training"], dvc_data_hash(data))
    print(f"shipped vs trained: largest slice probability change {summary['max_abs_prob_change']:.2e}; "
          f"summary → {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
