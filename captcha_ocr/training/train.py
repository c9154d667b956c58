"""Train the CNN + CTC model with periodic full-sequence evaluation, checkpoints and resume.

A run lives in one folder: settings.json (what was asked, with what was inferred from the data),
checkpoints/ (last and best), state.json (loss and held-out accuracy per epoch) and plots.
`--resume` continues from the last epoch. Checkpoints are chosen on full-sequence accuracy over
the whole validation set, never on one batch.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import ops  # noqa: E402

from captcha_ocr.evaluation import sequence_accuracy  # noqa: E402
from captcha_ocr.labelled import DatasetError  # noqa: E402
from captcha_ocr.runtime import greedy_texts  # noqa: E402
from captcha_ocr.training.data import (  # noqa: E402
    Dataset,
    infer_input_width,
    load_folder,
    split,
    synthetic_dataset,
)
from captcha_ocr.training.model import build_model  # noqa: E402
from captcha_ocr.training.settings import TrainSettings  # noqa: E402

# With 40 held-out images, all 40 right can happen long before the model is good on unseen ones;
# reaching the target stops a run only on this many (smaller sets go on to the patience or time limit).
MIN_VALIDATION_TO_STOP_AT_TARGET = 200


@keras.saving.register_keras_serializable(package="captcha_ocr")
def ctc_loss(y_true, y_pred):
    """CTC loss on logits; labels are padded with the blank (the last class)."""
    blank = y_pred.shape[-1] - 1
    labels = ops.cast(y_true, "int32")
    label_length = ops.sum(ops.cast(ops.not_equal(labels, blank), "int32"), axis=-1)
    batch, frames = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
    logit_length = ops.full((batch,), frames, dtype="int32")
    return ops.ctc_loss(labels, y_pred, label_length, logit_length, mask_index=blank)


def keras_accuracy(model: keras.Model, dataset: Dataset, charset: str) -> float:
    logits = model.predict(dataset.images, batch_size=256, verbose=0)
    return sequence_accuracy(greedy_texts(logits, charset), dataset.texts)


class Checkpointer(keras.callbacks.Callback):
    """Evaluate on the whole held-out set each epoch, keep last + best, stop at the target."""

    def __init__(self, settings: TrainSettings, validation: Dataset, state: dict) -> None:
        super().__init__()
        self.settings = settings
        self.validation = validation
        self.state = state
        self.checkpoints = settings.run_dir / "checkpoints"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        accuracy = keras_accuracy(self.model, self.validation, self.settings.charset)
        elapsed = self.state.get("elapsed_s", 0.0) + time.monotonic() - self.started
        self.started = time.monotonic()
        record = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))),
                  "val_accuracy": accuracy, "elapsed_s": round(elapsed, 1)}
        self.state["history"].append(record)
        self.state.update(epoch=epoch + 1, elapsed_s=elapsed)
        print(f"\nepoch {epoch + 1}: held-out full-sequence accuracy {accuracy:.4f} "
              f"({len(self.validation)} images), {elapsed / 60:.1f} min so far", flush=True)
        self._save_atomically("last.keras")
        if accuracy >= self.state.get("best_accuracy", -1.0):
            self.state["best_accuracy"] = accuracy
            self.state["best_epoch"] = epoch + 1
            self._save_atomically("best.keras")
        state_path = self.settings.run_dir / "state.json"
        state_path.with_suffix(".tmp").write_text(json.dumps(self.state, indent=2) + "\n")
        os.replace(state_path.with_suffix(".tmp"), state_path)
        if accuracy >= self.settings.target_accuracy:
            if len(self.validation) >= MIN_VALIDATION_TO_STOP_AT_TARGET:
                print(f"target accuracy {self.settings.target_accuracy} reached: stopping", flush=True)
                self.model.stop_training = True
            elif not self.state.get("target_noted"):
                self.state["target_noted"] = True
                print(f"target accuracy reached on {len(self.validation)} held-out images, too few to stop on "
                      f"(it takes {MIN_VALIDATION_TO_STOP_AT_TARGET}): going on to the patience or time limit",
                      flush=True)
        patience = self.settings.patience
        if patience and epoch + 1 - self.state["best_epoch"] >= patience:
            print(f"no better checkpoint for {patience} epochs: stopping", flush=True)
            self.model.stop_training = True
        limit = self.settings.time_limit * 60
        if limit and elapsed >= limit:
            print(f"time limit of {self.settings.time_limit:g} min reached: stopping", flush=True)
            self.model.stop_training = True
        if not self.model.stop_training:
            print(self._run_outlook(epoch + 1, elapsed), flush=True)

    def _run_outlook(self, epoch: int, elapsed: float) -> str:
        """The whole run's progress, not only the epoch's: how many epochs at most remain and how long
        they take at this pace (patience, the epoch cap and the time limit each end it sooner)."""
        last = self.settings.epochs
        if self.settings.patience:
            last = min(last, self.state["best_epoch"] + self.settings.patience)
        per_epoch = elapsed / max(1, len(self.state["history"]))
        remaining = max(0.0, (last - epoch) * per_epoch)
        if self.settings.time_limit:
            remaining = min(remaining, max(0.0, self.settings.time_limit * 60 - elapsed))
        return (f"run: epoch {epoch}/{self.settings.epochs}, best {self.state['best_accuracy']:.4f} at epoch "
                f"{self.state['best_epoch']}; at most {remaining / 60:.1f} min left at this pace")


    def _save_atomically(self, name: str) -> None:
        """A checkpoint is whole or absent: Ctrl-C or SIGTERM mid-save leaves the previous one."""
        partial = self.checkpoints / f"partial-{name}"
        self.model.save(partial)
        os.replace(partial, self.checkpoints / name)


def compile_model(settings: TrainSettings, steps_per_epoch: int) -> keras.Model:
    model = build_model(settings.height, settings.width, len(settings.charset) + 1)
    total = steps_per_epoch * settings.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=settings.learning_rate / 10,
        decay_steps=max(1, total - steps_per_epoch // 2),
        warmup_target=settings.learning_rate,
        warmup_steps=steps_per_epoch // 2,
    )
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    return model


def load_datasets(settings: TrainSettings) -> tuple[Dataset, Dataset]:
    return load_user_folder(settings) if settings.data_dir else load_synthetic(settings)


def infer_from_folder(settings: TrainSettings, charset: str | None, width: int | None) -> None:
    """Fill in what a user's folder decides: charset, label lengths and input width.

    Only images that actually decode count, so a corrupt file's name cannot add characters."""
    readable, _ = load_folder(Path(settings.data_dir), settings.height, settings.width, charset, settings.case_fold)
    if not len(readable):
        raise DatasetError(f"no readable labelled images in {settings.data_dir}")
    settings.charset = charset or "".join(sorted(set("".join(readable.texts))))
    settings.lengths = tuple(sorted({len(text) for text in readable.texts}))
    settings.width = width or infer_input_width(readable.source_sizes, settings.height, max(settings.lengths))


