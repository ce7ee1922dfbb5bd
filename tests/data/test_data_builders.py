"""The two pipeline builders (`make_train_dataset`, `make_eval_dataset`) take every valid
option of their mode, and `make_dataset` is a thin wrapper giving the builder's batches."""

import re

import numpy as np
import pytest
from PIL import Image

from spgnet_keras.data import (
    CITYSCAPES_PALETTE,
    LABEL_ID_TO_TRAIN_ID,
    MaskStyle,
    make_dataset,
    make_eval_dataset,
    make_train_dataset,
    write_synthetic_folder,
)
from tests.data.layouts import write_image, write_mask


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp("synthetic"), num_train=5, num_val=3, size=(40, 70),
                                  seed=5)


def batches(dataset, count=None):
    dataset = dataset if count is None else dataset.take(count)
    return [(images.numpy(), masks.numpy()) for images, masks in dataset]


def assert_same_batches(first, second):
    assert len(first) == len(second) > 0
    for (image_a, mask_a), (image_b, mask_b) in zip(first, second):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(mask_a, mask_b)


@pytest.mark.parametrize("options", [
    dict(),
    dict(cache=True, scales=None, flip=False),
    dict(repeat=True, skip_batches=2, shuffle=False),
    dict(drop_remainder=False, validate=True, num_classes=8),
])
def test_wrapper_gives_the_training_builders_batches(folder, options):
    count = 3 if options.get("repeat") else None
    built = make_train_dataset("synthetic", root=folder, batch_size=2, crop_size=(32, 48), seed=3, **options)
    wrapped = make_dataset("synthetic", "train", root=folder, batch_size=2, crop_size=(32, 48), seed=3,
                           training=True, **options)
    assert_same_batches(batches(built, count), batches(wrapped, count))


@pytest.mark.parametrize("options", [
    dict(),
    dict(batch_size=2, pad_to_multiple=True),
    dict(batch_size=3, cache=True, drop_remainder=True),
    dict(shuffle=True, validate=True, num_classes=8, pad_to_multiple=16),
])
def test_wrapper_gives_the_eval_builders_batches(folder, options):
    options = {"batch_size": 1, **options}
    built = make_eval_dataset("synthetic", "val", root=folder, **options)
    wrapped = make_dataset("synthetic", "val", root=folder, **options)
    assert_same_batches(batches(built), batches(wrapped))
    images, masks = batches(built)[0]
    if options.get("pad_to_multiple"):
        multiple = 32 if options["pad_to_multiple"] is True else options["pad_to_multiple"]
        assert images.shape[1] % multiple == 0 and images.shape[2] % multiple == 0
    else:
        assert images.shape[1:3] == (40, 70) == masks.shape[1:3]


def test_train_builder_takes_a_single_uncropped_example(folder):
    (images, masks), = batches(make_train_dataset("synthetic", root=folder, batch_size=1, scales=(1.0,),
                                                  flip=False), 1)
    assert images.shape == (1, 40, 70, 3) and masks.shape == (1, 40, 70)


def test_mask_style_equals_the_separate_mask_keywords(tmp_path):
    labels = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [255, 1, 1, 2]], np.uint8)
    colours = np.asarray(CITYSCAPES_PALETTE[:4], np.uint8)
    rgb = np.zeros(labels.shape + (3,), np.uint8)
    for index, colour in enumerate(colours):
        rgb[labels == index] = colour
    rgb[labels == 255] = (7, 7, 7)
    image = write_image(tmp_path / "a.png", 0, size=labels.shape)
    index_mask = write_mask(tmp_path / "index.png", labels)
    colour_mask = tmp_path / "colour.png"
    Image.fromarray(rgb).save(colour_mask)
    cases = [
        ([(image, index_mask)], dict(reduce_zero_label=True, label_map={2: 255})),
        ([(image, colour_mask)], dict(mask_format="color", palette=colours.tolist(), ignore_colors=[(7, 7, 7)])),
        ([(image, colour_mask)], dict(mask_format="auto", palette=colours.tolist(), unknown_color="ignore")),
    ]
    for pairs, options in cases:
        pairs = [(str(i), str(m)) for i, m in pairs]
        style = MaskStyle(**options)
        for built, wrapped in [
            (make_eval_dataset(pairs, mask_style=style), make_dataset(pairs, batch_size=1, **options)),
            (make_train_dataset(pairs, batch_size=1, mask_style=style, flip=False, scales=None),
             make_dataset(pairs, batch_size=1, training=True, flip=False, scales=None, **options)),
        ]:
            assert_same_batches(batches(built), batches(wrapped))


def test_a_whole_label_table_is_the_base_table(tmp_path):
    labels = np.array([[7, 8, 26], [0, 24, 7]], np.uint8)  # Cityscapes label ids
    pairs = [(str(write_image(tmp_path / "a.png", 0, size=labels.shape)), str(write_mask(tmp_path / "m.png", labels)))]
    expected = LABEL_ID_TO_TRAIN_ID[labels]
    (_, built), = batches(make_eval_dataset(pairs, base_table=LABEL_ID_TO_TRAIN_ID))
    (_, wrapped), = batches(make_dataset(pairs, batch_size=1, label_map=LABEL_ID_TO_TRAIN_ID))
    np.testing.assert_array_equal(built[0], expected)
    np.testing.assert_array_equal(wrapped[0], expected)


def test_each_mode_refuses_the_other_modes_options_in_the_wrapper(folder):
    cases = [
        (dict(training=True, crop_size=(32, 32), batch_size=2, pad_to_multiple=32), "pad_to_multiple is for evaluation"),
        (dict(training=False, crop_size=(32, 32)), "crop_size is for training"),
        (dict(training=False, skip_batches=1), "skip_batches is for repeated training streams"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            make_dataset("synthetic", "train", root=folder, **options)
    with pytest.raises(TypeError):
        make_eval_dataset("synthetic", root=folder, crop_size=(32, 32))  # not an option of evaluation
    with pytest.raises(TypeError):
        make_train_dataset("synthetic", root=folder, pad_to_multiple=32)
    with pytest.raises(ValueError, match="mask_style must be a MaskStyle"):
        make_eval_dataset("synthetic", root=folder, mask_style={"mask_format": "index"})
    with pytest.raises(ValueError, match=re.escape("make_train_dataset('synthetic') needs root")):
        make_train_dataset("synthetic", batch_size=1)


def test_dataset_check_and_report_take_the_mask_style(tmp_path):
    from spgnet_keras.data import describe_data, validate_dataset

    labels = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)
    pairs = [(str(write_image(tmp_path / "a.png", 0, size=labels.shape)), str(write_mask(tmp_path / "m.png", labels)))]
    style = MaskStyle(reduce_zero_label=True, label_map={2: 255})
    by_style = validate_dataset(pairs, 3, mask_style=style)
    by_keywords = validate_dataset(pairs, 3, reduce_zero_label=True, label_map={2: 255})
    np.testing.assert_array_equal(by_style.class_pixel_counts, by_keywords.class_pixel_counts)
    assert by_style.ignore_pixels == by_keywords.ignore_pixels == 4
    report = describe_data(pairs, mask_style=style)
    assert report.spec.num_classes == 2  # 1 -> 0, 2 -> 1, 3 -> 2 -> 255, 0 -> 255
    with pytest.raises(ValueError, match="either as mask_style=MaskStyle"):
        validate_dataset(pairs, 3, mask_style=style, reduce_zero_label=True)
