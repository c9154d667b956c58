"""Slider captchas: where the puzzle piece goes. numpy only, no OpenCV.

Two of the three ways a site serves a slider are solved here by measurement, not learning:

- **piece and background** (`match_piece`): normalised cross-correlation of the piece over the
  background, by FFT, on two maps at once: the gray pixels under the piece's shape (a gap is the
  background's own content shaded, which NCC does not see) and their edges (the gap's rim follows the
  piece's outline). A match whose pixels equal the piece's (the piece itself, drawn at its start
  position) is not a gap and is ranked last.
- **two backgrounds** (`compare_backgrounds`): the pixels that differ between the background with the
  gap and the one without, grouped into runs of columns, then rows; the run holding most of the
  difference is the gap.

The third, a background alone, is read by a learned detector (captcha_ocr/detector; docs/slider.md).
Positions are in the background's own pixels: `x` is the gap's left edge, what a drag script needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captcha_ocr.errors import InvalidRequest, NoGapFound

MAX_CANDIDATES = 3
_ALIGN = 4  # px: how far from the slider's row the gap may sit, and from the left border its start
_DISTINCT_FROM, _DISTINCT_WEIGHT = 3.0, 0.1  # a content match this many standard deviations above the median counts
_GROUND_TOLERANCE = 40.0  # levels (any channel): how far from the border's colour a pixel is still ground (JPEG rings)
_SAME_AS_PIECE = 4.0  # gray levels (RMS, both averaged over 3x3): a place this close to the piece is the piece itself
_DIFFERENCE_FLOOR = 4.0  # gray levels: JPEG noise, averaged over 3x3, stays below
_NOISE_TIMES = 6.0  # a changed pixel differs this many times more than the median pixel does
_SHADING_FLOOR = 0.1  # a changed pixel moved at least this share of the way to black or to white
_SHADING_BASE = 16.0  # gray levels: below this a pixel's share is taken of 16 (JPEG's noise on near-black)
_SEARCH_WIDTH = 440  # px: a wider background is searched at half its size (the generator's widths, 260-420, are not)
_HALVED_MIN_SIDE = 32  # px: a piece narrower or shorter than this is searched at full size
_REFINE_REACH = 3  # px: how far from twice a half-size place its full-size place is looked for


@dataclass(frozen=True)
class Box:
    x: int  # left edge, px
    y: int  # top, px
    width: int
    height: int
    score: float  # the method's own measure, 0-1: NCC for a piece, the share of the difference for two backgrounds

    def as_dict(self) -> dict[str, float | int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Gap:
    """Where the piece goes: the best box, how sure, and up to MAX_CANDIDATES ranked boxes (the best first)."""

    x: int
    y: int
    width: int
    height: int
    confidence: float
    candidates: tuple[Box, ...]
    method: str  # "piece", "difference" or "detector"

    def as_dict(self) -> dict[str, object]:
        """The reply of POST /slide and `captcha-ocr slide`."""
        return {"ok": True, "x": self.x, "y": self.y, "width": self.width, "height": self.height,
                "confidence": self.confidence, "method": self.method,
                "candidates": [box.as_dict() for box in self.candidates]}

    @classmethod
    def of(cls, candidates: list[Box], confidence: float, method: str) -> Gap:
        best = candidates[0]
        return cls(best.x, best.y, best.width, best.height, round(float(confidence), 4),
                   tuple(candidates[:MAX_CANDIDATES]), method)


# -- piece and background ---------------------------------------------------------------------------
def _edges(gray: np.ndarray) -> np.ndarray:
    """Gradient magnitude by central differences, the same size as the image."""
    padded = np.pad(gray, 1, mode="edge")
    dx = padded[1:-1, 2:] - padded[1:-1, :-2]
    dy = padded[2:, 1:-1] - padded[:-2, 1:-1]
    return np.hypot(dx, dy).astype(np.float32)


def _fast_length(n: int) -> int:
    """The smallest 2-3-5-smooth length >= n: an FFT of a prime length (a 263-px-wide slider) takes
    several times longer than of a nearby smooth one, and zero padding leaves every valid place's sum as it is."""
    while True:
        m = n
        for factor in (2, 3, 5):
            while m % factor == 0:
                m //= factor
        if m == 1:
            return n
        n += 1


