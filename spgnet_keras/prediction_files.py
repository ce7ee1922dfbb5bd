"""Writing predicted class maps to files: class-index PNGs and Cityscapes benchmark results.

Both writers know their file names before anything is predicted (`target`), so
`prediction_writer` checks every file against `spgnet_keras.output_files.check_output_targets`
(never into a dataset's folders, never over an input or ground truth, never over an earlier
file without `overwrite`) before the first image is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from spgnet_keras.data.decoding import save_label
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.output_files import check_output_targets


def cityscapes_result_path(out_dir: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """Where a Cityscapes result PNG goes: `<out>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`.

    cityscapesscripts' `evalPixelLevelSemanticLabeling` (with `CITYSCAPES_RESULTS=<out>`)
    and the benchmark server search the results folder recursively for exactly one file
    matching `<city>_<seq>_<frame>*.png` per image, so keep nothing else in `<out>`.

    Args:
        out_dir: str or Path. The results folder.
        image_path: str or Path. The `leftImg8bit` image the prediction is of.
    """
    name = Path(image_path).name
    stem = name.split("_leftImg8bit")[0] if "_leftImg8bit" in name else Path(name).stem
    parts = stem.split("_")
    if len(parts) < 3:
        raise InvalidInputError(f"{name!r} is not a Cityscapes file name (<city>_<seq>_<frame>_leftImg8bit.png).")
    city = "_".join(parts[:-2])
    return Path(out_dir) / city / f"{stem}_leftImg8bit.png"


class IndexPngWriter:
    """Writes class-index predictions as 8-bit PNGs `<out>/<image stem>.png` (or
    `<out>/<index:06d>.png` when the input has no path).

    Args:
        out_dir: str or Path. The folder of the PNGs.

    Example:

    ```python
    writer = IndexPngWriter("predictions")
    writer(np.zeros((4, 6), np.uint8), "data/val/images/a.png")  # predictions/a.png
    ```
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.written: list[Path] = []

    def target(self, image_path, index: int | None = None) -> Path:
        """The file the prediction of `image_path` (or of input number `index`) goes to."""
        name = Path(image_path).stem if image_path is not None else f"{len(self.written) if index is None else index:06d}"
        return self.out_dir / f"{name}.png"

    def __call__(self, prediction: np.ndarray, image_path, index: int | None = None) -> Path:
        path = save_label(self.target(image_path, index), prediction)
        self.written.append(path)
        return path


class CityscapesResultWriter(IndexPngWriter):
    """Writes train-id predictions as Cityscapes label-id PNGs (benchmark-server format).

    Train ids 0..18 are mapped back to label ids (`TRAIN_ID_TO_LABEL_ID`); files go to
    `cityscapes_result_path`. Call as `writer(prediction, image_path)`.

    Args:
        out_dir: str or Path. The results folder (`CITYSCAPES_RESULTS`).

    Example:

    ```python
    writer = CityscapesResultWriter("results")
    writer(train_ids, "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png")
    ```
    """

    def target(self, image_path, index: int | None = None) -> Path:
        if image_path is None:
            raise InvalidInputError("Cityscapes result files are named after the input image; got no path.")
        return cityscapes_result_path(self.out_dir, image_path)

    def __call__(self, prediction: np.ndarray, image_path, index: int | None = None) -> Path:
        from spgnet_keras.data.cityscapes import train_ids_to_label_ids

        path = save_label(self.target(image_path, index), train_ids_to_label_ids(prediction))
        self.written.append(path)
        return path


def prediction_writer_for(out_dir, pairs: Sequence, *, cityscapes: bool = False, overwrite: bool = False,
                      option: str = "predictions_dir") -> IndexPngWriter:
    """The writer of the predictions of `pairs` into `out_dir`, its files checked first.

    Args:
        out_dir: str or Path. Where the predictions go.
        pairs: sequence of `(image, mask)` paths. The data evaluated: its files are never replaced.
        cityscapes: bool. Cityscapes label-id results (`CityscapesResultWriter`) instead of
            class-index PNGs.
        overwrite: bool. Whether earlier prediction files may be replaced.
        option: str. The argument that named `out_dir`, for the message.

    Raises:
        InvalidInputError: `out_dir` is inside a dataset, a prediction would replace an image
            or a mask of `pairs`, two images would write the same file, or (without
            `overwrite`) a file exists.
    """
    writer = (CityscapesResultWriter if cityscapes else IndexPngWriter)(out_dir)
    targets = [writer.target(image, index) for index, (image, _) in enumerate(pairs)]
    repeated = len(targets) - len(set(targets))
    if repeated:
        first = next(path for path in targets if targets.count(path) > 1)
        raise InvalidInputError(f"{option} {out_dir}: {repeated} image(s) share an output file name with another "
                                f"(e.g. {first}); predictions are named after the image's file name.")
    check_output_targets(out_dir, targets, overwrite=overwrite, protected=[path for pair in pairs for path in pair],
                         option=option)
    return writer
