"""Lesions of the synthetic trial collection against its analytic ground truth, end to end:
scan -> link annotation series -> read_annotations / read_annotation_file."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import tcia_trials as tt
from tcia_trials.errors import AnnotationError
from tcia_trials.source.annotations import link_annotations, read_annotation_file, read_annotations
from tcia_trials.source.lesions import _longest_in_plane, mask_measurements
from tcia_trials.spec import AnnotationRules
from tcia_trials.synthetic import generate_collection


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic-annotations")
    truth = json.loads(generate_collection(out, patients=4, seed=21).read_text())
    index = tt.scan(out)
    return index, truth, out, link_annotations(index)


def _studies(truth):
    return [study for patient in truth["patients"].values() for study in patient["studies"]]


def _analytic_mask(series: dict, lesion: dict) -> np.ndarray:
    k, j, i = np.indices(series["shape"], dtype=np.float64)
    affine = np.array(series["affine"])
    centres = np.stack([k, j, i], axis=-1) @ affine[:3, :3].T + affine[:3, 3]
    return (((centres - lesion["center_lps"]) / lesion["semi_axes_mm"]) ** 2).sum(-1) <= 1


def _series(study: dict, uid: str) -> dict:
    return next(s for s in study["series"] if s["series_uid"] == uid)


def test_every_annotation_series_is_linked(collection):
    _index, truth, _, links = collection
    linked = {uid for uids in links.by_image.values() for uid in uids}
    annotation_series = {
        s["series_uid"]
        for study in _studies(truth)
        for s in study["series"]
        if s["role"] != "image"
    }
    assert linked == annotation_series
    assert links.orphans == {}


def test_ct_lesions_match_ground_truth(collection):
    index, truth, _, links = collection
    checked = 0
    for study in _studies(truth):
        annotations = read_annotations(index, study["ct_series_uid"], links=links)
        assert annotations.no_findings == study["no_findings"]
        assert annotations.lesion_count == len(study["lesions"])
        ct = _series(study, study["ct_series_uid"])
        by_label = {lesion.label: lesion for lesion in annotations.lesions}
        for expected in study["lesions"]:
            lesion = by_label[expected["label"]]
            assert lesion.location == expected["location"]
            assert lesion.time_point == study["time_point"]
            np.testing.assert_allclose(lesion.seed_lps, expected["seed_lps"], atol=1e-3)
            np.testing.assert_allclose(lesion.seed_voxel, expected["seed_voxel"], atol=1e-3)
            assert not any(f.startswith("seed-outside") for f in lesion.flags)
            truth_mask = _analytic_mask(ct, expected)
            overlap = (
                2
                * np.count_nonzero(lesion.mask & truth_mask)
                / (lesion.mask.sum() + truth_mask.sum())
            )
            assert overlap >= 0.95
            if not expected["small"]:
                assert lesion.volume_ml == pytest.approx(expected["volume_ml"], rel=0.03)
            if expected["annotations"].get("seg"):
                np.testing.assert_array_equal(lesion.mask, truth_mask)  # SEG: voxel-exact
            if expected["seed_quirk"] == "extra_triplets":
                assert any(f.startswith("extra-triplets") for f in lesion.flags)
            if expected["seed_quirk"] == "two_point_closed_planar":
                assert any(f.startswith("two-point-closed-planar") for f in lesion.flags)
            if expected["annotations"].get("sr"):
                assert "SR" in lesion.sources
                assert lesion.tracking_uid == expected["tracking_uid"]
            checked += 1
        assert annotations.total_volume_ml == pytest.approx(
            sum(les.volume_ml for les in annotations.lesions)
        )
    assert checked >= 8


def test_pet_lesions_have_suv_statistics(collection):
    index, truth, _, links = collection
    checked = 0
    for study in _studies(truth):
        if not study["pet_series_uid"] or not study["lesions"]:
            continue
        annotations = read_annotations(index, study["pet_series_uid"], links=links)
        by_label = {lesion.label: lesion for lesion in annotations.lesions}
        for expected in study["lesions"]:
            if not expected["annotations"].get("seg_pet"):
                continue
            lesion = by_label[expected["label"]]
            assert lesion.suv_max == pytest.approx(expected["suvmax"], rel=1e-5)
            assert lesion.suv_mean == pytest.approx(expected["suvmean"], rel=1e-5)
            assert lesion.tlg == pytest.approx(lesion.suv_mean * lesion.mtv_ml)
            checked += 1
    assert checked


def test_no_findings_study_is_an_explicit_negative(collection):
    index, truth, _, links = collection
    negatives = [s for s in _studies(truth) if s["no_findings"]]
    assert negatives
    for study in negatives:
        annotations = read_annotations(index, study["ct_series_uid"], links=links)
        assert annotations.no_findings and annotations.lesion_count == 0
        assert [s.status for s in annotations.sources] == ["used"]


def test_label_map_and_bitmask_are_lossless(collection):
    index, truth, _, links = collection
    study = max(_studies(truth), key=lambda s: len(s["lesions"]))
    annotations = read_annotations(index, study["ct_series_uid"], links=links)
    bits = annotations.bitmask()
    labels = annotations.label_map
    assert labels is not None and not annotations.overlaps
    for number, lesion in enumerate(annotations.lesions):
        np.testing.assert_array_equal((bits >> number) & 1, lesion.mask)
        np.testing.assert_array_equal(labels == number + 1, lesion.mask)


def test_overlapping_lesions_keep_every_voxel(collection):
    from dataclasses import replace

    index, truth, _, links = collection
    study = max(_studies(truth), key=lambda s: len(s["lesions"]))
    annotations = read_annotations(index, study["ct_series_uid"], links=links)
    first, second = annotations.lesions[:2]
    grown = replace(second, mask=second.mask | first.mask)
    overlapping = replace(annotations, lesions=(first, grown))
    assert overlapping.overlaps and overlapping.label_map is None
    bits = overlapping.bitmask()
    np.testing.assert_array_equal((bits & 1).astype(bool), first.mask)
    np.testing.assert_array_equal((bits & 2).astype(bool), grown.mask)


def test_standalone_files_give_seeds_and_volumes(collection):
    _, truth, out, _ = collection
    for study in _studies(truth):
        for expected in study["lesions"]:
            seeds = read_annotation_file(out / expected["annotations"]["seed"]["file"])
            assert [lesion.label for lesion in seeds] == [expected["label"]]
            np.testing.assert_allclose(seeds[0].seed_lps, expected["seed_lps"], atol=1e-3)
            if expected["annotations"].get("seg") and not expected["small"]:
                (segmented,) = read_annotation_file(out / expected["annotations"]["seg"]["file"])
                assert segmented.volume_ml == pytest.approx(expected["volume_ml"], rel=0.03)
            if expected["annotations"].get("rtstruct") and not expected["small"]:
                (contoured,) = read_annotation_file(
                    out / expected["annotations"]["rtstruct"]["file"]
                )
                assert contoured.volume_ml == pytest.approx(expected["volume_ml"], rel=0.05)
        negatives = [s for s in study["series"] if s["role"] == "no_findings"]
        for series in negatives:
            assert read_annotation_file(out / series["files"][0]) == []


def test_annotation_rules_are_data():
    rules = AnnotationRules()
    assert rules.time_point_source == "tag"
    with pytest.raises(ValueError, match="named group 'label'"):
        AnnotationRules(lesion_pattern=r"(?P<location>.+)")
    with pytest.raises(ValueError, match="time_point_source"):
        AnnotationRules(time_point_source="guess")


def test_series_description_rules_parse_tcia_names():
    from tcia_trials.source.annotations import _Labeler

    labeler = _Labeler(AnnotationRules())
    assert labeler.parse("Pre-dose, LIVER - 1") == {
        "label": "LIVER - 1",
        "location": "LIVER",
        "time_point": "Pre-dose",
        "seed": None,
    }
    parsed = labeler.parse("Follow-up consultation, LYMPH NODE - 12 - SEED POINT")
    assert (parsed["label"], parsed["seed"]) == ("LYMPH NODE - 12", "- SEED POINT")
    assert labeler.is_no_findings("Pre-dose, LESION SEED POINT - NO FINDINGS")
    assert labeler.parse("CT 2.5mm STND") is None


def test_longest_diameter_equals_brute_force():
    rng = np.random.default_rng(0)
    row_step, col_step = np.array([0.0, 0.7, 0.1]), np.array([1.3, 0.0, 0.2])
    for _ in range(100):
        plane = rng.random((rng.integers(1, 12), rng.integers(1, 12))) > rng.random()
        rows, cols = np.nonzero(plane)
        if not len(rows):
            continue
        points = rows[:, None] * row_step + cols[:, None] * col_step
        brute = max(np.linalg.norm(a - b) for a, b in itertools.product(points, points))
        assert _longest_in_plane(plane, row_step, col_step) == pytest.approx(brute)


def test_mask_measurements_of_a_box():
    mask = np.zeros((5, 6, 7), bool)
    mask[1:3, 2:5, 1:7] = True
    affine = np.diag([2.0, 0.5, 0.25, 1.0])
    sizes = mask_measurements(mask, affine)
    assert sizes["voxel_count"] == 36
    assert sizes["volume_ml"] == pytest.approx(36 * 0.25 / 1000)
    assert sizes["bbox"] == (1, 2, 1, 3, 5, 7)
    assert sizes["longest_diameter_mm"] == pytest.approx(np.hypot(2 * 0.5, 5 * 0.25))


def test_unknown_series_is_a_clear_error(collection):
    index, _, _, _ = collection
    with pytest.raises(tt.SeriesNotFoundError, match=r"series 9\.9 is not in the index"):
        read_annotations(index, "9.9")


def test_annotation_referencing_a_missing_series_is_an_orphan(collection, tmp_path):
    import shutil

    _index, truth, out, _ = collection
    study = next(s for s in _studies(truth) if s["lesions"] and not s["pet_series_uid"])
    copy = tmp_path / "partial"
    shutil.copytree(out, copy)
    for name in _series(study, study["ct_series_uid"])["files"]:
        (copy / name).unlink()
    links = link_annotations(tt.scan(copy))
    orphaned = {s["series_uid"] for s in study["series"] if s["role"] != "image"}
    assert orphaned <= set(links.orphans)
    assert all("not in the download" in links.orphans[uid] for uid in orphaned)


def test_read_annotation_file_refuses_images(collection):
    _, truth, out, _ = collection
    study = _studies(truth)[0]
    image = out / _series(study, study["ct_series_uid"])["files"][0]
    with pytest.raises(tt.TciaTrialsError, match="expected SEG, RTSTRUCT or SR"):
        read_annotation_file(Path(image))


def test_seg_lesions_keep_segment_description(collection):
    index, truth, _, links = collection
    study = next(
        s for s in _studies(truth) if any(les["annotations"].get("seg") for les in s["lesions"])
    )
    annotations = read_annotations(index, study["ct_series_uid"], links=links)
    segmented = [les for les in annotations.lesions if "SEG" in les.sources]
    assert segmented
    for lesion in segmented:
        assert lesion.annotation_info["algorithm_type"] == "MANUAL"
        assert lesion.annotation_info["segment_label"] == lesion.label


def test_seed_table_rows_join_their_lesions(collection, tmp_path):
    from tcia_trials.source.seed_table import SeedTableSpec, read_seed_table

    index, truth, _, links = collection
    study = next(s for s in _studies(truth) if len(s["lesions"]) >= 2)
    ct = _series(study, study["ct_series_uid"])
    table = tmp_path / "seeds.csv"
    lines = ["patient,series,label,k,j,i"]
    patient = index.series[study["ct_series_uid"]].patient_id
    for lesion in study["lesions"]:
        k, j, i = lesion["seed_voxel"]
        lines.append(f"{patient},{ct['series_uid']},{lesion['label']},{k},{j},{i}")
    lines.append(f"{patient},{ct['series_uid']},EXTRA - 1,1,2,3")
    table.write_text("\n".join(lines) + "\n")
    spec = SeedTableSpec(
        patient_column="patient",
        series_column="series",
        label_column="label",
        coordinate_columns=("k", "j", "i"),
        convention="voxel_kji",
    )
    annotations = read_annotations(
        index, study["ct_series_uid"], links=links, seeds=read_seed_table(table, spec)
    )
    by_label = {lesion.label: lesion for lesion in annotations.lesions}
    for expected in study["lesions"]:
        assert "TABLE" in by_label[expected["label"]].sources
        assert not any(
            f.startswith("seed-sources-disagree") for f in by_label[expected["label"]].flags
        )
    extra = by_label["EXTRA - 1"]
    assert extra.sources == ("TABLE",) and extra.mask is None
    np.testing.assert_allclose(extra.seed_voxel, (1, 2, 3), atol=1e-9)


def test_label_spec_drops_segments_and_rois_that_are_not_lesions(collection):
    from tcia_trials.spec import LabelSpec

    index, truth, _, links = collection
    study = next(s for s in _studies(truth) if any("LYMPH" in les["label"] for les in s["lesions"]))
    labels = LabelSpec(segment_exclude_pattern="LYMPH")
    annotations = read_annotations(index, study["ct_series_uid"], links=links, labels=labels)
    for lesion in annotations.lesions:
        if "LYMPH" in lesion.label:
            assert not {"RTSTRUCT", "SEG"} & set(lesion.sources)
    kept = {les.label for les in annotations.lesions if "RTSTRUCT" in les.sources}
    assert kept == {les["label"] for les in study["lesions"] if "LYMPH" not in les["label"]}


def test_links_from_references_inside_the_objects_equal_the_csv_links(collection, tmp_path):
    import shutil

    _, truth, out, links = collection
    copy = tmp_path / "no-csv"
    shutil.copytree(out, copy)
    (copy / truth["annotations_csv"]).unlink()
    from_objects = link_annotations(tt.scan(copy))
    assert from_objects.orphans == {}
    assert {k: set(v) for k, v in from_objects.by_image.items()} == {
        k: set(v) for k, v in links.by_image.items()
    }


def test_more_lesions_than_bit_planes_raise_rather_than_lose_one(collection):
    from dataclasses import replace

    index, truth, _, links = collection
    study = max(_studies(truth), key=lambda s: len(s["lesions"]))
    annotations = read_annotations(index, study["ct_series_uid"], links=links)
    many = replace(annotations, lesions=annotations.lesions[:1] * 33)
    assert many.bitmask().dtype == np.uint64
    with pytest.raises(AnnotationError, match="33 lesions do not fit 32 bit planes"):
        many.bitmask(max_planes=32)
