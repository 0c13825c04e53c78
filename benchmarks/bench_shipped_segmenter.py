"""The shipped segmenter: 16-bit storage, flip TTA and missing sequences, measured on the internal test patients.

Run in a project clone holding the real cohort and its split (after `gliomics train` of the recipe to ship):

    python benchmarks/bench_shipped_segmenter.py --model models/segmenter \
        --ship ../main/models/pretrained/lgg-segmenter --out benchmarks/results/shipped_segmenter_<date>

1. exports the trained model folder to ``--ship``: float32 compute, weights stored in 16 bits
   (:func:`gliomics.models.packaging.export_segmenter`);
2. `gliomics evaluate` on the split's test patients: the model as trained (bf16 compute where it was trained
   so), the shipped copy, the shipped copy with flip TTA (each an MLflow run of experiment ``evaluate``);
3. the same test patients with pre- and post-contrast replaced by FLAIR on every slice (how the dataset fills
   missing sequences), without and with TTA;
4. `gliomics analyze` of one test patient with the shipped model, without and with TTA (wall seconds);

and writes ``summary.json`` and ``per_patient.csv`` (one column per configuration) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import project_out_dir, run_logged  # noqa: E402

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_description() -> dict:
    from gliomics.training.fit import cpu_flags

    flags = cpu_flags()
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model or platform.processor(), "flags": sorted(f for f in CPU_FLAGS if f in flags)}


def flair_only_copy(data: Path, patients: list[str], dest: Path) -> Path:
    """``dest/kaggle_3m`` holding ``patients`` of ``data`` with channels 0 and 2 replaced by channel 1 (FLAIR)."""
    import tifffile

    from gliomics.data.kaggle import resolve_cohort_dir, slices_by_folder

    root = resolve_cohort_dir(data)
    out = dest / "kaggle_3m"
    for folder, slices in slices_by_folder(root).items():
        if slices[0].patient not in patients:
            continue
        (out / folder).mkdir(parents=True, exist_ok=True)
        for s in slices:
            image = tifffile.imread(s.image)
            image[..., 0] = image[..., 1]
            image[..., 2] = image[..., 1]
            tifffile.imwrite(out / folder / s.image.name, image)
            shutil.copyfile(s.mask, out / folder / s.mask.name)
    return out


def evaluate(name: str, model: str, data: Path, out: Path, extra: list[str]) -> dict:
    target = out / name
    seconds = run_logged(["gliomics", "evaluate", "--data", str(data), "--model", model, "--out", str(target),
                          *extra], out / f"{name}.log")
    summary = json.loads((target / "summary.json").read_text())
    summary["wall_seconds"] = round(seconds, 1)
    print(f"{name}: mean per-patient 3D Dice {summary['mean_dice_3d']:.4f} (median {summary['median_dice_3d']:.4f}) "
          f"in {seconds:.0f} s", flush=True)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/segmenter", help="the trained float32 model folder")
    parser.add_argument("--ship", required=True, help="where the 16-bit copy goes (replaced)")
    parser.add_argument("--data", default="data/raw")
    parser.add_argument("--splits", default="reports/split/splits.csv")
    parser.add_argument("--out", default=f"benchmarks/results/shipped_segmenter_{time.strftime('%Y-%m-%d')}")
    args = parser.parse_args()
    out = project_out_dir("bench_shipped_segmenter", args.out)
    if out is None:
        return 0
    import pandas as pd

    from gliomics.models.packaging import export_segmenter

    ship = Path(args.ship)
    storage = export_segmenter(args.model, ship, half=True)
    print(f"shipped copy (float32 compute, 16-bit weights): {storage}", flush=True)

    splits = pd.read_csv(args.splits)
    test = sorted(splits.loc[splits["part"] == "test", "patient"].astype(str))
    on_test = ["--split", args.splits, "--part", "test"]
    data = Path(args.data)
    results = {
        "trained": evaluate("trained", args.model, data, out, on_test),
        "16bit": evaluate("16bit", str(ship), data, out, on_test),
        "16bit_tta": evaluate("16bit_tta", str(ship), data, out, [*on_test, "--tta"]),
    }
    with tempfile.TemporaryDirectory(prefix="flair-only-") as tmp:
        flair = flair_only_copy(data, test, Path(tmp))
        results["16bit_flair_only"] = evaluate("16bit_flair_only", str(ship), flair, out, [])
        results["16bit_tta_flair_only"] = evaluate("16bit_tta_flair_only", str(ship), flair, out, ["--tta"])

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
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": cpu_description(), "model": args.model, "ship": str(ship),
        "storage": storage, "max_abs_dice_change_16bit": float(diff), "n_test_patients": len(test),
        "configs": {name: {k: r.get(k) for k in ("mean_dice_3d", "median_dice_3d", "mean_iou_3d", "by_sequences",
                                                   "worst_patients", "seconds", "wall_seconds")}
                    for name, r in results.items()},
        "min_dice_3d": {name: float(merged[name].min()) for name in results},
        "analyze_seconds": timing,
    }
    from gliomics.io import write_json

    write_json(out / "summary.json", summary)
    print(f"shipped vs trained: max per-patient Dice change {diff:.2e}; summary → {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
