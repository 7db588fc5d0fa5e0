"""Volumes from real third-party DICOM agree with independent readers (SimpleITK/GDCM, highdicom)."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from tcia_trials.errors import DicomReadError, MultipleStacksError, SeriesGeometryError
from tcia_trials.source.pixels import decode_pixels
from tcia_trials.source.volume import read_volume

sitk = pytest.importorskip("SimpleITK")

ATOL_MM = 1e-4


def sitk_volume(paths: list[Path]):
    """Oracle: SimpleITK (ITK + GDCM, C++) reading the same files.

    Returns array (k, j, i), spacing (z, y, x), origin LPS and direction with columns (k, j, i).
    """
    if len(paths) == 1:
        image = sitk.ReadImage(str(paths[0]))
    else:
        series_uid = pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(
            sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(paths[0].parent), series_uid)
        )
        image = reader.Execute()
    direction = np.array(image.GetDirection()).reshape(3, 3)[:, ::-1]
    return (
        sitk.GetArrayFromImage(image),
        np.array(image.GetSpacing()[::-1]),
        np.array(image.GetOrigin()),
        direction,
    )


SINGLE_FRAME_SERIES = {
    "ct_liver_dcmqi_512": "02_ct_liver_3slice_dcmqi_seg/ct/*.dcm",
    "ct_dcmqi_23x38": "03_dcmqi_23x38x3_seg/image/*.dcm",
    "ct_dcmqi_24x38": "03_dcmqi_24x38x3_seg/image/*.dcm",
    "ct_rtutils_2slices": "06_rtstruct_rtutils/ct_*.dcm",
    "ct_pydicom_dicomdir_5": "13_pydicom_dicomdir_series/98892001_CT5N/*.dcm",
    "mr_single": "12_corrupt_and_single/MR_small.dcm",
    **{
        f"mr_transfer_syntax_{n}": f"10_mr_transfer_syntaxes_dcm_qa_ts/{n}.dcm"
        for n in range(1, 10)
    },
}


@pytest.mark.parametrize("pattern", SINGLE_FRAME_SERIES.values(), ids=SINGLE_FRAME_SERIES.keys())
def test_single_frame_series_match_simpleitk(realdata, pattern):
    paths = sorted(realdata.glob(pattern))
    assert paths
    volume = read_volume(paths)
    array, spacing, origin, direction = sitk_volume(paths)
    assert volume.array.shape == array.shape
    np.testing.assert_array_equal(volume.array, array)
    checked = slice(None) if len(paths) > 1 else slice(1, 3)  # one slice has no slice spacing
    np.testing.assert_allclose(volume.spacing[checked], spacing[checked], atol=ATOL_MM)
    np.testing.assert_allclose(volume.origin, origin, atol=ATOL_MM)
    np.testing.assert_allclose(volume.direction[:, checked], direction[:, checked], atol=ATOL_MM)


def test_ct_in_hu_as_int16_when_rescale_is_integral(realdata):
    volume = read_volume(sorted(realdata.glob("02_ct_liver_3slice_dcmqi_seg/ct/*.dcm")))
    assert volume.units == "HU"
    assert volume.array.dtype == np.int16
    assert volume.modality == "CT"


def test_all_transfer_syntaxes_give_identical_voxels(realdata):
    arrays = [
        read_volume(p).array
        for p in sorted(realdata.glob("10_mr_transfer_syntaxes_dcm_qa_ts/*.dcm"))
    ]
    assert len(arrays) == 9
    for array in arrays[1:]:
        np.testing.assert_array_equal(array, arrays[0])


def _ascending(reference: hd.Volume) -> hd.Volume:
    """highdicom orders slices against the normal (right-handed slice, row, col axes); we order
    them along it, as ITK does: flip highdicom's slice axis to compare."""
    return reference.ensure_handedness(hd.AxisHandedness.LEFT_HANDED, flip_axis=0)


def test_highdicom_agrees_on_ct_affine(realdata):
    paths = sorted(realdata.glob("02_ct_liver_3slice_dcmqi_seg/ct/*.dcm"))
    reference = _ascending(
        hd.get_volume_from_series([pydicom.dcmread(p) for p in paths], dtype=np.float64)
    )
    volume = read_volume(paths)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=ATOL_MM)
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.to_highdicom().affine, volume.affine)


@pytest.mark.parametrize(
    "name",
    [
        "03_dcmqi_23x38x3_seg/multiframe/mf.dcm",
        "03_dcmqi_24x38x3_seg/multiframe/mf.dcm",
        "09_mr_enhanced_multiframe_dcm_qa_enh/Siemens_XA10/6_1.dcm",
    ],
)
def test_enhanced_multiframe_matches_highdicom(realdata, name):
    reference = _ascending(hd.imread(realdata / name).get_volume(dtype=np.float64))
    volume = read_volume(realdata / name)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=ATOL_MM)
    np.testing.assert_array_equal(volume.array, reference.array)


def test_legacy_converted_multiframe_equals_its_single_frames(realdata):
    single = read_volume(sorted(realdata.glob("03_dcmqi_23x38x3_seg/image/*.dcm")))
    multi = read_volume(realdata / "03_dcmqi_23x38x3_seg/multiframe/mf.dcm")
    np.testing.assert_array_equal(multi.array, single.array)
    np.testing.assert_allclose(multi.affine, single.affine, atol=ATOL_MM)
    assert multi.frame_numbers == (1, 2, 3)


