"""Datasets as arrays of model-ready tensors, every one made by `imaging.preprocess`."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from captcha_ocr.config import GRAY_MODES, blank_index
from captcha_ocr.imaging import preprocess
from captcha_ocr.labelled import IMAGE_SUFFIXES, DatasetError, FolderReport, list_labelled_files
from captcha_ocr.synthetic import derive_seed, synthetic_captcha

CHUNK = 1000


@dataclass
class Dataset:
    images: np.ndarray  # (n, height, width, 1) float32 in [0, 1]
    texts: list[str]
    source_sizes: list[tuple[int, int]] | None = None  # (width, height) of each file, for folder data

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: np.ndarray) -> Dataset:
        sizes = [self.source_sizes[i] for i in indices] if self.source_sizes is not None else None
        return Dataset(self.images[indices], [self.texts[i] for i in indices], sizes)

    def encode_labels(self, charset: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> (labels padded with the blank index, lengths), the layout the CTC loss takes."""
        blank = blank_index(charset)
        index = {c: i for i, c in enumerate(charset)}
        labels = np.full((len(self.texts), max_length), blank, dtype=np.int32)
        for row, text in enumerate(self.texts):
            labels[row, : len(text)] = [index[c] for c in text]
        lengths = np.array([len(t) for t in self.texts], dtype=np.int32)
        return labels, lengths


def _generator(name: str) -> Callable[[int, str, tuple[int, ...]], tuple[str, bytes]]:
    """settings.GENERATORS: `captcha` (synthetic.py, one style) or `randomised` (training/randomised.py)."""
    if name == "randomised":
        from captcha_ocr.training.randomised import randomised_captcha

        return randomised_captcha
    return synthetic_captcha


def _synthetic_chunk(
    chunk: int, *, purpose: str, seed: int, charset: str, lengths: tuple[int, ...], height: int, width: int, count: int,
    gray: str, generator: str,
) -> tuple[np.ndarray, list[str]]:
    start = chunk * CHUNK
    images = np.empty((min(CHUNK, count - start), height, width, 1), dtype=np.float32)
    texts = []
    draw = _generator(generator)
    for offset in range(len(images)):
        text, png = draw(derive_seed(purpose, seed, start + offset), charset, lengths)
        images[offset] = preprocess(png, height, width, gray=gray).tensor
        texts.append(text)
    return images, texts


def synthetic_dataset(
    count: int,
    *,
    purpose: str,
    seed: int,
    charset: str,
    lengths: tuple[int, ...],
    height: int,
    width: int,
    workers: int | None = None,
    cache_dir: Path | None = None,
    gray: str = GRAY_MODES[0],
    generator: str = "captcha",
) -> Dataset:
    """`count` captchas from `generator` (settings.GENERATORS); sample i depends only on (purpose,
    seed, i), so any worker count gives the same set."""
    cache = None
    if cache_dir is not None:
        parts = (purpose, seed, count, charset, lengths, height, width, "v1", gray)
        if generator == "randomised":
            from captcha_ocr.training.randomised import GENERATOR_VERSION

            parts += (generator, GENERATOR_VERSION)
        key = derive_seed(*parts)
        cache = Path(cache_dir) / f"{purpose}-{count}-{key:016x}.npz"
        if cache.is_file():
            stored = np.load(cache)
            return Dataset(stored["images"], [str(t) for t in stored["texts"]])
    job = partial(
        _synthetic_chunk, purpose=purpose, seed=seed, charset=charset, lengths=lengths,
        height=height, width=width, count=count, gray=gray, generator=generator,
    )
    chunks = range((count + CHUNK - 1) // CHUNK)
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(tqdm(pool.map(job, chunks), total=len(chunks), desc=f"generating {purpose}", unit="k img",
                          disable=not sys.stderr.isatty()))  # a log file gets no progress bar
    dataset = Dataset(np.concatenate([p[0] for p in parts]), [t for p in parts for t in p[1]])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=dataset.images, texts=np.array(dataset.texts))
    return dataset


def load_folder(
    directory: Path, height: int, width: int, charset: str | None = None, case_fold: bool = False,
    gray: str = GRAY_MODES[0],
) -> tuple[Dataset, FolderReport]:
    """Every labelled image through `preprocess`; unreadable files are reported, never fatal."""
    items, report = list_labelled_files(directory, case_fold)
    images, texts, sizes = [], [], []
    for path, label in items:
        try:
            prepared = preprocess(path.read_bytes(), height, width, gray=gray)
        except Exception:  # whatever a file holds, a run must not crash on it
            report.unreadable.append(path.name)
            continue
        if charset is not None and not set(label) <= set(charset):
            report.bad_characters.append(path.name)
            continue
        images.append(prepared.tensor)
        texts.append(label)
        sizes.append(prepared.source_size)
    report.images = len(texts)
    empty = np.empty((0, height, width, 1), dtype=np.float32)
    return Dataset(np.stack(images) if images else empty, texts, sizes), report


def load_unlabelled(directory: Path, height: int, width: int, skip: set[bytes] = frozenset(),
                    gray: str = GRAY_MODES[0]) -> Dataset:
    """Every image file under `directory` (labels, if any, are ignored) whose content digest is not
    in `skip`, so a folder partly labelled can be its own unlabelled set; unreadable files are left out."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"no such folder: {directory}")
    images, sizes = [], []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        data = path.read_bytes()
        if content_digest(data) in skip:
            continue
        try:
            prepared = preprocess(data, height, width, gray=gray)
        except Exception:  # whatever a file holds, a run must not crash on it
            continue
        images.append(prepared.tensor)
        sizes.append(prepared.source_size)
    empty = np.empty((0, height, width, 1), dtype=np.float32)
    return Dataset(np.stack(images) if images else empty, [""] * len(images), sizes)


def content_digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def labelled_digests(*directories: Path | None) -> set[bytes]:
    """The content digests of the labelled images in these folders."""
    return {content_digest(path.read_bytes()) for directory in directories if directory
            for path, _ in list_labelled_files(Path(directory))[0]}


def infer_input_width(source_sizes: list[tuple[int, int]], height: int, max_length: int) -> int:
    """Keep the images' median aspect ratio, a multiple of 4, with frames enough for CTC."""
    ratio = float(np.median([w / h for w, h in source_sizes])) if source_sizes else 3.0
    width = int(round(height * ratio / 4)) * 4
    min_width = 4 * (2 * max_length + 1)  # CTC needs a blank between repeated characters
    return int(min(max(width, min_width, 64), 320))


def split(dataset: Dataset, validation_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A fixed-seed shuffle, so the same folder always splits the same way."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    cut = len(dataset) - max(1, int(round(len(dataset) * validation_fraction)))
    return dataset.subset(order[:cut]), dataset.subset(order[cut:])
