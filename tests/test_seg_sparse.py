"""Sparse SEGs whose stored frames lie at irregular positions (only the lesion frames, e.g. at
z = 0, 5 and 17.5 mm): read frame by frame, without a regular grid.  Written here with highdicom;
expected voxel counts, volumes and diameters come from the written arrays by plain arithmetic."""

from __future__ import annotations

import itertools
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tcia_trials.errors import AnnotationError
from tcia_trials.source.annotations import read_annotation_file
from tcia_trials.source.seg import read_seg_own_grid, seg_masks_own_grid

HEIGHTS = (0.0, 5.0, 17.5)  # mm along the normal (z): not one regular grid
ORIGIN = (-10.0, -20.0)  # x, y of the first pixel centre, mm
ROW_SPACING, COL_SPACING = 0.8, 0.6  # PixelSpacing (mm)
SLICE_THICKNESS = 2.5  # mm
SHAPE = (16, 20)  # rows, columns


def _ct_slices() -> list[Dataset]:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    slices = []
    for number, z in enumerate(HEIGHTS, start=1):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "CT"
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "P1", "P^1", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20200101", "000000", "1"
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.SeriesNumber, ds.InstanceNumber = 1, number
        ds.ImagePositionPatient = [*ORIGIN, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [ROW_SPACING, COL_SPACING]
        ds.SliceThickness = SLICE_THICKNESS
        ds.Rows, ds.Columns = SHAPE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.zeros(SHAPE, np.int16).tobytes()
        slices.append(ds)
    return slices


def _lesions() -> np.ndarray:
    """(frame, row, col, segment): segment 1 on every frame, segment 2 on the last only."""
    array = np.zeros((len(HEIGHTS), *SHAPE, 2), dtype=np.float32)
    array[0, 2:5, 3:7, 0] = 1
    array[1, 4:10, 2:12, 0] = 1
    array[2, 7, 9, 0] = 1
    array[2, 0:2, 0:3, 1] = 1
    return array


def _write(path: Path, array: np.ndarray, kind: str) -> Path:
    segments = [
        hd.seg.SegmentDescription(
            number,
            f"LIVER - {number}",
            hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
            hd.sr.CodedConcept("52988006", "SCT", "Lesion"),
            "MANUAL",
        )
        for number in (1, 2)
    ]
    seg = hd.seg.Segmentation(
        source_images=_ct_slices(),
        pixel_array=array if kind == "FRACTIONAL" else array.astype(np.uint8),
        segmentation_type=kind,
        segment_descriptions=segments,
        series_instance_uid=generate_uid(),
        series_number=9,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=True,
    )
    seg.save_as(path)
    return path


def _longest_chord_mm(plane: np.ndarray) -> float:
    """Brute force: the largest distance between centres of the plane's pixels (mm)."""
    points = np.argwhere(plane) * [ROW_SPACING, COL_SPACING]
    return max(
        (float(np.linalg.norm(a - b)) for a, b in itertools.combinations(points, 2)),
        default=0.0,
    )


def _with_measures(path: Path, target: Path, **changes: float) -> Path:
    """A copy of the SEG with its shared Pixel Measures changed."""
    ds = pydicom.dcmread(path)
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    for keyword, value in changes.items():
        setattr(measures, keyword, value)
    ds.save_as(target)
    return target


@pytest.fixture(scope="module")
def sparse(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("sparse-seg") / "seg.dcm", _lesions(), "BINARY")


def test_irregular_frames_give_exact_counts_volumes_and_diameters(sparse):
    expected = _lesions().astype(bool)
    voxel_ml = ROW_SPACING * COL_SPACING * SLICE_THICKNESS / 1000
    masks, affine = seg_masks_own_grid(sparse)
    for number in (1, 2):
        np.testing.assert_array_equal(masks[number], expected[..., number - 1])
    assert abs(np.linalg.det(affine[:3, :3])) / 1000 == pytest.approx(voxel_ml)
    np.testing.assert_allclose(affine @ [0, 0, 0, 1], [*ORIGIN, HEIGHTS[0], 1])
    own = read_seg_own_grid(sparse)
    np.testing.assert_allclose(own.plane_heights_mm, HEIGHTS)
    assert own.thickness_source == "SliceThickness"
    assert own.flags[0].startswith("irregular-frames: 3 stored planes")
    lesions = {lesion.label: lesion for lesion in read_annotation_file(sparse)}
    for number in (1, 2):
        mask = expected[..., number - 1]
        lesion = lesions[f"LIVER - {number}"]
        assert lesion.volume_ml == pytest.approx(np.count_nonzero(mask) * voxel_ml)
        assert lesion.longest_diameter_mm == pytest.approx(
            max(_longest_chord_mm(plane) for plane in mask)
        )
        assert lesion.seed_lps is None


def test_spacing_between_slices_wins_over_slice_thickness(sparse, tmp_path):
    path = _with_measures(sparse, tmp_path / "spacing.dcm", SpacingBetweenSlices=2.0)
    own = read_seg_own_grid(path)
    assert own.thickness_source == "SpacingBetweenSlices" and own.voxel_thickness_mm == 2.0
    count = np.count_nonzero(_lesions()[..., 0])
    (lesion, _) = read_annotation_file(path)
    assert lesion.volume_ml == pytest.approx(count * ROW_SPACING * COL_SPACING * 2.0 / 1000)


def test_unknown_thickness_is_flagged_or_a_clear_error(sparse, tmp_path):
    """SliceThickness 0 and no SpacingBetweenSlices (highdicom refuses a SEG without the
    attribute): the masks are read, the voxel volume is unknown."""
    path = _with_measures(sparse, tmp_path / "no-thickness.dcm", SliceThickness=0)
    own = read_seg_own_grid(path)
    assert own.voxel_thickness_mm is None and own.thickness_source == "unknown"
    assert own.flags[-1].startswith("voxel-thickness-unknown")
    np.testing.assert_array_equal(own.masks[1], _lesions()[..., 0].astype(bool))
    with pytest.raises(AnnotationError, match=r"no-thickness\.dcm: voxel-thickness-unknown"):
        seg_masks_own_grid(path)


def test_irregular_fractional_frames_apply_the_threshold(tmp_path):
    array = _lesions() * 0.8
    array[1, 0, 0, 0] = 0.3  # below the default threshold 0.5
    path = _write(tmp_path / "fractional.dcm", array, "FRACTIONAL")
    masks, _ = seg_masks_own_grid(path)
    np.testing.assert_array_equal(masks[1], array[..., 0] >= 0.5)
    low, _ = seg_masks_own_grid(path, threshold=0.2)
    assert low[1][1, 0, 0] and np.count_nonzero(low[1]) == np.count_nonzero(array[..., 0])