def test_multiframe_with_two_echoes_is_split(realdata):
    path = realdata / "09_mr_enhanced_multiframe_dcm_qa_enh/Philips/IM_0027_fMAP.dcm"
    with pytest.raises(
        MultipleStacksError, match=r"2 stacks.*stack=0: EffectiveEchoTime=0\.0 \(32 frames\)"
    ):
        read_volume(path)
    # independent oracle: pydicom frames of the first echo, sorted along the normal
    ds = pydicom.dcmread(path)
    groups = ds.PerFrameFunctionalGroupsSequence
    echo = [f for f, g in enumerate(groups) if float(g.MREchoSequence[0].EffectiveEchoTime) == 0.0]
    iop = np.array(groups[0].PlaneOrientationSequence[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    heights = [
        np.dot(groups[f].PlanePositionSequence[0].ImagePositionPatient, normal) for f in echo
    ]
    frames = [echo[n] for n in np.argsort(heights)]
    transforms = [groups[f].PixelValueTransformationSequence[0] for f in frames]
    slopes = np.array([float(t.RescaleSlope) for t in transforms])[:, None, None]
    intercepts = np.array([float(t.RescaleIntercept) for t in transforms])[:, None, None]
    expected = ds.pixel_array[frames] * slopes + intercepts
    volume = read_volume(path, stack=0)
    assert volume.stack == "EffectiveEchoTime=0.0"
    np.testing.assert_allclose(volume.array, expected, rtol=1e-6)
    np.testing.assert_allclose(
        volume.origin, groups[frames[0]].PlanePositionSequence[0].ImagePositionPatient, atol=ATOL_MM
    )


def test_4d_series_without_temporal_tags_is_split_by_repetition(realdata):
    paths = sorted(realdata.glob("08_mr_ge_epi_dcm_qa_nih/*.dcm"))
    with pytest.raises(MultipleStacksError, match=r"10 stacks.*repetition 1 of 10"):
        read_volume(paths)
    volume = read_volume(paths, stack=3)
    # oracle: the 4th time point is InstanceNumber 46..60 (15 slices per volume)
    expected = sorted(
        (
            pydicom.dcmread(p)
            for p in paths
            if 46 <= int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) <= 60
        ),
        key=lambda ds: float(ds.ImagePositionPatient[2]),
    )
    np.testing.assert_array_equal(volume.array, np.stack([ds.pixel_array for ds in expected]))
    assert volume.sop_instance_uids == tuple(ds.SOPInstanceUID for ds in expected)


def test_non_uniform_series_is_refused_with_gap_positions(realdata):
    paths = sorted(realdata.glob("01_ct2_series_highdicom_seg/ct/*.dcm"))
    with pytest.raises(
        SeriesGeometryError, match=r"missing slices.*202\.500 mm between slices 0 and 1"
    ):
        read_volume(paths)


def test_folder_mixing_series_is_refused(realdata):
    with pytest.raises(SeriesGeometryError, match="hold 3 series"):
        read_volume(realdata / "13_pydicom_dicomdir_series/98892003_MR2")


def test_localizers_with_mixed_orientations_become_separate_stacks(realdata):
    with pytest.raises(MultipleStacksError, match="orientation group"):
        read_volume(realdata / "13_pydicom_dicomdir_series/98892003_MR700")


def test_truncated_pixel_data_is_a_clear_error(realdata):
    with pytest.raises(DicomReadError, match=r"MR_truncated\.dcm.*(truncated|holds \d+ bytes)"):
        read_volume(realdata / "12_corrupt_and_single/MR_truncated.dcm")


def test_multiframe_without_functional_groups_is_refused(realdata):
    with pytest.raises(SeriesGeometryError, match="PerFrameFunctionalGroupsSequence is missing"):
        read_volume(realdata / "11_mr_emri_small_multiframe_pydicom_data/emri_small.dcm")


def test_compressed_multiframe_decodes_identically(realdata):
    folder = realdata / "11_mr_emri_small_multiframe_pydicom_data"
    reference = decode_pixels(folder / "emri_small.dcm")
    for name in (
        "emri_small_RLE.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ):
        np.testing.assert_array_equal(decode_pixels(folder / name), reference)
    with pytest.raises(
        DicomReadError, match=r"too_short\.dcm: cannot decode pixel data \(JPEG 2000"
    ):
        decode_pixels(folder / "emri_small_jpeg_2k_lossless_too_short.dcm")


def test_non_image_and_non_dicom_files_are_refused(realdata, tmp_path):
    with pytest.raises(DicomReadError, match=r"rt\.dcm: not an image \(RT Structure Set Storage\)"):
        read_volume(realdata / "06_rtstruct_rtutils/rt.dcm")
    junk = tmp_path / "notes.txt"
    junk.write_text("not dicom at all")
    with pytest.raises(DicomReadError, match=r"notes\.txt: not a DICOM file"):
        read_volume(junk)


def test_duplicate_instance_is_dropped_with_a_warning(realdata, tmp_path):
    paths = sorted(realdata.glob("02_ct_liver_3slice_dcmqi_seg/ct/*.dcm"))
    copy = tmp_path / "copy.dcm"
    shutil.copy(paths[1], copy)
    volume = read_volume([*paths, copy])
    assert volume.shape[0] == 3
    assert any("duplicate of instance" in w for w in volume.warnings)


def test_missing_slice_in_real_series_is_reported(realdata):
    paths = sorted(realdata.glob("13_pydicom_dicomdir_series/98892001_CT5N/*.dcm"))
    heights = [
        float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in paths
    ]
    middle = paths[int(np.argsort(heights)[2])]
    with pytest.raises(SeriesGeometryError, match="missing slices"):
        read_volume([p for p in paths if p != middle])
