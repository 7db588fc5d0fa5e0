"""Analytic phantom: image grids, the body, lesion ellipsoids and their exact voxel values.

Conventions (the same everywhere in the synthetic package and in ``ground_truth.json``):

* Coordinates are DICOM patient coordinates (LPS), in mm.
* An image array has axes ``(k, j, i)`` = (slice, row, column).  Slices are sorted by increasing
  position along the normal ``n = row_cosines x col_cosines``.  Row index ``j`` moves along the
  column cosines (``ImageOrientationPatient[3:6]``) by ``PixelSpacing[0]``; column index ``i``
  moves along the row cosines (``ImageOrientationPatient[0:3]``) by ``PixelSpacing[1]``.
* ``LPS = affine @ [k, j, i, 1]``; the affine's first three columns are ``slice_step``,
  ``col_cosines * PixelSpacing[0]`` and ``row_cosines * PixelSpacing[1]``.
* A voxel's value is the phantom's value at the voxel centre (no partial volume): outside the body
  ``outside_value``, inside the body ``body_value``, inside lesion ``m`` its own value.  A point
  ``p`` is inside an ellipsoid iff ``sum(((p - c) / r) ** 2) <= 1``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Vec3 = tuple[float, float, float]

#: Decimal places of ImageOrientationPatient values written by the generator.
COSINE_DECIMALS = 10
#: Decimal places of positions, steps and spacings (mm) written by the generator.
POSITION_DECIMALS = 6
#: Smallest allowed ``|q - 1|`` at any voxel centre (q: normalised quadratic form of the body or
#: a lesion); far above the ~1e-14 by which a reader's float geometry can differ from ours.
BOUNDARY_MARGIN = 1e-10


def _vec(v: Sequence[float]) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(3)


@dataclass(frozen=True)
class Grid:
    """Geometry of one image series (a stack of parallel, equally spaced slices).

    Attributes
    ----------
    shape
        ``(slices, rows, cols)``.
    row_cosines
        ``ImageOrientationPatient[0:3]``: LPS direction of increasing column index ``i``.
    col_cosines
        ``ImageOrientationPatient[3:6]``: LPS direction of increasing row index ``j``.
    pixel_spacing
        ``PixelSpacing`` in mm: ``(between rows (along j), between columns (along i))``.
    slice_step
        LPS vector in mm from slice ``k`` to slice ``k + 1``.  Normally ``normal * spacing``;
        with gantry tilt it is not parallel to the normal.
    origin
        LPS position in mm of the centre of voxel ``(0, 0, 0)`` (``ImagePositionPatient`` of
        slice 0).
    """

    shape: tuple[int, int, int]
    row_cosines: Vec3
    col_cosines: Vec3
    pixel_spacing: tuple[float, float]
    slice_step: Vec3
    origin: Vec3

    def __post_init__(self) -> None:
        r, c = _vec(self.row_cosines), _vec(self.col_cosines)
        if abs(np.linalg.norm(r) - 1) > 1e-6 or abs(np.linalg.norm(c) - 1) > 1e-6:
            raise ValueError(f"orientation cosines must be unit vectors, got {r} and {c}")
        if abs(float(r @ c)) > 1e-6:
            raise ValueError(f"row and column cosines must be orthogonal, got {r} and {c}")
        if float(_vec(self.slice_step) @ np.cross(r, c)) <= 0:
            raise ValueError("slice_step must point along +normal (row_cosines x col_cosines)")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be (slices, rows, cols) >= 1, got {self.shape}")

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal ``row_cosines x col_cosines`` (LPS)."""
        return np.cross(_vec(self.row_cosines), _vec(self.col_cosines))

    @property
    def slice_spacing(self) -> float:
        """Length in mm of ``slice_step``."""
        return float(np.linalg.norm(_vec(self.slice_step)))

    @property
    def slice_distance(self) -> float:
        """Distance in mm between consecutive slice planes (``slice_step . normal``)."""
        return float(_vec(self.slice_step) @ self.normal)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing ``(z, y, x)`` in mm: ``|slice_step|``, ``PixelSpacing[0]``, ``[1]``."""
        return (self.slice_spacing, float(self.pixel_spacing[0]), float(self.pixel_spacing[1]))

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose COLUMNS are unit vectors of the array axes (slice, row, col)."""
        step = _vec(self.slice_step)
        return np.column_stack(
            [step / np.linalg.norm(step), _vec(self.col_cosines), _vec(self.row_cosines)]
        )

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix with ``LPS = affine @ [k, j, i, 1]`` (mm)."""
        return self._affine.copy()

    @functools.cached_property
    def _affine(self) -> np.ndarray:
        a = np.eye(4)
        a[:3, 0] = _vec(self.slice_step)
        a[:3, 1] = _vec(self.col_cosines) * float(self.pixel_spacing[0])
        a[:3, 2] = _vec(self.row_cosines) * float(self.pixel_spacing[1])
        a[:3, 3] = _vec(self.origin)
        a.flags.writeable = False
        return a

    @functools.cached_property
    def _inverse(self) -> np.ndarray:
        inv = np.linalg.inv(self._affine)
        inv.flags.writeable = False
        return inv

    @property
    def gantry_tilt_deg(self) -> float:
        """Angle in degrees between ``slice_step`` and the normal (0 for an orthogonal stack)."""
        cos = self.slice_distance / self.slice_spacing
        return math.degrees(math.acos(min(1.0, cos)))

    @property
    def oblique(self) -> bool:
        """True if the slice normal is not along a patient axis."""
        return bool(np.count_nonzero(np.abs(self.normal) > 1e-9) > 1)

    def position(self, k: int) -> np.ndarray:
        """``ImagePositionPatient`` (LPS mm) of slice ``k``."""
        return _vec(self.origin) + k * _vec(self.slice_step)

    def slice_centers(
        self, k: int, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
    ) -> np.ndarray:
        """LPS mm of the voxel centres of slice ``k``, shape ``(rows, cols, 3)``.

        ``rows``/``cols`` optionally restrict to index ranges ``[start, stop)``.
        """
        a = self._affine
        _, nj, ni = self.shape
        j0, j1 = rows if rows is not None else (0, nj)
        i0, i1 = cols if cols is not None else (0, ni)
        j = np.arange(j0, j1, dtype=np.float64)[:, None, None]
        i = np.arange(i0, i1, dtype=np.float64)[None, :, None]
        return a[:3, 3] + k * a[:3, 0] + j * a[:3, 1] + i * a[:3, 2]

    def to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous ``(k, j, i)`` indices of LPS points (mm), shape ``(..., 3)``."""
        pts = np.asarray(points, dtype=np.float64)
        inv = self._inverse
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def corners(self) -> np.ndarray:
        """LPS mm of the 8 corner voxel centres, shape ``(8, 3)``."""
        nk, nj, ni = self.shape
        idx = np.array(
            [[k, j, i, 1.0] for k in (0, nk - 1) for j in (0, nj - 1) for i in (0, ni - 1)]
        )
        return (idx @ self.affine.T)[:, :3]

    def to_json(self) -> dict:
        """The geometry as plain JSON types (see module docstring for conventions)."""
        return {
            "shape": [int(s) for s in self.shape],
            "spacing": [float(s) for s in self.spacing],
            "origin": [float(v) for v in self.origin],
            "direction": self.direction.tolist(),
            "affine": self.affine.tolist(),
            "row_cosines": [float(v) for v in self.row_cosines],
            "col_cosines": [float(v) for v in self.col_cosines],
            "pixel_spacing": [float(v) for v in self.pixel_spacing],
            "slice_step": [float(v) for v in self.slice_step],
            "normal": self.normal.tolist(),
            "slice_distance": self.slice_distance,
            "gantry_tilt_deg": self.gantry_tilt_deg,
            "oblique": self.oblique,
        }


