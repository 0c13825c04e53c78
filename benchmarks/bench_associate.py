"""Timings of the association statistics (no plots, no files, no MLflow).

    python benchmarks/bench_associate.py [--patients 110] [--features 14] [--n-boot 1000] [--repeat 5]

Simulates a cohort (gliomics.stats.simulate_cohort: one built-in signal,
the rest noise), then times, over all 4 groups x 7 cluster families:

* ``association_tests`` (Freeman-Halton exact tests, Kruskal-Wallis,
  one-vs-rest 2 x 2 Fisher tests with odds-ratio CIs, Bonferroni + FDR),
  cold (exact-test caches cleared) and warm;
* ``roc_auc_table`` with ``n_boot`` stratified bootstrap replicates (BCa).

Prints a table and writes benchmarks/results/associate_stats.json.
Target (issue 5): the whole stage <= 5 s on 2 cores, excluding plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

from gliomics.stats import association_tests, roc_auc_table, simulate_cohort
from gliomics.stats.fisher import _two_row_distribution

HERE = Path(__file__).resolve().parent


def _time(fn, repeat: int, before=None) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=110)
    parser.add_argument("--features", type=int, default=14)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "associate_stats.json")
    args = parser.parse_args()

    features, clinical = simulate_cohort(args.patients, args.features - 1, seed=args.seed)
    assoc_cold, tests = _time(lambda: association_tests(features, clinical), args.repeat,
                              before=_two_row_distribution.cache_clear)
    assoc_warm, _ = _time(lambda: association_tests(features, clinical), args.repeat)
    roc_t, roc = _time(lambda: roc_auc_table(features, clinical, n_boot=args.n_boot, seed=args.seed),
                       args.repeat)
    n_tests = tests["test"].value_counts().to_dict()
    total = [a + r for a, r in zip(assoc_cold, roc_t)]
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
        "python": platform.python_version(),
        "patients": args.patients,
        "features": args.features,
        "families": 7,
        "groups": 4,
        "n_boot": args.n_boot,
        "repeat": args.repeat,
        "tests": {k: int(v) for k, v in n_tests.items()},
        "roc_pairs": int(roc["auc"].notna().sum()),
        "association_cold_s": {"median": statistics.median(assoc_cold), "min": min(assoc_cold)},
        "association_warm_s": {"median": statistics.median(assoc_warm), "min": min(assoc_warm)},
        "roc_bootstrap_s": {"median": statistics.median(roc_t), "min": min(roc_t)},
        "total_cold_s": {"median": statistics.median(total), "min": min(total)},
    }
    for key in ("association_cold_s", "association_warm_s", "roc_bootstrap_s", "total_cold_s"):
        print(f"{key:22s} median {results[key]['median']:6.3f} s   min {results[key]['min']:6.3f} s")
    print(f"tests: {results['tests']}, ROC pairs with a bootstrap CI: {results['roc_pairs']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
