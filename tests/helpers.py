"""Shared checks run for every layer and model: config round-trip, .keras save/load,
`compute_output_shape` against the real output, and weight counts."""

import os

import keras
import numpy as np


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

    # Same layer inside a functional model, saved and loaded safely.
    symbolic = keras.tree.map_structure(lambda x: keras.Input(shape=x.shape[1:], dtype=x.dtype), inputs)
    model = keras.Model(symbolic, layer.__class__.from_config(config)(symbolic))
    model.layers[-1].set_weights(layer.get_weights())
    run_model_serialization_test(model, inputs, tmp_path)
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