def _spectrum(image: np.ndarray) -> np.ndarray:
    """The image's 2-D real FFT, zero-padded to fast lengths (what _correlate takes)."""
    return np.fft.rfft2(image, s=tuple(_fast_length(n) for n in image.shape))


def _kernel_spectrum(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The kernel's _spectrum at the padded size of an image of `shape`: rfft2 with its rows transformed
    before the zero rows are added (a piece has a fraction of the background's rows; the same values)."""
    padded = tuple(_fast_length(n) for n in shape)
    return np.fft.fft(np.fft.rfft(kernel, n=padded[1], axis=1), n=padded[0], axis=0)


def _correlate(image_spectrum: np.ndarray, shape: tuple[int, int], kernel: np.ndarray) -> np.ndarray:
    """Σ kernel[i, j] * image[y + i, x + j] for every (y, x) where the kernel fits, by FFT, from the
    image's _spectrum and its own shape."""
    return _correlate_spectra(image_spectrum, shape, kernel.shape, _kernel_spectrum(kernel, shape))


def _correlate_spectra(image_spectrum: np.ndarray, shape: tuple[int, int], kernel_shape: tuple[int, int],
                       kernel_spectrum: np.ndarray) -> np.ndarray:
    """_correlate from the kernel's _kernel_spectrum (made once where one kernel meets two images).
    Only the rows of the places are transformed back."""
    padded = tuple(_fast_length(n) for n in shape)
    places = shape[0] - kernel_shape[0] + 1, shape[1] - kernel_shape[1] + 1
    columns = np.fft.ifft(image_spectrum * np.conj(kernel_spectrum), axis=0)[:places[0]]
    return np.fft.irfft(columns, n=padded[1], axis=1)[:, :places[1]]


def _window_sums(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The sum of every height x width window of the image, from its integral image."""
    integral = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    integral[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    return (integral[height:, width:] - integral[:-height, width:]
            - integral[height:, :-width] + integral[:-height, :-width])


def _ncc_and_strength(image: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At every position where the template fits: the normalised cross-correlation of the template
    with the image there, and the plain correlation Σ template * image (one FFT correlation for both;
    the windows' sums from integral images)."""
    height, width = template.shape
    strength = _correlate(_spectrum(image), image.shape, template)
    count = float(template.size)
    mean = float(template.mean())
    template_norm = float(np.sqrt(((template - mean) ** 2).sum()))
    sums, squares = _window_sums(image, height, width), _window_sums(image * image, height, width)
    numerator = strength - mean * sums
    spread = np.sqrt(np.maximum(squares - sums * sums / count, 0.0)) * template_norm
    return np.where(spread > 1e-6, numerator / np.maximum(spread, 1e-6), 0.0), strength


def _masked_ncc(image: np.ndarray, template: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of `template`, where `mask` is 1, at every position in `image`."""
    count = float(mask.sum())
    weights = mask * (template - (template * mask).sum() / count)
    shape = image.shape
    spectrum = _spectrum(image)
    numerator = _correlate(spectrum, shape, weights)
    mask_spectrum = _kernel_spectrum(mask, shape)
    sums = _correlate_spectra(spectrum, shape, mask.shape, mask_spectrum)
    del spectrum  # the arrays here are the request's largest: each is freed once used
    variance = _correlate_spectra(_spectrum(image * image), shape, mask.shape, mask_spectrum)
    del mask_spectrum
    variance -= sums * sums / count
    del sums
    np.maximum(variance, 0.0, out=variance)
    spread = np.sqrt(variance * float((weights * weights).sum()), out=variance)
    return np.divide(numerator, spread, out=np.zeros_like(numerator), where=spread > 1e-6)


def _peaks(score: np.ndarray, width: int, height: int, count: int) -> list[tuple[int, int]]:
    """The `count` best positions, each at least half a piece from a better one."""
    score = score.copy()
    found = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(score)), score.shape)
        if not np.isfinite(score[y, x]) or score[y, x] <= -1:
            break
        found.append((int(x), int(y)))
        score[max(0, y - height // 2):y + height // 2 + 1, max(0, x - width // 2):x + width // 2 + 1] = -np.inf
    return found


def _morph(mask: np.ndarray, pixels: int, extreme: np.ufunc) -> np.ndarray:
    """The mask grown (np.maximum) or shrunk (np.minimum) by `pixels`, one 4-neighbour step at a time."""
    for _ in range(pixels):
        padded = np.pad(mask, 1)
        mask = extreme.reduce([padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2],
                               padded[1:-1, 2:]])
    return mask


def _shrunk(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask eroded: a piece's outline, drawn on the piece and not in the gap, left out."""
    return _morph(mask, pixels, np.minimum)


def _grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    return _morph(mask, pixels, np.maximum)


def gray_of(rgba: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R 601, as Pillow's "L"), float32."""
    return rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def colour_edges(rgba: np.ndarray) -> np.ndarray:
    """The strongest channel's gradient at each pixel: a gap's outline shows in colour as in brightness."""
    return np.max([_edges(rgba[..., channel].astype(np.float32)) for channel in range(3)], axis=0)


def match_piece(background: np.ndarray, piece: np.ndarray) -> Gap:
    """The piece's best position in the background, both (h, w, 4) RGBA uint8 arrays.

    Every place is scored by _place_scores. A slider moves along one row, which the gap shares:
    where the piece is drawn at its start (its own pixels, unshaded, at the left border) or sent as
    a strip as tall as the background (its shape at its row, the rest transparent), the best places
    on that row rank first, and the piece itself, or a place overlapping it, is a candidate of last
    resort. An opaque piece (a JPEG) on a plain white or black ground has its shape read from it.
    A background wider than _SEARCH_WIDTH (sliders run to 680 px) is searched at half its size,
    each candidate then placed at full size within a few pixels: a third of the work.
    """
    piece, mask, row = _piece_shape(background, piece)
    if background.shape[1] <= _SEARCH_WIDTH or min(mask.shape) < _HALVED_MIN_SIDE:
        return _match(background, piece, mask, row)
    half_mask = (_halved(mask) >= 0.5).astype(np.float32)
    coarse = _match(_halved(background), _halved(piece), half_mask, None if row is None else row // 2)
    inner, piece_gray = _inner(mask), gray_of(piece)
    height, width = mask.shape
    boxes = [Box(*_refined(background, piece, mask, piece_gray, inner, 2 * box.x, 2 * box.y), width, height,
                 box.score) for box in coarse.candidates]
    return Gap.of(boxes, coarse.confidence, coarse.method)


def _piece_shape(background: np.ndarray, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The piece cropped to its shape, the shape (float32, 1 inside), and the slider's row where the
    piece comes as a strip as tall as the background; refuses a piece with no shape or too large."""
    mask = (piece[..., 3] > 127).astype(np.float32)
    if mask.all():  # an opaque piece (a JPEG, or a PNG without alpha) may still show its shape on a plain ground
        mask = _shape_on_plain_ground(piece)
    rows, columns = np.nonzero(mask)
    if len(rows) < 16:
        raise NoGapFound("the piece is transparent: no shape to look for")
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    row = int(top) if piece.shape[0] == background.shape[0] and bottom - top < piece.shape[0] else None
    piece, mask = piece[top:bottom, left:right], mask[top:bottom, left:right]
    height, width = mask.shape
    if height > background.shape[0] or width > background.shape[1]:
        raise InvalidRequest(f"the piece ({width}x{height}) is larger than the background "
                             f"({background.shape[1]}x{background.shape[0]})")
    return piece, mask, row


def _inner(mask: np.ndarray) -> np.ndarray:
    """The shape less its outline (3 px), whose pixels are the gap's content; the whole shape if that leaves little."""
    inner = _shrunk(mask, 3)
    return inner if inner.sum() >= 16 else mask


def _halved(image: np.ndarray) -> np.ndarray:
    """The image at half its size, each pixel the mean of a 2x2 block (an odd last row or column dropped)."""
    even = image[:image.shape[0] // 2 * 2, :image.shape[1] // 2 * 2].astype(np.float32)
    return (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2]) * 0.25


def _match(background: np.ndarray, piece: np.ndarray, mask: np.ndarray, row: int | None) -> Gap:
    """match_piece on a piece already cut to its shape (`row`: the slider's, if the piece told it)."""
    height, width = mask.shape
    inner = _inner(mask)
    gray, piece_gray = gray_of(background), gray_of(piece)
    score = _place_scores(background, piece, mask, gray, piece_gray, inner)
    start = _drawn_piece(gray, piece_gray, inner)
    if row is None and start is not None:
        row = start[1]
    boxes = [Box(int(x), int(y), int(width), int(height), float(np.clip(score[y, x], 0, 1)))
             for x, y in _ranked_places(score, width, height, row, start)]
    if not boxes:
        raise NoGapFound("no place in the background fits the piece")
    runner_up = boxes[1].score if len(boxes) > 1 else 0.0
    return Gap.of(boxes, boxes[0].score * min(1.0, 0.5 + (boxes[0].score - runner_up) * 5), "piece")


def _fit_maps(background: np.ndarray, piece: np.ndarray, mask: np.ndarray, gray: np.ndarray,
              piece_gray: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At every place: the NCC of the piece's outline with the background's colour edges, the
    outline's plain correlation with them (its edge strength), and the NCC of the piece's content."""
    if mask.all():
        shape_match, strength = _ncc_and_strength(colour_edges(background), colour_edges(piece))
    else:
        shape_match, strength = _ncc_and_strength(colour_edges(background), _grown(mask, 1) - _shrunk(mask, 2))
    return shape_match, strength, _masked_ncc(gray, piece_gray, inner)


def _refined(background: np.ndarray, piece: np.ndarray, mask: np.ndarray, piece_gray: np.ndarray,
             inner: np.ndarray, x: int, y: int) -> tuple[int, int]:
    """The best place within _REFINE_REACH px of (x, y), by the maps of _place_scores at full size on
    a crop round it (their global normalisations are the same for every place of so small a window)."""
    height, width, reach = *mask.shape, _REFINE_REACH
    top, left = max(0, y - reach), max(0, x - reach)
    bottom = min(background.shape[0], y + reach + height)
    right = min(background.shape[1], x + reach + width)
    crop = background[top:bottom, left:right]
    shape_match, strength, content = _fit_maps(crop, piece, mask, gray_of(crop), piece_gray, inner)
    score = shape_match * np.sqrt(np.maximum(strength, 0)) * (1 + np.maximum(content, 0))
    dy, dx = np.unravel_index(int(np.argmax(score)), score.shape)
    return left + int(dx), top + int(dy)


def _place_scores(background: np.ndarray, piece: np.ndarray, mask: np.ndarray, gray: np.ndarray,
                  piece_gray: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """How well the piece fits at every place (the top-left corners where it fits).

    The piece's outline (a band along the edge of its shape) is matched against the background's
    colour edges: by NCC, for the shape, times the square root of the outline's mean edge strength
    there relative to the strongest place, so a faint decoy of a similar shape ranks below the real,
    strongly shaded gap; and times 1 plus the NCC of the piece's own pixels inside its outline (a
    gap is the background's content shaded), which tells the gap from a photo's own edges. Where
    that content match stands out of its map (a textured piece matches one place), the excess is
    added: it tells an unrimmed gap even where a photo's own edges drown its outline. A piece with
    no transparency has no outline: the edges of what it shows are matched instead.
    """
    shape_match, strength, content = _fit_maps(background, piece, mask, gray, piece_gray, inner)
    score = shape_match * np.sqrt(np.maximum(strength, 0) / max(float(strength.max()), 1e-6))
    del shape_match, strength
    score *= (1 + np.maximum(content, 0)) / 2
    distinct = (content - float(np.median(content))) / max(float(content.std()), 1e-6)
    return np.maximum(score, 0) + _DISTINCT_WEIGHT * np.maximum(distinct - _DISTINCT_FROM, 0)


def _ranked_places(score: np.ndarray, width: int, height: int, row: int | None,
                   start: tuple[int, int] | None) -> list[tuple[int, int]]:
    """The best places, best first: those within _ALIGN px of the slider's row (if known) before the
    rest, and last the piece drawn at its start (and what overlaps it) and every place less than half
    the piece's width from the left border, where a slider starts: no gap lies there (the piece would
    slide under half its width), and the piece drawn at its start that _drawn_piece cannot tell (a
    screenshot at another scale) must not win."""
    last = np.full(score.shape, False)
    last[:, :width // 2] = True
    if start is not None:
        last[max(0, start[1] - height + 1):start[1] + height, :start[0] + width] = True
    score_last, score = np.where(last, score, -np.inf), np.where(last, -np.inf, score)
    found = []
    if row is not None:
        band = np.full(score.shape, -np.inf)
        band[max(0, row - _ALIGN):row + _ALIGN + 1] = score[max(0, row - _ALIGN):row + _ALIGN + 1]
        found += _peaks(band, width, height, MAX_CANDIDATES)
    found += [peak for peak in _peaks(score, width, height, MAX_CANDIDATES + 2)
              if all(abs(peak[0] - x) > width // 2 or abs(peak[1] - y) > height // 2 for x, y in found)]
    return found + _peaks(score_last, width, height, 1)


def _shape_on_plain_ground(piece: np.ndarray) -> np.ndarray:
    """An opaque piece's shape, (h, w) float32 1 inside: where its corners are one colour (the white
    or black a site fills round the shape before saving it as JPEG; a puzzle piece never fills its
    box's corners), the pixels of about that colour seen from the border along a row or a column
    are ground, the rest the shape. A piece with no such ground is all shape (its rectangle is
    matched). Bounded: four cumulative passes."""
    rgb = piece[..., :3].astype(np.float32)
    corners = rgb[[0, 0, -1, -1], [0, -1, 0, -1]]
    colour = np.median(corners, axis=0)
    if (np.abs(corners - colour).max(axis=1) <= _GROUND_TOLERANCE).sum() < 3:
        return np.ones(piece.shape[:2], np.float32)
    ground = np.abs(rgb - colour).max(axis=2) <= _GROUND_TOLERANCE
    seen = (np.logical_and.accumulate(ground, axis=1) | np.logical_and.accumulate(ground[:, ::-1], axis=1)[:, ::-1]
            | np.logical_and.accumulate(ground, axis=0) | np.logical_and.accumulate(ground[::-1], axis=0)[::-1])
    shape = ~seen
    return shape.astype(np.float32) if shape.sum() >= 16 else np.ones(piece.shape[:2], np.float32)


def _drawn_piece(gray: np.ndarray, piece: np.ndarray, inner: np.ndarray) -> tuple[int, int] | None:
    """Where the piece itself is drawn at its start, if it is: the place within its own width (and
    _ALIGN px) of the left border where the background's pixels inside the piece's outline are the
    piece's, unshaded. Both are averaged over 3x3 first, so JPEG's noise averages down: the piece
    drawn then differs by under 4 gray levels (RMS), any other place, a gap included, by more
    (_SAME_AS_PIECE)."""
    width = piece.shape[1]  # at most the background's (match_piece refuses a larger piece)
    strip = _box_blur(gray[:, :min(gray.shape[1], 2 * width + _ALIGN)])
    template = _box_blur(piece) * inner
    count = float(inner.sum())
    cross = _correlate(_spectrum(strip), strip.shape, template)
    squares = _correlate(_spectrum(strip * strip), strip.shape, inner)
    rms = np.sqrt(np.maximum(float((template * template).sum()) - 2 * cross + squares, 0) / count)
    rms = rms[:, :width + _ALIGN]
    y, x = np.unravel_index(int(np.argmin(rms)), rms.shape)
    return (int(x), int(y)) if rms[y, x] < _SAME_AS_PIECE else None


# -- two backgrounds --------------------------------------------------------------------------------
def _runs(profile: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """[start, end) of every run where the profile is at least `minimum`."""
    above = np.concatenate(([False], profile >= minimum, [False]))
    edges = np.flatnonzero(above[1:] != above[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _box_blur(gray: np.ndarray) -> np.ndarray:
    """3x3 mean: JPEG's 8x8 noise averages down, a gap's shading does not."""
    padded = np.pad(gray, 1, mode="edge")
    return sum(padded[dy:dy + gray.shape[0], dx:dx + gray.shape[1]] for dy in range(3) for dx in range(3)) / 9


def _merged_runs(profile: np.ndarray, minimum: float, bridge: int = 12) -> list[tuple[int, int]]:
    """Runs of the profile at or above `minimum`, those closer than `bridge` joined: a shape whose shading
    barely shows in some rows or columns (dark on dark) stays one."""
    runs = []
    for start, end in _runs(profile, minimum):
        if runs and start - runs[-1][1] <= bridge:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


def compare_backgrounds(background: np.ndarray, full: np.ndarray) -> Gap:
    """The gap from the background with it and the same background without it ((h, w, 4) RGBA arrays)."""
    if background.shape != full.shape:
        raise InvalidRequest(f"the two backgrounds differ in size: {background.shape[1]}x{background.shape[0]} "
                             f"and {full.shape[1]}x{full.shape[0]}")
    shaded, plain = _box_blur(gray_of(background)), _box_blur(gray_of(full))
    difference = np.abs(shaded - plain)
    noise = float(np.median(difference))  # most pixels are the same: their difference is the encoding's noise
    threshold = max(_DIFFERENCE_FLOOR, _NOISE_TIMES * noise)
    # a gap is shaded by a share of what each pixel could move (darkened towards 0, lightened towards
    # 255): that share, not the difference, is even across it, so a gap half on dark ground stays whole
    shading = np.maximum((plain - shaded) / np.maximum(plain, _SHADING_BASE),
                         (shaded - plain) / np.maximum(255 - plain, _SHADING_BASE))
    changed = (difference > threshold) & (shading > max(_SHADING_FLOOR, 0.25 * float(np.percentile(shading, 99.7))))
    if not changed.any():  # no pixel moved a tenth of its way (grey on near-black): a quarter of the largest difference
        changed = difference > max(threshold, 0.25 * float(np.percentile(difference, 99.7)))
    del shaded, plain, shading
    total = float(difference[changed].sum())
    if total == 0:
        if noise * _NOISE_TIMES > threshold / 2 and noise > _DIFFERENCE_FLOOR:
            raise NoGapFound("the two backgrounds differ everywhere: not one picture with and without a gap")
        raise NoGapFound("the two backgrounds are the same: no gap between them")
    boxes = []
    for left, right in _merged_runs(changed.sum(axis=0), 2):
        rows = changed[:, left:right].sum(axis=1)
        for top, bottom in _merged_runs(rows, 2):
            share = float(difference[top:bottom, left:right][changed[top:bottom, left:right]].sum()) / total
            boxes.append(Box(left, top, right - left, bottom - top, share))
    if not boxes:
        raise NoGapFound("the backgrounds differ only in scattered pixels: no gap between them")
    boxes.sort(key=lambda box: -box.score)
    return Gap.of(boxes, boxes[0].score, "difference")

