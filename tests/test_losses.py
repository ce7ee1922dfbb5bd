"""Tests for spgnet_keras.losses."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from spgnet_keras.losses import (
    DEFAULT_STAGE_WEIGHT,
    SegmentationCrossEntropy,
    deep_supervision_losses,
)
from tests.helpers import run_serialization_test

REPO_ROOT = Path(__file__).resolve().parents[1]
IGNORE = 255


# ------------------------------------------------------------ numpy reference
def np_pixel_ce(logits, labels):
    """Per-pixel CE (labels outside [0, C) give 0) and a validity mask."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    valid = labels != IGNORE
    safe = np.where(valid, labels, 0)
    ce = -np.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]
    return np.where(valid, ce, 0.0), valid


def np_weighted_mean(ce, weights):
    return float((weights * ce).sum() / weights.sum())


def np_ohem_keep(ce, valid, threshold=None, min_kept=0, top_k=None):
    """Per-image OHEM selection, written independently with full sorts."""
    keep = np.zeros_like(valid)
    for b in range(ce.shape[0]):
        scores = ce[b][valid[b]]
        if top_k is not None:
            k = math.ceil(top_k * scores.size)
            kth = np.sort(scores)[::-1][k - 1] if k > 0 else np.inf
            keep[b] = valid[b] & (ce[b] >= kth)
        else:
            hard = valid[b] & (np.exp(-ce[b]) < threshold)
            if min_kept > 0 and scores.size:
                k = min(min_kept, scores.size)
                kth = np.sort(scores)[::-1][k - 1]
                hard |= valid[b] & (ce[b] >= kth)
            keep[b] = hard
    return keep


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    logits = rng.normal(scale=2.0, size=(3, 6, 5, 4)).astype("float32")
    labels = rng.integers(0, 4, size=(3, 6, 5)).astype("int32")
    labels[rng.random(labels.shape) < 0.25] = IGNORE
    labels[2, :3] = IGNORE  # images with different numbers of valid pixels
    return logits, labels


# --------------------------------------------------------------- basic value
def test_matches_numpy_masked_mean(data):
    logits, labels = data
    ce, valid = np_pixel_ce(logits, labels)
    expected = ce[valid].mean()
    loss = SegmentationCrossEntropy()
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    # (B, H, W, 1) labels and float labels give the same value.
    assert float(loss(labels[..., None], logits)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(labels.astype("float32"), logits)) == pytest.approx(
        expected, rel=1e-5
    )


def test_half_precision_logits_are_computed_in_float32(data):
    logits, labels = data
    value = SegmentationCrossEntropy()(labels, tf.constant(logits, tf.float16))
    assert value.dtype == tf.float32
    ce, valid = np_pixel_ce(logits.astype(np.float16).astype(np.float32), labels)
    assert float(value) == pytest.approx(ce[valid].mean(), rel=1e-5)


def test_custom_ignore_index(data):
    logits, labels = data
    labels = np.where(labels == IGNORE, 3, labels)  # class 3 becomes "ignore"
    ce, _ = np_pixel_ce(logits, labels)
    valid = labels != 3
    value = SegmentationCrossEntropy(ignore_index=3)(labels, logits)
    assert float(value) == pytest.approx(ce[valid].mean(), rel=1e-5)


def test_all_ignored_batch_gives_zero(data):
    logits, labels = data
    labels = np.full_like(labels, IGNORE)
    assert float(SegmentationCrossEntropy()(labels, logits)) == 0.0


def test_ignored_pixels_get_no_gradient(data):
    logits, labels = data
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = SegmentationCrossEntropy()(labels, logits)
    grad = tape.gradient(value, logits).numpy()
    assert np.all(grad[labels == IGNORE] == 0)
    assert np.all(np.abs(grad[labels != IGNORE]).sum(axis=-1) > 0)


