"""Lesion identity and "what goes in comes out": no lesion merged by name, no mask or seed
dropped, every ROI / segment / SR group of every annotation file accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

import tcia_trials as tt
from tcia_trials.errors import TciaTrialsError
from tcia_trials.source.annotations import read_annotation_object, read_annotations
from tcia_trials.source.identity import Piece, group_pieces, lesion_ids
from tcia_trials.spec import AnnotationRules
from tcia_trials.synthetic import generate_collection
from tcia_trials.synthetic.identity_cases import write_identity_cases

NO_FINDINGS = "NO FINDINGS"
MEASUREMENT_GROUP = "125007"  # DCM "Measurement Group"


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    out = tmp_path_factory.mktemp("identity-cases")
    truth = write_identity_cases(out)
    return tt.scan(out), truth


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic-identity")
    truth = json.loads(generate_collection(out, patients=4, seed=21).read_text())
    return tt.scan(out), truth


def _by_origin(lesions) -> dict[str, object]:
    found: dict[str, object] = {}
    for lesion in lesions:
        for origin in lesion.origins:
            assert origin not in found, f"{origin} is in two lesions"
            found[origin] = lesion
    return found


def test_same_names_stay_distinct_lesions_with_all_their_masks_and_seeds(cases):
    index, truth = cases
    annotations = read_annotations(index, truth["ct_series_uid"])
    lesion_of = _by_origin(annotations.lesions)
    skipped = dict(annotations.skipped)
    for origin, part in truth["parts"].items():
        if "skipped" in part:
            assert part["skipped"] in skipped[origin]
            assert origin not in lesion_of
            continue
        lesion = lesion_of[origin]
        assert lesion.origins == (origin,)
        if "seed_voxel" in part:
            np.testing.assert_allclose(lesion.seed_lps, part["seed_lps"], atol=1e-4)
            np.testing.assert_allclose(lesion.seed_voxel, part["seed_voxel"], atol=1e-6)
        if "voxel_count" in part:
            assert lesion.voxel_count == part["voxel_count"]
        if "reader" in part:
            assert lesion.readers == (part["reader"],)
    assert len(annotations.lesions) == sum("skipped" not in p for p in truth["parts"].values())
    assert len({lesion.lesion_id for lesion in annotations.lesions}) == len(annotations.lesions)
    voxel_ml = tt.read_volume(index, truth["ct_series_uid"]).spacing
    expected_ml = sum(p.get("voxel_count", 0) for p in truth["parts"].values()) * np.prod(voxel_ml)
    assert annotations.total_volume_ml == pytest.approx(expected_ml / 1000.0)
    assert annotations.label_map is None  # the two readers' livers overlap: bit planes only
    bits = annotations.bitmask()
    for number, lesion in enumerate(annotations.lesions):
        if lesion.mask is not None:
            assert np.array_equal((bits >> number) & 1 == 1, lesion.mask)


def test_shared_names_get_ids_that_say_where_they_came_from(cases):
    index, truth = cases
    annotations = read_annotations(index, truth["ct_series_uid"])
    seeds = [les for les in annotations.lesions if les.label == "Spine Met Seed Point"]
    assert len(seeds) == 3
    for lesion in seeds:
        assert lesion.lesion_id == f"Spine Met Seed Point [{lesion.origins[0]}]"
    ring = next(les for les in annotations.lesions if les.label == "Ring")
    assert ring.lesion_id == "Ring"


def test_contour_volumes_without_images_subtract_holes(cases):
    index, truth = cases
    ring_file = truth["files"]["ring-and-empty"]
    (ring,) = read_annotation_object(ring_file).lesions
    part = truth["parts"][ring.origins[0]]
    assert ring.volume_ml == pytest.approx(part["volume_ml"], rel=1e-9)
    on_grid = read_annotations(index, truth["ct_series_uid"])
    assert _by_origin(on_grid.lesions)[ring.origins[0]].volume_ml == pytest.approx(
        part["volume_ml"], rel=1e-9
    )


def _piece(origin: str, kind: str = "RTSTRUCT", **values) -> Piece:
    series, _ = origin.split("/")
    values.setdefault("object_uid", series)
    return Piece(
        label=values.pop("label", "LIVER - 1"),
        kind=kind,
        series_uid=series,
        origin=origin,
        **values,
    )


def test_naming_rule_joins_contour_and_seed_but_never_two_outlines_of_one_kind():
    contour = _piece("A/ROI 1", named=True, has_contour=True)
    seed = _piece("B/ROI 1", named=True, seed_lps=(1.0, 2.0, 3.0))
    second_reader = _piece("C/ROI 1", named=True, has_contour=True)
    groups = group_pieces([contour, seed, second_reader])
    assert [[p.origin for p in g] for g in groups] == [["A/ROI 1", "B/ROI 1"], ["C/ROI 1"]]
    assert any(f.startswith("not-joined:") for f in second_reader.flags)
    assert lesion_ids(groups) == ["LIVER - 1 [A/ROI 1]", "LIVER - 1 [C/ROI 1]"]


def test_names_outside_the_rule_tracking_uids_and_segment_references():
    a = _piece("A/segment 1", "SEG", label="Liver", has_contour=True, segment_ref="S#1")
    b = _piece("B/segment 1", "SEG", label="Liver", has_contour=True, tracking_uid="T")
    sr_ref = _piece("C/SR group 1", "SR", label="x", segment_ref="S#1")
    sr_uid = _piece("C/SR group 2", "SR", label="y", tracking_uid="T")
    sr_lost = _piece("C/SR group 3", "SR", label="z", segment_ref="S#9")
    groups = group_pieces([a, b, sr_ref, sr_uid, sr_lost])
    assert sorted(sorted(p.origin for p in g) for g in groups) == [
        ["A/segment 1", "C/SR group 1"],
        ["B/segment 1", "C/SR group 2"],
        ["C/SR group 3"],
    ]
    assert any(f.startswith("referenced-segment-absent") for f in sr_lost.flags)


def test_parts_of_one_object_never_join_even_with_one_tracking_uid():
    one = _piece("A/segment 1", "SEG", object_uid="X", tracking_uid="T", has_contour=True)
    two = _piece("A/segment 2", "SEG", object_uid="X", tracking_uid="T", has_contour=True)
    assert len(group_pieces([one, two])) == 2
    assert "parts of one annotation object" in one.flags[0]


# ------------------------------------------------------------------------------------------
# The invariant on every annotation file: each ROI / segment / SR measurement group is in one
# lesion's origins, or in the skipped parts with a reason, or is the explicit "no findings".


def _parts(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """The file's series UID and its parts (part name, name), read with plain pydicom."""
    ds = pydicom.dcmread(path, force=True)
    modality = str(ds.get("Modality", ""))
    if modality == "RTSTRUCT":
        return ds.SeriesInstanceUID, [
            (f"ROI {roi.ROINumber}", str(roi.get("ROIName", "")))
            for roi in ds.get("StructureSetROISequence", [])
        ]
    if modality == "SEG":
        return ds.SeriesInstanceUID, [
            (f"segment {s.SegmentNumber}", str(s.get("SegmentLabel", "")))
            for s in ds.SegmentSequence
            if int(s.SegmentNumber) > 0
        ]
    groups: list[Dataset] = []

    def walk(items) -> None:
        for item in items:
            concept = item.get("ConceptNameCodeSequence")
            if concept and concept[0].CodeValue == MEASUREMENT_GROUP:
                groups.append(item)
            else:
                walk(item.get("ContentSequence", []))

    walk(ds.get("ContentSequence", []))
    return ds.SeriesInstanceUID, [(f"SR group {n}", "") for n in range(1, len(groups) + 1)]


