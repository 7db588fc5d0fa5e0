"""DICOM Segmentation (SEG) objects: segments, and masks on the SEG's own grid or an image grid.

:func:`read_seg_document` reads the header only (identity, references, segment descriptions).
:func:`seg_masks_own_grid` decodes the masks on the SEG's own regular grid (no image needed: for
standalone use, e.g. ``volume_ml = mask.sum() * voxel volume``).  :func:`seg_masks_on_volume`
puts them on the grid of an image :class:`~tcia_trials.source.volume.Volume`.

highdicom does the decoding (:func:`highdicom.seg.segread` semantics, bit unpacking, JPEG 2000
and the other codecs, LABELMAP and FRACTIONAL values, per-segment channels, own-grid assembly by
``Segmentation.get_volume`` and placement by ``get_pixels_by_source_instance``).  This module adds
what highdicom does not do: choosing between reference and geometry, checking that the SEG
belongs on the volume, mapping the SEG grid onto a *different* image grid, and reporting every
annotated voxel that cannot be placed.

Conventions
-----------
Masks follow :mod:`tcia_trials.source.geometry`: arrays are ``(k, j, i)`` = (slice, row, column),
slices sorted by increasing position along the normal ``row_cosines x column_cosines``, and a 4x4
affine maps ``[k, j, i, 1]`` to LPS mm.  Masks are dicts ``{segment_number: bool array}``, one
full array per segment, so overlapping segments are all kept in full.  LABELMAP segment 0
(background) has no mask and is not listed in :attr:`SegDocument.segments`.

Values
------
* BINARY: inside where the stored bit is 1.
* LABELMAP: inside segment ``n`` where the stored label is ``n``.
* FRACTIONAL: a stored value ``v`` in ``0 .. MaximumFractionalValue`` (often 255) is the fraction
  ``v / MaximumFractionalValue`` in ``[0, 1]`` (probability or occupancy, per FractionalType);
  a voxel is inside when that fraction is ``>= threshold`` (default 0.5, so with a maximum of
  255 a stored 128 is inside and 127 is not).  :attr:`SegOnGrid.fractional` keeps the fractions.

Placement on an image volume (:func:`seg_masks_on_volume`)
------------------------------------------------------------
1. Belonging.  The SEG belongs on the volume when it references the volume's series (Referenced
   Series Sequence) or any of its instances.  Otherwise it is placed by geometry when both name
   the same FrameOfReferenceUID (flag ``other-series``); in another frame of reference it raises
   :class:`~tcia_trials.errors.MissingReferenceError` naming the SEG file, the series it
   references and the volume's series.  A SEG that references the series but names another frame
   of reference is placed (by reference when possible) with the flag
   ``frame-of-reference-mismatch``; a missing frame of reference gives ``unverified-reference``,
   a SEG without any image reference ``no-reference``.  (Same rules and codes as
   :mod:`tcia_trials.source.rtstruct`.)
2. By reference, when every frame's DerivationImageSequence/SourceImageSequence names exactly
   one slice of the volume (``volume.sop_instance_uids`` / ``volume.frame_numbers``), the frames
   have the image's rows and columns, no frame says SpatialLocationsPreserved NO/REORIENTED, and
   the frames' plane positions (when present) lie on the referenced slices.  Plane positions that
   contradict the references give the flag ``reference-geometry-mismatch`` and geometry wins.
3. By geometry otherwise: highdicom assembles the SEG's own regular grid, which is mapped through
   the inverse of ``volume.affine``.  When its rows and columns lie on the image's (same
   orientation and pixel spacing, whole-pixel offset within :data:`IN_PLANE_ATOL_PX`) and every
   annotated SEG plane lies on an image slice plane (within :data:`PLANE_RTOL` of the slice
   spacing or :data:`PLANE_ATOL_MM`), the planes are copied, nothing is interpolated.
4. Otherwise the SEG is resampled (flag ``resampled``): every image voxel centre takes the value
   of the SEG voxel that contains it (nearest neighbour by geometry; a centre on a boundary
   between SEG voxels, within :data:`TIE_ATOL_VOXELS`, takes the one with the higher index in the
   ascending own grid); FRACTIONAL SEGs resample the fraction and then apply ``threshold``.  Annotated SEG planes between image slices are reported
   (``frames-between-slices``), the ``resampled`` flag gives both grids and each segment's
   voxels and ml before and after, and a segment that no image voxel centre falls into is
   reported (``empty-after-resampling``).  Annotated SEG voxels whose centres lie outside the
   image volume count as lost.

Nothing is dropped silently: SEG frames outside the image volume (``frames-outside-volume``) and
annotated voxels outside its rows/columns (``voxels-outside-volume``) are reported with counts,
including how many annotated voxels are lost, per segment.  Each flag is one string
``"<code>: <details>"``.

A gantry-tilted (sheared) image volume is handled like any other: by reference, or resampled
through its sheared affine.  A SEG whose own frames are not one regular stack (mixed
orientations, a tilted stack of frames) can only be placed by reference.

Cost: the SEG is parsed once (pydicom) and shared with highdicom.  The fixed cost is pydicom's
parse of one functional-group item per frame plus highdicom's frame index (about 0.15-0.2 s for
300 frames, ~0.02 s for a 30-frame lesion); pixels are unpacked by highdicom frame by frame
straight into the output, one call per segment, without a per-pixel Python loop.  Resampling
computes only the image box around the annotated SEG voxels, one image slice at a time.

Errors: a file that is not a SEG raises :class:`~tcia_trials.errors.AnnotationError`; one that
cannot be parsed or whose pixel data cannot be decoded (e.g. a transfer syntax no installed
decoder supports) raises :class:`~tcia_trials.errors.DicomReadError` naming the file and the
transfer syntax; SEG frames that do not form one regular grid when geometry is needed raise
:class:`~tcia_trials.errors.AnnotationError`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from tcia_trials.errors import (
    AnnotationError,
    DicomReadError,
    MissingReferenceError,
    TciaTrialsError,
)
from tcia_trials.source import geometry
from tcia_trials.source.documents import AnnotationFile, file_identity, text_or_none
from tcia_trials.source.raw_uids import referenced_instance_uids

if TYPE_CHECKING:
    import highdicom

    from tcia_trials.source.volume import Volume

#: SOP classes read as SEG (Segmentation Storage, Label Map Segmentation Storage).
SEG_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"})
#: A SEG plane lies on image slice ``k`` when its slice coordinate is within this fraction of the
#: slice spacing of the integer ``k``...
PLANE_RTOL = 0.01
#: ...or within this distance (mm), whichever is larger.
PLANE_ATOL_MM = 0.01
#: SEG rows/columns lie on the image's when they are within this fraction of a pixel of whole
#: pixel offsets over the whole frame (or :data:`PLANE_ATOL_MM`, whichever is larger).
IN_PLANE_ATOL_PX = 0.01
#: How many values a flag lists before it says "and N more".
FLAG_LIST_LIMIT = 5

_NOT_PRESERVED = frozenset({"NO", "REORIENTED"})


@dataclass(frozen=True)
class Segment:
    """One segment of a SEG (an item of its SegmentSequence).

    Attributes
    ----------
    segment_number:
        SegmentNumber (1-based; the key of the mask dicts).
    label:
        SegmentLabel, e.g. ``"LIVER - 1"``.
    description:
        SegmentDescription.
    category, property_type:
        Code meanings of SegmentedPropertyCategoryCodeSequence / SegmentedPropertyTypeCodeSequence.
    algorithm_type:
        SegmentAlgorithmType: ``"MANUAL"``, ``"SEMIAUTOMATIC"`` or ``"AUTOMATIC"``.
    algorithm_name:
        SegmentAlgorithmName.
    tracking_id, tracking_uid:
        TrackingID / TrackingUID (identify the same lesion across time points).
    """

    segment_number: int
    label: str
    description: str | None
    category: str | None
    property_type: str | None
    algorithm_type: str
    algorithm_name: str | None
    tracking_id: str | None
    tracking_uid: str | None


@dataclass(frozen=True)
class SegDocument(AnnotationFile):
    """Header-level content of a SEG file (no pixel data decoded).

    Attributes
    ----------
    path, sop_instance_uid, series_uid, series_description, study_uid, patient_id:
        Identity of the SEG instance (:class:`~tcia_trials.source.documents.AnnotationFile`).
    time_point:
        ClinicalTrialTimePointID (e.g. ``"Pre-dose"``), or None.
    frame_of_reference_uid:
        FrameOfReferenceUID of the SEG's plane positions, or None.
    referenced_series_uids, referenced_sop_instance_uids:
        Image series and instances the SEG was derived from: ReferencedSeriesSequence and the
        top-level SourceImageSequence; the per-frame DerivationImageSequence only when both are
        absent (reading it is slow for large SEGs).
    segmentation_type:
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
    segments:
        The segments, in SegmentSequence order (LABELMAP background segment 0 excluded).
    """

    time_point: str | None
    frame_of_reference_uid: str | None
    referenced_series_uids: tuple[str, ...]
    referenced_sop_instance_uids: tuple[str, ...]
    segmentation_type: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True, eq=False)
class SegOnGrid:
    """A SEG's masks on an image volume's grid.

    Attributes
    ----------
    masks:
        ``segment_number -> bool array`` of ``volume.shape`` ``(k, j, i)``, one per segment.
    fractional:
        For FRACTIONAL SEGs, ``segment_number -> float32`` fractions in ``[0, 1]`` on the image
        grid (``masks[n] == (fractional[n] >= threshold)``); None otherwise.
    resampled:
        True when the SEG grid differed from the image grid and was resampled (nearest
        neighbour by geometry).
    flags:
        Findings, each ``"<code>: <details>"`` (see the module documentation).
    placement:
        How the frames were placed: ``"reference"`` (SOPInstanceUID references), ``"geometry"``
        (plane positions on the image planes, copied) or ``"resampled"``.
    document:
        The SEG's header-level description (read from the same parse).
    """

    masks: dict[int, np.ndarray]
    fractional: dict[int, np.ndarray] | None
    resampled: bool
    flags: tuple[str, ...]
    placement: str = "reference"
    document: SegDocument | None = None


@dataclass(frozen=True, eq=False)
class SegOwnGrid:
    """A SEG's masks in its own geometry (no image series needed).

    Attributes
    ----------
    masks:
        ``segment_number -> bool array (k, j, i)``, one full array per segment.
    affine:
        4x4 matrix mapping ``[k, j, i, 1]`` to LPS mm; planes ascend along the normal.  On a
        regular grid (``plane_heights_mm`` None) it is exact for every voxel; sparse SEGs keep
        empty planes between their stored frames.  When the stored frames lie at irregular
        positions, ``k`` indexes the stored planes and ``affine[:3, 0]`` is the normal times
        ``voxel_thickness_mm`` (NaN when unknown): exact in-plane and for plane 0, and
        ``abs(det(affine[:3, :3]))`` is the voxel volume, so voxel counts, volumes and in-plane
        diameters are exact, but plane ``k`` lies at ``plane_heights_mm[k]`` along the normal.
    plane_heights_mm:
        None on a regular grid; else the positions (mm) of the stored planes along the normal.
    voxel_thickness_mm:
        The voxel extent along the normal (mm): the plane spacing on a regular grid; for
        irregular frames the SEG's SpacingBetweenSlices (the step of the grid its frames were
        drawn on, as the image-grid volumes use), else its SliceThickness; None when neither
        is given.
    thickness_source:
        ``"plane spacing"``, ``"SpacingBetweenSlices"``, ``"SliceThickness"`` or ``"unknown"``.
    flags:
        ``"irregular-frames: ..."`` (which planes, and which thickness gave the voxel volume),
        ``"voxel-thickness-unknown: ..."``.
    """

    masks: dict[int, np.ndarray]
    affine: np.ndarray
    plane_heights_mm: np.ndarray | None
    voxel_thickness_mm: float | None
    thickness_source: str
    flags: tuple[str, ...] = ()


class _IrregularFramesError(AnnotationError):
    """The SEG's frames do not form one regular grid (highdicom finds no volume geometry)."""