# ------------------------------------------------------------------ weights
def test_class_weights_weighted_mean(data):
    logits, labels = data
    class_weights = [0.5, 2.0, 1.0, 3.0]
    ce, valid = np_pixel_ce(logits, labels)
    w = np.where(valid, np.asarray(class_weights)[np.where(valid, labels, 0)], 0.0)
    value = SegmentationCrossEntropy(class_weights=class_weights)(labels, logits)
    assert float(value) == pytest.approx(np_weighted_mean(ce, w), rel=1e-5)
    assert float(value) != pytest.approx(ce[valid].mean(), rel=1e-3)


def test_class_weights_length_mismatch_raises(data):
    logits, labels = data
    with pytest.raises(ValueError, match="class_weights has 3 entries"):
        SegmentationCrossEntropy(class_weights=[1.0, 1.0, 1.0])(labels, logits)


@pytest.mark.parametrize("per_pixel", [False, True])
def test_sample_weight(data, per_pixel):
    logits, labels = data
    rng = np.random.default_rng(0)
    ce, valid = np_pixel_ce(logits, labels)
    if per_pixel:
        sw = rng.random(labels.shape).astype("float32")
        w = valid * sw
    else:
        sw = np.array([1.0, 3.0, 0.5], "float32")
        w = valid * sw[:, None, None]
    value = SegmentationCrossEntropy()(labels, logits, sample_weight=sw)
    assert float(value) == pytest.approx(np_weighted_mean(ce, w), rel=1e-5)


# --------------------------------------------------------------------- OHEM
def test_ohem_threshold_with_min_kept(data):
    logits, labels = data
    ce, valid = np_pixel_ce(logits, labels)
    keep = np_ohem_keep(ce, valid, threshold=0.7, min_kept=16)
    # Sanity: the data exercises both branches (some images below min_kept).
    per_image_hard = (valid & (np.exp(-ce) < 0.7)).sum(axis=(1, 2))
    assert per_image_hard.min() < 16 < per_image_hard.max()
    loss = SegmentationCrossEntropy(ohem_threshold=0.7, ohem_min_kept=16)
    value = float(loss(labels, logits))
    assert value == pytest.approx(ce[keep].mean(), rel=1e-5)
    assert value > ce[valid].mean()  # hard pixels have larger CE


def test_ohem_threshold_without_min_kept(data):
    logits, labels = data
    ce, valid = np_pixel_ce(logits, labels)
    keep = np_ohem_keep(ce, valid, threshold=0.5)
    value = SegmentationCrossEntropy(ohem_threshold=0.5)(labels, logits)
    assert float(value) == pytest.approx(ce[keep].mean(), rel=1e-5)


def test_ohem_min_kept_larger_than_image_keeps_all_valid(data):
    logits, labels = data
    ce, valid = np_pixel_ce(logits, labels)
    value = SegmentationCrossEntropy(ohem_threshold=0.01, ohem_min_kept=10_000)(
        labels, logits
    )
    assert float(value) == pytest.approx(ce[valid].mean(), rel=1e-5)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 1.0])
def test_ohem_top_k(data, fraction):
    logits, labels = data
    ce, valid = np_pixel_ce(logits, labels)
    keep = np_ohem_keep(ce, valid, top_k=fraction)
    expected_counts = [math.ceil(fraction * v) for v in valid.sum(axis=(1, 2))]
    assert keep.sum(axis=(1, 2)).tolist() == expected_counts  # no ties here
    value = SegmentationCrossEntropy(ohem_top_k=fraction)(labels, logits)
    assert float(value) == pytest.approx(ce[keep].mean(), rel=1e-5)


