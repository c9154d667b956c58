"""Training the gap detector: a slider's background alone -> where its gap is.

A small fully convolutional network reads the background resized to INPUT (height, width) and
answers, for each cell of a grid at a quarter of that size, a heat (is the gap's centre here?),
the centre's offset inside the cell and the gap's width and height (CenterNet's recipe, with one
class). The peaks of the heat map are the ranked candidates; the serving side (captcha_ocr/detector)
decodes them in the background's own pixels. It learns on generated sliders (slider_samples.py:
photo and procedural backgrounds, decoys, the piece drawn at its start, JPEG artefacts), and
`captcha-ocr slide-train` goes on from it on a folder of labelled sliders.

    python -m captcha_ocr.training.gap --out runs/gap --minutes 20        # docs/slider.md: the shipped one's command
    python -m captcha_ocr.training.gap --out runs/gap --resume --epochs 3 --minutes 60 --learning-rate 5e-4   # goes on
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from captcha_ocr.config import file_sha256
from captcha_ocr.detector import CONFIG_FILE, INPUT, MODEL_FILE, STRIDE, decode_heat_map, network_input
from captcha_ocr.labelled import DatasetError
from captcha_ocr.slider_samples import Box, generate_slider
from captcha_ocr.training.photos import photo_background

SIGMA_CELLS = 1.0  # the heat target's spread around the centre cell
BOX_ENCODING = "edges"  # what targets() trains the box channels to hold (decode_heat_map's encodings)
VALIDATION_SEED = 700_000


def input_array(background: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """A background's bytes -> the network's input (height, width, 3) float32 in [0, 1], and its size."""
    image = Image.open(io.BytesIO(background)).convert("RGB")
    return network_input(image), image.size


def targets(box: Box, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The heat target (grid, 1) and the regression target with its mask (grid, 5): the box's left, top,
    right and bottom edges in cells from each cell's corner (the "edges" encoding of decode_heat_map),
    set at the centre's cell and its eight neighbours, so that a heat peak one cell off reads the same
    box; the mask is 1 there."""
    rows, columns = INPUT[0] // STRIDE, INPUT[1] // STRIDE
    scale_x, scale_y = INPUT[1] / size[0] / STRIDE, INPUT[0] / size[1] / STRIDE  # background px -> cells
    left, right = box.x * scale_x, (box.x + box.width) * scale_x
    top, bottom = box.y * scale_y, (box.y + box.height) * scale_y
    column, row = min(int((left + right) / 2), columns - 1), min(int((top + bottom) / 2), rows - 1)
    yy, xx = np.mgrid[0:rows, 0:columns]
    heat = np.exp(-((xx - column) ** 2 + (yy - row) ** 2) / (2 * SIGMA_CELLS**2)).astype(np.float32)[..., None]
    regression = np.zeros((rows, columns, 5), np.float32)
    for cell_row in range(max(0, row - 1), min(rows, row + 2)):
        for cell_column in range(max(0, column - 1), min(columns, column + 2)):
            regression[cell_row, cell_column] = (left - cell_column, top - cell_row, right - cell_column,
                                                 bottom - cell_row, 1)
    return heat, regression


def dataset(seeds: range) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    images, heats, regressions, truths = [], [], [], []
    for seed in seeds:
        slider = generate_slider(seed, photos=photo_background)
        image, size = input_array(slider.background)
        heat, regression = targets(slider.gap, size)
        images.append(image)
        heats.append(heat)
        regressions.append(regression)
        truths.append((slider.gap, size))
    return np.stack(images), np.stack(heats), np.stack(regressions), truths


def build_model():
    import keras
    from keras import layers

    def block(x, filters, stride=1, dilation=1):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", dilation_rate=dilation, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    image = keras.Input((*INPUT, 3), name="image")
    x = block(image, 16, stride=2)
    x = block(x, 24)
    x = block(x, 32, stride=2)
    for dilation in (1, 2, 4, 8):  # a receptive field wider than the largest piece
        x = block(x, 40, dilation=dilation)
    heat = layers.Conv2D(1, 1, name="heat", bias_initializer=keras.initializers.Constant(-4.0))(x)
    box = layers.Conv2D(4, 1, name="box")(x)
    return keras.Model(image, layers.Concatenate(name="out")([heat, box]))