def make_grid(
    shape: tuple[int, int, int],
    *,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    pixel_spacing: tuple[float, float] = (2.0, 2.0),
    slice_spacing: float = 2.5,
    row_cosines: Sequence[float] = (1.0, 0.0, 0.0),
    col_cosines: Sequence[float] = (0.0, 1.0, 0.0),
    slice_step: Sequence[float] | None = None,
    decimals: int = 3,
) -> Grid:
    """Build a :class:`Grid` whose centre voxel position is near ``center`` (LPS mm).

    Parameters
    ----------
    shape
        ``(slices, rows, cols)``.
    center
        LPS mm of the grid centre; the origin is rounded to ``decimals`` places so that DICOM
        decimal strings hold it exactly.
    pixel_spacing
        ``(row spacing, column spacing)`` mm.
    slice_spacing
        Distance in mm between slices when ``slice_step`` is not given (step = normal * spacing).
    row_cosines, col_cosines
        ``ImageOrientationPatient`` halves.
    slice_step
        Explicit LPS step vector between slices (e.g. table feed with gantry tilt).
    decimals
        Rounding of the origin coordinates (mm).

    Cosines are rounded to ``COSINE_DECIMALS`` and the step, spacing and origin to at most
    ``POSITION_DECIMALS`` places, i.e. to what the DICOM files hold, so that the grid is exactly
    the one a reader reconstructs (up to float parsing).
    """
    r = np.round(_vec(row_cosines), COSINE_DECIMALS)
    c = np.round(_vec(col_cosines), COSINE_DECIMALS)
    step = np.cross(r, c) * slice_spacing if slice_step is None else _vec(slice_step)
    step = np.round(step, POSITION_DECIMALS)
    nk, nj, ni = shape
    origin = (
        _vec(center)
        - step * (nk - 1) / 2
        - c * pixel_spacing[0] * (nj - 1) / 2
        - r * pixel_spacing[1] * (ni - 1) / 2
    )
    origin = np.round(origin, min(decimals, POSITION_DECIMALS))
    return Grid(
        shape=(int(nk), int(nj), int(ni)),
        row_cosines=_tuple3(r),
        col_cosines=_tuple3(c),
        pixel_spacing=(
            round(float(pixel_spacing[0]), POSITION_DECIMALS),
            round(float(pixel_spacing[1]), POSITION_DECIMALS),
        ),
        slice_step=_tuple3(step),
        origin=_tuple3(origin),
    )


