"""The radiogenomics on automatic masks: features of a segmenter's masks against the manual ones, and which
published associations replicate on each.

Run in a project clone holding the real cohort (after `dvc repro split`):

    python benchmarks/bench_predicted_radiogenomics.py --model ../main/models/pretrained/lgg-segmenter \
        [--out benchmarks/results/predicted_radiogenomics_<date>]

Runs, as a user would (each an MLflow run): `gliomics features --masks truth` and `gliomics associate` on the
manual masks, `gliomics segment` of the whole cohort with ``--model``, `gliomics features --masks predicted`
and `gliomics associate` on the predicted masks. Then writes:

* ``agreement.csv``: per feature, ICC(2,1) (Shrout & Fleiss 1979) with its 95 % CI and ICC(3,1), truth vs
  predicted masks (:func:`gliomics.report.agreement.agreement_table`);
* ``surviving.csv``: every association significant after Bonferroni on the manual masks (exact
  Freeman-Halton test, per histological group) and its Bonferroni p on the predicted masks;
* ``replication.csv``: the published associations (:data:`gliomics.stats.published.PUBLISHED`: Mazurowski et al. 2017, Buda et al. 2019,
  Kota 2024) side by side with ours on manual and on predicted masks (raw and Bonferroni p, best one-vs-rest
  AUC and its direction);
* ``summary.json``.

Note: the segmenter has seen the training patients' masks, so predicted masks of those patients are better
than a new patient's would be; ``summary.json`` gives the agreement on the internal test patients alone too.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import project_out_dir, run_logged  # noqa: E402

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the segmenter (folder or URI)")
    parser.add_argument("--data", default="data/raw")
    parser.add_argument("--splits", default="reports/split/splits.csv")
    parser.add_argument("--out", default=f"benchmarks/results/predicted_radiogenomics_{time.strftime('%Y-%m-%d')}")
    args = parser.parse_args()
    out = project_out_dir("bench_predicted_radiogenomics", args.out)
    if out is None:
        return 0
    import pandas as pd

    from gliomics.features import FEATURE_COLUMNS
    from gliomics.io import write_csv, write_json
    from gliomics.report.agreement import agreement_table, surviving_associations
    from gliomics.stats.published import PUBLISHED, replication_table

    data, clinical = args.data, f"{args.data}/data.csv"
    scratch = tempfile.TemporaryDirectory(prefix="predicted-cohort-")  # a copy of the cohort: not kept
    predicted_data = Path(scratch.name) / "kaggle_3m"
    seconds = {
        "features_truth": run_logged(["gliomics", "features", "--data", data, "--masks", "truth", "--out",
                                      str(out / "features_truth.csv")], out / "features_truth.log"),
        "associate_truth": run_logged(["gliomics", "associate", "--features", str(out / "features_truth.csv"),
                                       "--clinical", clinical, "--out", str(out / "associations_truth")],
                                      out / "associate_truth.log"),
        "segment": run_logged(["gliomics", "segment", "--input", data, "--model", args.model, "--out",
                               str(predicted_data)], out / "segment.log"),
        "features_predicted": run_logged(["gliomics", "features", "--data", str(predicted_data), "--masks",
                                          "predicted", "--out", str(out / "features_predicted.csv")],
                                         out / "features_predicted.log"),
        "associate_predicted": run_logged(["gliomics", "associate", "--features",
                                           str(out / "features_predicted.csv"), "--clinical", clinical, "--out",
                                           str(out / "associations_predicted")], out / "associate_predicted.log"),
    }
    scratch.cleanup()
    truth = pd.read_csv(out / "features_truth.csv")
    predicted = pd.read_csv(out / "features_predicted.csv")
    columns = [c for c in FEATURE_COLUMNS if c in truth.columns and c in predicted.columns]
    agreement = agreement_table(truth, predicted, columns)
    test_patients = set(pd.read_csv(args.splits).query("part == 'test'")["patient"].astype(str))
    agreement_test = agreement_table(truth[truth["patient"].isin(test_patients)],
                                     predicted[predicted["patient"].isin(test_patients)], columns)
    truth_tests = pd.read_csv(out / "associations_truth" / "tests.csv")
    predicted_tests = pd.read_csv(out / "associations_predicted" / "tests.csv")
    surviving = surviving_associations(truth_tests, predicted_tests)
    truth_roc = pd.read_csv(out / "associations_truth" / "roc_auc.csv")
    predicted_roc = pd.read_csv(out / "associations_predicted" / "roc_auc.csv")
    replication = replication_table(truth_tests, truth_roc, predicted_tests, predicted_roc)
    write_csv(out / "agreement.csv", agreement)
    write_csv(out / "agreement_test_patients.csv", agreement_test)
    write_csv(out / "surviving.csv", surviving)
    write_csv(out / "replication.csv", replication)
    summary = {
        "date": time.strftime("%Y-%m-%d"), "model": args.model, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "n_patients": int(len(truth)), "median_icc_2_1": float(agreement["icc"].median()),
        "median_icc_2_1_test_patients": float(agreement_test["icc"].median()),
        "n_significant_truth": int(len(surviving)), "n_surviving_predicted": int(surviving["survives"].sum()),
        "replicated_nominal_truth": int((replication["p_truth"] < 0.05).sum()),
        "replicated_nominal_predicted": int((replication["p_predicted"] < 0.05).sum()),
        "n_published": len(PUBLISHED),
    }
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    print(replication[["source", "group", "family", "feature", "reported_p", "p_truth", "p_bonferroni_truth",
                       "p_predicted", "p_bonferroni_predicted"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
