"""RT Structure Sets: reading, seed points and rasterization against independent oracles.

Oracles never call the code under test: expected masks come from matplotlib's
``Path.contains_points`` (even-odd crossing test) on voxel centres computed from pydicom tags or
from the test's own geometry, and from the synthetic collection's analytic ellipsoids; rt-utils
(OpenCV ``fillPoly``) is compared where installed.  Self-intersection is checked with a brute-force
all-pairs segment test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom.errors import InvalidDicomError

import tcia_trials as tt
from tcia_trials.errors import AnnotationError, DicomReadError, MissingReferenceError
from tcia_trials.source.rtstruct import (
    Contour,
    Roi,
    SeedPoint,
    rasterize_roi,
    read_rtstruct,
    seed_points,
)
from tcia_trials.source.volume import Volume
from tcia_trials.synthetic import Ellipsoid, generate_collection

mpath = pytest.importorskip("matplotlib.path")

SEED_ATOL_MM = 1e-3


# ---------------------------------------------------------------------------------------------
# Oracles and helpers (independent of tcia_trials.source.rtstruct and of geometry.lps_to_index)


def even_odd_oracle(polygons_2d: list[np.ndarray], points_2d: np.ndarray) -> np.ndarray:
    """Even-odd inside test of several polygons (XOR), by matplotlib (points outside a
    polygon's bounding box are skipped: they cannot be inside)."""
    inside = np.zeros(len(points_2d), dtype=bool)
    for polygon in polygons_2d:
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        near = np.flatnonzero(np.all((points_2d >= lo) & (points_2d <= hi), axis=1))
        inside[near] ^= mpath.Path(polygon).contains_points(points_2d[near])
    return inside


def on_boundary(polygons_2d: list[np.ndarray], points_2d: np.ndarray, tol: float) -> np.ndarray:
    """Points within ``tol`` of an edge of any polygon (where inside/outside is a convention)."""
    near = np.zeros(len(points_2d), dtype=bool)
    for polygon in polygons_2d:
        a, b = polygon, np.roll(polygon, -1, axis=0)
        for p, q in zip(a, b, strict=True):
            d = q - p
            length2 = float(d @ d)
            t = np.zeros(len(points_2d)) if length2 == 0 else (points_2d - p) @ d / length2
            closest = p + np.clip(t, 0, 1)[:, None] * d
            near |= np.linalg.norm(points_2d - closest, axis=1) <= tol
    return near


def brute_force_self_intersecting(points_2d: np.ndarray) -> bool:
    """All pairs of non-adjacent edges of the closed polygon: does any pair share a point?

    Orientation signs of every pair (no pruning); exact for the integer-valued coordinates the
    property test uses.
    """
    pts = np.asarray(points_2d, dtype=float)
    pts = pts[np.any(pts != np.roll(pts, 1, axis=0), axis=1)]
    n = len(pts)
    if n < 4:
        return False
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))
    i, j = i[keep], j[keep]
    a, b, c, d = pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]

    def orient(p, q, r):
        return np.sign(
            (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
        )

    def on_segment(p, q, r):
        return np.all((np.minimum(p, q) <= r) & (r <= np.maximum(p, q)), axis=1)

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    proper = (o1 * o2 < 0) & (o3 * o4 < 0)
    touching = (
        ((o1 == 0) & on_segment(a, b, c))
        | ((o2 == 0) & on_segment(a, b, d))
        | ((o3 == 0) & on_segment(c, d, a))
        | ((o4 == 0) & on_segment(c, d, b))
    )
    return bool(np.any(proper | touching))


def ct_datasets(folder: Path) -> list[pydicom.Dataset]:
    """CT slices of a folder sorted along the normal (by their own tags)."""
    cts = [pydicom.dcmread(p) for p in sorted(folder.glob("ct_*.dcm"))]

    def height(ds: pydicom.Dataset) -> float:
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        return float(np.cross(iop[:3], iop[3:]) @ np.array(ds.ImagePositionPatient, float))

    return sorted(cts, key=height)


def oracle_mask_from_tags(cts: list[pydicom.Dataset], rt: pydicom.Dataset, roi_number: int):
    """Expected mask of one ROI: each contour goes to the slice whose ImagePositionPatient lies
    in its plane; voxel centres from IPP/IOP/PixelSpacing; matplotlib even-odd in the plane."""
    item = next(r for r in rt.ROIContourSequence if int(r.ReferencedROINumber) == roi_number)
    contours = [np.array(c.ContourData, dtype=float).reshape(-1, 3) for c in item.ContourSequence]
    masks = []
    for ds in cts:
        ipp = np.array(ds.ImagePositionPatient, dtype=float)
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        row, col = iop[:3], iop[3:]
        normal = np.cross(row, col)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        jj, ii = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
        uv = np.column_stack([(ii * dc).ravel(), (jj * dr).ravel()])  # in-plane mm
        in_plane = [
            np.column_stack([(c - ipp) @ row, (c - ipp) @ col])
            for c in contours
            if np.all(np.abs((c - ipp) @ normal) < 1e-3)
        ]
        masks.append(even_odd_oracle(in_plane, uv).reshape(ds.Rows, ds.Columns))
    return np.stack(masks)


def shifted_union(mask: np.ndarray, radius: int) -> np.ndarray:
    """In-plane dilation of a (k, j, i) mask by a square of half-width ``radius``."""
    out = mask.copy()
    for dj in range(-radius, radius + 1):
        for di in range(-radius, radius + 1):
            out |= np.roll(np.roll(mask, dj, axis=1), di, axis=2)
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(a & b)) / float(np.count_nonzero(a) + np.count_nonzero(b))