def _assert_accounted(path: Path) -> int:
    series_uid, parts = _parts(path)
    annotations = read_annotation_object(path, rules=AnnotationRules())
    lesion_of = _by_origin(annotations.lesions)
    skipped = dict(annotations.skipped)
    assert set(lesion_of) | set(skipped) <= {f"{series_uid}/{part}" for part, _ in parts}
    for part, name in parts:
        origin = f"{series_uid}/{part}"
        if NO_FINDINGS in name.upper():
            assert annotations.no_findings or origin in lesion_of
        else:
            assert origin in lesion_of or origin in skipped, f"{path}: {origin} is lost"
    return len(parts)


def test_every_part_of_every_synthetic_annotation_file_is_accounted_for(synthetic, cases):
    index, _ = synthetic
    files = [
        instance.path
        for series in index.series.values()
        if series.modality in ("SEG", "RTSTRUCT", "SR")
        for instance in series.instances
    ]
    files += list(cases[1]["files"].values())
    assert sum(_assert_accounted(path) for path in files) >= len(files)


REAL_ANNOTATIONS = [
    "01_ct2_series_highdicom_seg/seg",
    "02_ct_liver_3slice_dcmqi_seg/seg",
    "03_dcmqi_23x38x3_seg/seg",
    "03_dcmqi_24x38x3_seg/seg",
    "04_sr_tid1500_dcmqi",
    "05_sr_tid1500_highdicom",
    "06_rtstruct_rtutils",
    "07_rtstruct_pydicom_standalone",
]


