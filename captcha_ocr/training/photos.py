"""Photo backgrounds for generated sliders (slider_samples.generate_slider's `photos`): crops of the
photos matplotlib ships as sample data. Training and benchmarks only; the function never imports this."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The photos matplotlib ships as sample data (a portrait, and a terrain model shaded and coloured
    as an aerial view): real photographs' edges and textures, for training and benchmarks only."""
    try:
        import matplotlib
        from matplotlib import colormaps
        from matplotlib.colors import LightSource
    except ImportError as exc:
        raise ImportError("photo backgrounds come from matplotlib's sample data: pip install matplotlib") from exc
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [np.asarray(Image.open(folder / "grace_hopper.jpg").convert("RGB"), np.float32)]
    elevation = np.load(folder / "jacksboro_fault_dem.npz")["elevation"].astype(np.float64)
    for name in ("gist_earth", "terrain", "copper"):
        shaded = LightSource(azdeg=315, altdeg=45).shade(elevation, cmap=colormaps[name], blend_mode="soft")
        photos.append((shaded[..., :3] * 255).astype(np.float32))
    return tuple(photos)


def photo_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random crop of one of the photos, zoomed, maybe mirrored, its colours and brightness moved."""
    photos = _photos()
    photo = photos[int(rng.integers(len(photos)))]
    rows, columns = photo.shape[:2]
    crop_width = int(min(columns, rows * width / height) * rng.uniform(0.35, 1.0))
    crop_height = max(8, int(crop_width * height / width))
    left, top = int(rng.integers(0, columns - crop_width + 1)), int(rng.integers(0, rows - crop_height + 1))
    crop = Image.fromarray(photo[top:top + crop_height, left:left + crop_width].astype(np.uint8), "RGB")
    image = np.asarray(crop.resize((width, height), Image.Resampling.BICUBIC), np.float32)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = image * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.7, 1.3) + rng.normal(0, rng.uniform(0, 6), image.shape)
    return image.clip(0, 255).astype(np.float32)
