"""Assisted labelling of a folder of captchas: the model's reading pre-filled, least sure first.

`captcha-ocr label FOLDER` serves a keyboard-first page over a LabelSession. Every answer is
written to FOLDER/labels.tsv at once, atomically (a temporary file, then a rename), so a crash or a
closed tab loses nothing, and a restart resumes with the images still unlabelled. After the
unlabelled images come the labelled ones the model confidently disagrees with: label noise is
common in real sets.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captcha_ocr.labelled import IMAGE_SUFFIXES, LABEL_FILES, DatasetError

if TYPE_CHECKING:
    from captcha_ocr.registry import Model

LABELS_FILE = "labels.tsv"
LOCK_FILE = ".labels.tsv.lock"  # held (flock) while a session is open; the kernel frees it if the process dies
# What one line of labels.tsv (`name<TAB>label`) cannot hold: its separator and every character that
# ends a line for Python's str.splitlines, which the readers of the file use
LINE_BREAKING = "\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
REVIEW_CONFIDENCE = 0.9  # a labelled image is shown again when the model disagrees this surely
MIN_LABELS_TO_RETRAIN = 10  # a training run needs a few images to learn from and a few to score on

# image bytes -> (text, confidence), or for an arithmetic model (text, confidence, answer, why none)
Reader = Callable[[bytes], tuple]


class ImageGone(DatasetError):
    """The image was deleted or moved since the session listed it."""

    status, code = 404, "ImageGone"


class LabelsNotSaved(DatasetError):
    """labels.tsv could not be written (disk full, read-only folder): the answer was not kept."""

    status, code = 507, "LabelsNotSaved"


class FolderInUse(DatasetError):
    """Another labelling session holds the folder: two would overwrite each other's labels."""


def holdable(text: str) -> bool:
    """Whether a name or label survives a round trip through one line of labels.tsv."""
    return text == text.strip() and not any(c in LINE_BREAKING for c in text)


@dataclass(frozen=True)
class Item:
    name: str  # path relative to the folder
    prediction: str
    confidence: float
    answer: int | None = None  # an arithmetic model's: what its reading asks for
    answer_error: str | None = None  # an arithmetic model's: why its reading has no answer
    review: bool = False  # already labelled, and the model disagrees


def model_reader(model: Model) -> Reader:
    """A served model as a Reader of this page: captcha_ocr.Reader's reading, "" for unreadable files."""
    from captcha_ocr.errors import ApiError
    from captcha_ocr.reader import Reader as ImageReader
    from captcha_ocr.registry import Registry

    reader = ImageReader.from_models(Registry([model]))

    def read(data: bytes) -> tuple:
        try:
            reading = reader.read(data)
        except ApiError:
            return "", 0.0
        if reading.task == "arithmetic":
            return reading.text, reading.confidence, reading.answer, reading.answer_error
        return reading.text, reading.confidence

    return read


def read_labels(folder: Path) -> dict[str, str]:
    path = folder / LABELS_FILE
    if not path.is_file():
        return {}
    labels = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line and not line.startswith("#"):
            name, label = line.split("\t", 1)
            labels[name] = label
    return labels


