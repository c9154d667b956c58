"""The gap detector: a slider's background alone -> where its gap is (POST /slide with no piece).

A small fully convolutional TFLite model (trained by captcha_ocr/training/gap.py on generated
sliders) reads the background resized to INPUT and answers, on a grid of STRIDE-pixel cells, a heat
map of the gap's centre plus each cell's offset and box size; its peaks, mapped back to the
background's own pixels, are the ranked candidates. The model's files sit beside this module
(gap.tflite, gap.json), so the package, the wheel and the SCF bundle carry them as they carry the
text model.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from captcha_ocr.config import ConfigError, file_sha256
from captcha_ocr.slider import MAX_CANDIDATES, Box, Gap

INPUT = (96, 176)  # (height, width) the background is resized to: sliders are about twice as wide as high
STRIDE = 4  # input pixels per cell of the heat map
MODEL_FILE = "gap.tflite"
CONFIG_FILE = "gap.json"
SHIPPED_DIR = Path(__file__).resolve().parent
DETECTOR_ENV = "CAPTCHA_OCR_GAP_DETECTOR"  # a detector folder to serve instead of the shipped one


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-values))


def network_input(rgb: Image.Image) -> np.ndarray:
    """A background -> the network's input, (INPUT..., 3) float32 in [0, 1]: the one step training
    (training/gap.py) and serving both take."""
    return np.asarray(rgb.resize((INPUT[1], INPUT[0]), Image.Resampling.BILINEAR), dtype=np.float32) / 255


BOX_ENCODINGS = ("edges", "centre-size")  # what a detector's four box channels hold (gap.json "box_encoding")


def decode_heat_map(output: np.ndarray, size: tuple[int, int], count: int = MAX_CANDIDATES,
                    encoding: str = "edges") -> list[Box]:
    """The model's (rows, columns, 5) output -> up to `count` boxes in the background's pixels
    ((width, height) = size), best first: each a local maximum of the heat map.

    The four box channels of a peak's cell are, by `encoding`: "edges", the box's left, top, right
    and bottom edges in cells from the cell's corner (trained at the centre's cell and its eight
    neighbours, so a peak one cell off still reads the right box); or "centre-size" (the first
    detectors), the centre's offset in its cell and the log width and height in input pixels.
    """
    if encoding not in BOX_ENCODINGS:
        raise ConfigError(f"unknown box_encoding {encoding!r}: expected one of {', '.join(BOX_ENCODINGS)}")
    heat = _sigmoid(output[..., 0].astype(np.float64))
    padded = np.pad(heat, 1, constant_values=-1.0)
    neighbours = np.max([padded[1 + dy:1 + dy + heat.shape[0], 1 + dx:1 + dx + heat.shape[1]]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], axis=0)
    rows, columns = np.nonzero(heat >= neighbours)
    order = np.argsort(-heat[rows, columns])[:count]
    scale_x, scale_y = INPUT[1] / size[0], INPUT[0] / size[1]
    boxes = []
    for row, column in zip(rows[order], columns[order]):
        channels = output[row, column, 1:5].astype(np.float64)
        if encoding == "edges":
            left, top, right, bottom = channels + (column, row, column, row)
        else:
            dx, dy, log_width, log_height = channels
            half_width = np.exp(np.clip(log_width, 0, 6)) / STRIDE / 2
            half_height = np.exp(np.clip(log_height, 0, 6)) / STRIDE / 2
            left, right = column + dx - half_width, column + dx + half_width
            top, bottom = row + dy - half_height, row + dy + half_height
        x, y = left * STRIDE / scale_x, top * STRIDE / scale_y
        width, height = max(right - left, 0.0) * STRIDE / scale_x, max(bottom - top, 0.0) * STRIDE / scale_y
        boxes.append(Box(int(round(x)), int(round(y)), int(round(width)), int(round(height)),
                         float(heat[row, column])))
    return boxes


class GapDetector:
    """The TFLite gap detector, loaded once; thread-safe (its interpreter is locked)."""

    def __init__(self, directory: Path = SHIPPED_DIR) -> None:
        from captcha_ocr.runtime import import_interpreter

        config_path = directory / CONFIG_FILE
        try:
            self.config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{config_path}: {exc}") from exc
        model_path = directory / self.config.get("model_file", MODEL_FILE)
        if file_sha256(model_path) != self.config.get("sha256"):
            raise ConfigError(f"{model_path.name}: sha256 does not match {CONFIG_FILE}")
        interpreter_class, self.runtime = import_interpreter()
        self._interpreter = interpreter_class(model_path=str(model_path), num_threads=1)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.box_encoding = self.config.get("box_encoding", "centre-size")  # the first detectors' gap.json had none
        if self.box_encoding not in BOX_ENCODINGS:
            raise ConfigError(f"{config_path}: unknown box_encoding {self.box_encoding!r}")
        if [int(n) for n in self._input["shape"]] != [1, *INPUT, 3]:
            raise ConfigError(f"{model_path.name}: input shape {list(self._input['shape'])}, expected [1, {INPUT}, 3]")
        self._lock = threading.Lock()

    @classmethod
    def shipped(cls) -> GapDetector | None:
        """$CAPTCHA_OCR_GAP_DETECTOR's detector (a slide-train export), else the one beside this module,
        else None where this package was built without one."""
        named = os.environ.get(DETECTOR_ENV)
        if named:
            return cls(Path(named))
        return cls() if (SHIPPED_DIR / CONFIG_FILE).is_file() else None

    def find(self, background: np.ndarray) -> Gap:
        """(h, w, 4) RGBA uint8 background -> its gap, with up to MAX_CANDIDATES ranked candidates."""
        size = (background.shape[1], background.shape[0])
        tensor = network_input(Image.fromarray(np.ascontiguousarray(background[..., :3]), "RGB"))
        with self._lock:
            self._interpreter.set_tensor(self._input["index"], tensor[np.newaxis])
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output["index"])[0]
        boxes = decode_heat_map(output, size, encoding=self.box_encoding)
        return Gap.of(boxes, boxes[0].score, "detector")