def ellipsoid_mask(series: dict, lesion: dict) -> np.ndarray:
    """Analytic lesion mask on a ground-truth grid: voxel centre inside the ellipsoid."""
    affine = np.array(series["affine"])
    kji = np.indices(series["shape"]).reshape(3, -1).T
    centres = kji @ affine[:3, :3].T + affine[:3, 3]
    q = (((centres - lesion["center_lps"]) / np.array(lesion["semi_axes_mm"])) ** 2).sum(axis=1)
    return (q <= 1.0).reshape(series["shape"])


def make_volume(
    shape: tuple[int, int, int],
    origin: np.ndarray,
    step: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    pixel_spacing: tuple[float, float],
    *,
    series_uid: str = "1.2.3.4",
    frame_uid: str | None = "1.2.3.5",
) -> Volume:
    """A Volume on an explicit grid: voxel (k, j, i) at origin + k step + j dy col + i dx row."""
    dy, dx = pixel_spacing
    length = float(np.linalg.norm(step))
    return Volume(
        array=np.zeros(shape, dtype=np.int16),
        spacing=(length, dy, dx),
        origin=tuple(float(v) for v in origin),
        direction=np.column_stack([step / length, col, row]),
        modality="CT",
        units="HU",
        series_uid=series_uid,
        frame_of_reference_uid=frame_uid,
        sop_instance_uids=tuple(f"{series_uid}.{k + 1}" for k in range(shape[0])),
    )


