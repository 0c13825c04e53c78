"""Expectation suites for the output tables of ``gliomics associate``.

The stage validates its tables *before* it writes them where a user (or DVC)
would read them; a violation means a bug or a corrupted input, never a
finding. Every check words its failure as one line that names the file,
the CSV line and the (group, family, feature[, test, level]) concerned.
Where a rule spans several columns, the suite adds a derived column (e.g.
``reason_problem``) that one expectation requires to be empty.

Suites (see :func:`association_suites`):

``tests``
    p, p_bonferroni, p_fdr in [0, 1]; p_bonferroni >= p and p_fdr >= p
    (corrected never below raw); the counts of each test sum to its ``n``;
    effect sizes in [0, 1]; a one-vs-rest odds ratio inside its CI; every
    value present when there is no ``reason``, no p-value when there is one
    (no NaN without a reason); known test names; one row per (group,
    family, feature, test, level).
``tests_coverage``
    every (group, family, feature) of the design has a row for every kind of
    test: a result or a stated reason (e.g. too few patients).
``roc_auc``
    AUC in [0.5, 1] (direction-corrected), raw AUC and CI bounds in [0, 1],
    ``ci_low <= auc <= ci_high``, ``n_pos + n_neg == n``, an AUC (and, with
    ``n_boot > 0``, its interval) exactly when there is no reason.
``roc_auc_coverage``
    every (group, family, feature) has at least one ROC row.
``roc_auc_top``
    the listing holds exactly the pairs of ``roc_auc.csv`` with AUC above the
    threshold, with the same AUC and interval.
``significance``
    the features x families matrices hold exactly the Bonferroni (resp. FDR)
    p of ``tests.csv``, in [0, 1], and a blank cell only where the test has
    a reason.
``agreement`` (when predicted-mask features exist)
    ICC <= 1 with ``ci_low <= icc <= ci_high``, an ICC exactly when there is
    no reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from gliomics.validation.gx import Check, Suite, run_checks

__all__ = ["association_suites", "check_association_tables"]

TEST_KINDS = ("freeman_halton", "kruskal_wallis", "fisher_ovr")
PANDAS = {"condition_parser": "pandas"}


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NaN"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _level(row) -> str:
    level = row.get("level")
    if level is None or level == "" or (isinstance(level, float) and np.isnan(level)):
        return ""
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    return f" level {level}"


def _reason_problems(frame: pd.DataFrame, result: str, columns: Sequence[str],
                     extra: Mapping[str, Sequence[str]] | None = None, kind_column: str = "test") -> pd.Series:
    """Per row, what is wrong between its values and its ``reason`` (None if nothing).

    A row without a reason must have every one of ``columns`` (plus ``extra[kind]``
    for its kind); a row with a reason must have no ``result``.
    """
    no_reason = frame["reason"].isna().to_numpy()
    names = np.full(len(frame), "", dtype=object)
    for column in columns:
        names = np.where(no_reason & frame[column].isna().to_numpy(), names + ", " + column, names)
    for kind, cols in (extra or {}).items():
        is_kind = (frame[kind_column] == kind).to_numpy()
        for column in cols:
            names = np.where(no_reason & is_kind & frame[column].isna().to_numpy(), names + ", " + column, names)
    both = ~no_reason & frame[result].notna().to_numpy()
    out = [f"{n[2:]} NaN without a reason" if n else None for n in names]
    for i in np.flatnonzero(both):
        out[i] = f"has both {result}={_fmt(frame[result].iloc[i])} and a reason ({frame['reason'].iloc[i]})"
    return pd.Series(out, index=frame.index, dtype=object)


def _between(column, low, high, describe, **kw):
    return Check(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, **kw), describe)


def _at_least(a, b, describe):
    """Column ``a`` >= column ``b`` wherever both are present."""
    return Check(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=a, column_B=b, or_equal=True, ignore_row_if="either_value_is_missing"
        ),
        describe,
    )


def _counts_total(counts: pd.Series) -> pd.Series:
    def total(text):
        try:
            return int(np.asarray(json.loads(text)["counts"], dtype=float).sum())
        except (TypeError, ValueError, KeyError):
            return -1

    return counts.map(total)


def tests_suite(tests: pd.DataFrame, name: str = "tests.csv") -> Suite:
    """Row-level expectations on the long table of tests."""
    frame = tests.copy()
    frame.insert(0, "csv_line", np.arange(2, len(frame) + 2))
    frame["counts_total"] = _counts_total(frame["counts"])
    frame["level_key"] = frame["level"].map(lambda v: "" if v is None or v != v else str(v))
    # m_tests is 0 for skipped tests: as NaN, a run test without a family size is caught below
    frame["m_tests_run"] = frame["m_tests"].where(frame["m_tests"] > 0)
    frame["reason_problem"] = _reason_problems(
        frame, "p", ["p", "p_bonferroni", "p_fdr", "m_tests_run", "statistic", "effect_size"],
        extra={"fisher_ovr": ["odds_ratio", "ci_low", "ci_high"]})

    def where(r):
        return f"{name} line {r['csv_line']}: {r['group']}/{r['family']}/{r['feature']} {r['test']}{_level(r)}"

    checks = [
        _between("p", 0, 1, lambda r: f"{where(r)}: p={_fmt(r['p'])} outside [0, 1]"),
        _between("p_bonferroni", 0, 1, lambda r: f"{where(r)}: p_bonferroni={_fmt(r['p_bonferroni'])} outside [0, 1]"),
        _between("p_fdr", 0, 1, lambda r: f"{where(r)}: p_fdr={_fmt(r['p_fdr'])} outside [0, 1]"),
        _at_least("p_fdr", "p", lambda r: f"{where(r)}: p_fdr={_fmt(r['p_fdr'])} < p={_fmt(r['p'])} "
                  "(a corrected p-value below the raw one)"),
        _at_least("p_bonferroni", "p", lambda r: f"{where(r)}: p_bonferroni={_fmt(r['p_bonferroni'])} < "
                  f"p={_fmt(r['p'])} (a corrected p-value below the raw one)"),
        Check(
            gxe.ExpectColumnPairValuesToBeEqual(column_A="counts_total", column_B="n"),
            lambda r: f"{where(r)}: counts sum to {r['counts_total']} but n={r['n']}"
            if r["counts_total"] >= 0 else f"{where(r)}: counts is not a JSON table ({r['counts']!r})",
        ),
        _between("effect_size", 0, 1, lambda r: f"{where(r)}: effect_size={_fmt(r['effect_size'])} outside [0, 1]"),
        _at_least("odds_ratio", "ci_low", lambda r: f"{where(r)}: odds_ratio={_fmt(r['odds_ratio'])} below its "
                  f"ci_low={_fmt(r['ci_low'])}"),
        _at_least("ci_high", "odds_ratio", lambda r: f"{where(r)}: odds_ratio={_fmt(r['odds_ratio'])} above its "
                  f"ci_high={_fmt(r['ci_high'])}"),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="test", value_set=list(TEST_KINDS)),
            lambda r: f"{where(r)}: unknown test {r['test']!r}",
        ),
        Check(gxe.ExpectColumnValuesToBeNull(column="reason_problem"),
              lambda r: f"{where(r)}: {r['reason_problem']}"),
        Check(
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["group", "family", "feature", "test", "level_key"]),
            lambda r: f"{where(r)}: appears more than once",
        ),
    ]
    ids = ["csv_line", "group", "family", "feature", "test", "level", "n", "counts", "counts_total", "p",
           "p_bonferroni", "p_fdr", "effect_size", "odds_ratio", "ci_low", "ci_high", "m_tests", "reason",
           "reason_problem"]
    return Suite("tests", frame, checks, ids)


def _coverage(table: pd.DataFrame, groups, families, features, kinds, name: str, what: str) -> Suite:
    """One row per expected (group, family, feature[, test]); ``present`` says whether the table has it."""
    keys = ["group", "family", "feature"] + (["test"] if kinds else [])
    grid = pd.MultiIndex.from_product(
        [list(groups), list(families), list(features)] + ([list(kinds)] if kinds else []), names=keys
    ).to_frame(index=False)
    have = table[keys].drop_duplicates().assign(present=True)
    frame = grid.merge(have, on=keys, how="left")
    frame["present"] = frame["present"].fillna(False).astype(bool)

    def describe(r):
        test = f" {r['test']}" if "test" in r else ""
        return f"{name}: no{test} row for {r['group']}/{r['family']}/{r['feature']} (neither {what} nor a reason)"

    checks = [Check(gxe.ExpectColumnValuesToBeInSet(column="present", value_set=[True]), describe)]
    return Suite(f"{name.removesuffix('.csv')}_coverage", frame, checks, keys)


def roc_suite(roc: pd.DataFrame, name: str = "roc_auc.csv", *, n_boot: int = 1) -> Suite:
    """Row-level expectations on the ROC AUC table."""
    frame = roc.copy()
    frame.insert(0, "csv_line", np.arange(2, len(frame) + 2))

    def where(r):
        return f"{name} line {r['csv_line']}: {r['group']}/{r['family']}{_level(r)}/{r['feature']}"

    def interval(r):
        return f"AUC={_fmt(r['auc'])}, CI [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"

    checks = [
        _between("ci_low", 0, 1, lambda r: f"{where(r)}: {interval(r)}: ci_low outside [0, 1]"),
        _between("ci_high", 0, 1, lambda r: f"{where(r)}: {interval(r)}: ci_high outside [0, 1]"),
        _at_least("auc", "ci_low", lambda r: f"{where(r)}: {interval(r)}: AUC below ci_low"),
        _at_least("ci_high", "auc", lambda r: f"{where(r)}: {interval(r)}: AUC above ci_high"),
    ]
    interval_columns = ["ci_low", "ci_high"] if n_boot > 0 else []
    frame["n_pos_plus_neg"] = frame["n_pos"] + frame["n_neg"]
    frame["level_key"] = frame["level"].map(lambda v: "" if v is None or v != v else str(v))
    frame["reason_problem"] = _reason_problems(
        frame, "auc", ["auc", "auc_raw", "direction", *interval_columns, *(["boot_se"] if n_boot > 1 else [])])
    checks += [
        _between("auc", 0.5, 1, lambda r: f"{where(r)}: {interval(r)}: AUC outside [0.5, 1] "
                 "(direction-corrected)"),
        _between("auc_raw", 0, 1, lambda r: f"{where(r)}: auc_raw={_fmt(r['auc_raw'])} outside [0, 1]"),
        Check(gxe.ExpectColumnValuesToBeInSet(column="direction", value_set=["higher", "lower"]),
              lambda r: f"{where(r)}: direction {r['direction']!r} is neither 'higher' nor 'lower'"),
        Check(gxe.ExpectCompoundColumnsToBeUnique(column_list=["group", "family", "level_key", "feature"]),
              lambda r: f"{where(r)}: appears more than once"),
        Check(gxe.ExpectColumnPairValuesToBeEqual(column_A="n_pos_plus_neg", column_B="n"),
              lambda r: f"{where(r)}: n_pos={r['n_pos']} + n_neg={r['n_neg']} != n={r['n']}"),
    ]
    checks.append(Check(gxe.ExpectColumnValuesToBeNull(column="reason_problem"),
                        lambda r: f"{where(r)}: {r['reason_problem']}"))
    ids = [c for c in ("csv_line", "group", "family", "level", "feature", "n", "n_pos", "n_neg",
                       "n_pos_plus_neg", "auc", "auc_raw", "ci_low", "ci_high", "direction", "reason",
                       "reason_problem")
           if c in frame.columns]
    return Suite(name.removesuffix(".csv"), frame, checks, ids)


def top_suite(roc: pd.DataFrame, top: pd.DataFrame, threshold: float, name: str = "roc_auc_top.csv") -> Suite:
    """The top listing is exactly the pairs of ``roc`` with AUC > ``threshold``,
    with the same AUC and interval (whose own validity the ROC suite checks)."""
    keys = ["group", "family", "level", "feature"]
    values = ["auc", "ci_low", "ci_high"]
    above = roc.loc[roc["auc"].notna() & (roc["auc"] > threshold), keys + values]
    listed = top[keys + values].assign(csv_line=np.arange(2, len(top) + 2))
    frame = above.assign(**{k: above[k].map(_text) for k in keys}).merge(
        listed.assign(**{k: listed[k].map(_text) for k in keys}), on=keys, how="outer",
        suffixes=("_roc", "_top"), indicator=True)
    problem = np.full(len(frame), None, dtype=object)
    side = frame["_merge"].astype(str).to_numpy()
    problem[side == "left_only"] = f"has AUC > {threshold} in roc_auc.csv but is not listed"
    problem[side == "right_only"] = f"listed, but roc_auc.csv has no such pair with AUC > {threshold}"
    for i in np.flatnonzero(side == "both"):
        a, b = frame.loc[i, [f"{v}_roc" for v in values]], frame.loc[i, [f"{v}_top" for v in values]]
        if not np.allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=0, equal_nan=True):
            problem[i] = (f"AUC {_fmt(b.iloc[0])} [{_fmt(b.iloc[1])}, {_fmt(b.iloc[2])}] differs from roc_auc.csv "
                          f"({_fmt(a.iloc[0])} [{_fmt(a.iloc[1])}, {_fmt(a.iloc[2])}])")
    frame["problem"] = problem
    frame = frame.drop(columns="_merge")

    def describe(r):
        line = r.get("csv_line")
        line = f" line {int(line)}" if line is not None and line == line else ""
        return f"{name}{line}: {r['group']}/{r['family']} level {r['level']}/{r['feature']}: {r['problem']}"

    check = Check(gxe.ExpectColumnValuesToBeNull(column="problem"), describe)
    return Suite(name.removesuffix(".csv"), frame, [check], [*keys, "csv_line", "problem"])


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def significance_suite(tests: pd.DataFrame, matrices: Mapping[str, Mapping[str, pd.DataFrame]],
                       name: str = "significance") -> Suite:
    """The matrices (``{value_column: {group: features x families}}``) against ``tests``."""
    fh = tests[tests["test"] == "freeman_halton"]
    parts = []
    for value, by_group in matrices.items():
        for group, matrix in by_group.items():
            long = matrix.rename_axis(index="feature", columns=None).reset_index().melt(
                id_vars="feature", var_name="family", value_name="matrix_p")
            long["group"] = group
            long["value"] = value
            ref = fh.loc[fh["group"] == group, ["family", "feature", value, "reason"]].rename(
                columns={value: "tests_p"})
            long = long.merge(ref, on=["family", "feature"], how="left", indicator="_in_tests")
            long["in_tests"] = long.pop("_in_tests") == "both"
            parts.append(long)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["feature", "family", "matrix_p", "group", "value", "tests_p", "reason", "in_tests"])
    frame["file"] = frame["value"].map({"p_bonferroni": "significance_", "p_fdr": "significance_fdr_"}) \
        + frame["group"] + ".csv"

    def where(r):
        return f"{r['file']}: {r['feature']} x {r['family']}"

    checks = [
        _between("matrix_p", 0, 1, lambda r: f"{where(r)}: {_fmt(r['matrix_p'])} outside [0, 1]"),
        Check(gxe.ExpectColumnPairValuesToBeEqual(column_A="matrix_p", column_B="tests_p",
                                                  ignore_row_if="both_values_are_missing"),
              lambda r: f"{where(r)}: {_fmt(r['matrix_p'])} but tests.csv has {_fmt(r['tests_p'])}"),
        Check(gxe.ExpectColumnValuesToNotBeNull(column="reason", row_condition="matrix_p != matrix_p", **PANDAS),
              lambda r: f"{where(r)}: blank without a reason in tests.csv"),
        Check(gxe.ExpectColumnValuesToBeInSet(column="in_tests", value_set=[True]),
              lambda r: f"{where(r)}: no freeman_halton row in tests.csv"),
    ]
    return Suite(name, frame, checks, ["file", "group", "feature", "family", "matrix_p", "tests_p", "reason"])


def agreement_suite(agreement: pd.DataFrame, name: str = "agreement.csv") -> Suite:
    frame = agreement.copy()
    frame.insert(0, "csv_line", np.arange(2, len(frame) + 2))

    def where(r):
        return f"{name} line {r['csv_line']}: {r['feature']}"

    checks = [
        _between("icc", None, 1, lambda r: f"{where(r)}: ICC={_fmt(r['icc'])} above 1"),
        _at_least("icc", "icc_ci_low", lambda r: f"{where(r)}: ICC={_fmt(r['icc'])} below its "
                  f"ci_low={_fmt(r['icc_ci_low'])}"),
        _at_least("icc_ci_high", "icc", lambda r: f"{where(r)}: ICC={_fmt(r['icc'])} above its "
                  f"ci_high={_fmt(r['icc_ci_high'])}"),
        _between("n_pairs", 0, None, lambda r: f"{where(r)}: n_pairs={r['n_pairs']} negative"),
        Check(gxe.ExpectColumnValuesToNotBeNull(column="reason", row_condition="icc != icc", **PANDAS),
              lambda r: f"{where(r)}: ICC is NaN without a reason"),
    ]
    ids = ["csv_line", "feature", "n_pairs", "icc", "icc_ci_low", "icc_ci_high", "reason"]
    return Suite("agreement", frame, checks, ids)


def association_suites(
    tests: pd.DataFrame,
    roc: pd.DataFrame,
    top: pd.DataFrame,
    matrices: Mapping[str, Mapping[str, pd.DataFrame]],
    *,
    groups: Sequence[str],
    families: Sequence[str],
    features: Sequence[str],
    auc_threshold: float,
    n_boot: int,
    agreement: pd.DataFrame | None = None,
) -> list[Suite]:
    """All suites of the stage's tables (see the module docstring)."""
    suites = [
        tests_suite(tests),
        _coverage(tests, groups, families, features, TEST_KINDS, "tests.csv", "a result"),
        roc_suite(roc, "roc_auc.csv", n_boot=n_boot),
        _coverage(roc, groups, families, features, (), "roc_auc.csv", "an AUC"),
        top_suite(roc, top, auc_threshold),
        significance_suite(tests, matrices),
    ]
    if agreement is not None:
        suites.append(agreement_suite(agreement))
    return suites


def check_association_tables(*args, data_docs_dir=None, **kwargs):
    """Run :func:`association_suites`; return ``(problems, outcomes)``, one line per problem."""
    outcomes = run_checks(association_suites(*args, **kwargs), data_docs_dir=data_docs_dir)
    problems = list(dict.fromkeys(p for o in outcomes for p in o.problems))
    return problems, outcomes