@pytest.mark.parametrize("folder", REAL_ANNOTATIONS)
def test_every_part_of_every_real_annotation_file_is_accounted_for(realdata, folder):
    checked = 0
    for path in sorted((realdata / folder).rglob("*")):
        if not path.is_file():
            continue
        try:
            modality = str(pydicom.dcmread(path, stop_before_pixels=True, force=True).Modality)
        except (AttributeError, pydicom.errors.InvalidDicomError):
            continue
        if modality not in ("SEG", "RTSTRUCT", "SR"):
            continue
        try:
            _assert_accounted(path)
        except TciaTrialsError as exc:  # a clear refusal naming the file is an outcome too
            assert str(path) in str(exc) or path.name in str(exc)
        checked += 1
    assert checked


def test_real_seed_point_rois_keep_every_point(realdata):
    path = realdata / "07_rtstruct_pydicom_standalone" / "rtstruct.dcm"
    ds = pydicom.dcmread(path, force=True)
    lesions = _by_origin(read_annotation_object(path).lesions)
    names = {int(r.ROINumber): r for r in ds.StructureSetROISequence}
    points = 0
    for roi in ds.ROIContourSequence:
        contours = roi.get("ContourSequence", [])
        if contours and contours[0].ContourGeometricType == "POINT":
            origin = f"{ds.SeriesInstanceUID}/ROI {roi.ReferencedROINumber}"
            first = np.asarray(contours[0].ContourData[:3], dtype=float)
            np.testing.assert_allclose(lesions[origin].seed_lps, first, atol=1e-9)
            assert names[int(roi.ReferencedROINumber)]
            points += 1
    assert points


def test_a_build_keeps_every_lesion_and_reports_the_parts_that_are_none(cases, tmp_path):
    import pyarrow.parquet as pq

    index, truth = cases
    result = tt.build(
        "generic", index.root, tmp_path, config=("volume", "lesions"), dataset_name="identity"
    )
    report = json.loads((result.out / "report.json").read_text())
    parts = {(p["origin"], p["reason"]) for p in report["skipped_parts"]}
    assert {origin for origin, _ in parts} == {
        origin for origin, part in truth["parts"].items() if "skipped" in part
    }
    volume = pq.read_table(next((result.out / "data" / "volume").glob("*.parquet"))).to_pylist()
    (example,) = volume
    origins = [origin for lesion in example["lesions"] for origin in lesion["origins"]]
    assert sorted(origins) == sorted(o for o, p in truth["parts"].items() if "skipped" not in p)
    assert len({lesion["lesion_id"] for lesion in example["lesions"]}) == len(example["lesions"])
