"""The conversion report: every series and file of a download accounted for, checked against an
independent scan of the source and the built dataset; broken input reported and refused by
``strict``."""

from __future__ import annotations

import json
import shutil

import datasets
import pytest
from click.testing import CliRunner

import tcia_trials as tt
from tcia_trials.build import STAGES, build
from tcia_trials.cli import main
from tcia_trials.errors import StrictBuildError
from tcia_trials.synthetic import generate_collection

PER_SERIES = ("volume", "lesions", "lesion_patches", "slices_2d")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    source = root / "source"
    truth = json.loads(generate_collection(source, patients=2, seed=11).read_text())
    result = build("synthetic_trial", source, root / "out")
    return result, source, truth


@pytest.fixture(scope="module")
def broken(built, tmp_path_factory):
    """A copy of the source with one CT slice truncated in one series and one slice removed
    from another: (source, truncated file, folder of the series missing a slice)."""
    _, source, _ = built
    copy = tmp_path_factory.mktemp("broken") / "source"
    shutil.copytree(source, copy)
    index = tt.scan(copy)
    ct = sorted(
        (s for s in index.series.values() if s.modality == "CT"), key=lambda s: s.series_uid
    )
    truncated = ct[0].paths[4]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    ct[1].paths[9].unlink()
    return copy, truncated, ct[1].paths[0].parent


def test_report_accounts_for_every_series_and_file(built):
    result, source, truth = built
    report = json.loads((result.out / "report.json").read_text())
    index = tt.scan(source)  # independently of the build
    entries = {entry["series_uid"]: entry for entry in report["series"]}
    assert len(entries) == len(report["series"])
    assert set(entries) == set(index.series)
    assert {f["path"] for f in report["skipped_files"]} == {str(p.path) for p in index.skipped}
    assert {e["status"] for e in entries.values()} <= {"converted", "label", "skipped"}
    for uid, entry in entries.items():
        if entry["status"] == "label":
            assert entries[entry["labels"]]["status"] == "converted"
            assert uid in entries[entry["labels"]]["labeled_by"]
        elif entry["status"] == "skipped":
            assert entry["reason"]
        else:
            assert index.series[uid].modality in ("CT", "PT")
            assert set(entry["examples"]) == set(PER_SERIES) and not entry["failed"]
    for config in PER_SERIES:  # examples per series add up to the examples written
        written = sum(e["examples"].get(config, 0) for e in entries.values())
        assert (
            written
            == sum(report["configs"][config].values())
            == sum(result.configs[config].values())
        )
    volumes = datasets.load_dataset(str(result.out), "volume")
    lesions = {
        (row["series_uid"], lesion["lesion_id"]): sorted(lesion["flags"])
        for split in volumes.values()
        for row in split
        for lesion in row["lesions"]
    }
    reported = {(les["series_uid"], les["lesion_id"]): les["flags"] for les in report["lesions"]}
    assert set(reported) == set(lesions)
    assert all(set(lesions[key]) <= set(flags) for key, flags in reported.items())
    assert any(flags for flags in reported.values())  # the synthetic seeds carry quirks
    assert report["clinical_without_images"] == truth["clinical"]["patients_without_images"]
    assert report["images_without_clinical"] == [] and report["warnings"] == []
    markdown = (result.out / "report.md").read_text()
    assert "## Skipped series" in markdown and "## Warnings (0)" in markdown


def test_report_is_deterministic_and_workers_report_the_same(built, tmp_path):
    result, source, _ = built
    seen: dict[str, list[tuple[int, int]]] = {}
    again = build(
        "synthetic_trial",
        source,
        tmp_path,
        num_proc=2,
        progress=lambda stage, done, total: seen.setdefault(stage, []).append((done, total)),
    )
    assert (again.out / "report.json").read_bytes() == (result.out / "report.json").read_bytes()
    assert set(seen) == set(STAGES) - {"arrow"}
    for calls in seen.values():
        assert calls[-1][0] == calls[-1][1]  # every stage runs to its end


def test_broken_files_are_skipped_with_their_path_and_strict_refuses_them(broken, tmp_path):
    copy, truncated, gap_folder = broken
    with pytest.raises(
        StrictBuildError, match=r"strict build of synthetic_trial: \d+ warning"
    ) as info:
        build("synthetic_trial", copy, tmp_path / "out", strict=True)
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder
    report = info.value.report
    assert str(truncated) in str(info.value)
    failed = {w.where: w.message for w in report.warnings if w.kind == "series-failed"}
    assert len(failed) == 2
    assert any(str(truncated) in message and "truncated" in message for message in failed.values())
    assert any("missing slices" in message for message in failed.values())
    assert any(w.kind == "count-mismatch" and str(gap_folder) in w.where for w in report.warnings)
    for uid in failed:  # read from the annotations alone, the lesions are still there
        entry = next(e for e in report.series if e.series_uid == uid)
        assert entry.status == "converted" and entry.examples["lesions"] > 0
        assert set(entry.failed) == {"volume", "lesion_patches", "slices_2d"}
    assert {e.series_uid for e in report.series} == set(tt.scan(copy).series)


def test_cli_strict_exits_non_zero_and_lists_the_warnings(broken, tmp_path):
    copy, truncated, _ = broken
    args = ["build", "synthetic_trial", "--source", str(copy), "--out", str(tmp_path)]
    strict = CliRunner().invoke(main, [*args, "--config", "volume", "--strict", "--quiet"])
    assert strict.exit_code == 1
    assert "strict build of synthetic_trial" in strict.output and str(truncated) in strict.output
    assert "Traceback" not in strict.output and not (tmp_path / "synthetic_trial").exists()
    lenient = CliRunner().invoke(main, [*args, "--config", "volume", "--quiet"])
    assert lenient.exit_code == 0, lenient.output
    assert "warning(s)" in lenient.output and "series-failed" in lenient.output
    assert "report.md" in lenient.output