class LabelSession:
    def __init__(self, folder: Path, read: Reader) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DatasetError(f"no such folder: {self.folder}")
        others = [name for name in LABEL_FILES if name != LABELS_FILE and (self.folder / name).is_file()]
        if others:
            raise DatasetError(f"{self.folder} keeps its labels in {others[0]}; the labelling page writes "
                               f"{LABELS_FILE}: merge them into one file first")
        self._lock_file = self._hold(self.folder)
        try:
            self._open(read)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _hold(folder: Path):
        try:
            lock = open(folder / LOCK_FILE, "a")  # held until close()
        except OSError as error:
            raise DatasetError(f"{folder} is not writable ({error.strerror}): labels.tsv could not be saved "
                               "there") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise FolderInUse(f"another labelling session is open on {folder}: finish it first") from None
        return lock

    def close(self) -> None:
        """Let another session open the folder (also done by the kernel when the process ends)."""
        if not self._lock_file.closed:
            self._lock_file.close()

    def __enter__(self) -> LabelSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self, read: Reader) -> None:
        self.labels = read_labels(self.folder)
        names, self.skipped = [], []
        root = self.folder.resolve()
        for path in sorted(self.folder.rglob("*")):
            if (path.is_file() and not path.is_symlink() and path.suffix.lower() in IMAGE_SUFFIXES
                    and path.resolve().is_relative_to(root)):  # nothing through a linked folder either
                name = path.relative_to(self.folder).as_posix()
                (names if holdable(name) and not name.startswith("#") else self.skipped).append(name)
        if not names:
            raise DatasetError(f"no images in {self.folder}")
        self.total = len(names)
        self.lock = threading.RLock()  # the page's threads and a background retraining share the session
        self.queue = self._ranked(names, read)
        self.position = 0
        self.answered = 0
        self.prefills_right = 0

    def _ranked(self, names: list[str], read: Reader) -> list[Item]:
        readings = {name: read((self.folder / name).read_bytes()) for name in names}
        unlabelled = sorted((n for n in names if n not in self.labels), key=lambda n: (readings[n][1], n))
        disputed = sorted((n for n in names if n in self.labels and readings[n][0] != self.labels[n]
                           and readings[n][1] >= REVIEW_CONFIDENCE), key=lambda n: (-readings[n][1], n))
        return [Item(n, *readings[n], review=n in self.labels) for n in unlabelled + disputed]

    def rerank(self, read: Reader) -> None:
        """Read what is still ahead with another model and order it again; what was seen, and the
        image on the page now, stay where they are."""
        with self.lock:
            ahead = [item.name for item in self.queue[self.position + 1:]]
            self.queue = self.queue[:self.position + 1] + self._ranked(ahead, read)

    def state(self) -> dict[str, Any]:
        """What the page shows: the current item (or none left) and the progress."""
        with self.lock:
            return self._state()

    def _state(self) -> dict[str, Any]:
        item = self.queue[self.position] if self.position < len(self.queue) else None
        return {
            "item": None if item is None else {
                "name": item.name, "prediction": item.prediction, "confidence": item.confidence,
                "review": item.review, "label": self.labels.get(item.name, ""),
                **({"answer": item.answer, "answerError": item.answer_error}
                   if item.answer is not None or item.answer_error is not None else {}),
            },
            "position": self.position, "queue": len(self.queue),
            "labelled": len(self.labels), "total": self.total,
            "prefill_accuracy": self.prefills_right / self.answered if self.answered else None,
        }

    def answer(self, label: str, name: str | None = None) -> dict[str, Any]:
        """Label the current image; `name`, when given, must be it (a page that is out of date is told so)."""
        label = label.strip()
        if not label or not holdable(label):
            raise DatasetError("a label is one line of text without tabs or line breaks")
        with self.lock:
            item = self._current()
            if name is not None and name != item.name:
                raise DatasetError(f"the page shows {name[:64]} but the session is at {item.name[:64]}: reload")
            before = self.labels.get(item.name)
            self.labels[item.name] = label
            try:
                self._write()
            except OSError as error:  # nothing is acknowledged that is not on disk
                if before is None:
                    del self.labels[item.name]
                else:
                    self.labels[item.name] = before
                raise LabelsNotSaved(f"{LABELS_FILE} could not be written ({error.strerror or error}); "
                                     "the label was not saved") from None
            self.answered += 1
            self.prefills_right += label == item.prediction
            self.position += 1
            return self._state()

    def skip(self) -> dict[str, Any]:
        with self.lock:
            self._current()
            self.position += 1
            return self._state()

    def back(self) -> dict[str, Any]:
        with self.lock:
            self.position = max(0, self.position - 1)
            return self._state()

    def image(self, name: str) -> bytes:
        """An image of this session's folder, by the name the page was given, and only while it is a
        file inside the folder (not a link out of it), whatever labels.tsv says."""
        if name not in {item.name for item in self.queue}:
            raise DatasetError("not an image of this folder")
        path = self.folder / name
        try:
            inside = path.resolve().is_relative_to(self.folder.resolve()) and not path.is_symlink()
            if not inside or not path.is_file():
                raise FileNotFoundError(errno.ENOENT, "not a file of the folder")
            return path.read_bytes()
        except OSError as error:
            raise ImageGone(f"{name[:64]} is no longer in the folder ({error.strerror or error})") from None

    def _current(self) -> Item:
        if self.position >= len(self.queue):
            raise DatasetError("every image has been seen")
        return self.queue[self.position]

    def _write(self) -> None:
        """labels.tsv rewritten whole through a temporary file and a rename: never half written."""
        path = self.folder / LABELS_FILE
        partial = path.with_name(f".{LABELS_FILE}.partial")
        lines = [f"{name}\t{label}\n" for name, label in sorted(self.labels.items())]
        partial.write_text("".join(lines), encoding="utf-8")
        os.replace(partial, path)


class Retrainer:
    """Trains on the labels so far, with the images not yet labelled as unlabelled data, in the
    background (`captcha-ocr train` in a child process, so TensorFlow never shares the page's
    process), then pre-fills and re-ranks the rest with it."""

    def __init__(self, session: LabelSession, runs: Path, minutes: float, reader_for: Callable[[Path], Reader]):
        self.session, self.runs, self.minutes, self.reader_for = session, Path(runs), minutes, reader_for
        self.status: dict[str, Any] = {"state": "idle"}
        self._thread: threading.Thread | None = None

    def start(self) -> dict[str, Any]:
        with self.session.lock:
            if self._thread is not None and self._thread.is_alive():
                return self.status
            if len(self.session.labels) < MIN_LABELS_TO_RETRAIN:
                raise DatasetError(f"label at least {MIN_LABELS_TO_RETRAIN} images before retraining "
                                   f"({len(self.session.labels)} so far)")
            run = self.runs / time.strftime("label-%Y%m%d-%H%M%S")
            self.status = {"state": "training", "labels": len(self.session.labels), "run": str(run)}
            self._thread = threading.Thread(target=self._train, args=(run,), daemon=True)
            self._thread.start()
            return self.status

    def _train(self, run: Path) -> None:
        folder = str(self.session.folder)  # its images not labelled yet train it too (self-training)
        command = [sys.executable, "-m", "captcha_ocr.cli", "train", "--data", folder, "--unlabelled", folder,
                   "--out", str(run), "--time-limit", str(self.minutes)]
        done = subprocess.run(command, capture_output=True, text=True)
        export = run / "export"
        if done.returncode != 0 or not (export / "config.json").is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            self.status = {**self.status, "state": "failed", "message": last[0][:300]}
            return
        accuracy = json.loads((run / "state.json").read_text()).get("best_accuracy")
        self.session.rerank(self.reader_for(export))
        self.status = {**self.status, "state": "done", "accuracy": accuracy, "model": str(export)}
