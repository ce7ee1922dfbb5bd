"""One `spgnet train` per run folder: a lock that a crashed run does not leave stuck.

The lock is an `fcntl.flock` on `RUN/.spgnet-lock`: the operating system releases it when the
process ends, however it ends (a crash, `kill -9`), so a stale lock never blocks the next run.
A second process asking for the same folder is refused at once with the first one's pid and
host. Where `fcntl` does not exist (Windows), runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

from spgnet_keras.errors import SPGNetError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None

LOCK_FILE = ".spgnet-lock"


class RunFolderBusyError(SPGNetError):
    """Another process is training into the same run folder."""


@contextlib.contextmanager
def run_folder_lock(out_dir):
    """Holds `out_dir`'s lock for the duration of the block (creating the folder).

    A folder this call created is removed again when the block fails before anything but the
    lock was written in it, so a refused run leaves no empty run folder behind.

    Args:
        out_dir: str or Path. The run folder.

    Raises:
        RunFolderBusyError: Another process holds the lock.

    Example:

    ```python
    with run_folder_lock("runs/camvid"):
        ...  # train, writing into runs/camvid
    ```
    """
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    handle = open(path, "a+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise RunFolderBusyError(
                    f"{out_dir} is in use by another spgnet train ({owner}): wait for it to end, or choose another "
                    "output folder (--out DIR; run.out_dir). Each worker of a multi-worker run needs its own folder."
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield out_dir
        except BaseException:
            if created and [entry.name for entry in out_dir.iterdir()] == [LOCK_FILE]:
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
    finally:
        handle.close()  # closing the file releases the lock