def axial_volume(shape=(4, 20, 24), spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Volume:
    return make_volume(
        shape,
        np.array(origin),
        np.array([0.0, 0.0, spacing[0]]),
        np.array([1.0, 0.0, 0.0]),
        np.array([0.0, 1.0, 0.0]),
        (spacing[1], spacing[2]),
    )


def roi_of(*contours: Contour, name: str = "test") -> Roi:
    return Roi(1, name, None, "GTV", None, tuple(contours))


def closed(points_xyz, declared: int | None = None, refs: tuple[str, ...] = ()) -> Contour:
    points = np.asarray(points_xyz, dtype=float).reshape(-1, 3)
    return Contour("CLOSED_PLANAR", points, len(points) if declared is None else declared, refs)


# ---------------------------------------------------------------------------------------------
# Real files: rt-utils CT + RTSTRUCT (06), pydicom standalone RTSTRUCT (07)


@pytest.fixture(scope="module")
def rtutils_dir(realdata: Path) -> Path:
    folder = realdata / "06_rtstruct_rtutils"
    if not (folder / "rt.dcm").is_file():
        pytest.skip(f"{folder} is incomplete")
    return folder


@pytest.fixture(scope="module")
def rtutils_volume(rtutils_dir: Path) -> Volume:
    return tt.read_volume(sorted(rtutils_dir.glob("ct_*.dcm")))


def test_read_rtstruct_rtutils_file(rtutils_dir: Path) -> None:
    ds = pydicom.dcmread(rtutils_dir / "rt.dcm")
    doc = read_rtstruct(rtutils_dir / "rt.dcm")
    assert doc.sop_instance_uid == ds.SOPInstanceUID
    assert doc.series_uid == ds.SeriesInstanceUID
    assert doc.study_uid == ds.StudyInstanceUID
    assert doc.patient_id == "PHANTOM_EXAMPLE"
    assert doc.series_description == "PHANTOM_EXAMPLE"
    assert doc.time_point is None
    ref = ds.ReferencedFrameOfReferenceSequence[0]
    assert doc.frame_of_reference_uid == ref.FrameOfReferenceUID
    series = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert doc.referenced_series_uids == (series.SeriesInstanceUID,)
    assert doc.referenced_sop_instance_uids == tuple(
        i.ReferencedSOPInstanceUID for i in series.ContourImageSequence
    )
    (roi,) = doc.rois
    assert (roi.number, roi.name, roi.description, roi.interpreted_type) == (1, "ROI-1", None, None)
    items = ds.ROIContourSequence[0].ContourSequence
    assert len(roi.contours) == len(items) == 2
    for contour, item in zip(roi.contours, items, strict=True):
        assert contour.geometric_type == "CLOSED_PLANAR"
        assert contour.declared_points == item.NumberOfContourPoints
        expected = np.array([float(v) for v in item.ContourData]).reshape(-1, 3)
        np.testing.assert_array_equal(contour.points, expected)
        assert contour.referenced_sop_instance_uids == (
            item.ContourImageSequence[0].ReferencedSOPInstanceUID,
        )
        assert not contour.points.flags.writeable


@pytest.mark.parametrize("name", ["rt.dcm", "non_existent_reference_rt.dcm"])
def test_rasterize_real_rtstruct_matches_oracle_from_tags(
    rtutils_dir: Path, rtutils_volume: Volume, name: str
) -> None:
    cts = ct_datasets(rtutils_dir)
    rt = pydicom.dcmread(rtutils_dir / name)
    doc = read_rtstruct(rtutils_dir / name)
    assert [ds.SOPInstanceUID for ds in cts] == list(rtutils_volume.sop_instance_uids)
    for roi in doc.rois:
        expected = oracle_mask_from_tags(cts, rt, roi.number)
        result = rasterize_roi(roi, rtutils_volume)
        assert result.mask.shape == rtutils_volume.shape
        assert result.mask.dtype == bool
        np.testing.assert_array_equal(result.mask, expected, err_msg=f"{name} {roi.name}")


def test_rtutils_file_inner_contour_is_a_hole(rtutils_dir: Path, rtutils_volume: Volume) -> None:
    """rt.dcm: a 24 mm square with a 15 mm octagon inside it on the same slice."""
    roi = read_rtstruct(rtutils_dir / "rt.dcm").rois[0]
    result = rasterize_roi(roi, rtutils_volume)
    # rt.dcm names its own frame of reference but references the CT series: placed, flagged.
    (flag,) = result.flags
    assert flag.startswith("frame-of-reference-mismatch:")
    assert rtutils_volume.frame_of_reference_uid in flag
    affine = rtutils_volume.affine
    # The voxel whose centre is nearest to LPS (-39.5, -39.5, 60): inside the octagon -> hole.
    k, j, i = np.rint(
        np.linalg.solve(affine[:3, :3], np.array([-39.5, -39.5, 60.0]) - affine[:3, 3])
    )
    assert not result.mask[int(k), int(j), int(i)]
    k, j, i = np.rint(
        np.linalg.solve(affine[:3, :3], np.array([-49.0, -49.0, 60.0]) - affine[:3, 3])
    )
    assert result.mask[int(k), int(j), int(i)]
    assert not result.mask[1].any()  # nothing at z = 65 mm


def test_compare_with_rtutils(rtutils_dir: Path, rtutils_volume: Volume, tmp_path: Path) -> None:
    """rt-utils rounds vertices to whole pixels and OpenCV's fillPoly also fills the pixels the
    outline passes through: its masks contain ours plus a rim of about one pixel."""
    rt_utils = pytest.importorskip("rt_utils")
    for ct in rtutils_dir.glob("ct_*.dcm"):
        (tmp_path / ct.name).symlink_to(ct)
    for name in ("rt.dcm", "non_existent_reference_rt.dcm"):
        theirs_rt = rt_utils.RTStructBuilder.create_from(str(tmp_path), str(rtutils_dir / name))
        for roi in read_rtstruct(rtutils_dir / name).rois:
            theirs = np.moveaxis(theirs_rt.get_roi_mask_by_name(roi.name), 2, 0)
            ours = rasterize_roi(roi, rtutils_volume).mask
            only_theirs = np.count_nonzero(theirs & ~ours)
            only_ours = np.count_nonzero(ours & ~theirs)
            print(
                f"{name} {roi.name}: ours {ours.sum()}, rt-utils {theirs.sum()}, "
                f"only rt-utils {only_theirs} (boundary rim), only ours {only_ours}"
            )
            assert only_ours == 0
            assert not np.any(theirs & ~shifted_union(ours, 1)), "differences beyond the rim"
            assert only_theirs < 0.2 * ours.sum()


def test_invalid_reference_file_is_flagged(rtutils_dir: Path, rtutils_volume: Volume) -> None:
    """invalid_reference_rt.dcm: each ROI also has a contour at z = 70 mm on an image the
    2-slice CT lacks; ContourImageSequence lists 5 images, 3 of them absent."""
    doc = read_rtstruct(rtutils_dir / "invalid_reference_rt.dcm")
    absent = sorted(set(doc.referenced_sop_instance_uids) - set(rtutils_volume.sop_instance_uids))
    assert len(absent) == 3
    rt = pydicom.dcmread(rtutils_dir / "invalid_reference_rt.dcm")
    cts = ct_datasets(rtutils_dir)
    crossing_seen = False
    for roi in doc.rois:
        result = rasterize_roi(roi, rtutils_volume)
        flags = "\n".join(result.flags)
        assert re.search(
            r"contour-off-volume: 1 of 3 contours lie outside the volume's slices 0\.\.1, "
            r"at k=2\.00 \(mean z 70\.00 mm\)",
            flags,
        )
        assert "reference-not-in-volume:" in flags
        expected = oracle_mask_from_tags(cts, rt, roi.number)
        np.testing.assert_array_equal(result.mask, expected)
        in_plane_self_crossing = [
            brute_force_self_intersecting(c.points[:, :2])
            for c in roi.contours
            if c.points[0, 2] in (60.0, 65.0)
        ]
        assert ("self-intersecting:" in flags) == any(in_plane_self_crossing)
        crossing_seen = crossing_seen or any(in_plane_self_crossing)
    assert crossing_seen  # ROI-4 crosses itself on both CT slices


def test_other_series_other_frame_raises(realdata: Path, rtutils_dir: Path) -> None:
    other = tt.read_volume(sorted((realdata / "02_ct_liver_3slice_dcmqi_seg" / "ct").glob("*.dcm")))
    doc = read_rtstruct(rtutils_dir / "rt.dcm")
    assert other.series_uid not in doc.referenced_series_uids
    assert other.frame_of_reference_uid != doc.frame_of_reference_uid
    with pytest.raises(MissingReferenceError, match=re.escape(str(rtutils_dir / "rt.dcm"))) as info:
        rasterize_roi(doc.rois[0], other)
    message = str(info.value)
    for uid in (
        doc.referenced_series_uids[0],
        doc.frame_of_reference_uid,
        other.series_uid,
        other.frame_of_reference_uid,
    ):
        assert uid in message


def test_headerless_standalone_rtstruct(realdata: Path) -> None:
    path = realdata / "07_rtstruct_pydicom_standalone" / "rtstruct.dcm"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(path)  # no preamble / file meta: pydicom needs force
    ds = pydicom.dcmread(path, force=True)
    doc = read_rtstruct(path)
    assert doc.patient_id == "tPhantom30sep"
    assert doc.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.2010020400001.2"
    assert doc.referenced_series_uids == ("1.2.826.0.1.3680043.8.498.2010020400001.2.1.1",)
    assert [(r.number, r.name, r.interpreted_type) for r in doc.rois] == [
        (1, "patient", "EXTERNAL"),
        (2, "Isocenter 1", "ISOCENTER"),
        (3, "Isocenter 2", "ISOCENTER"),
    ]
    body = doc.rois[0]
    assert [c.geometric_type for c in body.contours] == ["CLOSED_PLANAR"] * 3
    for contour, item in zip(body.contours, ds.ROIContourSequence[0].ContourSequence, strict=True):
        np.testing.assert_array_equal(
            contour.points, np.array([float(v) for v in item.ContourData]).reshape(-1, 3)
        )
    assert seed_points(body) == ()  # a body outline, not a seed
    for roi in doc.rois[1:]:
        (seed,) = seed_points(roi)
        assert seed.lps == (0.0, 0.0, 0.0)
        assert seed.flags == ()


def test_standalone_body_outline_on_an_axial_grid(realdata: Path) -> None:
    """The first contour repeats its first point at the end: no self-intersection flag."""
    path = realdata / "07_rtstruct_pydicom_standalone" / "rtstruct.dcm"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    doc = read_rtstruct(path)
    volume = make_volume(  # 10 mm voxels, centres at x = -245 + 10 i, y = -195 + 10 j
        (3, 40, 50),
        np.array([-245.0, -195.0, -200.0]),
        np.array([0.0, 0.0, 10.0]),
        np.array([1.0, 0.0, 0.0]),
        np.array([0.0, 1.0, 0.0]),
        (10.0, 10.0),
        series_uid=doc.referenced_series_uids[0],
        frame_uid=doc.frame_of_reference_uid,
    )
    result = rasterize_roi(doc.rois[0], volume)
    assert result.flags == (), result.flags
    # x in (-200, 200): 40 column centres; y in (-150, 150): 30 row centres; on every slice.
    assert result.mask.sum(axis=(1, 2)).tolist() == [40 * 30] * 3
    assert result.mask[:, 5:35, 5:45].all()


# ---------------------------------------------------------------------------------------------
# Synthetic collection with analytic ground truth


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory):
    """patients=3, seed=3: oblique CT, a gantry-tilted CT, both seed quirks, a small lesion and
    a "No findings" study (patients=2 has neither the 2-point seed nor a small lesion)."""
    out = tmp_path_factory.mktemp("synth_rtstruct")
    gt = json.loads(
        generate_collection(
            out, patients=3, seed=3, with_pet=False, with_tilted_ct=True
        ).read_text()
    )
    return out, gt, tt.scan(out)


