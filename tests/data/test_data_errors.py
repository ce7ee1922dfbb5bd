"""Bad inputs fail with errors that name the offending file (eagerly and in the graph)."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras.data import (
    DatasetError,
    DatasetNotFoundError,
    folder_files,
    make_dataset,
    validate_dataset,
)

PALETTE = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]


def _write_rgb(path, height=8, width=12, value=100):
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(path)
    return str(path)


def _write_labels(path, labels):
    Image.fromarray(np.asarray(labels, np.uint8), "L").save(path)
    return str(path)


def _labels(height=8, width=12):
    labels = np.zeros((height, width), np.uint8)
    labels[:, width // 2:] = 1
    return labels


def _iterate(dataset):
    return [(images.numpy(), masks.numpy()) for images, masks in dataset]


@pytest.fixture
def folders(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    return images, masks


def test_unreadable_image_is_named(folders):
    images, masks = folders
    (images / "broken.png").write_text("this is not an image")
    _write_labels(masks / "broken.png", _labels())
    pairs = folder_files(images, masks)
    with pytest.raises(DatasetError, match="broken.png"):
        validate_dataset(pairs, num_classes=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Unreadable image.*broken\.png"):
        _iterate(make_dataset(pairs, batch_size=1))


def test_image_without_mask(folders):
    images, masks = folders
    _write_rgb(images / "a.png")
    _write_labels(masks / "a.png", _labels())
    _write_rgb(images / "lonely.jpg")
    with pytest.raises(ValueError, match="lonely.jpg"):
        folder_files(images, masks)
    with pytest.warns(UserWarning, match="lonely.jpg"):
        pairs = folder_files(images, masks, skip_unpaired=True)
    assert [p[0].endswith("a.png") for p in pairs] == [True]


def test_supported_extensions_and_channel_conversion(folders):
    images, masks = folders
    gray = np.arange(96, dtype=np.uint8).reshape(8, 12)
    Image.fromarray(gray, "L").save(images / "gray.bmp")
    rgba = np.dstack([np.full((8, 12), c, np.uint8) for c in (10, 20, 30, 0)])
    Image.fromarray(rgba, "RGBA").save(images / "rgba.png")
    Image.fromarray(np.full((8, 12, 3), 200, np.uint8)).save(images / "photo.JPEG")
    (images / "notes.txt").write_text("ignored")
    for stem in ("gray", "rgba", "photo"):
        _write_labels(masks / f"{stem}.png", _labels())
    pairs = folder_files(images, masks)
    assert [p[0].rsplit("/", 1)[1] for p in pairs] == ["gray.bmp", "photo.JPEG", "rgba.png"]
    batches = _iterate(make_dataset(pairs, batch_size=1))
    # Images come out as float32 RGB 0-255: exactly the decoded pixel values.
    assert all(b[0].dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(batches[0][0][0], np.repeat(gray[..., None], 3, axis=-1))
    np.testing.assert_array_equal(batches[2][0][0], np.broadcast_to([10, 20, 30], (8, 12, 3)))
    assert batches[1][0].shape == (1, 8, 12, 3)


def test_mask_size_mismatch(folders):
    images, masks = folders
    pairs = [(_write_rgb(images / "a.png"), _write_labels(masks / "a.png", _labels(8, 10)))]
    with pytest.raises(DatasetError, match=r"a\.png.*8x12.*8x10"):
        validate_dataset(pairs, num_classes=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Size mismatch.*a\.png"):
        _iterate(make_dataset(pairs, batch_size=1))


def test_label_value_out_of_range(folders):
    images, masks = folders
    labels = _labels()
    labels[0, 0] = 7
    pairs = [(_write_rgb(images / "a.png"),
              _write_labels(masks / "seven.png", labels))]
    with pytest.raises(DatasetError, match=r"seven\.png.*\[7\]"):
        validate_dataset(pairs, num_classes=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"seven\.png: label values must lie in \[0, num_classes\) = \[0,\] \[2\].*values in \[\] \[7\] \[,\] \[7\]"):
        _iterate(make_dataset(pairs, batch_size=1, num_classes=2))
    labels[0, 0] = 255  # the ignore label is allowed
    _write_labels(masks / "seven.png", labels)
    assert validate_dataset(pairs, num_classes=2).ignore_pixels == 1
    assert _iterate(make_dataset(pairs, batch_size=1, num_classes=2))[0][1][0, 0, 0] == 255


def test_empty_folder_and_missing_path(folders, tmp_path):
    images, masks = folders
    with pytest.raises(ValueError, match="No images"):
        folder_files(images, masks)
    with pytest.raises(ValueError, match="does_not_exist"):
        folder_files(tmp_path / "does_not_exist", masks)
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        make_dataset("camvid", "train", root=tmp_path / "does_not_exist")
    with pytest.raises(DatasetNotFoundError, match="empty list of pairs"):
        make_dataset([], batch_size=1)


def test_colour_masks(folders):
    images, masks = folders
    colours = np.zeros((8, 12, 3), np.uint8)
    colours[:, 6:] = PALETTE[2]
    colours[0, 0] = (255, 0, 0)
    _write_rgb(images / "a.png")
    Image.fromarray(colours).save(masks / "a.png")
    pairs = folder_files(images, masks)
    expected = np.zeros((8, 12), np.int32)
    expected[:, 6:] = 2
    expected[0, 0] = 1
    (_, got), = _iterate(make_dataset(pairs, batch_size=1, mask_format="color", palette=PALETTE))
    np.testing.assert_array_equal(got[0], expected)
    assert validate_dataset(pairs, 3, mask_format="color", palette=PALETTE).class_pixel_counts[
        2] == 48

    colours[3, 4] = (12, 34, 56)  # not in the palette
    Image.fromarray(colours).save(masks / "a.png")
    with pytest.raises(DatasetError, match=r"a\.png.*\(12, 34, 56\)"):
        validate_dataset(pairs, 3, mask_format="color", palette=PALETTE)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a\.png.*palette.*\[12 34 56\]"):
        _iterate(make_dataset(pairs, batch_size=1, mask_format="color", palette=PALETTE))
    (_, got), = _iterate(make_dataset(pairs, batch_size=1, mask_format="color", palette=PALETTE,
                                      unknown_color="ignore"))
    expected[3, 4] = 255
    np.testing.assert_array_equal(got[0], expected)


def test_palette_index_masks_give_indices_not_colours(folders):
    """TF expands palette PNGs to RGB; the pipeline must still return the indices."""
    images, masks = folders
    labels = _labels()
    labels[2:4, 2:4] = 5
    mask = Image.fromarray(labels, "P")
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128])
    mask.save(masks / "a.png")
    _write_rgb(images / "a.png")
    pairs = folder_files(images, masks)
    validate_dataset(pairs, num_classes=6)
    (_, got), = _iterate(make_dataset(pairs, batch_size=1, num_classes=6))
    np.testing.assert_array_equal(got[0], labels)


def test_bad_arguments(folders):
    images, masks = folders
    pairs = [(_write_rgb(images / "a.png"), _write_labels(masks / "a.png", _labels()))]
    with pytest.raises(ValueError, match="crop_size"):
        make_dataset(pairs, batch_size=2, training=True)
    with pytest.raises(ValueError, match="palette"):
        make_dataset(pairs, mask_format="color")
    with pytest.raises(ValueError, match="mask_format"):
        make_dataset(pairs, mask_format="rgb")
