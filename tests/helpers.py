"""Shared checks run for every layer, model, loss, metric, schedule and optimizer, in the
shape of keras-hub's `TestCase` (`keras_hub/src/tests/test_case.py`):

- `run_serialization_test(instance)`: `get_config` -> `from_config` gives an equal config,
  and a JSON round trip through `keras.saving.serialize_keras_object` /
  `deserialize_keras_object(safe_mode=True)` does too.
- `run_saving_test(layer, inputs, tmp_path)`: a functional model holding the layer saved
  as `.keras` and loaded with `safe_mode=True` gives the same outputs.
- `run_precision_test(make, inputs)`: the object built with `dtype=` a bfloat16 or mixed
  policy computes in it, with float32 variables.
- `run_layer_test(...)`: the three above plus `compute_output_shape` against the real
  output, for a layer.

Values that can be large are compared with `assert_close_at_scale`.
"""

import json
import os

import keras
import numpy as np

PRECISION_POLICIES = ("mixed_bfloat16", "bfloat16")


def _as_list(outputs):
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def assert_outputs_equal(actual, expected, atol=1e-6):
    actual, expected = _as_list(actual), _as_list(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(e), atol=atol)


def assert_weight_counts_equal(actual, expected):
    """Same number of variables, trainable and not, and the same parameter count."""
    assert len(actual.trainable_weights) == len(expected.trainable_weights)
    assert len(actual.non_trainable_weights) == len(expected.non_trainable_weights)
    assert actual.count_params() == expected.count_params()


def _shapes(structure):
    """Shapes of a tensor, or a list / dict of tensors or shapes, as tuples."""
    if isinstance(structure, dict):
        return {key: _shapes(value) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)) and structure and not isinstance(structure[0], (int, type(None))):
        return [_shapes(value) for value in structure]
    return tuple(getattr(structure, "shape", structure))


def assert_output_shape_matches(layer, inputs, outputs):
    """`layer.compute_output_shape` (what functional models use) equals the real shapes."""
    declared = _shapes(layer.compute_output_shape(_shapes(inputs)))
    actual = _shapes(outputs)
    assert declared == actual, f"{type(layer).__name__}.compute_output_shape gives {declared}, output is {actual}"


def run_layer_serialization_test(layer, inputs, tmp_path):
    """`layer` rebuilt from its config gives the same outputs with the same weights, its
    `compute_output_shape` is right, and a model holding it round-trips through `.keras`
    with `safe_mode=True`."""
    expected = layer(inputs, training=False)
    assert_output_shape_matches(layer, inputs, expected)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    clone(inputs, training=False)
    assert_weight_counts_equal(clone, layer)
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == config
    assert_outputs_equal(clone(inputs, training=False), expected)

    run_serialization_test(layer)  # JSON round trip through keras.saving
    run_saving_test(layer, inputs, tmp_path)  # inside a functional model, .keras, safe_mode=True
    return expected


