"""Cityscapes label definitions and file listing (official `cityscapesScripts` conventions).

The table below is copied from `cityscapesscripts/helpers/labels.py`: 34 label ids (0..33),
of which 19 are evaluated ("train ids" 0..18); the rest map to the ignore label 255. The
`license plate` entry (id -1) never appears in label images and is left out.

Benchmark-server submissions must be PNGs of *label ids*, so `TRAIN_ID_TO_LABEL_ID`
and `train_ids_to_label_ids` convert predictions back.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.spec import DatasetNotFoundError, DatasetSpec
from spgnet_keras.errors import InvalidInputError


class CityscapesLabel(NamedTuple):
    """One row of the official Cityscapes label table.

    Example:

    ```python
    road = CITYSCAPES_LABELS[7]  # CityscapesLabel("road", 7, 0, "flat", (128, 64, 128))
    ```
    """

    name: str
    id: int
    train_id: int
    category: str
    color: tuple[int, int, int]


# fmt: off
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled",             0, 255, "void",         (0, 0, 0)),
    CityscapesLabel("ego vehicle",           1, 255, "void",         (0, 0, 0)),
    CityscapesLabel("rectification border",  2, 255, "void",         (0, 0, 0)),
    CityscapesLabel("out of roi",            3, 255, "void",         (0, 0, 0)),
    CityscapesLabel("static",                4, 255, "void",         (0, 0, 0)),
    CityscapesLabel("dynamic",               5, 255, "void",         (111, 74, 0)),
    CityscapesLabel("ground",                6, 255, "void",         (81, 0, 81)),
    CityscapesLabel("road",                  7,   0, "flat",         (128, 64, 128)),
    CityscapesLabel("sidewalk",              8,   1, "flat",         (244, 35, 232)),
    CityscapesLabel("parking",               9, 255, "flat",         (250, 170, 160)),
    CityscapesLabel("rail track",           10, 255, "flat",         (230, 150, 140)),
    CityscapesLabel("building",             11,   2, "construction", (70, 70, 70)),
    CityscapesLabel("wall",                 12,   3, "construction", (102, 102, 156)),
    CityscapesLabel("fence",                13,   4, "construction", (190, 153, 153)),
    CityscapesLabel("guard rail",           14, 255, "construction", (180, 165, 180)),
    CityscapesLabel("bridge",               15, 255, "construction", (150, 100, 100)),
    CityscapesLabel("tunnel",               16, 255, "construction", (150, 120, 90)),
    CityscapesLabel("pole",                 17,   5, "object",       (153, 153, 153)),
    CityscapesLabel("polegroup",            18, 255, "object",       (153, 153, 153)),
    CityscapesLabel("traffic light",        19,   6, "object",       (250, 170, 30)),
    CityscapesLabel("traffic sign",         20,   7, "object",       (220, 220, 0)),
    CityscapesLabel("vegetation",           21,   8, "nature",       (107, 142, 35)),
    CityscapesLabel("terrain",              22,   9, "nature",       (152, 251, 152)),
    CityscapesLabel("sky",                  23,  10, "sky",          (70, 130, 180)),
    CityscapesLabel("person",               24,  11, "human",        (220, 20, 60)),
    CityscapesLabel("rider",                25,  12, "human",        (255, 0, 0)),
    CityscapesLabel("car",                  26,  13, "vehicle",      (0, 0, 142)),
    CityscapesLabel("truck",                27,  14, "vehicle",      (0, 0, 70)),
    CityscapesLabel("bus",                  28,  15, "vehicle",      (0, 60, 100)),
    CityscapesLabel("caravan",              29, 255, "vehicle",      (0, 0, 90)),
    CityscapesLabel("trailer",              30, 255, "vehicle",      (0, 0, 110)),
    CityscapesLabel("train",                31,  16, "vehicle",      (0, 80, 100)),
    CityscapesLabel("motorcycle",           32,  17, "vehicle",      (0, 0, 230)),
    CityscapesLabel("bicycle",              33,  18, "vehicle",      (119, 11, 32)),
)
# fmt: on

_EVALUATED = sorted((lab for lab in CITYSCAPES_LABELS if lab.train_id != IGNORE_LABEL),
                    key=lambda lab: lab.train_id)

CITYSCAPES_NUM_CLASSES = 19
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(lab.name for lab in _EVALUATED)
"""Names of the 19 evaluated classes, indexed by train id."""
CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = tuple(lab.color for lab in _EVALUATED)
"""Official colour of each of the 19 evaluated classes, indexed by train id."""


def _build_label_id_to_train_id() -> np.ndarray:
    """Builds the 256-entry lookup table label id -> train id (255 for anything else)."""
    table = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    for lab in CITYSCAPES_LABELS:
        table[lab.id] = lab.train_id
    return table


LABEL_ID_TO_TRAIN_ID: np.ndarray = _build_label_id_to_train_id()
"""`uint8[256]`: `LABEL_ID_TO_TRAIN_ID[label_id]` is the train id (255 = ignore).

