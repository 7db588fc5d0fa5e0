"""TensorFlow's start-up notices are dropped, its warnings and errors kept (a stand-in module
plays TensorFlow, so no test depends on what a TensorFlow release prints)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tcia_trials.quiet import startup_noise

ONEDNN = (
    "I0000 00:00:1796237893.048438    7054 port.cc:153] oneDNN custom operations are on. You may "
    "see slightly different numerical results due to floating-point round-off errors."
)
CPU = (
    "I0000 00:00:1796237893.112308    7054 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations."
)
CPU_MORE = (
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags."
)
PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
OLD_FORMAT_INFO = (
    "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not "
    "find cuda drivers on your machine, GPU will not be used."
)
WARNING = "W0000 00:00:1758131045.228 3722035 computation_placer.cc:177] computation placer exists"
ERROR = "E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory"


@pytest.mark.parametrize("line", [ONEDNN, CPU, CPU_MORE, PREAMBLE, OLD_FORMAT_INFO])
def test_start_up_info_is_noise(line):
    assert startup_noise(line) and startup_noise(line + "\n")


@pytest.mark.parametrize(
    "line", [WARNING, ERROR, "Traceback (most recent call last):", "Error: no such folder", ""]
)
def test_warnings_errors_and_other_lines_are_kept(line):
    assert not startup_noise(line)


def test_import_keeps_only_what_is_not_start_up_noise(tmp_path):
    package = tmp_path / "tensorflow"
    package.mkdir()
    written = "\n".join([PREAMBLE, ONEDNN, WARNING, CPU, CPU_MORE, ERROR]) + "\n"
    (package / "__init__.py").write_text(
        f"import os, sys\nos.write(2, {written.encode()!r})\n"
        "sys.stderr.write('a Python warning\\n')\n"
    )
    script = textwrap.dedent(
        """
        import os, sys
        from tcia_trials.quiet import import_tensorflow_quietly
        import_tensorflow_quietly()
        import_tensorflow_quietly()  # imported already: nothing happens
        print("tensorflow" in sys.modules, os.environ["TF_CPP_MIN_LOG_LEVEL"])
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "True 1\n"
    assert run.stderr.splitlines() == [WARNING, ERROR, "a Python warning"]
