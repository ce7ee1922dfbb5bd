"""Console entry point of the `spgnet` command (pyproject.toml, [project.scripts]).

It lives outside the `spgnet_keras` package on purpose: importing any module of the
package imports TensorFlow (`spgnet_keras/__init__.py` registers the Keras layers), and
TensorFlow's start-up lines (oneDNN notices, "Could not find cuda drivers", cuInit and
cuDNN/cuBLAS factory registrations on GPU machines) can only be held back before that
first import. TF_CPP_MIN_LOG_LEVEL=3 hides TensorFlow's C++ logging once it is set up;
the lines written before absl::InitializeLog() ignore it, so standard error is set aside
while TensorFlow loads and shown only if the import fails. A TF_CPP_MIN_LOG_LEVEL of your
own (e.g. 0) keeps every line.
"""

import os
import sys
import tempfile


def import_cli_quietly():
    """Imports `spgnet_keras.cli` with file descriptor 2 (C++ and Python stderr) captured;
    the captured lines are shown only if the import fails (they may explain why)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import spgnet_keras.cli  # noqa: F401  (imports TensorFlow)
        except BaseException:
            restore_stderr(saved)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        restore_stderr(saved)


def restore_stderr(saved):
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def quiet_python_logging():
    """TensorFlow's and absl's Python loggers to errors only (the command prints its own lines)."""
    import logging

    from absl import logging as absl_logging  # installed with TensorFlow

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv=None):
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import_cli_quietly()
        quiet_python_logging()
    from spgnet_keras.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
