"""The layers and the model compute the same function on the JAX backend as on TensorFlow,
and `compile()` + `fit(images, masks)` train on JAX with TensorFlow not even importable,
with its defaults and with the paper's recipe (`recipe_compile_arguments`: OHEM, class
weights, poly-decay SGD with coupled weight decay, the mIoU metric).

The recipe's pieces agree between the backends on the same inputs (one JAX subprocess
computes them all; the references are computed here, on TensorFlow): the loss with OHEM,
class weights, sample weights and ignored pixels (value and gradient), the OHEM selection,
the mIoU metric after a few updates and two optimizer steps.

benchmarks/gpu_speed.py measures SPGNet on a GPU machine that has JAX but no TensorFlow;
these tests pin that what it times is the model the TensorFlow package trains and exports.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spgnet_keras import SPGNet
from tests.backend_recipe import recipe_inputs, recipe_pieces

REPO_ROOT = Path(__file__).resolve().parents[2]

_JAX_SCRIPT = r'''
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    # As if TensorFlow were not installed: importing it raises ModuleNotFoundError.

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
import keras
import spgnet_keras  # registers the layers
from spgnet_keras import SPGNet
assert keras.backend.backend() == "jax", keras.backend.backend()

folder = sys.argv[1]
images = np.load(f"{folder}/images.npy")
result = {}
for name in ("spg", "ge"):
    model = keras.saving.load_model(f"{folder}/{name}.keras", safe_mode=True)
    outputs = model(images, training=False)
    for key, value in outputs.items():
        np.save(f"{folder}/{name}_{key}_jax.npy", np.asarray(value))
    result[name] = sorted(outputs)

# compile() with its defaults and fit on uint8 (image, mask) pairs, without TensorFlow:
# SPGNet.compute_loss gives the one mask to every output; gradients reach every variable.
rng = np.random.default_rng(0)
scenes = rng.integers(0, 256, size=(8, 64, 64, 3), dtype=np.uint8)
masks = (scenes[..., 0] > 127).astype(np.uint8) + 2 * (scenes[..., 1] > 127).astype(np.uint8)
masks[:, :3] = 255
model = SPGNet(4, backbones=("resnet18", "resnet18"), decoder_channels=8)
model.compile()
before = [np.array(v) for v in model.trainable_variables]
history = model.fit(scenes, masks, batch_size=4, epochs=4, verbose=0)
changed = [not np.array_equal(b, np.array(v)) for b, v in zip(before, model.trainable_variables)]
scores = model.evaluate(scenes, masks, batch_size=4, verbose=0, return_dict=True)
result.update(loss=history.history["loss"], keys=sorted(history.history), miou=float(scores["prediction_miou"]),
              changed=sum(changed), trainable=len(changed))

# The paper's recipe: OHEM, class weights, poly-decay SGD; a label out of range stops fit under jit.
from spgnet_keras.config import LossConfig, OptimizerConfig
from spgnet_keras.recipe import recipe_compile_arguments
model.compile(**recipe_compile_arguments(model, OptimizerConfig(learning_rate=0.02), LossConfig(
    ohem_threshold=0.7, ohem_min_kept=500, class_weights=[1.0, 2.0, 1.0, 0.5]), max_steps=4))
recipe = model.fit(scenes[:4], masks[:4], batch_size=4, epochs=1, verbose=0).history
masks[1, 10, 10] = 9
try:
    model.fit(scenes[:4], masks[:4], batch_size=4, epochs=1, verbose=0)
    jit_error = ""
except Exception as error:  # JaxRuntimeError around the check's InvalidInputError
    jit_error = f"{type(error).__name__}: {error}"
result.update(recipe_keys=sorted(recipe), recipe_loss=recipe["loss"], recipe_optimizer=type(model.optimizer).__name__,
              recipe_losses=sorted(type(loss).__name__ for loss in model.loss.values()), jit_error=jit_error[:3000])

# The recipe's pieces on JAX, for test_recipe_pieces_agree_with_tensorflow.
from tests.backend_recipe import recipe_pieces
np.savez(f"{folder}/recipe_jax.npz", **recipe_pieces(dict(np.load(f"{folder}/recipe_inputs.npz"))))
try:  # exporting needs TensorFlow: one sentence saying where to run it
    import spgnet_keras.export  # noqa: F401
except ModuleNotFoundError as missing:
    result["export_error"] = str(missing)
result["tf_loaded"] = "tensorflow" in sys.modules
print("JSON:" + json.dumps(result))
'''


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    # RGB 0-255 at a size that is not a multiple of 32: normalised, padded and cropped by the model.
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 45, 70, 3)).astype("float32")
    np.save(folder / "images.npy", images)
    np.savez(folder / "recipe_inputs.npz", **recipe_inputs())
    expected = {}
    for name in ("spg", "ge"):
        model = SPGNet(3, backbones=("resnet18", "resnet18"), decoder_channels=16, guidance=name,
                       image_shape=(None, None, 3))
        model.save(folder / f"{name}.keras")
        expected[name] = {k: np.asarray(v) for k, v in model(images, training=False).items()}
    script = folder / "jax_check.py"
    script.write_text(_JAX_SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON:")][-1]
    return folder, expected, json.loads(line[len("JSON:"):])


@pytest.mark.parametrize("guidance", ["spg", "ge"])
def test_jax_backend_outputs_match_tensorflow(jax_run, guidance):
    folder, expected, result = jax_run
    assert result[guidance] == sorted(expected[guidance])
    for key, reference in expected[guidance].items():
        actual = np.load(folder / f"{guidance}_{key}_jax.npy")
        assert actual.shape == reference.shape == (2, 45, 70, 3)
        relative = np.linalg.norm(actual - reference) / np.linalg.norm(reference)
        assert relative < 1e-4, (guidance, key, relative)


def test_jax_backend_compile_defaults_fit_without_tensorflow(jax_run):
    _, _, result = jax_run
    assert not result["tf_loaded"]
    assert {"prediction_loss", "stage1_loss", "prediction_miou"} <= set(result["keys"])
    assert np.isfinite(result["loss"]).all()
    assert result["loss"][-1] < result["loss"][0], result["loss"]
    assert 0.0 < result["miou"] <= 1.0
    assert result["changed"] == result["trainable"] > 100


def test_jax_backend_fits_the_papers_recipe_and_checks_labels_under_jit(jax_run):
    _, _, result = jax_run
    assert result["recipe_optimizer"] == "KernelDecaySGD"
    assert result["recipe_losses"] == ["SegmentationCrossEntropy"] * 2
    assert {"prediction_loss", "stage1_loss", "prediction_miou"} <= set(result["recipe_keys"])
    assert np.isfinite(result["recipe_loss"]).all()
    assert "SegmentationCrossEntropy: label values must lie in [0, num_classes) = [0, 4)" in result["jit_error"]
    assert "values in [9, 9]" in result["jit_error"]
    assert result["export_error"].startswith("spgnet_keras.export writes TensorFlow SavedModels and needs TensorFlow")


# Float32 on both sides, the same formulas summed in a different order (TensorFlow's fused
# softmax cross-entropy, XLA's fusions): losses and gradients differed by at most 1.4e-6
# relative on this project's AMX Xeon (recipe_pieces run on both backends), so 1e-5 leaves
# room for another CPU's reduction order; atol covers gradients that cancel to ~1e-9.
# Selections, counts and the optimizer steps (element-wise) came out bit-equal.
RTOL, ATOL = 1e-5, 1e-6


def test_recipe_pieces_agree_with_tensorflow(jax_run):
    folder, _, _ = jax_run
    actual = dict(np.load(folder / "recipe_jax.npz"))
    inputs = dict(np.load(folder / "recipe_inputs.npz"))
    expected = recipe_pieces(inputs)
    assert sorted(actual) == sorted(expected)
    for name, reference in expected.items():
        if reference.dtype == bool or name == "confusion":  # selections and counts: exactly equal
            np.testing.assert_array_equal(actual[name], reference, err_msg=name)
        else:
            np.testing.assert_allclose(actual[name], reference, rtol=RTOL, atol=ATOL, err_msg=name)
    # The inputs exercise what is compared: OHEM drops pixels, the steps moved the weights.
    for mode in ("threshold", "top_k"):
        assert 0 < expected[f"ohem_{mode}"].sum() < inputs["candidates"].sum(), mode
    assert expected["loss_threshold_ohem"] > expected["loss_class_weights"]
    assert np.abs(expected["step_kernel"] - inputs["var_kernel"]).min() > 0


@pytest.mark.parametrize("shape, factors", [((2, 5, 7, 3), (2, 2)), ((1, 16, 32, 19), (4, 4)),
                                            ((1, 3, 4, 2), (3, 8)), ((2, 8, 8, 4), (1, 2))])
def test_integer_factor_upsampling_equals_tf_image_resize(shape, factors):
    import tensorflow as tf

    from spgnet_keras.layers.resize import upsample_by_integer_factors

    x = np.random.default_rng(3).normal(size=shape).astype("float32")
    size = (shape[1] * factors[0], shape[2] * factors[1])
    expected = tf.image.resize(x, size, method="bilinear").numpy()
    actual = np.asarray(upsample_by_integer_factors(tf.constant(x), *factors))
    np.testing.assert_allclose(actual, expected, atol=1e-5)
