"""Patient-space geometry of image stacks: the only module that does matrix arithmetic.

Conventions (used everywhere in tcia-trials):

- Coordinates are DICOM patient coordinates (LPS), in millimetres.
- A volume array is indexed ``(k, j, i)`` = (slice, row, column).  Column index ``i`` moves along
  the *row* direction cosines ``ImageOrientationPatient[0:3]`` by ``PixelSpacing[1]``; row index
  ``j`` moves along the *column* direction cosines ``ImageOrientationPatient[3:6]`` by
  ``PixelSpacing[0]``; slice index ``k`` moves along the stacking vector, and slices are sorted
  by increasing position along the normal ``n = row_cosines x column_cosines``.
- ``spacing`` is ``(z, y, x)`` = (slice step, row spacing, column spacing) in mm.
- ``direction`` is a 3x3 matrix whose *columns* are the LPS unit vectors of the array axes
  (slice, row, column), and ``affine`` maps ``[k, j, i, 1]`` to ``[x, y, z, 1]`` in LPS mm.
  This is the convention of :class:`highdicom.Volume`.
- A gantry-tilted CT stack steps along a vector that is not the normal.  Its affine keeps the
  true stacking vector (a sheared, non-orthogonal matrix), so every voxel centre stays exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tcia_trials.errors import SeriesGeometryError

#: Direction cosines of two frames are "the same orientation" when they differ by less than this.
ORIENTATION_ATOL = 1e-4
#: Slice steps are regular when each differs from the mean step by at most this fraction of it...
SPACING_RTOL = 1e-2
#: ...or by at most this many millimetres (positions are often written with few decimals).
SPACING_ATOL_MM = 5e-3
#: Positions closer than this (mm) along the normal are the same slice position.
DUPLICATE_POSITION_ATOL_MM = 1e-3
#: Slice positions off the fitted line by more than this (mm) do not form one stack.
COLLINEARITY_ATOL_MM = 1e-2
#: A stack whose step leaves the normal by more than this angle (degrees) is gantry-tilted.
TILT_ATOL_DEG = 1e-3


@dataclass(frozen=True)
class StackGeometry:
    """Geometry of a sorted stack of parallel image planes.

    Attributes
    ----------
    order: numpy.ndarray
        Indices into the input positions, giving the slice order ``k = 0 .. N-1``.
    origin: numpy.ndarray
        LPS position (mm) of the centre of voxel ``(0, 0, 0)``, shape ``(3,)``.
    spacing: numpy.ndarray
        ``(z, y, x)`` voxel spacing in mm, shape ``(3,)``.
    direction: numpy.ndarray
        3x3 matrix, columns are LPS unit vectors of the axes (slice, row, column).
    tilt_deg: float
        Angle between the stacking vector and the slice normal (0 for orthogonal stacks).
    """

    order: np.ndarray
    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray
    tilt_deg: float

    @property
    def affine(self) -> np.ndarray:
        return affine_matrix(self.origin, self.spacing, self.direction)


def orientation_axes(
    image_orientation: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (row cosines, column cosines, normal) as unit vectors from ImageOrientationPatient."""
    iop = np.asarray(image_orientation, dtype=np.float64)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise SeriesGeometryError(
            f"ImageOrientationPatient must hold 6 finite numbers, got {list(image_orientation)}"
        )
    row, col = iop[:3], iop[3:]
    row_norm, col_norm = np.linalg.norm(row), np.linalg.norm(col)
    if row_norm < 0.5 or col_norm < 0.5:
        raise SeriesGeometryError(f"ImageOrientationPatient has a null vector: {iop.tolist()}")
    row, col = row / row_norm, col / col_norm
    if abs(float(row @ col)) > 1e-3:
        raise SeriesGeometryError(
            f"ImageOrientationPatient row and column cosines are not orthogonal: {iop.tolist()}"
        )
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def same_orientation(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when two ImageOrientationPatient values agree within :data:`ORIENTATION_ATOL`."""
    return bool(
        np.allclose(np.asarray(a, float), np.asarray(b, float), atol=ORIENTATION_ATOL, rtol=0)
    )


def affine_matrix(origin: np.ndarray, spacing: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """4x4 matrix mapping ``[k, j, i, 1]`` voxel indices to LPS mm."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(direction, float) * np.asarray(spacing, float)[np.newaxis, :]
    affine[:3, 3] = origin
    return affine


def stack_geometry(
    positions: np.ndarray,
    image_orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    *,
    slice_spacing_hint: float | None = None,
    source: str = "series",
) -> StackGeometry:
    """Sort parallel image planes along their normal and derive the volume geometry.

    Parameters
    ----------
    positions:
        ImagePositionPatient of every plane, shape ``(N, 3)``, LPS mm, in any order.
    image_orientation:
        The planes' shared ImageOrientationPatient (6 direction cosines).
    pixel_spacing:
        PixelSpacing ``(row spacing, column spacing)`` in mm.
    slice_spacing_hint:
        Slice spacing (mm) used for a single-plane stack (e.g. SpacingBetweenSlices or
        SliceThickness); 1.0 when absent.
    source:
        Name of the series or file, used in error messages.

    Raises
    ------
    SeriesGeometryError
        Duplicate positions, missing slices or uneven spacing (the message lists the gaps),
        or planes that do not lie on one line.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    row, col, normal = orientation_axes(image_orientation)
    dy, dx = (float(v) for v in pixel_spacing)
    if not (dy > 0 and dx > 0):
        raise SeriesGeometryError(
            f"{source}: PixelSpacing must be positive, got {list(pixel_spacing)}"
        )
    heights = positions @ normal
    order = np.argsort(heights, kind="stable")
    heights, positions = heights[order], positions[order]
    n = len(heights)

    if n == 1:
        step_len = (
            float(slice_spacing_hint) if slice_spacing_hint and slice_spacing_hint > 0 else 1.0
        )
        direction = np.column_stack([normal, col, row])
        return StackGeometry(order, positions[0], np.array([step_len, dy, dx]), direction, 0.0)

    steps = np.diff(heights)
    duplicates = np.flatnonzero(steps < DUPLICATE_POSITION_ATOL_MM)
    if duplicates.size:
        where = ", ".join(f"{heights[d]:.3f}" for d in duplicates[:5])
        raise SeriesGeometryError(
            f"{source}: {duplicates.size} slice position(s) occur more than once along the normal "
            f"(at {where} mm); the series holds several stacks or duplicate images"
        )
    mean_step = (heights[-1] - heights[0]) / (n - 1)
    deviation = np.abs(steps - mean_step)
    tolerance = max(SPACING_RTOL * mean_step, SPACING_ATOL_MM)
    if np.any(deviation > tolerance):
        raise SeriesGeometryError(_describe_irregular_spacing(source, heights, steps, mean_step))

    step_vector = (positions[-1] - positions[0]) / (n - 1)
    fitted = positions[0] + np.arange(n)[:, np.newaxis] * step_vector
    off_line = np.linalg.norm(positions - fitted, axis=1)
    if np.any(off_line > max(COLLINEARITY_ATOL_MM, SPACING_RTOL * mean_step)):
        worst = int(np.argmax(off_line))
        raise SeriesGeometryError(
            f"{source}: slice positions do not lie on one line (slice {worst} is "
            f"{off_line[worst]:.3f} mm off); refusing to build a volume"
        )
    step_len = float(np.linalg.norm(step_vector))
    tilt = float(np.degrees(np.arccos(np.clip(step_vector @ normal / step_len, -1.0, 1.0))))
    if tilt <= TILT_ATOL_DEG:
        # Orthogonal stack: keep an exactly orthonormal direction matrix.
        step_dir, step_len, tilt = normal, float(mean_step), 0.0
    else:
        step_dir = step_vector / step_len
    direction = np.column_stack([step_dir, col, row])
    return StackGeometry(order, positions[0], np.array([step_len, dy, dx]), direction, tilt)


def _describe_irregular_spacing(
    source: str, heights: np.ndarray, steps: np.ndarray, mean_step: float
) -> str:
    typical = float(np.sort(steps)[(len(steps) - 1) // 2])  # lower median: robust to one gap
    odd = np.flatnonzero(np.abs(steps - typical) > max(SPACING_RTOL * typical, SPACING_ATOL_MM))
    shown = "; ".join(
        f"{steps[g]:.3f} mm between slices {g} and {g + 1} "
        f"(positions {heights[g]:.3f} and {heights[g + 1]:.3f} mm along the normal)"
        for g in odd[:5]
    )
    more = f" and {odd.size - 5} more" if odd.size > 5 else ""
    missing = [g for g in odd if steps[g] > 1.5 * typical]
    kind = "missing slices" if missing else "uneven slice spacing"
    return (
        f"{source}: {kind}: the typical step is {typical:.3f} mm but {shown}{more}. "
        "The series does not form one regular volume; it is not stitched"
    )


def lps_to_index(affine: np.ndarray, points_lps: np.ndarray) -> np.ndarray:
    """Map LPS points (mm), shape ``(..., 3)``, to fractional voxel indices ``(k, j, i)``."""
    points = np.asarray(points_lps, dtype=np.float64)
    inverse = np.linalg.inv(affine)
    return points @ inverse[:3, :3].T + inverse[:3, 3]


def index_to_lps(affine: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Map voxel indices ``(k, j, i)``, shape ``(..., 3)``, to LPS points in mm."""
    idx = np.asarray(indices, dtype=np.float64)
    return idx @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
