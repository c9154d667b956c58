"""Run the TFLite model and turn its per-frame logits into text with confidences.

The interpreter comes from `ai_edge_litert`, the package pinned in runtime-pins.txt and shipped in
the SCF bundle; then `tflite_runtime` (the SCF design's choice, a tested alternative), then full
TensorFlow as a last resort. CAPTCHA_OCR_RUNTIME names one package to use and no other.
CTC decoding lives in decoding.py, shared by training, evaluation and serving.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from captcha_ocr.config import ConfigError, ModelConfig, file_sha256
from captcha_ocr.decoding import Recognition, decode_logits
from captcha_ocr.imaging import narrowed

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
        self._input_codec = self._codec(self._input)  # fixed per model: worked out once, not per request
        self._lock = threading.Lock()

    @staticmethod
    def _codec(details: dict) -> tuple[float, float, int, int] | None:
        """(1 / scale, zero point, lowest, highest) of a quantized tensor; None for float32."""
        if details["dtype"] == np.float32:
            return None
        scale, zero_point = details["quantization"]
        info = np.iinfo(details["dtype"])
        return 1.0 / scale, float(zero_point), int(info.min), int(info.max)

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
        if self._input_codec is None:
            return tensor.astype(np.float32)
        inverse_scale, zero_point, lowest, highest = self._input_codec
        scaled = tensor * np.float32(inverse_scale)
        scaled += np.float32(zero_point)
        np.rint(scaled, out=scaled)
        np.clip(scaled, lowest, highest, out=scaled)
        return scaled.astype(self._input["dtype"])

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
        """The reading of one model input, at every view its config declares (read_views)."""
        config = self.config
        return read_views(self._logits_each, [tensor], config.charset, config.lengths, config.views)[0]

    def _logits_each(self, tensors: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.logits(tensor) for tensor in tensors]


def read_views(logits_of: Callable[[list[np.ndarray]], Iterable[np.ndarray]], tensors: Sequence[np.ndarray],
               charset: str, lengths: tuple[int, ...], views: Sequence[float] = (1.0,)) -> list[Recognition]:
    """Each model input read at every view (config views: shares of the width, imaging.narrowed),
    decoded as serving decodes (seen lengths), keeping the most probable view's reading (the first
    of equals). `logits_of` turns a list of inputs into their logits: the serving interpreter's, or
    Keras's during training, so that a run's checkpoint choice, printed accuracy and pseudo-labels
    score what its export will read."""
    per_view = [[decode_logits(frame_logits, charset, lengths)
                 for frame_logits in logits_of([narrowed(tensor, share) for tensor in tensors])]
                for share in views]
    return [max(readings, key=lambda reading: reading.confidence)  # max keeps the first of equals
            for readings in zip(*per_view)]
