"""Lesions: what every annotation source becomes, and the measurements derived from masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tcia_trials.source import geometry


@dataclass(frozen=True, eq=False)
class Lesion:
    """One annotated lesion of one image series (or of one annotation file, standalone).

    Attributes
    ----------
    lesion_id:
        Stable identifier within its image series: the label when no other lesion of the
        series shares it, else the label and where the lesion came from, e.g.
        ``"Spine Met Seed Point [1.2.3…4567/ROI 2]"`` (see :attr:`origins`).
    label, location, time_point:
        E.g. "LIVER - 1", "LIVER", "Pre-dose".
    sources:
        Kinds of annotation that describe it, sorted: "RTSTRUCT", "SEG", "SR", "TABLE".
    source_series_uids:
        SeriesInstanceUIDs of those annotation series.
    origins:
        Every part of the input that became this lesion, as ``"<series UID>/ROI <n>"``,
        ``"<series UID>/segment <n>"``, ``"<series UID>/SR group <n>"`` or ``"table row <n>"``.
    readers:
        Who drew the annotations (ContentCreatorName / OperatorsName), when they say.
    mask:
        Boolean array on the image grid, shape (slices, rows, cols); ``None`` without a mask
        (seed-only lesions, standalone RTSTRUCT/SR reading).
    seed_lps, seed_voxel:
        Seed point in LPS mm and as fractional voxel index ``(k, j, i)`` on the image grid.
    voxel_count, volume_ml:
        Mask size; the volume is ``voxel_count`` times the voxel volume (mL = cm^3).
    longest_diameter_mm, longest_diameter_slice:
        Longest in-plane distance between mask voxel centres on the slice where it is largest
        (RECIST-style long axis), and that slice index ``k``.
    bbox:
        ``(k0, j0, i0, k1, j1, i1)`` voxel bounds of the mask, end-exclusive.
    suv_max, suv_mean, mtv_ml, tlg:
        PET only: SUVbw max and mean inside the mask, metabolic tumour volume (the mask volume
        on the PET grid, mL) and total lesion glycolysis (``suv_mean * mtv_ml``).
    tracking_id, tracking_uid:
        Longitudinal identity (SEG/SR TrackingID/TrackingUID) when the annotations carry one.
    measurements:
        Values reported by the annotation itself (SR), e.g. ``{"Volume (ml)": 10.6}``.
    annotation_info:
        What the annotation says about itself: SEG segment label, segmented property category
        and type, algorithm type (MANUAL / SEMIAUTOMATIC / AUTOMATIC) and name; RTSTRUCT ROI
        name and interpreted type.
    flags:
        Quality flags, e.g. "seed-outside-mask", "seed-outside-volume", "extra-triplets",
        "contour-between-slices: ...", "resampled-seg", "rtstruct-seg-dice=0.97".
    """

    lesion_id: str
    label: str
    location: str | None = None
    time_point: str | None = None
    sources: tuple[str, ...] = ()
    source_series_uids: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()
    mask: np.ndarray | None = None
    seed_lps: tuple[float, float, float] | None = None
    seed_voxel: tuple[float, float, float] | None = None
    voxel_count: int | None = None
    volume_ml: float | None = None
    longest_diameter_mm: float | None = None
    longest_diameter_slice: int | None = None
    bbox: tuple[int, int, int, int, int, int] | None = None
    suv_max: float | None = None
    suv_mean: float | None = None
    mtv_ml: float | None = None
    tlg: float | None = None
    tracking_id: str | None = None
    tracking_uid: str | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    annotation_info: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume of one voxel in mL (the determinant of the affine's 3x3 part, mm^3 / 1000)."""
    return abs(float(np.linalg.det(np.asarray(affine)[:3, :3]))) / 1000.0


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int, int, int] | None:
    """``(k0, j0, i0, k1, j1, i1)`` end-exclusive voxel bounds of a mask, None when empty.

    One pass over the volume finds the occupied slices; the other axes are searched inside them.
    """
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if slices.size == 0:
        return None
    k0, k1 = int(slices[0]), int(slices[-1]) + 1
    block = mask[k0:k1]
    rows = np.flatnonzero(block.any(axis=(0, 2)))
    cols = np.flatnonzero(block.any(axis=(0, 1)))
    return k0, int(rows[0]), int(cols[0]), k1, int(rows[-1]) + 1, int(cols[-1]) + 1


def crop(mask: np.ndarray, bbox: tuple[int, int, int, int, int, int]) -> np.ndarray:
    k0, j0, i0, k1, j1, i1 = bbox
    return mask[k0:k1, j0:j1, i0:i1]


