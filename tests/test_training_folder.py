"""`train --data` on small generated folders: variable lengths, a labels file, junk and a corrupt
image in the folder, augmentation on, and the exported folder served by main_handler."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import MODEL_DIR, REPO, SHARED_DATASET, b64, call, get_event

from captcha_ocr.app import create_app
from captcha_ocr.evaluation import synthetic_samples
from captcha_ocr.synthetic import synthetic_captcha
from captcha_ocr.training.data import infer_input_width, load_folder, split

CHARSET = "abcd2345"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("captchas")
    for index in range(120):
        text, png = synthetic_captcha(10_000 + index, CHARSET, (4, 5, 6))
        (folder / f"{text}_{index}.png").write_bytes(png)
    (folder / "notes.txt").write_text("not an image")
    (folder / "thumbs.db").write_bytes(b"\x00" * 10)
    (folder / "abcd_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


def test_load_folder_reports_and_skips(folder):
    dataset, report = load_folder(folder, 32, 84)
    assert len(dataset) == 120 and dataset.images.shape == (120, 32, 84, 1)
    assert report.non_images == 2 and report.unreadable == ["abcd_corrupt.png"]
    assert {len(t) for t in dataset.texts} == {4, 5, 6}
    limited, limited_report = load_folder(folder, 32, 84, charset="abcd")
    assert len(limited) + len(limited_report.bad_characters) == 120


def test_split_is_fixed_by_the_seed(folder):
    dataset, _ = load_folder(folder, 32, 84)
    first, second = split(dataset, 0.2, seed=3), split(dataset, 0.2, seed=3)
    assert first[1].texts == second[1].texts and len(first[1]) == 24
    assert split(dataset, 0.2, seed=4)[1].texts != first[1].texts


def test_input_width_keeps_the_aspect_ratio(folder):
    dataset, _ = load_folder(folder, 32, 96)
    assert dataset.source_sizes[0] == (160, 60) and len(dataset.source_sizes) == len(dataset)
    assert infer_input_width(dataset.source_sizes, 32, 6) == 84  # 160x60 -> 32 x 85.3, a multiple of 4


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "captcha_ocr.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def train_with(stubs: str, *args: str) -> subprocess.CompletedProcess:
    """`captcha-ocr train ARGS` in a child process whose modules `stubs` (Python lines) patched first;
    asserts it succeeded."""
    program = f"import sys\n{stubs}from captcha_ocr.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    result = subprocess.run([sys.executable, "-c", program, "train", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_training_on_a_folder_exports_a_servable_model(folder, tmp_path):
    result = run_cli("train", "--data", str(folder), "--out", str(tmp_path / "run"), "--epochs", "2", "--seed", "3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "120 labelled images, 2 non-image files skipped" in result.stdout
    assert "skipped 1 unreadable: abcd_corrupt.png" in result.stdout
    initialised = next(line for line in result.stdout.splitlines() if line.startswith("initialised "))
    assert "b1_conv" in initialised and "context" in initialised
    assert "logits (8 of 8 characters, and the blank)" in initialised  # the general backbone's columns
    assert "108 training and 12 validation images; charset '2345abcd', lengths [4, 5, 6], input 48x128" in result.stdout
    assert (tmp_path / "run" / "history.png").stat().st_size > 0 and (tmp_path / "run" / "errors.png").is_file()
    export = tmp_path / "run" / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["charset"] == "2345abcd" and config["lengths"] == [4, 5, 6]
    assert config["input"]["views"] == [1.0, 0.9]  # a folder run's default, scored so by training too

    assert config["source_sizes"] == [[160, 60]]  # every training image's size
    app = create_app(export)  # the user's folder served with no code change
    status, body = call(app, get_event(b64(next(folder.glob("*_7.png")).read_bytes())))
    assert status == 200 and body["model"]["sha256"] == config["sha256"]

    # one command adds it beside the shipped model; one app then answers both by name
    added = run_cli("models", "add", str(export), "--name", "mine", "--models-dir", str(tmp_path / "models"))
    assert added.returncode == 0 and "model=mine" in added.stdout, added.stderr[-2000:]
    both = create_app(MODEL_DIR, tmp_path / "models")
    shipped = synthetic_samples(1, 31, both.models.default.config.charset, (4,))[0]
    status, body = call(both, get_event(b64(shipped.data), model=both.models.default.name))
    assert (status, body["text"]) == (200, shipped.text)
    for event in (get_event(b64(shipped.data), model="mine"), get_event(b64(shipped.data))):  # named; by size
        status, body = call(both, event)
        assert status == 200 and body["model"] == {"name": "mine", "sha256": config["sha256"]}

    report = tmp_path / "eval.json"
    evaluated = run_cli("eval", "--data", str(folder), "--model-dir", str(export), "--json", str(report))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    summary = json.loads(report.read_text())
    assert set(summary["by_length"]) == {"4", "5", "6"} and summary["images"] == 121
    assert [t["threshold"] for t in summary["thresholds"]] == [0.5, 0.9, 0.95, 0.99]


@pytest.mark.slow
def test_unlabelled_images_train_a_self_training_round_that_never_lowers_the_best(folder, tmp_path):
    """The plumbing of `--unlabelled`, with the model's readings stubbed (a 2-epoch model reads nothing
    confidently): labelled files in the unlabelled folder are skipped, confident readings of a known
    length join training, epochs go on from the labelled phase, and the best held-out score stands."""
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for index in range(30):
        (unlabelled / f"u{index}.png").write_bytes(synthetic_captcha(50_000 + index, CHARSET, (4,))[1])
    (unlabelled / "copy.png").write_bytes(next(folder.glob("*_7.png")).read_bytes())  # labelled in --data
    stubs = ("from captcha_ocr.training import pseudo\n"
             "pseudo.choose_threshold = lambda held_out, truths: 0.9\n"
             "pseudo.readings = lambda logits_of, images, **spec: "
             "[('ab2d' if i % 3 else 'ab', 0.95) for i in range(len(images))]\n")
    run = tmp_path / "run"
    result = train_with(stubs, "--data", str(folder), "--unlabelled", str(unlabelled), "--out", str(run),
                        "--epochs", "2", "--seed", "3", "--time-limit", "0")
    assert "30 unlabelled images in" in result.stdout  # the copy of a labelled image is left out
    assert "self-training round 1: 20 of 30 unlabelled images" in result.stdout  # 'ab' is of no label's length
    state = json.loads((run / "state.json").read_text())
    assert [r["pseudo_labelled"] for r in state["self_training"]] == [20, 20]
    assert state["epoch"] == 4 and state["phase"] == "done"  # 2 labelled epochs, then 1 per round
    labelled_best = max(r["val_accuracy"] for r in state["history"] if r["phase"] == "labelled")
    assert state["best_accuracy"] >= labelled_best
    assert (run / "export" / "config.json").is_file()


@pytest.mark.slow
def test_self_training_with_no_trusted_confidence_yet_trains_on_and_tries_again(folder, tmp_path):
    """Under a time limit, a first try at self-training that finds no confidence to trust (stubbed)
    does not end the run: the labelled images train on for half the time left, then the second try
    pseudo-labels, and the run still ends within its time."""
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for index in range(10):
        (unlabelled / f"u{index}.png").write_bytes(synthetic_captcha(60_000 + index, CHARSET, (4,))[1])
    stubs = ("from captcha_ocr.training import pseudo\n"
             "tries = []\n"
             "def choose(held_out, truths):\n"
             "    tries.append(1)\n"
             "    return None if len(tries) == 1 else 0.9\n"
             "pseudo.choose_threshold = choose\n"
             "pseudo.readings = lambda logits_of, images, **spec: [('ab2d', 0.95) for i in range(len(images))]\n")
    run = tmp_path / "run"
    result = train_with(stubs, "--data", str(folder), "--unlabelled", str(unlabelled), "--out", str(run),
                        "--seed", "3", "--time-limit", "0.3")
    out = result.stdout
    assert out.count("no confidence at which") == 1
    assert out.index("then self-training tries again") < out.index("self-training round 1: 10 of 10")
    state = json.loads((run / "state.json").read_text())
    assert state["self_training"][0]["pseudo_labelled"] == 10  # a second round only if time is left for it
    labelled_epochs = [r["epoch"] for r in state["history"] if r["phase"] == "labelled"]
    retry_epochs = [r["epoch"] for r in state["history"] if r["phase"] == "self-training"]
    assert retry_epochs and retry_epochs[0] == labelled_epochs[-1] + 1  # epochs go on across the phases
    assert state["elapsed_s"] <= 0.3 * 60 + 10  # the last epoch may run over by its own length
    assert (run / "export" / "config.json").is_file()


@pytest.mark.slow
def test_a_fresh_start_stuck_on_the_plateau_starts_again_and_the_run_still_exports(folder, tmp_path):
    """Restarts off CTC's plateau, with the plateau's test made to fire after one epoch: a 1-epoch
    model reads no held-out image, so each fresh start gives way to the next, then the last one
    trains on to the epoch cap within the time limit. From random weights: a backbone with output
    columns reads held-out images after one epoch, and never sits on the plateau."""
    run = tmp_path / "run"
    result = train_with("from captcha_ocr.training import train\ntrain.PLATEAU_STEPS = 1\n", "--data", str(folder),
                        "--out", str(run), "--epochs", "6", "--seed", "3", "--init", "random")
    state = json.loads((run / "state.json").read_text())
    assert state["restarts"] == [1, 2, 3] and state["epoch"] == 6  # three 1-epoch starts, then 3 epochs
    assert result.stdout.count("starting again from the backbone") == 3
    assert "starting again from the backbone (seed 6)" in result.stdout
    assert (run / "export" / "config.json").is_file()


def test_unlabelled_images_need_labelled_ones_first(tmp_path):
    result = run_cli("train", "--unlabelled", str(tmp_path), "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "--unlabelled needs --data" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_augmentation_changes_training_batches_only():
    program = (
        "import numpy as np; from captcha_ocr.training.augment import augmentation\n"
        "images = np.random.default_rng(0).random((8, 32, 96, 1), dtype=np.float32)\n"
        "layer = augmentation(seed=1)\n"
        "x = np.asarray(layer(images, training=True)); same = np.asarray(layer(images, training=False))\n"
        "print(x.shape, float(x.min()) >= 0, float(x.max()) <= 1, "
        "bool(np.abs(np.sort(x.ravel()) - np.sort(images.ravel())).mean() > 1e-3), np.array_equal(same, images))"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "(8, 32, 96, 1) True True True True", result.stderr[-2000:]


@pytest.mark.skipif(not SHARED_DATASET.is_dir(), reason="../shared/datasets/captcha_images_v2 is not here")
def test_the_shared_real_dataset_loads_with_inferred_settings():
    probe, _ = load_folder(SHARED_DATASET, 32, 96)
    width = infer_input_width(probe.source_sizes, 32, 5)
    dataset, report = load_folder(SHARED_DATASET, 32, width)
    assert width == 128 and len(dataset) == 1040 and not report.unreadable
    assert np.isfinite(dataset.images).all()


@pytest.mark.slow
def test_the_held_out_accuracy_a_run_prints_is_what_eval_reports_for_its_export(tmp_path):
    """One decoder for training and serving: the accuracy a run keeps its checkpoint by is the
    accuracy its exported float model scores through the handler on the same held-out images."""
    from captcha_ocr.config import load_config
    from captcha_ocr.evaluation import synthetic_samples
    from captcha_ocr.registry import SHIPPED_MODEL_DIR

    shipped = load_config(SHIPPED_MODEL_DIR)  # the style the backbone knows: a short run reads some of it
    for folder, count, seed in (("train", 400, 11), ("held-out", 60, 12)):
        (tmp_path / folder).mkdir()
        for index, sample in enumerate(synthetic_samples(count, seed, shipped.charset, shipped.lengths)):
            (tmp_path / folder / f"{sample.text}_{index:03d}.png").write_bytes(sample.data)
    run = tmp_path / "run"
    trained = run_cli("train", "--data", str(tmp_path / "train"), "--val-data", str(tmp_path / "held-out"),
                      "--out", str(run), "--epochs", "10", "--seed", "4", "--time-limit", "0")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert json.loads((run / "export" / "config.json").read_text())["input"]["views"] == [1.0, 0.9]
    state = json.loads((run / "state.json").read_text())
    kept = next(h for h in state["history"] if h["epoch"] == state["best_epoch"])
    report = tmp_path / "eval.json"
    evaluated = run_cli("eval", "--data", str(tmp_path / "held-out"), "--model-dir", str(run / "export"),
                        "--model-file", "model.tflite", "--json", str(report))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    scored = json.loads(report.read_text())["sequence_accuracy"]
    assert 0 < kept["val_accuracy"] and scored == pytest.approx(kept["val_accuracy"]), (kept, scored)  # not 0 = 0
    assert f"{kept['val_accuracy']:.4f}" in trained.stdout  # the figure the run printed


@pytest.mark.slow
def test_a_folder_of_arithmetic_labels_exports_an_arithmetic_model(tmp_path):
    """Every label a question with an answer: the export says so, and its replies carry the answer."""
    from captcha_ocr.synthetic import _generator, seeded_captcha

    folder = tmp_path / "sums"
    folder.mkdir()
    lines = []
    for index in range(40):
        text = f"{index % 9 + 1}+{index % 7 + 2}=?"
        with seeded_captcha(index):
            (folder / f"{index:03d}.png").write_bytes(_generator.generate(text, format="png").getvalue())
        lines.append(f"{index:03d}.png\t{text}\n")
    (folder / "labels.tsv").write_text("".join(lines))
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(folder), "--out", str(run), "--epochs", "1", "--seed", "2",
                     "--time-limit", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = json.loads((run / "export" / "config.json").read_text())
    assert config["task"] == "arithmetic" and set("+=?") <= set(config["charset"])


@pytest.mark.slow
def test_a_folder_of_chinese_captchas_trains_and_serves_end_to_end(tmp_path):
    """Labels in Chinese (labels.tsv, UTF-8) become the charset; the export loads in the handler and
    its reply is JSON with the characters themselves, not escapes."""
    from captcha_ocr.training.generators import GeneratorUnavailable, cjk_font, generate_folder

    try:
        cjk_font()
    except GeneratorUnavailable as missing:
        pytest.skip(str(missing))
    folder = tmp_path / "chinese"
    written = generate_folder("chinese", 40, 3, folder)
    run = tmp_path / "run"
    result = run_cli("train", "--data", str(folder), "--out", str(run), "--epochs", "1", "--seed", "2",
                     "--time-limit", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = json.loads((run / "export" / "config.json").read_text(encoding="utf-8"))
    assert set(config["charset"]) == {char for sample in written for char in sample.label}
    app = create_app(run / "export")
    reply = app.handle(get_event(b64(written[0].data)), None)
    assert reply["statusCode"] == 200 and json.loads(reply["body"])["ok"] is True
    text = json.loads(reply["body"])["text"]
    assert set(text) <= set(config["charset"])
    health = app.handle(get_event(path="/health"), None)["body"]
    assert config["charset"] in health  # the characters themselves in the JSON, not \u escapes


def test_the_general_backbone_fills_the_network_a_general_start_picks():
    """--init general: the shipped backbone (training data, not in the bundle) fits the network
    INIT_MODEL_SIZES picks for it, and its output columns for the characters a folder shares with it."""
    from captcha_ocr.training.model import build_model
    from captcha_ocr.training.pretrained import BACKBONES, transfer_backbone
    from captcha_ocr.training.settings import INIT_MODEL_SIZES

    if not BACKBONES["general"].is_file():
        pytest.skip("this checkout ships no general backbone")
    charset = "0123456789abcdefgh中"  # 19 characters, one the general model never learned
    copied = transfer_backbone(build_model(48, 112, 20, INIT_MODEL_SIZES["general"]), BACKBONES["general"], charset)
    assert "b1_conv" in copied and "context" in copied and "logits (18 of 19 characters, and the blank)" in copied
