"""The result of an evaluation: confusion matrix, per-class and per-image scores, its JSON
and its plain-text table (`spgnet_keras.evaluation.evaluate` returns it)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from spgnet_keras.errors import InvalidInputError
from spgnet_keras.scoring import iou_with_unassigned, mean_of_defined


@dataclasses.dataclass
class EvaluationResult:
    """Accumulated evaluation of a set of images.

    Attributes:
        confusion: `int64 (C, C)`; `confusion[t, p]` = pixels labelled `t` predicted `p`.
        class_names: `C` names.
        num_images: Images evaluated.
        unassigned: `int64 (C,)`; pixels of class `t` predicted outside `[0, C)`.
        settings: How the predictions were made (scales, flip, window, ...).
        seconds: Wall time of the evaluation.
        per_image: One `ImageScore` per image, in evaluation order (filled by `evaluate`
            and `evaluate_label_files` as they accumulate `confusion`).

    Example:

    ```python
    result = spgnet_keras.evaluation.evaluate(model, pairs)
    print(f"mIoU {100 * result.miou:.1f} %", dict(zip(result.class_names, result.iou)))
    worst = min(result.per_image, key=lambda score: score.miou)
    ```
    """

    confusion: np.ndarray
    class_names: tuple[str, ...]
    num_images: int = 0
    unassigned: np.ndarray | None = None
    settings: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    per_image: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.confusion = np.asarray(self.confusion, np.int64)
        self.class_names = tuple(self.class_names)
        if self.unassigned is None:
            self.unassigned = np.zeros(len(self.class_names), np.int64)
        self.unassigned = np.asarray(self.unassigned, np.int64)
        size = len(self.class_names)
        if self.confusion.shape != (size, size) or self.unassigned.shape != (size,):
            raise InvalidInputError(
                f"EvaluationResult: confusion {self.confusion.shape} / unassigned {self.unassigned.shape} "
                f"do not match {size} class names."
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU `float64 (C,)` in [0, 1]; NaN where the class is absent from both."""
        return iou_with_unassigned(self.confusion, self.unassigned)

    @property
    def miou(self) -> float:
        """Mean IoU over classes with a defined IoU (NaN if none)."""
        return mean_of_defined(self.iou)

    @property
    def pixels_per_class(self) -> np.ndarray:
        """Labelled (non-ignored) pixels of each class."""
        return self.confusion.sum(axis=1) + self.unassigned

    @property
    def pixel_accuracy(self) -> float:
        """Correct pixels / labelled pixels (NaN if none)."""
        total = self.pixels_per_class.sum()
        return float(np.trace(self.confusion) / total) if total else math.nan

    @property
    def class_accuracy(self) -> np.ndarray:
        """Per-class recall `float64 (C,)`, NaN for classes without labelled pixels."""
        totals = self.pixels_per_class.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(totals > 0, np.diag(self.confusion) / np.where(totals > 0, totals, 1), np.nan)

    @property
    def mean_accuracy(self) -> float:
        accuracy = self.class_accuracy
        return float(np.nanmean(accuracy)) if np.isfinite(accuracy).any() else math.nan

    def to_dict(self) -> dict:
        """JSON-ready dictionary (NaN written as null)."""

        def clean(value):
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

        return {
            "miou": clean(self.miou),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "mean_accuracy": clean(self.mean_accuracy),
            "num_images": self.num_images,
            "per_class": {
                name: {"iou": clean(float(iou)), "accuracy": clean(float(acc)), "pixels": int(pixels)}
                for name, iou, acc, pixels in zip(
                    self.class_names, self.iou, self.class_accuracy, self.pixels_per_class
                )
            },
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion.tolist(),
            "unassigned": self.unassigned.tolist(),
            "settings": self.settings,
            "seconds": self.seconds,
            "per_image": [score.to_dict() for score in self.per_image],
        }


def to_json(result: EvaluationResult, path: str | os.PathLike | None = None) -> str:
    """The result as JSON text (see `EvaluationResult.to_dict`); also written to `path`."""
    text = json.dumps(result.to_dict(), indent=2)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text


def format_table(result: EvaluationResult) -> str:
    """Plain-text table: one line per class (IoU %, accuracy %, labelled pixels), then means."""

    def percent(value):
        return "   n/a" if not np.isfinite(value) else f"{100 * value:6.2f}"

    width = max(12, *(len(name) for name in result.class_names))
    lines = [f"{'class':<{width}}  {'IoU %':>6}  {'Acc %':>6}  {'pixels':>12}", "-" * (width + 32)]
    for name, iou, accuracy, pixels in zip(
        result.class_names, result.iou, result.class_accuracy, result.pixels_per_class
    ):
        lines.append(f"{name:<{width}}  {percent(iou)}  {percent(accuracy)}  {int(pixels):>12d}")
    lines.append("-" * (width + 32))
    lines.append(f"{'mIoU':<{width}}  {percent(result.miou)}")
    lines.append(f"{'pixel acc.':<{width}}  {percent(result.pixel_accuracy)}")
    lines.append(f"{'mean acc.':<{width}}  {percent(result.mean_accuracy)}")
    lines.append(f"{result.num_images} images")
    return "\n".join(lines)
