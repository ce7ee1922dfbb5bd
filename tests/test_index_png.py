"""decoding.save_label: the one writer of class-index PNGs (evaluation's IndexPngWriter, `spgnet predict`'s labels/)."""

import numpy as np
import pytest
from PIL import Image

from spgnet_keras.data.decoding import load_label, save_label
from spgnet_keras.errors import InvalidInputError
from spgnet_keras.evaluation import IndexPngWriter


def random_classes(seed=0, shape=(13, 17), high=19):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, high, size=shape)
    classes[rng.random(shape) < 0.1] = 255  # the ignore label fits too
    return classes


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.uint16])
def test_grey_png_round_trips_with_load_label(tmp_path, dtype):
    classes = random_classes().astype(dtype)
    path = save_label(tmp_path / "new" / "folder" / "a.png", classes)
    assert path == tmp_path / "new" / "folder" / "a.png"
    with Image.open(path) as image:
        assert image.mode == "L" and image.format == "PNG"
    np.testing.assert_array_equal(load_label(path), classes.astype(np.int64))


def test_palette_png_round_trips_with_load_label(tmp_path):
    classes = random_classes(high=4)
    classes[classes == 255] = 3
    palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    path = save_label(tmp_path / "p.png", classes, palette=palette)
    with Image.open(path) as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[classes == 2], [[0, 255, 0]] * (classes == 2).sum())
    np.testing.assert_array_equal(load_label(path), classes)


def test_an_existing_file_is_replaced(tmp_path):
    path = tmp_path / "a.png"
    save_label(path, np.ones((4, 5), np.int64))
    save_label(path, np.zeros((2, 3), np.int64))
    np.testing.assert_array_equal(load_label(path), np.zeros((2, 3)))


@pytest.mark.parametrize(
    "classes, message",
    [
        (np.full((3, 3), 256), "More than 256 classes do not fit an 8-bit PNG: .* would hold 256"),
        (np.full((3, 3), -1), "must not be negative"),
        (np.zeros((2, 3, 1), np.int64), r"2-D integer array \[H, W\], got int64 of shape \(2, 3, 1\)"),
        (np.zeros(5, np.int64), r"2-D integer array .* shape \(5,\)"),
        (np.zeros((2, 2), np.float32), "2-D integer array .* got float32"),
    ],
)
def test_bad_maps_are_refused_before_a_file_is_written(tmp_path, classes, message):
    with pytest.raises(InvalidInputError, match=message):
        save_label(tmp_path / "bad.png", classes)
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize(
    "palette, message",
    [
        ([[0, 0]], r"\[N, 3\]"),
        ([[0, 0, 300]], r"RGB colours 0-255"),
        ([[0, 0, 0]] * 257, r"N <= 256"),
        ([[0, 0, 0], [1, 1, 1]], "The palette has 2 colours; .* would hold class 2"),
    ],
)
def test_bad_palettes_are_refused(tmp_path, palette, message):
    with pytest.raises(InvalidInputError, match=message):
        save_label(tmp_path / "bad.png", np.array([[0, 1, 2]]), palette=palette)
    assert not (tmp_path / "bad.png").exists()


def test_index_png_writer_writes_through_save_label(tmp_path):
    writer = IndexPngWriter(tmp_path / "out")
    classes = random_classes(seed=3)
    path = writer(classes, "/data/frame_0001.jpg")
    assert path == tmp_path / "out" / "frame_0001.png" and writer.written == [path]
    np.testing.assert_array_equal(load_label(path), classes)
    assert writer(classes, None) == tmp_path / "out" / "000001.png"
    with pytest.raises(InvalidInputError, match="More than 256 classes do not fit an 8-bit PNG"):
        writer(np.full((2, 2), 300), None)


def test_cityscapes_result_writer_writes_label_ids_through_save_label(tmp_path):
    from spgnet_keras.data.cityscapes import train_ids_to_label_ids
    from spgnet_keras.evaluation import CityscapesResultWriter

    train_ids = random_classes(seed=4, high=19)
    writer = CityscapesResultWriter(tmp_path)
    path = writer(train_ids, "/x/frankfurt_000000_000294_leftImg8bit.png")
    assert path == tmp_path / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    np.testing.assert_array_equal(load_label(path), train_ids_to_label_ids(train_ids))
