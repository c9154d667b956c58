"""Train the CNN + CTC model with periodic full-sequence evaluation, checkpoints and resume.

A run lives in one folder: settings.json (what was asked, with what was inferred from the data),
checkpoints/ (last and best), state.json (steps, loss, held-out accuracy and elapsed time per
epoch) and plots.
`--resume` continues from the last epoch. Checkpoints are chosen on full-sequence accuracy over
the whole validation set, never on one batch. With unlabelled images, a self-training phase
follows the labelled one (see `pseudo`). Written with Keras alone, so any backend trains it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from captcha_ocr.config import blank_index  # noqa: E402
from captcha_ocr.evaluation import sequence_accuracy  # noqa: E402
from captcha_ocr.labelled import DatasetError  # noqa: E402
from captcha_ocr.runtime import read_views  # noqa: E402
from captcha_ocr.training.augment import augmentation  # noqa: E402
from captcha_ocr.training.data import (  # noqa: E402
    Dataset,
    infer_input_width,
    labelled_digests,
    load_folder,
    load_unlabelled,
    split,
    synthetic_dataset,
)
from captcha_ocr.training.model import build_model  # noqa: E402
from captcha_ocr.training.settings import PATIENCE_MIN_STEPS, TrainSettings  # noqa: E402

# With 40 held-out images, all 40 right can happen long before the model is good on unseen ones;
# reaching the target stops a run only on this many (smaller sets go on to the patience or time limit).
MIN_VALIDATION_TO_STOP_AT_TARGET = 200
SUPERVISED_SHARE = 0.5  # of the time limit, for the labelled phase when unlabelled images follow
SELF_TRAINING_ROUNDS = 2
WARMUP_SHARE = 0.3  # of the peak learning rate, for a time-limited fit's first epoch
FINAL_SHARE = 0.02  # of the peak, the least a time-limited fit's learning rate falls to
# A fresh model that reads no held-out image after this many steps is taken to be stuck on CTC's
# plateau (on tjsp_captchas, characters emitted at fixed frames by the image borders, where no
# glyph can be told apart) and starts again from the backbone with the next seed; runs that left
# the plateau did so within 700 steps (BENCHMARKS.md, ablations).
PLATEAU_STEPS = 1000
MAX_RESTARTS = 3
# Self-training with no confidence to trust yet (pseudo.choose_threshold) trains on the labelled
# images for half the time left and tries again, up to RETRIES times, while at least RETRY_SHARE of
# the time limit is left.
RETRIES = 2
RETRY_SHARE = 0.2

# A terminal gets Keras's progress bar; a log file or a pipe (a background run, CI) one line per
# epoch with no escape codes or carriage returns
ON_TERMINAL = sys.stdout.isatty()
KERAS_VERBOSITY = 1 if ON_TERMINAL else 2
NEW_LINE_AFTER_BAR = "\n" if ON_TERMINAL else ""


@keras.saving.register_keras_serializable(package="captcha_ocr")
def ctc_loss(y_true, y_pred):
    """CTC loss on logits; labels are padded with the blank (the last class)."""
    blank = y_pred.shape[-1] - 1
    labels = ops.cast(y_true, "int32")
    label_length = ops.sum(ops.cast(ops.not_equal(labels, blank), "int32"), axis=-1)
    batch, frames = ops.shape(y_pred)[0], ops.shape(y_pred)[1]
    logit_length = ops.full((batch,), frames, dtype="int32")
    return ops.ctc_loss(labels, y_pred, label_length, logit_length, mask_index=blank)


class BudgetCosine(keras.callbacks.Callback):
    """The learning rate of a time-limited fit, set at each epoch's start: a gentler first epoch,
    then a cosine from the peak down to FINAL_SHARE of it over whichever runs out first, the epochs
    or the time. A schedule over the epoch cap alone would still be near its peak when the time
    limit stops a run, and the last epochs at a low rate are where the model settles (README
    "Training on your own captchas")."""

    def __init__(self, peak: float, state: dict, last_epoch: int, time_limit_s: float, warmup: bool = True) -> None:
        super().__init__()
        self.peak = peak
        self.warmup = warmup
        self.state = state
        self.first_epoch, self.last_epoch = state["epoch"], last_epoch
        self.time_from, self.time_limit_s = state.get("elapsed_s", 0.0), time_limit_s

    def progress(self, epoch: int) -> float:
        """How far this fit is, 0 to 1, by epochs or by time (the elapsed time the Checkpointer keeps)."""
        by_epochs = (epoch - self.first_epoch) / max(1, self.last_epoch - self.first_epoch)
        by_time = (self.state.get("elapsed_s", 0.0) - self.time_from) / max(1e-9, self.time_limit_s - self.time_from)
        return min(1.0, max(by_epochs, by_time))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.first_epoch and self.warmup:
            rate = self.peak * WARMUP_SHARE
        else:
            rate = self.peak * max(FINAL_SHARE, 0.5 * (1 + math.cos(math.pi * self.progress(epoch))))
        self.model.optimizer.learning_rate = rate


def keras_logits(model: keras.Model) -> Callable[[list[np.ndarray]], np.ndarray]:
    """Model inputs -> their logits, by Keras: what runtime.read_views reads during training."""
    return lambda tensors: model.predict(np.stack(tensors), batch_size=256, verbose=0)


def keras_texts(model: keras.Model, images: np.ndarray, settings: TrainSettings) -> list[str]:
    """The texts the run's export will read (runtime.read_views: its views, seen lengths)."""
    return [reading.text for reading in read_views(keras_logits(model), images, settings.charset, settings.lengths,
                                                   settings.views)]


