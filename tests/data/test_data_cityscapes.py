"""Cityscapes label tables, file listing and in-graph id -> trainId mapping on a real frame."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spgnet_keras.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CITYSCAPES_SPEC,
    LABEL_ID_TO_TRAIN_ID,
    TRAIN_ID_TO_LABEL_ID,
    DatasetNotFoundError,
    cityscapes_files,
    label_ids_to_train_ids,
    make_dataset,
    train_ids_to_label_ids,
)

STEM = "frankfurt_000000_000294"


def _uniform_3x3(labels: np.ndarray) -> np.ndarray:
    """True where all 8 neighbours (edge-replicated) equal the centre pixel."""
    padded = np.pad(labels, 1, mode="edge")
    height, width = labels.shape
    uniform = np.ones(labels.shape, bool)
    for dy in range(3):
        for dx in range(3):
            uniform &= padded[dy:dy + height, dx:dx + width] == labels
    return uniform


def test_table_has_official_19_classes():
    assert len(CITYSCAPES_CLASSES) == 19 == CITYSCAPES_SPEC.num_classes
    assert CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[13] == "car"
    assert CITYSCAPES_CLASSES[-1] == "bicycle"
    assert len(CITYSCAPES_PALETTE) == 19 and CITYSCAPES_PALETTE[0] == (128, 64, 128)
    assert CITYSCAPES_PALETTE[13] == (0, 0, 142)
    assert LABEL_ID_TO_TRAIN_ID[7] == 0 and LABEL_ID_TO_TRAIN_ID[26] == 13
    assert LABEL_ID_TO_TRAIN_ID[0] == 255 and LABEL_ID_TO_TRAIN_ID[33] == 18
    assert (LABEL_ID_TO_TRAIN_ID[34:] == 255).all()
    evaluated = np.flatnonzero(LABEL_ID_TO_TRAIN_ID != 255)
    assert evaluated.tolist() == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                  31, 32, 33]
    # Inverse map: trainId -> labelId -> trainId is the identity.
    np.testing.assert_array_equal(LABEL_ID_TO_TRAIN_ID[TRAIN_ID_TO_LABEL_ID], np.arange(19))


def test_train_ids_to_label_ids_for_submission():
    predictions = np.array([[0, 13, 18], [255, 10, 2]])
    np.testing.assert_array_equal(train_ids_to_label_ids(predictions),
                                  [[7, 26, 33], [0, 23, 11]])
    with pytest.raises(ValueError, match="19"):
        train_ids_to_label_ids(np.array([19]))


def test_real_frame_mapping_matches_shipped_train_ids(cityscapes_root):
    folder = cityscapes_root / "gtFine/val/frankfurt"
    label_ids = np.array(Image.open(folder / f"{STEM}_gtFine_labelIds.png"))
    shipped = np.array(Image.open(folder / f"{STEM}_gtFine_labelTrainIds.png"))
    mapped = label_ids_to_train_ids(label_ids)
    assert mapped.dtype == np.uint8 and mapped.shape == shipped.shape == (128, 256)
    assert (mapped == shipped).mean() >= 0.995
    # The two files were resized separately, so they may only disagree near boundaries:
    # wherever both are constant over a 3x3 neighbourhood they must agree exactly.
    interior = _uniform_3x3(label_ids) & _uniform_3x3(shipped)
    assert interior.mean() > 0.75
    np.testing.assert_array_equal(mapped[interior], shipped[interior])


def test_pipeline_applies_mapping_in_graph(cityscapes_root):
    pairs = cityscapes_files(cityscapes_root, "val")
    assert [(Path(i).name, Path(m).name) for i, m in pairs] == [
        (f"{STEM}_leftImg8bit.png", f"{STEM}_gtFine_labelIds.png")]
    images, masks = next(iter(make_dataset("cityscapes", "val", root=cityscapes_root,
                                           batch_size=1)))
    assert images.shape == (1, 128, 256, 3) and masks.shape == (1, 128, 256)
    expected = label_ids_to_train_ids(np.array(Image.open(pairs[0][1])))
    np.testing.assert_array_equal(masks.numpy()[0], expected)


def test_listing_errors(tmp_path, cityscapes_root):
    with pytest.raises(ValueError, match="split"):
        cityscapes_files(cityscapes_root, "training")
    with pytest.raises(DatasetNotFoundError, match="leftImg8bit"):
        cityscapes_files(cityscapes_root, "train")  # the sample only has val
    image_dir = tmp_path / "leftImg8bit/val/aachen"
    image_dir.mkdir(parents=True)
    (tmp_path / "gtFine/val/aachen").mkdir(parents=True)
    Image.new("RGB", (8, 4)).save(image_dir / "aachen_000000_000019_leftImg8bit.png")
    with pytest.raises(FileNotFoundError, match="aachen_000000_000019_leftImg8bit.png"):
        cityscapes_files(tmp_path, "val")
