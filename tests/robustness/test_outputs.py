"""The output rule: no command deletes, overwrites or writes into what it was not asked to produce.

Each case runs the command as a user would (``gliomics.cli.main``) in a scratch project and asserts the exit
code, the one-line message, and that every file outside the command's own output is unchanged (a checksum
of the whole tree before and after).
"""

from __future__ import annotations

import os
import shutil

import pytest

from gliomics import io
from gliomics.cli import main

from .conftest import refused, tree


def test_ingest_into_the_parent_of_its_source_is_refused(project, capsys):
    source = project / "incoming" / "kaggle_3m"
    shutil.copytree(project / "data" / "raw", source)
    refused(project, capsys, ["ingest", str(source), "--dest", str(source.parent), "--no-dvc"],
            "contains the input")
    refused(project, capsys, ["ingest", str(source), "--dest", str(source / "inner"), "--no-dvc"],
            "lies inside the input")


def test_ingest_over_an_unrelated_folder_is_refused_unless_forced(project, capsys):
    source = project / "incoming"
    shutil.copytree(project / "data" / "raw", source)
    notes = project / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("two years of work")
    refused(project, capsys, ["ingest", str(source), "--dest", str(notes), "--no-dvc"],
            "is not an earlier output of this command")
    assert main(["ingest", str(source), "--dest", str(notes), "--no-dvc", "--force"]) == 0
    assert not (notes / "thesis.txt").exists() and (notes / "data.csv").exists()


def test_ingest_replaces_a_cohort_and_validates_first(project, capsys):
    source = project / "incoming"
    shutil.copytree(project / "data" / "raw", source)
    assert main(["ingest", str(source), "--dest", "data/raw", "--no-dvc"]) == 0  # a cohort: replaceable
    assert not (project / "data" / "raw" / io.OUTPUT_MARKER).exists()  # data.dvc's hash stays the cohort's
    capsys.readouterr()
    broken = project / "broken"
    shutil.copytree(source, broken)
    (broken / "data.csv").write_text("Patient,RNASeqCluster\nTCGA_XX_0000,9\n")  # none of its patients
    line = refused(project, capsys, ["ingest", str(broken), "--dest", "data/raw", "--no-dvc"],
                   "not ingested, data/raw is left as it was")
    assert "validation found" in line and "gliomics validate --data" in line


def test_a_killed_ingest_leaves_no_temp_folder_after_the_next_start(project, capsys):
    leftover = project / "data" / ".raw.k1lled00"
    (leftover / "raw").mkdir(parents=True)
    (leftover / ".owner-pid").write_text("999999999")  # a process that no longer exists
    (leftover / "raw" / "big.bin").write_bytes(b"0" * 1000)
    live = project / "data" / ".raw.running0"
    live.mkdir()
    (live / ".owner-pid").write_text(str(os.getpid()))  # a run still going: kept
    assert main(["ingest", str(project / "data" / "raw"), "--dest", "data/copy", "--no-dvc"]) == 0
    assert main(["ingest", str(project / "data" / "copy"), "--dest", "data/raw", "--no-dvc"]) == 0
    assert not leftover.exists() and live.exists()


def test_segment_into_the_parent_of_its_input_is_refused(project, capsys, stub_segmenter):
    refused(project, capsys, ["segment", "--input", "data/raw", "--out", "data", "--model", stub_segmenter,
                              "--no-mlflow"], "contains the input")


def test_segment_replaces_its_own_output_but_not_other_folders(project, capsys, stub_segmenter):
    argv = ["segment", "--input", "data/raw", "--model", stub_segmenter, "--no-mlflow", "--out"]
    assert main([*argv, "predicted"]) == 0
    assert io.written_by(project / "predicted") == "gliomics segment"
    assert main([*argv, "predicted"]) == 0  # its own earlier output
    capsys.readouterr()
    other = project / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    refused(project, capsys, [*argv, "mine"], "replacing it would delete its files")
    features_dir = project / "features_out"
    features_dir.mkdir()
    (features_dir / "x.csv").write_text("a\n1\n")
    refused(project, capsys, [*argv, "features_out"], "is not an earlier output of this command")