def keras_accuracy(model: keras.Model, dataset: Dataset, settings: TrainSettings) -> float:
    """Full-sequence accuracy read as the export will read (keras_texts): checkpoint choice and the
    printed held-out accuracy score what serving answers."""
    return sequence_accuracy(keras_texts(model, dataset.images, settings), dataset.texts)


class Checkpointer(keras.callbacks.Callback):
    """Evaluate on the whole held-out set each epoch, keep last + best, stop at the target.

    `model` is what is exported (the trainer in `self.model` wraps it with augmentation); `last_epoch`
    and `time_limit_s` bound this fit; patience counts from the best epoch or this fit's start, in
    epochs of `steps_per_epoch` steps."""

    def __init__(self, settings: TrainSettings, model: keras.Model, validation: Dataset, state: dict,
                 last_epoch: int, time_limit_s: float, steps_per_epoch: int) -> None:
        super().__init__()
        self.settings = settings
        self.steps_per_epoch = steps_per_epoch
        self.exported = model
        self.validation = validation
        self.state = state
        self.last_epoch = last_epoch
        self.time_limit_s = time_limit_s
        self.started_at_epoch = state["epoch"]
        self.checkpoints = settings.run_dir / "checkpoints"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.state["steps"] = self.state.get("steps", 0) + 1  # across fits and resumes, like elapsed_s
        # the limit holds within an epoch too (a general run's epoch is 20+ minutes): Keras then ends
        # the epoch, on_epoch_end scores and keeps it, and _stop_if_done says why
        if self.time_limit_s and self._elapsed() >= self.time_limit_s:
            self.model.stop_training = True

    def _elapsed(self) -> float:
        """Seconds of fitting across fits and resumes: state.json's, plus this epoch's so far."""
        return self.state.get("elapsed_s", 0.0) + time.monotonic() - self.started

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        accuracy = keras_accuracy(self.exported, self.validation, self.settings)
        elapsed = self._elapsed()
        self.started = time.monotonic()
        record = {"epoch": epoch + 1, "steps": self.state.get("steps", 0),
                  "loss": float((logs or {}).get("loss", float("nan"))),
                  "val_accuracy": accuracy, "elapsed_s": round(elapsed, 1), "phase": self.state["phase"]}
        self.state["history"].append(record)
        self.state.update(epoch=epoch + 1, elapsed_s=elapsed)
        print(f"{NEW_LINE_AFTER_BAR}epoch {epoch + 1}: held-out full-sequence accuracy {accuracy:.4f} "
              f"({len(self.validation)} images), {elapsed / 60:.1f} min so far", flush=True)
        _save_atomically(self.model, self.checkpoints / "last.keras")
        if keeps(self.state, accuracy, len(self.validation)):
            self.state["best_accuracy"] = accuracy
            self.state["best_epoch"] = epoch + 1
            _save_atomically(self.exported, self.checkpoints / "best.keras")
        save_state(self.settings, self.state)
        self._stop_if_done(epoch + 1, accuracy, elapsed)
        if not self.model.stop_training:
            print(self._run_outlook(epoch + 1, elapsed), flush=True)

    def _stop_if_done(self, epoch: int, accuracy: float, elapsed: float) -> None:
        if accuracy >= self.settings.target_accuracy:
            if reached_target(self.settings, self.state, len(self.validation)):
                print(f"target accuracy {self.settings.target_accuracy} reached: stopping", flush=True)
                self._stop("target")
            elif not self.state.get("target_noted"):
                self.state["target_noted"] = True
                print(f"target accuracy reached on {len(self.validation)} held-out images, too few to stop on "
                      f"(it takes {MIN_VALIDATION_TO_STOP_AT_TARGET}): going on to the patience or time limit",
                      flush=True)
        patience = self._patience_epochs
        if patience and epoch - self._patience_from >= patience:
            print(f"no better checkpoint for {patience} epochs ({patience * self.steps_per_epoch} steps): stopping",
                  flush=True)
            self._stop("patience")
        if self.time_limit_s and elapsed >= self.time_limit_s:
            print(f"time limit of {self.time_limit_s / 60:g} min for this phase reached: stopping", flush=True)
            self._stop("time")

    @property
    def _patience_epochs(self) -> int:
        """--patience in epochs, raised to cover PATIENCE_MIN_STEPS steps (0: no patience)."""
        if not self.settings.patience:
            return 0
        return max(self.settings.patience, -(-PATIENCE_MIN_STEPS // max(1, self.steps_per_epoch)))

    @property
    def _patience_from(self) -> int:
        """Patience counts from the best epoch, or from this fit's start if that is later."""
        return max(self.state["best_epoch"], self.started_at_epoch)

    def _stop(self, reason: str) -> None:
        self.model.stop_training = True
        self.state["stopped"] = reason

    def _run_outlook(self, epoch: int, elapsed: float) -> str:
        """The whole run's progress, not only the epoch's: how many epochs at most remain and how long
        they take at this pace (patience, the epoch cap and the time limit each end it sooner)."""
        last = self.last_epoch
        if self._patience_epochs:
            last = min(last, self._patience_from + self._patience_epochs)
        per_epoch = elapsed / max(1, len(self.state["history"]))
        remaining = max(0.0, (last - epoch) * per_epoch)
        if self.time_limit_s:
            remaining = min(remaining, max(0.0, self.time_limit_s - elapsed))
        state = self.state
        return (f"run: epoch {epoch}/{self.last_epoch}, checkpoint kept: epoch {state['best_epoch']} "
                f"({state['best_accuracy']:.4f}; highest {highest_accuracy(state):.4f}); "
                f"at most {remaining / 60:.1f} min left in this phase at this pace")


def keeps(state: dict, accuracy: float, held_out: int) -> bool:
    """Whether this epoch's model becomes the run's best checkpoint (the one exported).

    In the labelled phase: any epoch within one standard error of the highest held-out accuracy so
    far, and never less than one image (a perfect score's error is not zero, only unmeasured). The
    rate anneals towards the end, so of two checkpoints that held-out images cannot tell apart, the
    later one is the better trained (on tjsp_captchas with 162 held-out images, the
    highest-scoring epoch read up to 2 points fewer unseen images than the last: BENCHMARKS.md).
    Self-training's epochs must do at least as well as the checkpoint kept, so it never loses."""
    if state["phase"] != "labelled":
        return accuracy >= state.get("best_accuracy", -1.0)
    highest = max(highest_accuracy(state), accuracy)
    images_behind = round((highest - accuracy) * held_out)  # both are counts over held_out
    return images_behind <= max(1.0, math.sqrt(held_out * highest * (1 - highest)))


def highest_accuracy(state: dict) -> float:
    """The highest held-out accuracy of the labelled phase's epochs so far (-1 before any)."""
    return max((r["val_accuracy"] for r in state["history"] if r.get("phase") == "labelled"), default=-1.0)


def reached_target(settings: TrainSettings, state: dict, held_out: int) -> bool:
    """The target ends a run only on enough held-out images to trust a perfect score."""
    return (state.get("best_accuracy", -1.0) >= settings.target_accuracy
            and held_out >= MIN_VALIDATION_TO_STOP_AT_TARGET)


def save_state(settings: TrainSettings, state: dict) -> None:
    path = settings.run_dir / "state.json"
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2) + "\n")
    os.replace(path.with_suffix(".tmp"), path)