def test_ohem_not_kept_pixels_get_no_gradient(data):
    logits, labels = data
    ce, valid = np_pixel_ce(logits, labels)
    keep = np_ohem_keep(ce, valid, top_k=0.2)
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = SegmentationCrossEntropy(ohem_top_k=0.2)(labels, logits)
    grad_norm = np.abs(tape.gradient(value, logits).numpy()).sum(axis=-1)
    assert np.all(grad_norm[~keep] == 0)
    assert np.all(grad_norm[keep] > 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ohem_threshold": 0.7, "ohem_top_k": 0.5}, "not both"),
        ({"ohem_threshold": 1.5}, "ohem_threshold"),
        ({"ohem_top_k": 0.0}, "ohem_top_k"),
        ({"ohem_min_kept": 10}, "requires ohem_threshold"),
        ({"ohem_threshold": 0.7, "ohem_min_kept": -1}, "ohem_min_kept"),
        ({"class_weights": [1.0, -1.0]}, "class_weights"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SegmentationCrossEntropy(**kwargs)


# ------------------------------------------------------------ label checks
@pytest.mark.parametrize("bad_value", [4, 7, -1, 254])
def test_out_of_range_labels_raise(data, bad_value):
    logits, labels = data
    labels = labels.copy()
    labels[1, 2, 3] = bad_value
    loss = SegmentationCrossEntropy()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, num_classes\)"):
        loss(labels, logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match=str(bad_value)):
        tf.function(loss)(labels, logits)


def test_out_of_range_labels_give_nan_under_xla(data):
    logits, labels = data
    labels = labels.copy()
    labels[0, 0, 0] = 9
    loss = SegmentationCrossEntropy()
    value = tf.function(loss, jit_compile=True)(labels, logits)
    assert np.isnan(float(value))


# ------------------------------------------------------------ serialisation
def test_config_round_trip(data):
    logits, labels = data
    loss = SegmentationCrossEntropy(
        class_weights=[1.0, 2.0, 0.5, 1.0], ohem_threshold=0.6, ohem_min_kept=5,
        name="my_ce",
    )
    restored = run_serialization_test(loss)  # config and JSON round trips (tests/helpers.py)
    assert float(restored(labels, logits)) == pytest.approx(float(loss(labels, logits)))
    assert SegmentationCrossEntropy.from_config(loss.get_config()).name == "my_ce"


# --------------------------------------------------------- deep supervision
def test_deep_supervision_losses():
    losses, weights = deep_supervision_losses(
        ["stage1", "prediction", "stage2"], ohem_top_k=0.5
    )
    assert set(losses) == {"stage1", "prediction", "stage2"}
    assert weights == {
        "stage1": DEFAULT_STAGE_WEIGHT,
        "prediction": 1.0,
        "stage2": DEFAULT_STAGE_WEIGHT,
    }
    assert all(isinstance(v, SegmentationCrossEntropy) for v in losses.values())
    assert all(v.ohem_top_k == 0.5 for v in losses.values())
    assert len({id(v) for v in losses.values()}) == 3

    _, weights = deep_supervision_losses(
        ["prediction", "stage1", "stage2"], stage_weight={"stage1": 0.2}
    )
    assert weights == {"prediction": 1.0, "stage1": 0.2, "stage2": DEFAULT_STAGE_WEIGHT}
    _, weights = deep_supervision_losses(["prediction", "stage1"], stage_weight=0.4)
    assert weights == {"prediction": 1.0, "stage1": 0.4}
    with pytest.raises(ValueError, match="prediction"):
        deep_supervision_losses(["stage1", "stage2"])


def test_default_stage_weight_is_the_papers_plain_sum():
    """Sec 3.4 sums the stage losses: one default (1.0) for the losses, the recipe's config
    and `SPGNet.compile()`."""
    from spgnet_keras import constants
    from spgnet_keras.config import LossConfig

    assert DEFAULT_STAGE_WEIGHT == constants.DEFAULT_STAGE_WEIGHT == LossConfig().stage_weight == 1.0


def _tiny_dict_model(num_classes=3, size=8):
    inp = keras.Input((size, size, 3))
    return keras.Model(
        inp,
        {
            "prediction": keras.layers.Conv2D(num_classes, 1, name="head")(inp),
            "stage1": keras.layers.Conv2D(num_classes, 1, name="aux")(inp),
        },
    )


def test_compiled_model_save_load_safe_mode(tmp_path):
    from spgnet_keras.metrics import SegmentationMeanIoU
    from spgnet_keras.optimizers import KernelDecaySGD, build_sgd
    from spgnet_keras.schedules import PolyDecay

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(4, 8, 8)).astype("int32")
    y[:, :2] = IGNORE
    targets = {"prediction": y, "stage1": y}

    keras.utils.set_random_seed(0)
    model = _tiny_dict_model()
    losses, weights = deep_supervision_losses(
        ["prediction", "stage1"], ohem_threshold=0.7, ohem_min_kept=8
    )
    model.compile(
        optimizer=build_sgd(PolyDecay(0.01, 100, warmup_steps=5)),
        loss=losses,
        loss_weights=weights,
        metrics={"prediction": [SegmentationMeanIoU(3)]},
    )
    model.fit(x, targets, batch_size=2, epochs=1, verbose=0)
    before = model.evaluate(x, targets, batch_size=2, verbose=0, return_dict=True)

    path = tmp_path / "tiny.keras"
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    after = restored.evaluate(x, targets, batch_size=2, verbose=0, return_dict=True)
    assert set(after) == set(before)
    for key, value in before.items():
        assert after[key] == pytest.approx(value, rel=1e-5), key
    assert isinstance(restored.optimizer, KernelDecaySGD)
    lr_config = restored.optimizer.get_config()["learning_rate"]
    assert keras.saving.deserialize_keras_object(lr_config).get_config() == (
        PolyDecay(0.01, 100, warmup_steps=5).get_config()
    )
    restored.fit(x, targets, batch_size=2, epochs=1, verbose=0)  # still trainable


