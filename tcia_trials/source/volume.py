"""Image series -> :class:`Volume`: voxels in physical units and exact patient-space geometry."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset

from tcia_trials.errors import (
    DicomReadError,
    MultipleStacksError,
    SeriesGeometryError,
    SeriesNotFoundError,
)
from tcia_trials.source import geometry
from tcia_trials.source.frames import Frame, Stack, frames_from_header, split_stacks
from tcia_trials.source.pixels import read_frames_into, read_header
from tcia_trials.source.suv import combine_date_time, suvbw_factor

if TYPE_CHECKING:
    import highdicom

    from tcia_trials.source.index import Index

logger = logging.getLogger(__name__)

_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image in patient space.

    Attributes
    ----------
    array:
        Voxel values, shape ``(slices, rows, cols)``: CT in HU (int16 when the rescale is
        integral, else float32), PET in SUVbw (float32), other modalities after the modality
        rescale when the files carry one, else as stored.
    spacing:
        ``(z, y, x)`` voxel spacing in mm (slice step, row spacing, column spacing).
    origin:
        LPS position (mm) of the centre of voxel ``(0, 0, 0)``.
    direction:
        3x3 matrix whose columns are the LPS unit vectors of the axes (slice, row, col).
    modality, units:
        DICOM Modality and the unit of ``array`` ("HU", "SUVbw", "" when as stored, ...).
    series_uid, frame_of_reference_uid:
        Identity of the source series and its frame of reference.
    sop_instance_uids, frame_numbers:
        Source of slice ``k``: SOPInstanceUID and 1-based frame number within that instance.
    gantry_tilt_deg:
        Angle between the stacking vector and the slice normal; non-zero for gantry-tilted CT,
        whose ``direction`` (and affine) is then sheared so that voxel centres stay exact.
    stack:
        Which stack of the series this is, when the series holds several.
    warnings:
        Non-fatal findings (duplicate instances dropped, ...).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    modality: str
    units: str
    series_uid: str
    frame_of_reference_uid: str | None = None
    sop_instance_uids: tuple[str, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    gantry_tilt_deg: float = 0.0
    stack: str = ""
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(
                f"Volume array must be 3D (slices, rows, cols), got shape {self.array.shape}"
            )
        direction = np.asarray(self.direction, dtype=np.float64)
        if direction.shape != (3, 3) or not np.allclose(
            np.linalg.norm(direction, axis=0), 1, atol=1e-6
        ):
            raise ValueError(
                f"Volume direction must be 3x3 with unit columns, got {direction.tolist()}"
            )
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(
                f"Volume spacing must be 3 positive values (z, y, x) mm, got {self.spacing}"
            )
        if self.sop_instance_uids and len(self.sop_instance_uids) != self.array.shape[0]:
            raise ValueError("Volume needs one SOPInstanceUID per slice")
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping ``[k, j, i, 1]`` to LPS mm."""
        return geometry.affine_matrix(
            np.asarray(self.origin), np.asarray(self.spacing), self.direction
        )

    def to_highdicom(self) -> highdicom.Volume:
        """The same volume as a :class:`highdicom.Volume` (orthogonal stacks only)."""
        import highdicom

        if self.gantry_tilt_deg:
            raise SeriesGeometryError(
                f"series {self.series_uid}: a gantry-tilted (sheared) volume has no highdicom.Volume form"
            )
        return highdicom.Volume(
            self.array,
            self.affine,
            coordinate_system="PATIENT",
            frame_of_reference_uid=self.frame_of_reference_uid,
        )


def read_volume(
    source: Index | Sequence[str | PathLike[str]] | str | PathLike[str],
    series_uid: str | None = None,
    *,
    stack: int | None = None,
    pet_units: str = "SUVbw",
) -> Volume:
    """Read one image series as a :class:`Volume`.

    Parameters
    ----------
    source:
        An :class:`~tcia_trials.source.index.Index` (with ``series_uid``), a list of files of one
        series, or a single (possibly multi-frame) file.
    series_uid:
        SeriesInstanceUID to read from an index.
    stack:
        Which stack to read when the series holds several volumes (time points, echoes, sizes,
        orientations); the error raised without it lists them.
    pet_units:
        "SUVbw" (default: PET converted to SUVbw, an error when the tags needed are missing) or
        "BQML" (activity concentration as rescaled, no SUV tags needed).

    Raises
    ------
    SeriesGeometryError
        Missing slices, uneven spacing, mixed orientations without a separating attribute.
    MultipleStacksError
        The series holds several stacks and ``stack`` is not given.
    DicomReadError
        A file cannot be parsed or decoded (the message names it).
    SuvError
        PET tags needed for SUVbw are missing (the message names the tag).
    """
    return read_stacks(source, series_uid).volume(stack, pet_units=pet_units)


