import json

import pytest
from conftest import MODEL_DIR

from captcha_ocr.cli import build_parser, main


@pytest.mark.parametrize("command", ["serve", "predict", "sample", "label", "train", "export", "eval", "deploy"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: captcha-ocr " + command in capsys.readouterr().out


def test_top_level_help_lists_commands():
    assert "serve" in build_parser().format_help() and "eval" in build_parser().format_help()


def test_sample_then_predict(tmp_path, capsys):
    assert main(["sample", "--out", str(tmp_path), "--count", "3", "--seed", "8", "--model-dir", str(MODEL_DIR)]) == 0
    files = sorted(tmp_path.glob("*.png"))
    assert len(files) == 3
    (tmp_path / "junk.png").write_bytes(b"not a png")
    capsys.readouterr()
    code = main(["predict", *map(str, files), str(tmp_path / "junk.png"), "--model-dir", str(MODEL_DIR)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1  # one input was not an image
    assert len(lines) == 4 and "error UnsupportedImage" in lines[-1]
    right = sum(line.split("\t")[1] == f.name.split("_")[0] for line, f in zip(lines, files))
    assert right >= 2


def test_eval_reports_accuracy_through_the_handler(tmp_path, capsys):
    report_path = tmp_path / "report.json"
    assert main(["eval", "--synthetic", "40", "--seed", "5", "--json", str(report_path),
                 "--model-dir", str(MODEL_DIR)]) == 0
    assert "full-sequence accuracy" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["images"] == 40 and report["sequence_accuracy"] >= 0.9
    assert [row["threshold"] for row in report["thresholds"]] == [0.5, 0.9, 0.95, 0.99]


def test_predict_a_missing_file_or_a_folder_is_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing.png"), str(tmp_path), "--model-dir", str(MODEL_DIR)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.png" in err and "Traceback" not in err


def test_samples_are_fresh_unless_a_seed_is_given(tmp_path, capsys):
    outputs = []
    for run in range(2):
        main(["sample", "--out", str(tmp_path / str(run)), "--count", "3", "--model-dir", str(MODEL_DIR)])
        outputs.append(sorted(p.name for p in (tmp_path / str(run)).glob("*.png")))
    assert outputs[0] != outputs[1]
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    seed = last_line.split("(seed ")[1].split(";")[0]
    main(["sample", "--out", str(tmp_path / "again"), "--count", "3", "--seed", seed, "--model-dir", str(MODEL_DIR)])
    assert sorted(p.name for p in (tmp_path / "again").glob("*.png")) == outputs[1]


def test_a_missing_training_folder_is_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err


def test_eval_of_a_missing_export_is_one_line(tmp_path, capsys):
    assert main(["eval", "--synthetic", "5", "--model-dir", str(tmp_path / "runs" / "mine" / "export")]) == 1
    err = capsys.readouterr().err
    assert "no config.json" in err and "Traceback" not in err


def test_export_of_a_folder_that_is_no_run_says_so_in_one_line(tmp_path, capsys):
    assert main(["export", "--run", str(tmp_path / "missing")]) == 1
    error = capsys.readouterr().err
    assert "is not a training run: it has no settings.json" in error and "Traceback" not in error
