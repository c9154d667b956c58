"""The models one function serves: found and checked at cold start, picked per request.

The default model is the folder in $CAPTCHA_OCR_MODEL_DIR, else the shipped model, package data
in captcha_ocr/models/default (found the same way in a checkout, a wheel and the SCF bundle); it
answers every request that names no model. More models live in a models folder,
$CAPTCHA_OCR_MODELS_DIR, else `models/` beside index.py (a checkout, the bundle) or, for an
installed package, in the working folder, when there is one: a subfolder per model
with its config.json and model file, named by its config. A request picks one with `model`, or,
naming none, gets the one model that declares its image's size (`source_sizes`), else the default.
The package's other models (captcha_ocr/models/NAME: the general model, docs/general-model.md) are
served by name beside whichever default.

Every interpreter is created at cold start: the default, the general model and nine more of the
shipped size fit the 128 MB function (the cost per model, measured on the bundle, is in
docs/models.md), and a bad model then stops the start, naming itself, instead of failing the
first request that asks for it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captcha_ocr.config import CONFIG_FILE, ConfigError, ModelConfig, file_sha256, load_config
from captcha_ocr.errors import UnknownModel, UserError

if TYPE_CHECKING:  # imported where a model is loaded: the bundle builder copies models without numpy
    from captcha_ocr.runtime import Recognizer

MODEL_DIR_ENV = "CAPTCHA_OCR_MODEL_DIR"
MODELS_DIR_ENV = "CAPTCHA_OCR_MODELS_DIR"
MODELS_FOLDER = "models"
ROOT = Path(__file__).resolve().parent.parent  # a checkout's or the bundle's root: index.py and models/
SHIPPED_MODEL_SUBDIR = ("models", "default")  # inside the package
SHIPPED_MODEL_DIR = Path(os.fspath(resources.files("captcha_ocr").joinpath(*SHIPPED_MODEL_SUBDIR)))
# the package's other models (captcha_ocr/models/NAME: the general model), served by name beside any default
SHIPPED_MODELS_DIR = SHIPPED_MODEL_DIR.parent
GENERAL_MODEL = "general"
# a name a query string carries as it is, and a folder name on any file system
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Model:
    directory: Path
    config: ModelConfig
    recognizer: Recognizer

    @property
    def name(self) -> str:
        return self.config.name

    def summary(self) -> dict[str, str]:
        """What a reply says of the model that answered it."""
        return {"name": self.config.name, "sha256": self.config.sha256}

    def describe(self) -> dict[str, Any]:
        """What /health says of it."""
        config = self.config
        return {**self.summary(), "file": config.model_file, "charset": config.charset, "lengths": list(config.lengths),
                "input": {"height": config.height, "width": config.width, "gray": config.gray,
                          "views": list(config.views)},
                "sourceSizes": [list(size) for size in config.source_sizes]}


class Registry:
    """The loaded models, the default first; names are unique."""

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ConfigError("no model to serve")
        seen: dict[str, Model] = {}
        for model in models:
            if model.name in seen:
                raise ConfigError(f"two models are named {model.name!r}: {seen[model.name].directory} and "
                                  f"{model.directory}; rename one in its config.json")
            seen[model.name] = model
        self.default = models[0]
        self._by_name = seen
        declared = Counter(size for model in models for size in model.config.source_sizes)
        self._by_size = {size: model for model in models for size in model.config.source_sizes
                         if declared[size] == 1}

    def __iter__(self) -> Iterator[Model]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def chooses_by_size(self) -> bool:
        """Whether any size is declared by exactly one model (else sizes need not be read)."""
        return bool(self._by_size)

    def named(self, name: str) -> Model:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownModel(f"no model named {name[:64]!r}; this function serves "
                               f"{', '.join(self.names)}") from None

    def for_size(self, size: tuple[int, int]) -> Model:
        """The one model declaring this (width, height), else the default."""
        return self._by_size.get(tuple(size), self.default)


def default_model_dir() -> Path:
    """$CAPTCHA_OCR_MODEL_DIR, else the shipped model (package data)."""
    return Path(os.environ.get(MODEL_DIR_ENV) or SHIPPED_MODEL_DIR)


def models_home() -> Path:
    """Where models/ goes by default: beside index.py in a checkout or the bundle; for an installed
    package (no index.py beside it), the working folder."""
    return ROOT if (ROOT / "index.py").is_file() else Path.cwd()


def default_models_dir() -> Path | None:
    """$CAPTCHA_OCR_MODELS_DIR, else models/ in models_home() when there is one."""
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured)
    folder = models_home() / MODELS_FOLDER
    return folder if folder.is_dir() else None


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"model name {name[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    return name


def model_folders(models_dir: Path) -> list[Path]:
    """Each model folder in a models folder, by name; hidden folders are skipped."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ConfigError(f"models folder {models_dir} does not exist")
    folders = sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        if not (folder / CONFIG_FILE).is_file():
            raise ConfigError(f"{folder} has no {CONFIG_FILE}: a models folder holds one exported model per folder")
    return folders