# -------------------------------------------------------------- distribution
_DIST_SCRIPT = textwrap.dedent(
    '''
    """Runs evaluate/fit on 1 and 2 logical CPU replicas; prints JSON."""
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from spgnet_keras.losses import deep_supervision_losses
    from spgnet_keras.metrics import SegmentationMeanIoU
    from spgnet_keras.optimizers import build_sgd

    C, N, S = 3, 8, 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, S, S, 3)).astype("float32")
    y = rng.integers(0, C, size=(N, S, S)).astype("int32")
    for i in range(N):  # very different kept-pixel counts per image
        y[i].reshape(-1)[: 9 * i] = 255

    def build():
        inp = keras.Input((S, S, 3))
        return keras.Model(inp, {
            "prediction": keras.layers.Conv2D(C, 1, name="head")(inp),
            "stage1": keras.layers.Conv2D(C, 1, name="aux")(inp)})

    keras.utils.set_random_seed(1)
    w0 = build().get_weights()
    CONFIGS = {
        "plain": {},
        "weighted_ohem": {"class_weights": [1.0, 2.0, 0.5],
                          "ohem_threshold": 0.7, "ohem_min_kept": 10},
    }

    def run(strategy, kwargs):
        with strategy.scope():
            model = build()
            model.set_weights(w0)
            losses, weights = deep_supervision_losses(["prediction", "stage1"], **kwargs)
            model.compile(optimizer=build_sgd(0.5, weight_decay=0.1),
                          loss=losses, loss_weights=weights,
                          metrics={"prediction": [SegmentationMeanIoU(C)]})
        ds = tf.data.Dataset.from_tensor_slices(
            (x, {"prediction": y, "stage1": y})).batch(4)
        ev = model.evaluate(ds, return_dict=True, verbose=0)
        fit = model.fit(ds, epochs=1, verbose=0).history
        return {"evaluate": {k: float(v) for k, v in ev.items()},
                "fit": {k: float(v[-1]) for k, v in fit.items()},
                "weights": [w.tolist() for w in model.get_weights()]}

    def zero_grad_decay(strategy):
        with strategy.scope():
            model = build()
            model.set_weights(w0)
            opt = build_sgd(0.1, weight_decay=0.5, model=model)
        @tf.function
        def step():
            strategy.run(lambda: opt.apply_gradients(
                [(tf.zeros_like(v), v) for v in model.trainable_variables]))
        step()
        return [w.tolist() for w in model.get_weights()]

    strategies = {"one": tf.distribute.get_strategy(),
                  "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    out = {"x": x.tolist(), "y": y.tolist(), "w0": [w.tolist() for w in w0],
           "replicas": {}, "results": {}}
    for tag, strategy in strategies.items():
        out["replicas"][tag] = strategy.num_replicas_in_sync
        out["results"][tag] = {name: run(strategy, kw) for name, kw in CONFIGS.items()}
    out["zero_grad_decay_two"] = zero_grad_decay(strategies["two"])
    print("JSON:" + json.dumps(out))
    '''
)


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    script = tmp_path_factory.mktemp("dist") / "dist_check.py"
    script.write_text(_DIST_SCRIPT)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, str(script), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON:")][-1]
    return json.loads(line[len("JSON:"):])


