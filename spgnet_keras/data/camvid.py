"""CamVid (Brostow et al. 2008; the 11-class SegNet version): class names, colours and the
`root/<split>/{images,labels}` folder layout (also used by `"folder"` and `"synthetic"`)."""

from __future__ import annotations

from pathlib import Path

from spgnet_keras.constants import IGNORE_LABEL
from spgnet_keras.data.listing import Pair, folder_files, require_dir
from spgnet_keras.data.spec import DatasetSpec

CAMVID_SPEC = DatasetSpec(
    num_classes=11,
    class_names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                 "Fence", "Car", "Pedestrian", "Bicyclist"),
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
             (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
             (0, 128, 192)),
    ignore_index=IGNORE_LABEL,
    name="camvid",
)
"""CamVid 11-class description (same as the shipped `meta.json`)."""


def camvid_files(root: str | Path, split: str) -> list[Pair]:
    """Lists pairs of a CamVid-style folder dataset: `root/<split>/{images,labels}`.

    If `root/<split>.txt` exists its stems define the split (in that order) and every
    listed stem must have both files; otherwise the two folders are paired by stem with
    `folder_files`. The synthetic dataset uses the same layout. Other folder names and
    file names: `folder_files` with the folders and suffixes of the data as it is.

    Args:
        root: Dataset root.
        split: Split name, e.g. `"train"` or `"val"`.

    Returns:
        `(image_path, mask_path)` string pairs.

    Raises:
        DatasetNotFoundError: If a folder or a listed file is missing (names it).
    """
    root = require_dir(root, "Dataset root")
    images_dir = require_dir(root / split / "images", f"Image folder of split {split!r}")
    masks_dir = require_dir(root / split / "labels", f"Label folder of split {split!r}")
    split_list = root / f"{split}.txt"
    return folder_files(images_dir, masks_dir, split_list=split_list if split_list.is_file() else None,
                        recursive=False)
