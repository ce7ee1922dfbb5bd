"""Augmentation keeps image and mask aligned, never invents labels, and is seeded."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spgnet_keras.constants import IMAGENET_MEAN
from spgnet_keras.data import (
    SCALES,
    augment_pair,
    make_dataset,
    pad_to_multiple,
    random_crop,
    random_scale,
    write_synthetic_folder,
)

HEIGHT, WIDTH = 60, 80
CROP = (64, 96)  # larger than the image at scales < 1.25, so padding is exercised too
RED_THRESHOLD = 128.0
MEAN_COLOUR = np.float32(IMAGENET_MEAN)  # what 0-255 images are padded with


def _image_with_sharp_red_boxes(seed: int) -> np.ndarray:
    """Blue-ish float image with asymmetric, sharp-edged red rectangles (red 230 vs 30)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32) + np.float32([30, 90, 160])
    for _ in range(5):
        y0, x0 = rng.integers(0, HEIGHT - 12), rng.integers(0, WIDTH - 12)
        image[y0:y0 + rng.integers(8, 25), x0:x0 + rng.integers(8, 30), 0] = 230
    return image


def _mask_from_image(image: np.ndarray) -> np.ndarray:
    """Class 1 where the red channel is high, else 0."""
    return (image[..., 0] > RED_THRESHOLD).astype(np.int32)


def _near_label_edge(mask: np.ndarray) -> np.ndarray:
    """True for pixels whose 3x3 neighbourhood contains another label."""
    padded = np.pad(mask, 1, mode="edge")
    edge = np.zeros(mask.shape, bool)
    for dy in range(3):
        for dx in range(3):
            edge |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]] != mask
    return edge


def _augment(image, mask, seed, scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), crop=CROP):
    out_image, out_mask = augment_pair(tf.constant(image), tf.constant(mask),
                                       tf.constant([seed, 7], tf.int64), crop, scales)
    return out_image.numpy(), out_mask.numpy()