def _tuple3(v: np.ndarray) -> Vec3:
    return (float(v[0]) + 0.0, float(v[1]) + 0.0, float(v[2]) + 0.0)


def rotation(cos_x: float, sin_x: float, cos_z: float, sin_z: float) -> np.ndarray:
    """Rotation ``Rz @ Rx`` from given cosines/sines (use Pythagorean pairs such as 0.96/0.28
    so that the resulting direction cosines are short exact decimals)."""
    rx = np.array([[1, 0, 0], [0, cos_x, -sin_x], [0, sin_x, cos_x]], dtype=np.float64)
    rz = np.array([[cos_z, -sin_z, 0], [sin_z, cos_z, 0], [0, 0, 1]], dtype=np.float64)
    return rz @ rx


@dataclass(frozen=True)
class PlaneSection:
    """Ellipse where an ellipsoid cuts a plane.

    Attributes
    ----------
    center
        LPS mm of the ellipse centre (the point of the plane deepest inside the ellipsoid).
    axis1, axis2
        LPS vectors (mm) of the two semi-axes (their lengths are the semi-axis lengths).
    """

    center: np.ndarray
    axis1: np.ndarray
    axis2: np.ndarray

    @property
    def area_mm2(self) -> float:
        """Area of the ellipse in mm^2."""
        return math.pi * float(np.linalg.norm(self.axis1) * np.linalg.norm(self.axis2))

    def polygon(self, n_vertices: int = 64, *, equal_area: bool = True) -> np.ndarray:
        """Vertices (LPS mm, shape ``(n, 3)``) of a regular polygon on the ellipse.

        With ``equal_area`` the vertices are scaled by ``sqrt(2 pi / (n sin(2 pi / n)))`` so the
        polygon's area equals the ellipse's area.
        """
        theta = 2 * np.pi * np.arange(n_vertices) / n_vertices
        scale = math.sqrt(2 * math.pi / (n_vertices * math.sin(2 * math.pi / n_vertices)))
        if not equal_area:
            scale = 1.0
        return self.center + scale * (
            np.cos(theta)[:, None] * self.axis1 + np.sin(theta)[:, None] * self.axis2
        )

    def point(self, fraction: float, angle: float) -> np.ndarray:
        """LPS point ``center + fraction * (cos(angle) axis1 + sin(angle) axis2)``."""
        return self.center + fraction * (
            math.cos(angle) * self.axis1 + math.sin(angle) * self.axis2
        )