def test_features_never_replace_a_folder_nor_write_into_the_cohort(project, capsys):
    existing = project / "tables"
    existing.mkdir()
    (existing / "old.csv").write_text("a\n1\n")
    refused(project, capsys, ["features", "--out", "tables", "--no-mlflow"], "is a folder; name the file")
    patient = sorted(p for p in (project / "data" / "raw").iterdir() if p.is_dir())[0]
    refused(project, capsys, ["features", "--out", str(patient / "features.csv"), "--no-mlflow"],
            "lies inside the input")


def test_validate_of_another_folder_never_touches_the_pipelines_manifest(project, capsys):
    pipeline = tree(project / "reports" / "validate")
    other = project / "elsewhere" / "cohort2"
    shutil.copytree(project / "data" / "raw", other)
    assert main(["validate", "--data", str(other), "--no-mlflow"]) == 0
    assert (project / "reports" / "validate-cohort2" / "manifest.csv").exists()
    (other / "data.csv").write_text("Patient\n")  # now it fails validation
    assert main(["validate", "--data", str(other), "--no-mlflow"]) == 1
    assert tree(project / "reports" / "validate") == pipeline  # the good manifest survives
    assert not (project / "reports" / "validate-cohort2" / "manifest.csv").exists()


def test_check_output_unit_rules(tmp_path):
    from gliomics.errors import GliomicsError

    data = tmp_path / "cohort"
    (data / "TCGA_A").mkdir(parents=True)
    table = tmp_path / "reports" / "manifest.csv"
    table.parent.mkdir()
    table.write_text("x\n")
    check = io.check_output
    with pytest.raises(GliomicsError, match="is an input"):
        check(table, command="c", kind="file", other_inputs=[table])
    with pytest.raises(GliomicsError, match="contains the input"):
        check(tmp_path / "reports", command="c", kind="folder", other_inputs=[table])
    check(tmp_path / "reports" / "out.csv", command="c", kind="file", other_inputs=[table])  # beside: fine
    check(tmp_path / "reports", command="c", kind="files", other_inputs=[table])  # files into it: fine
    check(tmp_path / "new", command="c", kind="folder", data_inputs=[data, "models:/x@champion"])
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(GliomicsError, match="exists and is not a folder"):
        check(tmp_path / "file.txt", command="c", kind="folder")
    done = tmp_path / "done"
    done.mkdir()
    (done / "a").write_text("1")
    io.mark_output(done, "gliomics a")
    check(done, command="gliomics a", kind="folder")
    with pytest.raises(GliomicsError, match="is the output of `gliomics a`"):
        check(done, command="gliomics b", kind="folder")
    check(done, command="gliomics b", kind="folder", force=True)


def test_store_and_model_folders_are_replaced_only_by_their_own_kind(project, capsys, tmp_path):
    refused(project, capsys, ["train-classifier", "--store", "data/raw", "--no-mlflow"], "is an input")
    (project / "notes").mkdir()
    (project / "notes" / "n.txt").write_text("keep")
    refused(project, capsys, ["train-classifier", "--store", "notes", "--no-mlflow"],
            "is not an earlier output of this command")
    from gliomics.cli import REPLACEABLE

    classifier = tmp_path / "classifier"
    classifier.mkdir()
    (classifier / "MLmodel").write_text("metadata:\n  gliomics:\n    task: classifier\n")
    segmenter = tmp_path / "segmenter"
    segmenter.mkdir()
    (segmenter / "MLmodel").write_text("metadata:\n  gliomics:\n    task: segmenter\n")
    shipped = tmp_path / "models" / "pretrained" / "lgg-segmenter"
    shipped.mkdir(parents=True)
    (shipped / "MLmodel").write_text("metadata:\n  gliomics:\n    task: segmenter\n")
    assert REPLACEABLE["train"](segmenter) and not REPLACEABLE["train"](classifier)
    assert REPLACEABLE["train-classifier"](classifier) and not REPLACEABLE["train-classifier"](segmenter)
    assert not REPLACEABLE["train"](shipped)  # the shipped model is never replaced without --force


def test_a_symlinked_output_folder_is_refused_before_any_work(project, capsys, stub_segmenter):
    (project / "real").mkdir()
    (project / "link").symlink_to(project / "real")
    refused(project, capsys, ["segment", "--input", "data/raw", "--model", stub_segmenter, "--no-mlflow",
                              "--out", "link"], "is a symbolic link")