def _misaligned_pixels(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-derives the mask from the augmented image; returns (mismatch, valid) maps."""
    valid = mask != 255
    return (_mask_from_image(image) != mask) & valid, valid


@pytest.mark.parametrize("seed", range(12))
def test_flip_and_crop_keep_exact_alignment(seed):
    """Without rescaling there is no interpolation: re-derived mask must match exactly.

    Odd seeds crop a window smaller than the image (random offsets), even seeds a larger
    one (padding)."""
    image = _image_with_sharp_red_boxes(seed)
    crop = (40, 56) if seed % 2 else CROP
    out_image, out_mask = _augment(image, _mask_from_image(image), seed, scales=(1.0,), crop=crop)
    assert out_image.shape == (*crop, 3) and out_mask.shape == crop
    mismatch, valid = _misaligned_pixels(out_image, out_mask)
    assert valid.any() and not mismatch.any()
    if crop == CROP:  # padding at the bottom/right: image the ImageNet mean colour, mask 255
        assert (out_mask[HEIGHT:] == 255).all() and (out_image[HEIGHT:] == MEAN_COLOUR).all()
    else:
        assert valid.all()


def test_scaling_keeps_alignment_up_to_edge_pixels():
    """With random scales, bilinear (image) and nearest (mask) resizing may place an edge
    differently by under one output pixel, so mismatches are allowed *only* on pixels next to
    a label change, and at most 2% of valid pixels. A 2-pixel shift of the mask (negative
    control) must violate this, showing the check can fail."""
    shapes_seen = set()
    for seed in range(16):
        image = _image_with_sharp_red_boxes(100 + seed)
        out_image, out_mask = _augment(image, _mask_from_image(image), seed)
        shapes_seen.add(out_image.shape)
        mismatch, valid = _misaligned_pixels(out_image, out_mask)
        assert not (mismatch & ~_near_label_edge(out_mask)).any(), f"seed {seed}"
        assert mismatch.sum() <= 0.02 * valid.sum(), f"seed {seed}"
        shifted = np.roll(out_mask, 2, axis=1)
        bad, _ = _misaligned_pixels(out_image, shifted)
        assert (bad & ~_near_label_edge(shifted)).any(), f"negative control, seed {seed}"
    assert shapes_seen == {(*CROP, 3)}


def test_random_scale_draws_the_paper_scales():
    image, mask = tf.zeros((60, 80, 3)), tf.zeros((60, 80), tf.int32)
    assert SCALES == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    sizes = {random_scale(image, mask, tf.constant([seed, 0]))[1].shape for seed in range(40)}
    assert sizes == {(round(60 * s), round(80 * s)) for s in SCALES}


def test_never_invents_label_values():
    rng = np.random.default_rng(0)
    mask = np.kron(rng.choice([0, 3, 7], size=(6, 8)), np.ones((10, 10), np.int64)).astype(np.int32)
    image = rng.uniform(0, 255, (HEIGHT, WIDTH, 3)).astype(np.float32)
    seen = set()
    for seed in range(20):
        _, out_mask = _augment(image, mask, seed)
        values = set(np.unique(out_mask).tolist())
        assert values <= {0, 3, 7, 255}, values
        seen |= values
    assert seen == {0, 3, 7, 255}


def test_same_seed_same_output_and_different_seed_differs():
    image = _image_with_sharp_red_boxes(0)
    mask = _mask_from_image(image)
    first = _augment(image, mask, 5)
    again = _augment(image, mask, 5)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    others = [_augment(image, mask, seed) for seed in (6, 7, 8)]
    assert any(o[0].shape != first[0].shape or not np.array_equal(o[0], first[0])
               for o in others)


def test_random_crop_and_pad_to_multiple_shapes():
    image = tf.zeros((50, 70, 3))
    mask = tf.zeros((50, 70), tf.int32)
    cropped_image, cropped_mask = random_crop(image, mask, (32, 48), tf.constant([1, 2]))
    assert cropped_image.shape == (32, 48, 3) and cropped_mask.shape == (32, 48)
    padded_image, padded_mask = pad_to_multiple(image + 1.0, mask, 32)
    assert padded_image.shape == (64, 96, 3) and padded_mask.shape == (64, 96)
    assert (padded_mask.numpy()[50:] == 255).all() and (padded_mask.numpy()[:50, :70] == 0).all()
    assert (padded_image.numpy()[:, 70:] == MEAN_COLOUR).all() and (padded_image.numpy()[50:] == MEAN_COLOUR).all()
    assert (padded_image.numpy()[:50, :70] == 1).all()


def _write_pair(folder, name, image, mask):
    Image.fromarray(image).save(folder / "images" / f"{name}.png")
    Image.fromarray(mask, "L").save(folder / "masks" / f"{name}.png")
    return str(folder / "images" / f"{name}.png"), str(folder / "masks" / f"{name}.png")


def test_eval_padding_fills_images_with_the_mean_colour(tmp_path):
    # Eval pipeline: pad_to_multiple pads each image with the ImageNet mean colour (which
    # the model normalises to 0) and its mask with 255; padded_batch of differently sized
    # images pads the smaller one the same way, whatever the image's own pixel values
    # (black pixels stay black: only padding is filled).
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    small[:4, :4] = 0  # black pixels inside the image must not be mistaken for padding
    large = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    pairs = [_write_pair(tmp_path, "small", small, np.ones((20, 30), np.uint8)),
             _write_pair(tmp_path, "large", large, np.full((40, 36), 2, np.uint8))]

    images, masks = next(iter(make_dataset(pairs[:1], batch_size=1, pad_to_multiple=32)))
    assert images.dtype == tf.float32 and images.shape == (1, 32, 32, 3) and masks.shape == (1, 32, 32)
    images, masks = images.numpy()[0], masks.numpy()[0]
    np.testing.assert_array_equal(images[:20, :30], small.astype(np.float32))
    assert (images[20:] == MEAN_COLOUR).all() and (images[:, 30:] == MEAN_COLOUR).all()
    assert (masks[:20, :30] == 1).all() and (masks[20:] == 255).all() and (masks[:, 30:] == 255).all()

    images, masks = next(iter(make_dataset(pairs, batch_size=2)))
    assert images.shape == (2, 40, 36, 3) and masks.shape == (2, 40, 36)
    images, masks = images.numpy(), masks.numpy()
    np.testing.assert_array_equal(images[0, :20, :30], small.astype(np.float32))
    np.testing.assert_array_equal(images[1], large.astype(np.float32))
    assert (images[0, 20:] == MEAN_COLOUR).all() and (images[0, :, 30:] == MEAN_COLOUR).all()
    assert (masks[0, 20:] == 255).all() and (masks[0, :, 30:] == 255).all() and (masks[1] == 2).all()


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp("synthetic"), num_train=6,
                                  num_val=2, size=(64, 96), seed=11)


def _epochs(dataset, count=2):
    return [[(i.numpy(), m.numpy()) for i, m in dataset] for _ in range(count)]


def test_pipelines_with_same_seed_yield_identical_batches(tiny_folder):
    def build(seed):
        return make_dataset("synthetic", "train", root=tiny_folder, batch_size=3,
                            crop_size=(48, 64), training=True, seed=seed)

    first, second = _epochs(build(1)), _epochs(build(1))
    other = _epochs(build(2), count=1)
    for epoch_a, epoch_b in zip(first, second):
        assert len(epoch_a) == len(epoch_b) == 2
        for (image_a, mask_a), (image_b, mask_b) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(image_a, image_b)
            np.testing.assert_array_equal(mask_a, mask_b)
    # Training images are float32 RGB in [0, 255] (the model normalises them itself).
    images = np.stack([image for image, _ in first[0]])
    assert images.dtype == np.float32 and images.min() >= 0.0 and images.max() <= 255.0
    assert images.max() > 1.5
    # Epochs differ from each other (reshuffled, re-augmented), and so do seeds.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    assert not np.array_equal(first[0][0][0], other[0][0][0])


@pytest.mark.parametrize("cache", [False, True])
def test_skip_batches_resumes_the_stream_exactly_without_decoding_the_skipped(tiny_folder, cache, monkeypatch):
    """A resumed run's stream (`skip_batches=n`) equals the uninterrupted stream after n
    batches, across epoch boundaries, and decodes none of the skipped examples."""
    def build(**kwargs):
        return make_dataset("synthetic", "train", root=tiny_folder, batch_size=3, crop_size=(48, 64),
                            training=True, seed=4, repeat=True, cache=cache, **kwargs)

    full = [(i.numpy(), m.numpy()) for i, m in build().take(7)]
    resumed = [(i.numpy(), m.numpy()) for i, m in build(skip_batches=5).take(2)]
    for (image_a, mask_a), (image_b, mask_b) in zip(full[5:], resumed):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(mask_a, mask_b)

    from spgnet_keras.data import pipeline

    original = pipeline.decode_image
    counter = tf.Variable(0, dtype=tf.int64)  # decodes, counted inside the tf.data graph

    def counted(path):
        counter.assign_add(1)
        return original(path)

    monkeypatch.setattr(pipeline, "decode_image", counted)
    next(iter(build(skip_batches=40)))
    # One batch of 3 (plus the prefetch and parallel maps' read-ahead; with the cache, the 6
    # files once), never the 120 skipped examples.
    assert 3 <= int(counter.numpy()) < 40, int(counter.numpy())


def test_skip_batches_is_refused_outside_repeated_training_streams(tiny_folder):
    with pytest.raises(ValueError, match="skip_batches is for repeated training streams"):
        make_dataset("synthetic", "val", root=tiny_folder, batch_size=1, skip_batches=2)
    with pytest.raises(ValueError, match="skip_batches must be an integer >= 0, got -1"):
        make_dataset("synthetic", "train", root=tiny_folder, batch_size=3, crop_size=(48, 64), training=True,
                     repeat=True, skip_batches=-1)