def studies(gt: dict):
    for pid, patient in gt["patients"].items():
        for study in patient["studies"]:
            yield pid, study


def series_by_uid(study: dict, uid: str) -> dict:
    return next(s for s in study["series"] if s["series_uid"] == uid)


@pytest.fixture(scope="session")
def synth_volumes(synth):
    _, _, index = synth
    cache: dict[str, Volume] = {}

    def get(uid: str) -> Volume:
        if uid not in cache:
            cache[uid] = tt.read_volume(index, uid)
        return cache[uid]

    return get


def test_synthetic_contours_match_analytic_lesions(synth, synth_volumes) -> None:
    out, gt, _ = synth
    checked = {"oblique": 0, "axial": 0, "small": 0}
    for _, study in studies(gt):
        if study["no_findings"]:
            continue
        ct = series_by_uid(study, study["ct_series_uid"])
        volume = synth_volumes(ct["series_uid"])
        np.testing.assert_allclose(volume.affine, np.array(ct["affine"]), atol=1e-6)
        voxel_ml = abs(np.linalg.det(np.array(ct["affine"])[:3, :3])) / 1000.0
        for lesion in study["lesions"]:
            annotation = lesion["annotations"]["rtstruct"]
            if annotation is None:
                continue
            doc = read_rtstruct(out / annotation["file"])
            assert doc.series_uid == annotation["series_uid"]
            assert doc.time_point == study["time_point"]
            assert doc.referenced_series_uids == (ct["series_uid"],)
            (roi,) = doc.rois
            result = rasterize_roi(roi, volume)
            assert result.flags == ()
            expected = ellipsoid_mask(ct, lesion)
            score = dice(result.mask, expected)
            volume_ml = result.mask.sum() * voxel_ml
            if lesion["small"]:
                checked["small"] += 1
                assert score >= 0.8, (lesion["lesion_id"], score)
                assert not np.any(result.mask & ~shifted_union(expected, 1))
                continue
            checked["oblique" if ct["oblique"] else "axial"] += 1
            assert score >= 0.95, (lesion["lesion_id"], score)
            assert volume_ml == pytest.approx(lesion["volume_ml"], rel=0.03)
    assert min(checked.values()) >= 1, checked


