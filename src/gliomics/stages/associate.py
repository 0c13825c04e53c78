"""``gliomics associate``: radiomic features x genomic clusters, validated.

Reads a features table (``reports/features/features_<masks>.csv``: one row
per patient) and the Kaggle ``data.csv``, runs the pure statistics of
:mod:`gliomics.stats` per group (astrocytoma, oligoastrocytoma,
oligodendroglioma, all patients) and outcome (the cluster families of
``associate.families`` plus ``associate.extra_outcomes``), validates the
tables with Great Expectations (:mod:`gliomics.validation.associations`),
and only then writes, as one atomic swap of ``out_dir``:

``tests.csv``
    every test in long form (Fisher-Freeman-Halton on the median split,
    Kruskal-Wallis, one-vs-rest Fisher 2 x 2 with odds ratio and CI), with
    n, the contingency counts, statistic, p, Bonferroni and BH-FDR p, the
    size of the correction family, effect size, and a ``reason`` for every
    test that could not be run.
``significance_<group>.csv`` / ``significance_fdr_<group>.csv``
    features x families, Bonferroni- (resp. FDR-) corrected p of the
    Freeman-Halton tests: the shape of the Kota (2024) thesis' Tables 10-12 (blank =
    not tested; the reason is in ``tests.csv``).
``roc_auc.csv``, ``roc_auc_top.csv``
    one-vs-rest ROC AUC of every cluster level x feature with a stratified
    bootstrap CI, and the pairs with AUC > ``auc_threshold`` (thesis Table
    13, with CIs and the p of the matching one-vs-rest test).
``summary.json``
    counts, the correction family and its definition, the strongest
    associations, timings.
``figures/``
    ``histograms_<group>_{shape,texture}.png`` (thesis Figs 31-36 as small
    multiples), ``roc_top.png``, ``heatmap_pvalues.png``.
``agreement.csv``, ``agreement_tests.csv``
    only when the input is ``features_truth.csv`` and a
    ``features_predicted.csv`` lies beside it: per feature the ICC(2,1)
    between truth- and predicted-mask values, and, per association
    significant on truth masks, whether it survives on predicted masks.
``gx_results.json``
    the Great Expectations validation results.

On a validation failure ``out_dir`` is replaced by a folder holding only
``validation_failed.json`` (and ``gx_results.json``): nothing that looks
like a valid result survives, and :class:`ValidationFailed` lists one line
per problem.

Features analysed (no parameter): the 14 thesis features
(:data:`THESIS_FEATURES`) when the table has them -- the confirmatory
analysis that Tables 10-13 of the Kota (2024) thesis report, whose Bonferroni family
would be diluted ~2.5-fold by the 23 extra descriptors of the features
table (slice means, 3D descriptors, ``glcm_asm``), most of them variants of
the same 14 quantities; the extra columns stay in the features table for
exploratory use. A table with none of the 14 (any other radiomics table)
is analysed on all its numeric columns except the bookkeeping ones
(:data:`NOT_FEATURES`); a table with only some of them is rejected.

Counts in the summary: ``n_tests`` and ``n_significant_*`` count the
Fisher-Freeman-Halton tests (the Kota (2024) thesis' test, the cells of the
significance tables); ``by_test`` gives the same counts for each kind.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from gliomics import io
from gliomics.config import AssociateParams
from gliomics.errors import GliomicsError, ValidationFailed
from gliomics.report.association_plots import cluster_histograms, pvalue_heatmap, roc_curves, save_figure
from gliomics.schema import FEATURE_COLUMNS
from gliomics.stats import (CORRECTION_FAMILIES, DEFAULT_GROUPS, association_tests, merge_cohort, roc_auc_table,
                            significance_matrix, top_auc)
from gliomics.stats.agreement import feature_agreement
from gliomics.stats.cohort import group_mask, level_value
from gliomics.tracking import stage_run
from gliomics.validation.associations import check_association_tables

TESTS = "tests.csv"
ROC = "roc_auc.csv"
TOP = "roc_auc_top.csv"
SUMMARY = "summary.json"
FIGURES = "figures"
AGREEMENT = "agreement.csv"
AGREEMENT_TESTS = "agreement_tests.csv"
GX_RESULTS = "gx_results.json"
FAILED = "validation_failed.json"

#: Significance level for the counts and the figures (the Kota (2024) thesis' 0.05).
ALPHA = 0.05
#: The 14 features of the Kota (2024) thesis (the features stage writes them).
THESIS_FEATURES = FEATURE_COLUMNS
#: Columns of a features table that are never analysed.
NOT_FEATURES = ("patient", "histological_type", "largest_slice", "tumour_voxels", "status")
TRUTH_FEATURES = "features_truth.csv"
PREDICTED_FEATURES = "features_predicted.csv"

#: What each ``correction_family`` means, as written into summary.json.
CORRECTION_DEFINITIONS = {
    "group": "all tests of one kind within one group: every feature x every outcome (x every level for "
             "one-vs-rest) of one histological group (or of all patients) -- one thesis table (Tables 10-12) "
             "is one family",
    "group_family": "all tests of one kind within one group and one outcome, across the features (one column "
                    "of a thesis table)",
    "all": "all tests of one kind across every group and outcome (the pooled group re-uses the patients of "
           "the histological groups)",
}


# --------------------------------------------------------------------- reading
def _read_csv(path: Path, what: str, hint: str = ""):
    if not path.exists():
        raise GliomicsError(f"{path}: no such file ({what}{hint})")
    if path.is_dir():
        raise GliomicsError(f"{path}: is a folder, expected the {what} CSV")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise GliomicsError(f"{path}: empty file (expected the {what} CSV)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise GliomicsError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _duplicates(frame, column: str, path: Path) -> None:
    dup = frame[column][frame[column].duplicated(keep=False)]
    if len(dup):
        lines = ", ".join(str(i + 2) for i in dup.index[:6])
        raise GliomicsError(f"{path}: {column} {dup.iloc[0]} appears more than once (lines {lines})")


def read_features(path: str | Path):
    """The features table: ``patient`` column, one row per patient."""
    path = Path(path)
    frame = _read_csv(path, "features table", "; run `gliomics features` first")
    if "patient" not in frame.columns:
        raise GliomicsError(f"{path}: no 'patient' column (expected the table written by `gliomics features`)")
    if frame.empty:
        raise GliomicsError(f"{path}: no patients (header only)")
    frame["patient"] = frame["patient"].astype(str)
    _duplicates(frame, "patient", path)
    return frame


def feature_columns(frame, path: Path) -> tuple[list[str], str]:
    """The columns to analyse and a sentence saying why (module docstring)."""
    present = [c for c in THESIS_FEATURES if c in frame.columns]
    if present and len(present) < len(THESIS_FEATURES):
        missing = [c for c in THESIS_FEATURES if c not in frame.columns]
        raise GliomicsError(f"{path}: missing thesis feature column(s) {', '.join(missing)}")
    if present:
        columns = list(THESIS_FEATURES)
        others = [c for c in frame.columns if c not in columns and c not in NOT_FEATURES
                  and pd.api.types.is_numeric_dtype(frame[c])]
        choice = (f"the {len(columns)} thesis features; {len(others)} other numeric column(s) of the table not "
                  "analysed (extra descriptors, kept out of the confirmatory Bonferroni family)")
    else:
        columns = [c for c in frame.columns if c not in NOT_FEATURES and pd.api.types.is_numeric_dtype(frame[c])]
        if not columns:
            raise GliomicsError(f"{path}: no numeric feature columns (expected the 14 thesis features)")
        choice = f"no thesis feature column: all {len(columns)} numeric columns except {', '.join(NOT_FEATURES)}"
    for c in columns:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            values = pd.to_numeric(frame[c], errors="coerce")
            bad = frame[c].notna() & values.isna()
            i = bad.idxmax()
            raise GliomicsError(f"{path} line {i + 2}: {c}={frame.at[i, c]!r} is not a number")
    return columns, choice


def read_clinical(path: str | Path, outcomes: list[str]):
    """``data.csv`` with ``Patient`` and the outcome columns (as numbers)."""
    path = Path(path)
    frame = _read_csv(path, "clinical table data.csv")
    need = ["Patient", *outcomes]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise GliomicsError(f"{path}: no column(s) {', '.join(missing)}"
                            + (" (see associate.families / associate.extra_outcomes in params.yaml)"
                               if "Patient" not in missing or len(missing) > 1 else ""))
    frame["Patient"] = frame["Patient"].astype(str)
    _duplicates(frame, "Patient", path)
    for c in outcomes:
        values = pd.to_numeric(frame[c], errors="coerce")
        bad = frame[c].notna() & values.isna()
        if bad.any():
            i = bad.idxmax()
            raise GliomicsError(f"{path} line {i + 2}: {c}={frame.at[i, c]!r} is not a number "
                                f"(Patient {frame.at[i, 'Patient']})")
        frame[c] = values
    return frame


def _check_params(params: AssociateParams) -> None:
    where = "params associate"
    if params.correction_family not in CORRECTION_FAMILIES:
        raise GliomicsError(f"{where}.correction_family: {params.correction_family!r} is not one of "
                            f"{', '.join(CORRECTION_FAMILIES)}")
    if params.ci_method not in ("bca", "percentile"):
        raise GliomicsError(f"{where}.ci_method: {params.ci_method!r} is not 'bca' or 'percentile'")
    if not list(params.families) + list(params.extra_outcomes):
        raise GliomicsError(f"{where}: families and extra_outcomes are both empty: nothing to test")
    for key in ("min_patients", "n_boot", "min_class_size"):
        value = getattr(params, key)
        if not isinstance(value, int) or value < 0:
            raise GliomicsError(f"{where}.{key}: {value!r} is not a non-negative integer")
    if not 0 <= params.auc_threshold < 1:
        raise GliomicsError(f"{where}.auc_threshold: {params.auc_threshold!r} is not in [0, 1)")


def _check_out_dir(out_dir: Path, force: bool = False) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise GliomicsError(f"{out_dir}: exists and is not a folder")
        if (any(out_dir.iterdir()) and not force
                and not ((out_dir / SUMMARY).exists() or (out_dir / FAILED).exists())):
            raise GliomicsError(f"{out_dir}: not empty and not written by `gliomics associate`; refusing to "
                                "replace it (choose another --out)")


# --------------------------------------------------------------------- ICC


def agreement_tables(truth, predicted, clinical, columns, outcomes, params: AssociateParams, truth_tests):
    """Per feature ICC(2,1) truth vs predicted, and the fate of significant truth associations.

    Returns ``(agreement, agreement_tests)``.
    """
    pred_tests = association_tests(predicted, clinical, feature_columns=columns, families=outcomes,
                                   groups=DEFAULT_GROUPS, correction_family=params.correction_family,
                                   min_patients=params.min_patients)
    keys = ["group", "family", "feature"]
    fh_t = truth_tests[truth_tests["test"] == "freeman_halton"]
    fh_p = pred_tests[pred_tests["test"] == "freeman_halton"]
    sig = fh_t[fh_t["p_bonferroni"] < ALPHA][keys + ["n", "p", "p_bonferroni", "p_fdr", "effect_size"]]
    fate = sig.merge(fh_p[keys + ["n", "p", "p_bonferroni", "p_fdr", "effect_size", "reason"]], on=keys,
                     how="left", suffixes=("_truth", "_predicted"))
    fate["survives"] = fate["p_bonferroni_predicted"] < ALPHA
    fate = fate.rename(columns={"reason": "reason_predicted"})

    agreement = feature_agreement(truth, predicted, columns)
    fates = []
    for feature in agreement["feature"]:
        mine = fate[fate["feature"] == feature]
        fates.append({
            "n_significant_truth": len(mine),
            "n_survive_predicted": int(mine["survives"].sum()),
            "significant_truth": "; ".join(f"{g}/{f}" for g, f in zip(mine["group"], mine["family"])) or None,
            "survive_predicted": "; ".join(f"{g}/{f}" for g, f, s in zip(mine["group"], mine["family"],
                                                                       mine["survives"]) if s) or None,
        })
    agreement = pd.concat([agreement, pd.DataFrame.from_records(fates, index=agreement.index)], axis=1)
    cols = ["feature", "n_pairs", "n_truth_only", "n_predicted_only", "icc", "icc_ci_low", "icc_ci_high",
            "icc_F", "icc_p", "mean_truth", "mean_predicted", "mean_difference", "n_significant_truth",
            "n_survive_predicted", "significant_truth", "survive_predicted", "reason"]
    return agreement.reindex(columns=cols), fate


# --------------------------------------------------------------------- analysis
def analyse(features, clinical, columns: list[str], outcomes: list[str], params: AssociateParams) -> dict:
    """All tables of the stage (pure: no files)."""
    try:
        cohort, _ = merge_cohort(features, clinical, families=outcomes, feature_columns=columns)
        tests = association_tests(features, clinical, feature_columns=columns, families=outcomes,
                                  groups=DEFAULT_GROUPS, correction_family=params.correction_family,
                                  min_patients=params.min_patients)
        roc = roc_auc_table(features, clinical, feature_columns=columns, families=outcomes, groups=DEFAULT_GROUPS,
                            n_boot=params.n_boot, seed=params.seed, min_class_size=params.min_class_size,
                            ci_method=params.ci_method)
    except (KeyError, ValueError) as exc:
        raise GliomicsError(f"associate: {exc.args[0] if exc.args else exc}") from None
    top = top_auc(roc, params.auc_threshold)
    ovr = tests[tests["test"] == "fisher_ovr"][["group", "family", "feature", "level", "p", "p_bonferroni",
                                                "odds_ratio"]]
    ovr = ovr.assign(level=ovr["level"].map(_level_key)).rename(
        columns={"p": "p_ovr", "p_bonferroni": "p_ovr_bonferroni", "odds_ratio": "odds_ratio_ovr"})
    top = (top.assign(_level=top["level"].map(_level_key))
           .merge(ovr.rename(columns={"level": "_level"}), on=["group", "family", "feature", "_level"], how="left")
           .drop(columns="_level"))
    groups = list(DEFAULT_GROUPS)
    matrices = {value: {g: significance_matrix(tests, g, value=value) for g in groups}
                for value in ("p_bonferroni", "p_fdr")}
    cohorts = {g: cohort.loc[group_mask(cohort, code)] for g, code in DEFAULT_GROUPS.items()}
    return dict(tests=tests, roc=roc, top=top, matrices=matrices, cohort=cohort, cohorts=cohorts,
                groups=groups, group_sizes={g: len(c) for g, c in cohorts.items()})


def _level_key(value) -> str:
    """Cluster levels as text, the same whether they came as 2, 2.0 or '2'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        return str(level_value(float(value)))
    except (TypeError, ValueError):
        return str(value)