@dataclass(frozen=True, eq=False)
class SeriesStacks:
    """An image series' frames grouped into stacks, its headers read once; any stack can then
    be read as a :class:`Volume` (:meth:`volume`) without reading the headers again.

    Attributes
    ----------
    name:
        The series as error messages name it.
    stacks:
        The stacks, in the order ``read_volume(..., stack=N)`` numbers them (one for an ordinary
        series).
    """

    name: str
    stacks: tuple[Stack, ...]
    headers: dict[Path, Dataset] = field(repr=False)
    warnings: tuple[str, ...] = ()

    def volume(self, stack: int | None = None, *, pet_units: str = "SUVbw") -> Volume:
        """Stack ``stack`` as a :class:`Volume` (see :func:`read_volume`)."""
        chosen = _choose_stack(list(self.stacks), stack, self.name)
        return _assemble(chosen, self.headers, self.name, pet_units, self.warnings)


def read_stacks(
    source: Index | Sequence[str | PathLike[str]] | str | PathLike[str],
    series_uid: str | None = None,
) -> SeriesStacks:
    """Read the headers of one image series and group its frames into stacks (no pixel data).

    ``source`` and ``series_uid`` are those of :func:`read_volume`, and so are the errors; a
    series holding several stacks is not one here (:meth:`SeriesStacks.volume` asks which).
    """
    paths, name = _resolve_paths(source, series_uid)
    headers: dict[Path, Dataset] = {}
    frames: list[Frame] = []
    seen_sops: dict[str, Path] = {}
    warnings: list[str] = []
    for path in sorted(paths):
        ds, pixel_format = read_header(path)
        file_frames = frames_from_header(path, ds, pixel_format)
        sop = file_frames[0].sop_instance_uid
        if sop in seen_sops:
            warnings.append(f"{path}: duplicate of instance {sop} in {seen_sops[sop]}; ignored")
            continue
        seen_sops[sop] = path
        headers[path] = ds
        frames.extend(file_frames)
    series_uids = sorted({f.series_uid for f in frames})
    if len(series_uids) > 1:
        raise SeriesGeometryError(
            f"{name}: the files hold {len(series_uids)} series ({', '.join(series_uids)}); "
            "read one series at a time"
        )
    return SeriesStacks(name, tuple(split_stacks(frames, source=name)), headers, tuple(warnings))


def _resolve_paths(source: object, series_uid: str | None) -> tuple[list[Path], str]:
    if hasattr(source, "series"):
        if series_uid is None:
            raise TypeError("read_volume(index, series_uid): series_uid is required with an index")
        try:
            series = source.series[series_uid]  # type: ignore[attr-defined]
        except KeyError:
            raise SeriesNotFoundError(
                f"series {series_uid} is not in the index of {source.root}"  # type: ignore[attr-defined]
            ) from None
        return list(series.paths), f"series {series_uid}"
    if isinstance(source, str | PathLike):
        path = Path(source)
        if path.is_dir():
            paths = sorted(p for p in path.iterdir() if p.is_file())
            return paths, str(path)
        return [path], str(path)
    paths = [Path(p) for p in source]  # type: ignore[attr-defined]
    if not paths:
        raise ValueError("read_volume: no files given")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DicomReadError(f"{missing[0]}: no such file ({len(missing)} of {len(paths)} missing)")
    return paths, str(paths[0].parent) if len({p.parent for p in paths}) == 1 else "files"


def _choose_stack(stacks: list[Stack], stack: int | None, name: str) -> Stack:
    if stack is None and len(stacks) == 1:
        return stacks[0]
    if stack is None:
        listing = "; ".join(f"stack={n}: {s.describe()}" for n, s in enumerate(stacks))
        raise MultipleStacksError(
            f"{name}: the series holds {len(stacks)} stacks; choose one with "
            f"read_volume(..., stack=N): {listing}"
        )
    if not 0 <= stack < len(stacks):
        raise ValueError(
            f"{name}: stack={stack} is out of range; the series holds {len(stacks)} stack(s)"
        )
    return stacks[stack]


