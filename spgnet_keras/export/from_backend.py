"""`export_saved_model` of a model on another Keras backend (JAX, PyTorch): the model is saved
as a `.keras` file and exported by a child interpreter on the TensorFlow backend, which writes
the SavedModel `export_saved_model` writes there (Keras' own JAX export converts the model
with jax2tf, but the served graph's decoding, padding and argmax are TensorFlow code).

The child is `python -m spgnet_keras.export.from_backend REQUEST.json`; it reports the
package's errors (`InvalidInputError`, `ExportWriteError`) back by name, and they are raised
again here with the child's message.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras

import spgnet_keras
from spgnet_keras.errors import InvalidInputError, SPGNetError

ERROR_FILE = "error.json"


class TensorFlowExportError(SPGNetError, RuntimeError):
    """The TensorFlow child interpreter of an export failed for a reason of its own."""


def export_in_tensorflow_process(model, export_dir, **options):
    """Writes `model`'s SavedModel to `export_dir` from a TensorFlow-backend child
    interpreter; `options` are `export_saved_model`'s keywords (JSON values). Returns the
    `Path` of the version folder."""
    with tempfile.TemporaryDirectory(prefix="spgnet-export-") as folder:
        folder = Path(folder)
        model.save(folder / "model.keras")
        request = {"model": str(folder / "model.keras"), "export_dir": str(export_dir), "options": options}
        (folder / "request.json").write_text(json.dumps(request))
        done = subprocess.run([sys.executable, "-m", __name__, str(folder / "request.json")], env=tensorflow_env(),
                              capture_output=True, text=True)
        error = json.loads((folder / ERROR_FILE).read_text()) if (folder / ERROR_FILE).is_file() else None
    if error is not None:
        raise package_error(error["type"])(error["message"])
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise TensorFlowExportError(
            f"The SavedModel is written by TensorFlow, in a child interpreter (KERAS_BACKEND=tensorflow), which "
            f"failed (exit {done.returncode}); is TensorFlow installed? Its last lines:\n{tail}"
        )
    return Path(export_dir)


def tensorflow_env():
    """The child's environment: the TensorFlow backend, this package importable, no multi-process join."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KERAS_DISTRIBUTION_")}
    env["KERAS_BACKEND"] = "tensorflow"
    package_root = str(Path(spgnet_keras.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def package_error(name):
    """The error class the child named (`TensorFlowExportError` for one not known here)."""
    from spgnet_keras.export.saved_model import ExportWriteError

    known = {cls.__name__: cls for cls in (InvalidInputError, ExportWriteError)}
    return known.get(name, TensorFlowExportError)


def main(request_path):
    """The child: loads the request's model and exports it; a package error goes to `error.json`."""
    from spgnet_keras.export.saved_model import export_saved_model

    request_path = Path(request_path)
    request = json.loads(request_path.read_text())
    model = keras.saving.load_model(request["model"], safe_mode=True)
    try:
        export_saved_model(model, request["export_dir"], **request["options"])
    except SPGNetError as error:
        (request_path.parent / ERROR_FILE).write_text(json.dumps({"type": type(error).__name__, "message": str(error)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