def _save_atomically(model: keras.Model, path: Path) -> None:
    """A checkpoint is whole or absent: Ctrl-C or SIGTERM mid-save leaves the previous one."""
    partial = path.with_name(f"partial-{path.name}")
    try:
        model.save(partial)
    except BaseException:  # KeyboardInterrupt from Ctrl-C or SIGTERM mid-save: no half file left behind
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def steps_in_epoch(settings: TrainSettings, images: int) -> int:
    """Batches in one epoch over `images` (the last one may be short)."""
    return -(-images // settings.batch_size)


def compile_trainer(settings: TrainSettings, model: keras.Model, train_images: int, epochs: int,
                    learning_rate: float | None = None) -> keras.Model:
    """What fit() trains: the model behind the augmentation layers (when augmenting), sharing its
    weights, with Adam on a warm-up + cosine schedule over `epochs` (time-limited runs: BudgetCosine,
    which _fit adds, sets the rate per epoch instead). The augmentation is a part of the graph, so any
    Keras backend runs it on the training device, and the model itself (what is exported) never
    contains it."""
    image = keras.Input(model.input_shape[1:], name="image")
    view = augmentation(settings.seed)(image) if settings.augmenting else image
    trainer = keras.Model(image, model(view), name="trainer")
    peak = learning_rate or settings.learning_rate
    if settings.time_limit:
        trainer.compile(optimizer=keras.optimizers.Adam(peak * WARMUP_SHARE), loss=ctc_loss)
        return trainer
    steps_per_epoch = steps_in_epoch(settings, train_images)
    total = steps_per_epoch * epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10,
        decay_steps=max(1, total - steps_per_epoch // 2),
        warmup_target=peak,
        warmup_steps=steps_per_epoch // 2,
    )
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=ctc_loss)
    return trainer


