"""The `gliomics` command: fast help, one-line errors, exit codes."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from gliomics.cli import build_parser, main

SUBCOMMANDS = ["synth", "ingest", "validate", "split", "features", "associate", "train", "evaluate", "segment",
               "summary", "ui"]


def test_importing_the_cli_does_not_import_heavy_libraries():
    code = (
        "import sys, gliomics.cli; gliomics.cli.build_parser().format_help(); "
        "heavy = [m for m in ('tensorflow', 'mlflow', 'great_expectations', 'pandas') if m in sys.modules]; "
        "print(', '.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"imported at CLI start-up: {result.stdout}{result.stderr}"


def test_package_sets_the_keras_environment_before_tensorflow():
    code = "import os, gliomics; print(os.environ['TF_USE_LEGACY_KERAS'], os.environ['SM_FRAMEWORK'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""})
    assert result.stdout.split() == ["1", "tf.keras"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: gliomics " + command in capsys.readouterr().out


def test_parser_lists_every_stage():
    help_text = build_parser().format_help()
    for command in SUBCOMMANDS:
        assert command in help_text


def test_validate_failure_prints_one_line_per_problem_and_exits_1(cohort_copy, tmp_path, capsys):
    folder = sorted(p for p in cohort_copy.iterdir() if p.is_dir())[0]
    tifffile.imwrite(folder / f"{folder.name}_1_mask.tif", np.full((256, 256), 9, np.uint8))
    code = main(["validate", "--data", str(cohort_copy), "--out", str(tmp_path / "out"), "--no-mlflow"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0] == f"error: {folder / (folder.name + '_1_mask.tif')}: mask has values other than 0/255 (found 9)"
    assert err[-1].startswith("gliomics validate: ") and "1 problem(s)" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_input_error_exits_2_with_a_named_path(tmp_path, capsys):
    code = main(["validate", "--data", str(tmp_path / "nowhere"), "--no-mlflow"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"gliomics validate: error: {tmp_path / 'nowhere'}: no such directory"


def test_split_without_manifest_says_what_to_run(small_cohort, tmp_path, capsys):
    code = main(["split", "--data", str(small_cohort), "--manifest", str(tmp_path / "m.csv"), "--no-mlflow"])
    assert code == 2
    assert "run `gliomics validate` first" in capsys.readouterr().err


def test_synth_refuses_to_overwrite_a_cohort(small_cohort, capsys):
    code = main(["synth", "--out", str(small_cohort), "--patients", "1"])
    assert code == 2
    assert "not empty; pass --force" in capsys.readouterr().err


def test_bad_params_file_is_named(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("split:\n  n_folds: many\n")
    code = main(["split", "--params", str(params)])
    assert code == 2
    assert f"{params}: split.n_folds: expected int" in capsys.readouterr().err


def test_an_os_error_is_one_line_and_a_traceback_only_with_debug(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["synth", "--out", str(blocker / "cohort")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("gliomics synth: error: ") and "a_file" in line  # the file, and the reason
    assert "--debug shows the traceback" in line and "Traceback" not in line
    with pytest.raises(OSError):
        main(["synth", "--debug", "--out", str(blocker / "cohort")])