def loss(y_true, y_pred):
    """Focal loss on the heat map (CenterNet's, penalty-reduced near the centre), L1 on the box's edges
    (in cells) where the mask says: the centre's cell and its neighbours."""
    import keras.ops as ops

    heat_true, regression, mask = y_true[..., :1], y_true[..., 1:5], y_true[..., 5:6]
    heat = ops.clip(ops.sigmoid(y_pred[..., :1]), 1e-4, 1 - 1e-4)
    centre = ops.cast(heat_true > 0.999, "float32")
    positive = -ops.log(heat) * (1 - heat) ** 2 * centre
    negative = -ops.log(1 - heat) * heat**2 * (1 - heat_true) ** 4 * (1 - centre)
    count = ops.maximum(ops.sum(centre), 1.0)
    focal = (ops.sum(positive) + ops.sum(negative)) / count
    box = ops.sum(ops.abs(y_pred[..., 1:5] - regression) * mask) / ops.maximum(ops.sum(mask), 1.0)
    return focal + box


def within(model, images: np.ndarray, truths: list, pixels: int = 5) -> float:
    outputs = model.predict(images, verbose=0, batch_size=64)
    right = 0
    for output, (box, size) in zip(outputs, truths):
        found = decode_heat_map(output, size, encoding=BOX_ENCODING)[0]
        right += max(abs(found.x - box.x), abs(found.y - box.y)) <= pixels
    return right / len(truths)


