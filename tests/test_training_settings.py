"""training/settings.py: one definition for the training settings and their flags (no TensorFlow)."""

import argparse
from dataclasses import fields

import pytest

from captcha_ocr.training import settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def test_every_setting_but_the_run_folder_has_a_flag():
    flagged = {f.name for f in fields(settings.TrainSettings) if "flag" in f.metadata}
    assert flagged == {f.name for f in fields(settings.TrainSettings)} - {"out_dir"}


def test_only_what_was_given_overrides():
    assert settings.given(parse()) == {}
    given = settings.given(parse("--data", "d", "--length", "4", "5", "--no-augment", "--case-fold", "--epochs", "3"))
    assert given == {"data_dir": "d", "lengths": (4, 5), "augment": False, "case_fold": True, "epochs": 3}


def test_folder_runs_get_folder_defaults_under_what_was_given(tmp_path):
    run, resumed = settings.settings_for_run(tmp_path / "run", {"data_dir": "d", "epochs": 7}, resume=False)
    assert not resumed and run.epochs == 7 and run.batch_size == 8 and run.init == "general"
    synthetic, _ = settings.settings_for_run(tmp_path / "run2", {}, resume=False)
    assert synthetic.epochs == 10 and synthetic.init == "random"


def test_a_resume_changes_only_what_a_resume_may(tmp_path):
    first, _ = settings.settings_for_run(tmp_path, {"data_dir": "d", "epochs": 7}, resume=False)
    first.save()
    resumed, was_resumed = settings.settings_for_run(tmp_path, {"epochs": 30, "height": 64, "patience": 5}, True)
    assert was_resumed and (resumed.epochs, resumed.patience, resumed.height) == (30, 5, 48)


def test_the_randomised_generator_brings_the_general_models_defaults(tmp_path):
    general, _ = settings.settings_for_run(tmp_path / "g", {"generator": "randomised", "epochs": 3}, resume=False)
    assert general.epochs == 3 and general.charset == settings.GENERAL_CHARSET and general.augmenting
    assert (general.height, general.width, general.model_size) == (48, 160, "medium")
    assert general.lengths == (3, 4, 5, 6, 7, 8)
    plain, _ = settings.settings_for_run(tmp_path / "p", {}, resume=False)
    assert plain.generator == "captcha" and plain.model_size == "small" and not plain.augmenting


def test_a_backbone_brings_the_network_it_fits(tmp_path):
    general, _ = settings.settings_for_run(tmp_path / "a", {"data_dir": "d", "init": "general"}, resume=False)
    synthetic, _ = settings.settings_for_run(tmp_path / "b", {"data_dir": "d", "init": "synthetic"}, resume=False)
    random_small, _ = settings.settings_for_run(tmp_path / "c", {"data_dir": "d", "init": "random"}, resume=False)
    chosen, _ = settings.settings_for_run(tmp_path / "d", {"init": "random", "model_size": "medium"}, resume=False)
    assert (general.model_size, synthetic.model_size, random_small.model_size, chosen.model_size) == \
        ("medium", "small", "small", "medium")


def test_a_small_folder_from_the_general_backbone_fine_tunes_at_a_lower_rate_unless_one_is_given(tmp_path):
    few, many = tmp_path / "few", tmp_path / "many"
    for folder, count in ((few, settings.FEW_LABELS_BELOW - 1), (many, settings.FEW_LABELS_BELOW)):
        folder.mkdir()
        for index in range(count):
            (folder / f"a{index:04d}.png").write_bytes(b"")  # counted by name, never decoded here

    def rate(**overrides):
        return settings.settings_for_run(tmp_path / "run", overrides, resume=False)[0].learning_rate

    assert rate(data_dir=str(few)) == settings.FEW_LABELS_LEARNING_RATE == 5e-4  # auto: the general start
    assert rate(data_dir=str(few), init="general") == 5e-4
    assert rate(data_dir=str(few), init="general", learning_rate=0.01) == 0.01
    assert rate(data_dir=str(few), init="synthetic") == rate(data_dir=str(few), init="random") == 2e-3
    assert rate(data_dir=str(many), init="general") == rate(data_dir=str(many)) == 2e-3  # auto: general too
    assert rate(generator="randomised", init="general") == 2e-3  # the general model's own run: not a folder