def _assemble(
    stack: Stack, headers: dict[Path, Dataset], name: str, pet_units: str, warnings: tuple[str, ...]
) -> Volume:
    frames = stack.frames
    first_header = headers[frames[0].path]
    hint = first_header.get("SpacingBetweenSlices") or first_header.get("SliceThickness")
    geo = geometry.stack_geometry(
        np.array([f.position for f in frames]),
        frames[0].orientation,
        frames[0].pixel_spacing,
        slice_spacing_hint=float(hint) if hint else None,
        source=name,
    )
    ordered = [frames[i] for i in geo.order]
    rows, cols = ordered[0].rows, ordered[0].columns
    dtypes = {f.pixel_format.dtype for f in ordered}
    raw = np.empty((len(ordered), rows, cols), dtype=np.result_type(*dtypes))

    by_file: dict[Path, list[int]] = {}
    for k, frame in enumerate(ordered):
        by_file.setdefault(frame.path, []).append(k)
    for slots in by_file.values():
        if len(slots) == 1 or np.all(np.diff(slots) == 1):
            target = raw[slots[0] : slots[-1] + 1]
            read_frames_into([ordered[k] for k in slots], target)
        else:
            buffer = np.empty((len(slots), rows, cols), dtype=raw.dtype)
            read_frames_into([ordered[k] for k in slots], buffer)
            raw[slots] = buffer

    modality = str(first_header.get("Modality", ""))
    array, units = _to_physical(raw, ordered, headers, modality, name, pet_units)
    return Volume(
        array=array,
        spacing=tuple(float(v) for v in geo.spacing),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in geo.origin),  # type: ignore[arg-type]
        direction=geo.direction,
        modality=modality,
        units=units,
        series_uid=ordered[0].series_uid,
        frame_of_reference_uid=first_header.get("FrameOfReferenceUID"),
        sop_instance_uids=tuple(f.sop_instance_uid for f in ordered),
        frame_numbers=tuple(f.frame_index + 1 for f in ordered),
        gantry_tilt_deg=geo.tilt_deg,
        stack=stack.label if stack.label != "all frames" else "",
        warnings=warnings,
    )


def _to_physical(
    raw: np.ndarray,
    frames: list[Frame],
    headers: dict[Path, Dataset],
    modality: str,
    name: str,
    pet_units: str,
) -> tuple[np.ndarray, str]:
    """Apply the modality rescale (and SUVbw for PET) to stored values, in place when exact."""
    slopes = np.array([f.slope for f in frames])
    intercepts = np.array([f.intercept for f in frames])
    header = headers[frames[0].path]
    if modality == "PT":
        if pet_units not in ("SUVbw", "BQML"):
            raise ValueError(f"pet_units must be 'SUVbw' or 'BQML', got {pet_units!r}")
        factor = 1.0
        if pet_units == "SUVbw":
            acquired = (
                combine_date_time(
                    headers[f.path].get("AcquisitionDate"), headers[f.path].get("AcquisitionTime")
                )
                for f in frames
            )
            factor = suvbw_factor(header, acquired, source=name)
        values = _linear(raw, slopes * factor, intercepts * factor)
        return values, pet_units if pet_units == "SUVbw" else str(header.get("Units", "BQML"))

    units = (
        "HU"
        if modality == "CT"
        else str(header.get("RescaleType", ""))
        if frames[0].has_rescale
        else ""
    )
    if not any(f.has_rescale for f in frames) or (np.all(slopes == 1) and np.all(intercepts == 0)):
        return raw, units
    if np.all(slopes == 1) and np.all(intercepts == np.round(intercepts)):
        bits_stored = max(f.pixel_format.bits_stored for f in frames)
        return _add_integer_intercepts(raw, intercepts.astype(np.int64), bits_stored), units
    values = _linear(raw, slopes, intercepts)
    return values, units


def _linear(raw: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """float32 of ``raw * slope + intercept`` per slice, computed in float64 one slice at a time
    (full precision without a float64 copy of the whole volume)."""
    out = np.empty(raw.shape, dtype=np.float32)
    for k, (slope, intercept) in enumerate(zip(slopes, intercepts, strict=True)):
        out[k] = raw[k] * float(slope) + float(intercept)
    return out


def _add_integer_intercepts(
    raw: np.ndarray, intercepts: np.ndarray, bits_stored: int
) -> np.ndarray:
    """stored + intercept as int16 (in place, by wrap-around arithmetic) when it fits, else int32.

    The range of the stored values is bounded by BitsStored; the array is scanned for its
    minimum or maximum only when that bound alone does not prove the result fits int16.
    """
    signed = raw.dtype.kind == "i"
    bound_low = -(1 << (bits_stored - 1)) if signed else 0
    bound_high = (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
    low = bound_low + int(intercepts.min())
    if low < _INT16.min:
        low = int((raw.min(axis=(1, 2)).astype(np.int64) + intercepts).min())
    high = bound_high + int(intercepts.max())
    if high > _INT16.max:
        high = int((raw.max(axis=(1, 2)).astype(np.int64) + intercepts).max())
    fits = _INT16.min <= low and high <= _INT16.max
    if raw.dtype.itemsize == 2 and fits:
        # Two's-complement addition modulo 2**16 gives the exact result whenever it fits int16.
        out = raw.view(np.int16)
        wrapped = (intercepts % 65536).astype(np.uint16).view(np.int16)
        np.add(out, wrapped[:, np.newaxis, np.newaxis], out=out, casting="unsafe")
        return out
    target = np.int16 if fits else np.int32
    return (raw.astype(np.int64) + intercepts[:, np.newaxis, np.newaxis]).astype(target)