def _cached_dataset(out: Path, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """dataset(seeds) as the network's input and targets, generated once per run folder: the images
    are kept as the 8-bit pixels they were resized to (network_input divides them by 255), so a
    resumed run reads them back exactly instead of drawing them again (minutes on 2 cores)."""
    cache = out / f"sliders-{seeds.start}-{seeds.stop}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            pixels, boxes, sizes = stored["pixels"], stored["boxes"], stored["sizes"]
    else:
        images, _, _, truths = dataset(seeds)
        pixels = np.round(images * 255).astype(np.uint8)
        del images
        boxes = np.array([(box.x, box.y, box.width, box.height) for box, _ in truths], np.int32)
        sizes = np.array([size for _, size in truths], np.int32)
        np.savez(cache, pixels=pixels, boxes=boxes, sizes=sizes)
    labels = [targets(Box(*map(int, box)), (int(size[0]), int(size[1]))) for box, size in zip(boxes, sizes)]
    return pixels.astype(np.float32) / 255, np.stack([np.concatenate(pair, axis=-1) for pair in labels])


def train(out: Path, minutes: float, train_count: int, seed: int, validation_count: int = 500,
          resume: bool = False, learning_rate: float = 2e-3, epochs: int | None = None) -> dict:
    """Train for `minutes` (at least one epoch) or `epochs`, whichever ends first, keeping the epoch
    that places most of the held-out sliders within 5 px as out/best.keras; `resume` goes on from that
    checkpoint and its history (out/history.json, written every epoch) at a constant `learning_rate`.
    A count of epochs does the same work however busy the machine is; minutes do not."""
    import keras

    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    images, targets_ = _cached_dataset(out, range(seed * 10_000_000, seed * 10_000_000 + train_count))
    validation, _, _, truths = dataset(range(VALIDATION_SEED, VALIDATION_SEED + validation_count))
    keras.utils.set_random_seed(seed)
    if resume:
        model = keras.models.load_model(out / "best.keras", compile=False)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
        history = json.loads((out / "history.json").read_text())
        best = within(model, validation, truths)
    else:
        model = build_model()
        steps = max(1, train_count // 32)
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps * 200, alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
        history, best = [], -1.0
    print(f"{train_count} generated sliders ready in {time.monotonic() - started:.0f} s; training for "
          f"{minutes} minutes", flush=True)
    started, epoch, first = time.monotonic(), len(history), len(history)
    while epoch == first or (time.monotonic() - started < minutes * 60
                             and (epochs is None or epoch - first < epochs)):
        epoch += 1
        fitted = model.fit(images, targets_, batch_size=32, epochs=1, verbose=0, shuffle=True)
        accuracy = within(model, validation, truths)
        history.append({"epoch": epoch, "loss": float(fitted.history["loss"][-1]), "within_5px": accuracy,
                        "elapsed_s": round(time.monotonic() - started, 1), "learning_rate": learning_rate,
                        "resumed": resume})
        print(json.dumps(history[-1]), flush=True)
        if accuracy > best:
            best = accuracy
            model.save(out / "best.keras")
        (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return {"best_within_5px": best, "epochs": epoch}


SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "gap_detector.keras"  # what slide-train goes on from


def fine_tune(sliders: list, out: Path, minutes: float, seed: int = 1) -> dict:
    """The shipped detector trained further on a user's labelled sliders (slider_labels.LabelledSlider),
    a seeded tenth of them held out to pick the best epoch; exported to out/export."""
    import keras

    if len(sliders) < 10:
        raise DatasetError(f"{len(sliders)} labelled sliders: slide-train needs at least 10")
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(sliders))
    held = max(1, len(sliders) // 10)
    arrays = []
    for slider in sliders:
        image, size = input_array(slider.background.read_bytes())
        heat, regression = targets(slider.gap, size)
        arrays.append((image, np.concatenate([heat, regression], axis=-1), (slider.gap, size)))
    validation = [arrays[i] for i in order[:held]]
    training = [arrays[i] for i in order[held:]]
    images, targets_ = np.stack([a[0] for a in training]), np.stack([a[1] for a in training])
    held_images, truths = np.stack([a[0] for a in validation]), [a[2] for a in validation]
    keras.utils.set_random_seed(seed)
    model = keras.models.load_model(SHIPPED_CHECKPOINT, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss=loss)
    start = best = within(model, held_images, truths)
    model.save(out / "best.keras")
    started, epoch, history = time.monotonic(), 0, []
    while epoch == 0 or time.monotonic() - started < minutes * 60:
        epoch += 1
        fitted = model.fit(images, targets_, batch_size=16, epochs=1, verbose=0, shuffle=True)
        accuracy = within(model, held_images, truths)
        history.append({"epoch": epoch, "loss": float(fitted.history["loss"][-1]), "within_5px": accuracy})
        print(json.dumps(history[-1]), flush=True)
        if accuracy > best:
            best = accuracy
            model.save(out / "best.keras")
    (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    export(out, out / "export")
    return {"start_within_5px": start, "best_within_5px": best, "epochs": epoch}


def export(run: Path, target: Path) -> Path:
    """The run's best checkpoint -> target/gap.tflite (float32) and target/gap.json."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(run / "best.keras", compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    target.mkdir(parents=True, exist_ok=True)
    (target / MODEL_FILE).write_bytes(converter.convert())
    config = {"kind": "gap-detector", "model_file": MODEL_FILE, "sha256": file_sha256(target / MODEL_FILE),
              "input": {"height": INPUT[0], "width": INPUT[1], "channels": 3}, "stride": STRIDE,
              "box_encoding": BOX_ENCODING}
    (target / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="run folder (best.keras, history.json)")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--epochs", type=int, help="stop after this many epochs even if minutes are left")
    parser.add_argument("--train", type=int, default=12_000, help="generated sliders to train on")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="go on from OUT/best.keras and OUT/history.json")
    parser.add_argument("--learning-rate", type=float, default=2e-3,
                        help="Adam's (default 2e-3, cosine-decayed; constant when resuming)")
    parser.add_argument("--export", type=Path, help="then write the detector (gap.tflite, gap.json) here")
    args = parser.parse_args()
    print(json.dumps(train(args.out, args.minutes, args.train, args.seed, resume=args.resume,
                           learning_rate=args.learning_rate, epochs=args.epochs)))
    if args.export:
        export(args.out, args.export)


if __name__ == "__main__":
    main()