def test_synthetic_seed_points(synth, synth_volumes) -> None:
    out, gt, _ = synth
    quirks_seen = set()
    for _, study in studies(gt):
        if study["no_findings"]:
            continue
        ct = series_by_uid(study, study["ct_series_uid"])
        for lesion in study["lesions"]:
            doc = read_rtstruct(out / lesion["annotations"]["seed"]["file"])
            (roi,) = doc.rois
            assert roi.interpreted_type == "MARKER"
            (seed,) = seed_points(roi)
            np.testing.assert_allclose(seed.lps, lesion["seed_lps"], atol=SEED_ATOL_MM, rtol=0)
            q = (np.array(seed.lps) - lesion["center_lps"]) / np.array(lesion["semi_axes_mm"])
            assert float(q @ q) <= 1.0
            quirk = lesion["seed_quirk"]
            quirks_seen.add(quirk)
            if quirk is None:
                assert seed.flags == ()
            elif quirk == "extra_triplets":
                (flag,) = seed.flags
                assert re.match(
                    r"extra-triplets: POINT with NumberOfContourPoints 1 stores [23] ", flag
                )
            else:
                assert quirk == "two_point_closed_planar"
                (flag,) = seed.flags
                assert flag.startswith("two-point-closed-planar:")
            # A seed is not an area: rasterizing it gives an empty mask and says why.
            result = rasterize_roi(roi, synth_volumes(ct["series_uid"]))
            assert not result.mask.any()
            expected_flag = (
                "too-few-points:" if quirk == "two_point_closed_planar" else "point-ignored:"
            )
            assert any(f.startswith(expected_flag) for f in result.flags), result.flags
    assert quirks_seen == {None, "extra_triplets", "two_point_closed_planar"}


def test_synthetic_no_findings(synth, synth_volumes) -> None:
    out, gt, _ = synth
    found = 0
    for _, study in studies(gt):
        if not study["no_findings"]:
            continue
        series = next(s for s in study["series"] if s["role"] == "no_findings")
        doc = read_rtstruct(out / series["files"][0])
        assert doc.rois
        for roi in doc.rois:
            found += 1
            assert roi.contours == ()
            assert seed_points(roi) == ()
            result = rasterize_roi(roi, synth_volumes(study["ct_series_uid"]))
            assert not result.mask.any()
            assert result.flags == ()
    assert found >= 1


def test_synthetic_gantry_tilted_ct(synth, synth_volumes) -> None:
    """Contours drawn in the tilted CT's slice planes (ellipses of intersection) rasterize
    through the sheared affine; the upright CT's contours are not in those planes: flagged."""
    out, gt, _ = synth
    _, study = next((p, s) for p, s in studies(gt) if s["tilted_ct_series_uid"])
    tilted = series_by_uid(study, study["tilted_ct_series_uid"])
    assert tilted["gantry_tilt_deg"] > 1
    volume = synth_volumes(tilted["series_uid"])
    assert volume.gantry_tilt_deg == pytest.approx(tilted["gantry_tilt_deg"], abs=1e-3)
    row, col = np.array(tilted["row_cosines"]), np.array(tilted["col_cosines"])
    origin, step = np.array(tilted["origin"]), np.array(tilted["slice_step"])
    voxel_ml = abs(np.linalg.det(np.array(tilted["affine"])[:3, :3])) / 1000.0
    for lesion in study["lesions"]:
        ellipsoid = Ellipsoid(tuple(lesion["center_lps"]), tuple(lesion["semi_axes_mm"]))
        contours = []
        for k in range(tilted["shape"][0]):
            section = ellipsoid.section(origin + k * step, row, col)
            if section is not None:
                contours.append(closed(section.polygon(64)))
        result = rasterize_roi(roi_of(*contours), volume)
        assert result.flags == ()
        expected = ellipsoid_mask(tilted, lesion)
        assert dice(result.mask, expected) >= 0.95
        assert result.mask.sum() * voxel_ml == pytest.approx(ellipsoid.volume_ml, rel=0.03)

        annotation = lesion["annotations"]["rtstruct"]
        if annotation is None:
            continue
        upright = read_rtstruct(out / annotation["file"]).rois[0]
        moved = rasterize_roi(upright, volume)
        assert not moved.mask.any()
        assert any(f.startswith("other-series:") for f in moved.flags)
        assert any(
            re.match(
                rf"contour-not-in-slice-plane: {len(upright.contours)} of {len(upright.contours)} ",
                f,
            )
            for f in moved.flags
        ), moved.flags


def test_synthetic_rtstruct_on_another_patients_ct_raises(synth, synth_volumes) -> None:
    out, gt, _ = synth
    all_studies = [s for _, s in studies(gt)]
    source = next(
        s for s in all_studies if any(les["annotations"]["rtstruct"] for les in s["lesions"])
    )
    target = next(
        s for s in all_studies if s["frame_of_reference_uid"] != source["frame_of_reference_uid"]
    )
    lesion = next(les for les in source["lesions"] if les["annotations"]["rtstruct"])
    path = out / lesion["annotations"]["rtstruct"]["file"]
    volume = synth_volumes(target["ct_series_uid"])
    with pytest.raises(MissingReferenceError, match=re.escape(str(path))) as info:
        rasterize_roi(read_rtstruct(path).rois[0], volume)
    for uid in (
        source["ct_series_uid"],
        source["frame_of_reference_uid"],
        target["ct_series_uid"],
        target["frame_of_reference_uid"],
    ):
        assert uid in str(info.value)


# ---------------------------------------------------------------------------------------------
# Hypothesis: random polygons on random (oblique, tilted) grids vs matplotlib


