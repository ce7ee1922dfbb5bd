"""Per-image scores of an evaluation: each image's confusion matrix, IoU, mIoU and pixel accuracy.

`spgnet_keras.evaluation.evaluate` adds one `ImageScore` per image to
`EvaluationResult.per_image` while it accumulates the dataset's confusion matrix (same
counting conventions: rows = ground truth, label 255 skipped, a class absent from both the
image's labels and its prediction has IoU NaN and is left out of the image's mIoU).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from spgnet_keras.scoring import iou_with_unassigned, mean_of_defined

__all__ = ["ImageScore"]


@dataclasses.dataclass
class ImageScore:
    """The scores of one evaluated image.

    Attributes:
        index: int. Position of the image in the evaluation order (0-based).
        image: str or None. The image file, when the data gave paths.
        confusion: `int64 (C, C)`. This image's confusion matrix.
        unassigned: `int64 (C,)`. Pixels of each class predicted outside `[0, C)`.

    Example:

    ```python
    import numpy as np
    from spgnet_keras.image_scores import ImageScore

    score = ImageScore(0, "a.png", np.array([[3, 1], [0, 4]]), np.zeros(2, np.int64))
    score.miou  # (3/4 + 4/5) / 2
    ```
    """

    index: int
    image: str | None
    confusion: np.ndarray
    unassigned: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU `float64 (C,)`; NaN where the class is in neither labels nor prediction."""
        return iou_with_unassigned(self.confusion, self.unassigned)

    @property
    def miou(self) -> float:
        """Mean of the defined IoUs (NaN if none)."""
        return mean_of_defined(self.iou)

    @property
    def pixel_accuracy(self) -> float:
        """Correct / labelled pixels (NaN without labelled pixels)."""
        total = int(self.confusion.sum() + self.unassigned.sum())
        return float(np.trace(self.confusion) / total) if total else math.nan

    @property
    def pixels(self) -> int:
        """Labelled (non-ignored) pixels."""
        return int(self.confusion.sum() + self.unassigned.sum())

    def to_dict(self) -> dict:
        """JSON-ready dictionary (NaN written as null)."""

        def clean(value):
            return None if math.isnan(value) else float(value)

        return {
            "index": self.index,
            "image": self.image,
            "miou": clean(self.miou),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "pixels": self.pixels,
            "iou": [clean(float(v)) for v in self.iou],
            "confusion_matrix": np.asarray(self.confusion).tolist(),
        }
