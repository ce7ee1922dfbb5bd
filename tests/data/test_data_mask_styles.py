"""Mask styles read the same way by the pipeline, the dataset check and evaluation (palette PNGs,
colour masks, reduce_zero_label, label maps) and the data report (class shares, absent classes,
median-frequency weights, counted classes)."""

import re

import numpy as np
import pytest

from spgnet_keras.data import (
    DatasetError,
    MaskReader,
    MaskStyle,
    describe_data,
    folder_files,
    label_table,
    make_dataset,
    read_classes,
    resolve_data,
)
from tests.data.layouts import COLOURS, classes_csv, labels_of, voc_layout, write_image, write_mask


def masks_of(dataset):
    return [masks.numpy()[0] for _, masks in dataset]


def one_pair(tmp_path, labels, mode="L", palette=None):
    image = write_image(tmp_path / "img" / "a.png", 0, size=labels.shape)
    mask = write_mask(tmp_path / "ann" / "a.png", labels, mode=mode, palette=palette)
    return [(str(image), str(mask))]


def test_label_table_order_is_mmsegmentations():
    table = label_table({3: 1, "7": 255}, reduce_zero_label=True)
    assert table[0] == 255 and table[255] == 255  # unlabelled and ignore stay ignored
    assert table[1] == 0 and table[4] == 1  # reduce first (4 -> 3), then the map (3 -> 1)
    assert table[8] == 255 and table[9] == 8  # 8 -> 7 -> dropped
    assert label_table(None) is None
    with pytest.raises(ValueError, match="label_map entry '300'"):
        label_table({"300": 1})


@pytest.mark.parametrize("options, expected", [
    ({}, lambda labels: labels),
    ({"reduce_zero_label": True}, lambda labels: np.where(labels == 0, 255, labels - 1)),
    ({"label_map": {3: 1, 2: 255}}, lambda labels: np.select([labels == 3, labels == 2], [1, 255], labels)),
])
def test_pipeline_check_and_evaluation_reader_agree_on_every_style(tmp_path, options, expected):
    labels = labels_of(1)
    pairs = one_pair(tmp_path, labels)
    want = expected(labels.astype(np.int64))
    np.testing.assert_array_equal(masks_of(make_dataset(pairs, batch_size=1, num_classes=4, **options)), [want])
    np.testing.assert_array_equal(MaskReader([pairs[0][1]], **options)(pairs[0][1]), want)
    report = describe_data(pairs, spec=None, **options)
    assert report.train.class_pixel_counts.sum() == (want != 255).sum()


def test_voc_palette_masks_are_indices_with_the_border_ignored(tmp_path):
    root = voc_layout(tmp_path / "VOC")
    pairs = folder_files(root / "JPEGImages", root / "SegmentationClass")
    labels = labels_of(0).astype(np.int64)
    labels[0, :] = 255
    np.testing.assert_array_equal(masks_of(make_dataset(pairs[:1], batch_size=1, num_classes=4))[0], labels)
    report = describe_data(pairs)  # classes counted: 0..3, 255 ignored
    assert report.spec.num_classes == 4 and report.train.ignore_pixels == 6 * 48


def test_colour_masks_through_the_pipeline(tmp_path):
    labels = labels_of(2)
    pairs = one_pair(tmp_path, labels, mode="RGB", palette=COLOURS)
    spec = read_classes(classes_csv(tmp_path / "classes.csv"))
    got = masks_of(make_dataset(pairs, batch_size=1, num_classes=4, mask_format="auto", palette=spec.palette))
    np.testing.assert_array_equal(got, [labels])
    write_mask(pairs[0][1], labels, mode="RGB", palette=[(1, 1, 1)] + COLOURS[1:])
    with pytest.raises(DatasetError, match=re.escape("colour(s) not in the palette: [(1, 1, 1)]")):
        describe_data(pairs, spec=spec, mask_format="color", palette=spec.palette)


def test_report_names_absent_classes_and_gives_median_frequency_weights(tmp_path):
    train_labels = np.zeros((4, 8), np.uint8)
    train_labels[:, 6:] = 1  # class 1: 8 of 32 pixels; class 2 only in the second image
    second = np.full((4, 8), 2, np.uint8)
    second[0, 0] = 0
    pairs = [one_pair(tmp_path / "a", train_labels)[0], one_pair(tmp_path / "b", second)[0]]
    val = [one_pair(tmp_path / "c", np.zeros((4, 8), np.uint8))[0]]
    spec = read_classes(classes_csv(tmp_path / "classes.csv"))  # 4 classes: "person" (3) never appears
    report = describe_data(pairs, val, spec, "classes.csv")
    assert report.absent("train") == ["person"] and report.absent("val") == ["road", "car", "person"]
    text = report.format()
    assert "warning: 1 class(es) have no pixel in train: person" in text
    assert "warning: 3 class(es) have no pixel in val: road, car, person" in text
    assert "2 training pairs, 1 validation pairs" in text and "4x8 (all 3 images)" in text
    # frequencies: background 25/64, road 8/32, car 31/32 (images where each appears)
    frequency = np.array([25 / 64, 8 / 32, 31 / 32])
    expected = np.median(frequency) / frequency
    np.testing.assert_allclose(report.median_frequency_weights()[:3], expected, rtol=1e-5)
    assert report.median_frequency_weights()[3] == 1.0


def test_counted_classes_and_the_binary_mask_advice(tmp_path):
    labels = np.zeros((4, 8), np.uint8)
    labels[:, 4:] = 5
    report = describe_data(one_pair(tmp_path / "a", labels))
    assert report.spec.num_classes == 6 and report.spec.class_names[5] == "class_5"
    assert report.absent("train") == ["class_1", "class_2", "class_3", "class_4"]
    binary = np.where(labels > 0, 255, 0).astype(np.uint8)
    pairs = one_pair(tmp_path / "b", binary)
    with pytest.raises(DatasetError, match=re.escape("Binary masks saved as 0/255 need 255 read as a class: "
                                                     "label_map={255: 1}")):
        describe_data(pairs)
    assert describe_data(pairs, label_map={255: 1}).spec.num_classes == 2


def test_out_of_range_labels_are_named_with_the_given_classes(tmp_path):
    labels = labels_of(0)
    labels[0, 0] = 9
    pairs = one_pair(tmp_path, labels)
    spec = read_classes(classes_csv(tmp_path / "classes.csv"))
    with pytest.raises(DatasetError, match=re.escape(f"Mask {pairs[0][1]}: label values must lie in [0, 4)")):
        describe_data(pairs, spec=spec)
    data = resolve_data(images=tmp_path / "img", masks=tmp_path / "ann", classes=tmp_path / "classes.csv",
                        val_images=tmp_path / "img", val_masks=tmp_path / "ann", style=MaskStyle(label_map={9: 255}))
    report = describe_data(data.train_pairs, data.val_pairs, data.spec, **data.dataset_arguments())
    assert report.overlap == 1 and "validation pair(s) are also training pairs" in report.format()