def load_user_folder(settings: TrainSettings) -> tuple[Dataset, Dataset]:
    common = dict(height=settings.height, width=settings.width, charset=settings.charset,
                  case_fold=settings.case_fold)
    dataset, report = load_folder(Path(settings.data_dir), **common)
    print(report.summary(Path(settings.data_dir)))
    if settings.val_dir:
        validation, val_report = load_folder(Path(settings.val_dir), **common)
        print(val_report.summary(Path(settings.val_dir)))
        train_set = dataset
    else:
        train_set, validation = split(dataset, settings.val_split, settings.seed)
    if not len(train_set) or not len(validation):
        raise DatasetError("need at least one training and one validation image")
    print(f"{len(train_set)} training and {len(validation)} validation images; charset {settings.charset!r}, "
          f"lengths {list(settings.lengths)}, input {settings.height}x{settings.width}")
    return train_set, validation


def load_synthetic(settings: TrainSettings) -> tuple[Dataset, Dataset]:
    common = dict(seed=settings.seed, charset=settings.charset, lengths=settings.lengths,
                  height=settings.height, width=settings.width, workers=settings.workers or None,
                  cache_dir=Path(".cache") / "datasets")
    train = synthetic_dataset(settings.train_size, purpose="train", **common)
    validation = synthetic_dataset(settings.val_size, purpose="val", **common)
    return train, validation


