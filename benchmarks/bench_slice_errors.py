"""Where the slice classifiers fail: ROC AUC by tumour size, the two scores combined, the worst slices.

Reads the ``per_slice.csv`` files that ``gliomics evaluate --task classifier`` wrote (columns patient, slice,
label, prob) for each classifier on the validation fold and on the test patients, and the manual masks of the
cohort (for each tumour slice's area). Run in a project clone holding the real cohort:

    python benchmarks/bench_slice_errors.py --data data/raw \
        --val resnet=<val per_slice.csv> segmenter=<val per_slice.csv> \
        --test resnet=<test per_slice.csv> segmenter=<test per_slice.csv> --out benchmarks/results/slice_errors_<date>

Reports, for each part: every classifier's ROC AUC (sklearn) on all slices and with the tumour slices below
10 / 50 / 100 / 200 / 500 mask pixels left out (the label is "tumour" from one pixel on, so the smallest
specks set the ceiling); the mean of the classifiers' probabilities and the mean of their ranks (a combination
whose weights nothing was fitted for); and the slices the classifiers get most wrong (largest mean probability
without tumour, smallest with), with their mask areas. Writes ``summary.json``, ``worst_slices.csv`` and
``worst_slices_<part>.png`` (each slice's FLAIR with the manual mask's outline in red).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import project_out_dir  # noqa: E402

#: Tumour slices smaller than these (mask pixels of the 256x256 slice) are left out in turn.
MIN_AREAS = (1, 10, 50, 100, 200, 500)


def parse_scores(items: list[str]) -> dict[str, Path]:
    scores = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not Path(path).is_file():
            raise SystemExit(f"bench_slice_errors: expected NAME=per_slice.csv with an existing file, got {item!r}")
        scores[name] = Path(path)
    return scores


def cohort_slices(data: Path) -> dict[tuple[str, int], object]:
    """Every slice of the cohort by (patient, slice number): its image and mask files (one folder scan)."""
    from gliomics.data.kaggle import resolve_cohort_dir, slices_by_folder

    return {(item.patient, int(item.slice)): item
            for slices in slices_by_folder(resolve_cohort_dir(data)).values() for item in slices}


def mask_areas(files: dict, keys) -> dict[tuple[str, int], int]:
    """Mask pixels of each (patient, slice) in ``keys``, read from the cohort's ``*_mask.tif`` files."""
    from gliomics.data.slices import read_mask

    wanted = set(keys)
    areas = {key: int(np.count_nonzero(read_mask(files[key].mask)))
             for key in wanted if key in files and files[key].mask is not None}
    missing = wanted - set(areas)
    if missing:
        raise SystemExit(f"bench_slice_errors: no mask in the cohort for {len(missing)} slices, "
                         f"e.g. {sorted(missing)[0]}")
    return areas


def joined(scores: dict[str, Path]):
    """One table: patient, slice, label and one probability column per classifier (labels must agree)."""
    import pandas as pd

    table = None
    for name, path in scores.items():
        part = pd.read_csv(path)[["patient", "slice", "label", "prob"]].rename(columns={"prob": name})
        if table is None:
            table = part
            continue
        table = table.merge(part, on=["patient", "slice"], how="inner", suffixes=("", f"_{name}"))
        if not (table["label"] == table[f"label_{name}"]).all():
            raise SystemExit(f"bench_slice_errors: {path} labels slices differently from the first classifier")
        table = table.drop(columns=f"label_{name}")
    return table


def combined(table, names: list[str]) -> dict:
    """The mean probability and the mean rank of the classifiers (no weights fitted)."""
    from scipy.stats import rankdata

    if len(names) < 2:
        return {}
    return {"mean_probability": table[names].mean(axis=1).to_numpy(),
            "mean_rank": np.mean([rankdata(table[n]) for n in names], axis=0) / len(table)}


def auc_by_area(table, columns: dict) -> dict:
    from sklearn.metrics import roc_auc_score

    result = {}
    for min_area in MIN_AREAS:
        keep = ((table["label"] == 0) | (table["area"] >= min_area)).to_numpy()
        result[f"min_area_{min_area}"] = {
            "n_slices": int(keep.sum()), "n_tumour": int((table["label"].to_numpy()[keep] == 1).sum()),
            **{name: float(roc_auc_score(table["label"].to_numpy()[keep], np.asarray(score)[keep]))
               for name, score in columns.items()}}
    return result


def plot_worst(rows, files: dict, path: Path, columns: int = 6) -> Path:
    """FLAIR of each slice in ``rows`` with its manual mask outlined in red, titled with patient, slice, mask
    area and the classifiers' mean probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gliomics.data.slices import read_image, read_mask

    n_rows = max(1, -(-len(rows) // columns))
    figure, axes = plt.subplots(n_rows, columns, figsize=(2.2 * columns, 2.5 * n_rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), rows.itertuples()):
        item = files[(row.patient, int(row.slice))]
        ax.imshow(read_image(item.image)[..., 1], cmap="gray")
        mask = read_mask(item.mask) > 0
        if mask.any():
            ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(f"{row.patient.removeprefix('TCGA_')} #{row.slice}\n{row.kind.split(',')[0]}, "
                     f"{row.area} px, p={row.score:.3f}", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/raw", help="the cohort (for the mask areas)")
    parser.add_argument("--val", nargs="+", default=[], help="NAME=per_slice.csv on the validation fold")
    parser.add_argument("--test", nargs="+", required=True, help="NAME=per_slice.csv on the test patients")
    parser.add_argument("--worst", type=int, default=12, help="worst slices listed per part and error kind")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = project_out_dir("bench_slice_errors", args.out)
    if out is None:
        return 0
    import pandas as pd

    from gliomics.io import write_csv, write_json

    files = cohort_slices(Path(args.data))
    summary, worst_rows = {}, []
    for part, items in (("val", args.val), ("test", args.test)):
        if not items:
            continue
        scores = parse_scores(items)
        table = joined(scores)
        areas = mask_areas(files, zip(table["patient"], table["slice"].astype(int)))
        table["area"] = [areas[(p, int(s))] for p, s in zip(table["patient"], table["slice"])]
        names = list(scores)
        columns = {**{n: table[n].to_numpy() for n in names}, **combined(table, names)}
        tumour_areas = table.loc[table["label"] == 1, "area"]
        summary[part] = {
            "inputs": {n: str(p) for n, p in scores.items()}, "n_slices": len(table),
            "n_tumour": int((table["label"] == 1).sum()),
            "tumour_area_quantiles": {q: float(tumour_areas.quantile(q)) for q in (0.0, 0.1, 0.25, 0.5)},
            "roc_auc": auc_by_area(table, columns)}
        line = "; ".join(f"{n} {summary[part]['roc_auc']['min_area_1'][n]:.4f}" for n in columns)
        print(f"{part}: {len(table)} slices, ROC AUC {line}", flush=True)
        score = table[names].mean(axis=1)
        false_pos = table.assign(score=score)[table["label"] == 0].nlargest(args.worst, "score")
        false_neg = table.assign(score=score)[table["label"] == 1].nsmallest(args.worst, "score")
        for kind, rows in (("no tumour, highest score", false_pos), ("tumour, lowest score", false_neg)):
            worst_rows.append(rows.assign(part=part, kind=kind))
    worst = pd.concat(worst_rows, ignore_index=True)
    write_csv(out / "worst_slices.csv", worst)
    for part, rows in worst.groupby("part"):
        plot_worst(rows, files, out / f"worst_slices_{part}.png")
    write_json(out / "summary.json", summary)
    print(f"summary → {out / 'summary.json'}; worst slices → {out / 'worst_slices.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
