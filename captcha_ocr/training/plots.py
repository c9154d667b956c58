"""PNG plots a run writes next to its checkpoints: learning curves and the mistakes it still makes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_history(history: list[dict], path: Path) -> Path:
    epochs = [h["epoch"] for h in history]
    figure, loss_axis = plt.subplots(figsize=(8, 4.5))
    loss_axis.plot(epochs, [h["loss"] for h in history], color="#b42318", label="training loss (CTC)")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    loss_axis.set_yscale("log")
    accuracy_axis = loss_axis.twinx()
    accuracy_axis.plot(epochs, [h["val_accuracy"] * 100 for h in history], color="#2457d6",
                       label="validation full-sequence accuracy")
    accuracy_axis.set_ylabel("accuracy (%)")
    accuracy_axis.set_ylim(0, 100)
    figure.legend(loc="lower center", ncol=2, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_errors(images: np.ndarray, truths: list[str], predictions: list[str], path: Path, limit: int = 24) -> Path:
    """A gallery of misrecognised validation images, each titled truth -> prediction."""
    wrong = [i for i, (t, p) in enumerate(zip(truths, predictions)) if t != p][:limit]
    columns = 4
    rows = max(1, (len(wrong) + columns - 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 1.3 * rows + 0.6), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong):
        axis.imshow(images[index][..., 0], cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"{truths[index]} -> {predictions[index] or '∅'}", fontsize=10, color="#b42318")
    title = f"{len(wrong)} of {len(truths)} validation images misrecognised" if wrong else "no validation errors"
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
