"""Tests for spgnet_keras.optimizers."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from spgnet_keras.optimizers import KernelDecaySGD, build_sgd
from spgnet_keras.schedules import PolyDecay
from tests.helpers import run_serialization_test


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
    optimizer = build_sgd(0.1, momentum=0.9, weight_decay=0.01, model=model, weight_decay_mode="decoupled")
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
    optimizer = build_sgd(0.1, momentum=0.9, weight_decay=0.01, weight_decay_mode="decoupled")
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
    assert optimizer.weight_decay_mode == "coupled" and optimizer.decay_min_rank == 2
    assert not optimizer.nesterov
    assert build_sgd(0.01, decay_variables="all").decay_min_rank == 0
    with pytest.raises(ValueError, match="weight_decay_mode"):
        build_sgd(0.01, weight_decay_mode="l2")
    with pytest.raises(ValueError, match="decay_variables"):
        build_sgd(0.01, decay_variables="biases")
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="built"):
        build_sgd(0.01, model=unbuilt)


def test_config_round_trip_keeps_exclusion_rule():
    optimizer = build_sgd(PolyDecay(0.01, 100), weight_decay=0.05,
                          exclude_names=["dense"], nesterov=True)
    restored = run_serialization_test(optimizer)  # config and JSON round trips (tests/helpers.py)
    assert isinstance(restored, KernelDecaySGD)
    config = restored.get_config()
    assert config["exclude_names"] == ["dense"]
    assert config["decay_min_rank"] == 2 and config["weight_decay_mode"] == "coupled"
    assert config["weight_decay"] == 0.05 and config["nesterov"] is True
    assert config["learning_rate"]["class_name"] == "PolyDecay"
    model = tiny_model()
    before = snapshot(model)
    zero_step(model, restored)
    after = snapshot(model)
    np.testing.assert_array_equal(after["dense/kernel"], before["dense/kernel"])
    np.testing.assert_array_equal(after["bn/gamma"], before["bn/gamma"])
    assert not np.array_equal(after["conv/kernel"], before["conv/kernel"])


def pytorch_sgd(weights, gradients, lr, momentum, weight_decay, decayed, steps):
    """PyTorch's SGD (no dampening, not Nesterov) in NumPy: g += wd * w; b = m b + g; w -= lr b."""
    weights = {k: v.astype(np.float64) for k, v in weights.items()}
    buffers = {k: np.zeros_like(v) for k, v in weights.items()}
    for step in range(steps):
        for key, w in weights.items():
            g = gradients[step][key] + (weight_decay * w if key in decayed else 0.0)
            buffers[key] = momentum * buffers[key] + g if step else g
            weights[key] = w - lr * buffers[key]
    return weights


@pytest.mark.parametrize("decay_variables", ["all", "kernels"])
def test_coupled_steps_match_numpy_pytorch_sgd(decay_variables):
    """One and two steps of the coupled mode are PyTorch's SGD update (momentum buffer, wd * w
    added to the gradient), on every variable ("all") or the kernels only."""
    model = tiny_model()
    rng = np.random.default_rng(1)
    gradients = [{v.path: rng.normal(size=v.shape).astype("float32") for v in model.trainable_variables}
                 for _ in range(2)]
    decayed = KERNELS | (NOT_DECAYED if decay_variables == "all" else set())
    before = snapshot(model)
    optimizer = build_sgd(0.1, momentum=0.9, weight_decay=0.05, decay_variables=decay_variables)
    for steps in (1, 2):
        optimizer.apply_gradients([(gradients[steps - 1][v.path], v) for v in model.trainable_variables])
        expected = pytorch_sgd(before, gradients, 0.1, 0.9, 0.05, decayed, steps)
        after = snapshot(model)
        for path in before:
            np.testing.assert_allclose(after[path], expected[path], rtol=1e-5, atol=1e-6, err_msg=(steps, path))
    # Decoupled decay differs from this after two steps (it bypasses the momentum buffer).
    model_decoupled = tiny_model()
    decoupled = build_sgd(0.1, momentum=0.9, weight_decay=0.05, decay_variables=decay_variables,
                          weight_decay_mode="decoupled")
    for step in range(2):
        decoupled.apply_gradients([(gradients[step][v.path], v) for v in model_decoupled.trainable_variables])
    assert not np.allclose(snapshot(model_decoupled)["conv/kernel"], expected["conv/kernel"], rtol=1e-4)


def test_configs_saved_before_the_mode_existed_load_decoupled():
    config = keras.optimizers.serialize(build_sgd(0.01, weight_decay_mode="decoupled"))
    del config["config"]["weight_decay_mode"]
    assert keras.optimizers.deserialize(config).weight_decay_mode == "decoupled"
    coupled = keras.optimizers.deserialize(keras.optimizers.serialize(build_sgd(0.01, decay_variables="all")))
    assert coupled.weight_decay_mode == "coupled" and coupled.decay_min_rank == 0


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from spgnet_keras.optimizers import build_sgd

    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(8, 4, 4, 2)).astype("float32")

    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4, 4, 3))
        return keras.Model(inputs, keras.layers.Conv2D(2, 1, name="conv")(inputs))

    def fit(strategy):
        with strategy.scope():
            model = build()
            model.compile(optimizer=build_sgd(0.1, weight_decay=0.5, decay_variables="all"), loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        return [w.tolist() for w in model.get_weights()]

    def zero_gradient_step(strategy):
        with strategy.scope():
            model = build()
            optimizer = build_sgd(0.1, weight_decay=0.5, decay_variables="all", model=model)
        @tf.function
        def step():
            strategy.run(lambda: optimizer.apply_gradients(
                [(tf.zeros_like(v), v) for v in model.trainable_variables]))
        step()
        return [w.tolist() for w in model.get_weights()]

    two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print("JSON:" + json.dumps({
        "replicas": two.num_replicas_in_sync, "initial": [w.tolist() for w in build().get_weights()],
        "fit_one": fit(tf.distribute.get_strategy()), "fit_two": fit(two),
        "zero_two": zero_gradient_step(two)}))
    """
)


def test_coupled_decay_is_counted_once_under_mirrored_strategy(tmp_path):
    """Two replicas (logical CPUs, configured before TensorFlow starts: a child interpreter)
    train to the weights one device does, and a zero-gradient step decays by lr * wd once."""
    script = tmp_path / "mirrored_decay.py"
    script.write_text(_MIRRORED_SCRIPT)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(script), str(repo)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("JSON:")][-1][5:])
    assert result["replicas"] == 2
    for one, two in zip(result["fit_one"], result["fit_two"]):
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)
    for initial, after in zip(result["initial"], result["zero_two"]):
        # First step, zero loss gradient: w - lr * wd * w = 0.95 w (twice the decay would give 0.9 w).
        np.testing.assert_allclose(after, 0.95 * np.asarray(initial), rtol=1e-6)
