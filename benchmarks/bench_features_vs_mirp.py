#!/usr/bin/env python
"""Cross-check gliomics.features against MIRP on real LGG ROIs, and time both.

MIRP (IBSI-compliant, https://github.com/oncoray/mirp) is never a project
dependency: run this script from a throwaway environment that has it plus
the few libraries ``gliomics.features`` needs, with the project's ``src`` on
the path::

    python3 -m venv /tmp/mirp-venv
    /tmp/mirp-venv/bin/pip install mirp opencv-python-headless tifffile
    .venv/bin/python ../shared/data/restore_lgg.py /tmp/lgg_real --patients 25
    PYTHONPATH=src /tmp/mirp-venv/bin/python benchmarks/bench_features_vs_mirp.py \\
        --data /tmp/lgg_real/kaggle_3m --patients 25

For every patient two ROIs are analysed by both libraries, side by side in
this one run:

- 3D: the whole tumour mask, voxel spacing ``--spacing`` (default 6, 1, 1:
  the project's default slice-spacing ratio), passed to MIRP as NIfTI files
  so that it sees the same spacing. Compared: mesh volume, voxel volume,
  mesh area, sphericity, maximum diameter, convex-hull volume density
  (our 3D solidity), and the MVEE volume density (non-IBSI in MIRP). MIRP
  computes the latter from the mesh volume and plain Khachiyan on the mesh
  hull stopped at ||u_new - u|| <= 1e-3, and its shape matrix subtracts the
  inner product c.c where Khachiyan subtracts the outer product c c^T; we
  compare it both with our converged solver on the same mesh and with a
  replica of MIRP's computation (our BEVR column itself uses the voxel
  volume and the voxel-corner MVEE).
- 2D: the FLAIR channel of the largest tumour slice, masked GLCM at
  distance 1, symmetric, 32 fixed bins over the ROI range, features of the 4
  directions averaged (MIRP ``glcm_spatial_method="2d_average"``). Compared:
  contrast, correlation, energy (= our ASM), inverse difference moment
  (= our homogeneity).

Timings: wall-clock per library for the overlapping features on the same
ROIs, and our full ``patient_features`` row (all columns) for reference.
MIRP computes whole feature families (all morphology features incl. Moran's
I and Geary's c, all GLCM features), so its time covers more features than
it is compared on; that is the price of using it for these features.

Prints a table and writes JSON (``--out``, default
benchmarks/results/features_vs_mirp.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

GLCM_PAIRS = [  # ours -> MIRP
    ("glcm_contrast", "cm_contrast_d1_2d_avg_fbn_n32"),
    ("glcm_correlation", "cm_corr_d1_2d_avg_fbn_n32"),
    ("glcm_asm", "cm_energy_d1_2d_avg_fbn_n32"),
    ("glcm_homogeneity", "cm_inv_diff_mom_d1_2d_avg_fbn_n32"),
]
MORPH_PAIRS = [
    ("volume_3d", "morph_volume"),
    ("volume_voxels", "morph_vol_approx"),
    ("surface_area_3d", "morph_area_mesh"),
    ("sphericity_3d", "morph_sphericity"),
    ("max_diameter_3d", "morph_diam"),
    ("solidity_3d", "morph_vol_dens_conv_hull"),
    ("mesh_mvee_density", "morph_vol_dens_mvee"),
    ("mesh_mvee_density_mirp_rule", "morph_vol_dens_mvee"),
]


def load_patient(folder: Path):
    import tifffile

    numbers = sorted(
        int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(rf"{folder.name}_(\d+)\.tif", p.name))
    )
    image = np.stack([tifffile.imread(folder / f"{folder.name}_{n}.tif") for n in numbers])
    mask = np.stack([tifffile.imread(folder / f"{folder.name}_{n}_mask.tif") for n in numbers]) > 0
    return image, mask


def write_nifti(array: np.ndarray, spacing, path: Path) -> None:
    import itk

    img = itk.image_from_array(np.ascontiguousarray(array))
    img.SetSpacing([float(s) for s in spacing[::-1]])  # ITK order: x, y, z
    itk.imwrite(img, str(path))


def ours_overlap(flair_slice, mask_slice, mask, spacing):
    """Our features that MIRP also computes (timed)."""
    from gliomics.features import glcm_features, shape3d_features

    f = glcm_features(flair_slice, mask_slice, n_bins=32)
    f.update(shape3d_features(mask, spacing))
    return f


def ours_untimed_extras(mask, spacing):
    """Cross-check-only quantities, outside the timing.

    ``mesh_mvee_density``: mesh volume over the volume of the MVEE of the
    marching-cubes hull vertices, with our converged solver (what MIRP's
    morph_vol_dens_mvee means). ``mesh_mvee_density_mirp_rule``: the same
    through a replica of MIRP's own computation (:func:`_khachiyan_mirp_rule`),
    to show where the difference comes from; ``mirp_rule_max_mahalanobis``
    > 1 means that ellipsoid misses some hull vertices.
    """
    from scipy.spatial import ConvexHull
    from skimage.measure import marching_cubes

    from gliomics.features import minimum_volume_enclosing_ellipsoid, volume

    verts = marching_cubes(np.pad(mask, 1).astype(np.float64), 0.5, spacing=tuple(spacing))[0]
    v = verts[ConvexHull(verts).vertices]
    v = v - verts.mean(axis=0)
    centre, scale = v.mean(axis=0), np.abs(v - v.mean(axis=0)).max(axis=0)
    mvee = minimum_volume_enclosing_ellipsoid((v - centre) / scale)[2] * float(np.prod(scale))
    mesh_volume = volume(mask, spacing)
    loose_volume, loose_reach = _khachiyan_mirp_rule(v)
    return {
        "volume_voxels": volume(mask, spacing, method="voxels"),
        "mesh_mvee_density": mesh_volume / mvee,
        "mesh_mvee_density_mirp_rule": mesh_volume / loose_volume,
        "mirp_rule_max_mahalanobis": loose_reach,
    }


def _khachiyan_mirp_rule(p, tolerance=1e-3):
    """Replica of MIRP 2.7's MVEE (morph_3d_data.compute_semi_axes).

    Plain Khachiyan stopped at ||u_new - u|| <= 1e-3, no final enclosing
    rescale, and the shape matrix built as
    ``inv(P U P^T - (P u) . (P u)) / d``: MIRP's ``np.matmul`` of two 1-D
    arrays is their inner product, so a scalar is subtracted from every
    entry where Khachiyan's formula subtracts the outer product c c^T.
    Returns the ellipsoid volume and the largest (p - c)^T A (p - c) over
    the points (> 1: the ellipsoid misses some of them).
    """
    n, d = p.shape
    q = np.vstack([p.T, np.ones(n)])
    u = np.full(n, 1.0 / n)
    err = 1.0
    while err > tolerance:
        m = np.einsum("ij,ji->i", q.T, np.linalg.solve(q @ (u[:, None] * q.T), q))
        j = int(np.argmax(m))
        step = (m[j] - d - 1.0) / ((d + 1.0) * (m[j] - 1.0))
        new = u * (1.0 - step)
        new[j] += step
        err = float(np.linalg.norm(new - u))
        u = new
    c = p.T @ u
    a = np.linalg.inv(p.T @ (u[:, None] * p) - float(c @ c)) / d  # sic: inner product
    semi_axes = 1.0 / np.sqrt(np.linalg.svd(a, compute_uv=False))
    r = p - c
    reach = float(np.einsum("ij,jk,ik->i", r, a, r).max())
    return 4.0 / 3.0 * math.pi * float(np.prod(semi_axes)), reach


def mirp_glcm(flair_slice, mask_slice):
    from mirp import extract_features

    out = extract_features(
        image=flair_slice[None].astype(np.float64),
        mask=mask_slice[None],
        image_modality="mr",
        by_slice=True,
        base_feature_families="glcm",
        base_discretisation_method="fixed_bin_number",
        base_discretisation_n_bins=32,
        glcm_distance=1.0,
        glcm_spatial_method="2d_average",
        export_features=True,
    )
    return out[0].iloc[0].to_dict()


def mirp_morph(image_path, mask_path):
    from mirp import extract_features

    out = extract_features(
        image=str(image_path),
        mask=str(mask_path),
        image_modality="mr",
        by_slice=False,
        ibsi_compliant=False,  # needed for morph_vol_dens_mvee
        base_feature_families="morphology",
        export_features=True,
    )
    return out[0].iloc[0].to_dict()


def agreement(pairs, ours_rows, mirp_rows):
    table = {}
    for ours, theirs in pairs:
        a = np.array([r[ours] for r in ours_rows], dtype=float)
        b = np.array([r[theirs] for r in mirp_rows], dtype=float)
        ok = np.isfinite(a) & np.isfinite(b)
        diff = np.abs(a[ok] - b[ok])
        rel = diff / np.maximum(np.abs(b[ok]), 1e-12)
        table[ours] = {
            "mirp_feature": theirs,
            "n": int(ok.sum()),
            "max_abs_diff": float(diff.max()) if ok.any() else math.nan,
            "max_rel_diff": float(rel.max()) if ok.any() else math.nan,
            "median_rel_diff": float(np.median(rel)) if ok.any() else math.nan,
            "pearson_r": float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else math.nan,
        }
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/lgg_real/kaggle_3m", help="Kaggle-layout folder")
    ap.add_argument("--patients", type=int, default=25)
    ap.add_argument("--spacing", type=float, nargs=3, default=(6.0, 1.0, 1.0), metavar=("DZ", "DY", "DX"))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "features_vs_mirp.json"))
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import mirp  # noqa: F401  (fail early when run from the wrong environment)

    from gliomics.features import patient_features

    folders = sorted(p for p in Path(args.data).iterdir() if p.is_dir())[: args.patients]
    if not folders:
        sys.exit(f"no patient folders under {args.data}")
    spacing = tuple(args.spacing)
    rois = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_mirp_"))
    for folder in folders:
        image, mask = load_patient(folder)
        if not mask.any():
            continue
        z = int(np.argmax(mask.sum(axis=(1, 2))))
        flair = image[..., 1]
        ipath, mpath = tmp / f"{folder.name}_image.nii.gz", tmp / f"{folder.name}_mask.nii.gz"
        write_nifti(flair.astype(np.float32), spacing, ipath)
        write_nifti(mask.astype(np.uint8), spacing, mpath)
        rois.append({"patient": folder.name, "image": image, "mask": mask, "z": z, "ipath": ipath, "mpath": mpath})
    print(f"{len(rois)} patients with a tumour -> {len(rois)} 3D ROIs + {len(rois)} 2D ROIs", flush=True)

    # warm-up (imports, lazily built tables) outside the timings
    r0 = rois[0]
    ours_overlap(r0["image"][r0["z"], :, :, 1], r0["mask"][r0["z"]], r0["mask"], spacing)
    mirp_glcm(r0["image"][r0["z"], :, :, 1], r0["mask"][r0["z"]])
    mirp_morph(r0["ipath"], r0["mpath"])

    from gliomics.features import glcm_features, shape3d_features

    t0 = time.perf_counter()
    ours_rows = [glcm_features(r["image"][r["z"], :, :, 1], r["mask"][r["z"]], n_bins=32) for r in rois]
    t_ours_glcm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r, row in zip(rois, ours_rows):
        row.update(shape3d_features(r["mask"], spacing))
    t_ours_3d = time.perf_counter() - t0
    t_ours = t_ours_glcm + t_ours_3d

    t0 = time.perf_counter()
    full_rows = [patient_features(r["image"], r["mask"], spacing=spacing) for r in rois]
    t_ours_full = time.perf_counter() - t0

    t0 = time.perf_counter()
    mirp_rows = [mirp_glcm(r["image"][r["z"], :, :, 1], r["mask"][r["z"]]) for r in rois]
    t_mirp_glcm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r, row in zip(rois, mirp_rows):
        row.update(mirp_morph(r["ipath"], r["mpath"]))
    t_mirp_3d = time.perf_counter() - t0
    t_mirp = t_mirp_glcm + t_mirp_3d

    for r, row in zip(rois, ours_rows):
        row.update(ours_untimed_extras(r["mask"], spacing))

    result = {
        "rois": len(rois),
        "patients": [r["patient"] for r in rois],
        "spacing_dz_dy_dx": spacing,
        "agreement": {
            "glcm_largest_slice": agreement(GLCM_PAIRS, ours_rows, mirp_rows),
            "morphology_3d": agreement(MORPH_PAIRS, ours_rows, mirp_rows),
        },
        "timing_s": {
            "ours_overlapping_features": t_ours,
            "mirp_overlapping_features": t_mirp,
            "speedup": t_mirp / t_ours,
            "ours_per_patient_ms": 1e3 * t_ours / len(rois),
            "mirp_per_patient_ms": 1e3 * t_mirp / len(rois),
            "ours_glcm_2d": t_ours_glcm,
            "mirp_glcm_2d": t_mirp_glcm,
            "ours_morphology_3d": t_ours_3d,
            "mirp_morphology_3d": t_mirp_3d,
            "ours_patient_features_all_columns": t_ours_full,
        },
        "mirp_rule_max_mahalanobis": [float(o["mirp_rule_max_mahalanobis"]) for o in ours_rows],
        "per_roi": [
            {
                "patient": r["patient"],
                "ours": {k: float(v) for k, v in o.items()},
                "mirp": {m: float(mr[m]) for _, m in GLCM_PAIRS + MORPH_PAIRS},
                "status": f["status"],
            }
            for r, o, mr, f in zip(rois, ours_rows, mirp_rows, full_rows)
        ],
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "mirp": _version("mirp"),
            "numpy": _version("numpy"),
            "scikit-image": _version("scikit-image"),
            "opencv-python-headless": _version("opencv-python-headless"),
        },
    }

    print(f"\n{'feature':32s} {'MIRP':28s} {'n':>3s} {'max |diff|':>11s} {'max rel':>9s} {'median rel':>10s}")
    for group in result["agreement"].values():
        for ours, a in group.items():
            print(
                f"{ours:32s} {a['mirp_feature']:28s} {a['n']:3d} {a['max_abs_diff']:11.3g}"
                f" {a['max_rel_diff']:9.2e} {a['median_rel_diff']:10.2e}"
            )
    t = result["timing_s"]
    print(
        f"\ntiming on {len(rois)} patients (overlapping features, wall clock, one process):"
        f"\n  gliomics.features  {t['ours_overlapping_features']:8.3f} s  ({t['ours_per_patient_ms']:.1f} ms/patient)"
        f"\n  MIRP {_version('mirp'):13s} {t['mirp_overlapping_features']:8.3f} s  ({t['mirp_per_patient_ms']:.1f} ms/patient)"
        f"\n  speed-up           {t['speedup']:8.1f} x"
        f"\n    GLCM (2D):       ours {t['ours_glcm_2d']:.3f} s, MIRP {t['mirp_glcm_2d']:.3f} s"
        f"\n    morphology (3D): ours {t['ours_morphology_3d']:.3f} s, MIRP {t['mirp_morphology_3d']:.3f} s"
        f"\n  gliomics patient_features, all columns: {t['ours_patient_features_all_columns']:.3f} s"
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


if __name__ == "__main__":
    raise SystemExit(main())
