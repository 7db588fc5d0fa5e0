"""The ``lesions`` config from annotation series whose images are not downloaded, and annotation
metadata CSVs that are not TCIA's; checked against the synthetic collection's ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest

import tcia_trials as tt
from tcia_trials.build import build
from tcia_trials.errors import DownloadLayoutError
from tcia_trials.source.annotations import link_annotations, read_lesions_without_images
from tcia_trials.synthetic import generate_collection

FOREIGN_CSV = "Vendor_annotation_metadata.csv"  # matches the default "*nnotation*metadata*.csv"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic-lesions")
    truth = json.loads(generate_collection(out, patients=2, seed=7).read_text())
    return out, truth


def _studies(truth: dict) -> list[dict]:
    return [study for patient in truth["patients"].values() for study in patient["studies"]]


def _copy_without_images(source: Path, truth: dict, target: Path, studies: list[dict]) -> Path:
    """The download without the image series of ``studies`` (and without the NBIA table, which
    would list them)."""
    shutil.copytree(source, target)
    (target / truth["metadata_csv"]).unlink()
    for study in studies:
        for series in study["series"]:
            if series["role"] == "image":
                for name in series["files"]:
                    (target / name).unlink()
    return target


def _rows(result) -> list[dict]:
    loaded = datasets.load_dataset(str(result.out), "lesions")
    return [row for split in loaded.values() for row in split]


def _expected_groups(study: dict) -> dict[str, set[str]]:
    """Image series -> labels of the lesions its annotation series describe (ground truth)."""
    by_id = {lesion["lesion_id"]: lesion["label"] for lesion in study["lesions"]}
    groups: dict[str, set[str]] = {}
    for series in study["series"]:
        if series["role"] not in ("image", "no_findings"):
            labels = {by_id[i] for i in series["lesion_ids"]}
            groups.setdefault(series["referenced_series_uid"], set()).update(labels)
    return groups


def test_annotation_only_download_gives_every_lesion(synthetic, tmp_path):
    source, truth = synthetic
    copy = _copy_without_images(source, truth, tmp_path / "annotations", _studies(truth))
    with pytest.raises(DownloadLayoutError, match=r"volume.*need the images.*--config lesions"):
        build("synthetic_trial", copy, tmp_path / "out")
    result = build("synthetic_trial", copy, tmp_path / "out", config="lesions", strict=True)
    assert result.report is not None and not result.report.warnings
    rows = _rows(result)
    keys = [(row["series_uid"], row["lesion_id"]) for row in rows]
    assert len(keys) == len(set(keys))
    for study in _studies(truth):
        mine = [row for row in rows if row["study_uid"] == study["study_uid"]]
        if study["no_findings"]:
            assert [row["no_findings"] for row in mine] == [True]
            continue
        found: dict[str, set[str]] = {}
        for row in mine:
            found.setdefault(row["series_uid"], set()).add(row["label"])
            assert row["modality"] == "" and row["voxel_count"] is None
            assert row["bbox"] == [] and row["seed_voxel"] == []
        assert found == _expected_groups(study)
        ct_rows = {row["label"]: row for row in mine if row["series_uid"] == study["ct_series_uid"]}
        for lesion in study["lesions"]:
            row = ct_rows[lesion["label"]]
            assert row["seed_lps"] == pytest.approx(lesion["seed_lps"], abs=1e-3)
            if not lesion["small"] and {"seg", "rtstruct"} & set(lesion["annotations"]):
                assert row["volume_ml"] == pytest.approx(lesion["volume_ml"], rel=0.05)
    assert all(entry.status == "label" for entry in result.report.series)


def test_missing_images_of_one_study_keep_its_lesions(synthetic, tmp_path):
    source, truth = synthetic
    study = next(s for s in _studies(truth) if s["lesions"])
    copy = _copy_without_images(source, truth, tmp_path / "partial", [study])
    index = tt.scan(copy)
    links = link_annotations(index)
    absent = study["ct_series_uid"]
    assert absent not in index.series and absent in links.without_images
    standalone = read_lesions_without_images(index, absent, links=links)
    assert {les.label for les in standalone.lesions} == _expected_groups(study)[absent]

    result = build("synthetic_trial", copy, tmp_path / "out", config="lesions")
    rows = _rows(result)
    orphaned = [row for row in rows if row["study_uid"] == study["study_uid"]]
    imaged = [row for row in rows if row["study_uid"] != study["study_uid"]]
    assert {row["label"] for row in orphaned if row["series_uid"] == absent} == {
        les.label for les in standalone.lesions
    }
    assert all(row["voxel_count"] is None for row in orphaned)
    assert all(row["voxel_count"] for row in imaged if not row["no_findings"])
    assert result.report is not None
    assert not [w for w in result.report.warnings if w.kind == "orphan"]  # they gave rows

    with_volumes = build(
        "synthetic_trial", copy, tmp_path / "out2", config=("volume", "lesions")
    )  # the images are missing for the volume config: a warning per annotation series
    orphans = {w.where for w in with_volumes.report.warnings if w.kind == "orphan"}
    assert orphans == set(links.orphans)


def test_foreign_annotation_csv_is_ignored_and_reported(synthetic, tmp_path):
    source, truth = synthetic
    copy = tmp_path / "foreign"
    shutil.copytree(source, copy)
    (copy / truth["annotations_csv"]).unlink()
    (copy / FOREIGN_CSV).write_text("Case,Reader,Score\nA,1,0.5\n")
    reference = link_annotations(tt.scan(source))
    links = link_annotations(tt.scan(copy))
    (why,) = links.problems.values()
    assert str(copy / FOREIGN_CSV) in links.problems
    assert "ignored" in why and "ReferencedSeriesInstanceUID" in why
    assert {k: set(v) for k, v in links.by_image.items()} == {
        k: set(v) for k, v in reference.by_image.items()
    }
    result = build("synthetic_trial", copy, tmp_path / "out", config="lesions")
    assert result.report is not None
    (issue,) = [w for w in result.report.warnings if w.kind == "annotation-csv"]
    assert issue.where == str(copy / FOREIGN_CSV)
