"""One input reader for every command (:mod:`gliomics.data.slices`).

ONE damaged slice in a small cohort (an image in uint16 or float32, 512x512, RGBA, grey; a mask with the
value 128 or of the wrong shape) stops ``evaluate`` (segmenter and ``--task classifier``), ``segment``,
``features`` and ``analyze`` alike: exit 2, one stderr line ``gliomics <command>: error: <file>: <problem>``,
and no output (neither ``--out`` nor a hidden ``.<out>.*`` temporary folder). ``segment`` and ``analyze`` do
not read masks, so the mask damages concern ``evaluate`` and ``features`` only. ``gliomics validate``
refuses the same slices.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from gliomics.cli import main
from gliomics.errors import GliomicsError

#: Patients copied from the small cohort; the damage is in the first one (the second is still pending or
#: running in ``features``' process pool when the error comes back).
N_PATIENTS = 2
#: The damaged slice (tumour-free in the synthetic cohort: ``features`` used to skip reading such images).
SLICE = 1
EXPECT_IMAGE = "expected 256x256x3 uint8 (the Kaggle slice size)"
EXPECT_MASK = "expected 256x256 uint8 (the Kaggle mask size)"


def _mask_128(mask: np.ndarray) -> np.ndarray:
    damaged = mask.copy()
    damaged[100:110, 100:110] = 128
    damaged[0:2, 0:2] = 255
    return damaged


#: name -> (which file, what becomes of its array, the problem the error line states)
DAMAGES = {
    "uint16 image": ("image", lambda a: a.astype(np.uint16) * 257, f"image is 256x256x3 uint16, {EXPECT_IMAGE}"),
    "float32 image": ("image", lambda a: a.astype(np.float32) / 255, f"image is 256x256x3 float32, {EXPECT_IMAGE}"),
    "512 px image": ("image", lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=1),
                     f"image is 512x512x3 uint8, {EXPECT_IMAGE}"),
    "RGBA image": ("image", lambda a: np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=-1),
                   f"image is 256x256x4 uint8, {EXPECT_IMAGE}"),
    "grey image": ("image", lambda a: a[..., 1], f"image is 256x256 uint8, {EXPECT_IMAGE}"),
    "mask value 128": ("mask", _mask_128, "mask has values other than 0/255 (found 0,128,255)"),
    "RGB mask": ("mask", lambda m: np.repeat(m[..., None], 3, axis=-1), f"mask is 256x256x3 uint8, {EXPECT_MASK}"),
    "128 px mask": ("mask", lambda m: m[::2, ::2], f"mask is 128x128 uint8, {EXPECT_MASK}"),
}
IMAGE_DAMAGES = sorted(k for k, (kind, _, _) in DAMAGES.items() if kind == "image")
MASK_DAMAGES = sorted(k for k, (kind, _, _) in DAMAGES.items() if kind == "mask")


def _evaluate(root, folder, out, model):
    return ["evaluate", "--data", str(root), "--model", model, "--out", str(out), "--no-mlflow"]


def _evaluate_classifier(root, folder, out, model):
    return [*_evaluate(root, folder, out, model), "--task", "classifier", "--from-segmenter"]


def _segment(root, folder, out, model):
    return ["segment", "--input", str(root), "--model", model, "--out", str(out), "--no-mlflow"]


def _features(root, folder, out, model):
    return ["features", "--data", str(root), "--masks", "truth", "--out", str(out), "--no-mlflow"]


def _analyze(root, folder, out, model):
    return ["analyze", "--input", str(folder), "--out", str(out), "--model", model,
            "--reference", str(out.parent / "none.csv"), "--associations", str(out.parent / "none")]


#: command (as the error line names it) -> (argv builder, the --out it is given, relative to tmp_path)
COMMANDS = {
    "evaluate": (_evaluate, "eval"),
    "evaluate --task classifier": (_evaluate_classifier, "eval"),
    "segment": (_segment, "seg"),
    "features": (_features, "features_truth.csv"),
    "analyze": (_analyze, "analysis"),
}
MASK_COMMANDS = ["evaluate", "evaluate --task classifier", "features"]  # segment and analyze ignore masks


@pytest.fixture(scope="module")
def pristine(small_cohort, tmp_path_factory) -> Path:
    """The first patients of the small cohort with their rows of data.csv: a valid cohort, read-only."""
    import pandas as pd

    from gliomics.data.kaggle import patient_of

    root = tmp_path_factory.mktemp("reader") / "kaggle_3m"
    root.mkdir()
    folders = sorted(p for p in small_cohort.iterdir() if p.is_dir())[:N_PATIENTS]
    for folder in folders:
        shutil.copytree(folder, root / folder.name)
    clinical = pd.read_csv(small_cohort / "data.csv", dtype=str, keep_default_na=False)
    clinical[clinical["Patient"].isin({patient_of(f.name) for f in folders})].to_csv(root / "data.csv", index=False)
    return root


@pytest.fixture(scope="module")
def damaged(pristine, tmp_path_factory):
    """``damaged(name)`` -> (cohort root, damaged patient folder, damaged file): one copy per damage, shared by
    the commands (which only read it)."""
    import tifffile

    made: dict[str, tuple[Path, Path, Path]] = {}

    def make(name: str):
        if name not in made:
            kind, change, _ = DAMAGES[name]
            root = tmp_path_factory.mktemp("damaged") / "kaggle_3m"
            shutil.copytree(pristine, root)
            folder = sorted(p for p in root.iterdir() if p.is_dir())[0]
            path = folder / f"{folder.name}_{SLICE}{'_mask' if kind == 'mask' else ''}.tif"
            original = tifffile.imread(path)
            if kind == "image":
                mask = tifffile.imread(folder / f"{folder.name}_{SLICE}_mask.tif")
                assert not mask.any(), "the damaged slice should be tumour-free"
            tifffile.imwrite(path, change(original))
            made[name] = root, folder, path
        return made[name]

    return make


def _run_and_check(command, damage, damaged, model, tmp_path, capsys):
    build, out_name = COMMANDS[command]
    root, folder, path = damaged(damage)
    out = tmp_path / out_name
    assert main(build(root, folder, out, model)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    name = command.split()[0]
    assert len(err) == 1, err
    assert err[0] == f"gliomics {name}: error: {path}: {DAMAGES[damage][2]}"
    assert not out.exists()
    assert not list(tmp_path.glob(f".{out_name}.*"))
    if command == "features":
        assert not list(tmp_path.glob("summary_*.json"))


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("damage", IMAGE_DAMAGES)
def test_a_damaged_image_stops_every_command(command, damage, damaged, stub_segmenter, tmp_path, capsys):
    _run_and_check(command, damage, damaged, stub_segmenter, tmp_path, capsys)


@pytest.mark.parametrize("command", MASK_COMMANDS)
@pytest.mark.parametrize("damage", MASK_DAMAGES)
def test_a_damaged_mask_stops_every_command_that_reads_masks(command, damage, damaged, stub_segmenter, tmp_path,
                                                              capsys):
    _run_and_check(command, damage, damaged, stub_segmenter, tmp_path, capsys)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_the_reader_and_validate_refuse_the_same_slices(damage, damaged):
    """The reader's rule is validate's (the manifest suite): each damaged slice fails both, naming the file."""
    import pandas as pd

    from gliomics.data.kaggle import SliceFiles, patient_of
    from gliomics.data.manifest import describe_slice
    from gliomics.data.slices import read_image, read_mask
    from gliomics.validation.gx import run_checks
    from gliomics.validation.inputs import manifest_suite

    _, folder, path = damaged(damage)
    reader = read_mask if DAMAGES[damage][0] == "mask" else read_image
    with pytest.raises(GliomicsError) as caught:
        reader(path)
    assert str(caught.value) == f"{path}: {DAMAGES[damage][2]}"

    files = SliceFiles(patient_of(folder.name), folder.name, SLICE, folder / f"{folder.name}_{SLICE}.tif",
                       folder / f"{folder.name}_{SLICE}_mask.tif")
    (outcome,) = run_checks([manifest_suite(pd.DataFrame([describe_slice(files, folder.parent)]), folder.parent)])
    assert not outcome.success and all(str(path) in problem for problem in outcome.problems)


def test_the_pristine_cohort_passes_reader_and_validate(pristine, tmp_path):
    from gliomics.data.slices import read_image, read_mask
    from gliomics.validation.cohort import validate_cohort

    for path in sorted(pristine.glob("TCGA_*/*.tif")):
        array = (read_mask if path.name.endswith("_mask.tif") else read_image)(path)
        assert array.dtype == np.uint8
    assert validate_cohort(pristine, tmp_path / "validate", log_mlflow=False)["success"]