Indexable by any uint8 value, so unexpected ids (34..255) also map to 255.
"""

TRAIN_ID_TO_LABEL_ID: np.ndarray = np.array([lab.id for lab in _EVALUATED], dtype=np.uint8)
"""`uint8[19]`: label id of each train id, for writing benchmark-server PNGs."""


CITYSCAPES_SPEC = DatasetSpec(
    num_classes=CITYSCAPES_NUM_CLASSES,
    class_names=CITYSCAPES_CLASSES,
    palette=CITYSCAPES_PALETTE,
    ignore_index=IGNORE_LABEL,
    name="cityscapes",
)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
SPLITS = ("train", "val", "test")


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Maps a Cityscapes label-id image to train ids with numpy.

    Args:
        label_ids: Integer array of label ids (any shape), values 0..255.

    Returns:
        `uint8` array of the same shape with train ids 0..18 or 255.
    """
    return LABEL_ID_TO_TRAIN_ID[np.asarray(label_ids).astype(np.int64)]


def train_ids_to_label_ids(train_ids: np.ndarray, ignore_as: int = 0) -> np.ndarray:
    """Maps train-id predictions back to official label ids (benchmark-server format).

    Args:
        train_ids: Integer array of train ids 0..18; 255 is allowed.
        ignore_as: Label id written where `train_ids` is 255 (0 = `unlabeled`).

    Returns:
        `uint8` array of the same shape with label ids.

    Raises:
        ValueError: If a value is neither a train id nor 255.
    """
    train_ids = np.asarray(train_ids).astype(np.int64)
    bad = np.unique(train_ids[(train_ids >= CITYSCAPES_NUM_CLASSES) & (train_ids != IGNORE_LABEL)])
    bad = np.union1d(bad, np.unique(train_ids[train_ids < 0]))
    if bad.size:
        raise InvalidInputError(f"Not Cityscapes train ids: {bad.tolist()[:10]}")
    table = np.full(256, ignore_as, dtype=np.uint8)
    table[:CITYSCAPES_NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
    return table[train_ids]


def cityscapes_files(root: str | Path, split: str) -> list[tuple[str, str]]:
    """Lists (image, labelIds) pairs of a Cityscapes split in the official layout.

    Expects `root/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png` and
    `root/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`.

    Args:
        root: Cityscapes root folder (the one holding `leftImg8bit` and `gtFine`).
        split: `"train"`, `"val"` or `"test"`.

    Returns:
        Sorted list of `(image_path, label_ids_path)` string pairs.

    Raises:
        ValueError: For an unknown split.
        DatasetNotFoundError: (a `FileNotFoundError` and `ValueError`) if a folder is
            missing, the split has no images, or an image has no `_gtFine_labelIds.png`
            (the message names the file).
    """
    if split not in SPLITS:
        raise InvalidInputError(f"Unknown Cityscapes split {split!r}; expected one of {SPLITS}")
    root = Path(root)
    image_dir = root / "leftImg8bit" / split
    label_dir = root / "gtFine" / split
    for folder in (root, image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"Cityscapes folder not found: {folder} (expected root/leftImg8bit/{split}/<city>/ "
                f"and root/gtFine/{split}/<city>/)"
            )
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetNotFoundError(f"No *{IMAGE_SUFFIX} files under {image_dir}/<city>/")
    pairs = []
    for image in images:
        stem = image.name[: -len(IMAGE_SUFFIX)]
        label = label_dir / image.parent.name / f"{stem}{LABEL_IDS_SUFFIX}"
        if not label.is_file():
            raise DatasetNotFoundError(f"No label file for {image}: expected {label}")
        pairs.append((str(image), str(label)))
    return pairs
