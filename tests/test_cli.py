"""The command line, end to end: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from tcia_trials.cli import main


def test_demo_reads_every_volume_back(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--patients", "2"])
    assert result.exit_code == 0, result.output
    assert "geometry exact" in result.output
    assert "lesions, 0 orphan annotation series" in result.output
    assert "volume[0]:" in result.output and "lesion_patches" in result.output
    assert "MISMATCH" not in result.output
    rerun = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--patients", "1"])
    assert rerun.exit_code == 0, rerun.output


def test_demo_refuses_a_foreign_source_folder(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "was not written by the demo" in result.output
    assert (tmp_path / "source" / "mine.txt").exists()


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "tcia_trials.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "synth" in result.stdout and "demo" in result.stdout