def load_model(directory: Path, *, named: bool = False) -> Model:
    """config.json and the model file of one folder, the file's sha256 and tensor shapes checked.
    A model a request can name (`named`) must have a name fit for a query string."""
    from captcha_ocr.runtime import Recognizer

    directory = Path(directory)
    try:
        config = load_config(directory)
        if named:
            check_name(config.name)
        return Model(directory, config, Recognizer(config, directory))
    except Exception as error:
        raise ConfigError(f"model in {directory}: {error}") from error


def other_model_folders(model_dir: Path, models_dir: Path | None = None) -> list[Path]:
    """The models folder's model folders (models_dir, else default_models_dir()) but the default's,
    which may sit among them: what the function serves beside the default."""
    models_dir = models_dir or default_models_dir()
    if models_dir is None:
        return []
    return [folder for folder in model_folders(models_dir) if folder.resolve() != Path(model_dir).resolve()]


def shipped_named_folders(model_dir: Path | None = None) -> list[Path]:
    """The package's models besides its default (captcha_ocr/models/NAME with a config.json), but
    `model_dir` when it is one of them: what every function serves by name, whatever its default."""
    if not SHIPPED_MODELS_DIR.is_dir():
        return []
    folders = sorted(p for p in SHIPPED_MODELS_DIR.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file()
                     and p.name != SHIPPED_MODEL_SUBDIR[-1])
    return [p for p in folders if model_dir is None or p.resolve() != Path(model_dir).resolve()]


def general_model_dir() -> Path | None:
    """The shipped general model's folder (docs/general-model.md), if this package has one."""
    folder = SHIPPED_MODELS_DIR / GENERAL_MODEL
    return folder if (folder / CONFIG_FILE).is_file() else None


def first_reading_model_dir() -> Path:
    """What reads a user's captchas before they have trained a model (the labelling page's
    pre-fill): $CAPTCHA_OCR_MODEL_DIR when set, else the general model, which has seen many styles,
    else the shipped default."""
    return Path(os.environ.get(MODEL_DIR_ENV) or general_model_dir() or SHIPPED_MODEL_DIR)


def load_registry(model_dir: Path | None = None, models_dir: Path | None = None) -> Registry:
    """The default model, then the package's named models (the general model), then every other
    model of the models folder."""
    model_dir = Path(model_dir or default_model_dir())
    folders = shipped_named_folders(model_dir) + other_model_folders(model_dir, models_dir)
    return Registry([load_model(model_dir)] + [load_model(folder, named=True) for folder in folders])


def _inside(folder: Path, path: Path) -> Path:
    """`path`, a plain file of `folder` itself: not a link, not elsewhere (config.py already keeps
    model_file to a bare file name)."""
    if path.is_symlink() or not path.is_file() or path.resolve().parent != folder.resolve():
        raise ConfigError(f"{path.name} in {folder} must be a plain file of that folder, not a link or missing")
    return path


def copy_model(source: Path, target: Path, name: str | None = None) -> ModelConfig:
    """config.json and its served model file (no other file of an export) into `target`, renamed;
    files outside the export folder (links out of it) and a file that does not match its config's
    sha256 are refused before anything is written."""
    source = Path(source)
    _inside(source, source / CONFIG_FILE)
    config = load_config(source)
    _inside(source, config.model_path(source))
    actual = file_sha256(config.model_path(source))
    if actual != config.sha256:
        raise ConfigError(f"{config.model_path(source)}: sha256 is {actual}, its config.json says {config.sha256!r}")
    if name is not None:
        config = dataclasses.replace(config, name=name)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(config.model_path(source), config.model_path(target))
    config.save(target)
    return config


class ModelExists(UserError):
    """`models add` would overwrite a model of the same name."""


def add_model(export: Path, models_dir: Path, name: str | None = None, replace: bool = False) -> Model:
    """Copy an export into the models folder as `name` (default: its config's), once it has loaded
    in the serving runtime; an existing model of that name is replaced only when asked."""
    name = check_name(name or load_config(export).name)
    models_dir = Path(models_dir)
    target = models_dir / name
    if (default_model_dir() / CONFIG_FILE).is_file() and load_config(default_model_dir()).name == name:
        raise ModelExists(f"{name!r} is the default model's name; give another --name")
    clashes = [folder for folder in (model_folders(models_dir) if models_dir.is_dir() else [])
               if folder.name == name or load_config(folder).name == name]
    if clashes and not replace:
        raise ModelExists(f"{models_dir} already has a model named {name!r} ({clashes[0]}); "
                          "give another --name, or --replace")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))  # hidden: never served half-copied
    retired = []
    try:
        copy_model(export, staging, name)
        load_model(staging, named=True)
        for folder in clashes:  # moved aside (hidden), so the new model takes their place in one rename
            retired.append(Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=models_dir)) / "model")
            folder.rename(retired[-1])
        staging.rename(target)
    except BaseException:
        for folder, old in zip(clashes, retired):
            old.rename(folder)  # the models served before are served again
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for old in retired:
            shutil.rmtree(old.parent, ignore_errors=True)
    return load_model(target, named=True)