def mask_measurements(mask: np.ndarray, affine: np.ndarray) -> dict[str, object]:
    """Voxel count, volume (mL), bounding box and longest axial diameter (mm) of a mask."""
    bbox = bounding_box(mask)
    result: dict[str, object] = {
        "voxel_count": 0,
        "volume_ml": 0.0,
        "bbox": bbox,
        "longest_diameter_mm": None,
        "longest_diameter_slice": None,
    }
    if bbox is None:
        return result
    block = crop(mask, bbox)
    count = int(np.count_nonzero(block))
    result["voxel_count"] = count
    result["volume_ml"] = count * voxel_volume_ml(affine)
    best, best_slice = 0.0, bbox[0]
    row_step = np.asarray(affine)[:3, 1]
    col_step = np.asarray(affine)[:3, 2]
    for offset, plane in enumerate(block):
        diameter = _longest_in_plane(plane, row_step, col_step)
        if diameter > best:
            best, best_slice = diameter, bbox[0] + offset
    result["longest_diameter_mm"] = best
    result["longest_diameter_slice"] = best_slice
    return result


def _longest_in_plane(plane: np.ndarray, row_step: np.ndarray, col_step: np.ndarray) -> float:
    """Largest distance (mm) between centres of mask pixels of one slice.

    The ends of the longest chord are vertices of the convex hull of the pixel centres; the
    hull is found in index space (a linear map to mm keeps it a hull), then searched pairwise.
    """
    if not plane.any():
        return 0.0
    padded = np.pad(plane, 1)
    interior = (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )
    rows, cols = np.nonzero(plane & ~interior)
    hull = _convex_hull(np.column_stack([rows, cols]))
    points = hull[:, :1] * row_step + hull[:, 1:] * col_step
    if len(points) == 1:
        return 0.0
    distances = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    return float(distances.max())


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of integer 2D points (Andrew's monotone chain)."""
    unique = np.unique(points, axis=0)
    if len(unique) <= 2:
        return unique

    def half(sequence: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for point in sequence:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (point[1] - ay) - (by - ay) * (point[0] - ax) > 0:
                    break
                chain.pop()
            chain.append(point)
        return chain

    lower, upper = half(unique), half(unique[::-1])
    return np.array(lower[:-1] + upper[:-1])


def pet_measurements(
    mask: np.ndarray, suv: np.ndarray, affine: np.ndarray, bbox: tuple[int, ...] | None = None
) -> dict[str, float | None]:
    """SUVmax, SUVmean, metabolic tumour volume (mL) and total lesion glycolysis of a mask."""
    bbox = bbox if bbox is not None else bounding_box(mask)
    values = crop(suv, bbox)[crop(mask, bbox)] if bbox is not None else suv[:0, 0, 0]
    if values.size == 0:
        return {"suv_max": None, "suv_mean": None, "mtv_ml": 0.0, "tlg": 0.0}
    mtv = values.size * voxel_volume_ml(affine)
    mean = float(values.mean(dtype=np.float64))
    return {"suv_max": float(values.max()), "suv_mean": mean, "mtv_ml": mtv, "tlg": mean * mtv}


def seed_on_grid(
    seed_lps: tuple[float, float, float],
    affine: np.ndarray,
    shape: tuple[int, int, int],
    mask: np.ndarray | None,
) -> tuple[tuple[float, float, float], list[str]]:
    """Fractional voxel index ``(k, j, i)`` of a seed point and its quality flags."""
    index = geometry.lps_to_index(affine, np.asarray(seed_lps, dtype=np.float64))
    flags: list[str] = []
    nearest = np.round(index).astype(int)
    inside_volume = bool(np.all(nearest >= 0) and np.all(nearest < np.asarray(shape)))
    if not inside_volume:
        flags.append(
            f"seed-outside-volume: voxel index {np.round(index, 2).tolist()} for shape {list(shape)}"
        )
    elif mask is not None and not mask[tuple(nearest)]:
        flags.append(f"seed-outside-mask: voxel {nearest.tolist()} is not in the lesion mask")
    return (float(index[0]), float(index[1]), float(index[2])), flags


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    boxes = [box for box in (bounding_box(a), bounding_box(b)) if box is not None]
    if not boxes:
        return 1.0
    union = tuple(min(box[n] for box in boxes) for n in range(3)) + tuple(
        max(box[n] for box in boxes) for n in range(3, 6)
    )
    a, b = crop(a, union), crop(b, union)
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 2.0 * int(np.count_nonzero(a & b)) / total
