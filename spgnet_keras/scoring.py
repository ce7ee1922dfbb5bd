"""The one scoring rule of label and prediction maps, in NumPy (no TensorFlow).

Conventions (shared by `spgnet_keras.metrics.SegmentationMeanIoU`, `spgnet_keras.evaluation`
and `benchmarks/ablation_jax.py`, which runs on JAX without TensorFlow):

- the confusion matrix `cm` has shape `(C, C)`; rows are ground-truth classes, columns
  predicted classes: `cm[t, p]` counts pixels labelled `t` and predicted `p`;
- pixels whose label equals `ignore_index` (255) are not counted; any other label outside
  `[0, C)`, or a prediction outside it, is an error (`spgnet_keras.labels.check_label_values`);
- `IoU_c = cm[c, c] / (sum_p cm[c, p] + sum_t cm[t, c] - cm[c, c])`; a class whose union is 0
  (absent from both labels and predictions) has IoU NaN and is left out of the mean, as
  cityscapesscripts does.

Example:

```python
import numpy as np
from spgnet_keras.scoring import confusion_matrix, mean_iou_from_confusion

labels = np.array([[0, 1], [255, 1]])
preds = np.array([[0, 1], [0, 0]])
cm = confusion_matrix(labels, preds, num_classes=2)  # [[1, 0], [1, 1]]
mean_iou_from_confusion(cm)  # (1/2 + 1/2) / 2 = 0.5
```
"""

from __future__ import annotations

import math

import numpy as np

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.labels import check_label_values

__all__ = ["confusion_matrix", "iou_from_confusion", "mean_iou_from_confusion", "pixel_accuracy"]


def confusion_matrix(labels, preds, num_classes: int, ignore_index: int = IGNORE_LABEL) -> np.ndarray:
    """Confusion matrix of integer label and prediction maps.

    Args:
        labels: array-like of int. Ground-truth labels, any shape.
        preds: array-like of int. Predicted classes, the same number of elements.
        num_classes: int. Number of classes `C`.
        ignore_index: int. Label value whose pixels are skipped.

    Returns:
        `np.int64` array `(C, C)`; rows are ground truth, columns predictions.

    Raises:
        InvalidInputError: If the sizes differ, or a non-ignored label or its prediction
            lies outside `[0, C)` (a `ValueError`).
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    preds = np.asarray(preds).reshape(-1).astype(np.int64)
    if labels.shape != preds.shape:
        raise InvalidInputError(f"labels and preds differ in size: {labels.size} vs {preds.size}.")
    valid = labels != ignore_index
    labels, preds = labels[valid], preds[valid]
    check_label_values(labels, num_classes, None, "confusion_matrix", error=InvalidInputError)
    check_label_values(preds, num_classes, None, "confusion_matrix", what="prediction", error=InvalidInputError)
    counts = np.bincount(labels * num_classes + preds, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def iou_from_confusion(cm) -> np.ndarray:
    """Per-class IoU of a confusion matrix.

    Args:
        cm: array-like `(C, C)`. Rows are ground truth, columns predictions.

    Returns:
        `np.float64` array `(C,)`; NaN for a class whose union is 0.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mean_iou_from_confusion(cm) -> float:
    """Mean IoU over the classes whose union is not 0.

    Args:
        cm: array-like `(C, C)`. Rows are ground truth, columns predictions.

    Returns:
        The mean of `iou_from_confusion(cm)` without its NaNs; NaN when every entry is NaN.
    """
    return mean_of_defined(iou_from_confusion(cm))


def mean_of_defined(values) -> float:
    """The mean of the values that are not NaN (classes with a defined score); NaN if none is."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def iou_with_unassigned(cm, unassigned) -> np.ndarray:
    """Per-class IoU when some predictions fall outside the classes (`unassigned[t]`: pixels
    labelled `t` predicted no class): they count as wrong for their class, for nobody else.

    Args:
        cm: array-like `(C, C)`. Rows are ground truth, columns predictions.
        unassigned: array-like `(C,)`. Per ground-truth class, pixels predicted outside `[0, C)`.

    Returns:
        `float64 (C,)`, NaN where the class is in neither labels nor predictions.
    """
    cm = np.asarray(cm)
    size = len(cm)
    extended = np.zeros((size + 1, size + 1), np.int64)
    extended[:size, :size] = cm
    extended[:size, size] = np.asarray(unassigned)
    return iou_from_confusion(extended)[:size]


def pixel_accuracy(cm) -> float:
    """Fraction of the counted pixels predicted correctly.

    Args:
        cm: array-like `(C, C)`. Rows are ground truth, columns predictions.

    Returns:
        `trace(cm) / sum(cm)`; NaN when nothing was counted.
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else math.nan
