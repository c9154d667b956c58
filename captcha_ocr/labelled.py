"""Folders of labelled captchas: which files are images, and what each one's label is.

Shared by training (`train --data`) and evaluation (`eval --data`), so both read a folder the
same way. A label comes from a labels.txt/.tsv/.csv file in the folder if there is one, else from
the file name: `k7dm.png` and `k7dm_0042.png` are both labelled k7dm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from captcha_ocr.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}
LABEL_FILES = ("labels.txt", "labels.csv", "labels.tsv")


class DatasetError(UserError):
    """A folder of captchas cannot be trained or evaluated on (missing, empty, too small)."""


@dataclass
class FolderReport:
    """What a folder held besides usable samples: nothing is skipped silently."""

    images: int = 0
    non_images: int = 0
    unreadable: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    bad_characters: list[str] = field(default_factory=list)

    def summary(self, directory: Path) -> str:
        lines = [f"{directory}: {self.images} labelled images, {self.non_images} non-image files skipped"]
        for title, paths in (("unreadable", self.unreadable), ("unlabelled", self.unlabelled),
                             ("labels outside the charset", self.bad_characters)):
            if paths:
                shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
                lines.append(f"  skipped {len(paths)} {title}: {shown}")
        return "\n".join(lines)


def read_label_file(directory: Path) -> dict[str, str] | None:
    """labels.txt/.tsv/.csv: `file<TAB or comma or space>label` per line; '#' starts a comment."""
    for name in LABEL_FILES:
        path = Path(directory) / name
        if path.is_file():
            mapping = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                for separator in ("\t", ",", " "):
                    if separator in line:
                        file, label = line.split(separator, 1)
                        mapping[file.strip()] = label.strip()
                        break
            return mapping
    return None


def label_from_name(path: Path) -> str:
    """`k7dm.png` and `k7dm_0042.png` are both labelled k7dm."""
    return path.stem.split("_", 1)[0]


def list_labelled_files(directory: Path, case_fold: bool = False) -> tuple[list[tuple[Path, str]], FolderReport]:
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"no such folder: {directory}")
    mapping = read_label_file(directory)
    report = FolderReport()
    items = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.name in LABEL_FILES:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.non_images += 1
            continue
        relative = path.relative_to(directory).as_posix()
        label = (mapping.get(relative, mapping.get(path.name)) if mapping is not None else label_from_name(path))
        if not label:
            report.unlabelled.append(relative)
            continue
        items.append((path, label.lower() if case_fold else label))
    return items, report
