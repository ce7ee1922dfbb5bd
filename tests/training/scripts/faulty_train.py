"""`spgnet train` with a fault injected at the second backup write of the run (at the end
of the second epoch). Usage: faulty_train.py {fsize|sigterm} TRAIN-ARGS...

fsize: a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored, as a full disk or a quota) set just
before the write, so the write fails with EFBIG ("File too large").
sigterm: half a file is written, then the process sends itself SIGTERM (a preemptible
scheduler's signal; Python's default action ends the process at once).
"""

import os
import resource
import signal
import sys
from pathlib import Path

import keras

MODE, ARGV = sys.argv[1], sys.argv[2:]
original_save = keras.Model.save
calls = []


def save_with_fault(self, filepath, *args, **kwargs):
    if "backup" in Path(filepath).parts:
        calls.append(filepath)
    if len(calls) == 2 and calls[-1] == filepath:
        if MODE == "fsize":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        else:
            with open(filepath, "wb") as file:
                file.write(b"\x89HDF\r\n\x1a\n" + bytes(4096))
            os.kill(os.getpid(), signal.SIGTERM)
    return original_save(self, filepath, *args, **kwargs)


keras.Model.save = save_with_fault

from spgnet_keras.cli import main  # noqa: E402

sys.exit(main(ARGV))
