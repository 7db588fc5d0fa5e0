"""Image frames read from DICOM headers, and their grouping into stacks.

A *frame* is one 2D image plane: a single-frame file holds one, an enhanced multi-frame file
many (described by its per-frame and shared functional groups).  Volumes are built from frames,
so single- and multi-frame series go through the same sorting and geometry code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from tcia_trials.errors import MultipleStacksError, SeriesGeometryError
from tcia_trials.source.geometry import DUPLICATE_POSITION_ATOL_MM, ORIENTATION_ATOL

#: Attributes that tell stacks of one series apart, tried in this order when positions repeat.
STACK_KEYS = (
    "StackID",
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "EchoNumbers",
    "EffectiveEchoTime",
    "DiffusionBValue",
    "AcquisitionNumber",
    "TriggerTime",
    "ImageType",
    "AcquisitionTime",
)


@dataclass(frozen=True)
class PixelLocation:
    """Where a file's native (uncompressed) pixel data lie: byte offset and length of the value."""

    offset: int
    length: int


@dataclass(frozen=True)
class Frame:
    """One image plane and everything needed to place it and convert its values."""

    path: Path
    frame_index: int  # 0-based frame number in its file
    number_of_frames: int  # frames in its file
    sop_instance_uid: str
    series_uid: str
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    slope: float
    intercept: float
    has_rescale: bool
    instance_number: int
    keys: dict[str, object] = field(compare=False)
    pixel_location: PixelLocation | None = field(compare=False)  # None: decode with pydicom

    @property
    def grid_key(self) -> tuple:
        return (self.rows, self.columns, *np.round(self.pixel_spacing, 4))


def frames_from_header(
    path: Path, ds: Dataset, pixel_location: PixelLocation | None
) -> list[Frame]:
    """Describe every frame of a file from its header dataset (read without pixel data)."""
    nframes = int(ds.get("NumberOfFrames") or 1)
    common = {
        "path": path,
        "number_of_frames": nframes,
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "instance_number": _int_or_zero(ds.get("InstanceNumber")),
        "rows": int(_required(ds, "Rows", path)),
        "columns": int(_required(ds, "Columns", path)),
        "pixel_location": pixel_location,
    }
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return [_enhanced_frame(ds, f, common) for f in range(nframes)]
    if nframes != 1:
        raise SeriesGeometryError(
            f"{path}: {nframes} frames but no functional groups describe their positions "
            "(PerFrameFunctionalGroupsSequence is missing), so no volume geometry can be derived"
        )
    slope, intercept, has_rescale = _rescale(ds)
    return [
        Frame(
            frame_index=0,
            position=_floats(
                _required(ds, "ImagePositionPatient", path), 3, "ImagePositionPatient", path
            ),
            orientation=_floats(
                _required(ds, "ImageOrientationPatient", path), 6, "ImageOrientationPatient", path
            ),
            pixel_spacing=_floats(_required(ds, "PixelSpacing", path), 2, "PixelSpacing", path),
            slope=slope,
            intercept=intercept,
            has_rescale=has_rescale,
            keys={k: _hashable(ds.get(k)) for k in STACK_KEYS if ds.get(k) not in (None, "")},
            **common,
        )
    ]


def _enhanced_frame(ds: Dataset, f: int, common: dict) -> Frame:
    path = common["path"]
    per_frame = (
        ds.PerFrameFunctionalGroupsSequence[f] if "PerFrameFunctionalGroupsSequence" in ds else None
    )
    shared = (
        ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    )

    def group(name: str) -> Dataset | None:
        for source in (per_frame, shared):
            if source is not None and name in source and len(source[name].value):
                return source[name].value[0]
        return None

    def need(name: str, attribute: str) -> object:
        item = group(name)
        if item is None or attribute not in item:
            raise SeriesGeometryError(
                f"{path}: frame {f + 1} has no {name} > {attribute} in its functional groups; "
                "no volume geometry can be derived"
            )
        return item[attribute].value

    keys: dict[str, object] = {}
    content = group("FrameContentSequence")
    if content is not None:
        for name in ("StackID", "TemporalPositionIndex"):
            if content.get(name) not in (None, ""):
                keys[name] = _hashable(content.get(name))
    echo = group("MREchoSequence")
    if echo is not None and echo.get("EffectiveEchoTime") is not None:
        keys["EffectiveEchoTime"] = float(echo.EffectiveEchoTime)
    diffusion = group("MRDiffusionSequence")
    if diffusion is not None and diffusion.get("DiffusionBValue") is not None:
        keys["DiffusionBValue"] = float(diffusion.DiffusionBValue)
    frame_type = group("MRImageFrameTypeSequence") or group("CTImageFrameTypeSequence")
    if frame_type is not None and frame_type.get("FrameType"):
        keys["ImageType"] = _hashable(frame_type.FrameType)
    transform = group("PixelValueTransformationSequence")
    slope, intercept, has_rescale = _rescale(transform if transform is not None else Dataset())
    return Frame(
        frame_index=f,
        position=_floats(
            need("PlanePositionSequence", "ImagePositionPatient"), 3, "ImagePositionPatient", path
        ),
        orientation=_floats(
            need("PlaneOrientationSequence", "ImageOrientationPatient"),
            6,
            "ImageOrientationPatient",
            path,
        ),
        pixel_spacing=_floats(
            need("PixelMeasuresSequence", "PixelSpacing"), 2, "PixelSpacing", path
        ),
        slope=slope,
        intercept=intercept,
        has_rescale=has_rescale,
        keys=keys,
        **common,
    )


