"""CamVid (real files): listing, eager validation and the tf.data pipeline."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from spgnet_keras.constants import IMAGENET_MEAN
from spgnet_keras.data import (
    CAMVID_SPEC,
    camvid_files,
    dataset_spec,
    make_dataset,
    validate_dataset,
)

VALID_LABELS = set(range(11)) | {255}
MEAN_COLOUR = np.float32(IMAGENET_MEAN)


def test_listing_follows_split_files(camvid_root):
    for split, count in (("train", 367), ("val", 101)):
        pairs = camvid_files(camvid_root, split)
        stems = (camvid_root / f"{split}.txt").read_text().split()
        assert len(pairs) == count == len(stems)
        assert [Path(i).stem for i, _ in pairs] == stems
        assert all(Path(m).parent.name == "labels" and Path(m).stem == Path(i).stem
                   for i, m in pairs)


def test_spec_matches_meta(camvid_root):
    spec = dataset_spec("camvid", camvid_root)
    assert spec.class_names == CAMVID_SPEC.class_names and spec.palette == CAMVID_SPEC.palette
    assert spec.ignore_index == 255
    assert spec.num_classes == 11 and spec.class_names[3] == "Road"


def test_validate_counts_match_published_stats(camvid_root):
    report = validate_dataset(camvid_files(camvid_root, "train"), num_classes=11)
    stats = json.loads((camvid_root / "meta.json").read_text())["stats"]["train"]
    assert report.num_pairs == stats["n"] == 367
    assert report.class_pixel_counts.tolist() == [stats["counts"][c]
                                                  for c in CAMVID_SPEC.class_names]
    assert report.ignore_pixels == stats["counts"]["void(255)"]
    assert report.image_sizes == {(180, 240)}


def test_training_batches(camvid_root):
    dataset = make_dataset("camvid", "train", root=camvid_root, batch_size=8,
                           crop_size=(176, 240), training=True, seed=3)
    assert dataset.element_spec[0].shape == (8, 176, 240, 3)
    for images, masks in dataset.take(3):
        assert images.dtype == "float32" and masks.dtype == "int32"
        assert images.shape == (8, 176, 240, 3) and masks.shape == (8, 176, 240)
        values = images.numpy()
        # RGB in [0, 255], not normalised: the model normalises its own input (padding
        # with the mean colour is inside this range too).
        assert values.min() >= 0.0 and values.max() <= 255.0
        assert values.max() > 200.0  # not [0, 1] nor normalised (whose max is about 2.6)
        assert values.std() > 20.0
        assert set(np.unique(masks.numpy()).tolist()) <= VALID_LABELS
        assert len(np.unique(masks.numpy())) >= 5


def test_eval_padding_to_multiple_of_32(camvid_root):
    pairs = camvid_files(camvid_root, "val")[:3]
    dataset = make_dataset(pairs, batch_size=3, pad_to_multiple=32)
    images, masks = next(iter(dataset))
    assert images.shape == (3, 192, 256, 3) and masks.shape == (3, 192, 256)
    for index, (image_path, mask_path) in enumerate(pairs):
        expected_image = np.asarray(Image.open(image_path), np.float32)  # RGB 0-255
        np.testing.assert_array_equal(images[index, :180, :240].numpy(), expected_image)
        np.testing.assert_array_equal(masks[index, :180, :240].numpy(),
                                      np.asarray(Image.open(mask_path)))
    # Images are padded with the ImageNet mean colour (0 after the model's normalisation).
    assert (images.numpy()[:, 180:] == MEAN_COLOUR).all() and (images.numpy()[:, :, 240:] == MEAN_COLOUR).all()
    assert (masks.numpy()[:, 180:] == 255).all() and (masks.numpy()[:, :, 240:] == 255).all()


def test_eval_full_image_batch_of_one(camvid_root):
    dataset = make_dataset("camvid", "val", root=camvid_root, batch_size=1)
    images, masks = next(iter(dataset))
    assert images.shape == (1, 180, 240, 3) and masks.shape == (1, 180, 240)
    assert set(np.unique(masks.numpy()).tolist()) <= VALID_LABELS
