"""The recipe's pieces computed on the current Keras backend, for tests/models/test_backends.py.

`recipe_inputs` draws the inputs (saved as .npy by the test); `recipe_pieces` computes, with
the package's code only, what must agree between TensorFlow (in the test process) and JAX
(in its subprocess): the loss values and gradients, the OHEM selection, the metric and two
optimizer steps.
"""

import keras
import numpy as np

NUM_CLASSES = 5
CLASS_WEIGHTS = [0.5, 2.0, 1.0, 3.0, 1.0]
LOSSES = {  # name -> SegmentationCrossEntropy arguments
    "plain": {},
    "class_weights": {"class_weights": CLASS_WEIGHTS},
    "threshold_ohem": {"ohem_threshold": 0.7, "ohem_min_kept": 60, "class_weights": CLASS_WEIGHTS},
    "top_k_ohem": {"ohem_top_k": 0.3},
}
OHEM = {"threshold": {"threshold": 0.7, "min_kept": 60}, "top_k": {"top_k": 0.3}}
VARIABLE_SHAPES = {"kernel": (3, 3, 4, 8), "bias": (8,), "gamma": (8,)}


def recipe_inputs(seed=0):
    """{name: array}: logits/labels (255 ignored) for the loss and metric, a per-pixel
    cross-entropy for OHEM, variables and two steps' gradients for the optimizer."""
    rng = np.random.default_rng(seed)
    shape = (3, 16, 12)
    labels = rng.integers(0, NUM_CLASSES, size=shape).astype("int32")
    labels[rng.random(shape) < 0.2] = 255
    labels[2, :6] = 255  # images with different numbers of valid pixels
    inputs = {"logits": rng.normal(scale=2.0, size=shape + (NUM_CLASSES,)).astype("float32"), "labels": labels,
              "sample_weight": np.array([1.0, 3.0, 0.5], "float32"),
              "ce": rng.exponential(size=shape).astype("float32"), "candidates": labels != 255}
    for name, var_shape in VARIABLE_SHAPES.items():
        inputs[f"var_{name}"] = rng.normal(size=var_shape).astype("float32")
        for step in range(2):
            inputs[f"grad{step}_{name}"] = rng.normal(size=var_shape).astype("float32")
    return inputs


def gradient(function, x):
    """`d function(x) / dx` on the current backend."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.grad(function)(x)
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = function(x)
    return tape.gradient(value, x)


def loss_pieces(inputs):
    """{f"loss_{name}", f"grad_{name}"}: value and logits gradient of each loss in LOSSES
    (the last with per-image sample weights)."""
    from spgnet_keras.losses import SegmentationCrossEntropy

    out = {}
    for name, arguments in LOSSES.items():
        loss = SegmentationCrossEntropy(**arguments)
        weight = inputs["sample_weight"] if name == "top_k_ohem" else None

        def value(logits, loss=loss, weight=weight):
            return loss(inputs["labels"], logits, sample_weight=weight)

        out[f"loss_{name}"] = np.asarray(value(inputs["logits"]))
        out[f"grad_{name}"] = keras.ops.convert_to_numpy(gradient(value, inputs["logits"]))
    return out


def ohem_pieces(inputs):
    """{f"ohem_{mode}"}: the boolean OHEM selections of the same cross-entropy."""
    from spgnet_keras.ohem import ohem_mask

    return {f"ohem_{mode}": keras.ops.convert_to_numpy(ohem_mask(inputs["ce"], inputs["candidates"], **arguments))
            for mode, arguments in OHEM.items()}


def metric_pieces(inputs):
    """{"confusion", "miou"} of SegmentationMeanIoU after three updates (one weighted)."""
    from spgnet_keras.metrics import SegmentationMeanIoU

    metric = SegmentationMeanIoU(NUM_CLASSES)
    logits, labels = inputs["logits"], inputs["labels"]
    metric.update_state(labels, logits)
    metric.update_state(labels[:2], np.argmax(logits[:2], axis=-1).astype("int32"))
    metric.update_state(labels, logits[:, ::-1], sample_weight=inputs["sample_weight"])
    return {"confusion": metric.confusion_matrix(), "miou": np.asarray(metric.result())}


def optimizer_pieces(inputs):
    """{f"step_{name}"}: variables after two steps of the paper's SGD (poly decay, momentum,
    coupled weight decay on kernels only)."""
    from spgnet_keras.optimizers import build_sgd
    from spgnet_keras.schedules import PolyDecay

    variables = [keras.Variable(inputs[f"var_{name}"], name=name) for name in VARIABLE_SHAPES]
    optimizer = build_sgd(PolyDecay(0.1, max_steps=4, power=0.9), momentum=0.9, weight_decay=0.05,
                          decay_variables="kernels")
    for step in range(2):
        optimizer.apply_gradients(zip([inputs[f"grad{step}_{name}"] for name in VARIABLE_SHAPES], variables))
    return {f"step_{name}": keras.ops.convert_to_numpy(v) for name, v in zip(VARIABLE_SHAPES, variables)}


def recipe_pieces(inputs):
    """Every piece above, one dict."""
    return {**loss_pieces(inputs), **ohem_pieces(inputs), **metric_pieces(inputs), **optimizer_pieces(inputs)}