def _records(frame, columns) -> list[dict]:
    """JSON-friendly rows: floats to 6 significant digits, NaN as null."""
    out = []
    for row in frame[columns].to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                        (float(f"{v:.6g}") if isinstance(v, float) else v)) for k, v in row.items()})
    return out


def _summary(result: dict, features, clinical, columns, choice, outcomes, params, paths) -> dict:
    tests, roc, top = result["tests"], result["roc"], result["top"]
    by_test = {}
    for kind, t in tests.groupby("test", sort=False):
        run = t[t["p"].notna()]
        by_test[kind] = dict(
            n_tests=len(run), n_skipped=int(t["p"].isna().sum()),
            n_significant_bonferroni=int((run["p_bonferroni"] < ALPHA).sum()),
            n_significant_fdr=int((run["p_fdr"] < ALPHA).sum()),
            min_p=float(run["p"].min()) if len(run) else None,
        )
    fh = tests[tests["test"] == "freeman_halton"]
    run = fh[fh["p"].notna()]
    groups = {}
    for g in result["groups"]:
        fg = fh[fh["group"] == g]
        reasons = fg["reason"].dropna().map(lambda r: r.split(" (")[0]).value_counts().to_dict()
        groups[g] = dict(n_patients=result["group_sizes"][g], n_tests=int(fg["p"].notna().sum()),
                         n_skipped=int(fg["p"].isna().sum()), skip_reasons=reasons,
                         n_significant_bonferroni=int((fg["p_bonferroni"] < ALPHA).sum()))
    strongest = run.sort_values(["p", "p_bonferroni"], kind="stable").head(10)
    cohort = result["cohort"]
    with_values = int(np.isfinite(cohort[columns].to_numpy(dtype=float)).any(axis=1).sum())
    summary = {
        **paths,
        "n_patients": int(len(features)),
        "n_patients_with_features": with_values,
        "n_patients_without_clinical": int((~features["patient"].isin(set(clinical["Patient"]))).sum()),
        "features": columns,
        "feature_choice": choice,
        "outcomes": outcomes,
        "groups": groups,
        "primary_test": "freeman_halton",
        "alpha": ALPHA,
        "n_tests": len(run),
        "n_tests_skipped": int(fh["p"].isna().sum()),
        "n_significant_bonferroni": int((run["p_bonferroni"] < ALPHA).sum()),
        "n_significant_fdr": int((run["p_fdr"] < ALPHA).sum()),
        "smallest_p": float(run["p"].min()) if len(run) else None,
        "smallest_p_bonferroni": float(run["p_bonferroni"].min()) if len(run) else None,
        "by_test": by_test,
        "correction": {
            "family": params.correction_family,
            "definition": CORRECTION_DEFINITIONS[params.correction_family],
            "methods": "Bonferroni (p_bonferroni, as the Kota (2024) thesis) and Benjamini-Hochberg FDR (p_fdr), "
                       "statsmodels multipletests, over the tests actually run; m_tests in tests.csv gives "
                       "the family size",
        },
        "strongest_associations": _records(strongest, ["group", "family", "feature", "n", "p", "p_bonferroni",
                                                       "p_fdr", "effect_size"]),
        "n_auc_pairs": int(roc["auc"].notna().sum()),
        "n_auc_top": int(len(top)),
        "n_auc_top_ci_above_0.5": int((top["ci_low"] > 0.5).sum()),
        "auc_threshold": params.auc_threshold,
        "best_auc": _records(top.sort_values("auc", ascending=False, kind="stable").head(10),
                             ["group", "family", "level", "feature", "auc", "ci_low", "ci_high", "direction",
                              "n_pos", "n_neg"]),
    }
    if "status" in features.columns:
        summary["feature_status"] = {str(k): int(v) for k, v in
                                     features["status"].fillna("missing").value_counts().items()}
    return summary