def _np_logits(x, kernel, bias):
    return np.einsum("bhwc,cd->bhwd", x, kernel[0, 0]) + bias


def test_two_replicas_report_same_loss_as_one(distributed_results):
    res = distributed_results
    assert res["replicas"] == {"one": 1, "two": 2}
    for config in ("plain", "weighted_ohem"):
        one, two = res["results"]["one"][config], res["results"]["two"][config]
        for phase in ("evaluate", "fit"):
            assert set(one[phase]) == {"loss", "prediction_loss", "stage1_loss",
                                       "prediction_miou"}
            for key, value in one[phase].items():
                assert two[phase][key] == pytest.approx(value, abs=1e-5), (
                    config, phase, key)
        for w_one, w_two in zip(one["weights"], two["weights"]):
            np.testing.assert_allclose(w_two, w_one, atol=1e-5)


def test_distributed_loss_matches_numpy_pixel_mean(distributed_results):
    res = distributed_results
    x = np.asarray(res["x"], np.float64)
    y = np.asarray(res["y"])
    k_head, b_head, k_aux, b_aux = (np.asarray(w, np.float64) for w in res["w0"])
    batch_losses, naive_losses = [], []
    for start in (0, 4):
        xb, yb = x[start:start + 4], y[start:start + 4]
        total, naive = 0.0, 0.0
        for (kernel, bias), weight in (((k_head, b_head), 1.0), ((k_aux, b_aux), DEFAULT_STAGE_WEIGHT)):
            ce, valid = np_pixel_ce(_np_logits(xb, kernel, bias), yb)
            total += weight * ce[valid].mean()
            # What a per-replica mean (2 + 2 images) would average to:
            halves = [ce[h][valid[h]].mean() for h in (slice(0, 2), slice(2, 4))]
            naive += weight * np.mean(halves)
        batch_losses.append(total)
        naive_losses.append(naive)
    expected = float(np.mean(batch_losses))
    # The data is built so that averaging per-replica means would be wrong.
    assert abs(np.mean(naive_losses) - expected) > 1e-3
    for tag in ("one", "two"):
        got = res["results"][tag]["plain"]["evaluate"]["loss"]
        assert got == pytest.approx(expected, abs=1e-5), tag


def test_kernel_decay_under_mirrored_strategy(distributed_results):
    res = distributed_results
    w0 = [np.asarray(w) for w in res["w0"]]
    after = [np.asarray(w) for w in res["zero_grad_decay_two"]]
    for before, now in zip(w0, after):
        if before.ndim >= 2:  # kernels shrink by lr * wd = 0.05
            np.testing.assert_allclose(now, before * 0.95, rtol=1e-6)
        else:  # biases untouched
            np.testing.assert_array_equal(now, before)