def new_model(settings: TrainSettings, attempt: int = 0) -> keras.Model:
    """A fresh model (the synthetic backbone, when asked) whose new weights come from seed + attempt."""
    keras.utils.set_random_seed(settings.seed + attempt)
    model = build_model(settings.height, settings.width, blank_index(settings.charset) + 1, settings.model_size)
    if settings.init != "random":
        from captcha_ocr.training.pretrained import transfer_backbone
        from captcha_ocr.training.settings import BACKBONES

        if not BACKBONES[settings.init].is_file():
            raise DatasetError(f"--init {settings.init}: this package has no {BACKBONES[settings.init].name}")
        copied = transfer_backbone(model, BACKBONES[settings.init], settings.charset)
        print(f"initialised {len(copied)} layers from the {settings.init} model's backbone: {', '.join(copied)}")
    return model


def load_datasets(settings: TrainSettings) -> tuple[Dataset, Dataset]:
    return load_user_folder(settings) if settings.data_dir else load_synthetic(settings)


def infer_from_folder(settings: TrainSettings, charset: str | None, width: int | None) -> None:
    """Fill in what a user's folder decides: charset, label lengths and input width.

    Only images that actually decode count, so a corrupt file's name cannot add characters."""
    readable, _ = load_folder(Path(settings.data_dir), settings.height, settings.width, charset, settings.case_fold,
                              settings.gray)
    if not len(readable):
        raise DatasetError(f"no readable labelled images in {settings.data_dir}")
    settings.charset = charset or "".join(sorted(set("".join(readable.texts))))
    settings.lengths = tuple(sorted({len(text) for text in readable.texts}))
    settings.width = width or infer_input_width(readable.source_sizes, settings.height, max(settings.lengths))


def load_user_folder(settings: TrainSettings) -> tuple[Dataset, Dataset]:
    common = dict(height=settings.height, width=settings.width, charset=settings.charset,
                  case_fold=settings.case_fold, gray=settings.gray)
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


def load_unlabelled_images(settings: TrainSettings) -> Dataset | None:
    """--unlabelled's images, less any that are labelled in --data or --val-data."""
    if not settings.unlabelled_dir:
        return None
    skip = labelled_digests(Path(settings.data_dir), settings.val_dir and Path(settings.val_dir))
    unlabelled = load_unlabelled(Path(settings.unlabelled_dir), settings.height, settings.width, skip, settings.gray)
    print(f"{len(unlabelled)} unlabelled images in {settings.unlabelled_dir} for self-training")
    return unlabelled


