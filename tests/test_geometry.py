"""Stack geometry against independently constructed ground truth and highdicom's own checks."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcia_trials.errors import SeriesGeometryError
from tcia_trials.source.geometry import index_to_lps, lps_to_index, stack_geometry


def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    a, b, c = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _planes(rotation, origin, spacing, n):
    """Ground truth: a regular stack built from a rotation (columns: row cos, col cos, normal)."""
    row, col, normal = rotation[:, 0], rotation[:, 1], rotation[:, 2]
    positions = np.array([origin + k * spacing[0] * normal for k in range(n)])
    return positions, np.concatenate([row, col])


angles = st.tuples(*(st.floats(-180, 180) for _ in range(3)))
spacings = st.tuples(st.floats(0.3, 8), st.floats(0.2, 4), st.floats(0.2, 4))
origins = st.tuples(*(st.floats(-500, 500) for _ in range(3)))


@settings(max_examples=60, deadline=None)
@given(
    angles=angles,
    spacing=spacings,
    origin=origins,
    n=st.integers(2, 40),
    seed=st.integers(0, 2**16),
)
def test_shuffled_oblique_stack_recovers_ground_truth(angles, spacing, origin, n, seed):
    rotation = _rotation(angles)
    positions, iop = _planes(rotation, np.array(origin), spacing, n)
    shuffle = np.random.default_rng(seed).permutation(n)
    geo = stack_geometry(positions[shuffle], iop, spacing[1:])
    np.testing.assert_array_equal(shuffle[geo.order], np.arange(n))
    np.testing.assert_allclose(geo.origin, origin, atol=1e-6)
    np.testing.assert_allclose(geo.spacing, spacing, rtol=1e-9)
    expected_direction = np.column_stack([rotation[:, 2], rotation[:, 1], rotation[:, 0]])
    np.testing.assert_allclose(geo.direction, expected_direction, atol=1e-9)
    assert geo.tilt_deg == 0.0
    # every voxel centre of the ground truth maps back to its index
    k, j, i = n - 1, 7, 3
    point = (
        origin
        + k * spacing[0] * rotation[:, 2]
        + j * spacing[1] * rotation[:, 1]
        + i * spacing[2] * rotation[:, 0]
    )
    np.testing.assert_allclose(index_to_lps(geo.affine, [k, j, i]), point, atol=1e-6)
    np.testing.assert_allclose(lps_to_index(geo.affine, point), [k, j, i], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(angles=angles, spacing=spacings, origin=origins, n=st.integers(4, 30))
def test_regularity_agrees_with_highdicom(angles, spacing, origin, n):
    rotation = _rotation(angles)
    positions, iop = _planes(rotation, np.array(origin), spacing, n)
    hd_spacing, _ = hd.spatial.get_volume_positions(positions, iop)
    assert hd_spacing == pytest.approx(stack_geometry(positions, iop, spacing[1:]).spacing[0])
    gapped = np.delete(positions, n // 2, axis=0)
    assert hd.spatial.get_volume_positions(gapped, iop)[0] is None
    with pytest.raises(SeriesGeometryError, match="missing slices"):
        stack_geometry(gapped, iop, spacing[1:])


def test_missing_slice_message_names_the_gap():
    positions = np.array([[0, 0, z] for z in (0.0, 2.5, 5.0, 10.0, 12.5)])
    with pytest.raises(
        SeriesGeometryError,
        match=r"5\.000 mm between slices 2 and 3 \(positions 5\.000 and 10\.000",
    ):
        stack_geometry(positions, [1, 0, 0, 0, 1, 0], [1, 1], source="CT 42")


def test_uneven_spacing_is_refused():
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 4.0, 6.5, 8.5)])
    with pytest.raises(SeriesGeometryError, match="uneven slice spacing"):
        stack_geometry(positions, [1, 0, 0, 0, 1, 0], [1, 1])


def test_duplicate_positions_are_refused():
    positions = np.array([[0, 0, z] for z in (0.0, 2.0, 2.0, 4.0)])
    with pytest.raises(SeriesGeometryError, match="more than once"):
        stack_geometry(positions, [1, 0, 0, 0, 1, 0], [1, 1])


@pytest.mark.parametrize("tilt_deg", [5.0, -12.0, 30.0])
def test_gantry_tilt_keeps_exact_voxel_centres(tilt_deg):
    # axial images, table steps 3 mm along z, gantry tilted about the x axis: each slice is
    # shifted along y by 3 * tan(tilt); the sheared affine must reproduce every position.
    step = np.array([0.0, 3.0 * np.tan(np.radians(tilt_deg)), 3.0])
    positions = np.array([[-100.0, -120.0, 50.0] + k * step for k in range(12)])
    geo = stack_geometry(positions[::-1], [1, 0, 0, 0, 1, 0], [0.7, 0.8])
    assert geo.tilt_deg == pytest.approx(abs(tilt_deg), abs=1e-9)
    for k in range(12):
        np.testing.assert_allclose(index_to_lps(geo.affine, [k, 0, 0]), positions[k], atol=1e-9)
    np.testing.assert_allclose(
        index_to_lps(geo.affine, [0, 2, 5]), positions[0] + [5 * 0.8, 2 * 0.7, 0], atol=1e-9
    )


def test_single_slice_uses_hint():
    geo = stack_geometry(
        np.array([[1.0, 2.0, 3.0]]), [1, 0, 0, 0, 1, 0], [0.5, 0.5], slice_spacing_hint=4.0
    )
    assert geo.spacing.tolist() == [4.0, 0.5, 0.5]


@pytest.mark.parametrize(
    ("iop", "match"),
    [
        ([1, 0, 0, 1, 0, 0], "not orthogonal"),
        ([0, 0, 0, 0, 1, 0], "null vector"),
        ([1, 0, 0, 0, 1], "6 finite"),
    ],
)
def test_bad_orientation_is_refused(iop, match):
    with pytest.raises(SeriesGeometryError, match=match):
        stack_geometry(np.array([[0.0, 0, 0], [0, 0, 1]]), iop, [1, 1])
