"""Run the TFLite model and turn its per-frame logits into text with confidences.

The interpreter comes from `ai_edge_litert`, the package pinned in runtime-pins.txt and shipped in
the SCF bundle; then `tflite_runtime` (the SCF design's choice, a tested alternative), then full
TensorFlow as a last resort. CAPTCHA_OCR_RUNTIME names one package to use and no other.
CTC decoding is plain numpy so training, evaluation and serving share it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from captcha_ocr.config import ConfigError, ModelConfig, file_sha256

_INTERPRETER_CHAIN = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
    ("tensorflow-cpu", "tensorflow.lite"),
)
RUNTIME_ENV = "CAPTCHA_OCR_RUNTIME"


@dataclass(frozen=True)
class RuntimeInfo:
    package: str
    version: str


@dataclass(frozen=True)
class CharResult:
    char: str
    confidence: float


@dataclass(frozen=True)
class Recognition:
    text: str
    confidence: float
    chars: tuple[CharResult, ...]


def import_interpreter(package: str | None = None) -> tuple[Any, RuntimeInfo]:
    """The first importable Interpreter class of the chain (or of `package` alone, default
    $CAPTCHA_OCR_RUNTIME), and which package provided it."""
    package = package or os.environ.get(RUNTIME_ENV) or None
    chain = [link for link in _INTERPRETER_CHAIN if package in (None, link[0])]
    if not chain:
        raise ConfigError(f"{RUNTIME_ENV}={package!r}: use one of {', '.join(p for p, _ in _INTERPRETER_CHAIN)}")
    for name, module_name in chain:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return module.Interpreter, RuntimeInfo(package=name, version=_installed_version(name))
    raise RuntimeError(f"no TFLite runtime installed ({', '.join(n for n, _ in chain)}): pip install ai-edge-litert")


def _installed_version(package: str) -> str:
    candidates = (package, "tensorflow") if package == "tensorflow-cpu" else (package,)
    for name in candidates:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy_path(log_probs: np.ndarray, blank: int) -> list[tuple[int, float]]:
    """Best class per frame, repeats merged, blanks dropped: (class, its best frame probability)."""
    return collapse_frames(log_probs.argmax(axis=-1), log_probs, blank)


def collapse_frames(frames: np.ndarray, log_probs: np.ndarray, blank: int) -> list[tuple[int, float]]:
    """A class per frame -> the CTC reading: (class, its best frame probability) per character."""
    probabilities = np.exp(log_probs[np.arange(len(frames)), frames]).tolist()
    decoded: list[tuple[int, float]] = []
    previous = blank
    for label, probability in zip(frames.tolist(), probabilities):
        if label != blank and label != previous:
            decoded.append((label, probability))
        elif label != blank and decoded:
            decoded[-1] = (label, max(decoded[-1][1], probability))
        previous = label
    return decoded


def best_path_of_length(log_probs: np.ndarray, blank: int, lengths: tuple[int, ...]) -> np.ndarray | None:
    """The most probable frame path whose reading has one of `lengths` characters (Viterbi over
    (characters so far, this frame's class)); None when no such path fits in the frames."""
    frames, classes = log_probs.shape
    most = max(lengths)
    score = np.full((most + 1, classes), -np.inf)
    score[0, blank] = log_probs[0, blank]
    score[1, :] = np.where(np.arange(classes) == blank, -np.inf, log_probs[0])
    back = np.zeros((frames, most + 1, classes), dtype=np.int64)  # previous state, as k * classes + c
    chars = np.arange(classes) != blank
    for t in range(1, frames):
        new = np.full_like(score, -np.inf)
        # a blank keeps the count: from any class at the same count
        best_any = score.argmax(axis=1)
        new[:, blank] = score[np.arange(most + 1), best_any] + log_probs[t, blank]
        back[t, :, blank] = np.arange(most + 1) * classes + best_any
        # a character repeats the last one (same count) or starts a new one (one more, after any other class)
        order = np.argsort(score[:-1], axis=1)
        first, second = order[:, -1], order[:, -2]
        rows = np.arange(most)
        other = np.where(np.arange(classes)[None, :] == first[:, None], score[rows, second][:, None],
                         score[rows, first][:, None])  # best over every class but this one, count k - 1
        other_from = np.where(np.arange(classes)[None, :] == first[:, None], second[:, None], first[:, None])
        repeat = score[1:]
        take_new = other > repeat
        new[1:] = np.where(chars, np.maximum(repeat, other) + log_probs[t], new[1:])
        back[t, 1:] = np.where(chars, np.where(take_new, rows[:, None] * classes + other_from,
                                               (rows[:, None] + 1) * classes + np.arange(classes)[None, :]),
                               back[t, 1:])
        score = new
    allowed = [k for k in lengths if k <= most]
    end = max(((k, c) for k in allowed for c in range(classes)), key=lambda state: score[state])
    if not np.isfinite(score[end]):
        return None
    path = np.empty(frames, dtype=np.int64)
    k, c = end
    for t in range(frames - 1, -1, -1):
        path[t] = c
        k, c = divmod(int(back[t, k, c]), classes)
    return path


def sequence_probability(log_probs: np.ndarray, labels: list[int], blank: int) -> float:
    """P(labels | image) summed over every CTC alignment: the forward algorithm, as a product of
    per-frame transition matrices reduced pairwise (a handful of batched matrix products instead of
    a Python loop over frames: this runs on every request), rescaled at each level so no product
    underflows."""
    extended = np.full(2 * len(labels) + 1, blank)
    extended[1::2] = labels
    states = len(extended)
    # state i may stay, step to i + 1, or skip the blank between two different labels to i + 2
    moves = np.eye(states) + np.eye(states, k=1)
    skip = (extended[2:] != blank) & (extended[2:] != extended[:-2])
    moves[np.arange(states - 2)[skip], np.arange(2, states)[skip]] = 1.0
    emissions = np.exp(log_probs[:, extended])  # (frames, states)
    start = np.zeros(states)
    start[: min(2, states)] = emissions[0, :2]
    matrices = moves[None, :, :] * emissions[1:, None, :]  # frame t: alpha_t = alpha_{t-1} @ matrices[t - 1]
    log_scale = 0.0
    while len(matrices) > 1:
        if len(matrices) % 2:
            matrices = np.concatenate([matrices, np.eye(states)[None]])
        matrices = matrices[0::2] @ matrices[1::2]
        scale = matrices.max(axis=(1, 2))
        scale[scale == 0] = 1.0
        matrices /= scale[:, None, None]
        log_scale += float(np.log(scale).sum())
    alpha = start @ matrices[0] if len(matrices) else start
    total = alpha[-1] + (alpha[-2] if states > 1 else 0.0)
    return float(np.exp(np.log(total) + log_scale)) if total > 0 else 0.0


def decode_logits(logits: np.ndarray, charset: str, lengths: tuple[int, ...] = ()) -> Recognition:
    """Greedy CTC decode of one image's (frames, classes) logits. Given the label lengths seen in
    training, a greedy reading of another length (wrong, where the site's captchas keep to those
    lengths) is replaced by the most probable path of a seen length, whose confidence is that
    reading's own probability."""
    log_probs = log_softmax(logits.astype(np.float64))
    blank = len(charset)
    path = greedy_path(log_probs, blank)
    if lengths and len(path) not in lengths:
        frames = best_path_of_length(log_probs, blank, tuple(lengths))
        path = collapse_frames(frames, log_probs, blank) if frames is not None else path
    chars = tuple(CharResult(charset[label], round(prob, 4)) for label, prob in path)
    confidence = sequence_probability(log_probs, [label for label, _ in path], blank)
    return Recognition(text="".join(c.char for c in chars), confidence=round(confidence, 4), chars=chars)


def greedy_texts(logits: np.ndarray, charset: str) -> list[str]:
    """Fast batch decode for evaluation loops: (batch, frames, classes) -> texts."""
    blank = len(charset)
    texts = []
    for best in logits.argmax(axis=-1):
        keep = (best != blank) & np.concatenate(([True], best[1:] != best[:-1]))
        texts.append("".join(charset[i] for i in best[keep]))
    return texts


class Recognizer:
    """One interpreter per instance, created once and guarded: TFLite interpreters are not thread-safe."""

    def __init__(self, config: ModelConfig, model_dir: Path, *, check_sha256: bool = True) -> None:
        model_path = config.model_path(model_dir)
        if not model_path.is_file():
            raise ConfigError(f"model file {model_path} not found")
        if check_sha256:
            actual = file_sha256(model_path)
            if actual != config.sha256:
                raise ConfigError(f"{model_path.name} sha256 is {actual}, config.json says {config.sha256!r}")
        interpreter_class, self.runtime = import_interpreter()
        self.config = config
        self._interpreter = interpreter_class(model_path=str(model_path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_shapes()
        self._lock = threading.Lock()

    def _check_shapes(self) -> None:
        expected_in = [1, self.config.height, self.config.width, 1]
        actual_in = [int(n) for n in self._input["shape"]]
        if actual_in != expected_in:
            raise ConfigError(f"model input shape {actual_in} != config.json {expected_in}")
        actual_out = [int(n) for n in self._output["shape"]]
        if len(actual_out) != 3 or actual_out[0] != 1 or actual_out[2] != self.config.num_classes:
            raise ConfigError(
                f"model output shape {actual_out} != [1, frames, {self.config.num_classes}] "
                f"(charset of {len(self.config.charset)} + CTC blank)"
            )

    def _quantize_input(self, tensor: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return tensor.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(tensor / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        if raw.dtype == np.float32:
            return raw
        scale, zero_point = self._output["quantization"]
        return (raw.astype(np.float32) - zero_point) * scale

    def logits(self, tensor: np.ndarray) -> np.ndarray:
        """(height, width, 1) float tensor in [0, 1] -> (frames, classes) logits."""
        batch = self._quantize_input(tensor[np.newaxis])
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])
        return self._dequantize_output(raw)[0]

    def recognize(self, tensor: np.ndarray) -> Recognition:
        return decode_logits(self.logits(tensor), self.config.charset, self.config.lengths)
