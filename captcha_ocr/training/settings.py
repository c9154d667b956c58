"""What a training run is asked to do: one definition for the settings, their defaults, their
command-line flags and help, what a folder run changes, and what a resume may change.

No TensorFlow here, so `captcha-ocr --help` and the parser load without it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from captcha_ocr.config import GRAY_MODES, VIEWS_RULE, valid_views
from captcha_ocr.errors import UserError

DEFAULT_CHARSET = "0123456789abcdefghjkmnpqrstuvwxyz"
GENERATORS = ("captcha", "randomised")
# the general model (docs/general-model.md): what users label (digits, both cases, arithmetic
# operators), 3-8 characters, at the folder runs' input height so its backbone serves them
GENERAL_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-*=?"
GENERAL_DEFAULTS = {"charset": GENERAL_CHARSET, "lengths": (3, 4, 5, 6, 7, 8), "height": 48, "width": 160,
                    "model_size": "medium", "batch_size": 32, "train_size": 150_000, "epochs": 100}
# a user's labelled folder: a small-batch run from the synthetic backbone that returns its best
# model within 5 minutes (docs/training.md: "Training on your own captchas"; --time-limit raises it). From the
# ablations in BENCHMARKS.md: a 48-pixel input height (real captchas' letters are small: at 32 on
# tjsp_captchas they were 9 pixels high), and batches of 8, which leave CTC's plateau sooner than 32.
# The time limit ends a folder run; the epoch cap is only a backstop, set above what a 5- or
# 10-minute run of a small folder trains (50 labels: 375 epochs in 5 minutes). At 200, such runs
# stopped at the cap after 3 of their 5 minutes, still learning (BENCHMARKS.md, "Which start").
# A folder run reads each image twice, whole and squeezed to 90% of the width (--views), and scores
# its checkpoints so too: on 5-minute runs of both shared real sets the second view read as many
# unseen images or more on every checkpoint, and runs trained with it more on average (BENCHMARKS.md,
# "Folder runs read two views by default"), for a second pass of the network per request.
FOLDER_VIEWS = (1.0, 0.9)
FOLDER_DEFAULTS = {"epochs": 2000, "batch_size": 8, "height": 48, "patience": 50, "init": "auto",
                   "time_limit": 5.0, "views": FOLDER_VIEWS}
# the network each --init's backbone fits (model.MODEL_SIZES); random weights fit any
INIT_MODEL_SIZES = {"synthetic": "small", "general": "medium", "random": None}
# --init's backbones, beside this file when this package has them (training/pretrained.py loads them)
BACKBONES = {"synthetic": Path(__file__).with_name("synthetic_backbone.npz"),
             "general": Path(__file__).with_name("general_backbone.npz")}
# Patience counts epochs, but a small folder's epoch is a few steps: with 50 labels (45 to train on,
# 6 steps an epoch) 50 epochs were 300 steps, 47 s of a 5-minute run, while the accuracy on its 5
# held-out images still swung between 0.4 and 1.0 from epoch to epoch. So patience also covers at
# least this many steps (a large folder's 50 epochs are many more).
PATIENCE_MIN_STEPS = 2000
# The peak learning rate of a small folder's run (fewer than FEW_LABELS_BELOW labelled images) from
# the general backbone. That backbone already reads much of a user's captchas, and at 0.002 a few
# dozen images unlearned it: with 50 labels (45 to train on), seed 3's held-out accuracy fell from
# 0.8 after one epoch to 0.4 as the training loss reached zero, and it read 86.5% of the unseen
# test; at 0.0005, 97.1%. A large folder needs the higher rate to train in 5 minutes: on all of
# tjsp_captchas' labels, 0.0005 read 95.81% where 0.002 read 98.52% (BENCHMARKS.md, "Few labels
# from the general backbone" and "All labels from the general backbone").
FEW_LABELS_BELOW = 200
FEW_LABELS_LEARNING_RATE = 5e-4
# what --resume may change
RESUMABLE = ("epochs", "target_accuracy", "workers", "patience", "time_limit", "unlabelled_dir")


def flag(name: str, help: str, **argparse_options: Any) -> dict[str, Any]:
    """Field metadata: the setting's command-line flag (its dest is the field's name)."""
    return {"flag": name, "help": help, "argparse": argparse_options}


@dataclass
class TrainSettings:
    out_dir: str
    data_dir: str | None = field(default=None, metadata=flag(
        "--data", "folder of your labelled captchas (label.png, label_x.png, or a labels.txt/.csv); without it, "
        "synthetic captchas from the `captcha` library"))
    val_dir: str | None = field(default=None, metadata=flag(
        "--val-data", "a separate validation folder (default: a seeded split of --data)"))
    unlabelled_dir: str | None = field(default=None, metadata=flag(
        "--unlabelled", "folder of unlabelled captchas of the same kind (it may be --data itself: labelled images "
        "are skipped); after the labelled phase, the model's confident readings of them train it further, "
        "kept only where the held-out accuracy does not drop"))
    # 10%: on tjsp_captchas the images moved from validation to training read 1-1.5 points more of
    # the unseen test than a 20% split did (BENCHMARKS.md, ablations)
    val_split: float = field(default=0.1, metadata=flag(
        "--val-split", "validation fraction of --data (default 0.1)", type=float))
    case_fold: bool = field(default=False, metadata=flag(
        "--case-fold", "lower-case every label", action="store_const", const=True))
    augment: bool | None = field(default=None, metadata=flag(  # default: on for folders, off for synthetic data
        "--no-augment", "no augmentation (on by default for --data and the randomised generator)",
        action="store_const", const=False))
    init: str = field(default="random", metadata=flag(
        "--init", "start from the synthetic model's backbone, the general model's (docs/general-model.md), or "
        "random weights; auto: the general model's where this package has it, else the synthetic one's "
        "(default: auto for --data, random otherwise)", choices=("auto", *INIT_MODEL_SIZES)))
    patience: int = field(default=0, metadata=flag(  # 0: never stop early
        "--patience", f"stop after this many epochs with no better checkpoint, and no fewer than "
        f"{PATIENCE_MIN_STEPS} steps (default: 50 for --data, never for synthetic)", type=int))
    generator: str = field(default="captcha", metadata=flag(
        "--generator", "where synthetic captchas come from without --data: the `captcha` library (one style, the "
        "shipped default's) or the domain-randomised generator (many fonts, colours and noises: the general model; "
        "docs/general-model.md)", choices=GENERATORS))
    model_size: str = field(default="small", metadata=flag(
        "--model-size", "the network's width: small (the shipped default's) or medium (the general model's); "
        "a folder run takes its backbone's", choices=("small", "medium")))
    charset: str = field(default=DEFAULT_CHARSET, metadata=flag(
        "--charset", "characters to learn (default: from the labels with --data, else digits + lowercase minus "
        "o, i, l)"))
    lengths: tuple[int, ...] = field(default=(4,), metadata=flag(
        "--length", "captcha length(s) (default: 4)", type=int, nargs="+"))
    height: int = field(default=32, metadata=flag(
        "--height", "model input height (multiple of 16; default 48 with --data, else 32)", type=int))
    gray: str = field(default=GRAY_MODES[0], metadata=flag(
        "--gray", "how colour becomes the model's gray input: luminance (default), darkest (the darkest of R, G, B: "
        "pale coloured text stays visible) or max_contrast (each image's channel of widest spread)",
        choices=GRAY_MODES))
    views: tuple[float, ...] = field(default=(1.0,), metadata=flag(
        "--views", "shares of the width at which the model reads each image, keeping the most probable reading: "
        "scored so by training and written into config.json (default: 1 0.9 with --data, else 1: the whole "
        "width only); `--views 1` reads each image once, in less time per request", type=float, nargs="+"))
    width: int = field(default=96, metadata=flag(
        "--width", "model input width (multiple of 4; default 96, or from the images' aspect ratio with --data)",
        type=int))
    train_size: int = field(default=120_000, metadata=flag(
        "--train-size", "synthetic training images (default 120000)", type=int))
    val_size: int = field(default=2_000, metadata=flag(
        "--val-size", "held-out images scored every epoch (default 2000)", type=int))
    epochs: int = field(default=10, metadata=flag(
        "--epochs", "maximum epochs (default 10; 2000 with --data, where the time limit ends a run first)",
        type=int))
    batch_size: int = field(default=64, metadata=flag("--batch-size", "default 64 (8 with --data)", type=int))
    learning_rate: float = field(default=2e-3, metadata=flag(
        "--learning-rate", f"peak learning rate (default 0.002; {FEW_LABELS_LEARNING_RATE:g} from the general "
        f"model's backbone with fewer than {FEW_LABELS_BELOW} labelled images)", type=float))
    target_accuracy: float = field(default=1.0, metadata=flag(
        "--target-accuracy", "stop once held-out accuracy reaches this (0-1)", type=float))
    seed: int = field(default=1, metadata=flag("--seed", "seed for data, split and weights (default 1)", type=int))
    workers: int = field(default=0, metadata=flag(
        "--workers", "processes generating data (default: all cores)", type=int))
    time_limit: float = field(default=0.0, metadata=flag(  # 0: none
        "--time-limit", "minutes of training at most, counted across resumes; the best model by then is "
        "exported (default: 5 with --data, none for synthetic)", type=float))

    @property
    def augmenting(self) -> bool:
        if self.augment is not None:
            return self.augment
        return self.data_dir is not None or self.generator == "randomised"

    @property
    def time_limit_s(self) -> float:
        """--time-limit in seconds (0: none)."""
        return self.time_limit * 60

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir)

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "settings.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> TrainSettings:
        path = Path(run_dir) / "settings.json"
        try:
            data = json.loads(path.read_text())
            data["lengths"] = tuple(data["lengths"])
            data["views"] = tuple(data.get("views", (1.0,)))  # a run from before views read one
        except FileNotFoundError:
            raise RunFolderError(f"{str(run_dir)[:200]} is not a training run: it has no settings.json "
                                 "(train --out makes one)") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RunFolderError(f"{str(path)[:200]} cannot be read as a run's settings: {error}") from None
        known = {f.name for f in fields(cls)}
        # the folder it was loaded from, wherever it was first trained: a moved run writes into itself
        return cls(**{**{k: v for k, v in data.items() if k in known}, "out_dir": str(run_dir)})

    def finished_files(self) -> tuple[Path, Path]:
        """The best checkpoint and state.json that export reads; RunFolderError before the first epoch ends."""
        files = (self.run_dir / "checkpoints" / "best.keras", self.run_dir / "state.json")
        missing = [str(path.relative_to(self.run_dir)) for path in files if not path.is_file()]
        if missing:
            raise RunFolderError(f"{str(self.run_dir)[:200]} has no {' and no '.join(missing)} yet: a run writes "
                                 "them at the end of its first epoch")
        return files


class RunFolderError(UserError):
    """A folder given as a training run that is not one, or not far enough along."""


class SettingsError(UserError):
    """A training setting out of its range."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, from the fields above; every flag defaults to None (= not given)."""
    for setting in fields(TrainSettings):
        if "flag" in setting.metadata:
            options = dict(setting.metadata["argparse"])
            if options.get("action") != "store_const":
                options.setdefault("metavar", setting.metadata["flag"].lstrip("-").upper().replace("-", "_"))
            parser.add_argument(setting.metadata["flag"], dest=setting.name, default=None,
                                help=setting.metadata["help"], **options)


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gave (None means not given)."""
    chosen = {s.name: getattr(args, s.name, None) for s in fields(TrainSettings) if "flag" in s.metadata}
    for name in ("lengths", "views"):
        if chosen[name] is not None:
            chosen[name] = tuple(chosen[name])
    if chosen["views"] is not None and not valid_views(chosen["views"]):
        raise SettingsError(f"--views must be {VIEWS_RULE}")
    return {name: value for name, value in chosen.items() if value is not None}


def settings_for_run(out_dir: Path, overrides: dict[str, Any], resume: bool) -> tuple[TrainSettings, bool]:
    """A resumed run's saved settings with what a resume may change, or new settings (folder runs
    get FOLDER_DEFAULTS under what was given). The flag says whether this is a resume."""
    if resume and (Path(out_dir) / "settings.json").is_file():
        settings = TrainSettings.load(out_dir)
        for key in RESUMABLE:
            if key in overrides:
                setattr(settings, key, overrides[key])
        return settings, True
    defaults = FOLDER_DEFAULTS if overrides.get("data_dir") else \
        GENERAL_DEFAULTS if overrides.get("generator") == "randomised" else {}
    settings = TrainSettings(out_dir=str(out_dir), **{**defaults, **overrides})
    if settings.init == "auto":
        settings.init = auto_init(settings)
    if "model_size" not in overrides and INIT_MODEL_SIZES[settings.init]:
        settings.model_size = INIT_MODEL_SIZES[settings.init]  # the backbone's network, else nothing transfers
    if settings.init == "general" and "learning_rate" not in overrides:
        labelled = labelled_images(settings)
        if labelled is not None and labelled < FEW_LABELS_BELOW:
            settings.learning_rate = FEW_LABELS_LEARNING_RATE
    return settings, False


def labelled_images(settings: TrainSettings) -> int | None:
    """How many labelled images --data holds; None without a folder (a missing one is reported where
    the images are read)."""
    from captcha_ocr.labelled import list_labelled_files

    if not settings.data_dir or not Path(settings.data_dir).is_dir():
        return None
    return len(list_labelled_files(Path(settings.data_dir), settings.case_fold)[0])


def auto_init(settings: TrainSettings) -> str:
    """--init auto's choice (a folder run's default): the general model's backbone where this package
    has it, else the synthetic one's. Side by side in 5-minute runs (BENCHMARKS.md, "Few labels from
    the general backbone" and "All labels from the general backbone") the general start read more on
    average at every folder size tried, from 50 labels (where the synthetic start never left
    CTC's plateau) to all of a real set's; so there is no size threshold. Its network is the medium
    one, which costs more memory as served (docs/models.md)."""
    chosen = "general" if settings.data_dir and BACKBONES["general"].is_file() else "synthetic"
    print(f"--init auto: starting from the {chosen} model's backbone", flush=True)
    return chosen