@st.composite
def scenes(draw):
    quaternion = np.array(draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4)))
    assume(np.linalg.norm(quaternion) > 0.2)
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    row, col = rotation[:, 0], rotation[:, 1]
    normal = np.cross(row, col)
    distance = draw(st.floats(0.5, 5.0))
    shear = draw(st.floats(-0.5, 0.5)) if draw(st.booleans()) else 0.0  # gantry tilt
    step = distance * normal + shear * distance * col
    dy, dx = draw(st.floats(0.3, 3.0)), draw(st.floats(0.3, 3.0))
    shape = (draw(st.integers(1, 5)), draw(st.integers(4, 30)), draw(st.integers(4, 30)))
    origin = np.array(draw(st.lists(st.floats(-300, 300), min_size=3, max_size=3)))
    width, height = shape[2] * dx, shape[1] * dy

    polygons = []  # (slice k, vertices (n, 2) in plane mm (u along row, v along col))
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, shape[0] - 1))
        centre = np.array(
            [
                draw(st.floats(-0.2 * width, 1.2 * width)),
                draw(st.floats(-0.2 * height, 1.2 * height)),
            ]
        )
        radius = draw(st.floats(0.5, 0.8 * max(width, height)))
        n = draw(st.integers(3, 16))
        kind = draw(st.sampled_from(["convex", "star", "holed", "scrambled"]))
        angles = np.sort(
            np.array(draw(st.lists(st.floats(0, 2 * math.pi), min_size=n, max_size=n)))
        )
        radii = (
            np.full(n, radius)
            if kind in ("convex", "holed")
            else radius * np.array(draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n)))
        )
        ring = centre + np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])
        if kind == "scrambled":  # any vertex order: usually self-intersecting
            ring = ring[np.array(draw(st.permutations(range(n))))]
        polygons.append((k, ring))
        if kind == "holed":
            inner = centre + 0.4 * radius * np.column_stack(
                [np.cos(angles[::-1] + 0.3), np.sin(angles[::-1] + 0.3)]
            )
            polygons.append((k, inner))
    order = draw(st.permutations(range(len(polygons))))  # contours in any file order
    return {
        "shape": shape,
        "origin": origin,
        "step": step,
        "row": row,
        "col": col,
        "spacing": (dy, dx),
        "polygons": [polygons[n] for n in order],
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scene=scenes())
def test_random_polygons_match_matplotlib(scene) -> None:
    shape, origin, step = scene["shape"], scene["origin"], scene["step"]
    row, col = scene["row"], scene["col"]
    dy, dx = scene["spacing"]
    volume = make_volume(shape, origin, step, row, col, (dy, dx))
    contours = [
        Contour(
            "CLOSED_PLANAR",
            origin + k * step + ring[:, :1] * row + ring[:, 1:] * col,
            len(ring),
            (),
        )
        for k, ring in scene["polygons"]
    ]
    result = rasterize_roi(roi_of(*contours), volume)
    assert not any(
        f.startswith(("contour-between", "contour-off", "contour-not-in")) for f in result.flags
    )

    jj, ii = np.mgrid[0 : shape[1], 0 : shape[2]]
    centres_uv = np.column_stack([(ii * dx).ravel(), (jj * dy).ravel()])  # slice-plane mm
    for k in range(shape[0]):
        rings = [ring for kk, ring in scene["polygons"] if kk == k]
        expected = even_odd_oracle(rings, centres_uv)
        got = result.mask[k].ravel()
        differ = got != expected
        if differ.any():  # only voxel centres on an edge may differ (tie convention)
            tol = 1e-7 * max(1.0, float(np.abs(centres_uv).max()))
            assert on_boundary(rings, centres_uv[differ], tol).all()


@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=9))
def test_self_intersection_flag_matches_brute_force(points) -> None:
    """Integer vertices make touching and collinear cases frequent."""
    ring = np.array(points, dtype=float) + 0.25
    assume(len({tuple(p) for p in ring}) >= 3)
    volume = axial_volume(shape=(1, 10, 10))
    contour = closed(np.column_stack([ring[:, 1], ring[:, 0], np.zeros(len(ring))]))
    result = rasterize_roi(roi_of(contour), volume)
    flagged = any(f.startswith("self-intersecting:") for f in result.flags)
    assert flagged == brute_force_self_intersecting(ring)


# ---------------------------------------------------------------------------------------------
# Conventions and bad input, on small hand-made grids (axial: x = column i, y = row j, z = 2 k)


def test_vertices_on_voxel_centres_follow_the_half_open_rule() -> None:
    volume = axial_volume()
    square = closed([[2, 2, 2], [5, 2, 2], [5, 5, 2], [2, 5, 2]])  # columns/rows 2..5, k=1
    mask = rasterize_roi(roi_of(square), volume).mask
    expected = np.zeros(volume.shape, dtype=bool)
    expected[1, 2:5, 2:5] = True  # area 9 mm^2 -> 9 voxels
    np.testing.assert_array_equal(mask, expected)
    # Two squares sharing an edge: its centres are claimed once (XOR would otherwise drop them).
    right = closed([[5, 2, 2], [8, 2, 2], [8, 5, 2], [5, 5, 2]])
    mask = rasterize_roi(roi_of(square, right), volume).mask
    expected[1, 2:5, 2:8] = True
    np.testing.assert_array_equal(mask, expected)


def test_hole_and_nested_island() -> None:
    volume = axial_volume(shape=(1, 20, 20))
    outer = closed([[1.5, 1.5, 0], [16.5, 1.5, 0], [16.5, 16.5, 0], [1.5, 16.5, 0]])
    hole = closed([[4.5, 4.5, 0], [4.5, 13.5, 0], [13.5, 13.5, 0], [13.5, 4.5, 0]])
    island = closed([[7.5, 7.5, 0], [10.5, 7.5, 0], [10.5, 10.5, 0], [7.5, 10.5, 0]])
    mask = rasterize_roi(roi_of(island, outer, hole), volume).mask[0]
    assert mask[3, 3] and not mask[5, 5] and mask[9, 9] and not mask[0, 0]
    assert mask.sum() == 15 * 15 - 9 * 9 + 3 * 3


