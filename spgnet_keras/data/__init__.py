"""Data loading for SPGNet: dataset listing, validation, tf.data pipelines, augmentation.

Public API:

* `DatasetSpec`, `CAMVID_SPEC` (`camvid`), `CITYSCAPES_SPEC`
  (`cityscapes`), `SYNTHETIC_SPEC` (`synthetic`); `dataset_spec`,
  `dataset_files` (`registry`)
* your data as it is: `folder_files` (any folder names, suffixes, nesting, list
  files), `read_pair_list`, `split_pairs` (`listing`); `read_classes`
  (`class_files`); `resolve_data` (named datasets or folders, validation split,
  classes, mask style: `sources`); `describe_data` (pairs, sizes, class shares,
  absent classes, median-frequency weights: `report`)
* `camvid_files`, `cityscapes_files`; `list_images` for inference
* `load_image`, `load_label` and the one decoding rule (`decoding`); mask formats,
  label maps and `MaskStyle` (`masks`); `MaskReader` (`validation`)
* `validate_dataset` (`validation`: eager, the pipeline's decoder) and the `tf.data`
  builders `make_train_dataset`, `make_eval_dataset` and `make_dataset` (either, by
  `training`) (`builders`; graph stages in `pipeline`)
* `augment_pair` and the individual seeded transforms in `.augment`
* Cityscapes tables: `LABEL_ID_TO_TRAIN_ID`, `TRAIN_ID_TO_LABEL_ID`,
  `label_ids_to_train_ids`, `train_ids_to_label_ids`
* SYNTHETIC street scenes: `make_synthetic_dataset`, `write_synthetic_folder`
"""

from spgnet_keras.data.augment import (
    SCALES,
    augment_pair,
    pad_bottom_right,
    pad_to_multiple,
    random_crop,
    random_horizontal_flip,
    random_scale,
)
from spgnet_keras.data.builders import make_dataset, make_eval_dataset, make_train_dataset
from spgnet_keras.data.camvid import CAMVID_SPEC, camvid_files
from spgnet_keras.data.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    CITYSCAPES_PALETTE,
    CITYSCAPES_SPEC,
    LABEL_ID_TO_TRAIN_ID,
    TRAIN_ID_TO_LABEL_ID,
    cityscapes_files,
    label_ids_to_train_ids,
    train_ids_to_label_ids,
)
from spgnet_keras.data.class_files import read_classes
from spgnet_keras.data.decoding import IMAGE_EXTENSIONS, load_image, load_label
from spgnet_keras.data.listing import folder_files, list_images, read_pair_list, split_pairs
from spgnet_keras.data.masks import MaskStyle, label_table
from spgnet_keras.data.pipeline import decode_image
from spgnet_keras.data.registry import DATASET_NAMES, dataset_files, dataset_spec
from spgnet_keras.data.report import DataReport, describe_data
from spgnet_keras.data.sources import FolderNaming, ResolvedData, resolve_data
from spgnet_keras.data.spec import DatasetError, DatasetNotFoundError, DatasetSpec
from spgnet_keras.data.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_PALETTE,
    SYNTHETIC_SPEC,
    make_synthetic_dataset,
    write_synthetic_folder,
)
from spgnet_keras.data.validation import MaskReader, ValidationReport, validate_dataset

__all__ = [
    "CAMVID_SPEC",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "CITYSCAPES_PALETTE",
    "CITYSCAPES_SPEC",
    "DATASET_NAMES",
    "DatasetError",
    "DatasetNotFoundError",
    "DataReport",
    "DatasetSpec",
    "FolderNaming",
    "IMAGE_EXTENSIONS",
    "LABEL_ID_TO_TRAIN_ID",
    "MaskReader",
    "MaskStyle",
    "ResolvedData",
    "SCALES",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_PALETTE",
    "SYNTHETIC_SPEC",
    "TRAIN_ID_TO_LABEL_ID",
    "ValidationReport",
    "augment_pair",
    "camvid_files",
    "cityscapes_files",
    "dataset_files",
    "dataset_spec",
    "decode_image",
    "describe_data",
    "folder_files",
    "label_ids_to_train_ids",
    "label_table",
    "list_images",
    "load_image",
    "load_label",
    "make_dataset",
    "make_eval_dataset",
    "make_train_dataset",
    "make_synthetic_dataset",
    "pad_bottom_right",
    "pad_to_multiple",
    "random_crop",
    "random_horizontal_flip",
    "random_scale",
    "read_classes",
    "read_pair_list",
    "resolve_data",
    "split_pairs",
    "train_ids_to_label_ids",
    "validate_dataset",
    "write_synthetic_folder",
]
