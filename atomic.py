"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file under the final name."""
import os
from contextlib import contextmanager


@contextmanager
def atomic_write(path):
    """Yield a temporary path beside `path` to write to; on success it is renamed to `path`
    (one rename: readers see the old file or the whole new one), on error it is removed."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
