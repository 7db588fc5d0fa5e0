"""Volumes of the synthetic trial collection against its analytic ground truth.

Expected voxel values are recomputed here from ground_truth.json alone (voxel centres from the
ground-truth affine, body and lesion shapes, SUV factors), independently of the reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tcia_trials as tt
from tcia_trials.synthetic import generate_collection


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[tt.Index, dict, Path]:
    out = tmp_path_factory.mktemp("synthetic")
    ground_truth = json.loads(
        generate_collection(out, patients=3, seed=11, with_tilted_ct=True).read_text()
    )
    return tt.scan(out), ground_truth, out


def _image_series(ground_truth: dict) -> list[tuple[dict, dict]]:
    return [
        (patient, series)
        for patient in ground_truth["patients"].values()
        for study in patient["studies"]
        for series in study["series"]
        if series["role"] == "image"
    ]


def _voxel_centres(series: dict) -> np.ndarray:
    k, j, i = np.indices(series["shape"], dtype=np.float64)
    affine = np.array(series["affine"])
    return np.stack([k, j, i], axis=-1) @ affine[:3, :3].T + affine[:3, 3]


def _analytic_values(patient: dict, series: dict) -> np.ndarray:
    """The phantom at every voxel centre, in the series' physical units."""
    p = _voxel_centres(series)
    phantom, body = series["phantom"], patient["body"]
    values = np.full(series["shape"], phantom["outside_value"], dtype=np.float64)
    (cx, cy), (ax, ay) = body["center_xy"], body["semi_axes_xy"]
    inside_body = ((p[..., 0] - cx) / ax) ** 2 + ((p[..., 1] - cy) / ay) ** 2 <= 1
    values[inside_body] = phantom["body_value"]
    for lesion in phantom["lesions"]:
        inside = (((p - lesion["center_lps"]) / lesion["semi_axes_mm"]) ** 2).sum(axis=-1) <= 1
        values[inside] = lesion["value"]
    return values


def test_every_image_series_has_exact_geometry(collection):
    index, ground_truth, _ = collection
    checked = 0
    for _, series in _image_series(ground_truth):
        volume = tt.read_volume(index, series["series_uid"])
        assert volume.shape == tuple(series["shape"])
        np.testing.assert_allclose(volume.spacing, series["spacing"], atol=1e-6)
        np.testing.assert_allclose(volume.origin, series["origin"], atol=1e-6)
        np.testing.assert_allclose(volume.direction, series["direction"], atol=1e-6)
        np.testing.assert_allclose(volume.affine, series["affine"], atol=1e-6)
        assert volume.gantry_tilt_deg == pytest.approx(series["gantry_tilt_deg"], abs=1e-6)
        assert volume.units == series["units"]
        assert volume.array.dtype == np.dtype(series["dtype"])
        checked += 1
    assert checked >= 6


def test_geometry_variety_is_exercised(collection):
    _, ground_truth, _ = collection
    series = [s for _, s in _image_series(ground_truth)]
    assert any(s["oblique"] for s in series)
    assert any(s["gantry_tilt_deg"] > 0 for s in series)
    assert any(s["files_shuffled"] for s in series)
    assert {s["modality"] for s in series} == {"CT", "PT"}


def test_ct_voxels_equal_the_phantom_in_hu(collection):
    index, ground_truth, _ = collection
    for patient, series in _image_series(ground_truth):
        if series["modality"] != "CT":
            continue
        volume = tt.read_volume(index, series["series_uid"])
        np.testing.assert_array_equal(
            volume.array, _analytic_values(patient, series).astype(np.int16)
        )


def test_pet_voxels_are_suvbw(collection):
    index, ground_truth, _ = collection
    pets = [(p, s) for p, s in _image_series(ground_truth) if s["modality"] == "PT"]
    assert pets
    for patient, series in pets:
        volume = tt.read_volume(index, series["series_uid"])
        expected = _analytic_values(patient, series)
        # stored values are quantized per slice: one stored step is slope * SUV factor
        steps = np.array(series["rescale_slopes"]) * series["suv"]["suv_factor"]
        tolerance = np.broadcast_to(steps[:, None, None] * 0.5 + 1e-6, expected.shape)
        np.testing.assert_array_less(np.abs(volume.array - expected), tolerance)


def test_pet_suvmax_equals_ground_truth(collection):
    index, ground_truth, _ = collection
    checked = 0
    for patient in ground_truth["patients"].values():
        for study in patient["studies"]:
            if not study.get("pet_series_uid"):
                continue
            series = next(s for s in study["series"] if s["series_uid"] == study["pet_series_uid"])
            volume = tt.read_volume(index, series["series_uid"])
            centres = _voxel_centres(series)
            for lesion in study["lesions"]:
                inside = (((centres - lesion["center_lps"]) / lesion["semi_axes_mm"]) ** 2).sum(
                    -1
                ) <= 1
                assert volume.array[inside].max() == pytest.approx(lesion["suvmax"], rel=1e-6)
                checked += 1
    assert checked


def test_reading_paths_equals_reading_from_index(collection):
    index, ground_truth, out = collection
    _, series = _image_series(ground_truth)[0]
    from_index = tt.read_volume(index, series["series_uid"])
    from_paths = tt.read_volume([out / f for f in series["files"]])
    np.testing.assert_array_equal(from_paths.array, from_index.array)
    np.testing.assert_array_equal(from_paths.affine, from_index.affine)
    assert from_index.sop_instance_uids == tuple(series["sop_instance_uids"])


def test_unknown_series_uid_is_a_clear_error(collection):
    index, _, _ = collection
    with pytest.raises(tt.SeriesNotFoundError, match=r"series 1\.2\.3 is not in the index"):
        tt.read_volume(index, "1.2.3")


def test_missing_pet_tag_names_it(collection, tmp_path):
    import pydicom

    _, ground_truth, out = collection
    _, pet = next((p, s) for p, s in _image_series(ground_truth) if s["modality"] == "PT")
    paths = []
    for n, name in enumerate(pet["files"]):
        ds = pydicom.dcmread(out / name)
        del ds.PatientWeight
        paths.append(tmp_path / f"{n}.dcm")
        ds.save_as(paths[-1])
    with pytest.raises(tt.SuvError, match="PatientWeight is missing"):
        tt.read_volume(paths)
    bqml = tt.read_volume(paths, pet_units="BQML")
    assert bqml.units == "BQML"
