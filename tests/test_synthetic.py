"""Tests of the synthetic collection generator against independent re-computation.

Expected values are recomputed here from ``ground_truth.json`` and the DICOM tags with plain
numpy + pydicom (and highdicom for SEG/SR parsing), never with the generator's own helpers.
"""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
import json
import math
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import openpyxl
import pydicom
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tcia_trials.cli import main
from tcia_trials.synthetic import (
    LAYOUTS,
    Ellipsoid,
    ct_grid,
    default_phantom,
    generate_collection,
    write_ct_series,
)

SMALL = {"patients": 2, "ct_shape": (16, 48, 48)}
VOLUME = hd.sr.CodedConcept("118565006", "SCT", "Volume")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The default collection (4 patients, NBIA layout) plus a gantry-tilted CT series."""
    out = tmp_path_factory.mktemp("default")
    truth = generate_collection(out, with_tilted_ct=True)
    return out, json.loads(truth.read_text(encoding="utf-8"))


def _series(truth: dict, role: str | None = None):
    for patient in truth["patients"].values():
        for study in patient["studies"]:
            for series in study["series"]:
                if role is None or series["role"] == role:
                    yield patient, study, series


def _lesions(truth: dict):
    for patient in truth["patients"].values():
        for study in patient["studies"]:
            for lesion in study["lesions"]:
                yield patient, study, lesion


def _read_sorted(out: Path, files: list[str]) -> list[pydicom.Dataset]:
    """Read a series and sort it along the normal of its own ImageOrientationPatient."""
    datasets = [pydicom.dcmread(out / f) for f in files]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(
        datasets, key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float)))
    )


def _affine_from_tags(datasets: list[pydicom.Dataset]) -> np.ndarray:
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    dy, dx = (float(v) for v in datasets[0].PixelSpacing)
    first = np.array(datasets[0].ImagePositionPatient, dtype=float)
    last = np.array(datasets[-1].ImagePositionPatient, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = (last - first) / (len(datasets) - 1)
    affine[:3, 1] = iop[3:] * dy
    affine[:3, 2] = iop[:3] * dx
    affine[:3, 3] = first
    return affine


def _centres(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    idx = np.stack([k, j, i, np.ones_like(k)], axis=-1)
    return (idx @ np.asarray(affine).T)[..., :3]


def _expected(series: dict, body: dict, centres: np.ndarray) -> np.ndarray:
    ph = series["phantom"]
    cx, cy = body["center_xy"]
    ax, ay = body["semi_axes_xy"]
    inside_body = ((centres[..., 0] - cx) / ax) ** 2 + ((centres[..., 1] - cy) / ay) ** 2 <= 1
    out = np.where(inside_body, ph["body_value"], ph["outside_value"]).astype(float)
    for les in ph["lesions"]:
        out[_inside(centres, les)] = les["value"]
    return out


def _inside(points: np.ndarray, lesion: dict) -> np.ndarray:
    d = (points - np.array(lesion["center_lps"])) / np.array(lesion["semi_axes_mm"])
    return np.sum(d * d, axis=-1) <= 1.0


def _image_series(study: dict, uid: str) -> dict:
    return next(s for s in study["series"] if s["series_uid"] == uid)


# ----------------------------------------------------------------------------- determinism


def test_two_runs_give_identical_bytes(tmp_path: Path) -> None:
    a = generate_collection(tmp_path / "a", seed=3, **SMALL).parent
    b = generate_collection(tmp_path / "b", seed=3, **SMALL).parent
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert sum(p.suffix == ".dcm" for p in files_a) > 50
    different = [p for p in files_a if not filecmp.cmp(a / p, b / p, shallow=False)]
    assert different == []


def test_seed_changes_content(tmp_path: Path) -> None:
    a = json.loads(generate_collection(tmp_path / "a", seed=1, **SMALL).read_text())
    b = json.loads(generate_collection(tmp_path / "b", seed=2, **SMALL).read_text())
    uids_a = {s["series_uid"] for _, _, s in _series(a)}
    uids_b = {s["series_uid"] for _, _, s in _series(b)}
    assert not uids_a & uids_b


# ----------------------------------------------------------------------------- variety


def test_default_collection_has_the_promised_variety(default: tuple[Path, dict]) -> None:
    out, truth = default
    images = [s for _, _, s in _series(truth, "image")]
    ct = [s for s in images if s["modality"] == "CT"]
    assert {s["pixel_representation"] for s in ct} == {0, 1}
    assert any(s["oblique"] for s in ct)
    assert any(s["transfer_syntax"] == pydicom.uid.ImplicitVRLittleEndian for s in ct)
    assert any(s["files_shuffled"] and s["instance_order"] == "descending" for s in ct)
    assert any(s["gantry_tilt_deg"] > 10 for s in ct)
    assert any(s["modality"] == "PT" for s in images)
    roles = {s["role"] for _, _, s in _series(truth)}
    assert roles == {"image", "rtstruct", "seed", "seg", "sr", "no_findings"}
    quirks = {les["seed_quirk"] for _, _, les in _lesions(truth)}
    assert quirks == {None, "extra_triplets", "two_point_closed_planar"}
    assert {les["sr_point"] for _, _, les in _lesions(truth)} >= {"SCOORD3D", "SCOORD"}
    time_points = {st["time_point"] for p in truth["patients"].values() for st in p["studies"]}
    assert time_points == {"Pre-dose", "Follow-up consultation"}
    assert sum(st["no_findings"] for p in truth["patients"].values() for st in p["studies"]) == 1
    assert truth["counts"]["files"] == sum(len(s["files"]) for _, _, s in _series(truth))
    assert truth["counts"]["series"] == sum(1 for _ in _series(truth))
    for _, _, s in _series(truth):
        for f in s["files"]:
            assert (out / f).is_file()


def test_follow_up_tracks_the_same_lesions(default: tuple[Path, dict]) -> None:
    _, truth = default
    patient = truth["patients"]["SYNTH-0001"]
    pre, follow = patient["studies"]
    assert (pre["time_point"], follow["time_point"]) == ("Pre-dose", "Follow-up consultation")
    by_id = {les["lesion_id"]: les for les in pre["lesions"]}
    assert [les["lesion_id"] for les in follow["lesions"]] == list(by_id)
    for les in follow["lesions"]:
        before = by_id[les["lesion_id"]]
        assert les["tracking_uid"] == before["tracking_uid"]
        assert les["label"] == before["label"]
        assert les["center_lps"] == before["center_lps"]
        assert les["semi_axes_mm"] != before["semi_axes_mm"]


# ----------------------------------------------------------------------------- images


def test_ct_voxels_are_exact(default: tuple[Path, dict]) -> None:
    out, truth = default
    checked = 0
    for patient, _, series in _series(truth, "image"):
        if series["modality"] != "CT":
            continue
        datasets = _read_sorted(out, series["files"])
        # the reader's sort along the normal gives the ground truth's slice order
        assert [str(d.SOPInstanceUID) for d in datasets] == series["sop_instance_uids"]
        affine = _affine_from_tags(datasets)
        np.testing.assert_allclose(affine, series["affine"], rtol=0, atol=1e-9)
        hu = np.stack(
            [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets]
        )
        assert list(hu.shape) == series["shape"]
        expected = _expected(
            series, patient["body"], _centres(series["affine"], tuple(series["shape"]))
        )
        np.testing.assert_array_equal(hu, expected)
        assert len(np.unique(hu)) == 2 + len(series["phantom"]["lesions"])
        checked += 1
    assert checked >= 6


def test_geometry_conventions(default: tuple[Path, dict]) -> None:
    _, truth = default
    for _, _, series in _series(truth, "image"):
        affine = np.array(series["affine"])
        direction = np.array(series["direction"])
        spacing = np.array(series["spacing"])
        np.testing.assert_allclose(affine[:3, :3], direction * spacing, atol=1e-12)
        np.testing.assert_allclose(affine[:3, 3], series["origin"], atol=1e-12)
        np.testing.assert_allclose(direction[:, 1], series["col_cosines"], atol=1e-12)
        np.testing.assert_allclose(direction[:, 2], series["row_cosines"], atol=1e-12)
        normal = np.cross(series["row_cosines"], series["col_cosines"])
        assert float(normal @ affine[:3, 0]) > 0
        if series["gantry_tilt_deg"] > 0:  # slices step along z, not along the normal
            np.testing.assert_allclose(direction[:, 0], [0, 0, 1], atol=1e-12)
            assert abs(float(normal @ direction[:, 0])) < 0.99


def test_pet_suv_from_tags_matches_ground_truth(default: tuple[Path, dict]) -> None:
    out, truth = default
    checked = 0
    for patient, study, series in _series(truth, "image"):
        if series["modality"] != "PT":
            continue
        datasets = _read_sorted(out, series["files"])
        first = datasets[0]
        assert (first.Units, first.DecayCorrection) == ("BQML", "START")
        assert list(first.CorrectedImage) == ["ATTN", "DECY"]
        assert first.FrameOfReferenceUID == study["frame_of_reference_uid"]
        info = first.RadiopharmaceuticalInformationSequence[0]
        assert info.RadionuclideCodeSequence[0].CodeValue == "77004003"
        t_inj = dt.datetime.strptime(str(info.RadiopharmaceuticalStartDateTime), "%Y%m%d%H%M%S")
        t_ser = dt.datetime.strptime(f"{first.SeriesDate}{first.SeriesTime}", "%Y%m%d%H%M%S")
        decay = 2.0 ** (-(t_ser - t_inj).total_seconds() / float(info.RadionuclideHalfLife))
        factor = float(first.PatientWeight) * 1000.0 / (float(info.RadionuclideTotalDose) * decay)
        slopes = {float(d.RescaleSlope) for d in datasets}
        assert len(slopes) > 1  # per-slice rescale
        for d in datasets:
            acq = dt.datetime.strptime(f"{d.AcquisitionDate}{d.AcquisitionTime}", "%Y%m%d%H%M%S")
            assert acq >= t_ser
        suv = np.stack(
            [
                (d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)) * factor
                for d in datasets
            ]
        )
        centres = _centres(series["affine"], tuple(series["shape"]))
        analytic = _expected(series, patient["body"], centres)
        step = np.array([float(d.RescaleSlope) for d in datasets])[:, None, None] * factor
        assert np.all(np.abs(suv - analytic) <= step / 2 + 1e-9)
        for lesion in study["lesions"]:
            inside = _inside(centres, lesion)
            assert inside.sum() == lesion["n_voxels_pet"]
            if inside.any():
                assert suv[inside].max() == pytest.approx(lesion["suvmax"], rel=1e-12)
                assert lesion["suvmax"] == pytest.approx(lesion["suv"], abs=0.01)
        checked += 1
    assert checked >= 2


def test_time_point_and_trial_tags_on_every_object(default: tuple[Path, dict]) -> None:
    out, truth = default
    for patient, study, series in _series(truth):
        for f in series["files"][:2]:
            d = pydicom.dcmread(out / f, stop_before_pixels=True)
            assert d.ClinicalTrialTimePointID == study["time_point"]
            assert d.ClinicalTrialProtocolID == truth["collection"]
            assert d.ClinicalTrialSubjectID == patient["patient_id"] == d.PatientID
            assert d.StudyInstanceUID == study["study_uid"]
            assert d.SeriesInstanceUID == series["series_uid"]


# ----------------------------------------------------------------------------- annotations


def test_seed_points(default: tuple[Path, dict]) -> None:
    out, truth = default
    for _, study, lesion in _lesions(truth):
        seed = np.array(lesion["seed_lps"])
        assert _inside(seed, lesion)
        rt = pydicom.dcmread(out / lesion["annotations"]["seed"]["file"])
        assert rt.SeriesDescription == f"{study['time_point']}, {lesion['label']} - SEED POINT"
        assert rt.RTROIObservationsSequence[0].RTROIInterpretedType == "MARKER"
        contour = rt.ROIContourSequence[0].ContourSequence[0]
        data = np.array(contour.ContourData, dtype=float).reshape(-1, 3)
        np.testing.assert_allclose(data[0], seed, atol=1e-9)
        quirk = lesion["seed_quirk"]
        if quirk is None:
            assert (contour.ContourGeometricType, contour.NumberOfContourPoints, len(data)) == (
                "POINT",
                1,
                1,
            )
        elif quirk == "extra_triplets":
            assert (contour.ContourGeometricType, contour.NumberOfContourPoints) == ("POINT", 1)
            assert len(data) in (2, 3)
        else:
            assert (contour.ContourGeometricType, contour.NumberOfContourPoints, len(data)) == (
                "CLOSED_PLANAR",
                2,
                2,
            )
        ref = contour.ContourImageSequence[0].ReferencedSOPInstanceUID
        assert ref == lesion["seed_sop_instance_uid"]
        ct = _image_series(study, study["ct_series_uid"])
        image = pydicom.dcmread(out / ct["files"][lesion["seed_slice"]], stop_before_pixels=True)
        assert image.SOPInstanceUID == ref
        iop = np.array(image.ImageOrientationPatient, dtype=float)
        offset = seed - np.array(image.ImagePositionPatient, dtype=float)
        assert abs(float(offset @ np.cross(iop[:3], iop[3:]))) < 1e-4  # on the slice plane
        column = float(offset @ iop[:3]) / float(image.PixelSpacing[1]) + 0.5
        row = float(offset @ iop[3:]) / float(image.PixelSpacing[0]) + 0.5
        np.testing.assert_allclose([column, row], lesion["seed_image_coords"], atol=1e-6)


def test_rtstruct_polygons_lie_in_their_slices(default: tuple[Path, dict]) -> None:
    out, truth = default
    checked = 0
    for _, study, series in _series(truth, "rtstruct"):
        rt = pydicom.dcmread(out / series["files"][0])
        lesion = next(les for les in study["lesions"] if les["lesion_id"] in series["lesion_ids"])
        assert rt.SeriesDescription == f"{study['time_point']}, {lesion['label']}"
        ct = _image_series(study, series["referenced_series_uid"])
        by_uid = {uid: k for k, uid in enumerate(ct["sop_instance_uids"])}
        refs = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
        assert refs.RTReferencedSeriesSequence[0].SeriesInstanceUID == ct["series_uid"]
        contours = rt.ROIContourSequence[0].ContourSequence
        slices = [by_uid[c.ContourImageSequence[0].ReferencedSOPInstanceUID] for c in contours]
        assert slices == series["contour_slices"]
        affine = np.array(ct["affine"])
        normal = np.cross(ct["row_cosines"], ct["col_cosines"])
        a, b, c = lesion["semi_axes_mm"]
        total_area = 0.0
        for contour, k in zip(contours, slices, strict=True):
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            pts = np.array(contour.ContourData, dtype=float).reshape(-1, 3)
            assert len(pts) == contour.NumberOfContourPoints == 64
            position = affine[:3, 3] + k * affine[:3, 0]
            assert np.max(np.abs((pts - position) @ normal)) < 1e-3
            u = (pts - position) @ np.array(ct["row_cosines"])
            v = (pts - position) @ np.array(ct["col_cosines"])
            area = 0.5 * abs(float(np.dot(u, np.roll(v, 1)) - np.dot(v, np.roll(u, 1))))
            total_area += area * float(normal @ affine[:3, 0])
            assert _inside(pts.mean(axis=0), lesion)
        # slab-summed polygon areas approximate the analytic volume
        assert total_area / 1000 == pytest.approx(4 / 3 * math.pi * a * b * c / 1000, rel=0.08)
        checked += 1
    assert checked >= 3


def test_seg_frames_equal_the_analytic_mask(default: tuple[Path, dict]) -> None:
    out, truth = default
    checked = set()
    for _, study, series in _series(truth, "seg"):
        seg = hd.seg.segread(out / series["files"][0])
        lesion = next(les for les in study["lesions"] if les["lesion_id"] in series["lesion_ids"])
        image = _image_series(study, series["referenced_series_uid"])
        assert seg.SegmentationType == "BINARY"
        segment = seg.SegmentSequence[0]
        assert segment.SegmentLabel == lesion["label"]
        assert segment.SegmentAlgorithmType == "MANUAL"
        assert segment.TrackingUID == lesion["tracking_uid"]
        assert seg.SeriesDescription == f"{study['time_point']}, {lesion['label']}"
        mask = _inside(_centres(image["affine"], tuple(image["shape"])), lesion)
        by_uid = {uid: k for k, uid in enumerate(image["sop_instance_uids"])}
        frames = seg.pixel_array.reshape(-1, *mask.shape[1:])
        slices = []
        for n, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
            src = item.DerivationImageSequence[0].SourceImageSequence[0]
            k = by_uid[src.ReferencedSOPInstanceUID]
            slices.append(k)
            np.testing.assert_array_equal(frames[n].astype(bool), mask[k])
        assert sorted(slices) == [int(k) for k in np.flatnonzero(mask.any(axis=(1, 2)))]
        # highdicom's own API agrees
        uids = [image["sop_instance_uids"][k] for k in sorted(slices)]
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=[1]
        )
        np.testing.assert_array_equal(pixels[..., 0].astype(bool), mask[sorted(slices)])
        checked.add(image["modality"])
    assert checked == {"CT", "PT"}


def test_sr_is_readable_and_matches(default: tuple[Path, dict]) -> None:
    out, truth = default
    checked = 0
    for _, study, series in _series(truth, "sr"):
        sr = hd.sr.srread(out / series["files"][0])
        assert isinstance(sr, hd.sr.Comprehensive3DSR)
        assert sr.ClinicalTrialTimePointID == study["time_point"]
        lesions = {les["tracking_uid"]: les for les in study["lesions"]}
        groups = sr.content.get_planar_roi_measurement_groups()
        assert len(groups) == len(series["lesion_ids"])
        for group in groups:
            lesion = lesions[group.tracking_uid]
            (volume,) = group.get_measurements(name=VOLUME)
            assert volume.value == pytest.approx(lesion["volume_ml"], rel=1e-12)
            assert group.roi.GraphicType == "POINT"
            point = np.array(group.roi.GraphicData, dtype=float)
            if lesion["sr_point"] == "SCOORD3D":
                assert isinstance(group.roi, hd.sr.ImageRegion3D)
                np.testing.assert_allclose(point, lesion["seed_lps"], atol=1e-3)
            else:
                assert isinstance(group.roi, hd.sr.ImageRegion)
                ref = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
                assert ref.ReferencedSOPInstanceUID == lesion["seed_sop_instance_uid"]
                np.testing.assert_allclose(point, lesion["seed_image_coords"], atol=1e-3)
            checked += 1
    assert checked >= 3


def test_no_findings_rtstruct(default: tuple[Path, dict]) -> None:
    out, truth = default
    found = [(study, series) for _, study, series in _series(truth, "no_findings")]
    assert len(found) == 1
    study, series = found[0]
    assert study["no_findings"] and study["lesions"] == []
    rt = pydicom.dcmread(out / series["files"][0])
    assert rt.SeriesDescription == "Pre-dose, LESION SEED POINT - NO FINDINGS"
    assert rt.StructureSetROISequence[0].ROIName == "LESION SEED POINT - NO FINDINGS"
    assert "ContourSequence" not in rt.ROIContourSequence[0]


def test_annotation_metadata_csv(default: tuple[Path, dict]) -> None:
    out, truth = default
    with (out / truth["annotations_csv"]).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["SeriesInstanceUID", "ReferencedSeriesInstanceUID", "Annotation Type"]
    annotations = {s["series_uid"]: s for _, _, s in _series(truth) if s["role"] != "image"}
    images = {s["series_uid"] for _, _, s in _series(truth, "image")}
    assert {r["SeriesInstanceUID"] for r in rows} == set(annotations)
    for row in rows:
        assert row["ReferencedSeriesInstanceUID"] in images
        assert row["Annotation Type"] in ("Segmentation", "Seed point", "No findings")
        assert row["Annotation Type"] == annotations[row["SeriesInstanceUID"]]["annotation_type"]


# ----------------------------------------------------------------------------- layouts


NBIA_HEADER = (
    "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,"
    "Study UID,Study Description,Study Date,Series Description,Manufacturer,Modality,"
    "SOP Class Name,SOP Class UID,Number of Images,File Size,File Location,"
    "Download Timestamp"
)


def test_nbia_metadata_csv_is_unquoted(default: tuple[Path, dict]) -> None:
    out, truth = default
    lines = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == NBIA_HEADER
    assert '"' not in "".join(lines)
    assert len(lines) - 1 == truth["counts"]["series"]
    assert any(",Pre-dose, " in line for line in lines)
    naive = list(csv.reader(lines))
    assert any(len(row) > 17 for row in naive[1:])  # naive parsing breaks, as with real NBIA
    series = {s["series_uid"]: s for _, _, s in _series(truth)}
    for line in lines[1:]:
        uid, *_, location, _stamp = line.split(",")
        assert location.startswith("./SYNTH-TRIAL/")
        folder = out / location
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            Path(f).name for f in series[uid]["files"]
        )
        assert re.search(r",(YES|NO),", line)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(layout: str, tmp_path: Path) -> None:
    out = tmp_path / layout
    truth = json.loads(generate_collection(out, layout=layout, seed=5, **SMALL).read_text())
    assert truth["layout"] == layout
    n_series = 0
    for patient, study, series in _series(truth):
        n_series += 1
        paths = [out / f for f in series["files"]]
        for path in paths:
            assert path.is_file()
        d = pydicom.dcmread(paths[0], stop_before_pixels=True)
        assert d.SeriesInstanceUID == series["series_uid"]
        rel = Path(series["files"][0])
        pid, study_uid, uid = patient["patient_id"], study["study_uid"], series["series_uid"]
        if layout == "nbia":
            assert rel.parts[:2] == ("SYNTH-TRIAL", pid)
            assert re.fullmatch(r"\d\d-\d\d-\d{4}-NA-.+-" + re.escape(study_uid[-5:]), rel.parts[2])
            assert rel.parts[3] == (
                f"{series['series_number']}.000000-"
                f"{series['description'].replace(',', ' ')}-{uid[-5:]}"
            )
            width = len(str(len(paths)))
            assert sorted(p.name for p in paths) == [
                f"1-{n:0{width}d}.dcm" for n in range(1, len(paths) + 1)
            ]
        elif layout == "nbia-classic":
            assert rel.parts[:4] == ("SYNTH-TRIAL", pid, study_uid, uid)
            assert re.fullmatch(r"\d{6}\.dcm", rel.name)
        elif layout == "retriever":
            assert rel.parts[:3] == (pid, study_uid, uid)
            assert rel.name == f"{d.SOPInstanceUID}.dcm"
        else:
            assert rel.parts[:4] == ("synth_trial", pid, study_uid, f"{d.Modality}_{uid}")
            assert re.fullmatch(
                r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                r"[0-9a-f]{12}\.dcm",
                rel.name,
            )
    metadata = out / "metadata.csv"
    if layout == "idc":
        assert not metadata.exists() and truth["metadata_csv"] is None
    elif layout == "retriever":
        with metadata.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == n_series
        assert {"PatientID", "SeriesInstanceUID", "SeriesDescription", "FileLocation"} <= set(
            rows[0]
        )
        assert any(", " in r["SeriesDescription"] for r in rows)
        assert all((out / r["FileLocation"]).is_dir() for r in rows)
    else:
        lines = metadata.read_text(encoding="utf-8").splitlines()
        assert lines[0] == NBIA_HEADER and len(lines) == n_series + 1
    assert (out / f"{truth['collection']}-Annotations_metadata.csv").is_file()


def test_unknown_layout_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout must be one of"):
        generate_collection(tmp_path / "x", layout="zip", **SMALL)
    with pytest.raises(ValueError, match="patients must be >= 1"):
        generate_collection(tmp_path / "y", patients=0)
    with pytest.raises(ValueError, match="ct_shape"):
        generate_collection(tmp_path / "z", ct_shape=(4, 16, 16))
    assert not any(tmp_path.iterdir())  # nothing written for bad arguments


# ----------------------------------------------------------------------------- clinical


def test_clinical_sheet(default: tuple[Path, dict]) -> None:
    out, truth = default
    clinical = truth["clinical"]
    with (out / clinical["csv"]).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    wb = openpyxl.load_workbook(out / clinical["xlsx"])
    sheet = list(wb.active.iter_rows(values_only=True))
    assert list(sheet[0]) == list(rows[0]) == list(clinical["columns"])
    assert len(sheet) - 1 == len(rows) == truth["counts"]["patients"] + 1
    for values, row in zip(sheet[1:], rows, strict=True):
        for value, (column, text) in zip(values, row.items(), strict=True):
            assert ("" if value is None else str(value)) == text, column
            if value is not None and clinical["column_types"][column] == "int":
                assert isinstance(value, int)
    ids = [r["patient_id"] for r in rows]
    without = set(ids) - set(truth["patients"])
    assert without == set(clinical["patients_without_images"]) and len(without) == 1
    assert any(r["best_response"] == "" for r in rows) and any(r["pfs_days"] == "" for r in rows)
    for pid, patient in truth["patients"].items():
        row = rows[ids.index(pid)]
        assert (int(row["age"]), row["sex"]) == (patient["age"], patient["sex"])


# ----------------------------------------------------------------------------- CT writer


def test_write_ct_series_with_gantry_tilt(tmp_path: Path) -> None:
    shape = (12, 40, 48)
    files = write_ct_series(
        tmp_path / "ct",
        shape=shape,
        seed=4,
        pixel_spacing=(3.0, 2.5),
        slice_spacing=4.0,
        gantry_tilt_deg=15.0,
        shuffle_files=True,
        instance_order="descending",
        pixel_representation=0,
    )
    assert len(files) == shape[0]
    grid = ct_grid(shape, pixel_spacing=(3.0, 2.5), slice_spacing=4.0, gantry_tilt_deg=15.0)
    datasets = [pydicom.dcmread(f) for f in files]  # returned in slice order k
    assert float(datasets[0].GantryDetectorTilt) == pytest.approx(15.0, abs=1e-3)
    assert [int(d.InstanceNumber) for d in datasets] == list(range(shape[0], 0, -1))
    positions = np.array([d.ImagePositionPatient for d in datasets], dtype=float)
    np.testing.assert_allclose(
        np.diff(positions, axis=0), [[0, 0, 4.0]] * (shape[0] - 1), atol=1e-9
    )
    np.testing.assert_allclose(_affine_from_tags(datasets), grid.affine, atol=1e-9)
    hu = np.stack([d.pixel_array.astype(float) + float(d.RescaleIntercept) for d in datasets])
    phantom = default_phantom(grid, 4)
    np.testing.assert_array_equal(hu, phantom.evaluate(_centres(grid.affine, shape)))


# ----------------------------------------------------------------------------- geometry


@settings(max_examples=60, deadline=None)
@given(
    center=st.tuples(*[st.floats(-50, 50)] * 3),
    axes=st.tuples(*[st.floats(3, 30)] * 3),
    angles=st.tuples(st.floats(0, math.pi), st.floats(0, 2 * math.pi)),
    offset=st.floats(-0.9, 0.9),
)
def test_plane_section_is_the_exact_ellipse(center, axes, angles, offset) -> None:
    ellipsoid = Ellipsoid(center, axes)
    theta, phi = angles
    n = np.array(
        [math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi), math.cos(theta)]
    )
    u = np.cross(n, [1.0, 0, 0] if abs(n[0]) < 0.9 else [0, 1.0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    support = math.sqrt(float(np.sum((np.array(axes) * n) ** 2)))  # half-width along n
    point = np.array(center) + offset * support * n
    section = ellipsoid.section(point, u, v)
    assert section is not None
    ring = section.polygon(64, equal_area=False)
    d = (ring - np.array(center)) / np.array(axes)
    np.testing.assert_allclose(np.sum(d * d, axis=1), 1.0, atol=1e-9)  # on the surface
    np.testing.assert_allclose((ring - point) @ n, 0.0, atol=1e-9)  # in the plane
    poly = section.polygon(64)
    s, t = (poly - point) @ u, (poly - point) @ v
    area = 0.5 * abs(float(np.dot(s, np.roll(t, 1)) - np.dot(t, np.roll(s, 1))))
    assert area == pytest.approx(section.area_mm2, rel=1e-9)


# ----------------------------------------------------------------------------- CLI


def test_cli_synth(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "synth"
    result = runner.invoke(
        main,
        ["synth", str(out), "--patients", "1", "--seed", "2", "--no-pet", "--layout", "retriever"],
    )
    assert result.exit_code == 0, result.output
    assert "1 patients" in result.output and "ground_truth.json" in result.output
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["layout"] == "retriever" and not truth["generator"]["params"]["with_pet"]
    assert all(s["modality"] != "PT" for _, _, s in _series(truth))

    again = runner.invoke(main, ["synth", str(out), "--patients", "1"])
    assert again.exit_code != 0
    assert "not empty" in again.output and "--force" in again.output

    forced = runner.invoke(
        main,
        [
            "synth",
            str(out),
            "--patients",
            "1",
            "--seed",
            "2",
            "--no-pet",
            "--layout",
            "retriever",
            "--force",
        ],
    )
    assert forced.exit_code == 0, forced.output


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["synth", str(tmp_path / "o"), "--layout", "zip"])
    assert result.exit_code == 2 and "zip" in result.output
    result = runner.invoke(main, ["synth", str(tmp_path / "o"), "--patients", "0"])
    assert result.exit_code == 2