@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid in LPS: ``center`` (mm) and ``semi_axes`` (mm along x, y, z)."""

    center: Vec3
    semi_axes: Vec3

    def q(self, points: np.ndarray) -> np.ndarray:
        """``sum(((p - c) / r) ** 2)`` for LPS points of shape ``(..., 3)``; inside iff ``<= 1``."""
        d = (np.asarray(points, dtype=np.float64) - _vec(self.center)) / _vec(self.semi_axes)
        return np.einsum("...k,...k->...", d, d)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean array: which points (``(..., 3)`` LPS mm) are inside (``q <= 1``)."""
        return self.q(points) <= 1.0

    @property
    def volume_ml(self) -> float:
        """Analytic volume ``4/3 pi a b c`` in mL."""
        a, b, c = self.semi_axes
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS (min, max) corners of the bounding box (mm)."""
        c, r = _vec(self.center), _vec(self.semi_axes)
        return c - r, c + r

    def half_chord(self, direction: Sequence[float]) -> float:
        """Half-length (mm) of the chord through the centre along a unit ``direction``."""
        u = _vec(direction) / np.linalg.norm(_vec(direction))
        return float(1.0 / math.sqrt(float(np.sum((u / _vec(self.semi_axes)) ** 2))))

    def section(
        self, point: Sequence[float], u: Sequence[float], v: Sequence[float]
    ) -> PlaneSection | None:
        """Ellipse of intersection with the plane ``point + s u + t v`` (u, v orthonormal).

        Returns None if the plane misses the ellipsoid (or only touches it).
        """
        uu, vv = _vec(u), _vec(v)
        qd = 1.0 / _vec(self.semi_axes) ** 2
        d = _vec(point) - _vec(self.center)
        m = np.array([[uu @ (qd * uu), uu @ (qd * vv)], [vv @ (qd * uu), vv @ (qd * vv)]])
        b = np.array([uu @ (qd * d), vv @ (qd * d)])
        st0 = -np.linalg.solve(m, b)
        h = 1.0 - (float(d @ (qd * d)) - float(b @ np.linalg.solve(m, b)))
        if h <= 0:
            return None
        lam, vecs = np.linalg.eigh(m)
        center = _vec(point) + st0[0] * uu + st0[1] * vv
        axes = [math.sqrt(h / lam[n]) * (vecs[0, n] * uu + vecs[1, n] * vv) for n in range(2)]
        return PlaneSection(center=center, axis1=axes[0], axis2=axes[1])


@dataclass(frozen=True)
class Body:
    """The body: an elliptic cylinder along z (LPS), ``center_xy`` and ``semi_axes_xy`` in mm."""

    center_xy: tuple[float, float]
    semi_axes_xy: tuple[float, float]

    def q(self, points: np.ndarray) -> np.ndarray:
        """``((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2``; inside iff ``<= 1``."""
        pts = np.asarray(points, dtype=np.float64)
        dx = (pts[..., 0] - self.center_xy[0]) / self.semi_axes_xy[0]
        dy = (pts[..., 1] - self.center_xy[1]) / self.semi_axes_xy[1]
        return dx * dx + dy * dy


@dataclass(frozen=True)
class Phantom:
    """Piecewise-constant phantom: ``outside_value``, ``body_value`` and one value per lesion.

    Later lesions win where lesions overlap (the generator never makes them overlap).
    """

    body: Body
    outside_value: float
    body_value: float
    lesions: tuple[tuple[Ellipsoid, float], ...] = field(default_factory=tuple)

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """Phantom values (float64) at LPS points of shape ``(..., 3)``."""
        out = np.where(self.body.q(points) <= 1.0, self.body_value, self.outside_value)
        for ellipsoid, value in self.lesions:
            out = np.where(ellipsoid.contains(points), value, out)
        return out.astype(np.float64)

    def slice_values(self, grid: Grid, k: int) -> np.ndarray:
        """Values at the voxel centres of slice ``k`` of ``grid``, shape ``(rows, cols)``.

        Same result as ``evaluate(grid.slice_centers(k))``, computed faster: the body layer is
        cached while the slice's in-plane offset repeats, lesions are only evaluated inside
        the index-space bounding box of their bounding box.
        """
        xy = tuple(float(v) for v in grid.position(k)[:2])
        out = _body_layer(
            self.body,
            grid,
            k if grid.slice_step[:2] != (0.0, 0.0) else 0,
            xy,
            self.body_value,
            self.outside_value,
        ).copy()
        for ellipsoid, value in self.lesions:
            box = _index_box(grid, ellipsoid)
            if box is None or not box[0][0] <= k <= box[1][0]:
                continue
            (_, j0, i0), (_, j1, i1) = box
            pts = grid.slice_centers(k, rows=(j0, j1 + 1), cols=(i0, i1 + 1))
            sub = out[j0 : j1 + 1, i0 : i1 + 1]
            sub[ellipsoid.contains(pts)] = value
        return out

    def volume(self, grid: Grid) -> np.ndarray:
        """Values on the whole grid, shape ``(slices, rows, cols)`` float64."""
        return np.stack([self.slice_values(grid, k) for k in range(grid.shape[0])])


@functools.lru_cache(maxsize=8)
def _body_layer(
    body: Body, grid: Grid, k: int, xy: tuple[float, float], body_value: float, outside_value: float
) -> np.ndarray:
    """Body/outside values of slice ``k`` (``xy`` only keys the cache); read-only array."""
    del xy
    out = np.where(body.q(grid.slice_centers(k)) <= 1.0, body_value, outside_value)
    out = out.astype(np.float64)
    out.flags.writeable = False
    return out


def _index_box(grid: Grid, ellipsoid: Ellipsoid) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer (k, j, i) bounds (inclusive) covering the ellipsoid, clipped to the grid."""
    lo, hi = ellipsoid.bbox()
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    idx = grid.to_index(corners)
    first = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 1, 0)
    last = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, np.array(grid.shape) - 1)
    if np.any(first > last):
        return None
    return first, last


