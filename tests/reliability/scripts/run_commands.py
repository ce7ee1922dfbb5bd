"""Runs `spgnet` commands in one process (one TensorFlow import) and prints, as the last line
of standard output, a JSON list of {"argv", "code", "stderr"}: used inside a mount namespace
where a folder is read-only (tests/reliability/test_read_only.py).

Usage: run_commands.py COMMANDS.json  (a JSON list of argument lists)
"""

import contextlib
import io
import json
import sys

from spgnet_keras.cli import main


def run(argv):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        except Exception as error:  # noqa: BLE001  (a traceback is a finding: report it)
            code, stderr = "traceback", io.StringIO(f"{type(error).__name__}: {error}")
    return {"argv": argv, "code": code, "stderr": stderr.getvalue()}


if __name__ == "__main__":
    with open(sys.argv[1]) as file:
        commands = json.load(file)
    print(json.dumps([run(argv) for argv in commands]))
