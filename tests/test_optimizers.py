"""Tests for spgnet_keras.optimizers."""

import keras
import numpy as np
import pytest

from spgnet_keras.optimizers import KernelDecaySGD, build_sgd
from spgnet_keras.schedules import PolyDecay


def tiny_model():
    inp = keras.Input((4, 4, 3))
    h = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    out = keras.layers.Dense(2, name="dense")(h)
    model = keras.Model(inp, out)
    for v in model.trainable_variables:  # non-trivial values everywhere
        v.assign(np.random.default_rng(0).normal(size=v.shape).astype("float32"))
    return model


KERNELS = {"conv/kernel", "dw/kernel", "dense/kernel"}
NOT_DECAYED = {"conv/bias", "bn/gamma", "bn/beta", "dw/bias", "dense/bias"}


def snapshot(model):
    return {v.path: np.array(v.numpy()) for v in model.trainable_variables}


def zero_step(model, optimizer):
    optimizer.apply_gradients(
        [(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables]
    )


def test_zero_gradient_step_decays_kernels_only():
    model = tiny_model()
    assert set(snapshot(model)) == KERNELS | NOT_DECAYED
    before = snapshot(model)
    optimizer = build_sgd(0.1, momentum=0.9, weight_decay=0.01, model=model)
    assert optimizer.built
    zero_step(model, optimizer)
    after = snapshot(model)
    for path in KERNELS:
        np.testing.assert_allclose(after[path], before[path] * (1 - 0.1 * 0.01), rtol=1e-6)
    for path in NOT_DECAYED:
        np.testing.assert_array_equal(after[path], before[path])
    decayed = {v.path for v in model.trainable_variables if optimizer.uses_weight_decay(v)}
    assert decayed == KERNELS


def test_one_step_with_gradient_matches_formula():
    model = tiny_model()
    kernel = next(v for v in model.trainable_variables if v.path == "dense/kernel")
    w0 = np.array(kernel.numpy())
    grad = np.full(kernel.shape, 0.5, "float32")
    optimizer = build_sgd(0.1, momentum=0.9, weight_decay=0.01)
    optimizer.apply_gradients([(grad, kernel)])
    # Decoupled: shrink first, then v = -lr * g, w += v.
    np.testing.assert_allclose(kernel.numpy(), w0 * (1 - 1e-3) - 0.1 * grad, rtol=1e-6)


def test_exclude_names_and_disabled_decay():
    model = tiny_model()
    before = snapshot(model)
    optimizer = build_sgd(0.1, weight_decay=0.01, exclude_names=["dense"])
    zero_step(model, optimizer)
    after = snapshot(model)
    assert not np.array_equal(after["conv/kernel"], before["conv/kernel"])
    np.testing.assert_array_equal(after["dense/kernel"], before["dense/kernel"])

    model = tiny_model()
    before = snapshot(model)
    for wd in (None, 0.0):
        zero_step(model, build_sgd(0.1, weight_decay=wd))
    after = snapshot(model)
    for path in before:
        np.testing.assert_array_equal(after[path], before[path])


def test_build_sgd_defaults_and_errors():
    optimizer = build_sgd(0.01)
    assert isinstance(optimizer, KernelDecaySGD)
    assert optimizer.momentum == 0.9 and optimizer.weight_decay == 1e-4
    assert not optimizer.nesterov
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="built"):
        build_sgd(0.01, model=unbuilt)


def test_config_round_trip_keeps_exclusion_rule():
    optimizer = build_sgd(PolyDecay(0.01, 100), weight_decay=0.05,
                          exclude_names=["dense"], nesterov=True)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, KernelDecaySGD)
    config = restored.get_config()
    assert config["exclude_names"] == ["dense"]
    assert config["decay_min_rank"] == 2
    assert config["weight_decay"] == 0.05 and config["nesterov"] is True
    assert config["learning_rate"]["class_name"] == "PolyDecay"
    model = tiny_model()
    before = snapshot(model)
    zero_step(model, restored)
    after = snapshot(model)
    np.testing.assert_array_equal(after["dense/kernel"], before["dense/kernel"])
    np.testing.assert_array_equal(after["bn/gamma"], before["bn/gamma"])
    assert not np.array_equal(after["conv/kernel"], before["conv/kernel"])
