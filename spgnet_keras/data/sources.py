"""A user's dataset, as it is on disk, into training and validation pairs, classes and mask style.

The one door through which `spgnet train`, `spgnet evaluate` and `resolve_data` read
data: a named dataset (`camvid`, `cityscapes`, `synthetic`, or `folder` =
`ROOT/<split>/{images,labels}`), or folders of any names and file naming
(`spgnet_keras.data.listing.folder_files`), with list files, a held-out validation
fraction, a classes file and the mask options of `spgnet_keras.data.masks.MaskStyle`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from spgnet_keras.data.cityscapes import LABEL_ID_TO_TRAIN_ID
from spgnet_keras.data.class_files import read_classes
from spgnet_keras.data.listing import Pair, folder_files, is_csv_list, read_pair_list, split_pairs
from spgnet_keras.data.masks import MaskStyle, resolve_mask_format
from spgnet_keras.data.registry import DATASET_NAMES, dataset_files, dataset_spec
from spgnet_keras.data.spec import DatasetError, DatasetNotFoundError, DatasetSpec
from spgnet_keras.errors import InvalidInputError

DEFAULT_VAL_FRACTION = 0.1
"""Share of the pairs held out for validation when a dataset has no validation split."""


@dataclasses.dataclass(frozen=True)
class FolderNaming:
    """How image and mask files are named (the keyword arguments of `folder_files`).

    Attributes:
        image_suffix: str. The images' file ending, or None for any image extension.
        mask_suffix: str. The masks' file ending.
        image_prefix: str. What image file names start with.
        mask_prefix: str. What mask file names start with.
        recursive: bool. Also look in subfolders.

    Example:

    ```python
    naming = FolderNaming(mask_suffix="_mask.png")
    pairs = folder_files("data/images", "data/masks", **naming.arguments())
    ```
    """

    image_suffix: str | None = None
    mask_suffix: str = ".png"
    image_prefix: str = ""
    mask_prefix: str = ""
    recursive: bool = True

    def arguments(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """`"masks <name>_mask.png"`-style summary of the non-default naming ('' when default)."""
        parts = []
        if self.image_suffix or self.image_prefix:
            parts.append(f"images {self.image_prefix}<name>{self.image_suffix or '.<ext>'}")
        if self.mask_suffix != ".png" or self.mask_prefix:
            parts.append(f"masks {self.mask_prefix}<name>{self.mask_suffix}")
        return ", ".join(parts)


@dataclasses.dataclass
class ResolvedData:
    """What `resolve_data` found.

    Attributes:
        train_pairs: list of (str, str). Training `(image, mask)` paths.
        val_pairs: list of (str, str). Validation `(image, mask)` paths.
        spec: DatasetSpec. The classes (None: to be inferred from the masks, see
            `spgnet_keras.data.report.describe_data`).
        classes_source: str. Where the classes come from, for the report.
        style: MaskStyle. The mask options, `"auto"` resolved.
        base_table: array. The dataset's own label table (Cityscapes label id -> train id) or None.
        val_source: str. How the validation pairs were chosen, for the report.
        dataset: str. The dataset's name (`"folder"` for folders given as they are).

    Example:

    ```python
    data = resolve_data("folder", images="data/images", masks="data/masks", val_fraction=0.1)
    val = make_eval_dataset(data.val_pairs, mask_style=data.style, base_table=data.base_table)
    ```
    """

    train_pairs: list[Pair]
    val_pairs: list[Pair]
    spec: DatasetSpec | None
    classes_source: str
    style: MaskStyle
    base_table: np.ndarray | None
    val_source: str
    dataset: str

    def label_table(self) -> np.ndarray | None:
        """The composed `[256]` label table (`spgnet_keras.data.masks.label_table`)."""
        return self.style.arguments(self.base_table)["label_map"]

    def dataset_arguments(self) -> dict:
        """Mask keyword arguments of `make_dataset` / `validate_dataset` / `MaskReader`."""
        return self.style.arguments(self.base_table)


def _under(root: str | Path | None, path: str | Path | None) -> Path | None:
    """`path` read from `root` when it is relative (and `root` is given)."""
    if path is None:
        return None
    return Path(path) if root is None else Path(root) / path


def user_pairs(images, masks, split_list, naming: FolderNaming, what: str) -> list[Pair]:
    """Pairs of a folder (masks beside the images when `masks` is None), or of a CSV list alone."""
    if images is None:
        if split_list is not None and is_csv_list(split_list):
            return read_pair_list(split_list, None, masks)
        raise InvalidInputError(f"The {what} data need an image folder (--images DIR) or a CSV list of image,mask pairs.")
    return folder_files(images, masks, split_list=split_list, **naming.arguments())


def resolve_data(
    dataset: str = "folder",
    root: str | Path | None = None,
    *,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    val_images: str | Path | None = None,
    val_masks: str | Path | None = None,
    train_list: str | Path | None = None,
    val_list: str | Path | None = None,
    val_fraction: float | None = None,
    split_seed: int = 0,
    train_split: str = "train",
    val_split: str = "val",
    naming: FolderNaming = FolderNaming(),
    classes: str | Path | None = None,
    num_classes: int | None = None,
    style: MaskStyle = MaskStyle(mask_format="auto"),
    splits: str = "both",
) -> ResolvedData:
    """Finds a dataset's training and validation pairs, classes and mask style, files in place.

    Folders (`images` given, or a CSV `train_list`; `dataset` must be `"folder"`):
    training pairs from `images` + `masks` (masks beside the images when None), selected
    by `train_list`; validation pairs from `val_images` + `val_masks`, else from the same
    folders selected by `val_list` (Pascal VOC), else `val_fraction` of the training pairs
    (seeded by `split_seed`; `DEFAULT_VAL_FRACTION` when nothing else is given); with
    a `val_list` and no `train_list`, training takes every pair the list does not name.
    Relative paths are read from `root` when it is given. A named dataset (or `folder`
    with `root` only) reads `root`'s `train_split` / `val_split`.

    With `splits="val"` only the validation part is found (what `spgnet evaluate` reads):
    `val_images` (+ `val_masks`, `val_list`), or `root`'s `val_split`.

    Classes: the `classes` file (`spgnet_keras.data.class_files.read_classes`), else
    the named dataset's (or `root/meta.json`), else `num_classes` unnamed classes, else
    None: `spgnet_keras.data.report.describe_data` counts them in the masks.

    Raises:
        ValueError / DatasetError / DatasetNotFoundError: Missing folders, unpaired files (with
            the option that would pair them), contradictory options, naming the problem.
    """
    if dataset not in DATASET_NAMES:
        raise InvalidInputError(f"Unknown dataset {dataset!r}; expected one of {DATASET_NAMES}")
    if val_fraction is not None and (val_images is not None or val_list is not None):
        raise InvalidInputError("Give one source of validation pairs: a validation folder or list, or val_fraction.")
    if splits not in ("both", "val"):
        raise InvalidInputError(f"splits must be 'both' or 'val', got {splits!r}")
    folders = images is not None or train_list is not None or (splits == "val" and val_images is not None)
    if splits == "val" and folders:
        if dataset != "folder":
            raise InvalidInputError(f"Image folders are read as dataset 'folder', not {dataset!r}.")
        val_images, val_masks, val_list = _under(root, val_images), _under(root, val_masks), _under(root, val_list)
        train_pairs, val_pairs = [], user_pairs(val_images, val_masks, val_list, naming, "evaluation")
        val_source = f"{val_images}" + (f" (list {val_list})" if val_list else "")
    elif splits == "val":
        if root is None:
            raise InvalidInputError(f"Dataset {dataset!r} needs its root folder (--data ROOT), or give the folders "
                             "themselves (--images DIR --masks DIR).")
        if dataset == "folder" and not (Path(root) / val_split).is_dir() and (Path(root) / "images").is_dir():
            val_pairs = folder_files(Path(root) / "images", Path(root) / "labels", recursive=False)  # ROOT/{images,labels}
            val_source = f"{Path(root) / 'images'}"
        else:
            val_pairs = dataset_files(dataset, root, val_split)
            val_source = f"split {val_split!r} of {root}"
        train_pairs = []
    elif folders:
        if dataset != "folder":
            raise InvalidInputError(f"Image folders are read as dataset 'folder', not {dataset!r}.")
        train_pairs, val_pairs, val_source = _folder_splits(
            root, images, masks, val_images, val_masks, train_list, val_list, val_fraction, split_seed, naming)
    else:
        if root is None:
            raise InvalidInputError(f"Dataset {dataset!r} needs its root folder (--data ROOT), or give the folders "
                             "themselves (--images DIR --masks DIR).")
        if any(v is not None for v in (masks, val_images, val_masks, val_list)):
            raise InvalidInputError("--masks, --val-images, --val-masks and --val-list need --images (or a CSV --train-list).")
        train_pairs = dataset_files(dataset, root, train_split)
        if val_fraction is not None:
            train_pairs, val_pairs = split_pairs(train_pairs, val_fraction, split_seed)
            val_source = f"{len(val_pairs)} of the {train_split} pairs held out (val_fraction {val_fraction}, seed {split_seed})"
        else:
            val_pairs = dataset_files(dataset, root, val_split)
            val_source = f"split {val_split!r} of {root}"
    spec, classes_source = _classes(dataset, root, classes, num_classes, folders)
    mask_paths = [mask for _, mask in train_pairs + val_pairs]
    style = dataclasses.replace(style, mask_format=resolve_mask_format(style.mask_format, mask_paths))  # headers read once
    if style.palette is None and spec is not None and style.mask_format == "color":
        if not spec.palette_given:
            raise DatasetError(f"The masks (e.g. {mask_paths[0]}) are colour-coded RGB PNGs, but the classes "
                               f"({classes_source}) have no colours: give each class its colour (a 'name,r,g,b' "
                               "line per class)")
        style = dataclasses.replace(style, palette=spec.palette)  # colour masks painted in the classes' colours
    style = style.resolved(mask_paths)
    base = LABEL_ID_TO_TRAIN_ID if dataset == "cityscapes" else None
    return ResolvedData(train_pairs, val_pairs, spec, classes_source, style, base, val_source, dataset)


def _folder_splits(root, images, masks, val_images, val_masks, train_list, val_list, val_fraction, split_seed,
                   naming):
    images, masks = _under(root, images), _under(root, masks)
    train_list, val_list = _under(root, train_list), _under(root, val_list)
    if val_images is not None:
        val_images, val_masks = _under(root, val_images), _under(root, val_masks)
        if val_masks is None and masks is not None:
            raise InvalidInputError("--val-images needs --val-masks (the masks are not beside the images: --masks was given).")
        train_pairs = user_pairs(images, masks, train_list, naming, "training")
        val_pairs = user_pairs(val_images, val_masks, val_list, naming, "validation")
        return train_pairs, val_pairs, f"{val_images}" + (f" (list {val_list})" if val_list else "")
    if val_list is not None:
        val_pairs = user_pairs(images, masks, val_list, naming, "validation")
        if train_list is not None:
            train_pairs = user_pairs(images, masks, train_list, naming, "training")
        else:
            held_out = set(val_pairs)
            train_pairs = [pair for pair in user_pairs(images, masks, None, naming, "training") if pair not in held_out]
            if not train_pairs:
                raise DatasetNotFoundError(f"Every pair is in the validation list {val_list}: none is left to train on.")
        return train_pairs, val_pairs, f"list {val_list}"
    fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    pairs = user_pairs(images, masks, train_list, naming, "training")
    try:
        train_pairs, val_pairs = split_pairs(pairs, fraction, split_seed)
    except DatasetError as error:
        raise DatasetError(f"{error}; give validation folders (--val-images DIR --val-masks DIR)") from None
    default = " (no validation split given)" if val_fraction is None else ""
    return train_pairs, val_pairs, (f"{len(val_pairs)} of {len(pairs)} pairs held out{default}: "
                                    f"val_fraction {fraction}, seed {split_seed}")


def _classes(dataset, root, classes, num_classes, from_folders):
    """(spec or None, where it comes from)."""
    if classes is not None:
        spec = read_classes(_under(root, classes) if not Path(classes).is_file() else classes)
        if num_classes is not None and num_classes != spec.num_classes:
            raise InvalidInputError(f"num_classes={num_classes} disagrees with the {spec.num_classes} classes of {classes}.")
        return spec, f"classes file {classes}"
    if not from_folders and root is not None:
        try:
            spec = dataset_spec(dataset, root)
        except DatasetNotFoundError:
            spec = None
        if spec is not None:
            if num_classes is not None and num_classes != spec.num_classes:
                raise InvalidInputError(f"num_classes={num_classes} disagrees with the {spec.num_classes} classes of "
                                 f"dataset {dataset!r} at {root}.")
            return spec, ("the dataset's meta.json" if (Path(root) / "meta.json").is_file()
                          else f"dataset {dataset!r}")
    if root is not None and from_folders and (Path(root) / "meta.json").is_file():
        return dataset_spec("folder", root), f"{Path(root) / 'meta.json'}"
    if num_classes is not None:
        return DatasetSpec.with_defaults(num_classes, name=dataset), f"num_classes={num_classes} (unnamed)"
    return None, "counted in the masks"


DATA_RECORD = "data.json"
"""The file of a run folder that records its data (`data_record`)."""


def data_record(resolved: ResolvedData, spec: DatasetSpec, report: dict | None = None) -> dict:
    """JSON-ready record of a run's data: both splits (absolute paths), the classes, the mask
    style and the composed label table, and the dataset check's figures."""
    table = resolved.label_table()

    def absolute(pairs):
        return [[os.path.abspath(image), os.path.abspath(mask)] for image, mask in pairs]

    return {
        "dataset": resolved.dataset,
        "train": absolute(resolved.train_pairs),
        "val": absolute(resolved.val_pairs),
        "val_source": resolved.val_source,
        "classes": {"names": list(spec.class_names), "palette": [list(c) for c in spec.palette],
                    "ignore_index": spec.ignore_index, "source": resolved.classes_source},
        "mask_style": resolved.style.to_dict(),
        "label_table": None if table is None else [int(v) for v in table],
        "report": report,
    }


def read_data_record(path: str | Path) -> tuple[ResolvedData, DatasetSpec]:
    """The data a run recorded (`data_record`), as `(ResolvedData, DatasetSpec)`.

    Raises:
        ValueError: The file is missing or not such a record (names it).
    """
    import json

    path = Path(path)
    try:
        record = json.loads(path.read_text())
        classes = record["classes"]
        spec = DatasetSpec(num_classes=len(classes["names"]), class_names=tuple(classes["names"]),
                           palette=tuple(map(tuple, classes["palette"])), ignore_index=classes["ignore_index"],
                           name=record["dataset"])
        table = record["label_table"]
        resolved = ResolvedData(
            [tuple(pair) for pair in record["train"]], [tuple(pair) for pair in record["val"]], spec,
            classes.get("source", str(path)), MaskStyle.from_dict({**record["mask_style"], "label_map": None,
                                                                   "reduce_zero_label": False}),
            None if table is None else np.asarray(table, np.int64), record["val_source"], record["dataset"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(f"Cannot read the run's data record {path}: {error}") from None
    return resolved, spec
