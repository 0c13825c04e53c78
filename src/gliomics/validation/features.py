"""Expectation suite for the features table (one row per patient)."""

from __future__ import annotations

import great_expectations.expectations as gxe

from gliomics.validation.gx import Check, Suite

#: Features whose range is (0, 1] by definition (a ratio of a region to a
#: region that contains it).
UNIT_INTERVAL = ("solidity", "extent", "bounding_ellipsoid_volume_ratio")
NON_NEGATIVE = ("angular_standard_deviation", "margin_fluctuation", "perimeter", "equivalent_diameter",
                "convexity_defects", "glcm_contrast", "glcm_energy", "glcm_homogeneity")


def features_suite(table, feature_columns, csv_path, clinical_patients: set[str] | None) -> Suite:
    """Ranges of the Kota (2024) thesis features; NaN only with a reason; one row per patient.

    ``table`` gets a helper column ``unexplained_nan``: a row whose status is
    'ok' but that has a NaN feature.
    """
    frame = table.copy()
    frame["unexplained_nan"] = (frame["status"] == "ok") & frame[list(feature_columns)].isna().any(axis=1)

    def where(row):
        return f"{csv_path}: patient {row['patient']}"

    checks = [
        Check(gxe.ExpectColumnValuesToBeUnique(column="patient"), lambda r: f"{where(r)} appears more than once"),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="unexplained_nan", value_set=[False]),
            lambda r: f"{where(r)}: NaN feature with status 'ok'",
        ),
        Check(gxe.ExpectColumnValuesToNotBeNull(column="status"), lambda r: f"{where(r)}: empty status"),
        Check(
            gxe.ExpectColumnValuesToBeBetween(column="eccentricity", min_value=0, max_value=1, strict_max=True),
            lambda r: f"{where(r)}: eccentricity={r['eccentricity']} outside [0, 1)",
        ),
    ]
    for column in UNIT_INTERVAL:
        checks.append(Check(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1, strict_min=True),
            lambda r, c=column: f"{where(r)}: {c}={r[c]} outside (0, 1]",
        ))
    for column in NON_NEGATIVE:
        checks.append(Check(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0),
            lambda r, c=column: f"{where(r)}: {c}={r[c]} is negative",
        ))
    if clinical_patients is not None:
        checks.append(Check(
            gxe.ExpectColumnValuesToBeInSet(column="patient", value_set=sorted(clinical_patients)),
            lambda r: f"{where(r)}: not in data.csv",
        ))
        checks.append(Check(
            gxe.ExpectTableRowCountToEqual(value=len(clinical_patients)),
            lambda result: f"{csv_path}: {result.get('observed_value')} rows, expected one per data.csv patient "
            f"({len(clinical_patients)})",
            table_level=True,
        ))
    id_columns = ["patient", "status", *dict.fromkeys(["eccentricity", *UNIT_INTERVAL, *NON_NEGATIVE])]
    return Suite("features", frame, checks, id_columns)
