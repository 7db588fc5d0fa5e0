"""Image frames read from DICOM headers, and their grouping into stacks.

A *frame* is one 2D image plane: a single-frame file holds one, an enhanced multi-frame file
many (described by its per-frame and shared functional groups).  Volumes are built from frames,
so single- and multi-frame series go through the same sorting and geometry code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from tcia_trials.errors import MultipleStacksError, SeriesGeometryError
from tcia_trials.source.geometry import DUPLICATE_POSITION_ATOL_MM, same_orientation

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

#: Typed descriptors of a stack: feature name -> (attributes tried in order, type).  A stack has
#: a descriptor when all its frames share the attribute's value: DiffusionBValue in s/mm2,
#: echo and trigger times in ms, 1-based echo and temporal position numbers.
STACK_DESCRIPTORS: dict[str, tuple[tuple[str, ...], type]] = {
    "b_value": (("DiffusionBValue",), float),
    "echo_time": (("EffectiveEchoTime", "EchoTime"), float),
    "echo_number": (("EchoNumbers",), int),
    "temporal_index": (("TemporalPositionIdentifier", "TemporalPositionIndex"), int),
    "trigger_time": (("TriggerTime",), float),
}
#: Single-frame attributes read for :data:`STACK_DESCRIPTORS` only (never used to split).
_DESCRIPTIVE_KEYS = ("EchoTime",)

_PER_FRAME_GROUPS = 0x52009230
_SHARED_GROUPS = 0x52009229
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "SH", "TM", "UI"})


@dataclass(frozen=True)
class PixelFormat:
    """How a file stores its pixels, read once from its header.

    ``offset`` and ``length`` locate the Pixel Data value of native (uncompressed) files, which
    are read straight from disk; they are ``None`` when pydicom must decode the data.
    """

    dtype: np.dtype  # stored values, native byte order
    bits_stored: int
    little_endian: bool
    offset: int | None = None
    length: int | None = None

    @property
    def is_native(self) -> bool:
        return self.offset is not None


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
    pixel_format: PixelFormat = field(compare=False)

    @property
    def grid_key(self) -> tuple:
        return (self.rows, self.columns, *(round(v, 4) for v in self.pixel_spacing))


def frames_from_header(path: Path, ds: Dataset, pixel_format: PixelFormat) -> list[Frame]:
    """Describe every frame of a file from its header dataset (read without pixel data)."""
    nframes = int(_first(header_strings(ds, "NumberOfFrames")) or 1)
    common = {
        "path": path,
        "number_of_frames": nframes,
        "sop_instance_uid": _first(header_strings(ds, "SOPInstanceUID")),
        "series_uid": _first(header_strings(ds, "SeriesInstanceUID")),
        "instance_number": _int_or_zero(_first(header_strings(ds, "InstanceNumber"))),
        "rows": _required_uint(ds, 0x00280010, "Rows", pixel_format.little_endian, path),
        "columns": _required_uint(ds, 0x00280011, "Columns", pixel_format.little_endian, path),
        "pixel_format": pixel_format,
    }
    if _PER_FRAME_GROUPS in ds or _SHARED_GROUPS in ds:
        return [_enhanced_frame(ds, f, common) for f in range(nframes)]
    if nframes != 1:
        raise SeriesGeometryError(
            f"{path}: {nframes} frames but no functional groups describe their positions "
            "(PerFrameFunctionalGroupsSequence is missing), so no volume geometry can be derived"
        )
    slope, intercept, has_rescale = _rescale(ds)
    keys = {}
    for keyword in (*STACK_KEYS, *_DESCRIPTIVE_KEYS):
        values = header_strings(ds, keyword)
        if values:
            keys[keyword] = values[0] if len(values) == 1 else tuple(values)
    return [
        Frame(
            frame_index=0,
            position=_floats(
                _required_strings(ds, "ImagePositionPatient", path), 3, "ImagePositionPatient", path
            ),
            orientation=_floats(
                _required_strings(ds, "ImageOrientationPatient", path),
                6,
                "ImageOrientationPatient",
                path,
            ),
            pixel_spacing=_floats(
                _required_strings(ds, "PixelSpacing", path), 2, "PixelSpacing", path
            ),
            slope=slope,
            intercept=intercept,
            has_rescale=has_rescale,
            keys=keys,
            **common,
        )
    ]


def header_strings(ds: Dataset, keyword: str) -> list[str]:
    """The values of a header attribute as strings ([] when absent or empty).

    Text attributes (DS, IS, CS, UI, ...) are split from their raw bytes without building
    pydicom's value objects: reading a volume touches a handful of attributes in every file, and
    this is several times faster than attribute access.
    """
    tag = _tag(keyword)
    element = ds.get_item(tag)
    if element is None:
        return []
    value = element.value
    if isinstance(value, bytes) and _is_text(tag):
        text = value.decode("latin-1").strip(" \x00")
        return [part.strip(" \x00") for part in text.split("\\")] if text else []
    value = ds[tag].value
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes | int | float):
        return [str(value)]
    return [str(v) for v in value]


@functools.cache
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {keyword!r}")
    return tag


@functools.cache
def _is_text(tag: int) -> bool:
    return dictionary_VR(tag) in _TEXT_VRS


def _first(values: list[str]) -> str:
    return values[0] if values else ""


def _required_strings(ds: Dataset, keyword: str, path: Path) -> list[str]:
    values = header_strings(ds, keyword)
    if not values:
        raise SeriesGeometryError(f"{path}: required attribute {keyword} is missing or empty")
    return values


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


def header_uint(ds: Dataset, tag: int, little: bool) -> int | None:
    """An unsigned short (US) header value, decoded from its raw bytes when still raw."""
    element = ds.get_item(tag)
    if element is None:
        return None
    value = element.value
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little" if little else "big") if len(value) >= 2 else None
    return int(value) if value not in (None, "") else None


def _required_uint(ds: Dataset, tag: int, keyword: str, little: bool, path: Path) -> int:
    value = header_uint(ds, tag, little)
    if value is None:
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
    slope, intercept = header_strings(ds, "RescaleSlope"), header_strings(ds, "RescaleIntercept")
    if not slope and not intercept:
        return 1.0, 0.0, False
    return float(_first(slope) or 1.0), float(_first(intercept) or 0.0), True


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

    def descriptors(self) -> dict[str, float | int | None]:
        """The stack's :data:`STACK_DESCRIPTORS` (None where frames lack or differ in them)."""
        return {
            name: _shared_value(self.frames, keywords, kind)
            for name, (keywords, kind) in STACK_DESCRIPTORS.items()
        }


def _shared_value(
    frames: Sequence[Frame], keywords: tuple[str, ...], kind: type
) -> float | int | None:
    """The first of ``keywords`` that every frame holds with one numeric value, as ``kind``."""
    for keyword in keywords:
        values = {f.keys.get(keyword) for f in frames}
        if len(values) != 1 or None in values:
            continue
        try:
            number = float(values.pop())  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if np.isfinite(number) and (kind is float or number.is_integer()):
            return kind(number)
    return None


def split_stacks(frames: Sequence[Frame], *, source: str) -> list[Stack]:
    """Group frames into stacks: by grid and orientation, then by the first attribute in
    :data:`STACK_KEYS` that makes every slice position unique within each group."""
    groups: list[tuple[tuple, tuple[float, ...], list[Frame]]] = []
    for frame in frames:
        for grid, orientation, members in groups:
            if grid == frame.grid_key and (
                orientation == frame.orientation or same_orientation(orientation, frame.orientation)
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
