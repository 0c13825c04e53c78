"""Expectation suites for a cohort's inputs: ``data.csv`` and the slice manifest."""

from __future__ import annotations

from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd

from gliomics.data.kaggle import (CLINICAL_CODES, CLINICAL_COLUMNS, CLUSTER_FAMILIES, FOLDER_PATTERN, IMAGE_SHAPE,
                                  MASK_SHAPE, PATIENT_PATTERN)
from gliomics.validation.gx import Check, Suite

IMAGE_SHAPE_TEXT = "x".join(map(str, IMAGE_SHAPE))
MASK_SHAPE_TEXT = "x".join(map(str, MASK_SHAPE))


def normalise_codes(clinical_text):
    """Write integral numbers as integers ('2.0' → '2'); leave anything else as is.

    The original file writes codes as integers, but a re-saved copy may not;
    both are valid. Non-numeric text stays, so that validation can name it.
    """
    frame = clinical_text.copy()
    for column in frame.columns:
        if column == "Patient":
            continue
        numbers = pd.to_numeric(frame[column], errors="coerce")
        integral = numbers.notna() & (numbers == numbers.round())
        frame.loc[integral, column] = numbers[integral].astype("int64").astype(str)
        frame[column] = frame[column].replace("", None)
    return frame


def clinical_suite(clinical_text, csv_path: Path, folder_patients: set[str]) -> Suite:
    """Expectations on ``data.csv`` (text cells, '' = missing).

    Column set exact; ``Patient`` present, unique, well formed, and with a
    folder; every code column within its documented codes or missing; age a
    number.
    """
    frame = normalise_codes(clinical_text)
    frame.insert(0, "csv_line", range(2, len(frame) + 2))  # header is line 1

    def where(row):
        patient = row.get("Patient")
        return f"{csv_path} line {row['csv_line']}" + (f" (Patient {patient})" if patient else "")

    def codes_check(column, codes):
        allowed = ", ".join(map(str, codes))

        def describe(row):
            value = row[column]
            kind = "out of range" if _is_number(value) else "not a number"
            return f"{where(row)}: {column}={value!r} {kind} (allowed: {allowed} or empty)"

        return Check(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[str(c) for c in codes]), describe)

    def describe_columns(result):
        mismatch = (result.get("details") or {}).get("mismatched") or {}
        parts = []
        if mismatch.get("missing"):
            parts.append("missing column(s) " + ", ".join(sorted(mismatch["missing"])))
        if mismatch.get("unexpected"):
            parts.append("unexpected column(s) " + ", ".join(sorted(mismatch["unexpected"])))
        return f"{csv_path}: " + "; ".join(parts or ["columns differ from the Kaggle data.csv"])

    checks = [
        Check(
            gxe.ExpectTableColumnsToMatchSet(column_set=["csv_line", *CLINICAL_COLUMNS], exact_match=True),
            describe_columns,
            table_level=True,
        )
    ]
    present = set(frame.columns)
    if "Patient" in present:
        checks += [
            Check(gxe.ExpectColumnValuesToNotBeNull(column="Patient"), lambda r: f"{where(r)}: empty Patient"),
            Check(
                gxe.ExpectColumnValuesToBeUnique(column="Patient"),
                lambda r: f"{where(r)}: Patient {r['Patient']} appears more than once",
            ),
            Check(
                gxe.ExpectColumnValuesToMatchRegex(column="Patient", regex=PATIENT_PATTERN),
                lambda r: f"{where(r)}: Patient {r['Patient']!r} is not of the form TCGA_XX_NNNN",
            ),
            Check(
                gxe.ExpectColumnValuesToBeInSet(column="Patient", value_set=sorted(folder_patients)),
                lambda r: f"{where(r)}: Patient {r['Patient']} has no slice folder",
            ),
        ]
    for column, codes in {**CLUSTER_FAMILIES, **CLINICAL_CODES}.items():
        if column in present:
            checks.append(codes_check(column, codes))
    if "age_at_initial_pathologic" in present:
        checks.append(
            Check(
                gxe.ExpectColumnValuesToMatchRegex(column="age_at_initial_pathologic", regex=r"^\d+(?:\.\d+)?$"),
                lambda r: f"{where(r)}: age_at_initial_pathologic={r['age_at_initial_pathologic']!r} not a number",
            )
        )
    id_columns = [c for c in ("csv_line", "Patient") if c in present]
    return Suite("clinical", frame, checks, id_columns)


