"""Loads an exported SavedModel with TensorFlow alone and runs its signatures.

Run as a script in a fresh interpreter: `python load_without_keras.py EXPORT_DIR REQUEST_DIR RESULT.npz`.
Keras, keras-cv, keras-hub, tf_keras and spgnet_keras are blocked from importing (TensorFlow
tries `import keras` at import time and tolerates an ImportError), so the SavedModel must
load and run from its graph and variables alone, as in TF Serving.
"""

import importlib.abc
import importlib.machinery
import sys

BLOCKED = {"keras", "tf_keras", "keras_cv", "keras_hub", "spgnet_keras"}


class _BlockedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"{spec.name} is blocked: the SavedModel must run without it")

    def exec_module(self, module):
        raise ImportError(f"{module.__name__} is blocked")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _BlockedLoader())
        return None


sys.meta_path.insert(0, _Blocker())

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(export_dir, request_dir, result_path):
    served = tf.saved_model.load(export_dir)
    png = open(f"{request_dir}/image.png", "rb").read()
    jpeg = open(f"{request_dir}/image.jpg", "rb").read()
    small_png = open(f"{request_dir}/small.png", "rb").read()
    image = np.load(f"{request_dir}/image.npy")

    encoded = served.signatures["serving_default"]
    results = {}
    for key, batch in (("png", [png]), ("jpeg", [jpeg]), ("batch", [png, small_png])):
        out = encoded(images=tf.constant(batch))
        for name, value in out.items():
            results[f"{key}_{name}"] = value.numpy()
    out = served.signatures["predict_images"](images=tf.constant(image[None]))
    results.update({f"uint8_{name}": value.numpy() for name, value in out.items()})
    out = served.signatures["predict_images_float"](images=tf.constant(image[None].astype("float32")))
    results.update({f"float_{name}": value.numpy() for name, value in out.items()})
    out = served.signatures["predict_classes_png"](images=tf.constant([png, small_png]))
    for index, data in enumerate(out["classes_png_bytes"].numpy()):
        results[f"classes_png_{index}"] = tf.io.decode_png(data, dtype=tf.uint8).numpy()
    results["classes_png_image_sizes"] = out["image_sizes"].numpy()

    leaked = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
    assert "keras" not in sys.modules and "spgnet_keras" not in sys.modules, leaked
    np.savez(result_path, **results)
    print("signatures:", ",".join(sorted(served.signatures)))
    print("LOADED WITHOUT KERAS")


if __name__ == "__main__":
    main(*sys.argv[1:4])