def test_bow_tie_is_flagged_and_filled_even_odd() -> None:
    volume = axial_volume(shape=(1, 12, 12))
    bow_tie = closed([[1.3, 1.1, 0], [9.7, 9.9, 0], [9.7, 1.2, 0], [1.3, 9.6, 0]])
    result = rasterize_roi(roi_of(bow_tie), volume)
    assert any(
        re.match(r"self-intersecting: 1 polygon\(s\) cross or touch themselves \(slice 0\)", f)
        for f in result.flags
    )
    jj, ii = np.mgrid[0:12, 0:12]
    centres = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    assert not on_boundary([bow_tie.points[:, :2]], centres, 1e-6).any()
    expected = even_odd_oracle([bow_tie.points[:, :2]], centres)
    np.testing.assert_array_equal(result.mask[0].ravel(), expected)


def test_contours_between_slices_and_off_volume_are_reported_not_moved() -> None:
    volume = axial_volume()  # slices at z = 0, 2, 4, 6 mm
    ok = closed([[2, 2, 4], [6, 2, 4], [6, 6, 4]])
    between = closed([[2, 2, 3], [6, 2, 3], [6, 6, 3]])
    between2 = closed([[2, 2, 5.1], [6, 2, 5.1], [6, 6, 5.1]])
    below = closed([[2, 2, -2], [6, 2, -2], [6, 6, -2]])
    oblique = closed([[2, 2, 0], [6, 2, 2], [6, 6, 4]])
    result = rasterize_roi(roi_of(ok, between, below, between2, oblique), volume)
    assert result.mask[2].any()
    assert not result.mask[[0, 1, 3]].any()
    flags = "\n".join(result.flags)
    assert re.search(
        r"contour-between-slices: 2 of 5 contours lie between image slices, at "
        r"k=1\.50 \(mean z 3\.00 mm\), k=2\.55 \(mean z 5\.10 mm\); not rasterized",
        flags,
    )
    assert re.search(r"contour-off-volume: 1 of 5 contours .* slices 0\.\.3, at k=-1\.00", flags)
    assert re.search(r"contour-not-in-slice-plane: 1 of 5 contours .*\(k 0\.00\.\.2\.00\)", flags)


def test_slice_tolerance() -> None:
    volume = axial_volume()  # 2 mm slices: tolerance max(1% = 0.02 mm, 0.01 mm) = 0.02 mm
    near = closed([[2, 2, 2.015], [6, 2, 2.015], [6, 6, 2.015]])
    far = closed([[2, 2, 4.03], [6, 2, 4.03], [6, 6, 4.03]])
    result = rasterize_roi(roi_of(near, far), volume)
    assert result.mask[1].any() and not result.mask[2].any()
    assert any(f.startswith("contour-between-slices: 1 of 2") for f in result.flags)


def test_degenerate_contours_are_flagged() -> None:
    volume = axial_volume()
    empty = Contour("CLOSED_PLANAR", np.empty((0, 3)), 0, ())
    two = closed([[2, 2, 0], [3, 2, 0]])
    line = Contour("OPEN_PLANAR", np.array([[1.0, 1, 0], [5, 5, 0], [1, 5, 0]]), 3, ())
    point = Contour("POINT", np.array([[1.0, 1, 0]]), 1, ())
    weird = Contour("CURVE", np.array([[1.0, 1, 0], [5, 5, 0], [1, 5, 0]]), 3, ())
    mislabelled = closed([[2, 2, 0], [6, 2, 0], [6, 6, 0]], declared=4)
    tiny = closed([[2.1, 2.1, 2], [2.4, 2.1, 2], [2.4, 2.4, 2]])  # between voxel centres
    nan = closed([[2, 2, 0], [np.nan, 2, 0], [6, 6, 0]])
    result = rasterize_roi(roi_of(empty, two, line, point, weird, mislabelled, nan), volume)
    flags = "\n".join(result.flags)
    assert "empty-contour: 1 contour(s) without points" in flags
    assert "non-finite-points: 1 contour(s) with NaN or infinite coordinates" in flags
    assert "too-few-points: 1 CLOSED_PLANAR contour(s) with fewer than 3 points" in flags
    assert "open-planar-ignored: 1 OPEN_PLANAR" in flags
    assert "point-ignored: 1 POINT" in flags
    assert "unknown-type-ignored: 1 contour(s) of ContourGeometricType 'CURVE'" in flags
    assert "declared-points-mismatch: 1 contour(s) whose NumberOfContourPoints differs" in flags
    assert "(4 declared, 3 stored)" in flags
    assert result.mask.sum() > 0  # the mislabelled triangle is still filled
    result = rasterize_roi(roi_of(tiny), volume)
    assert not result.mask.any()
    assert result.flags == ("empty-mask: the 1 placed polygon(s) enclose no voxel centre",)


def test_contour_references_checked_against_volume() -> None:
    volume = axial_volume()
    wrong_slice = closed([[2, 2, 0], [6, 2, 0], [6, 6, 0]], refs=(volume.sop_instance_uids[3],))
    absent = closed([[2, 2, 2], [6, 2, 2], [6, 6, 2]], refs=("9.9.9",))
    roi = Roi(
        1,
        "r",
        None,
        None,
        None,
        (wrong_slice, absent),
        volume.frame_of_reference_uid,
        (volume.series_uid,),
        "x.dcm",
    )
    flags = "\n".join(rasterize_roi(roi, volume).flags)
    assert (
        "reference-slice-mismatch: 1 contour(s) lie on another slice than the image they reference (slice 0 by position, image of slice 3 referenced)"
        in flags
    )
    assert re.search(
        r"reference-not-in-volume: contours reference 1 image\(s\) not in series 1\.2\.3\.4 \(9\.9\.9\)",
        flags,
    )