def _int_or_zero(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _required(ds: Dataset, keyword: str, path: Path) -> object:
    value = ds.get(keyword)
    if value is None or value == "":
        raise SeriesGeometryError(f"{path}: required attribute {keyword} is missing or empty")
    return value


def _floats(value: object, count: int, keyword: str, path: Path) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise SeriesGeometryError(f"{path}: {keyword} is not numeric: {value!r}") from exc
    if len(numbers) != count or not all(np.isfinite(numbers)):
        raise SeriesGeometryError(
            f"{path}: {keyword} must hold {count} finite numbers, got {value!r}"
        )
    return numbers


def _rescale(ds: Dataset) -> tuple[float, float, bool]:
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope in (None, "") and intercept in (None, ""):
        return 1.0, 0.0, False
    return float(slope if slope not in (None, "") else 1.0), float(intercept or 0.0), True


def _hashable(value: object) -> object:
    if isinstance(value, str | bytes | int | float) or value is None:
        return value
    try:
        return tuple(str(v) for v in value)  # type: ignore[union-attr]
    except TypeError:
        return str(value)


@dataclass(frozen=True)
class Stack:
    """Frames that form one candidate volume, and what sets them apart from the series' others."""

    frames: tuple[Frame, ...]
    label: str  # e.g. "TemporalPositionIdentifier=3" or "64x64, orientation 1"

    def describe(self) -> str:
        return f"{self.label} ({len(self.frames)} frames)"


def split_stacks(frames: Sequence[Frame], *, source: str) -> list[Stack]:
    """Group frames into stacks: by grid and orientation, then by the first attribute in
    :data:`STACK_KEYS` that makes every slice position unique within each group."""
    groups: list[tuple[tuple, tuple[float, ...], list[Frame]]] = []
    for frame in frames:
        for grid, orientation, members in groups:
            if grid == frame.grid_key and np.allclose(
                orientation, frame.orientation, atol=ORIENTATION_ATOL, rtol=0
            ):
                members.append(frame)
                break
        else:
            groups.append((frame.grid_key, frame.orientation, [frame]))

    stacks: list[Stack] = []
    for number, (grid, _orientation, members) in enumerate(groups):
        prefix = (
            "" if len(groups) == 1 else f"{grid[0]}x{grid[1]} grid, orientation group {number + 1}"
        )
        stacks.extend(_split_repeated_positions(members, prefix, source))
    return stacks


def _split_repeated_positions(frames: list[Frame], prefix: str, source: str) -> list[Stack]:
    if _positions_unique(frames):
        return [Stack(tuple(frames), prefix or "all frames")]
    for key in STACK_KEYS:
        values = [f.keys.get(key) for f in frames]
        if any(v is None for v in values) or len(set(values)) < 2:
            continue
        by_value: dict[object, list[Frame]] = {}
        for frame, value in zip(frames, values, strict=True):
            by_value.setdefault(value, []).append(frame)
        if all(_positions_unique(members) for members in by_value.values()):
            label = prefix + ", " if prefix else ""
            return [
                Stack(tuple(members), f"{label}{key}={_show(value)}")
                for value, members in sorted(by_value.items(), key=lambda item: _sort_key(item[0]))
            ]
    repetitions = _split_by_repetition(frames, prefix)
    if repetitions:
        return repetitions
    n_positions = len({_position_key(f) for f in frames})
    raise MultipleStacksError(
        f"{source}: {len(frames)} frames share {n_positions} slice positions unevenly and no "
        f"attribute ({', '.join(STACK_KEYS)}) separates them into stacks; refusing to guess which "
        "belong together"
    )


def _split_by_repetition(frames: list[Frame], prefix: str) -> list[Stack]:
    """Split a series that visits every position the same number of times (e.g. fMRI without
    temporal tags) by acquisition order at each position: InstanceNumber, then frame number."""
    at_position: dict[tuple[int, ...], list[Frame]] = {}
    for frame in frames:
        at_position.setdefault(_position_key(frame), []).append(frame)
    counts = {len(members) for members in at_position.values()}
    if len(counts) != 1:
        return []
    (repeats,) = counts
    ordered = [
        sorted(members, key=lambda f: (f.instance_number, f.frame_index, str(f.path)))
        for members in at_position.values()
    ]
    label = prefix + ", " if prefix else ""
    return [
        Stack(
            tuple(members[r] for members in ordered),
            f"{label}repetition {r + 1} of {repeats} (by InstanceNumber at each position)",
        )
        for r in range(repeats)
    ]


def _position_key(frame: Frame) -> tuple[int, ...]:
    return tuple(round(v / DUPLICATE_POSITION_ATOL_MM) for v in frame.position)


def _positions_unique(frames: Iterable[Frame]) -> bool:
    keys = [_position_key(f) for f in frames]
    return len(keys) == len(set(keys))


def _show(value: object) -> str:
    return "\\".join(value) if isinstance(value, tuple) else str(value)


def _sort_key(value: object) -> tuple:
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))
