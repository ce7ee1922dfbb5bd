"""On KERAS_BACKEND=jax: `spgnet train` a tiny config, predict with its checkpoint, then
`spgnet export` that checkpoint; the strategy refusals of JAX go to RESULT.json.

    python train_export_jax.py CONFIG RUN_DIR EXPORT_DIR IMAGES.npy RESULT.json
"""

import json
import os
import sys

import keras
import numpy as np

from spgnet_keras.cli import main
from spgnet_keras.cli.export_command import check_tensorflow_backend
from spgnet_keras.distribution import make_strategy


def refusal(call):
    try:
        call()
    except ValueError as error:
        return str(error)
    return None


config, run_dir, export_dir, images_path, result_path = sys.argv[1:6]
assert keras.backend.backend() == "jax", keras.backend.backend()
result = {"mirrored": refusal(lambda: make_strategy("mirrored")), "onnx": refusal(lambda: check_tensorflow_backend("onnx"))}
os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"] = "2"  # without the coordinator's address
result["half_configured"] = refusal(lambda: make_strategy("data_parallel"))
del os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"]

assert main(["train", "--config", config, "--set", f"run.out_dir={run_dir}"]) == 0
model = keras.saving.load_model(f"{run_dir}/checkpoints/latest.keras", safe_mode=True)
logits = model.predict(np.load(images_path), verbose=0)["prediction"]
np.save(f"{run_dir}/jax_probabilities.npy", np.asarray(keras.ops.softmax(logits, axis=-1)))
assert main(["export", f"{run_dir}/checkpoints/latest.keras", "--out", export_dir, "--probabilities"]) == 0
with open(result_path, "w") as file:
    json.dump(result, file)