@dataclass(frozen=True)
class _Frames:
    """Per-frame geometry and references of a SEG (from its functional groups)."""

    positions: np.ndarray | None  # (n, 3) LPS mm; None when a frame has no plane position
    orientation: np.ndarray | None  # (6,) shared ImageOrientationPatient; None if absent/varies
    refs: tuple[tuple[tuple[str, int | None], ...], ...]  # per frame: (SOPInstanceUID, frame)
    not_preserved: int  # frames whose SpatialLocationsPreserved is NO or REORIENTED
    segments: tuple[int | None, ...] = ()  # per frame: ReferencedSegmentNumber


# --------------------------------------------------------------------------------------------
# Header


def read_seg_document(path: str | PathLike[str]) -> SegDocument:
    """Read a SEG file's header: identity, references and segment descriptions.

    Parameters
    ----------
    path:
        A DICOM SEG file (Segmentation Storage or Label Map Segmentation Storage).

    Raises
    ------
    DicomReadError
        The file cannot be parsed as DICOM.
    AnnotationError
        The file is not a SEG, or it has no segments.
    """
    path = Path(path)
    with _lenient_reading():
        return _document(_read_dataset(path, pixels=False), path)


_LENIENT_LOCK = threading.Lock()
_lenient_depth = 0
_saved_mode: int | None = None


@contextlib.contextmanager
def _lenient_reading() -> Iterator[None]:
    """Skip pydicom's per-value validation while a SEG header is parsed.

    A SEG holds one functional-group item per frame, and with pydicom's default (warn on
    invalid values) validation is about a quarter of the parse time.  Values are converted the
    same way either way; only the warnings are lost.  The setting is global, so it is changed
    only from the default WARN (a user's RAISE or IGNORE is kept), and restored when the last
    concurrent reader leaves.
    """
    global _lenient_depth, _saved_mode
    with _LENIENT_LOCK:
        if _lenient_depth == 0:
            _saved_mode = pydicom_config.settings.reading_validation_mode
            if _saved_mode == pydicom_config.WARN:
                pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        _lenient_depth += 1
    try:
        yield
    finally:
        with _LENIENT_LOCK:
            _lenient_depth -= 1
            if _lenient_depth == 0 and _saved_mode == pydicom_config.WARN:
                pydicom_config.settings.reading_validation_mode = _saved_mode