def manifest_suite(manifest, root: Path) -> Suite:
    """Expectations on the per-slice manifest (one row per slice).

    Every slice readable, has image and mask, image 256x256x3 uint8, mask
    256x256 uint8 with values only 0/255.
    """
    image = lambda r: root / r["image_path"] if r.get("image_path") else root / r["folder"]  # noqa: E731
    mask = lambda r: root / r["mask_path"] if r.get("mask_path") else root / r["folder"]  # noqa: E731
    checks = [
        Check(gxe.ExpectColumnValuesToBeNull(column="read_error"), lambda r: r["read_error"]),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="has_mask", value_set=[True]),
            lambda r: f"{image(r)}: image without mask (expected {r['folder']}_{r['slice']}_mask.tif)",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="has_image", value_set=[True]),
            lambda r: f"{mask(r)}: mask without image (expected {r['folder']}_{r['slice']}.tif)",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="image_shape", value_set=[IMAGE_SHAPE_TEXT]),
            lambda r: f"{image(r)}: image is {r['image_shape']}, expected {IMAGE_SHAPE_TEXT}",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="image_dtype", value_set=["uint8"]),
            lambda r: f"{image(r)}: image is {r['image_dtype']}, expected uint8",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="mask_shape", value_set=[MASK_SHAPE_TEXT]),
            lambda r: f"{mask(r)}: mask is {r['mask_shape']}, expected {MASK_SHAPE_TEXT}"
            + (f" like its image ({r['image_shape']})" if r.get("image_shape") else ""),
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="mask_dtype", value_set=["uint8"]),
            lambda r: f"{mask(r)}: mask is {r['mask_dtype']}, expected uint8",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="mask_binary", value_set=[True]),
            lambda r: f"{mask(r)}: mask has values other than 0/255 (found {r['mask_values']})",
        ),
    ]
    id_columns = ["folder", "slice", "patient", "image_path", "mask_path", "image_shape", "image_dtype",
                  "mask_shape", "mask_dtype", "mask_values", "read_error"]
    return Suite("slices", manifest, checks, id_columns)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def folders_suite(folders, root: Path, clinical_patients: set[str] | None) -> Suite:
    """Expectations on the patient folders (one row per folder).

    Folder named ``TCGA_XX_NNNN_YYYYMMDD``, holding at least one slice,
    slices numbered 1..n without gaps (column ``missing_slices`` lists the
    absent numbers), and a row in ``data.csv``.
    """
    checks = [
        Check(
            gxe.ExpectColumnValuesToMatchRegex(column="folder", regex=FOLDER_PATTERN),
            lambda r: f"{root / r['folder']}: folder name is not of the form TCGA_XX_NNNN_YYYYMMDD",
        ),
        Check(
            gxe.ExpectColumnValuesToBeBetween(column="n_slices", min_value=1),
            lambda r: f"{root / r['folder']}: no slices named {r['folder']}_<n>.tif",
        ),
        Check(
            gxe.ExpectColumnValuesToBeNull(column="missing_slices"),
            lambda r: f"{root / r['folder']}: slice numbers are not 1..{r['max_slice']} without gaps "
            f"(missing: {r['missing_slices']})",
        ),
    ]
    if clinical_patients is not None:
        checks.append(
            Check(
                gxe.ExpectColumnValuesToBeInSet(column="patient", value_set=sorted(clinical_patients)),
                lambda r: f"{root / r['folder']}: patient {r['patient']} has no row in data.csv",
            )
        )
    return Suite("folders", folders, checks, ["folder", "patient", "n_slices", "max_slice", "missing_slices"])
