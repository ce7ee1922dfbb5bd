"""Know your data before training: one pass over every pair (the dataset check of
`spgnet_keras.data.validate_dataset`) gives the pairs, image sizes, the pixel share of
every class, the classes absent from a split, and class weights from the frequencies."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.listing import Pair
from spgnet_keras.data.spec import DatasetError, DatasetSpec
from spgnet_keras.data.validation import ValidationReport, validate_dataset

_ANY_LABEL = IGNORE_LABEL  # while counting the classes: every value but the ignore label is a class


@dataclasses.dataclass
class DataReport:
    """What `describe_data` found.

    Attributes:
        spec: DatasetSpec. The classes (counted in the masks when none were given).
        train: ValidationReport. The dataset check of the training pairs.
        val: ValidationReport. That of the validation pairs, or None when there are none.
        classes_source: str. Where the classes come from.
        overlap: int. Pairs that are in both splits.

    Example:

    ```python
    report = describe_data(train_pairs, val_pairs)
    print(report.format())
    ```
    """

    spec: DatasetSpec
    train: ValidationReport
    val: ValidationReport | None
    classes_source: str = ""
    overlap: int = 0

    def absent(self, split: str = "train") -> list[str]:
        """Names of the classes without a pixel in `split` ("train" or "val")."""
        report = self.train if split == "train" else self.val
        if report is None:
            return []
        return [name for name, count in zip(self.spec.class_names, report.class_pixel_counts) if count == 0]

    def median_frequency_weights(self) -> list[float]:
        """Median-frequency balancing (Eigen & Fergus, ICCV 2015) on the training split:
        `w_c = median(f) / f_c` with `f_c` the pixels of class `c` over the labelled pixels
        of the images it appears in; a class absent from training gets 1 (it has no pixels to weigh)."""
        counts = self.train.class_pixel_counts.astype(np.float64)
        present = counts > 0
        frequency = np.zeros_like(counts)
        frequency[present] = counts[present] / self.train.class_image_pixels[present]
        weights = np.ones_like(counts)
        if present.any():
            weights[present] = np.median(frequency[present]) / frequency[present]
        return [round(float(w), 6) for w in weights]

    def format(self) -> str:
        """A table a person reads before training (pairs, sizes, pixel share per class, warnings)."""
        spec = self.spec
        lines = [f"{self.train.num_pairs} training pairs" +
                 (f", {self.val.num_pairs} validation pairs" if self.val else ", no validation pairs"),
                 f"image sizes (height x width): {_sizes(self.train, self.val)}",
                 f"{spec.num_classes} classes ({self.classes_source}), share of the labelled pixels:"]
        lines.append(f"  {'#':>3}  {'class':<20} {'train %':>8} {'val %':>8}")
        train_share = _shares(self.train)
        val_share = _shares(self.val) if self.val else None
        for index, name in enumerate(spec.class_names):
            row = f"  {index:>3}  {name[:20]:<20} {train_share[index]:>8.2f}"
            row += f" {val_share[index]:>8.2f}" if val_share is not None else f" {'-':>8}"
            lines.append(row)
        for split, report in (("train", self.train), ("val", self.val)):
            if report is not None and report.ignore_pixels:
                total = report.ignore_pixels + int(report.class_pixel_counts.sum())
                lines.append(f"  ignored (label {spec.ignore_index}) in {split}: {100 * report.ignore_pixels / total:.2f} %"
                             " of the pixels")
        for split in ("train", "val"):
            absent = self.absent(split)
            if absent:
                lines.append(f"warning: {len(absent)} class(es) have no pixel in {split}: {', '.join(absent)}")
        if self.overlap:
            lines.append(f"warning: {self.overlap} validation pair(s) are also training pairs: "
                         "the validation scores will be optimistic")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def split(report):
            if report is None:
                return None
            return {"pairs": report.num_pairs,
                    "class_pixels": dict(zip(self.spec.class_names, report.class_pixel_counts.tolist())),
                    "ignored_pixels": int(report.ignore_pixels),
                    "image_sizes": {f"{h}x{w}": n for (h, w), n in sorted((report.size_counts or {}).items())}}

        return {"classes_source": self.classes_source, "train": split(self.train), "val": split(self.val),
                "absent_from_train": self.absent("train"), "absent_from_val": self.absent("val"),
                "median_frequency_weights": self.median_frequency_weights()}


def _shares(report: ValidationReport) -> np.ndarray:
    total = max(1, int(report.class_pixel_counts.sum()))
    return 100.0 * report.class_pixel_counts / total


def _sizes(*reports) -> str:
    counts: dict = {}
    for report in reports:
        for size, count in (report.size_counts or {}).items() if report is not None else ():
            counts[size] = counts.get(size, 0) + count
    if len(counts) == 1:
        (height, width), count = next(iter(counts.items()))
        return f"{height}x{width} (all {count} images)"
    ordered = sorted(counts, key=lambda size: size[0] * size[1])
    common = max(counts, key=counts.get)
    return (f"{len(counts)} sizes from {ordered[0][0]}x{ordered[0][1]} to {ordered[-1][0]}x{ordered[-1][1]} "
            f"(most common {common[0]}x{common[1]}: {counts[common]} images)")


def describe_data(
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair] | None = None,
    spec: DatasetSpec | None = None,
    classes_source: str = "",
    **mask_options,
) -> DataReport:
    """Checks every pair (eagerly, with the pipeline's decoder) and describes the data.

    Args:
        train_pairs: Training `(image, mask)` pairs.
        val_pairs: Validation pairs, or None.
        spec: The classes; None counts them in the masks: the largest label (other than the
            ignore label 255, after the label map) + 1, with names `class_0`, ...
        classes_source: Where the classes come from, for the report.
        **mask_options: `mask_style` (a `MaskStyle`) and `base_table`, or the separate
            `mask_format`, `palette`, `label_map`, `reduce_zero_label`, ... of
            `spgnet_keras.data.validate_dataset`.

    Returns:
        A `DataReport` (print `report.format()`).

    Raises:
        DatasetError: A file that cannot be read or used (names every bad file and value,
            as `spgnet_keras.data.validate_dataset`), or masks with fewer than two classes.
    """
    num_classes = spec.num_classes if spec is not None else _ANY_LABEL
    ignore_index = spec.ignore_index if spec is not None else IGNORE_LABEL
    train = validate_dataset(train_pairs, num_classes, ignore_index=ignore_index, **mask_options)
    val = validate_dataset(val_pairs, num_classes, ignore_index=ignore_index, **mask_options) if val_pairs else None
    if spec is None:
        spec, train, val = _counted_classes(train, val)
        classes_source = classes_source or "counted in the masks"
    overlap = len(set(map(tuple, train_pairs)) & set(map(tuple, val_pairs or ())))
    return DataReport(spec, train, val, classes_source, overlap)


def _counted_classes(train: ValidationReport, val: ValidationReport | None):
    """The spec of classes 0 .. largest value present, and the reports cut to them."""
    present = train.class_pixel_counts + (val.class_pixel_counts if val is not None else 0)
    values = np.flatnonzero(present)
    if len(values) == 0 or values[-1] < 1:
        only = "only the ignore label 255" if len(values) == 0 else "only the value 0 and the ignore label 255"
        raise DatasetError(
            f"The masks hold {only}, so there is nothing to learn. Binary masks saved as 0/255 need 255 "
            "read as a class: label_map={255: 1} (--label-map '{\"255\": 1}'); otherwise check the masks "
            "(mask_format, reduce_zero_label).")
    num_classes = int(values[-1]) + 1
    return (DatasetSpec.with_defaults(num_classes, name="counted"), _cut(train, num_classes),
            _cut(val, num_classes) if val is not None else None)


def _cut(report: ValidationReport, num_classes: int) -> ValidationReport:
    return dataclasses.replace(report, class_pixel_counts=report.class_pixel_counts[:num_classes],
                               class_image_pixels=report.class_image_pixels[:num_classes])
