"""The array store: decode once, memory-map, cache by fingerprint, atomic."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import gliomics  # noqa: F401  (environment before TensorFlow)
from gliomics.data import arrays
from gliomics.data.arrays import build_array_store, open_array_store, resize_image, resize_mask
from gliomics.data.kaggle import read_tif, scan_cohort
from gliomics.errors import GliomicsError

SIZE = 64


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    from gliomics.data.synthetic import write_cohort

    root = tmp_path_factory.mktemp("arrays") / "kaggle_3m"
    write_cohort(root, seed=3, n_patients=2)
    return root


@pytest.fixture(scope="module")
def store_dir(tiny_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "arrays"
    build_array_store(tiny_cohort, out, image_size=SIZE)
    return out


def test_round_trip(tiny_cohort, store_dir):
    store = open_array_store(store_dir)
    slices, _, _ = scan_cohort(tiny_cohort)
    n = len(slices)
    assert store.images.shape == (n, SIZE, SIZE, 3) and store.images.dtype == np.uint8
    assert store.masks.shape == (n, SIZE, SIZE) and store.masks.dtype == np.uint8
    assert isinstance(store.images, np.memmap) and isinstance(store.masks, np.memmap)
    assert set(np.unique(store.masks)) <= {0, 1}
    assert list(store.index.columns[:5]) == ["patient", "folder", "slice", "tumour", "tumour_pixels"]
    flags = store.masks.reshape(n, -1).max(axis=1)
    assert np.array_equal(store.index["tumour"].to_numpy(), flags)
    assert np.array_equal(store.index["tumour_pixels"].to_numpy(), store.masks.reshape(n, -1).sum(axis=1))
    assert store.index["tumour"].sum() > 0 and (store.index["tumour"] == 0).sum() > 0
    # row i is slice i of the scan, decoded and resized as documented
    assert list(zip(store.index["folder"], store.index["slice"])) == [(s.folder, s.slice) for s in slices]
    i = int(np.flatnonzero(flags)[0])
    assert np.array_equal(store.images[i], resize_image(read_tif(slices[i].image), SIZE))
    assert np.array_equal(store.masks[i], resize_mask(read_tif(slices[i].mask), SIZE))
    assert store.image_size == SIZE and store.settings["prefilter"] is None


def test_resize_mask_area_threshold():
    mask = np.zeros((256, 256), np.uint8)
    mask[10:12, 10:12] = 255  # covers a quarter of the 4x4 source cell of pixel (2, 2)
    mask[100:140, 100:140] = 255
    small = resize_mask(mask, 64)
    assert small.dtype == np.uint8 and set(np.unique(small)) == {0, 1}
    assert small[2, 2] == 0  # a quarter-covered cell is background
    assert small[25:35, 25:35].all()


def test_rebuild_skipped_unless_changed(tiny_cohort, tmp_path):
    cohort = tmp_path / "kaggle_3m"
    shutil.copytree(tiny_cohort, cohort)
    out = tmp_path / "store"
    first = build_array_store(cohort, out, image_size=SIZE)
    assert first.built
    again = build_array_store(cohort, out, image_size=SIZE)
    assert not again.built and again.fingerprint == first.fingerprint
    # a setting changes -> rebuilt
    other = build_array_store(cohort, out, image_size=SIZE, prefilter="median")
    assert other.built and other.fingerprint != first.fingerprint
    assert open_array_store(out).settings["prefilter"] == "median"
    # an input file changes (same size, new content/mtime) -> rebuilt
    mask = next(cohort.glob("*/*_mask.tif"))
    stat = mask.stat()
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert build_array_store(cohort, out, image_size=SIZE, prefilter="median").built
    assert not build_array_store(cohort, out, image_size=SIZE, prefilter="median").built
    assert build_array_store(cohort, out, image_size=SIZE, prefilter="median", force=True).built


def test_failed_build_leaves_nothing_partial(tiny_cohort, tmp_path, monkeypatch):
    out = tmp_path / "store"
    real = arrays._decode
    calls = {"n": 0}

    def flaky(item, settings):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk on fire")
        return real(item, settings)

    monkeypatch.setattr(arrays, "_decode", flaky)
    with pytest.raises(RuntimeError):
        build_array_store(tiny_cohort, out, image_size=SIZE, workers=1)
    assert not out.exists()
    assert [p for p in tmp_path.iterdir()] == []  # no temporary left behind either

    monkeypatch.setattr(arrays, "_decode", real)
    good = build_array_store(tiny_cohort, out, image_size=SIZE)
    calls["n"] = 0
    monkeypatch.setattr(arrays, "_decode", flaky)
    with pytest.raises(RuntimeError):
        build_array_store(tiny_cohort, out, image_size=SIZE, prefilter="gaussian", workers=1)
    kept = open_array_store(out)  # the previous store survives, whole
    assert kept.fingerprint == good.fingerprint and kept.settings["prefilter"] is None


@pytest.mark.parametrize("prefilter", ["median", "gaussian"])
def test_prefilters_change_images_not_masks(tiny_cohort, store_dir, tmp_path, prefilter):
    plain = open_array_store(store_dir)
    build_array_store(tiny_cohort, tmp_path / "f", image_size=SIZE, prefilter=prefilter, sigma=1.5)
    filtered = open_array_store(tmp_path / "f")
    assert not np.array_equal(plain.images, filtered.images)
    assert np.array_equal(plain.masks, filtered.masks)
    assert filtered.index["tumour"].equals(plain.index["tumour"])


def test_bad_settings(tiny_cohort, tmp_path):
    with pytest.raises(GliomicsError, match="prefilter"):
        build_array_store(tiny_cohort, tmp_path / "s", prefilter="bilateral")
    with pytest.raises(GliomicsError, match="odd"):
        build_array_store(tiny_cohort, tmp_path / "s", prefilter="median", filter_size=4)
    with pytest.raises(GliomicsError, match="not an array store"):
        open_array_store(tmp_path)


def test_normalisation_zero_mean_unit_std_over_brain(store_dir):
    store = open_array_store(store_dir)
    for patient in store.patients:
        rows = store.rows([patient])
        images = np.asarray(store.images[rows])
        brain = images.max(axis=-1) > 0
        z = store.normalise(images, rows)
        assert z.dtype == np.float32
        pixels = z[brain]
        assert np.allclose(pixels.mean(axis=0), 0.0, atol=1e-3)
        assert np.allclose(pixels.std(axis=0), 1.0, atol=1e-3)


def test_manifest_selects_slices(tiny_cohort, tmp_path):
    import pandas as pd

    slices, _, _ = scan_cohort(tiny_cohort)
    first = slices[0].patient
    manifest = pd.DataFrame(
        [
            {"patient": s.patient, "folder": s.folder, "slice": s.slice,
             "image_path": str(s.image.relative_to(tiny_cohort)), "mask_path": str(s.mask.relative_to(tiny_cohort))}
            for s in slices if s.patient == first
        ]
    )
    path = tmp_path / "manifest.csv"
    manifest.to_csv(path, index=False)
    result = build_array_store(tiny_cohort, tmp_path / "s", image_size=SIZE, manifest=path)
    store = open_array_store(result.path)
    assert store.patients == [first] and result.n_slices == len(manifest)
    with pytest.raises(GliomicsError, match="not in the array store"):
        store.rows(["TCGA_XX_0000"])
