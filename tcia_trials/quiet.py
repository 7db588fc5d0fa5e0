"""Keep TensorFlow's and TFDS's start-up notices away from the user of the command line.

Only logs are silenced, never TensorFlow's numerics (oneDNN stays on).  Since TensorFlow 2.19
the notices printed while ``import tensorflow`` runs (oneDNN custom operations, CPU instructions)
are written before absl logging is initialised and ignore ``TF_CPP_MIN_LOG_LEVEL``
(tensorflow/tensorflow#100442), so the process's stderr is captured during that import and
everything but those INFO notices is written back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["import_tensorflow_quietly", "quiet_tfds", "startup_noise"]

#: Lines of TensorFlow's start-up that inform only: absl's notice that logging is not initialised,
#: INFO records in absl ("I0000 00:00:1796.048 7054 port.cc:153] ...") and TensorFlow
#: ("2025-09-17 14:44:05.157831: I external/...cc:32] ...") format, and the continuation line
#: of the CPU-instructions notice.  Warnings (W) and errors (E) are kept.
_STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] .*"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+: I \S+:\d+\] .*"
    r"|To enable the following instructions: .*in other operations, rebuild TensorFlow .*"
)


def startup_noise(line: str) -> bool:
    """True for a line of stderr that is one of TensorFlow's start-up INFO notices."""
    return _STARTUP_NOISE.fullmatch(line.rstrip("\r\n")) is not None


@contextlib.contextmanager
def _stderr_into(sink: IO[bytes]) -> Iterator[None]:
    """Point the process's file descriptor 2 (C++ and Python writes alike) at ``sink``."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(sink.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow, when installed and not yet imported, without its start-up notices;
    what else it writes to stderr meanwhile (warnings, errors) is written back."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # C++ INFO logs after start-up
    with tempfile.TemporaryFile() as sink:
        try:
            with _stderr_into(sink):
                import tensorflow  # noqa: F401
        finally:
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if not startup_noise(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def quiet_tfds() -> None:
    """TFDS without progress bars and with its absl INFO logs ("Generating splits...") off."""
    import tensorflow_datasets as tfds
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tfds.disable_progress_bar()
