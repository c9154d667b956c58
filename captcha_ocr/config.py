"""The model contract: what `config.json` promises about the model next to it.

Training writes it, serving reads it, and both sides go through this one typed object, so the
charset, input size and decoding can never disagree between the two. It holds facts about the
model only: what a request may cost is the function's (settings.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from captcha_ocr.errors import UserError

CONFIG_FILE = "config.json"
SCHEMA_VERSION = 1
# how a colour image becomes the model's one gray channel (imaging._gray): ITU-R 601 luminance; the
# darkest of R, G and B (any saturated ink turns dark, so pale yellow or green text stays visible);
# or the one channel with the widest spread in each image
GRAY_MODES = ("luminance", "darkest", "max_contrast")
# input.views: the widths, as shares of the input's, at which a model reads each image, keeping the
# most probable reading (runtime.read_views); one view, the whole width, unless it says more
MAX_VIEWS = 4
MIN_VIEW_SHARE = 0.5
VIEWS_RULE = f"1 to {MAX_VIEWS} different shares of the width, each from {MIN_VIEW_SHARE} to 1"


def valid_views(views: Sequence[object]) -> bool:
    """Whether `views` is what config.json's input.views (and train --views) may hold: VIEWS_RULE."""
    return (1 <= len(views) <= MAX_VIEWS
            and all(type(share) in (int, float) and MIN_VIEW_SHARE <= share <= 1 for share in views)
            and len(set(views)) == len(views))  # numbers checked first: a list inside cannot be hashed


def blank_index(charset: str) -> int:
    """The CTC blank, part of the model contract (config.json's decoding.blank_index): the class after
    the last character. Its one definition: training, decoding and serving read it from here."""
    return len(charset)


# a model file is named inside its own folder: no path, so a config.json can never point elsewhere
MODEL_FILE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ConfigError(UserError, ValueError):
    """config.json is missing, malformed, or disagrees with the model file."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    charset: str
    lengths: tuple[int, ...]
    height: int
    width: int
    gray: str = GRAY_MODES[0]
    task: str = "text"  # what a reading means (answers.TASKS): "arithmetic" replies carry the answer too
    model_file: str = "model_quantized.tflite"
    sha256: str = ""
    decoding: str = "ctc_greedy"
    # (width, height) of the images this model reads: a request that names no model goes to the one
    # model declaring its image's size (export declares the sizes common in the training folder)
    source_sizes: tuple[tuple[int, int], ...] = ()
    views: tuple[float, ...] = (1.0,)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def blank_index(self) -> int:
        return blank_index(self.charset)

    @property
    def num_classes(self) -> int:
        return blank_index(self.charset) + 1

    def to_json(self) -> str:
        data = asdict(self)
        data["lengths"] = list(self.lengths)
        sizes = [list(size) for size in data.pop("source_sizes")]
        views = list(data.pop("views"))
        data = {
            "schema": SCHEMA_VERSION,
            "name": data.pop("name"),
            "model_file": data.pop("model_file"),
            "sha256": data.pop("sha256"),
            "charset": data.pop("charset"),
            "lengths": data.pop("lengths"),
            "input": {"height": data.pop("height"), "width": data.pop("width"), "channels": 1,
                      "gray": data.pop("gray"), **({"views": views} if views != [1.0] else {})},
            **({"source_sizes": sizes} if sizes else {}),
            "decoding": {"type": data.pop("decoding"), "blank_index": self.blank_index},
            **data,
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CONFIG_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    def model_path(self, directory: Path) -> Path:
        return Path(directory) / self.model_file


def _require(data: dict[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise ConfigError(f"config.json: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"config.json: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _is_size(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(type(n) is int and n > 0 for n in value)


def parse_config(data: dict[str, Any]) -> ModelConfig:
    """Validate a decoded config.json; every error names the offending key."""
    if not isinstance(data, dict):
        raise ConfigError("config.json: top level must be an object")
    charset = _require(data, "charset", str)
    if not charset or len(set(charset)) != len(charset):
        raise ConfigError("config.json: 'charset' must be non-empty with no repeated characters")
    lengths = tuple(_require(data, "lengths", list))
    if not lengths or not all(isinstance(n, int) and n > 0 for n in lengths):
        raise ConfigError("config.json: 'lengths' must be a list of positive integers")
    size = _require(data, "input", dict)
    height, width = _require(size, "height", int), _require(size, "width", int)
    if size.get("channels", 1) != 1 or height <= 0 or width <= 0:
        raise ConfigError("config.json: 'input' must be a positive height/width with 1 channel")
    gray = size.get("gray", GRAY_MODES[0])
    if gray not in GRAY_MODES:
        raise ConfigError(f"config.json: input.gray must be one of {', '.join(GRAY_MODES)}")
    views = size.get("views", [1.0])
    if not isinstance(views, list) or not valid_views(views):
        raise ConfigError(f"config.json: input.views must be {VIEWS_RULE}")
    decoding = _require(data, "decoding", dict)
    if decoding.get("type") != "ctc_greedy":
        raise ConfigError("config.json: only decoding.type 'ctc_greedy' is supported")
    if decoding.get("blank_index", blank_index(charset)) != blank_index(charset):
        raise ConfigError("config.json: decoding.blank_index must equal len(charset)")
    sizes = data.get("source_sizes", [])
    if not isinstance(sizes, list) or not all(_is_size(size) for size in sizes):
        raise ConfigError("config.json: 'source_sizes' must be a list of [width, height] pairs of positive integers")
    # "limits" in a config.json of an earlier version is left alone: the request limits are the
    # function's own now (settings.py), not a model's
    task = data.get("task", "text")
    if task not in ("text", "arithmetic"):  # answers.TASKS, not imported: config loads without the rest
        raise ConfigError("config.json: 'task' must be 'text' or 'arithmetic'")
    model_file = _require(data, "model_file", str)
    if not MODEL_FILE_PATTERN.fullmatch(model_file):
        raise ConfigError(f"config.json: 'model_file' must be a file name in the model's own folder (letters, "
                          f"digits, '.', '_', '-'), got {model_file[:80]!r}")
    return ModelConfig(
        name=_require(data, "name", str),
        charset=charset,
        lengths=tuple(sorted(lengths)),
        height=height,
        width=width,
        gray=gray,
        task=task,
        model_file=model_file,
        sha256=data.get("sha256", ""),
        source_sizes=tuple(sorted({(w, h) for w, h in sizes})),
        views=tuple(float(share) for share in views),
        metrics=dict(data.get("metrics", {})),
    )


def load_config(directory: Path) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no {CONFIG_FILE} in {directory}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from exc
    return parse_config(data)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