def train(settings: TrainSettings, train_set: Dataset, validation: Dataset, resume: bool = False) -> keras.Model:
    """Fit until `epochs` or `target_accuracy`; returns the best checkpoint's model."""
    print(describe_device(), flush=True)
    keras.utils.set_random_seed(settings.seed)
    settings.save()
    steps_per_epoch = (len(train_set) + settings.batch_size - 1) // settings.batch_size
    state_path = settings.run_dir / "state.json"
    last = settings.run_dir / "checkpoints" / "last.keras"
    if resume and last.is_file():
        model = keras.models.load_model(last)
        state = json.loads(state_path.read_text())
        print(f"resuming after epoch {state['epoch']} (best {state.get('best_accuracy', 0):.4f})")
    else:
        model = compile_model(settings, steps_per_epoch)
        if settings.init == "synthetic":
            from captcha_ocr.training.pretrained import transfer_backbone

            copied = transfer_backbone(model)
            print(f"initialised {len(copied)} layers from the synthetic model's backbone: {', '.join(copied)}")
        state = {"epoch": 0, "history": []}
    if state.get("best_accuracy", -1.0) >= settings.target_accuracy:
        print("target accuracy already reached by this run")
    else:
        labels, _ = train_set.encode_labels(settings.charset, max(settings.lengths))
        callbacks = [Checkpointer(settings, validation, state)]
        with _stop_on_sigterm():
            try:
                if settings.augmenting:
                    from captcha_ocr.training.augment import training_batches

                    batches = training_batches(train_set.images, labels, settings.batch_size, settings.seed)
                    model.fit(batches, epochs=settings.epochs, initial_epoch=state["epoch"], shuffle=False,
                              verbose=1, callbacks=callbacks)
                else:
                    model.fit(train_set.images, labels, batch_size=settings.batch_size, epochs=settings.epochs,
                              initial_epoch=state["epoch"], shuffle=True, verbose=1, callbacks=callbacks)
            except KeyboardInterrupt:
                if "best_epoch" not in state:
                    raise DatasetError("stopped before the first epoch ended: there is no model to export") from None
                print(f"\nstopped: exporting the best model so far (epoch {state['best_epoch']}, held-out "
                      f"accuracy {state['best_accuracy']:.4f}); continue with --resume", flush=True)
        _say_if_still_improving(settings, state)
    best = keras.models.load_model(settings.run_dir / "checkpoints" / "best.keras")
    write_plots(settings, best, validation)
    return best


def describe_device() -> str:
    """Which device TensorFlow trains on, said at the start of every run."""
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    return f"training on GPU: {', '.join(gpus)}" if gpus else "training on the CPU (TensorFlow sees no GPU)"


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (kill, a notebook's stop button, a job scheduler) stops training like Ctrl-C does."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say_if_still_improving(settings: TrainSettings, state: dict) -> None:
    """A run that ends at its epoch cap with its best epoch last was still learning: say how to go on."""
    if state.get("epoch") == settings.epochs and state.get("best_epoch") == settings.epochs \
            and state.get("best_accuracy", 0) < settings.target_accuracy and settings.epochs > 1:
        print(f"the last epoch was the best: the run may still improve. Continue with: captcha-ocr train "
              f"--out {settings.out_dir} --resume --epochs {settings.epochs * 2}", flush=True)


def write_plots(settings: TrainSettings, model: keras.Model, validation: Dataset) -> None:
    from captcha_ocr.training.plots import plot_errors, plot_history

    state = json.loads((settings.run_dir / "state.json").read_text())
    plot_history(state["history"], settings.run_dir / "history.png")
    predictions = greedy_texts(model.predict(validation.images, batch_size=256, verbose=0), settings.charset)
    plot_errors(validation.images, validation.texts, predictions, settings.run_dir / "errors.png")
    print(f"plots: {settings.run_dir / 'history.png'}, {settings.run_dir / 'errors.png'}")
