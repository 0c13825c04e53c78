"""Search space: conditional parameters, seeded determinism, settings; pruning hook; promotion."""

from __future__ import annotations

import math

import optuna
import pytest

from gliomics.config import LowFidelityParams, TrainParams, TuneSpaceParams, params_from_dict
from gliomics.errors import GliomicsError
from gliomics.tuning import space as search_space

LOSSES = ["bce_dice", "dice", "focal_tversky"]
SPACE = TuneSpaceParams(arch=["plain_unet", "Unet", "FPN"], backbone=["resnet18", "mobilenetv2"],
                        activation=["relu", "elu"], pooling=["max", "avg"], loss=["bce_dice", "dice"],
                        learning_rate=[1e-4, 1e-2], batch_size=[4, 8], augment_strength=[0.0, 1.0])


def _sample_many(seed: int, n: int = 40) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    values = []
    for _ in range(n):
        trial = study.ask()
        values.append((search_space.sample(trial, SPACE), dict(trial.params)))
        study.tell(trial, 0.0)
    return values


def test_conditional_parameters_follow_the_builders():
    samples = _sample_many(seed=1)
    seen = set()
    for values, params in samples:
        seen.add((values["arch"], values.get("backbone")))
        if values["arch"] == "plain_unet":
            assert "backbone" not in values and "backbone" not in params
            assert "pooling" in params  # plain_unet has pooling layers
        else:
            assert values["backbone"] in SPACE.backbone and params["backbone"] == values["backbone"]
            if values["backbone"] == "mobilenetv2":  # no pooling layer: not searched, "max" = unchanged
                assert "pooling" not in params and values["pooling"] == "max"
            else:
                assert params["pooling"] == values["pooling"]
        assert 1e-4 <= values["learning_rate"] <= 1e-2 and 0.0 <= values["augment_strength"] <= 1.0
    assert {"plain_unet", "Unet", "FPN"} <= {arch for arch, _ in seen}
    assert ("Unet", "mobilenetv2") in seen and ("FPN", "resnet18") in seen


def test_sampling_is_seeded():
    assert _sample_many(seed=5, n=10) == _sample_many(seed=5, n=10)
    assert _sample_many(seed=5, n=10) != _sample_many(seed=6, n=10)


def test_single_choices_are_fixed_not_searched():
    space = TuneSpaceParams(arch=["plain_unet"], activation=["gelu"], learning_rate=[0.003], batch_size=[4])
    trial = optuna.create_study().ask()
    values = search_space.sample(trial, space)
    assert trial.params == {}
    assert values == {"arch": "plain_unet", "activation": "gelu", "pooling": "max", "loss": "bce_dice",
                      "batch_size": 4, "learning_rate": 0.003, "augment_strength": 1.0}


def test_values_become_train_settings():
    base = TrainParams(model={"arch": "plain_unet", "base_filters": 16, "depth": 3}, image_size=64, epochs=5,
                       augment={"hflip": 0.8, "distortion": None})
    values = {"arch": "plain_unet", "activation": "elu", "pooling": "avg", "loss": "dice", "batch_size": 4,
              "learning_rate": 0.01, "augment_strength": 0.5}
    settings = search_space.apply_values(base, values, {"plain_unet": {"base_filters": 4}})
    assert settings.model == {"arch": "plain_unet", "activation": "elu", "pooling": "avg", "base_filters": 4,
                              "depth": 3}
    assert (settings.loss, settings.batch_size, settings.learning_rate) == ("dice", 4, 0.01)
    assert settings.augment["hflip"] == pytest.approx(0.4) and settings.augment["rotate"] == pytest.approx(7.5)
    assert settings.augment["distortion"] is None
    assert search_space.scale_augment({}, 0.0)["affine"] == 0.0
    assert search_space.scale_augment({"hflip": 0.8}, 2.0)["hflip"] == 1.0  # probabilities capped
    sm = search_space.apply_values(base, {**values, "arch": "Unet", "backbone": "resnet18"},
                                   {"Unet": {"decoder_filters": [8, 8, 8, 8, 8]}})
    assert sm.model == {"arch": "Unet", "backbone": "resnet18", "activation": "elu", "pooling": "avg",
                        "decoder_filters": [8, 8, 8, 8, 8]}  # plain_unet's base_filters do not leak in
    low = search_space.low_fidelity(settings, LowFidelityParams(image_size=32, epochs=2, steps_per_epoch=3))
    assert (low.image_size, low.epochs, low.steps_per_epoch, low.model) == (32, 2, 3, settings.model)


