import json

import pytest
from conftest import MODEL_DIR

from captcha_ocr.cli import build_parser, main


@pytest.mark.parametrize("command", ["serve", "predict", "sample", "train", "export", "eval"])
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