def test_reference_rules() -> None:
    volume = axial_volume()
    contour = closed([[2, 2, 0], [6, 2, 0], [6, 6, 0]])

    def roi(frame, series):
        return Roi(5, "GTV 1", None, None, None, (contour,), frame, series, "/data/a.dcm")

    same = rasterize_roi(roi(volume.frame_of_reference_uid, (volume.series_uid,)), volume)
    assert same.flags == ()
    other = rasterize_roi(roi(volume.frame_of_reference_uid, ("7.7",)), volume)
    assert other.flags[0].startswith("other-series: the structure set refers to 7.7")
    unknown = rasterize_roi(roi(None, ("7.7",)), volume)
    assert unknown.flags[0].startswith("unverified-reference:")
    assert unknown.mask.any() and other.mask.any()
    with pytest.raises(
        MissingReferenceError,
        match=r"/data/a\.dcm: ROI 5 'GTV 1': the structure set refers to 7\.7 in frame of "
        r"reference 8\.8, but the volume is series 1\.2\.3\.4 in frame of reference 1\.2\.3\.5",
    ):
        rasterize_roi(roi("8.8", ("7.7",)), volume)


def test_seed_point_rules() -> None:
    assert seed_points(roi_of()) == ()
    assert seed_points(roi_of(closed([[0, 0, 0], [1, 0, 0], [1, 1, 0]]))) == ()
    point = Contour("POINT", np.array([[1.5, -2.0, 3.25]]), 1, ())
    assert seed_points(roi_of(point)) == (SeedPoint((1.5, -2.0, 3.25), ()),)
    triplets = Contour("POINT", np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]), 1, ())
    first, second = seed_points(roi_of(triplets, point, point))  # the repeat adds no seed
    assert first.lps == (1.0, 2.0, 3.0)
    assert first.flags == (
        "extra-triplets: POINT with NumberOfContourPoints 1 stores 3 triplets; the first is used",
    )
    assert second == SeedPoint((1.5, -2.0, 3.25), ())
    two = closed([[4, 5, 6], [4.6, 5, 6]])
    assert [seed.lps for seed in seed_points(roi_of(two))] == [(4.0, 5.0, 6.0)]
    empty_point = Contour("POINT", np.empty((0, 3)), 1, ())
    with pytest.raises(
        AnnotationError, match=r"ROI 1 'test': its 1 seed contour\(s\) hold no coordinates"
    ):
        seed_points(roi_of(empty_point))


def test_read_errors(rtutils_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DicomReadError, match="no such file"):
        read_rtstruct(tmp_path / "missing.dcm")
    with pytest.raises(
        AnnotationError, match=r"ct_1\.dcm: not an RT Structure Set \(Modality 'CT'"
    ):
        read_rtstruct(rtutils_dir / "ct_1.dcm")
    ds = pydicom.dcmread(rtutils_dir / "rt.dcm")
    ds.ROIContourSequence[0].ContourSequence[1].ContourData = [1.0, 2.0, 3.0, 4.0]
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(
        AnnotationError,
        match=r"bad\.dcm: ROI 1 'ROI-1', contour 2: ContourData holds 4 values, not a multiple of 3",
    ):
        read_rtstruct(bad)
    data = (rtutils_dir / "rt.dcm").read_bytes()
    assert data.count(b"-51.0\\-51.0") == 1
    comma = tmp_path / "comma.dcm"
    comma.write_bytes(data.replace(b"-51.0\\-51.0", b"-51,0\\-51.0"))  # same length
    with pytest.raises(
        AnnotationError,
        match=r"comma\.dcm: ROI 1 'ROI-1', contour 1: ContourData cannot be read as numbers",
    ):
        read_rtstruct(comma)


def test_in_memory_dataset_values_parse_like_raw_text(rtutils_dir: Path, tmp_path: Path) -> None:
    """Values set through pydicom (not raw text) and unusual text formatting read the same."""
    ds = pydicom.dcmread(rtutils_dir / "rt.dcm")
    ds.ROIContourSequence[0].ContourSequence[0].ContourData = ["-51", "+51.0", "6E1"] * 2
    path = tmp_path / "edited.dcm"
    ds.save_as(path)
    contour = read_rtstruct(path).rois[0].contours[0]
    np.testing.assert_array_equal(contour.points, [[-51.0, 51.0, 60.0]] * 2)


def test_listed_images_from_raw_bytes_equal_pydicom_parse(realdata) -> None:
    """The document-level ContourImageSequence UIDs, read from raw bytes, equal pydicom's parse."""
    import pydicom

    for path in sorted(realdata.glob("0[67]_*/*.dcm")):
        ds = pydicom.dcmread(path, force=True)
        if ds.get("Modality") != "RTSTRUCT":
            continue
        expected = [
            str(ref.ReferencedSOPInstanceUID)
            for frame in ds.get("ReferencedFrameOfReferenceSequence", [])
            for study in frame.get("RTReferencedStudySequence", [])
            for series in study.get("RTReferencedSeriesSequence", [])
            for ref in series.get("ContourImageSequence", [])
        ]
        document = read_rtstruct(path)
        contour_refs = [
            u for roi in document.rois for c in roi.contours for u in c.referenced_sop_instance_uids
        ]
        assert list(document.referenced_sop_instance_uids) == list(
            dict.fromkeys(expected + contour_refs)
        )
