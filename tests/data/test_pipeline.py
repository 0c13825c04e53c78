"""tf.data pipeline over the array store: sampling, augmentation, evaluation order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import gliomics  # noqa: F401  (environment before TensorFlow)
from gliomics.data.arrays import ArrayStore, build_array_store, open_array_store
from gliomics.data.pipeline import Augment, eval_dataset, eval_index, train_batches, train_dataset
from gliomics.errors import GliomicsError

SIZE = 64


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from gliomics.data.synthetic import write_cohort

    root = tmp_path_factory.mktemp("pipe") / "kaggle_3m"
    write_cohort(root, seed=5, n_patients=3)
    out = root.parent / "store"
    build_array_store(root, out, image_size=SIZE)
    return open_array_store(out)


def square_store(tmp_path, n: int = 6) -> ArrayStore:
    """A store whose images are a bright square exactly where the mask is."""
    rng = np.random.default_rng(0)
    images = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    masks = np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        y, x = rng.integers(8, 36, size=2)
        masks[i, y : y + 20, x : x + 16] = 1
        images[i][masks[i] == 1] = 255
    index = pd.DataFrame({"patient": ["P"] * n, "folder": ["P_1"] * n, "slice": np.arange(1, n + 1),
                          "tumour": 1, "tumour_pixels": masks.reshape(n, -1).sum(1)})
    norm = pd.DataFrame({"patient": ["P"], "brain_pixels": [1]}).set_index("patient")
    return ArrayStore(tmp_path, images, masks, index, norm, {}, "x", np.zeros(n, np.int64),
                      np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32))


@pytest.mark.parametrize("fraction,batch_size", [(0.5, 8), (0.25, 6), (0.8, 4)])
def test_sampler_tumour_fraction(store, fraction, batch_size):
    make = train_batches(store, store.patients, batch_size=batch_size, tumour_fraction=fraction, augment=None, seed=1)
    flags = store.index["tumour"].to_numpy()
    seen = np.concatenate([flags[make(b)[2]] for b in range(300)])
    assert abs(seen.mean() - fraction) < 0.03
    natural = flags.mean()
    uniform = train_batches(store, store.patients, batch_size=8, tumour_fraction=None, augment=None, seed=1)
    seen = np.concatenate([flags[uniform(b)[2]] for b in range(300)])
    assert abs(seen.mean() - natural) < 0.05


def test_train_batches_only_from_given_patients(store):
    chosen = store.patients[:2]
    make = train_batches(store, chosen, batch_size=8, augment=None, seed=2)
    rows = np.concatenate([make(b)[2] for b in range(50)])
    assert set(store.index["patient"].to_numpy()[rows]) <= set(chosen)
    with pytest.raises(GliomicsError, match="not in the array store"):
        train_batches(store, ["TCGA_XX_0000"])
    with pytest.raises(GliomicsError):
        train_batches(store, store.patients[0])  # a string, not a list


def test_train_dataset_shapes_and_determinism(store):
    def run(seed, start=0, n=3):
        ds = train_dataset(store, store.patients, batch_size=4, seed=seed, n_batches=n, start_batch=start,
                           with_rows=True)
        return [tuple(t.numpy() for t in element) for element in ds]

    a, b, c = run(7), run(7), run(8)
    x, y, r = a[0]
    assert x.shape == (4, SIZE, SIZE, 3) and x.dtype == np.float32
    assert y.shape == (4, SIZE, SIZE, 1) and set(np.unique(y)) <= {0.0, 1.0}
    for (xa, ya, ra), (xb, yb, rb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(ra, rb)
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(a, c))
    resumed = run(7, start=2, n=1)[0]  # batch 2 is the same when a run resumes there
    assert all(np.array_equal(u, v) for u, v in zip(resumed, a[2]))
    # without with_rows, (x, y) pairs for keras
    element = next(iter(train_dataset(store, store.patients, batch_size=2, seed=0)))
    assert len(element) == 2


@pytest.mark.parametrize("distortion", ["grid", "elastic"])
def test_augmentation_keeps_image_and_mask_aligned(tmp_path, distortion):
    squares = square_store(tmp_path)
    aug = Augment(hflip=0.5, vflip=0.5, affine=1.0, rotate=30, scale=0.15, shift=0.1, brightness_contrast=0.0,
                  distortion=distortion, distortion_p=1.0)
    make = train_batches(squares, ["P"], batch_size=6, tumour_fraction=None, augment=aug, seed=3, normalise=False)
    changed = 0
    for b in range(4):
        x, y, rows = make(b)
        for i in range(len(rows)):
            mask = y[i, ..., 0] > 0.5
            bright = x[i, ..., 0] > 127
            changed += not np.array_equal(mask, squares.masks[rows[i]] > 0)
            assert mask.sum() > 0
            iou = (mask & bright).sum() / (mask | bright).sum()
            assert iou > 0.85, iou
    assert changed > 0  # the transforms did move things


def test_augmentation_deterministic_per_seed(store):
    aug = {"hflip": 0.5, "affine": 0.8, "distortion": "elastic", "distortion_p": 0.5, "brightness_contrast": 0.5}
    first = train_batches(store, store.patients, batch_size=4, augment=aug, seed=11)
    second = train_batches(store, store.patients, batch_size=4, augment=aug, seed=11)
    plain = train_batches(store, store.patients, batch_size=4, augment=None, seed=11)
    for b in (0, 3, 1):  # order of calls does not matter
        xa, ya, ra = first(b)
        xb, yb, rb = second(b)
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(ra, rb)
    assert not np.array_equal(first(0)[0], plain(0)[0])
    assert np.array_equal(first(0)[2], plain(0)[2])  # same slices, augmented differently
    with pytest.raises(GliomicsError, match="unknown augmentation"):
        train_batches(store, store.patients, augment={"hflipp": 0.5})


def test_eval_dataset_each_slice_once_in_order(store):
    wanted = [store.patients[2], store.patients[0]]
    ds = eval_dataset(store, wanted, batch_size=5, with_rows=True)
    xs, ys, rows = zip(*[tuple(t.numpy() for t in element) for element in ds])
    rows = np.concatenate(rows)
    frame = eval_index(store, wanted)
    assert np.array_equal(rows, frame["row"].to_numpy())
    assert len(rows) == len(set(rows)) == int(store.index["patient"].isin(wanted).sum())
    assert list(dict.fromkeys(frame["patient"])) == wanted
    for _, group in frame.groupby("patient"):
        assert group["slice"].is_monotonic_increasing
    y = np.concatenate(ys)[..., 0]
    assert np.array_equal(y, np.asarray(store.masks[rows], np.float32))
    x = np.concatenate(xs)
    assert np.allclose(x, store.normalise(np.asarray(store.images[rows]), rows))
    # per-patient volumes can be reassembled
    volume = y[(frame["patient"] == wanted[0]).to_numpy()]
    assert volume.shape[0] == int((store.index["patient"] == wanted[0]).sum())


def test_missing_sequence_augmentation_copies_flair_into_pre_and_or_post_contrast(store32):
    from gliomics.data.pipeline import Augment, drop_sequences, train_batches

    store, train, _ = store32
    x = np.random.default_rng(0).normal(size=(400, 4, 4, 3)).astype(np.float32)
    out = drop_sequences(x.copy(), 0.5, np.random.default_rng(1))
    np.testing.assert_array_equal(out[..., 1], x[..., 1])  # FLAIR is never touched
    changed = ~np.all(out == x, axis=(1, 2, 3))
    assert 0.4 < changed.mean() < 0.6
    for i in np.flatnonzero(changed):  # each changed slice: pre, post or both are now FLAIR, the rest as it was
        for c in (0, 2):
            assert np.array_equal(out[i, ..., c], x[i, ..., 1]) or np.array_equal(out[i, ..., c], x[i, ..., c])
    kinds = {tuple(c for c in (0, 2) if np.array_equal(out[i, ..., c], x[i, ..., 1])) for i in np.flatnonzero(changed)}
    assert kinds == {(0,), (2,), (0, 2)}

    base = dict(batch_size=8, tumour_fraction=0.5, seed=5)
    plain = train_batches(store, train, augment={"distortion": None}, **base)(3)
    always = train_batches(store, train, augment={"distortion": None, "missing_sequence": 1.0}, **base)(3)
    np.testing.assert_array_equal(plain[1], always[1])  # same slices, same geometric draws: same masks
    np.testing.assert_array_equal(plain[0][..., 1], always[0][..., 1])
    for image in always[0]:
        assert np.array_equal(image[..., 0], image[..., 1]) or np.array_equal(image[..., 2], image[..., 1])
    with pytest.raises(GliomicsError, match="missing_sequence must be a probability"):
        Augment.from_params({"missing_sequence": 1.5})
