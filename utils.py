"""Small pieces every script shares: flags checked at parse time, one-line errors, atomic writes and
digests of what is saved.

Usage:
    p = utils.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=utils.positive_int, default=10,
                   help="passes over the train list")
    utils.write_json("out/metrics.json", metrics)     # atomic: the old file or the whole new one
    with utils.atomic_write("out/predictions.h5") as tmp, h5py.File(tmp, "w") as h: ...
    utils.tensors_sha256(model.state_dict())   # what a checkpoint's weights are, whatever its path
"""
import argparse
import hashlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

import numpy as np
import torch

EXIT_USAGE, EXIT_FAILED = 2, 1  # a mistake in the command line; a run that could not be done


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The docstring as written, and every flag's default shown in --help (but for switches, and for
    defaults the help text explains, such as "the checkpoint's")."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text
        if shown and action.option_strings:
            text += " (default: %(default)s)"
        return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the defaults shown in --help and a usage error as one line (exit 2), not the
    usage block: the line names the flag and what was wrong with it."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(formatter_class=HelpFormatter, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, check: Callable, what: str) -> Callable:
    """An argparse type: `kind(text)` when it passes `check`, else an error saying `what` it must
    be."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "0 or more")
positive_float = _number(float, lambda v: v > 0 and np.isfinite(v), "a positive number")
unit_interval = _number(float, lambda v: 0 <= v <= 1, "between 0 and 1")


def int_at_least(low: int) -> Callable:
    return _number(int, lambda v: v >= low, f"an integer of at least {low}")


def int_between(low: int, high: int) -> Callable:
    return _number(int, lambda v: low <= v <= high, f"an integer from {low} to {high}")


def run_cli(main: Callable, args: argparse.Namespace, script: str) -> object:
    """main(args) as a command: a bad input file (ValueError, FileNotFoundError, whose messages name
    it) or an unwritable output (OSError) ends with one line `<script>: <message>` and exit status
    1."""
    try:
        return main(args)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"{script}: {e}") from None
    except OSError as e:  # e.g. a read-only or full output folder
        raise SystemExit(f"{script}: cannot write {e.filename or ''}: {e.strerror or e}") from None


def interruptible(main: Callable, kept: Callable[[argparse.Namespace], str]) -> Callable:
    """main(args) as a long run: Ctrl-C or SIGTERM (a cluster's time limit), or a write that fails
    (a full disk), end with one line saying what happened and kept(args): what is kept and how to
    continue, not a traceback. A torchrun process group is left cleanly."""
    def run(args: argparse.Namespace):
        # SIGINT too: a process started in the background by a shell inherits it ignored
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.default_int_handler)
        try:
            return main(args)
        except KeyboardInterrupt:
            raise SystemExit(f"\ninterrupted: {kept(args)}") from None
        except OSError as e:
            raise SystemExit(f"cannot write {e.filename or args.out} ({e.strerror or e}); "
                             f"{kept(args)}") from None
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
    return run


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


def check_writable(folder: str, flag: str = "--out") -> None:
    """Create `folder` and prove it is writable before any work is done, or stop with one line."""
    probe = os.path.join(folder, f".write-test-{os.getpid()}")  # one per process: torchrun's race
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise SystemExit(f"{flag} {folder}: cannot write there ({e.strerror or e}): "
                         f"choose a folder you can write to") from None


# ----------------------------------------------------------------------------- writing and digests

@contextmanager
def atomic_write(path: str) -> Iterator[str]:
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


def write_json(path: str, obj: object, indent: int | None = 1) -> None:
    """Write `obj` to `path` as JSON through atomic_write (readers never see half a file)."""
    with atomic_write(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)


def tensors_sha256(state: Mapping) -> str:
    """sha256 over a state_dict's names, dtypes, shapes and values, in name order: the same weights
    give the same digest whatever file, path or device they come from."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # uint8: numpy has no bfloat16
    return h.hexdigest()


def text_sha256(*parts: str) -> str:
    """sha256 of text parts (e.g. a split list's entries), separated so that boundaries count."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8") + b"\0")
    return h.hexdigest()


def differences(saved: Mapping, asked: Mapping) -> list[str]:
    """The keys whose values differ between two records (a key missing on one side differs)."""
    return [k for k in dict.fromkeys([*saved, *asked]) if saved.get(k) != asked.get(k)]


def shown(value: object) -> str:
    """A recorded value as a message shows it: digests cut to 12 hex digits."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return repr(value)


def warn(message: str) -> None:
    """A warning line on stderr (the run goes on)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
