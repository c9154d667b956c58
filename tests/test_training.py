"""Training side: reproducible data, no train/serve skew, and a tiny real run whose export serves."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import captcha.image
import numpy as np
import pytest
from conftest import REPO, SERVING_RUNTIMES, b64, call, get_event

from captcha_ocr.app import create_app
from captcha_ocr.config import file_sha256
from captcha_ocr.runtime import RUNTIME_ENV
from captcha_ocr.synthetic import derive_seed, seeded_captcha, synthetic_captcha
from captcha_ocr.training.data import synthetic_dataset

SETTINGS = dict(charset="0123456789abcdefghjkmnpqrstuvwxyz", lengths=(4,), height=32, width=96)


def test_synthetic_captchas_are_reproducible_from_the_seed():
    assert synthetic_captcha(11, "abcd", (4, 5)) == synthetic_captcha(11, "abcd", (4, 5))
    assert synthetic_captcha(11, "abcd", (4, 5))[1] != synthetic_captcha(12, "abcd", (4, 5))[1]


def test_seeding_leaves_the_library_as_it_was():
    original = captcha.image.secrets
    with seeded_captcha(3):
        assert captcha.image.secrets is not original
    assert captcha.image.secrets is original


def test_dataset_is_the_same_for_any_worker_count():
    one = synthetic_dataset(6, purpose="train", seed=1, workers=1, **SETTINGS)
    two = synthetic_dataset(6, purpose="train", seed=1, workers=2, **SETTINGS)
    assert one.texts == two.texts and np.array_equal(one.images, two.images)
    other = synthetic_dataset(6, purpose="val", seed=1, workers=1, **SETTINGS)
    assert other.texts != one.texts


def test_training_and_serving_see_identical_tensors(app, monkeypatch):
    """The tensor training learns from is bit-for-bit the one the handler feeds the model."""
    model = app.models.default
    dataset = synthetic_dataset(3, purpose="train", seed=1, workers=1, **{**SETTINGS, "charset": model.config.charset})
    served = []
    recognize = model.recognizer.recognize
    monkeypatch.setattr(model.recognizer, "recognize", lambda tensor: served.append(tensor) or recognize(tensor))
    for index in range(3):
        text, png = synthetic_captcha(derive_seed("train", 1, index), app.models.default.config.charset, (4,))
        assert text == dataset.texts[index]
        status, _ = call(app, get_event(b64(png)))
        assert status == 200
        assert served[-1].dtype == dataset.images[index].dtype
        assert np.array_equal(served[-1], dataset.images[index])


def train_cli(out, *extra):
    command = [sys.executable, "-m", "captcha_ocr.cli", "train", "--out", str(out), "--train-size", "384",
               "--val-size", "64", "--seed", "5", "--workers", "1", "--batch-size", "32", *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def loads_in_every_runtime(model_dir) -> None:
    """The model folder serves under each supported runtime installed here (a fresh process each:
    tflite-runtime and TensorFlow cannot share one)."""
    for package in SERVING_RUNTIMES:
        if importlib.util.find_spec(package.replace("-", "_")) is None:
            continue
        program = "import captcha_ocr.app as a; print(a.create_app().models.default.config.model_file)"
        result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, timeout=120,
                                env={**os.environ, RUNTIME_ENV: package, "CAPTCHA_OCR_MODEL_DIR": str(model_dir)})
        assert result.returncode == 0, f"{package}: {result.stderr[-1500:]}"


@pytest.mark.slow
def test_tiny_training_run_exports_models_every_runtime_loads(tmp_path):
    result = train_cli(tmp_path / "run", "--epochs", "1")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "model_quantized.tflite" in result.stdout and "size (KB)" in result.stdout
    assert "\x1b" not in result.stdout + result.stderr and "\r" not in result.stdout  # a log, not a terminal
    assert sum("held-out full-sequence accuracy" in line for line in result.stdout.splitlines()) == 1
    assert sum("/step" in line for line in result.stdout.splitlines()) == 1  # Keras: a line per epoch, not per step
    export = tmp_path / "run" / "export"
    config = json.loads((export / "config.json").read_text())
    sizes = {name: row["bytes"] for name, row in config["metrics"]["export"].items()}
    assert sizes["model.tflite"] > sizes["model_float16.tflite"] > max(sizes["model_quantized.tflite"],
                                                                       sizes["model_dynamic.tflite"])
    assert f"config.json serves {config['model_file']}" in result.stdout
    rows, compared = config["metrics"]["export"], config["metrics"]["export_compared_readings"]
    assert compared == 64 + 384 and rows["model.tflite"]["differs"] == 0  # held-out and training images
    assert rows[config["model_file"]]["differs"] <= 0.002 * compared
    for name in sizes:  # every file loads in the serving runtime
        variant = dict(config, model_file=name, sha256=file_sha256(export / name))
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(variant))
        (tmp_path / name / name).write_bytes((export / name).read_bytes())
        assert create_app(tmp_path / name).models.default.config.model_file == name
        loads_in_every_runtime(tmp_path / name)

    app = create_app(export)  # the serving runtime, sha256 and shape checks included
    png = synthetic_captcha(99, app.models.default.config.charset, (4,))[1]
    status, body = call(app, get_event(b64(png)))
    assert status == 200 and body["ok"] is True and body["model"]["sha256"] == config["sha256"]

    resumed = train_cli(tmp_path / "run", "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch 1" in resumed.stdout
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    first, second = (h["steps"] for h in state["history"])  # steps count on across a resume
    assert first > 0 and second == 2 * first


@pytest.mark.slow
def test_sigterm_mid_training_still_exports_the_best_model(tmp_path):
    """A stopped run (SIGTERM here; Ctrl-C is the same) leaves its best model exported, with plots."""
    import signal
    import time

    command = [sys.executable, "-m", "captcha_ocr.cli", "train", "--out", str(tmp_path / "run"), "--train-size",
               "256", "--val-size", "32", "--seed", "5", "--workers", "1", "--batch-size", "32", "--epochs", "500"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = tmp_path / "run" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if state.is_file() and json.loads(state.read_text()).get("epoch", 0) >= 2:
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    assert "stopped: exporting the best model so far" in output and "Traceback" not in output
    export = tmp_path / "run" / "export"
    assert (export / "config.json").is_file() and (export / "model_quantized.tflite").is_file()
    assert (tmp_path / "run" / "history.png").is_file()
    assert not list((tmp_path / "run" / "checkpoints").glob("partial-*"))
    assert json.loads(state.read_text())["epoch"] < 500


@pytest.mark.slow
def test_a_time_limit_ends_the_run_with_the_best_model_exported(tmp_path):
    # 100 steps an epoch: the limit (0.6 s) ends the first epoch within it, not after it
    result = train_cli(tmp_path / "run", "--epochs", "500", "--time-limit", "0.01", "--train-size", "3200")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "time limit of 0.01 min for this phase reached: stopping" in result.stdout
    assert "training with Keras on tensorflow, on the CPU" in result.stdout  # said at the start
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["epoch"] == 1 and (tmp_path / "run" / "export" / "config.json").is_file()
    assert 1 <= state["steps"] < 100


def test_the_served_file_is_the_first_preferred_that_reads_as_float32_does():
    pytest.importorskip("tensorflow")
    from captcha_ocr.training.export import MAX_DISAGREEMENT, choose_served

    images = 2000  # at most 0.2% of them, 4 readings, may differ
    assert MAX_DISAGREEMENT * images == 4
    same = {"model_dynamic.tflite": 0, "model_quantized.tflite": 0, "model_float16.tflite": 0, "model.tflite": 0}
    assert choose_served(same, images) == "model_dynamic.tflite"
    assert choose_served({**same, "model_dynamic.tflite": 4}, images) == "model_dynamic.tflite"
    dynamic_differs = {**same, "model_dynamic.tflite": 5}
    assert choose_served(dynamic_differs, images) == "model_quantized.tflite"
    both_int8_differ = {**dynamic_differs, "model_quantized.tflite": 9}
    assert choose_served(both_int8_differ, images) == "model_float16.tflite"
    assert choose_served({**both_int8_differ, "model_float16.tflite": 5}, images) == "model.tflite"


def test_the_run_outlook_counts_patience_the_cap_and_the_time_limit(tmp_path):
    from captcha_ocr.training.settings import TrainSettings
    from captcha_ocr.training.train import PATIENCE_MIN_STEPS, Checkpointer

    history = [{"phase": "labelled", "val_accuracy": a} for a in (0.1, 0.52, 0.5, 0.49)]
    state = {"history": history, "best_epoch": 3, "best_accuracy": 0.5, "epoch": 0}
    outlook = Checkpointer(TrainSettings(out_dir=str(tmp_path), patience=10), None, None, state, 200, 0, 1000)
    expected = ("run: epoch 4/200, checkpoint kept: epoch 3 (0.5000; highest 0.5200); at most 9.0 min left in this "
                "phase at this pace")  # 9 epochs of 1 min
    assert outlook._run_outlook(4, 240.0) == expected
    limited = Checkpointer(TrainSettings(out_dir=str(tmp_path)), None, None, state, 200, 300, 1000)
    assert "at most 1.0 min left" in limited._run_outlook(4, 240.0)
    state["epoch"] = 150  # a later phase: patience counts from where it started, not the best epoch before it
    later = Checkpointer(TrainSettings(out_dir=str(tmp_path), patience=10), None, None, state, 300, 0, 1000)
    assert "at most 6.0 min left" in later._run_outlook(154, 240.0)
    state["epoch"] = 0  # a small folder's epochs of 10 steps: patience covers PATIENCE_MIN_STEPS steps
    small = Checkpointer(TrainSettings(out_dir=str(tmp_path), patience=10), None, None, state, 2000, 0, 10)
    epochs = PATIENCE_MIN_STEPS // 10
    assert small._run_outlook(4, 240.0).endswith(f"at most {(3 + epochs - 4) * 1.0:.1f} min left in this phase "
                                                 "at this pace")


@pytest.mark.parametrize("held_out, stops", [(40, False), (200, True)])
def test_a_perfect_score_stops_a_run_only_on_enough_held_out_images(tmp_path, monkeypatch, held_out, stops):
    from captcha_ocr.training import train as training
    from captcha_ocr.training.settings import TrainSettings

    class Model:
        stop_training = False

        def save(self, path):
            Path(path).write_bytes(b"checkpoint")

    monkeypatch.setattr(training, "keras_accuracy", lambda model, dataset, settings: 1.0)
    validation = synthetic_dataset(held_out, purpose="val", seed=1, workers=1, **SETTINGS)
    state = {"history": [], "epoch": 0, "phase": "labelled"}
    model = Model()
    checkpointer = training.Checkpointer(TrainSettings(out_dir=str(tmp_path)), model, validation, state, 50, 0, 1)
    checkpointer.set_model(model)
    checkpointer.on_epoch_end(0, {"loss": 1.0})
    assert model.stop_training is stops


@pytest.mark.parametrize("steps_per_epoch, stops_after", [(10, 200), (1000, 5)])
def test_patience_covers_a_least_number_of_steps(tmp_path, monkeypatch, steps_per_epoch, stops_after):
    """--patience 5 stops after 5 epochs of 1000 steps, but a small folder's 10-step epochs go on
    for PATIENCE_MIN_STEPS (2000) steps: 200 epochs."""
    from captcha_ocr.training import train as training
    from captcha_ocr.training.settings import TrainSettings

    class Model:
        stop_training = False

        def save(self, path):
            Path(path).write_bytes(b"checkpoint")

    assert training.PATIENCE_MIN_STEPS == 2000
    scores = iter([0.9] + [0.1] * 1000)  # the first epoch is the best, by far
    monkeypatch.setattr(training, "keras_accuracy", lambda model, dataset, settings: next(scores))
    validation = synthetic_dataset(40, purpose="val", seed=1, workers=1, **SETTINGS)
    state = {"history": [], "epoch": 0, "phase": "labelled"}
    model = Model()
    checkpointer = training.Checkpointer(TrainSettings(out_dir=str(tmp_path), patience=5), model, validation, state,
                                         2000, 0, steps_per_epoch)
    checkpointer.set_model(model)
    epoch = 0
    while not model.stop_training:
        checkpointer.on_epoch_end(epoch, {"loss": 1.0})
        epoch += 1
    assert state["stopped"] == "patience" and state["best_epoch"] == 1 and epoch == 1 + stops_after


def test_a_time_limited_fit_spends_its_learning_rate_by_the_time_or_the_epochs_left():
    from types import SimpleNamespace

    from captcha_ocr.training.train import FINAL_SHARE, WARMUP_SHARE, BudgetCosine

    state = {"epoch": 10, "elapsed_s": 40.0}  # a fit starting at epoch 10, 40 s into the run
    schedule = BudgetCosine(0.01, state, last_epoch=210, time_limit_s=140.0)
    optimizer = SimpleNamespace(learning_rate=None)
    schedule.set_model(SimpleNamespace(optimizer=optimizer))
    rates = []
    for epoch, elapsed in [(10, 40.0), (11, 90.0), (12, 140.0)]:  # half the time gone, then all of it
        state["elapsed_s"] = elapsed
        schedule.on_epoch_begin(epoch)
        rates.append(optimizer.learning_rate)
    assert rates == pytest.approx([0.01 * WARMUP_SHARE, 0.005, 0.01 * FINAL_SHARE])
    state["elapsed_s"] = 41.0  # hardly any time used, but three quarters of the epochs
    schedule.on_epoch_begin(160)
    assert optimizer.learning_rate == pytest.approx(0.01 * 0.5 * (1 + np.cos(0.75 * np.pi)))



def test_the_checkpoint_kept_is_the_latest_within_one_standard_error_of_the_best():
    from captcha_ocr.training.train import highest_accuracy, keeps

    def epoch_end(state: dict, right: int, held_out: int) -> bool:
        """What the checkpointer does: record the epoch, then ask whether to keep it."""
        state["history"].append({"phase": state["phase"], "val_accuracy": right / held_out})
        return keeps(state, right / held_out, held_out)

    state = {"phase": "labelled", "history": []}
    # 162 held-out images: at 159 right one standard error is 1.7 images
    right = [146, 159, 158, 156, 157]
    assert [epoch_end(state, k, 162) for k in right] == [True, True, True, False, False]
    assert highest_accuracy(state) == 159 / 162
    perfect = {"phase": "labelled", "history": [{"phase": "labelled", "val_accuracy": 1.0}]}  # at 100%: one image
    assert [epoch_end(perfect, k, 83) for k in (82, 81)] == [True, False]
    # self-training never keeps less than the checkpoint it started from, noise or not
    state.update(phase="self-training", best_accuracy=158 / 162)
    assert [epoch_end(state, k, 162) for k in (157, 158)] == [False, True]


def test_the_two_network_sizes_share_layer_names_so_a_backbone_transfers():
    from captcha_ocr.training.model import build_model

    small, medium = build_model(48, 64, 10, "small"), build_model(48, 64, 10, "medium")
    assert [layer.name for layer in small.layers] == [layer.name for layer in medium.layers]
    assert 1.7 < medium.count_params() / small.count_params() < 2.3


def test_a_backbone_saved_with_its_charset_starts_the_shared_characters_and_the_blank(tmp_path):
    """--init's output layer: each character both charsets have (and the blank) starts from the
    backbone's column, a character it never learned from fresh weights; without every other layer
    (a different input height), no column is copied."""
    from captcha_ocr.training.model import build_model
    from captcha_ocr.training.pretrained import save_backbone, transfer_backbone

    backbone = build_model(48, 64, 4, "small")  # "abc" + blank
    path = save_backbone(backbone, tmp_path / "backbone.npz", charset="abc")
    model = build_model(48, 96, 4, "small")  # "cxa" + blank, a wider input
    fresh_x = model.get_layer("logits").get_weights()[0][:, 1].copy()
    copied = transfer_backbone(model, path, charset="cxa")
    assert "context" in copied and "logits (2 of 3 characters, and the blank)" in copied
    stored, kernel = backbone.get_layer("logits").get_weights()[0], model.get_layer("logits").get_weights()[0]
    np.testing.assert_allclose(kernel[:, [0, 2, 3]], stored[:, [2, 0, 3]].astype(np.float16), rtol=1e-3)
    np.testing.assert_array_equal(kernel[:, 1], fresh_x)  # x: not in the backbone
    assert not any(name.startswith("logits") for name in transfer_backbone(build_model(32, 96, 4, "small"), path, "a"))
    no_charset = transfer_backbone(build_model(48, 96, 4, "small"), path)
    assert "context" in no_charset and not any(name.startswith("logits") for name in no_charset)
