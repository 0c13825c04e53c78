"""`gliomics synth`, `ingest`, `validate` and `split` wired together, with MLflow."""

import pandas as pd
import pytest

from gliomics.cli import main
from gliomics.config import SplitParams
from gliomics.errors import GliomicsError
from gliomics.stages.cohort import ingest, synthesize
from gliomics.stages.split import split_cohort
from gliomics.validation.cohort import validate_cohort


def test_ingest_copies_only_the_layout_and_replaces_atomically(cohort_copy, tmp_path):
    (cohort_copy / "README.md").write_text("kaggle readme")
    dest = tmp_path / "data" / "raw"
    ingest(cohort_copy.parent, dest, track_with_dvc=False)  # the folder above kaggle_3m, as downloaded
    copied = sorted(p.relative_to(dest) for p in dest.rglob("*.tif"))
    assert copied == sorted(p.relative_to(cohort_copy) for p in cohort_copy.rglob("*.tif"))
    assert (dest / "data.csv").read_bytes() == (cohort_copy / "data.csv").read_bytes()
    assert not (dest / "README.md").exists()


def test_failed_ingest_keeps_the_previous_cohort(small_cohort, tmp_path):
    dest = tmp_path / "raw"
    ingest(small_cohort, dest, track_with_dvc=False)
    before = sorted(p.name for p in dest.rglob("*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GliomicsError, match="not a cohort"):
        ingest(empty, dest, track_with_dvc=False)
    assert sorted(p.name for p in dest.rglob("*")) == before


def test_synth_then_validate_then_split_log_to_mlflow(tmp_path):
    import mlflow

    data = synthesize(tmp_path / "raw", seed=1, n_patients=12)
    validate_cohort(data, tmp_path / "validate")
    split_cohort(data, tmp_path / "validate" / "manifest.csv", SplitParams(n_folds=3, test_fraction=0.25),
                 tmp_path / "split")
    splits = pd.read_csv(tmp_path / "split" / "splits.csv")
    assert splits["patient"].is_unique and len(splits) == 12
    assert (splits["part"] == "test").sum() == 3
    for stage in ("validate", "split"):
        runs = mlflow.search_runs(experiment_names=[stage])
        assert len(runs) == 1 and runs.loc[0, "status"] == "FINISHED"
        assert runs.loc[0, "tags.gliomics.stage"] == stage
        assert runs.loc[0, "tags.dvc_data_hash"].startswith("untracked:")
        assert runs.loc[0, "tags.git_commit"]
    assert mlflow.search_runs(experiment_names=["validate"]).loc[0, "metrics.n_patients"] == 12


def test_failed_validation_is_logged_as_failed_run(cohort_copy, tmp_path):
    import mlflow

    (cohort_copy / "data.csv").write_text("Patient\n")
    with pytest.raises(GliomicsError):
        validate_cohort(cohort_copy, tmp_path / "out")
    runs = mlflow.search_runs(experiment_names=["validate"])
    assert runs.loc[0, "tags.validation"] == "failed"


def test_synth_command_writes_a_valid_cohort(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "raw"), "--patients", "2", "--seed", "9"]) == 0
    assert "wrote 2 synthetic patients" in capsys.readouterr().out
    assert validate_cohort(tmp_path / "raw", tmp_path / "out", log_mlflow=False)["n_patients"] == 2


def test_patients_of_part(tmp_path):
    from gliomics.data.splits import patients_of_part

    path = tmp_path / "splits.csv"
    pd.DataFrame({"patient": ["a", "b", "c"], "part": ["test", "fold0", "test"]}).to_csv(path, index=False)
    assert patients_of_part(path, "test") == ["a", "c"]
    with pytest.raises(GliomicsError, match="no patients in part 'fold9'"):
        patients_of_part(path, "fold9")
    with pytest.raises(GliomicsError, match="run `gliomics split` first"):
        patients_of_part(tmp_path / "absent.csv", "test")
