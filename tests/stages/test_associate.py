"""The `associate` stage: finds a planted signal, validates its tables, writes
figures, agreement (ICC) against Shrout & Fleiss, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gliomics.cli import main
from gliomics.config import AssociateParams
from gliomics.errors import GliomicsError, ValidationFailed
from gliomics.stages import associate as stage
from gliomics.stages.associate import THESIS_FEATURES, run_associate
from gliomics.stats.agreement import icc_2_1
from gliomics.stats import simulate_cohort

SIGNAL = "margin_fluctuation"  # built to separate RNASeqCluster level 2
NOISE = "glcm_energy"
GROUPS = ("astrocytoma", "oligoastrocytoma", "oligodendroglioma", "all")
FAST = AssociateParams(n_boot=200)  # the bootstrap size does not matter to what is tested here


def thesis_table(n=110, seed=0, **kw):
    """simulate_cohort with the 14 thesis feature names: ``signal`` -> margin_fluctuation."""
    features, clinical = simulate_cohort(n, 13, seed=seed, **kw)
    names = [SIGNAL] + [c for c in THESIS_FEATURES if c != SIGNAL]
    old = ["signal"] + [f"noise_{i:02d}" for i in range(13)]
    features = features.rename(columns=dict(zip(old, names)))
    # the bookkeeping columns of a real features table are carried but never analysed
    features["largest_slice"] = 7
    features["tumour_voxels"] = 1000
    features["status"] = "ok"
    return features, clinical


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    features, clinical = thesis_table()
    features.to_csv(folder / "features_truth.csv", index=False)
    clinical.to_csv(folder / "data.csv", index=False)
    return folder / "features_truth.csv", folder / "data.csv"


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("assoc") / "truth"
    summary = run_associate(*inputs, out, FAST, log_mlflow=False)
    return out, summary


# ------------------------------------------------------------ the science
def test_finds_the_signal_and_not_the_noise(run):
    out, summary = run
    tests = pd.read_csv(out / "tests.csv")
    fh = tests[tests.test == "freeman_halton"]
    hit = fh[(fh.group == "all") & (fh.family == "RNASeqCluster") & (fh.feature == SIGNAL)].iloc[0]
    assert hit.p_bonferroni < 0.01
    noise = fh[fh.feature == NOISE]
    assert len(noise) == 9 * 4 and (noise.p_bonferroni.dropna() >= 0.05).all()
    # nothing else reaches Bonferroni significance in the pooled group
    pooled = fh[(fh.group == "all") & (fh.p_bonferroni < 0.05)]
    assert set(zip(pooled.family, pooled.feature)) == {("RNASeqCluster", SIGNAL)}

    top = pd.read_csv(out / "roc_auc_top.csv")
    row = top[(top.group == "all") & (top.family == "RNASeqCluster") & (top.level == 2) & (top.feature == SIGNAL)]
    assert len(row) == 1 and row.auc.iloc[0] > 0.9 and row.ci_low.iloc[0] > 0.8
    assert row.direction.iloc[0] == "higher" and row.p_ovr_bonferroni.iloc[0] < 0.01
    assert not ((top.group == "all") & (top.feature == NOISE)).any()

    matrix = pd.read_csv(out / "significance_all.csv", index_col="feature")
    assert list(matrix.index) == list(THESIS_FEATURES)
    assert list(matrix.columns) == [*FAST.families, *FAST.extra_outcomes]
    assert matrix.loc[SIGNAL, "RNASeqCluster"] == pytest.approx(hit.p_bonferroni)
    assert summary["strongest_associations"][0]["feature"] == SIGNAL


def test_summary_keys_and_counts(run):
    out, summary = run
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for key in ("n_patients", "n_tests", "n_significant_bonferroni", "n_significant_fdr", "n_auc_top"):
        assert isinstance(summary[key], int)
    tests = pd.read_csv(out / "tests.csv")
    fh = tests[tests.test == "freeman_halton"]
    assert summary["n_patients"] == 110
    assert summary["n_tests"] == fh.p.notna().sum() == 14 * 9 * 4
    assert summary["n_significant_bonferroni"] == (fh.p_bonferroni < 0.05).sum() >= 1
    assert summary["n_auc_top"] == len(pd.read_csv(out / "roc_auc_top.csv"))
    assert summary["correction"]["family"] == "group" and "thesis table" in summary["correction"]["definition"]
    assert summary["features"] == list(THESIS_FEATURES)
    assert summary["validation"]["success"] and all(summary["validation"]["suites"].values())
    assert summary["groups"]["all"]["n_patients"] == 110


def test_every_output_file_exists_and_figures_are_png(run):
    out, summary = run
    names = ["tests.csv", "roc_auc.csv", "roc_auc_top.csv", "summary.json", "gx_results.json"]
    names += [f"significance_{g}.csv" for g in GROUPS] + [f"significance_fdr_{g}.csv" for g in GROUPS]
    for name in names:
        assert (out / name).stat().st_size > 0, name
    figures = sorted((out / "figures").iterdir())
    expected = {f"histograms_{g}_{k}.png" for g in GROUPS for k in ("shape", "texture")}
    expected |= {"roc_top.png", "heatmap_pvalues.png"}
    assert {p.name for p in figures} == expected
    for png in figures:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png.name
    assert not (out / "agreement.csv").exists()  # no predicted table beside the truth one
    assert not list(out.parent.glob(".truth.*"))  # no temporary folder left behind


def test_skipped_tests_have_reasons_and_blank_cells(inputs, tmp_path):
    params = AssociateParams(n_boot=50, min_patients=40)  # histology groups (26-56 patients) partly skipped
    summary = run_associate(*inputs, tmp_path / "out", params, log_mlflow=False, plots=False)
    tests = pd.read_csv(tmp_path / "out" / "tests.csv")
    skipped = tests[tests.p.isna()]
    assert len(skipped) and skipped.reason.str.startswith("too few patients").all()
    assert summary["groups"]["astrocytoma"]["n_tests"] == 0
    assert summary["groups"]["astrocytoma"]["skip_reasons"] == {"too few patients": 14 * 9}
    matrix = pd.read_csv(tmp_path / "out" / "significance_astrocytoma.csv", index_col="feature")
    assert matrix.isna().all().all()
    assert not (tmp_path / "out" / "figures").exists()


# ------------------------------------------------------------ validation
@pytest.fixture(scope="module")
def tables(inputs):
    features, clinical = pd.read_csv(inputs[0]), pd.read_csv(inputs[1])
    outcomes = [*FAST.families, *FAST.extra_outcomes]
    return stage.analyse(features, clinical, list(THESIS_FEATURES), outcomes, FAST), outcomes


def _check(result, outcomes, **replace):
    from gliomics.validation.associations import check_association_tables

    parts = {k: result[k] for k in ("tests", "roc", "top", "matrices")} | replace
    problems, _ = check_association_tables(
        parts["tests"], parts["roc"], parts["top"], parts["matrices"], groups=result["groups"],
        families=outcomes, features=list(THESIS_FEATURES), auc_threshold=FAST.auc_threshold, n_boot=FAST.n_boot)
    return problems


def test_clean_tables_pass(tables):
    assert _check(*tables) == []


def test_suite_rejects_corrected_p_below_raw(tables):
    result, outcomes = tables
    tests = result["tests"].copy()
    i = tests.index[(tests.test == "freeman_halton") & (tests.p > 0.01)][0]
    tests.loc[i, "p_bonferroni"] = tests.loc[i, "p"] / 2
    problems = _check(result, outcomes, tests=tests)
    row = tests.loc[i]
    # one line for the row, one for the thesis-shaped matrix that no longer matches tests.csv
    assert len(problems) == 2 and problems[1].startswith(f"significance_{row.group}.csv: {row.feature} x {row.family}")
    assert problems[0].startswith(f"tests.csv line {i + 2}: {row.group}/{row.family}/{row.feature} freeman_halton: "
                                  "p_bonferroni=")
    assert "< p=" in problems[0] and "\n" not in problems[0]


def test_suite_rejects_auc_above_its_interval(tables):
    result, outcomes = tables
    roc = result["roc"].copy()
    i = roc.index[roc.auc.notna()][3]
    roc.loc[i, "ci_high"] = roc.loc[i, "auc"] - 0.01
    problems = _check(result, outcomes, roc=roc)
    assert len(problems) == 1 and problems[0].startswith(f"roc_auc.csv line {i + 2}: ")
    assert problems[0].endswith("AUC above ci_high")


def test_suite_rejects_a_top_listing_that_disagrees_with_roc_auc(tables):
    result, outcomes = tables
    top = result["top"].copy()
    top.loc[0, "ci_high"] = top.loc[0, "auc"] - 0.05
    dropped = top.iloc[1]
    top = top.drop(index=1).reset_index(drop=True)
    problems = _check(result, outcomes, top=top)
    assert len(problems) == 2
    first = result["top"].iloc[0]
    assert any(p.startswith(f"roc_auc_top.csv line 2: {first.group}/{first.family} level {first.level}/"
                            f"{first.feature}: AUC ") and "differs from roc_auc.csv" in p for p in problems)
    assert (f"roc_auc_top.csv: {dropped.group}/{dropped.family} level {dropped.level}/{dropped.feature}: "
            "has AUC > 0.7 in roc_auc.csv but is not listed") in problems


def test_suite_rejects_unexplained_nan_counts_and_missing_rows(tables):
    result, outcomes = tables
    tests = result["tests"].copy()
    run_rows = tests.index[tests.p.notna()]
    tests.loc[run_rows[0], ["p", "p_bonferroni", "p_fdr"]] = np.nan  # NaN, no reason
    tests.loc[run_rows[1], "n"] += 1  # counts no longer sum to n
    fh = tests.index[(tests.test == "freeman_halton") & (tests.group == "all")][5]
    gone = tests.loc[fh]
    tests = tests.drop(index=fh).reset_index(drop=True)  # a (group, family, feature) vanishes
    problems = _check(result, outcomes, tests=tests)
    assert any("p, p_bonferroni, p_fdr NaN without a reason" in p for p in problems)
    assert any("counts sum to" in p for p in problems)
    assert f"tests.csv: no freeman_halton row for all/{gone.family}/{gone.feature} (neither a result nor a reason)" \
        in problems
    # the significance matrix no longer agrees with tests.csv for that cell
    assert any(p.startswith(f"significance_all.csv: {gone.feature} x {gone.family}") for p in problems)


def test_stage_leaves_no_valid_looking_output_on_violation(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_associate(*inputs, out, AssociateParams(n_boot=20), log_mlflow=False, plots=False)
    assert (out / "tests.csv").exists()
    real = stage.analyse

    def corrupted(*args, **kwargs):
        result = real(*args, **kwargs)
        roc = result["roc"]
        roc.loc[roc.auc.notna().idxmax(), "auc"] = 1.5
        return result

    monkeypatch.setattr(stage, "analyse", corrupted)
    with pytest.raises(ValidationFailed) as info:
        run_associate(*inputs, out, AssociateParams(n_boot=20), log_mlflow=False)
    assert any("AUC outside [0.5, 1]" in p for p in info.value.problems)
    assert all("\n" not in p for p in info.value.problems)
    assert sorted(p.name for p in out.iterdir()) == ["gx_results.json", "validation_failed.json"]
    failed = json.loads((out / "validation_failed.json").read_text())
    assert failed["success"] is False and failed["problems"] == info.value.problems


# ------------------------------------------------------------ input errors
def test_missing_features_file_names_it(inputs, tmp_path):
    missing = tmp_path / "nowhere" / "features_truth.csv"
    with pytest.raises(GliomicsError, match=f"^{missing}: no such file"):
        run_associate(missing, inputs[1], tmp_path / "out", FAST, log_mlflow=False)
    assert not (tmp_path / "out").exists()


def test_missing_clinical_file_names_it(inputs, tmp_path):
    with pytest.raises(GliomicsError, match=f"^{tmp_path / 'data.csv'}: no such file"):
        run_associate(inputs[0], tmp_path / "data.csv", tmp_path / "out", FAST, log_mlflow=False)


@pytest.mark.parametrize("breakage, message", [
    (lambda f: f.drop(columns="patient"), "no 'patient' column"),
    (lambda f: f.drop(columns=["solidity", "extent"]), "missing thesis feature column(s) solidity, extent"),
    (lambda f: pd.concat([f, f.iloc[[3]]]), "appears more than once"),
])
def test_malformed_features_table(inputs, tmp_path, breakage, message):
    bad = tmp_path / "features.csv"
    breakage(pd.read_csv(inputs[0])).to_csv(bad, index=False)
    with pytest.raises(GliomicsError) as info:
        run_associate(bad, inputs[1], tmp_path / "out", FAST, log_mlflow=False)
    assert str(info.value).startswith(f"{bad}") and message in str(info.value)


def test_clinical_without_a_family_column(inputs, tmp_path):
    bad = tmp_path / "data.csv"
    pd.read_csv(inputs[1]).drop(columns="CNCluster").to_csv(bad, index=False)
    with pytest.raises(GliomicsError, match="no column\\(s\\) CNCluster"):
        run_associate(inputs[0], bad, tmp_path / "out", FAST, log_mlflow=False)


def test_refuses_to_replace_a_foreign_folder(inputs, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    with pytest.raises(GliomicsError, match="not written by `gliomics associate`"):
        run_associate(*inputs, tmp_path / "mine", FAST, log_mlflow=False)
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"


def test_bad_params_are_user_errors(inputs, tmp_path):
    with pytest.raises(GliomicsError, match="correction_family"):
        run_associate(*inputs, tmp_path / "o", AssociateParams(correction_family="everything"), log_mlflow=False)


# ------------------------------------------------------------ agreement (ICC)
SHROUT_FLEISS = np.array([  # Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
])


def test_icc_2_1_matches_shrout_fleiss():
    res = icc_2_1(SHROUT_FLEISS)
    assert round(res["icc"], 2) == 0.29  # published ICC(2,1)
    # their Table 3 (ANOVA): BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02
    assert (round(res["bms"], 2), round(res["wms"], 2), round(res["jms"], 2), round(res["ems"], 2)) == \
        (11.24, 6.26, 32.49, 1.02)
    assert res["ci_low"] < res["icc"] < res["ci_high"]
    assert res["F"] == pytest.approx(res["bms"] / res["ems"]) and 0 < res["p"] < 0.01


def test_icc_is_one_for_identical_raters_and_drops_with_bias():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    assert icc_2_1(np.column_stack([x, x + 1e-12 * rng.normal(size=50)]))["icc"] == pytest.approx(1, abs=1e-9)
    # absolute agreement: a constant offset lowers ICC(2,1) (consistency would not)
    noisy = np.column_stack([x, x + 0.3 * rng.normal(size=50)])
    shifted = np.column_stack([x, x + 0.3 * rng.normal(size=50) + 1.0])
    assert icc_2_1(shifted)["icc"] < icc_2_1(noisy)["icc"] - 0.2
    with pytest.raises(ValueError):
        icc_2_1(np.ones((1, 2)))


def test_agreement_with_predicted_masks(inputs, tmp_path):
    folder = tmp_path / "features"
    folder.mkdir()
    truth = pd.read_csv(inputs[0])
    truth.to_csv(folder / "features_truth.csv", index=False)
    rng = np.random.default_rng(3)
    predicted = truth.copy()
    for c in THESIS_FEATURES:
        predicted[c] = truth[c] + 0.2 * rng.normal(size=len(truth))
    predicted[SIGNAL] = rng.normal(size=len(truth))  # the signal is lost on predicted masks
    predicted.loc[0, list(THESIS_FEATURES)] = np.nan  # an empty predicted mask
    predicted.loc[0, "status"] = "empty mask"
    predicted.to_csv(folder / "features_predicted.csv", index=False)
    out = tmp_path / "out"
    summary = run_associate(folder / "features_truth.csv", inputs[1], out, AssociateParams(n_boot=20),
                            log_mlflow=False, plots=False)
    agreement = pd.read_csv(out / "agreement.csv", index_col="feature")
    assert list(agreement.index) == list(THESIS_FEATURES)
    assert (agreement.drop(index=SIGNAL).icc > 0.9).all() and abs(agreement.loc[SIGNAL, "icc"]) < 0.3
    assert (agreement.n_pairs == 109).all() and (agreement.n_truth_only == 1).all()
    fate = pd.read_csv(out / "agreement_tests.csv")
    lost = fate[(fate.group == "all") & (fate.family == "RNASeqCluster") & (fate.feature == SIGNAL)]
    assert len(lost) == 1 and not lost.survives.iloc[0]
    assert agreement.loc[SIGNAL, "n_significant_truth"] >= 1 and agreement.loc[SIGNAL, "n_survive_predicted"] == 0
    assert summary["agreement"]["n_significant_truth"] == len(fate)
    assert summary["agreement"]["min_icc_feature"] == SIGNAL


# ------------------------------------------------------------ CLI, MLflow, misc
def test_cli_associate_returns_0(inputs, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("associate:\n  n_boot: 50\n")
    code = main(["associate", "--params", str(params), "--features", str(inputs[0]), "--clinical", str(inputs[1]),
                 "--out", str(tmp_path / "out"), "--no-mlflow"])
    assert code == 0
    assert "significant after Bonferroni" in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.json").exists()


def test_cli_missing_input_exits_2(inputs, tmp_path, capsys):
    code = main(["associate", "--features", str(tmp_path / "none.csv"), "--clinical", str(inputs[1]),
                 "--out", str(tmp_path / "out"), "--no-mlflow"])
    assert code == 2
    assert f"{tmp_path / 'none.csv'}: no such file" in capsys.readouterr().err


def test_logs_params_metrics_and_artifacts_to_mlflow(inputs, tmp_path):
    import mlflow

    run_associate(*inputs, tmp_path / "out", AssociateParams(n_boot=20), log_mlflow=True, plots=False)
    (run,) = mlflow.search_runs(experiment_names=["associate"], output_format="list")
    assert run.data.params["correction_family"] == "group" and run.data.params["n_boot"] == "20"
    assert run.data.metrics["n_significant_bonferroni"] >= 1 and run.data.metrics["smallest_p"] < 1e-6
    assert run.data.tags["validation"] == "passed"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"tests.csv", "roc_auc.csv", "roc_auc_top.csv", "summary.json", "significance_all.csv"} <= artifacts


def test_generic_table_without_thesis_columns(tmp_path):
    features, clinical = simulate_cohort(60, 3, seed=2)
    features.to_csv(tmp_path / "f.csv", index=False)
    clinical.to_csv(tmp_path / "d.csv", index=False)
    summary = run_associate(tmp_path / "f.csv", tmp_path / "d.csv", tmp_path / "out", AssociateParams(n_boot=20),
                            log_mlflow=False, plots=False)
    assert summary["features"] == ["signal", "noise_00", "noise_01", "noise_02"]
    assert "no thesis feature column" in summary["feature_choice"]


def test_thesis_feature_names_match_the_features_package():
    from gliomics.features import FEATURE_COLUMNS

    assert THESIS_FEATURES == tuple(FEATURE_COLUMNS)
