"""Named datasets: their class descriptions (`dataset_spec`, which also gives the named
palettes and class names to the CLI and the figures) and their file lists (`dataset_files`)."""

from __future__ import annotations

from pathlib import Path

from spgnet_keras.data.camvid import CAMVID_SPEC, camvid_files
from spgnet_keras.data.cityscapes import CITYSCAPES_SPEC, cityscapes_files
from spgnet_keras.data.listing import Pair
from spgnet_keras.data.spec import DatasetNotFoundError, DatasetSpec
from spgnet_keras.errors import InvalidInputError

DATASET_NAMES = ("camvid", "cityscapes", "folder", "synthetic")
BUILTIN_SPECS = {"camvid": CAMVID_SPEC, "cityscapes": CITYSCAPES_SPEC}
"""Datasets whose classes and colours are known without a `meta.json`: `--palette camvid`."""


def builtin_spec(name: str) -> DatasetSpec | None:
    """The built-in description named `name` (any case; the palette and class names behind
    `--palette camvid` and `resolve_palette("cityscapes")`), or None."""
    return BUILTIN_SPECS.get(str(name).lower())


def dataset_spec(name: str, root: str | Path | None = None) -> DatasetSpec:
    """Returns the class description of a named dataset.

    Args:
        name: One of `"camvid"`, `"cityscapes"`, `"folder"`, `"synthetic"`.
        root: Dataset root; its `meta.json` is used when present (required for
            `"folder"` and `"synthetic"`).

    Returns:
        The `DatasetSpec`.

    Raises:
        ValueError: Unknown name.
        DatasetNotFoundError: `meta.json` required but missing.
    """
    if name not in DATASET_NAMES:
        raise InvalidInputError(f"Unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    if name == "cityscapes":
        return CITYSCAPES_SPEC
    meta = Path(root) / "meta.json" if root is not None else None
    if meta is not None and meta.is_file():
        return DatasetSpec.from_meta_json(meta, name=name)
    if name == "camvid":
        return CAMVID_SPEC
    raise DatasetNotFoundError(
        f"Dataset {name!r} needs its classes: there is no {meta} (a JSON object {{\"classes\": [names], "
        f"\"palette\": [[r, g, b], ...]}}); give a classes file (read_classes(FILE), --classes FILE) or the "
        "number of classes (num_classes=N, --num-classes N)")


def dataset_files(name: str, root: str | Path, split: str) -> list[Pair]:
    """Lists the `(image, mask)` pairs of a named dataset split.

    Args:
        name: One of `DATASET_NAMES`.
        root: Dataset root folder.
        split: Split name.

    Returns:
        `(image_path, mask_path)` pairs (Cityscapes masks are `*_labelIds.png`).
    """
    if name not in DATASET_NAMES:
        raise InvalidInputError(f"Unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    if name == "cityscapes":
        return cityscapes_files(root, split)
    try:
        return camvid_files(root, split)
    except DatasetNotFoundError as error:
        if name != "folder" or "folder of split" not in str(error):
            raise
        raise DatasetNotFoundError(
            f"{error}. Dataset 'folder' reads ROOT/<split>/images and ROOT/<split>/labels; for folders of other "
            "names, pass them as they are: folder_files(images_dir, masks_dir, ...) in Python, "
            "--images DIR --masks DIR on the command line") from None