# --------------------------------------------------------------------- writing
def _write_tables(folder: Path, result: dict, agreement) -> list[str]:
    written = []

    def csv(name, frame):
        io.write_csv(folder / name, frame)
        written.append(name)

    csv(TESTS, result["tests"])
    for value, by_group in result["matrices"].items():
        prefix = "significance_" if value == "p_bonferroni" else "significance_fdr_"
        for g, matrix in by_group.items():
            csv(f"{prefix}{g}.csv", matrix.reset_index().rename_axis(columns=None))
    csv(ROC, result["roc"])
    csv(TOP, result["top"])
    if agreement is not None:
        csv(AGREEMENT, agreement[0])
        csv(AGREEMENT_TESTS, agreement[1])
    return written


def write_figures(folder: Path, result: dict, columns: list[str], outcomes: list[str],
                  auc_threshold: float) -> list[Path]:
    """All figures of the stage into ``folder`` (PNG); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    texture = [c for c in columns if c.startswith("glcm_")]
    shape = [c for c in columns if c not in texture]
    for g in result["groups"]:
        data = result["cohorts"][g]
        pmat = result["matrices"]["p_bonferroni"][g]
        for kind, feats in (("shape", shape), ("texture", texture)):
            if not feats:
                continue
            fig = cluster_histograms(
                data, feats, outcomes, pvalues=pmat,
                title=f"{g}: {kind} features by cluster level ({len(data)} patients)")
            paths.append(save_figure(fig, folder / f"histograms_{g}_{kind}.png", dpi=90))
    fig = roc_curves(result["cohorts"], result["top"], threshold=auc_threshold)
    paths.append(save_figure(fig, folder / "roc_top.png"))
    fig = pvalue_heatmap(result["tests"], result["groups"], features=columns, families=outcomes)
    paths.append(save_figure(fig, folder / "heatmap_pvalues.png"))
    return paths


def _flat_params(params: AssociateParams) -> dict:
    return {k: (",".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in vars(params).items()}


def _log(out_dir: Path, clinical_csv: Path, params: AssociateParams, summary: dict, profile, *,
         failed: bool) -> None:
    logged = _flat_params(params) | {"features_csv": summary.get("features_csv"),
                                     "clinical_csv": str(clinical_csv)}
    with stage_run("associate", data_dir=clinical_csv.parent, params=logged, profile=profile):
        mlflow.set_tag("validation", "failed" if failed else "passed")
        metrics = {k: summary[k] for k in ("n_patients", "n_tests", "n_tests_skipped", "n_significant_bonferroni",
                                           "n_significant_fdr", "n_auc_pairs", "n_auc_top", "smallest_p",
                                           "smallest_p_bonferroni", "n_problems") if summary.get(k) is not None}
        if summary.get("best_auc"):
            metrics["max_auc"] = summary["best_auc"][0]["auc"]
        for key, value in (summary.get("seconds") or {}).items():
            metrics[f"seconds_{key}"] = value
        if summary.get("agreement"):
            for key in ("median_icc", "n_significant_truth", "n_survive_predicted"):
                if summary["agreement"].get(key) is not None:
                    metrics[f"agreement_{key}"] = summary["agreement"][key]
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_artifacts(str(out_dir))


# --------------------------------------------------------------------- the stage
def run_associate(
    features_csv: str | Path,
    clinical_csv: str | Path,
    out_dir: str | Path,
    params: AssociateParams,
    *,
    log_mlflow: bool = True,
    profile: str | None = None,
    plots: bool = True,
    force: bool = False,
) -> dict:
    """Run the association analysis; write validated tables and figures under ``out_dir`` (an existing folder
    that is not an earlier associate output is refused unless ``force``).

    Returns the summary (also written as ``summary.json``): ``n_patients``,
    ``n_tests``, ``n_significant_bonferroni``, ``n_significant_fdr``,
    ``n_auc_top`` and more (module docstring). ``plots=False`` skips the
    figures (for benchmarks). Raises :class:`GliomicsError` for unusable
    inputs and :class:`ValidationFailed` when the tables break an expectation.
    """
    t0 = time.perf_counter()
    _check_params(params)
    features_csv, clinical_csv, out_dir = Path(features_csv), Path(clinical_csv), Path(out_dir)
    _check_out_dir(out_dir, force)
    outcomes = list(dict.fromkeys([*params.families, *params.extra_outcomes]))
    features = read_features(features_csv)
    columns, choice = feature_columns(features, features_csv)
    clinical = read_clinical(clinical_csv, outcomes)
    t_read = time.perf_counter()

    result = analyse(features, clinical, columns, outcomes, params)
    agreement = None
    predicted_csv = features_csv.with_name(PREDICTED_FEATURES)
    if features_csv.name == TRUTH_FEATURES and predicted_csv.exists():
        predicted = read_features(predicted_csv)
        missing = [c for c in columns if c not in predicted.columns]
        if missing:
            raise GliomicsError(f"{predicted_csv}: no column(s) {', '.join(missing)} (present in {features_csv})")
        agreement = agreement_tables(features, predicted, clinical, columns, outcomes, params, result["tests"])
    t_stats = time.perf_counter()

    problems, outcomes_gx = check_association_tables(
        result["tests"], result["roc"], result["top"], result["matrices"], groups=result["groups"],
        families=outcomes, features=columns, auc_threshold=params.auc_threshold, n_boot=params.n_boot,
        agreement=None if agreement is None else agreement[0],
    )
    t_valid = time.perf_counter()
    paths = {"features_csv": str(features_csv), "clinical_csv": str(clinical_csv), "out_dir": str(out_dir)}
    gx_results = {o.name: o.result for o in outcomes_gx}

    if problems:
        failed = {**paths, "success": False, "n_problems": len(problems), "problems": problems[:500],
                  "suites": {o.name: o.success for o in outcomes_gx}}
        with io.atomic_path(out_dir) as tmp:
            tmp.mkdir()
            io.write_json(tmp / FAILED, failed)
            io.write_json(tmp / GX_RESULTS, gx_results)
        if log_mlflow:
            _log(out_dir, clinical_csv, params, failed, profile, failed=True)
        raise ValidationFailed(problems, f"{out_dir}: the association tables failed validation with "
                                         f"{len(problems)} problem(s); no result written (see {out_dir / FAILED})")

    summary = _summary(result, features, clinical, columns, choice, outcomes, params, paths)
    summary["validation"] = {"success": True, "suites": {o.name: o.success for o in outcomes_gx}}
    if agreement is not None:
        icc = agreement[0]["icc"].to_numpy(dtype=float)
        summary["agreement"] = {
            "predicted_csv": str(predicted_csv),
            "median_icc": float(np.nanmedian(icc)) if np.isfinite(icc).any() else None,
            "min_icc_feature": (agreement[0].loc[agreement[0]["icc"].idxmin(), "feature"]
                                if np.isfinite(icc).any() else None),
            "n_significant_truth": int(len(agreement[1])),
            "n_survive_predicted": int(agreement[1]["survives"].sum()),
        }
    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir()
        written = _write_tables(tmp, result, agreement)
        io.write_json(tmp / GX_RESULTS, gx_results)
        t_write = time.perf_counter()
        figures = []
        if plots:
            figures = write_figures(tmp / FIGURES, result, columns, outcomes, params.auc_threshold)
        t_plots = time.perf_counter()
        summary["files"] = written + [f"{FIGURES}/{p.name}" for p in figures]
        summary["seconds"] = {
            "read": round(t_read - t0, 3), "statistics": round(t_stats - t_read, 3),
            "validation": round(t_valid - t_stats, 3), "write": round(t_write - t_valid, 3),
            "plots": round(t_plots - t_write, 3), "total": round(t_plots - t0, 3),
        }
        io.write_json(tmp / SUMMARY, summary)
    if log_mlflow:
        _log(out_dir, clinical_csv, params, summary, profile, failed=False)
    return summary