@pytest.mark.parametrize("space, message", [
    (TuneSpaceParams(arch=["Unet++"]), "tune.space.arch"),
    (TuneSpaceParams(backbone=["vgg16"]), "tune.space.backbone: unknown 'vgg16'"),
    (TuneSpaceParams(loss=["mse"]), "tune.space.loss"),
    (TuneSpaceParams(learning_rate=[0.1, 0.01]), "low <= high"),
    (TuneSpaceParams(learning_rate=[0.0, 0.01]), "low > 0"),
    (TuneSpaceParams(batch_size=[0]), "tune.space.batch_size"),
    (TuneSpaceParams(arch=["Unet"], backbone=["mobilenetv2"], pooling=["max", "avg"]), "'avg' has nothing"),
])
def test_bad_space_values_are_named(space, message):
    with pytest.raises(GliomicsError, match=message.replace("+", r"\+")):
        search_space.check_space(space, {}, losses=LOSSES)


def test_params_refuse_unknown_space_keys():
    with pytest.raises(GliomicsError, match=r"tune\.demo\.space: unknown key\(s\) dropout"):
        params_from_dict({"tune": {"demo": {"space": {"dropout": [0.1, 0.5]}}}})
    with pytest.raises(GliomicsError, match=r"tune\.demo\.low_fidelity\.epochs: expected int"):
        params_from_dict({"tune": {"demo": {"low_fidelity": {"epochs": "two"}}}})
    tune = params_from_dict({"tune": {"demo": {"n_trials": 3, "space": {"arch": ["Unet"]}}}}).tune_settings()
    assert tune.n_trials == 3 and tune.space.arch == ["Unet"] and tune.low_fidelity == LowFidelityParams()


# ----------------------------------------------------------------- pruning


def test_reporter_reports_every_epoch_and_prunes():
    from gliomics.tuning.pruning import EpochReporter, make_pruner

    # Median pruner: a trial below the median of earlier trials at the same epoch is pruned.
    study = optuna.create_study(direction="maximize", pruner=make_pruner({"name": "median", "n_startup_trials": 1,
                                                                          "n_warmup_steps": 0}, 3))
    logged = []
    good = study.ask()
    reporter = EpochReporter(good, "val_dice_3d", log=lambda e, row: logged.append(e))
    for epoch, value in enumerate([0.5, 0.6, 0.7], start=1):
        reporter(epoch, {"val_dice_3d": value})
    study.tell(good, reporter.best)
    assert good.number == 0 and study.trials[0].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}
    assert logged == [1, 2, 3] and reporter.best == 0.7

    bad = study.ask()
    reporter = EpochReporter(bad, "val_dice_3d", log=lambda e, row: logged.append(e))
    with pytest.raises(optuna.TrialPruned, match="val_dice_3d 0.1000 at epoch 1"):
        reporter(1, {"val_dice_3d": 0.1})
    assert logged[-1] == 1  # the pruned epoch is logged too
    reporter(2, {"val_dice_3d": math.nan})  # NaN is not reported (Optuna refuses it) and prunes nothing
    assert 2 not in study.trials[1].intermediate_values and math.isnan(reporter.values[2])


def test_pruners_from_params():
    from gliomics.tuning.pruning import make_pruner

    hyperband = make_pruner({"name": "hyperband", "reduction_factor": 2}, max_epochs=4)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner) and hyperband._max_resource == 4
    assert isinstance(make_pruner({"name": "successive_halving"}, 3), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner({"name": "none"}, 3), optuna.pruners.NopPruner)
    with pytest.raises(GliomicsError, match="unknown pruner 'asha'"):
        make_pruner({"name": "asha"}, 3)
    with pytest.raises(GliomicsError, match="unknown argument.*patience"):
        make_pruner({"name": "median", "patience": 3}, 3)


# --------------------------------------------------------------- promotion


def test_promote_takes_the_best_distinct_configurations_once():
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    from gliomics.tuning.search import promote

    low = optuna.create_study(direction="maximize")
    full = optuna.create_study(direction="maximize")
    dist = {"activation": CategoricalDistribution(["relu", "elu", "swish"])}
    for activation, value, state in [("relu", 0.5, TrialState.COMPLETE), ("relu", 0.6, TrialState.COMPLETE),
                                     ("elu", 0.55, TrialState.COMPLETE), ("swish", 0.9, TrialState.PRUNED)]:
        low.add_trial(create_trial(params={"activation": activation}, distributions=dist, value=value, state=state,
                                   intermediate_values={1: value}))
    assert promote(low, full, 2) == [1, 2]  # relu (best of its duplicates), then elu; the pruned one last
    assert [t.user_attrs["promoted_from"] for t in full.get_trials()] == [1, 2]
    assert promote(low, full, 2) == []  # already promoted: nothing new
    assert promote(low, full, 3) == [3]  # a larger k adds the next one (the pruned swish)
