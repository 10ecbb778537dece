"""TrainConfig holds every training default and choice; the train command is derived from it."""

from dataclasses import fields

import pytest
from typer.testing import CliRunner

import training.train
from training.cli import app
from training.config import TrainConfig

runner = CliRunner()


def options_of(config: TrainConfig) -> list[str]:
    return ["train", "--out", "run", *config.command_line()]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(likelihood="poisson"), "likelihood must be one of gaussian, bernoulli"),
        (dict(dataset="cifar10"), "dataset must be one of mnist, fashion-mnist"),
        (dict(data="x", image_channels=2), "image_channels must be one of 1, 3"),
        (dict(data="x", resize="stretch"), "resize must be one of pad, crop"),
        (dict(image_size="32"), "--image-size apply to --data folders"),
        (dict(data="x", image_size="4"), "sides must be 8..512"),
        (dict(data="x", image_size="32x"), "H or HxW"),
        (dict(data="x", background="255,255"), "R,G,B"),
        (dict(gaussian_scale="learned"), "applies to --likelihood gaussian"),
    ],
)
def test_the_config_refuses_values_outside_its_types(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_a_gaussian_learns_its_scale_on_folder_data_and_keeps_the_fixed_one_on_the_built_in_sets():
    assert TrainConfig(likelihood="gaussian").gaussian_scale == "fixed"
    assert TrainConfig(likelihood="gaussian", data="x").gaussian_scale == "learned"
    assert TrainConfig().gaussian_scale is None


def test_the_train_command_has_one_option_per_config_field_with_the_configs_default(monkeypatch):
    seen = []
    monkeypatch.setattr(training.train, "train", lambda config, out, resume, threads: seen.append(config))
    result = runner.invoke(app, ["train", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert seen == [TrainConfig()]
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    for f in fields(TrainConfig):
        if "help" in f.metadata:
            assert f"--{f.name.replace('_', '-')}" in help_text
    assert "--threads" in help_text and "--resume" in help_text


def test_a_config_s_command_line_rebuilds_the_same_config(monkeypatch):
    seen = []
    monkeypatch.setattr(training.train, "train", lambda config, out, resume, threads: seen.append(config))
    config = TrainConfig(
        data="pictures", image_size="24x32", image_channels=1, likelihood="gaussian", latent_channels=4, epochs=3
    )
    result = runner.invoke(app, options_of(config))
    assert result.exit_code == 0, result.output
    assert seen == [config]


def test_the_train_command_reports_a_choice_outside_the_literal_type():
    result = runner.invoke(app, ["train", "--out", "run", "--likelihood", "poisson"])
    assert result.exit_code == 2 and "poisson" in result.output
    result = runner.invoke(app, ["train", "--out", "run", "--image-size", "32"])
    assert result.exit_code == 2 and "--data" in result.output


def test_a_saved_config_json_from_before_folder_data_still_loads():
    old = {
        "dataset": "mnist", "likelihood": "bernoulli", "latent_dim": 32, "channels": 32, "hidden": 512,
        "epochs": 60, "batch_size": 128, "lr": 0.001, "lr_final": 0.0001, "beta": 1.0, "kl_warmup_epochs": 0,
        "seed": 0, "limit_train": None, "limit_test": None, "image_shape": [1, 28, 28],
    }  # fmt: skip
    config = TrainConfig.from_dict(old)
    assert config.data is None and config.image_shape == (1, 28, 28) and config.architecture().latent_shape == (32,)