def run_model_serialization_test(model, inputs, tmp_path):
    """get_config/from_config and `.keras` save/load (safe_mode=True) keep the outputs."""
    expected = model(inputs, training=False)
    path = os.path.join(tmp_path, f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert_weight_counts_equal(loaded, model)
    assert_outputs_equal(loaded(inputs, training=False), expected)
    rebuilt = model.__class__.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    assert_outputs_equal(rebuilt(inputs, training=False), expected)
    return loaded


def assert_close_at_scale(actual, expected, relative=1e-5):
    """Equal up to float32 round-off at the values' magnitude: two computation paths through a
    network (a batch or one image, windows, another CPU's kernels, oneDNN on or off) agree to
    about 1e-5 of the largest value (measured: 1.4e-4 on log-probabilities near -87 and 1.8e-4 on
    logits near 110 with oneDNN off); an absolute 1e-5 holds only on the CPU it was tuned on."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=0, atol=relative * scale)


def run_serialization_test(instance):
    """Config and JSON round trips of a Keras object (layer, loss, metric, schedule, optimizer).

    Args:
        instance: a Keras object with `get_config` / `from_config`, registered for
            serialization.

    Returns:
        The object revived from its JSON serialization.
    """
    config = instance.get_config()
    json.dumps(config)  # the config is plain JSON
    revived = type(instance).from_config(config)
    assert revived.get_config() == config, (revived.get_config(), config)
    serialized = keras.saving.serialize_keras_object(instance)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)), safe_mode=True)
    assert type(restored) is type(instance)
    assert restored.get_config() == config
    again = keras.saving.serialize_keras_object(restored)
    for key in ("module", "class_name", "registered_name", "config"):  # build_config only when built
        assert again.get(key) == serialized.get(key), key
    return restored


def run_saving_test(layer, inputs, tmp_path, atol=1e-6):
    """A functional model holding `layer` (built on `inputs`) survives `.keras` save/load
    with `safe_mode=True`: same class, weights and outputs."""
    expected = layer(inputs, training=False)
    symbolic = keras.tree.map_structure(lambda x: keras.Input(shape=x.shape[1:], dtype=x.dtype), inputs)
    clone = layer.__class__.from_config(layer.get_config())
    model = keras.Model(symbolic, clone(symbolic))
    clone.set_weights(layer.get_weights())
    assert_outputs_equal(model(inputs, training=False), expected, atol=atol)
    run_model_serialization_test(model, inputs, tmp_path)


def run_precision_test(make, inputs, policies=PRECISION_POLICIES, float32_outputs=()):
    """`make(dtype)` under bfloat16 policies computes in the policy, keeps float32 variables
    (mixed) and gives finite outputs of the compute dtype.

    Args:
        make: callable. `make(dtype)` returns the object (a layer) built with `dtype=`.
        inputs: the layer's float32 inputs.
        policies: tuple of str. The dtype policies to try.
        float32_outputs: tuple of int. Indices of flat outputs that stay float32 (logits).
    """
    for policy in policies:
        expected = keras.dtype_policies.get(policy)
        layer = make(policy)
        outputs = keras.tree.flatten(layer(inputs, training=False))
        assert layer.dtype_policy.name == policy
        assert layer.compute_dtype == expected.compute_dtype
        for index, output in enumerate(outputs):
            wanted = "float32" if index in float32_outputs else expected.compute_dtype
            assert keras.backend.standardize_dtype(output.dtype) == wanted, (policy, index)
            assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))).all()
        for variable in layer.weights:
            assert variable.dtype == expected.variable_dtype or variable.dtype == "float32", variable.path
        assert keras.dtype_policies.deserialize(layer.get_config()["dtype"]).name == policy


def run_layer_test(make, inputs, tmp_path, float32_outputs=()):
    """Every shared check of a layer: output shape, serialization, saving and precision.

    Args:
        make: callable. `make(dtype)` returns a fresh layer (`dtype` None: the default).
        inputs: the layer's inputs (arrays, or a list of arrays).
        tmp_path: a temporary folder for the `.keras` file.
        float32_outputs: tuple of int. Flat outputs that stay float32 under any policy.

    Returns:
        The layer's float32 outputs.
    """
    layer = make(None)
    expected = run_layer_serialization_test(layer, inputs, tmp_path)
    run_precision_test(make, inputs, float32_outputs=float32_outputs)
    return expected


class TestCase:
    """keras-hub's `TestCase` methods for pytest test classes (`class TestX(TestCase)`)."""

    run_serialization_test = staticmethod(run_serialization_test)
    run_saving_test = staticmethod(run_saving_test)
    run_precision_test = staticmethod(run_precision_test)
    run_layer_test = staticmethod(run_layer_test)
    run_model_serialization_test = staticmethod(run_model_serialization_test)
    assert_close_at_scale = staticmethod(assert_close_at_scale)


def tiny_run_config(root, epochs, steps, width=8, val_max_images=1):
    """The YAML of a tiny `spgnet train` run on a synthetic folder (ResNet-18, 64x96 crops)."""
    return f"""
experiment: synthetic_demo
model:
  preset: spgnet_r18x1_128
  arguments: {{decoder_channels: {width}}}
data:
  root: {root}
  crop_size: [64, 96]
  batch_size: 2
  val_max_images: {val_max_images}
  validate: false
run:
  epochs: {epochs}
  steps_per_epoch: {steps}
  verbose: 2
"""