def _read_dataset(path: Path, *, pixels: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        raise DicomReadError(f"{path}: cannot read the DICOM file: {exc}") from exc
    sop_class = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", ""))
    if sop_class not in SEG_SOP_CLASSES and modality != "SEG":
        name = UID(sop_class).name if sop_class else "absent"
        raise AnnotationError(
            f"{path}: not a DICOM SEG (Modality {modality or 'absent'}, SOPClassUID {name})"
        )
    return ds


def _code_meaning(item: Dataset, keyword: str) -> str | None:
    codes = item.get(keyword)
    return text_or_none(codes[0].get("CodeMeaning")) if codes else None


_REFERENCED_INSTANCES = 0x0008114A  # ReferencedInstanceSequence
_SOURCE_IMAGES = 0x00082112  # SourceImageSequence


def _document(ds: Dataset, path: Path) -> SegDocument:
    segments = tuple(
        Segment(
            segment_number=int(item.SegmentNumber),
            label=str(item.get("SegmentLabel", "")),
            description=text_or_none(item.get("SegmentDescription")),
            category=_code_meaning(item, "SegmentedPropertyCategoryCodeSequence"),
            property_type=_code_meaning(item, "SegmentedPropertyTypeCodeSequence"),
            algorithm_type=str(item.get("SegmentAlgorithmType", "")),
            algorithm_name=text_or_none(item.get("SegmentAlgorithmName")),
            tracking_id=text_or_none(item.get("TrackingID")),
            tracking_uid=text_or_none(item.get("TrackingUID")),
        )
        for item in ds.get("SegmentSequence", [])
        if "SegmentNumber" in item and int(item.SegmentNumber) != 0
    )
    if not segments:
        raise AnnotationError(f"{path}: the SEG defines no segments (empty SegmentSequence)")
    series: dict[str, None] = {}
    sops: dict[str, None] = {}
    encoding = ds.original_encoding
    for item in ds.get("ReferencedSeriesSequence", []):
        if "SeriesInstanceUID" in item:
            series[str(item.SeriesInstanceUID)] = None
        sops.update(dict.fromkeys(referenced_instance_uids(item, _REFERENCED_INSTANCES, encoding)))
    sops.update(dict.fromkeys(referenced_instance_uids(ds, _SOURCE_IMAGES, encoding)))
    if not series and not sops:
        for refs in _frame_refs(ds):
            for sop, _ in refs:
                sops[sop] = None
    return SegDocument(
        **file_identity(path, ds),
        time_point=text_or_none(ds.get("ClinicalTrialTimePointID")),
        frame_of_reference_uid=text_or_none(ds.get("FrameOfReferenceUID")),
        referenced_series_uids=tuple(series),
        referenced_sop_instance_uids=tuple(sops),
        segmentation_type=str(ds.get("SegmentationType", "")).upper(),
        segments=segments,
    )


def _group_item(groups: Sequence[Dataset | None], keyword: str) -> Dataset | None:
    """First item of a functional group macro, per-frame before shared."""
    for group in groups:
        if group is not None:
            value = group.get(keyword)
            if value:
                return value[0]
    return None


def _per_frame_groups(ds: Dataset) -> tuple[list[Dataset | None], Dataset | None]:
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame: list[Dataset | None] = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if len(per_frame) < count:
        per_frame.extend([None] * (count - len(per_frame)))
    return per_frame, shared


def _source_refs(item: Dataset | None) -> list[tuple[str, int | None, str | None]]:
    refs: list[tuple[str, int | None, str | None]] = []
    if item is None:
        return refs
    for derivation in item.get("DerivationImageSequence", []):
        for source in derivation.get("SourceImageSequence", []):
            if "ReferencedSOPInstanceUID" not in source:
                continue
            sop = str(source.ReferencedSOPInstanceUID)
            preserved = text_or_none(source.get("SpatialLocationsPreserved"))
            numbers = source.get("ReferencedFrameNumber")
            if numbers is None or numbers == "":
                refs.append((sop, None, preserved))
            else:
                values = numbers if isinstance(numbers, Sequence) else [numbers]
                refs.extend((sop, int(n), preserved) for n in values)
    return refs


def _frame_refs(ds: Dataset) -> list[list[tuple[str, int | None]]]:
    per_frame, _ = _per_frame_groups(ds)
    return [[(sop, n) for sop, n, _ in _source_refs(item)] for item in per_frame]


def _frames(ds: Dataset) -> _Frames:
    per_frame, shared = _per_frame_groups(ds)
    positions: list[Sequence[float] | None] = []
    orientations: set[tuple[float, ...]] = set()
    refs = []
    segments: list[int | None] = []
    not_preserved = 0
    for item in per_frame:
        identification = _group_item([item, shared], "SegmentIdentificationSequence")
        number = (
            identification.get("ReferencedSegmentNumber") if identification is not None else None
        )
        segments.append(int(number) if number not in (None, "") else None)
        position = _group_item([item, shared], "PlanePositionSequence")
        positions.append(position.get("ImagePositionPatient") if position is not None else None)
        orientation = _group_item([item, shared], "PlaneOrientationSequence")
        if orientation is not None and "ImageOrientationPatient" in orientation:
            orientations.add(tuple(float(v) for v in orientation.ImageOrientationPatient))
        frame_refs = _source_refs(item)
        refs.append(tuple((sop, n) for sop, n, _ in frame_refs))
        if any(p in _NOT_PRESERVED for _, _, p in frame_refs):
            not_preserved += 1
    have_positions = bool(positions) and all(p is not None and len(p) == 3 for p in positions)
    return _Frames(
        positions=np.array(positions, dtype=np.float64) if have_positions else None,
        orientation=np.array(next(iter(orientations))) if len(orientations) == 1 else None,
        refs=tuple(refs),
        not_preserved=not_preserved,
        segments=tuple(segments),
    )


# --------------------------------------------------------------------------------------------
# Decoding (highdicom)


def _syntax_name(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid:
        return "transfer syntax unknown (no file meta)"
    name = UID(str(uid)).name
    return f"transfer syntax {uid}" if name == str(uid) else f"{name} ({uid})"


@contextlib.contextmanager
def _decoding(path: Path, ds: Dataset) -> Iterator[None]:
    """Report any failure of highdicom/pydicom pixel decoding as a DicomReadError."""
    try:
        yield
    except TciaTrialsError:
        raise
    except Exception as exc:  # decoders raise many types; report them all the same way
        raise DicomReadError(
            f"{path}: cannot decode the SEG pixel data ({_syntax_name(ds)}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _open(
    source: str | PathLike[str] | SegDocument,
) -> tuple[SegDocument, Dataset, Callable[[], highdicom.seg.Segmentation], _Frames]:
    """Read a SEG once: document, dataset, the per-frame geometry and references, and a function
    giving highdicom's Segmentation of the same dataset (built on first use only: the fast path
    for uncompressed BINARY SEGs placed by reference does not need it)."""
    path = Path(source.path if isinstance(source, SegDocument) else source)
    with _lenient_reading():
        ds = _read_dataset(path, pixels=True)
        document = source if isinstance(source, SegDocument) else _document(ds, path)
        if "PixelData" not in ds:
            raise AnnotationError(f"{path}: the SEG has no pixel data")
        _check_native_length(ds, path)
        frames = _frames(ds)
    built: list[highdicom.seg.Segmentation] = []

    def segmentation() -> highdicom.seg.Segmentation:
        import highdicom

        if not built:
            with _lenient_reading():
                try:
                    built.append(highdicom.seg.Segmentation.from_dataset(ds, copy=False))
                except Exception as exc:  # highdicom validates many things; say which syntax
                    raise DicomReadError(
                        f"{path}: highdicom cannot read this SEG ({_syntax_name(ds)}): "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
        return built[0]

    return document, ds, segmentation, frames


def _check_native_length(ds: Dataset, path: Path) -> None:
    """A clear error for truncated uncompressed pixel data (decoders report it obscurely)."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or not UID(str(syntax)).is_transfer_syntax or UID(str(syntax)).is_compressed:
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.BitsAllocated) * int(ds.Rows) * int(ds.Columns) * frames
    needed, held = (bits + 7) // 8, len(ds.PixelData)
    if held < needed:
        raise DicomReadError(
            f"{path}: truncated pixel data ({_syntax_name(ds)}): {frames} frame(s) of "
            f"{ds.Rows}x{ds.Columns} at {ds.BitsAllocated} bit(s) need {needed} bytes, the file "
            f"holds {held}"
        )


def _value_dtype(document: SegDocument) -> type:
    return np.float32 if document.segmentation_type == "FRACTIONAL" else np.bool_


def _per_segment(
    document: SegDocument, ds: Dataset, fetch: Callable[[list[int], bool], np.ndarray]
) -> list[np.ndarray]:
    """One contiguous 3D array per segment from a highdicom retrieval ``fetch(numbers, combine)``.

    BINARY/FRACTIONAL: one call per segment (each frame belongs to one segment, so no frame is
    decoded twice, and the arrays come out contiguous).  LABELMAP: one call for the label image,
    compared with each segment number.
    """
    numbers = [s.segment_number for s in document.segments]
    with _decoding(document.path, ds):
        if document.segmentation_type == "LABELMAP":
            labels = _squeeze(fetch(numbers, True))
            return [labels == n for n in numbers]
        return [_squeeze(fetch([n], False)) for n in numbers]


def _squeeze(array: np.ndarray) -> np.ndarray:
    if array.ndim == 4 and array.shape[3] == 1:
        array = array.reshape(array.shape[:3])
    if array.ndim != 3:
        raise ValueError(f"expected a (slices, rows, columns) array, got shape {array.shape}")
    return array


def _own_grid(
    document: SegDocument,
    ds: Dataset,
    seg: highdicom.seg.Segmentation,
    *,
    contiguous: bool = True,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The SEG's values on its own regular grid: one ``(k, j, i)`` array per segment, and the
    4x4 affine.  Slices ascend along the normal; highdicom may return them the other way round,
    and they are then reversed (copied when ``contiguous``, else reversed views)."""
    path = document.path
    try:
        grid = seg.get_volume_geometry(allow_missing_positions=True)
        reason = "irregular plane positions"
    except (RuntimeError, ValueError) as exc:
        grid, reason = None, str(exc)
    if grid is None:
        raise _IrregularFramesError(
            f"{path}: the SEG frames do not form one regular grid ({reason}); they can only be "
            "placed on an image volume by SOPInstanceUID reference"
        )

    affines: list[np.ndarray] = []

    def fetch(numbers: list[int], combine: bool) -> np.ndarray:
        volume = seg.get_volume(
            segment_numbers=numbers,
            combine_segments=combine,
            dtype=None if combine else _value_dtype(document),
            rescale_fractional=True,
            skip_overlap_checks=True,
            allow_missing_positions=True,
        )
        affines.append(np.asarray(volume.affine, dtype=np.float64))
        return volume.array

    values = _per_segment(document, ds, fetch)
    affine = affines[0].copy()
    if not all(np.allclose(a, affine) for a in affines) or not np.allclose(affine, grid.affine):
        raise AnnotationError(f"{path}: highdicom assembled the segments on different grids")
    normal = np.cross(affine[:3, 2], affine[:3, 1])
    if float(affine[:3, 0] @ normal) < 0:
        affine[:3, 3] += affine[:3, 0] * (values[0].shape[0] - 1)
        affine[:3, 0] = 0.0 - affine[:3, 0]
        values = [np.ascontiguousarray(v[::-1]) if contiguous else v[::-1] for v in values]
    return values, affine


def _split(
    values: list[np.ndarray], document: SegDocument, threshold: float
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray] | None]:
    """Per-segment values -> bool masks (and float32 fractions for FRACTIONAL)."""
    numbers = [s.segment_number for s in document.segments]
    if document.segmentation_type != "FRACTIONAL":
        return {n: v.astype(bool, copy=False) for n, v in zip(numbers, values, strict=True)}, None
    fractions = {n: v.astype(np.float32, copy=False) for n, v in zip(numbers, values, strict=True)}
    return {n: f >= threshold for n, f in fractions.items()}, fractions


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")


def seg_masks_own_grid(
    source: str | PathLike[str] | SegDocument, *, threshold: float = 0.5
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Decode a SEG's masks on its own grid (no image series needed).

    Parameters
    ----------
    source:
        A SEG file or its :class:`SegDocument`.
    threshold:
        FRACTIONAL SEGs: a voxel is inside when ``stored / MaximumFractionalValue >= threshold``.

    Returns
    -------
    masks:
        ``segment_number -> bool array (k, j, i)`` spanning the SEG's frames (sparse SEGs: the
        planes between stored frames are empty), one full array per segment.
    affine:
        4x4 matrix mapping ``[k, j, i, 1]`` to LPS mm; slices ascend along the normal.  The voxel
        volume in ml is ``abs(numpy.linalg.det(affine[:3, :3])) / 1000``.  For frames at
        irregular positions, ``k`` indexes the stored planes and only plane 0 lies where the
        affine puts it (see :class:`SegOwnGrid`; :func:`read_seg_own_grid` gives the planes'
        positions and flags).

    Raises
    ------
    DicomReadError
        The file cannot be parsed or its pixel data cannot be decoded.
    AnnotationError
        Not a SEG; frames at irregular positions without plane positions, one shared
        orientation or a slice thickness (the voxel volume is then unknown).
    """
    own = read_seg_own_grid(source, threshold=threshold)
    if own.voxel_thickness_mm is None:
        path = source.path if isinstance(source, SegDocument) else source
        raise AnnotationError(f"{path}: {own.flags[-1]}")
    return own.masks, own.affine


def read_seg_own_grid(
    source: str | PathLike[str] | SegDocument, *, threshold: float = 0.5
) -> SegOwnGrid:
    """Decode a SEG's masks in its own geometry: its regular grid, or, when its stored frames
    lie at irregular positions (sparse SEGs storing only the lesion frames), frame by frame onto
    the stack of its stored planes (see :class:`SegOwnGrid`).

    Raises
    ------
    DicomReadError
        The file cannot be parsed or its pixel data cannot be decoded.
    AnnotationError
        Not a SEG, or irregular frames without a plane position for every frame, one shared
        orientation, or one in-plane origin.
    """
    _check_threshold(threshold)
    document, ds, segmentation, frames = _open(source)
    seg = segmentation()
    try:
        values, affine = _own_grid(document, ds, seg)
    except _IrregularFramesError as exc:
        return _stacked_planes(document, ds, seg, frames, threshold, exc)
    masks, _ = _split(values, document, threshold)
    step = float(np.linalg.norm(affine[:3, 0]))
    return SegOwnGrid(masks, affine, None, step, "plane spacing")


def _stacked_planes(
    document: SegDocument,
    ds: Dataset,
    seg: highdicom.seg.Segmentation,
    frames: _Frames,
    threshold: float,
    irregular: AnnotationError,
) -> SegOwnGrid:
    """Frames at irregular positions, read one by one onto the stack of their distinct planes
    (ascending along the normal)."""
    if frames.positions is None or frames.orientation is None:
        raise AnnotationError(
            f"{irregular}; without a plane position for every frame and one shared orientation "
            "they cannot be stacked either"
        )
    row, col, normal = geometry.orientation_axes(frames.orientation)
    measures = _pixel_measures(ds, document.path)
    dy, dx = (float(v) for v in measures.PixelSpacing)
    heights = frames.positions @ normal
    in_plane = frames.positions - np.outer(heights, normal)
    shift = float(np.abs(in_plane - in_plane[0]).max())
    if shift > max(IN_PLANE_ATOL_PX * min(dy, dx), PLANE_ATOL_MM):
        raise AnnotationError(
            f"{irregular}; its frames are also shifted in-plane against each other (by up to "
            f"{shift:.3f} mm), so they are not one stack of planes"
        )
    planes, plane_of_frame = _distinct_planes(heights)
    values = _frame_values(document, ds, seg, frames, plane_of_frame, len(planes))
    masks, _ = _split(values, document, threshold)
    thickness, source = _voxel_thickness(measures)
    origin = in_plane[0] + planes[0] * normal
    spacing = [thickness if thickness is not None else np.nan, dy, dx]
    affine = geometry.affine_matrix(origin, np.array(spacing), np.column_stack([normal, col, row]))
    listed = _listing([f"{h:.2f}" for h in planes])
    flags = [
        f"irregular-frames: {len(planes)} stored planes at irregular positions ({listed} mm "
        "along the normal); volumes count voxels of the stored frames"
    ]
    if thickness is None:
        flags.append(
            "voxel-thickness-unknown: frames at irregular positions and neither "
            "SpacingBetweenSlices nor SliceThickness, so the voxel volume is unknown"
        )
    else:
        flags[0] += f", each PixelSpacing x {source} ({thickness:g} mm)"
    return SegOwnGrid(masks, affine, planes, thickness, source, tuple(flags))


def _pixel_measures(ds: Dataset, path: Path) -> Dataset:
    """The SEG's Pixel Measures (shared, else the first frame's)."""
    per_frame, shared = _per_frame_groups(ds)
    measures = _group_item([shared, per_frame[0] if per_frame else None], "PixelMeasuresSequence")
    if measures is None or len(measures.get("PixelSpacing") or ()) != 2:
        raise AnnotationError(f"{path}: the SEG has no PixelSpacing in its Pixel Measures")
    return measures


def _voxel_thickness(measures: Dataset) -> tuple[float | None, str]:
    """The voxel extent along the normal of frames at irregular positions, and its source."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = measures.get(keyword)
        if value not in (None, "") and float(value) > 0:
            return float(value), keyword
    return None, "unknown"


def _distinct_planes(heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct plane heights (ascending; within :data:`PLANE_ATOL_MM` they are one plane)
    and the plane index of every frame."""
    order = np.argsort(heights, kind="stable")
    starts = np.concatenate([[True], np.diff(heights[order]) > PLANE_ATOL_MM])
    plane_of_frame = np.empty(len(heights), dtype=np.intp)
    plane_of_frame[order] = np.cumsum(starts) - 1
    return heights[order][starts], plane_of_frame


def _frame_values(
    document: SegDocument,
    ds: Dataset,
    seg: highdicom.seg.Segmentation,
    frames: _Frames,
    plane_of_frame: np.ndarray,
    n_planes: int,
) -> list[np.ndarray]:
    """One ``(plane, row, column)`` array per segment from the stored frames, one at a time:
    bool for BINARY and LABELMAP, float32 fractions in ``[0, 1]`` for FRACTIONAL."""
    numbers = [s.segment_number for s in document.segments]
    shape = (n_planes, int(ds.Rows), int(ds.Columns))
    values = [np.zeros(shape, dtype=_value_dtype(document)) for _ in numbers]
    kind = document.segmentation_type
    maximum = float(ds.get("MaximumFractionalValue") or 1)
    with _decoding(document.path, ds):
        for index, plane in enumerate(plane_of_frame):
            stored = seg.get_stored_frame(index + 1)
            if kind == "LABELMAP":
                for value, number in zip(values, numbers, strict=True):
                    value[plane] |= stored == number
                continue
            number = frames.segments[index]
            if number not in numbers:
                named = "no segment" if number is None else f"segment {number}"
                raise AnnotationError(
                    f"{document.path}: frame {index + 1} names {named}, not one of the SEG's "
                    f"segments ({_listing(numbers)})"
                )
            value = values[numbers.index(number)]
            if kind == "FRACTIONAL":
                np.maximum(value[plane], stored / maximum, out=value[plane])
            else:
                value[plane] |= stored.astype(bool)
    return values


# --------------------------------------------------------------------------------------------
# Placement on an image volume


def seg_masks_on_volume(
    source: str | PathLike[str] | SegDocument, volume: Volume, *, threshold: float = 0.5
) -> SegOnGrid:
    """Put a SEG's masks on the grid of an image volume.

    Parameters
    ----------
    source:
        A SEG file or its :class:`SegDocument`.
    volume:
        The image volume; masks get its shape ``(k, j, i)``.
    threshold:
        FRACTIONAL SEGs: inside when the fraction (``stored / MaximumFractionalValue``, resampled
        by nearest neighbour when the grids differ) is ``>= threshold``.

    Returns
    -------
    SegOnGrid
        One bool mask per segment, fractions for FRACTIONAL SEGs, and flags (see the module
        documentation for the placement rules and flag codes).

    Raises
    ------
    MissingReferenceError
        The SEG references another series in another frame of reference, or its frames can be
        placed neither by reference nor by geometry.
    DicomReadError
        The file cannot be parsed or its pixel data cannot be decoded.
    AnnotationError
        Not a SEG, or geometry is needed and its frames do not form one regular grid.
    """
    _check_threshold(threshold)
    document, ds, segmentation, frames = _open(source)
    flags = _check_reference(document, frames, volume)
    slices, mismatch = _reference_slices(frames, volume, int(ds.Rows), int(ds.Columns))
    if mismatch:
        flags.append(mismatch)
    if slices is not None:
        placed = _native_binary_by_reference(document, ds, frames, slices, volume)
        if placed is None:
            placed = _by_reference(document, ds, segmentation(), volume)
        if placed is not None:
            masks, fractions = _split(placed, document, threshold)
            return SegOnGrid(masks, fractions, False, tuple(flags), "reference", document)
    if frames.positions is None or document.frame_of_reference_uid is None:
        missing = "plane positions" if frames.positions is None else "frame of reference"
        raise MissingReferenceError(
            f"{document.path}: its frames cannot be placed on series {volume.series_uid}: not "
            f"every frame references a slice of the volume, and the SEG has no {missing} to "
            f"place them by geometry (it references "
            f"{_listing(document.referenced_series_uids) or 'no series'})"
        )
    values, own_affine = _own_grid(document, ds, segmentation(), contiguous=False)
    annotated = _annotated(values, document, threshold)
    placed, resampled, geometry_flags = _by_geometry(
        values, annotated, own_affine, frames, volume, document
    )
    flags.extend(geometry_flags)
    masks, fractions = _split(placed, document, threshold)
    if resampled:
        flags.extend(_resampling_summary(values, annotated, own_affine, masks, volume, document))
    return SegOnGrid(
        masks,
        fractions,
        resampled,
        tuple(flags),
        "resampled" if resampled else "geometry",
        document,
    )


def _listing(values: Sequence[object]) -> str:
    shown = ", ".join(str(v) for v in values[:FLAG_LIST_LIMIT])
    more = len(values) - FLAG_LIST_LIMIT
    return f"{shown} and {more} more" if more > 0 else shown


def _check_reference(document: SegDocument, frames: _Frames, volume: Volume) -> list[str]:
    """Does the SEG belong on this volume?  Flags, or MissingReferenceError."""
    volume_sops = set(volume.sop_instance_uids)
    referenced = set(document.referenced_sop_instance_uids)
    referenced.update(sop for refs in frames.refs for sop, _ in refs)
    series_ok = volume.series_uid in document.referenced_series_uids or bool(
        referenced & volume_sops
    )
    seg_frame, vol_frame = document.frame_of_reference_uid, volume.frame_of_reference_uid
    known = seg_frame is not None and vol_frame is not None
    refs = _listing(document.referenced_series_uids) or "no series"
    if series_ok:
        if known and seg_frame != vol_frame:
            return [
                f"frame-of-reference-mismatch: the SEG references series {volume.series_uid} but "
                f"names frame of reference {seg_frame}, the volume {vol_frame}; frames are "
                "placed by SOPInstanceUID reference when possible, else by their positions"
            ]
        return []
    if known and seg_frame != vol_frame:
        raise MissingReferenceError(
            f"{document.path}: the SEG references series {refs} in frame of reference "
            f"{seg_frame}, but the volume is series {volume.series_uid} in frame of reference "
            f"{vol_frame}; its masks cannot be placed on this volume"
        )
    if not document.referenced_series_uids and not referenced:
        return [
            f"no-reference: the SEG references no image series or instance; frames are placed "
            f"by geometry in frame of reference {seg_frame or 'none'}"
        ]
    if known:
        return [
            f"other-series: the SEG references series {refs}, not the volume's series "
            f"{volume.series_uid}; same frame of reference {vol_frame}, frames are placed by "
            "geometry"
        ]
    return [
        f"unverified-reference: the SEG references series {refs}, not the volume's series "
        f"{volume.series_uid}, and a frame of reference is missing ({seg_frame or 'none'} vs "
        f"{vol_frame or 'none'}); frames are placed by geometry"
    ]


def _plane_tolerance(volume: Volume) -> float:
    """Tolerance on the slice coordinate ``k`` (in slices) for "on an image plane"."""
    return max(PLANE_RTOL, PLANE_ATOL_MM / float(volume.spacing[0]))


def _in_plane_tolerance(volume: Volume) -> float:
    """Tolerance (pixels) on in-plane offsets."""
    return max(IN_PLANE_ATOL_PX, PLANE_ATOL_MM / float(min(volume.spacing[1:])))


def _reference_slices(
    frames: _Frames, volume: Volume, rows: int, cols: int
) -> tuple[np.ndarray | None, str | None]:
    """Slice ``k`` of every SEG frame by SOPInstanceUID reference, or None (and maybe a flag)."""
    if not volume.sop_instance_uids or not frames.refs:
        return None, None
    numbers = volume.frame_numbers or (1,) * len(volume.sop_instance_uids)
    frames_per_sop: dict[str, int] = {}
    for sop in volume.sop_instance_uids:
        frames_per_sop[sop] = frames_per_sop.get(sop, 0) + 1
    lookup: dict[tuple[str, int | None], int] = {}
    for k, (sop, number) in enumerate(zip(volume.sop_instance_uids, numbers, strict=True)):
        lookup[(sop, int(number))] = k
        if frames_per_sop[sop] == 1:
            lookup[(sop, None)] = k
    slices = np.empty(len(frames.refs), dtype=np.intp)
    for n, refs in enumerate(frames.refs):
        found = {lookup[r] for r in refs if r in lookup}
        if len(found) != 1:
            return None, None
        slices[n] = found.pop()
    if frames.not_preserved or (rows, cols) != volume.shape[1:]:
        return None, None
    if frames.positions is not None:
        index = geometry.lps_to_index(volume.affine, frames.positions)
        off_plane = np.abs(index[:, 0] - slices)
        in_plane = np.abs(index[:, 1:]).max(axis=1)
        bad = np.flatnonzero(
            (off_plane > _plane_tolerance(volume)) | (in_plane > _in_plane_tolerance(volume))
        )
        if bad.size:
            origins = np.zeros((bad.size, 3))
            origins[:, 0] = slices[bad]
            distance = np.linalg.norm(
                frames.positions[bad] - geometry.index_to_lps(volume.affine, origins), axis=1
            )
            return None, (
                f"reference-geometry-mismatch: {bad.size} of {len(slices)} SEG frames reference "
                f"image slices their plane positions are not on (up to {distance.max():.3f} mm "
                "away); placed by geometry"
            )
    if frames.orientation is not None and not _same_orientation(frames.orientation, volume):
        return None, (
            "reference-geometry-mismatch: the SEG frames reference image slices but have another "
            f"orientation ({[round(float(v), 6) for v in frames.orientation]}); placed by "
            "geometry"
        )
    return slices, None


def _same_orientation(orientation: np.ndarray, volume: Volume) -> bool:
    direction = volume.direction
    return geometry.same_orientation(
        orientation, np.concatenate([direction[:, 2], direction[:, 1]])
    )


def _by_reference(
    document: SegDocument, ds: Dataset, seg: highdicom.seg.Segmentation, volume: Volume
) -> list[np.ndarray] | None:
    """highdicom's placement by source instance/frame, one ``(k, j, i)`` array per segment."""
    sops = list(volume.sop_instance_uids)
    numbers = list(volume.frame_numbers or (1,) * len(sops))
    if len(set(sops)) == len(sops) and all(n == 1 for n in numbers):

        def fetch(segments: list[int], combine: bool) -> np.ndarray:
            return seg.get_pixels_by_source_instance(
                sops, segments, combine_segments=combine, **_options(document, combine)
            )

    elif len(set(sops)) == 1:

        def fetch(segments: list[int], combine: bool) -> np.ndarray:
            return seg.get_pixels_by_source_frame(
                sops[0], numbers, segments, combine_segments=combine, **_options(document, combine)
            )

    else:
        return None  # slices from several multi-frame instances: place by geometry
    return _per_segment(document, ds, fetch)


def _native_binary_by_reference(
    document: SegDocument, ds: Dataset, frames: _Frames, slices: np.ndarray, volume: Volume
) -> list[np.ndarray] | None:
    """Uncompressed BINARY SEGs whose frames all reference volume slices: unpack the frames'
    bits with numpy straight onto the grid (what highdicom's ``get_pixels_by_source_instance``
    gives, checked in the tests, without building its frame index).  None when not applicable."""
    meta = getattr(ds, "file_meta", Dataset())
    syntax = meta.get("TransferSyntaxUID")
    if (
        document.segmentation_type != "BINARY"
        or int(ds.get("BitsAllocated", 0)) != 1
        or syntax is None
        or not UID(str(syntax)).is_transfer_syntax
        or UID(str(syntax)).is_compressed
        or not UID(str(syntax)).is_little_endian
        or len(frames.segments) != len(slices)
        or any(number is None for number in frames.segments)
    ):
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    count = len(slices)
    bits = np.frombuffer(ds.PixelData, dtype=np.uint8)
    pixels = np.unpackbits(bits, bitorder="little", count=count * rows * cols).reshape(
        count, rows, cols
    )
    masks = []
    for segment in document.segments:
        mask = np.zeros(volume.shape, dtype=bool)
        for n in np.flatnonzero(np.asarray(frames.segments) == segment.segment_number):
            mask[slices[n]] |= pixels[n].astype(bool)
        masks.append(mask)
    return masks


def _options(document: SegDocument, combine: bool) -> dict[str, object]:
    return {
        "assert_missing_frames_are_empty": True,
        "ignore_spatial_locations": True,  # checked in _reference_slices
        "rescale_fractional": True,
        "skip_overlap_checks": True,
        "dtype": None if combine else _value_dtype(document),
    }


def _annotated(
    values: list[np.ndarray], document: SegDocument, threshold: float
) -> list[np.ndarray]:
    if document.segmentation_type == "FRACTIONAL":
        return [v >= threshold for v in values]
    return [v.astype(bool, copy=False) for v in values]


def _by_geometry(
    values: list[np.ndarray],
    annotated: list[np.ndarray],
    own_affine: np.ndarray,
    frames: _Frames,
    volume: Volume,
    document: SegDocument,
) -> tuple[list[np.ndarray], bool, list[str]]:
    """Own-grid values -> image grid, by copying planes or by nearest-neighbour resampling."""
    own_to_image = np.linalg.inv(volume.affine) @ own_affine
    own_shape = values[0].shape
    annotated_planes = np.any([a.any(axis=(1, 2)) for a in annotated], axis=0)
    plane_k = own_to_image[0, 3] + own_to_image[0, 0] * np.arange(own_shape[0])
    offset = _in_plane_offset(own_to_image, own_shape, volume)
    frame_k = (
        geometry.lps_to_index(volume.affine, frames.positions)[:, 0]
        if frames.positions is not None
        else plane_k[annotated_planes]
    )
    off_plane = np.abs(plane_k - np.rint(plane_k))
    between = annotated_planes & (off_plane > _plane_tolerance(volume))
    flags: list[str] = []
    if offset is not None and not between.any():
        placed, lost_planes, lost_in_plane = _copy_planes(
            values, annotated, annotated_planes, plane_k, offset, volume
        )
        flags.extend(_outside_flags(frame_k, lost_planes, lost_in_plane, volume, document, True))
        return placed, False, flags
    parallel = _parallel(own_to_image, own_shape, volume)
    if parallel and between.any():
        flags.append(
            f"frames-between-slices: {int(between.sum())} annotated SEG planes lie between image "
            f"slices (up to {off_plane[between].max() * volume.spacing[0]:.3f} mm off-plane; "
            f"slice spacing {volume.spacing[0]:.3f} mm); the SEG is resampled"
        )
    placed = _resample_nearest(values, own_to_image, volume)
    lost = _lost_outside(annotated, own_to_image, volume)
    if not parallel:
        frame_k = frame_k[:0]  # oblique planes: only voxel counts are meaningful
    flags.extend(_outside_flags(frame_k, lost, np.zeros_like(lost), volume, document, False))
    return placed, True, flags


def _parallel(own_to_image: np.ndarray, own_shape: tuple[int, ...], volume: Volume) -> bool:
    """True when the own-grid planes are parallel to the image slices."""
    _, rows, cols = own_shape
    tilt = abs(own_to_image[0, 1]) * max(rows - 1, 1) + abs(own_to_image[0, 2]) * max(cols - 1, 1)
    return bool(tilt <= _plane_tolerance(volume))


def _in_plane_offset(
    own_to_image: np.ndarray, own_shape: tuple[int, ...], volume: Volume
) -> tuple[int, int] | None:
    """Whole-pixel (row, column) offset of the own grid on the image grid, or None.

    None when the own grid's planes are not parallel to the image's, or its rows and columns do
    not lie on the image's (another orientation, pixel spacing, or a fractional offset).
    """
    n_slices, rows, cols = own_shape
    if not _parallel(own_to_image, own_shape, volume):
        return None
    tol = _in_plane_tolerance(volume)
    row_error = np.abs(own_to_image[1:3, 1] - [1, 0]) * max(rows - 1, 1)
    col_error = np.abs(own_to_image[1:3, 2] - [0, 1]) * max(cols - 1, 1)
    drift = np.abs(own_to_image[1:3, 0]) * max(n_slices - 1, 1)
    if np.any(row_error + col_error + drift > tol):
        return None
    shift = own_to_image[1:3, 3]
    whole = np.rint(shift)
    if np.any(np.abs(shift - whole) > tol):
        return None
    return int(whole[0]), int(whole[1])


def _copy_planes(
    values: list[np.ndarray],
    annotated: list[np.ndarray],
    annotated_planes: np.ndarray,
    plane_k: np.ndarray,
    offset: tuple[int, int],
    volume: Volume,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Copy the annotated own-grid planes onto the image slices they lie on (no interpolation).

    Returns the per-segment ``(k, j, i)`` values and, per segment, the annotated voxels lost on
    planes outside the volume and outside its rows/columns.
    """
    n_slices, rows, cols = volume.shape
    own_rows, own_cols = values[0].shape[1:]
    target = np.rint(plane_k).astype(np.intp)
    source = np.flatnonzero(annotated_planes & (target >= 0) & (target < n_slices))
    tj, ti = offset
    sj0, sj1 = max(0, -tj), min(own_rows, rows - tj)
    si0, si1 = max(0, -ti), min(own_cols, cols - ti)
    placed = []
    lost_planes = np.zeros(len(values), dtype=np.int64)
    lost_in_plane = np.zeros(len(values), dtype=np.int64)
    for channel, (value, inside) in enumerate(zip(values, annotated, strict=True)):
        out = np.zeros(volume.shape, dtype=value.dtype)
        total = int(np.count_nonzero(inside))
        on_planes = int(np.count_nonzero(inside[source]))
        kept = 0
        if source.size and sj1 > sj0 and si1 > si0:
            window = (source, slice(sj0, sj1), slice(si0, si1))
            out[target[source], sj0 + tj : sj1 + tj, si0 + ti : si1 + ti] = value[window]
            kept = int(np.count_nonzero(inside[window]))
        placed.append(out)
        lost_planes[channel] = total - on_planes
        lost_in_plane[channel] = on_planes - kept
    return placed, lost_planes, lost_in_plane


def _lost_text(counts: np.ndarray, document: SegDocument) -> str:
    per_segment = ", ".join(
        f"segment {s.segment_number}: {int(c)}"
        for s, c in zip(document.segments, counts, strict=True)
        if c
    )
    return f"{int(counts.sum())} annotated voxels ({per_segment})"


def _outside_flags(
    frame_k: np.ndarray,
    lost_planes: np.ndarray,
    lost_in_plane: np.ndarray,
    volume: Volume,
    document: SegDocument,
    on_planes: bool,
) -> list[str]:
    """The ``frames-outside-volume`` and ``voxels-outside-volume`` flags."""
    n_slices = volume.shape[0]
    if on_planes:
        k = np.rint(frame_k)
        outside = (k < 0) | (k > n_slices - 1)
    else:
        outside = (frame_k < -0.5) | (frame_k > n_slices - 0.5)
    flags = []
    if outside.any():
        where = _listing([f"{v:.2f}" for v in sorted(set(np.round(frame_k[outside], 2)))])
        loss = (
            f"{_lost_text(lost_planes, document)} are lost"
            if lost_planes.any()
            else "they hold no annotated voxels"
        )
        flags.append(
            f"frames-outside-volume: {int(outside.sum())} of {len(frame_k)} SEG frames lie "
            f"outside the image volume of {n_slices} slices (at slice coordinate {where}); {loss}"
        )
    elif lost_planes.any():
        flags.append(
            f"voxels-outside-volume: {_lost_text(lost_planes, document)} lie outside the image "
            "volume and are lost"
        )
    if lost_in_plane.any():
        flags.append(
            f"voxels-outside-volume: {_lost_text(lost_in_plane, document)} lie outside the "
            f"image's {volume.shape[1]} rows x {volume.shape[2]} columns and are lost"
        )
    return flags


#: Nearest neighbour: an image voxel centre within this fraction of a SEG voxel of a boundary
#: between two SEG voxels goes to the one with the higher (ascending) index, whatever the
#: rounding error of the coordinate transform.
TIE_ATOL_VOXELS = 1e-6
#: Off-diagonal terms of the image-to-SEG index map smaller than this (in SEG voxels over the
#: resampled box) are ignored, so axis-aligned grids are resampled axis by axis.
SEPARABLE_ATOL_VOXELS = 1e-6


def _resample_nearest(
    values: list[np.ndarray], own_to_image: np.ndarray, volume: Volume
) -> list[np.ndarray]:
    """Nearest-neighbour resampling of per-segment own-grid values onto the image grid.

    Each image voxel centre takes the value of the own-grid voxel containing it (own-grid index
    rounded half up).  Only the image box covering the non-zero own-grid voxels is computed:
    axis by axis when the grids' axes are parallel, else one image slice at a time.
    """
    placed = [np.zeros(volume.shape, dtype=v.dtype) for v in values]
    extent = []
    for other in ((1, 2), (0, 2), (0, 1)):
        projection = np.any([v.any(axis=other) for v in values], axis=0)
        extent.append(np.flatnonzero(projection))
    if not extent[0].size:
        return placed
    low = np.array([e[0] for e in extent]) - 0.5
    high = np.array([e[-1] for e in extent]) + 0.5
    corners = np.array(np.meshgrid(*zip(low, high, strict=True), indexing="ij")).reshape(3, -1).T
    image_corners = corners @ own_to_image[:3, :3].T + own_to_image[:3, 3]
    lo = np.maximum(np.floor(image_corners.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(image_corners.max(axis=0)).astype(int), np.array(volume.shape) - 1)
    if np.any(hi < lo):
        return placed
    image_to_own = np.linalg.inv(own_to_image)
    linear = image_to_own[:3, :3]
    off_diagonal = np.abs(linear - np.diag(np.diag(linear))) @ (hi - lo + 1)
    if np.all(off_diagonal < SEPARABLE_ATOL_VOXELS):
        _resample_separable(values, placed, image_to_own, lo, hi)
    else:
        _resample_by_slice(values, placed, image_to_own, lo, hi)
    return placed


def _resample_separable(
    values: list[np.ndarray],
    placed: list[np.ndarray],
    image_to_own: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """Axis-aligned grids: the nearest own index along each axis depends on that axis only.

    The image indices whose own index is inside the own grid form one interval per axis (the map
    is monotonic), so the result is a box gathered axis by axis with ``numpy.take``.
    """
    own_shape = values[0].shape
    target, own_axes = [], []
    for a in range(3):
        image_index = np.arange(lo[a], hi[a] + 1)
        own_index = np.floor(
            image_to_own[a, a] * image_index + image_to_own[a, 3] + 0.5 + TIE_ATOL_VOXELS
        )
        valid = np.flatnonzero((own_index >= 0) & (own_index < own_shape[a]))
        if not valid.size:
            return
        target.append(slice(int(image_index[valid[0]]), int(image_index[valid[-1]]) + 1))
        own_axes.append(own_index[valid].astype(np.intp))
    for value, out in zip(values, placed, strict=True):
        box = value
        for a, index in enumerate(own_axes):
            box = np.take(box, index, axis=a)
        out[tuple(target)] = box


def _resample_by_slice(
    values: list[np.ndarray],
    placed: list[np.ndarray],
    image_to_own: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> None:
    """General (oblique, sheared) grids: own indices of every image voxel centre, slice by slice."""
    jj, ii = np.meshgrid(
        np.arange(lo[1], hi[1] + 1, dtype=np.float64),
        np.arange(lo[2], hi[2] + 1, dtype=np.float64),
        indexing="ij",
    )
    in_plane = [
        image_to_own[a, 1] * jj + image_to_own[a, 2] * ii + image_to_own[a, 3] for a in range(3)
    ]
    own_shape = values[0].shape
    for k in range(lo[0], hi[0] + 1):
        index = [
            np.floor(in_plane[a] + (image_to_own[a, 0] * k + 0.5 + TIE_ATOL_VOXELS)).astype(np.intp)
            for a in range(3)
        ]
        valid = np.ones(jj.shape, dtype=bool)
        for a in range(3):
            valid &= (index[a] >= 0) & (index[a] < own_shape[a])
        if not valid.any():
            continue
        source = (index[0][valid], index[1][valid], index[2][valid])
        for value, out in zip(values, placed, strict=True):
            out[k, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1][valid] = value[source]


def _lost_outside(
    annotated: list[np.ndarray], own_to_image: np.ndarray, volume: Volume
) -> np.ndarray:
    """Per segment: annotated own-grid voxels whose centres lie outside the image volume.

    Axis-aligned grids: the own voxels inside form a box (one interval per axis).  Otherwise one
    own-grid slice at a time (bounded memory for organ-sized segments).
    """
    upper = np.array(volume.shape, dtype=np.float64) - 0.5
    counts = np.zeros(len(annotated), dtype=np.int64)
    linear = own_to_image[:3, :3]
    off_diagonal = np.abs(linear - np.diag(np.diag(linear))) @ np.array(annotated[0].shape)
    if np.all(off_diagonal < SEPARABLE_ATOL_VOXELS):
        box = []
        for a in range(3):
            centre = linear[a, a] * np.arange(annotated[0].shape[a]) + own_to_image[a, 3]
            inside = np.flatnonzero((centre >= -0.5) & (centre <= upper[a]))
            box.append(slice(inside[0], inside[-1] + 1) if inside.size else slice(0, 0))
        for channel, mask in enumerate(annotated):
            counts[channel] = np.count_nonzero(mask) - np.count_nonzero(mask[tuple(box)])
        return counts
    for channel, mask in enumerate(annotated):
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            j, i = np.nonzero(mask[k])
            index = (
                np.outer(j, own_to_image[:3, 1])
                + np.outer(i, own_to_image[:3, 2])
                + (own_to_image[:3, 0] * k + own_to_image[:3, 3])
            )
            counts[channel] += np.count_nonzero(np.any((index < -0.5) | (index > upper), axis=1))
    return counts


def _resampling_summary(
    values: list[np.ndarray],
    annotated: list[np.ndarray],
    own_affine: np.ndarray,
    masks: dict[int, np.ndarray],
    volume: Volume,
    document: SegDocument,
) -> list[str]:
    """The ``resampled`` flag (grids and per-segment volumes) and ``empty-after-resampling``."""
    own_ml = abs(float(np.linalg.det(own_affine[:3, :3]))) / 1000
    image_ml = abs(float(np.linalg.det(volume.affine[:3, :3]))) / 1000
    parts = []
    empty = []
    for segment, inside in zip(document.segments, annotated, strict=True):
        own_count = int(np.count_nonzero(inside))
        image_count = int(np.count_nonzero(masks[segment.segment_number]))
        parts.append(
            f"segment {segment.segment_number}: {own_count} SEG voxels "
            f"({own_count * own_ml:.3f} ml) -> {image_count} image voxels "
            f"({image_count * image_ml:.3f} ml)"
        )
        if own_count and not image_count:
            empty.append(segment.segment_number)
    spacing = np.linalg.norm(own_affine[:3, :3], axis=0)
    flags = [
        f"resampled: the SEG grid {'x'.join(str(n) for n in values[0].shape)} (spacing "
        f"{', '.join(f'{s:.3f}' for s in spacing)} mm) is not on the image grid "
        f"{'x'.join(str(n) for n in volume.shape)} (spacing "
        f"{', '.join(f'{s:.3f}' for s in volume.spacing)} mm); nearest neighbour by geometry; "
        + "; ".join(parts)
    ]
    if empty:
        flags.append(
            f"empty-after-resampling: segment(s) {_listing(empty)} have annotated SEG voxels but "
            "no image voxel centre falls inside them"
        )
    return flags
