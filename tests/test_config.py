import pytest

from gliomics.config import load_params, params_from_dict
from gliomics.errors import GliomicsError
from tests.conftest import PROJECT


def test_project_params_file_loads_with_its_documented_sections():
    params = load_params(PROJECT / "params.yaml")
    assert params.profile == "demo"
    assert params.data.raw == "data/raw"
    assert 0 < params.split.test_fraction < 1
    assert params.split.n_folds >= 2


def test_missing_file_gives_defaults(tmp_path):
    params = load_params(tmp_path / "absent.yaml")
    assert params.split.seed == 42


def test_unknown_key_is_named():
    with pytest.raises(GliomicsError, match=r"split: unknown key\(s\) sed"):
        params_from_dict({"split": {"sed": 1}})


def test_wrong_type_is_named():
    with pytest.raises(GliomicsError, match=r"split.n_folds: expected int"):
        params_from_dict({"split": {"n_folds": "five"}})


def test_unknown_profile_is_rejected():
    with pytest.raises(GliomicsError, match="profile must be one of"):
        params_from_dict({"profile": "gpu"})


def test_unknown_sections_and_keys_name_the_nearest_valid_one(tmp_path):
    from gliomics.config import load_params

    with pytest.raises(GliomicsError, match=r"unknown section 'profle' \(did you mean 'profile'\?\)"):
        params_from_dict({"profle": "cpu"})
    with pytest.raises(GliomicsError, match=r"unknown section 'featurse' \(did you mean 'features'\?\)"):
        params_from_dict({"featurse": {}})
    with pytest.raises(GliomicsError, match=r"train.demo: unknown key\(s\) epoch \(did you mean 'epochs'\?\)"):
        params_from_dict({"train": {"demo": {"epoch": 3}}})
    empty = tmp_path / "params.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(GliomicsError, match="params file is empty"):
        load_params(empty)


def test_train_settings_follow_the_profile():
    params = params_from_dict({"profile": "cpu", "train": {"demo": {"epochs": 1}, "cpu": {"epochs": 40}}})
    assert params.train_settings().epochs == 40
    with pytest.raises(GliomicsError, match=r"train.cpu.epochs: expected int"):
        params_from_dict({"train": {"cpu": {"epochs": "many"}}})
    with pytest.raises(GliomicsError, match="no train.full settings"):
        params_from_dict({"profile": "full", "train": {"demo": {}}}).train_settings()


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("split: [unclosed\n")
    with pytest.raises(GliomicsError, match="params.yaml: not valid YAML"):
        load_params(path)
