"""Confusion-matrix and training-curve figures, and the reader of a run's training log."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.visualization.colors import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_confusion_matrix", "plot_training_curves", "read_csv_log"]


def plot_confusion_matrix(
    confusion, class_names: Sequence[str] | None = None, normalize: bool = True, annotate: bool | None = None
) -> Figure:
    """Confusion-matrix image (rows = ground truth, columns = prediction).

    Args:
        confusion: `(C, C)` counts.
        class_names: Tick labels (default `0..C-1`).
        normalize: Divide each row by its total (per-class recall; empty rows stay 0).
        annotate: Write the values in the cells (default: when `C <= 20`).
    """
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise InvalidInputError(f"Confusion matrix must be square, got shape {confusion.shape}.")
    size = confusion.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(size)]
    if len(names) != size:
        raise InvalidInputError(f"{len(names)} class names for a {size}x{size} confusion matrix.")
    values = confusion
    if normalize:
        totals = confusion.sum(axis=1, keepdims=True)
        values = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    annotate = size <= 20 if annotate is None else annotate
    side = max(4.0, 0.45 * size + 2.0)
    figure = new_figure((side + 1.0, side))
    axis = figure.subplots()
    image = axis.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    axis.set_xticks(range(size), names, rotation=90)
    axis.set_yticks(range(size), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("ground truth")
    axis.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    if annotate:
        threshold = values.max() / 2 if values.size else 0
        for row in range(size):
            for column in range(size):
                text = f"{values[row, column]:.2f}" if normalize else f"{int(values[row, column])}"
                axis.text(column, row, text, ha="center", va="center", fontsize=7,
                          color="white" if values[row, column] > threshold else "black")
    figure.tight_layout()
    return figure


def read_csv_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a `keras.callbacks.CSVLogger` file into `{column: float array}`.

    Raises:
        FileNotFoundError: Missing file.
        ValueError: No `epoch` column or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Training log not found: {path}")
    with path.open(newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        rows = list(csv.DictReader(handle, delimiter=delimiter))
    if not rows or "epoch" not in rows[0]:
        raise InvalidInputError(f"{path} is not a CSVLogger log (needs an 'epoch' column and at least one row).")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    return {column: np.array([number(row.get(column)) for row in rows]) for column in rows[0] if column}


def plot_training_curves(path_or_log, metrics: Sequence[str] | None = None) -> Figure:
    """Training curves from a CSVLogger file: one panel per metric, `x` and `val_x`.

    Loss panels use a log axis, and when the first epoch's value is far above the rest (a
    validation loss of 82 after epoch 1, then 0.5) the axis is limited to the later epochs
    and the clipped point is marked at the top edge with its value, so later epochs stay
    readable.

    Args:
        path_or_log: CSV path or the dict of `read_csv_log`.
        metrics: Base metric names to plot (default: every column except `epoch` and
            `val_*`; a learning-rate column gets its own log-scale panel).
    """
    log = path_or_log if isinstance(path_or_log, dict) else read_csv_log(path_or_log)
    epochs = log["epoch"] + 1
    bases = [c for c in log if c != "epoch" and not c.startswith("val_")]
    bases += [c[4:] for c in log if c.startswith("val_") and c[4:] not in bases]
    if metrics is not None:
        unknown = [m for m in metrics if m not in bases]
        if unknown:
            raise InvalidInputError(f"Metrics {unknown} not in the log; available: {bases}.")
        bases = list(metrics)
    if not bases:
        raise InvalidInputError("The log has no metric columns.")
    columns = min(3, len(bases))
    rows = -(-len(bases) // columns)
    figure = new_figure((4.5 * columns, 3.2 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, base in zip(axes.flat, bases):
        for name, style in ((base, "-"), (f"val_{base}", "--")):
            if name in log:
                axis.plot(epochs, log[name], style, marker="o", markersize=3, label=name)
        if base in ("lr", "learning_rate"):
            axis.set_yscale("log")
        elif "loss" in base:
            _readable_loss_axis(axis, [log[n] for n in (base, f"val_{base}") if n in log])
        axis.set_title(base)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(bases):]:
        axis.set_axis_off()
    figure.tight_layout()
    return figure



def _readable_loss_axis(axis, series, outlier_factor: float = 3.0):
    """Log scale for positive losses; clips the y-axis to the later epochs when epoch 1 is an outlier."""
    values = np.concatenate([np.asarray(v, np.float64) for v in series]) if series else np.zeros(0)
    values = values[np.isfinite(values)]
    if values.size and values.min() > 0:
        axis.set_yscale("log")
    later = np.concatenate([np.asarray(v, np.float64)[1:] for v in series]) if series else np.zeros(0)
    later = later[np.isfinite(later)]
    if not later.size or not values.size or values.max() <= outlier_factor * later.max():
        return
    low, top = later.min(), later.max()
    if axis.get_yscale() == "log":
        axis.set_ylim(low / 1.3, top * 1.5)
    else:
        span = max(top - low, 1e-12)
        axis.set_ylim(low - 0.1 * span, top + 0.3 * span)
    for values_of_one in series:
        first = float(np.asarray(values_of_one)[0])
        if np.isfinite(first) and first > top * 1.5:
            axis.annotate(f"epoch 1: {first:.3g} (off scale)", xy=(1, top * 1.45 if axis.get_yscale() == "log"
                          else top + 0.28 * (top - low)), fontsize=7, ha="left", va="top", color="0.3")
