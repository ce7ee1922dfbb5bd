"""The SYNTHETIC street-scene generator: determinism, class coverage, folder round trip."""

import json

import numpy as np
from PIL import Image

from spgnet_keras.data import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_SPEC,
    camvid_files,
    dataset_spec,
    make_dataset,
    make_synthetic_dataset,
    validate_dataset,
    write_synthetic_folder,
)

ALWAYS_VISIBLE = {0, 1, 2, 3}  # sky, building, road, sidewalk


def test_class_list():
    assert SYNTHETIC_CLASSES == ("sky", "building", "road", "sidewalk", "car", "pole",
                                 "person", "vegetation")
    assert SYNTHETIC_SPEC.num_classes == 8 and len(SYNTHETIC_SPEC.palette) == 8


def test_deterministic_from_seed_and_independent_of_count():
    images, labels = make_synthetic_dataset(4, 64, 128, seed=3)
    again_images, again_labels = make_synthetic_dataset(6, 64, 128, seed=3)
    np.testing.assert_array_equal(images, again_images[:4])
    np.testing.assert_array_equal(labels, again_labels[:4])
    other_images, _ = make_synthetic_dataset(4, 64, 128, seed=4)
    assert not np.array_equal(images, other_images)
    val_images, _ = make_synthetic_dataset(4, 64, 128, seed=3, split="val")
    assert not np.array_equal(images, val_images)
    assert len({image.tobytes() for image in images}) == 4


def test_shapes_and_class_coverage():
    images, labels = make_synthetic_dataset(16, 96, 160, seed=0)
    assert images.shape == (16, 96, 160, 3) and images.dtype == np.uint8
    assert labels.shape == (16, 96, 160) and labels.dtype == np.uint8
    assert labels.max() < 8
    for label in labels:
        assert ALWAYS_VISIBLE <= set(np.unique(label).tolist())
    fractions = np.bincount(labels.ravel(), minlength=8) / labels.size
    assert (fractions > 0.002).all(), fractions  # every class present, none negligible
    assert fractions.max() < 0.5
    # Classes are told apart by colour: mean colours are pairwise distinct.
    means = np.array([images[labels == c].mean(axis=0) for c in range(8)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert distances[~np.eye(8, dtype=bool)].min() > 10


def test_written_folder_reads_like_any_dataset(tmp_path):
    root = write_synthetic_folder(tmp_path / "synthetic", num_train=4, num_val=2,
                                  size=(64, 96), seed=5)
    meta = json.loads((root / "meta.json").read_text())
    assert meta["synthetic"] is True and meta["classes"] == list(SYNTHETIC_CLASSES)
    assert dataset_spec("synthetic", root).palette == SYNTHETIC_SPEC.palette
    pairs = camvid_files(root, "train")
    assert len(pairs) == 4 and len(camvid_files(root, "val")) == 2
    images, labels = make_synthetic_dataset(4, 64, 96, seed=5)
    np.testing.assert_array_equal(np.asarray(Image.open(pairs[2][0])), images[2])
    np.testing.assert_array_equal(np.asarray(Image.open(pairs[2][1])), labels[2])
    report = validate_dataset(pairs, num_classes=8)
    assert report.class_pixel_counts.sum() == 4 * 64 * 96
    assert meta["stats"]["train"]["counts"]["road"] == report.class_pixel_counts[2]
    batch_images, batch_masks = next(iter(make_dataset("synthetic", "val", root=root,
                                                       batch_size=2, pad_to_multiple=True)))
    assert batch_images.shape == (2, 64, 96, 3) and batch_masks.shape == (2, 64, 96)
