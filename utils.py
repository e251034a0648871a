"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file under the final name."""
import os
from contextlib import contextmanager


@contextmanager
def atomic_write(path):
    """Yield a temporary path beside `path` (`<path>.tmp`) to write to; on success it is renamed to
    `path` (one rename: readers see the old file or the whole new one), on error it is removed. A
    temporary file left by a killed process is overwritten by the next write, never read."""
    tmp = f"{path}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
