"""The command line, end to end: exit codes and messages."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcia_trials.cli import main


def _demo_line(line: str) -> bool:
    """True for a line the demo prints: a numbered step, an indented detail, a note or the
    closing list."""
    return bool(re.match(r"(\d\. |   |note: |Where everything is:$)", line))


def _our_errors(stderr: str) -> list[str]:
    """Lines of stderr from tcia-trials that report a failure (click errors, tracebacks, our
    loggers' errors); other programs' lines are not judged."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(("Error:", "Traceback", "ERROR tcia_trials", "CRITICAL tcia_trials"))
    ]


def _where(output: str) -> dict[str, Path]:
    """The demo's closing list: what -> path."""
    listing = output.split("Where everything is:\n", 1)[1]
    found = re.findall(r"^   (\S+(?: \S+)?) +(/\S+)", listing, flags=re.MULTILINE)
    return {what: Path(path) for what, path in found}


def test_demo_builds_loads_verifies_and_says_where_everything_is(tmp_path, monkeypatch):
    """As a user runs it (TFRecord); then again over its own output with one patient and without
    TensorFlow (array_record): the earlier build must not leak into the new one."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcia_trials.cli",
            "demo",
            "--out",
            str(tmp_path),
            "--patients",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert "geometry exact" in output and "MISMATCH" not in output
    assert "lesions, 0 orphan annotation series" in output
    assert "TFDS (TFRecord)" in output and "load_dataset and tfds.load:" in output
    assert "volume[0]:" in output and "lesion_patches[0]:" in output
    assert output.count(": equal in both") == 2
    assert "verify: tcia-trials verify" in output and "FAIL" not in output
    assert all(_demo_line(line) for line in output.splitlines()), output  # ours only
    assert _our_errors(result.stderr) == []
    where = _where(output)
    assert list(where) == ["source", "HF dataset", "TFDS data_dir", "report", "previews", "card"]
    assert all(path.exists() for path in where.values()), where
    assert (where["TFDS data_dir"] / "synthetic_trial" / "volume" / "1.1.0").is_dir()
    assert len(list(where["previews"].glob("*.png"))) > 1

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real_find_spec(name, *a),
    )
    rerun = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--patients", "1"])
    assert rerun.exit_code == 0, rerun.output
    assert "TensorFlow is not installed" in rerun.output
    assert "TFDS (array_record)" in rerun.output and "and as_data_source:" in rerun.output
    assert rerun.output.count(": equal in both") == 2
    assert all(path.exists() for path in _where(rerun.output).values())


@pytest.mark.parametrize("folder", ["source", "datasets/synthetic_trial"])
def test_demo_refuses_a_foreign_folder(tmp_path, folder):
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "mine.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "was not written by the demo" in result.output
    assert (tmp_path / folder / "mine.txt").exists()


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "tcia_trials.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "synth" in result.stdout and "demo" in result.stdout


def test_ctrl_c_stops_a_build_with_exit_130_and_leaves_no_dataset(tmp_path):
    """SIGINT to the process group of a running build: exit code 130, one line on stderr (none
    from the worker processes), no output folder."""
    from tcia_trials.synthetic import generate_collection

    source = tmp_path / "source"
    generate_collection(source, patients=2, seed=3)
    out = tmp_path / "out"
    build = subprocess.Popen(
        [
            *(sys.executable, "-m", "tcia_trials.cli", "build", "synthetic_trial"),
            *("--source", str(source), "--out", str(out), "--num-proc", "2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # a shell's background jobs ignore SIGINT, and children inherit that: restore it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*/data/.*.partial-*")):  # the build is writing its examples
        assert build.poll() is None and time.monotonic() < deadline, build.communicate()
        time.sleep(0.05)
    os.killpg(build.pid, signal.SIGINT)  # Ctrl-C: the build and its worker processes
    stdout, stderr = build.communicate(timeout=120)
    assert build.returncode == 130, (stdout, stderr)
    interrupted = (
        f"Interrupted: the build was abandoned; {out} holds no partial dataset that looks complete."
    )
    assert stderr.splitlines().count(interrupted) == 1
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr  # none from workers
    assert not out.exists()


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    from tcia_trials.synthetic import generate_collection

    source = tmp_path_factory.mktemp("cli") / "source"
    generate_collection(source, patients=1, seed=3)
    return source


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tcia_trials.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-name", "unknown builder 'synthetic_trail': did you mean 'synthetic_trial'?"),
        ("missing-folder", "is not a folder; pass the download folder of"),
        ("empty-download", "the folder is empty"),
        ("wrong-collection", "It looks like a download for builder synthetic_trial."),
        ("wrong-config", "has no config 'patches'"),
    ],
)
def test_build_errors_exit_1_with_a_message_and_no_traceback(
    case, expected, small_source, tmp_path
):
    empty = tmp_path / "empty"
    empty.mkdir()
    name, source, extra = {
        "wrong-name": ("synthetic_trail", small_source, []),
        "missing-folder": ("synthetic_trial", tmp_path / "nowhere", []),
        "empty-download": ("synthetic_trial", empty, []),
        "wrong-collection": ("ispy1", small_source, []),
        "wrong-config": ("synthetic_trial", small_source, ["--config", "patches"]),
    }[case]
    run = _cli("build", name, "--source", str(source), "--out", str(tmp_path / "out"), *extra)
    assert run.returncode == 1, run.stdout + run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()  # nothing written


def test_build_prints_a_summary_and_verify_passes(small_source, tmp_path):
    run = _cli(
        "build", "synthetic_trial", "--source", str(small_source), "--out", str(tmp_path), "-q"
    )
    assert run.returncode == 0, run.stderr
    assert "synthetic_trial 1.1.0 ->" in run.stdout and "report:" in run.stdout
    checked = _cli("verify", str(tmp_path / "synthetic_trial"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "verified" in checked.stdout


def test_a_download_of_another_collection_is_refused_unless_allowed(small_source, tmp_path):
    refused = _cli("build", "eay131", "--source", str(small_source), "--out", str(tmp_path), "-q")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "builder 'eay131' expects the collection or trial EAY131" in refused.stderr
    assert "found SYNTH-TRIAL in" in refused.stderr and "Traceback" not in refused.stderr
    assert not any(tmp_path.iterdir())  # nothing written
    allowed = _cli(
        *("build", "eay131", "--source", str(small_source), "--out", str(tmp_path), "-q"),
        *("--config", "lesions", "--allow-collection-mismatch"),
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "license: cc-by-4.0" in (tmp_path / "eay131" / "README.md").read_text()


def test_generic_takes_the_name_license_and_citation_of_the_data(small_source, tmp_path):
    bib = tmp_path / "mine.bib"
    bib.write_text("@misc{doe2024,\n  title = {Liver CT labels},\n  doi = {10.1234/LIVER.42},\n}\n")
    run = _cli(
        *("build", "generic", "--source", str(small_source), "--out", str(tmp_path / "out")),
        *("--config", "lesions", "-q", "--name-as", "liver_set", "--license", "cc-by-nc-4.0"),
        *("--citation", str(bib)),
    )
    assert run.returncode == 0, run.stderr
    card = (tmp_path / "out" / "liver_set" / "README.md").read_text()
    header = card.split("\n---\n", 1)[0]
    assert "license: cc-by-nc-4.0" in header and "pretty_name: liver_set (" in header
    assert "| doe2024 | images | [10.1234/LIVER.42](https://doi.org/10.1234/LIVER.42) |" in card
    assert "title = {Liver CT labels}" in card.split("## Citation", 1)[1]
    assert "creativecommons.org/licenses/by-nc/4.0/" in card.split("## License", 1)[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--license", "my terms"], "license 'my terms' is not one this version knows"),
        (["--citation", "@misc{x, title = {T}}"], "give the license of the data"),
        (["--license", "MIT", "--citation", "Doe J. My data."], "neither BibTeX text"),
        (["--license", "MIT", "--citation", "@misc{x, title = {T}}"], "entry 'x' has no doi"),
    ],
)
def test_generic_license_and_citation_errors_are_clear(args, expected, small_source, tmp_path):
    run = _cli("build", "generic", "--source", str(small_source), "--out", str(tmp_path), *args)
    assert run.returncode == 1 and expected in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and not any(tmp_path.iterdir())


def test_license_and_citation_belong_to_builders_without_sources(small_source, tmp_path):
    run = _cli(
        *("build", "synthetic_trial", "--source", str(small_source), "--out", str(tmp_path)),
        *("--license", "CC BY 4.0"),
    )
    assert run.returncode == 1 and "states the license and citation of its sources" in run.stderr


def test_quiet_tfds_build_prints_only_its_summary(small_source, tmp_path):
    pytest.importorskip("tensorflow")
    run = _cli(
        *("build", "synthetic_trial", "--source", str(small_source), "--out", str(tmp_path)),
        *("--config", "lesions", "--format", "hf,tfds", "--quiet"),
    )
    assert run.returncode == 0, run.stderr
    first, *rest = run.stdout.splitlines()
    assert first.startswith(f"synthetic_trial 1.1.0 -> {tmp_path}")
    assert rest and all(line.startswith("  ") for line in rest), run.stdout  # nothing from TFDS
    assert "tfds (tfrecord):" in run.stdout and _our_errors(run.stderr) == []


def test_repeated_builds_exit_cleanly(small_source, tmp_path):
    """Each build ends with exit code 0: no thread of Arrow (card statistics, the Arrow copy)
    outlives the interpreter, which would abort it with exit code 134."""
    for attempt in range(5):
        run = _cli(
            *("build", "synthetic_trial", "--source", str(small_source), "-q"),
            *("--out", str(tmp_path / str(attempt)), "--config", "lesions", "--format", "hf,arrow"),
        )
        assert run.returncode == 0, (attempt, run.returncode, run.stderr)