def lesion_mask(grid: Grid, ellipsoid: Ellipsoid) -> np.ndarray:
    """Boolean ``(slices, rows, cols)`` mask of voxels whose centres are inside ``ellipsoid``."""
    mask = np.zeros(grid.shape, dtype=bool)
    box = _index_box(grid, ellipsoid)
    if box is None:
        return mask
    (k0, j0, i0), (k1, j1, i1) = box
    for k in range(k0, k1 + 1):
        pts = grid.slice_centers(k, rows=(j0, j1 + 1), cols=(i0, i1 + 1))
        mask[k, j0 : j1 + 1, i0 : i1 + 1] = ellipsoid.contains(pts)
    return mask


def boundary_margin(grid: Grid, body: Body | None, ellipsoids: Sequence[Ellipsoid]) -> float:
    """Smallest ``|q - 1|`` over all voxel centres of ``grid`` for the body and the ellipsoids.

    A margin above :data:`BOUNDARY_MARGIN` (required by the generator) means no voxel centre
    lies so close to a boundary that floating-point rounding in a reader could flip it.
    """
    best = math.inf
    if body is not None:
        for k in range(grid.shape[0]):
            best = min(best, float(np.min(np.abs(body.q(grid.slice_centers(k)) - 1.0))))
    for e in ellipsoids:
        box = _index_box(grid, e)
        if box is None:
            continue
        (k0, j0, i0), (k1, j1, i1) = box
        for k in range(k0, k1 + 1):
            pts = grid.slice_centers(k, rows=(j0, j1 + 1), cols=(i0, i1 + 1))
            best = min(best, float(np.min(np.abs(e.q(pts) - 1.0))))
    return best