def test_a_folder_run_starts_from_the_general_model_wherever_the_package_has_it(tmp_path, monkeypatch):
    assert settings.BACKBONES["general"].is_file()  # what the package ships for --init general and auto
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a1b2.png").write_bytes(b"")
    auto, _ = settings.settings_for_run(tmp_path / "r1", {"data_dir": str(folder)}, resume=False)
    told, _ = settings.settings_for_run(tmp_path / "r2", {"data_dir": str(folder), "init": "synthetic"}, resume=False)
    assert (auto.init, auto.model_size) == ("general", "medium")
    assert (told.init, told.model_size) == ("synthetic", "small")  # a given --init is kept
    auto.save()
    assert settings.TrainSettings.load(tmp_path / "r1").init == "general"  # a resume keeps the choice
    monkeypatch.setitem(settings.BACKBONES, "general", tmp_path / "left-out.npz")  # a build without it
    slim, _ = settings.settings_for_run(tmp_path / "r3", {"data_dir": str(folder)}, resume=False)
    assert (slim.init, slim.model_size) == ("synthetic", "small")


def test_a_folder_that_is_no_run_is_a_one_line_error_not_a_traceback(tmp_path):
    with pytest.raises(settings.RunFolderError, match="no settings.json"):
        settings.TrainSettings.load(tmp_path / "nothing-here")
    (tmp_path / "settings.json").write_text('{"charset":')
    with pytest.raises(settings.RunFolderError, match="cannot be read"):
        settings.TrainSettings.load(tmp_path)


def test_a_moved_run_reads_and_writes_where_it_now_is(tmp_path):
    first, _ = settings.settings_for_run(tmp_path / "first", {}, resume=False)
    first.save()
    (tmp_path / "first").rename(tmp_path / "moved")
    moved = settings.TrainSettings.load(tmp_path / "moved")
    assert moved.run_dir == tmp_path / "moved"
    with pytest.raises(settings.RunFolderError, match="checkpoints/best.keras and no state.json"):
        moved.finished_files()  # before its first epoch: export says so instead of a traceback
    (tmp_path / "moved" / "checkpoints").mkdir()
    (tmp_path / "moved" / "checkpoints" / "best.keras").write_bytes(b"")
    (tmp_path / "moved" / "state.json").write_text("{}")
    assert moved.finished_files() == (tmp_path / "moved" / "checkpoints" / "best.keras",
                                      tmp_path / "moved" / "state.json")


def test_folder_runs_read_two_views_and_a_flag_or_an_older_run_says_otherwise(tmp_path):
    folder, _ = settings.settings_for_run(tmp_path / "f", {"data_dir": "d"}, resume=False)
    synthetic, _ = settings.settings_for_run(tmp_path / "s", {}, resume=False)
    assert folder.views == settings.FOLDER_VIEWS == (1.0, 0.9) and synthetic.views == (1.0,)
    assert settings.given(parse("--views", "1"))["views"] == (1.0,)
    folder.save()
    assert settings.TrainSettings.load(tmp_path / "f").views == (1.0, 0.9)
    older = (tmp_path / "f" / "settings.json").read_text().replace('"views"', '"unknown"')
    (tmp_path / "f" / "settings.json").write_text(older)
    assert settings.TrainSettings.load(tmp_path / "f").views == (1.0,)  # a run from before views: as it trained


@pytest.mark.parametrize("views", [("0.4",), ("1", "1"), ("1.1",), ("1", "0.9", "0.8", "0.7", "0.6")])
def test_views_outside_the_model_contracts_rule_are_refused(views):
    with pytest.raises(settings.SettingsError, match="--views must be 1 to 4 different shares"):
        settings.given(parse("--views", *views))