def load_synthetic(settings: TrainSettings) -> tuple[Dataset, Dataset]:
    common = dict(seed=settings.seed, charset=settings.charset, lengths=settings.lengths,
                  height=settings.height, width=settings.width, gray=settings.gray, workers=settings.workers or None,
                  cache_dir=Path(".cache") / "datasets", generator=settings.generator)
    train = synthetic_dataset(settings.train_size, purpose="train", **common)
    validation = synthetic_dataset(settings.val_size, purpose="val", **common)
    return train, validation


def train(settings: TrainSettings, train_set: Dataset, validation: Dataset, resume: bool = False,
          unlabelled: Dataset | None = None) -> keras.Model:
    """Fit until `epochs`, the patience, the time limit or `target_accuracy`; then, given unlabelled
    images, self-train on them. Returns the best checkpoint's model (by held-out accuracy)."""
    print(describe_device(), flush=True)
    keras.utils.set_random_seed(settings.seed)
    settings.save()
    state = _load_state(settings) if resume else None
    state = state or {"epoch": 0, "history": [], "phase": "labelled"}
    try:
        with _stop_on_sigterm():
            labelled = None
            if state["phase"] == "labelled":
                labelled = _fit_labelled(settings, train_set, validation, state, resume,
                                         has_unlabelled=unlabelled is not None)
            if unlabelled is not None and not reached_target(settings, state, len(validation)):
                self_train(settings, train_set, validation, unlabelled, state, labelled)
    except KeyboardInterrupt:
        if "best_epoch" not in state:
            raise DatasetError("stopped before the first epoch ended: there is no model to export") from None
        print(f"\nstopped: exporting the best model so far (epoch {state['best_epoch']}, held-out "
              f"accuracy {state['best_accuracy']:.4f}); continue with --resume", flush=True)
    if state.get("best_accuracy") == 0:
        print(f"the model reads none of the held-out images yet: CTC training sits on a plateau (the loss flat "
              f"near where it started) until it learns which character is which, after "
              f"{1 + len(state.get('restarts', []))} fresh start(s) here. Give it more labelled images, or more "
              "time: --time-limit and --epochs, then --resume", flush=True)
    best = keras.models.load_model(settings.run_dir / "checkpoints" / "best.keras")
    write_plots(settings, best, validation)
    return best


def _load_state(settings: TrainSettings) -> dict | None:
    path = settings.run_dir / "state.json"
    if not (settings.run_dir / "checkpoints" / "last.keras").is_file() or not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("phase", "done") == "done" and "self_training" not in state:
        state["phase"] = "labelled"  # a finished run resumed for more epochs goes on where it ended
    print(f"resuming after epoch {state['epoch']} (best {state.get('best_accuracy', 0):.4f}, {state['phase']})")
    return state


def _fit_labelled(settings: TrainSettings, train_set: Dataset, validation: Dataset, state: dict, resume: bool,
                  has_unlabelled: bool) -> tuple[keras.Model, keras.Model] | None:
    """The labelled images alone; with unlabelled ones to come, this gets SUPERVISED_SHARE of the time.
    Returns (trainer, model) to go on with, or None when the target was already reached."""
    if reached_target(settings, state, len(validation)):
        print("target accuracy already reached by this run")
        return None
    if resume and state["epoch"]:
        trainer = keras.models.load_model(settings.run_dir / "checkpoints" / "last.keras")
        model, fresh = trainer.get_layer("captcha_ctc"), False
    else:
        trainer, model, fresh = _start_off_the_plateau(settings, train_set, validation, state, has_unlabelled)
    share = SUPERVISED_SHARE if has_unlabelled else 1.0
    if fresh is not None:
        _fit(settings, trainer, model, train_set, validation, state, settings.epochs, settings.time_limit_s * share,
             settings.learning_rate, warmup=fresh)
    _say_if_still_improving(settings, state)
    state["phase"] = "self-training" if has_unlabelled else "done"
    save_state(settings, state)
    return trainer, model


def _start_off_the_plateau(settings: TrainSettings, train_set: Dataset, validation: Dataset, state: dict,
                           has_unlabelled: bool) -> tuple[keras.Model, keras.Model, bool | None]:
    """A model and its trainer to train on, and whether it is untrained (None: its first steps
    already ended the phase, by the target, the patience or the time). Under a time limit, each of
    up to MAX_RESTARTS fresh starts that reads no held-out image within PLATEAU_STEPS steps gives
    way to the next (its epochs and time count against the run's)."""
    steps_per_epoch = steps_in_epoch(settings, len(train_set))
    probe_epochs = -(-PLATEAU_STEPS // steps_per_epoch)
    time_limit_s = settings.time_limit_s * (SUPERVISED_SHARE if has_unlabelled else 1.0)
    for attempt in range(MAX_RESTARTS + 1):
        model = new_model(settings, attempt)
        trainer = compile_trainer(settings, model, len(train_set), settings.epochs)
        if not settings.time_limit or attempt == MAX_RESTARTS or state["epoch"] + probe_epochs >= settings.epochs:
            return trainer, model, True
        _fit(settings, trainer, model, train_set, validation, state, settings.epochs, time_limit_s,
             settings.learning_rate, until_epoch=state["epoch"] + probe_epochs)
        if state.get("stopped") or state["elapsed_s"] >= time_limit_s:
            return trainer, model, None
        if state.get("best_accuracy", 0) > 0:
            break
        print(f"no held-out image read after {probe_epochs * steps_per_epoch} steps: still on CTC's plateau, "
              f"starting again from the backbone (seed {settings.seed + attempt + 1})", flush=True)
        state.setdefault("restarts", []).append(state["epoch"])
    return trainer, model, False


def self_train(settings: TrainSettings, train_set: Dataset, validation: Dataset, unlabelled: Dataset,
               state: dict, labelled: tuple[keras.Model, keras.Model] | None = None) -> bool:
    """Rounds of: read the unlabelled images with the best model, keep the confident readings, go on
    training from the best model on labelled + pseudo-labelled images. The held-out images judge
    every epoch, so the result is never worse than the labelled phase's on them. Says whether any
    unlabelled image was used.

    Under a time limit, while no confidence can be trusted yet, the labelled phase's (trainer, model)
    go on training on the labelled images alone and self-training tries again (_train_on_before_retry):
    with 50 labels, the checkpoint kept when the labelled phase's share of the time ran out did not
    always read its 5 held-out images, and a later one did; with 100 labels of tjsp_captchas the third
    try pseudo-labelled (BENCHMARKS.md, "Which start" and "Few labels from the general backbone")."""
    from captcha_ocr.training import pseudo

    rounds = state.setdefault("self_training", [])
    before = state["best_accuracy"]
    used, retries = False, 0
    while len(rounds) < SELF_TRAINING_ROUNDS and not _out_of_time(settings, state):
        best = keras.models.load_model(settings.run_dir / "checkpoints" / "best.keras")
        read = functools.partial(pseudo.readings, keras_logits(best), charset=settings.charset,
                                 lengths=settings.lengths, views=settings.views)
        held_out = read(validation.images)
        threshold = pseudo.choose_threshold(held_out, validation.texts)
        if threshold is None:
            print(f"self-training: no confidence at which {pseudo.PRECISION:.0%} of the held-out readings are right "
                  "yet, so no unlabelled image is used", flush=True)
            if not used and labelled is not None and _train_on_before_retry(settings, *labelled, train_set,
                                                                            validation, state, retries < RETRIES):
                retries += 1
                continue
            break
        extra = pseudo.pseudo_labelled(unlabelled, read(unlabelled.images), threshold, settings.lengths)
        rounds.append({"round": len(rounds) + 1, "from_epoch": state["epoch"], "threshold": threshold,
                       "unlabelled": len(unlabelled), "pseudo_labelled": len(extra)})
        print(f"self-training round {len(rounds)}: {len(extra)} of {len(unlabelled)} unlabelled images read at "
              f"confidence {threshold:g} or more (where {pseudo.PRECISION:.0%} of held-out readings are right) "
              f"join the {len(train_set)} labelled ones", flush=True)
        if not len(extra):
            break
        combined = Dataset(np.concatenate([train_set.images, extra.images]), train_set.texts + extra.texts)
        epochs = _round_epochs(settings, state, len(combined) / len(train_set), SELF_TRAINING_ROUNDS - len(rounds) + 1)
        trainer = compile_trainer(settings, best, len(combined), epochs, settings.learning_rate / 2)
        _fit(settings, trainer, best, combined, validation, state, state["epoch"] + epochs, settings.time_limit_s,
             settings.learning_rate / 2)
        used = True
    state["phase"] = "done"
    save_state(settings, state)
    print(f"self-training: best held-out accuracy {before:.4f} on the labelled images alone, "
          f"{state['best_accuracy']:.4f} with the unlabelled ones (epoch {state['best_epoch']})", flush=True)
    return used


def _train_on_before_retry(settings: TrainSettings, trainer: keras.Model, model: keras.Model, train_set: Dataset,
                           validation: Dataset, state: dict, may_retry: bool) -> bool:
    """With no unlabelled image usable yet: train on the labelled images for half the time left, if
    it `may_retry` and RETRY_SHARE of the time limit is left, and say that self-training tries again;
    else for all the time left. Says whether to try again (False also without a time limit, time or
    epochs left)."""
    left = settings.time_limit_s - state.get("elapsed_s", 0.0)
    if not settings.time_limit or left <= 0 or state["epoch"] >= settings.epochs:
        return False
    retry = may_retry and left >= RETRY_SHARE * settings.time_limit_s
    spend = left / 2 if retry else left
    print(f"training on the labelled images goes on for {spend / 60:.1f} min"
          + (", then self-training tries again" if retry else ", the time left"), flush=True)
    _fit(settings, trainer, model, train_set, validation, state, settings.epochs, state["elapsed_s"] + spend,
         settings.learning_rate / 2, warmup=False)
    return retry


def _round_epochs(settings: TrainSettings, state: dict, size_ratio: float, rounds_left: int) -> int:
    """Epochs for a self-training round: half the epoch cap, or as many as fit in this round's share
    of the time left at the pace so far (so its learning rate decays before the time limit)."""
    epochs = max(1, settings.epochs // 2)
    if settings.time_limit and state["epoch"]:
        per_epoch = state["elapsed_s"] / state["epoch"] * size_ratio
        left = settings.time_limit_s - state["elapsed_s"]
        epochs = min(epochs, max(1, int(left / rounds_left / per_epoch)))
    return epochs


def _out_of_time(settings: TrainSettings, state: dict) -> bool:
    return bool(settings.time_limit) and state.get("elapsed_s", 0.0) >= settings.time_limit_s


def _fit(settings: TrainSettings, trainer: keras.Model, model: keras.Model, train_set: Dataset, validation: Dataset,
         state: dict, last_epoch: int, time_limit_s: float, peak_learning_rate: float,
         until_epoch: int | None = None, warmup: bool = True) -> None:
    """Train to last_epoch (or stop at until_epoch: the schedule and checkpoints still plan for
    last_epoch); `warmup`: a fresh model's gentler first epoch, not for one going on."""
    labels, _ = train_set.encode_labels(settings.charset, max(settings.lengths))
    steps_per_epoch = steps_in_epoch(settings, len(train_set))
    callbacks: list[keras.callbacks.Callback] = [Checkpointer(settings, model, validation, state, last_epoch,
                                                              time_limit_s, steps_per_epoch)]
    if time_limit_s:
        callbacks.insert(0, BudgetCosine(peak_learning_rate, state, last_epoch, time_limit_s, warmup))
    trainer.fit(train_set.images, labels, batch_size=settings.batch_size, epochs=until_epoch or last_epoch,
                initial_epoch=state["epoch"], shuffle=True, verbose=KERAS_VERBOSITY, callbacks=callbacks)


def describe_device() -> str:
    """Which backend and device Keras trains on, said at the start of every run."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        accelerators = [str(d) for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        accelerators = [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else []
    else:
        import tensorflow as tf

        accelerators = [device.name for device in tf.config.list_physical_devices("GPU")]
    if accelerators:
        return f"training with Keras on {backend}, on GPU: {', '.join(accelerators)}"
    return f"training with Keras on {backend}, on the CPU (no GPU seen)"


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
    predictions = keras_texts(model, validation.images, settings)
    plot_errors(validation.images, validation.texts, predictions, settings.run_dir / "errors.png")
    print(f"plots: {settings.run_dir / 'history.png'}, {settings.run_dir / 'errors.png'}")
