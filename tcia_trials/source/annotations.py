"""Annotations of an image series: SEG, RTSTRUCT and SR objects become lesions on its grid.

Every part of an annotation object (ROI, segment, SR measurement group) is first turned into a
:class:`~tcia_trials.source.identity.Piece` (a mask, a seed point, measurements), or recorded as
skipped with the reason; an explicit "no findings" is noted.  Pieces become lesions by the
identity rule of :mod:`tcia_trials.source.identity` (the collection's
:class:`~tcia_trials.spec.AnnotationRules` say how labels are read from series descriptions), and
lesions are measured once, on the image grid when there is one.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from os import PathLike
from pathlib import Path

import numpy as np
import pydicom

from tcia_trials.errors import AnnotationError, DicomReadError, SeriesNotFoundError, TciaTrialsError
from tcia_trials.source import geometry
from tcia_trials.source import lesions as measure
from tcia_trials.source.identity import Piece, group_pieces, lesion_ids, natural_key
from tcia_trials.source.index import Index, Series
from tcia_trials.source.lesions import Lesion
from tcia_trials.source.rtstruct import (
    AREA_TYPES,
    RtStructDocument,
    rasterize_roi,
    read_rtstruct,
    seed_points,
)
from tcia_trials.source.seed_table import SeedRow
from tcia_trials.source.seg import (
    SegDocument,
    SegOnGrid,
    read_seg_document,
    read_seg_own_grid,
    seg_masks_on_volume,
)
from tcia_trials.source.sr import SrDocument, read_sr
from tcia_trials.source.volume import Volume, read_volume
from tcia_trials.spec import AnnotationRules, LabelSpec

ANNOTATION_MODALITIES = ("SEG", "RTSTRUCT", "SR")
Document = SegDocument | RtStructDocument | SrDocument
#: Seed points from two sources further apart than this (mm) are flagged.
SEED_AGREEMENT_MM = 1.0


@dataclass(frozen=True)
class AnnotationSource:
    """One annotation series and what became of it."""

    series_uid: str
    modality: str
    description: str
    status: str  # "used" | "skipped"
    reason: str | None = None


@dataclass(frozen=True, eq=False)
class Annotations:
    """The annotations of one image series, on its grid.

    ``lesions[n].mask`` holds each lesion's full mask, so overlapping lesions lose no voxel.
    :attr:`label_map` gives the masks as one label image (lesion ``n`` -> label ``n + 1``) when
    no voxel belongs to two lesions, and is ``None`` otherwise; :meth:`bitmask` is lossless in
    every case (lesion ``n`` -> bit ``n``).  :attr:`skipped` holds ``(origin, why)`` for every part
    of the input (ROI, segment, SR group) that became no lesion, e.g. an empty ROI.
    """

    series_uid: str
    shape: tuple[int, int, int] | None  # None when read without the images
    affine: np.ndarray | None
    lesions: tuple[Lesion, ...]
    no_findings: bool
    sources: tuple[AnnotationSource, ...]
    problems: tuple[str, ...] = field(default=())
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def lesion_count(self) -> int:
        return len(self.lesions)

    @property
    def total_volume_ml(self) -> float:
        """Total tumour burden: the sum of the lesions' mask volumes (mL)."""
        return float(sum(lesion.volume_ml or 0.0 for lesion in self.lesions))

    @cached_property
    def overlaps(self) -> bool:
        masks = [lesion.mask for lesion in self.lesions if lesion.mask is not None]
        if len(masks) < 2:
            return False
        coverage = np.zeros(self.shape, dtype=np.uint8)
        for mask in masks:
            coverage += mask
        return bool(coverage.max() > 1)

    @property
    def label_map(self) -> np.ndarray | None:
        """uint16 labels on the image grid (0 = background), or None when lesions overlap."""
        if self.overlaps:
            return None
        labels = np.zeros(self.shape, dtype=np.uint16)
        for number, lesion in enumerate(self.lesions, start=1):
            if lesion.mask is not None:
                labels[lesion.mask] = number
        return labels

    def bitmask(self, max_planes: int = 64) -> np.ndarray:
        """Lossless masks as bit planes: bit ``n`` of a voxel is set when lesion ``n`` covers it
        (the smallest unsigned dtype holding every lesion; more than ``max_planes`` lesions
        raise :class:`AnnotationError` rather than lose one)."""
        count = len(self.lesions)
        if count > max_planes:
            raise AnnotationError(
                f"series {self.series_uid}: {count} lesions do not fit {max_planes} bit planes"
            )
        dtype = next(
            t
            for t in (np.uint8, np.uint16, np.uint32, np.uint64)
            if np.iinfo(t).bits >= max(count, 1)
        )
        bits = np.zeros(self.shape, dtype=dtype)
        for number, lesion in enumerate(self.lesions):
            if lesion.mask is not None:
                bits[lesion.mask] |= dtype(1 << number)
        return bits


class _Labeler:
    """Reads lesion labels, locations and time points as the collection's rules say, and keeps
    only the segments / ROIs its label spec calls lesions."""

    def __init__(self, rules: AnnotationRules, labels: LabelSpec | None = None) -> None:
        self.rules = rules
        self.labels = labels or LabelSpec()
        self.lesion = re.compile(rules.lesion_pattern, re.IGNORECASE)
        self.no_findings = re.compile(rules.no_findings_pattern, re.IGNORECASE)

    def keeps(self, name: str | None) -> bool:
        return self.labels.selects_segment(name or "")

    def is_no_findings(self, *texts: str | None) -> bool:
        return any(text and self.no_findings.search(text) for text in texts)

    def parse(self, text: str | None) -> dict[str, str | None] | None:
        match = self.lesion.fullmatch(text or "")
        if match is None:
            return None
        groups = match.groupdict()
        return {
            "label": _clean(groups.get("label")),
            "location": _clean(groups.get("location")),
            "time_point": _clean(groups.get("time_point")),
            "seed": _clean(groups.get("seed")),
        }

    def time_point(self, tag: str | None, description: str | None) -> str | None:
        parsed = self.parse(description) or {}
        from_description = parsed.get("time_point")
        if self.rules.time_point_source == "description":
            return from_description or tag
        if self.rules.time_point_source == "tag-only":
            return tag
        return tag or from_description

    def piece(
        self,
        document: Document,
        kind: str,
        part: str,
        name: str | None,
        *,
        single: bool,
    ) -> Piece:
        """The piece of one part (``"ROI 3"``, ``"segment 2"``, ``"SR group 1"``) of an
        annotation object, labelled from the series description when the object holds one
        lesion and the description follows the collection's naming rule, else from the part's own
        name (ROI name, segment label, tracking identifier)."""
        description = document.series_description
        parsed = (self.parse(description) if single else None) or self.parse(name)
        label = parsed["label"] if parsed else _clean(name) or _clean(description)
        return Piece(
            label=label or "lesion",
            kind=kind,
            series_uid=document.series_uid,
            origin=f"{document.series_uid}/{part}",
            object_uid=document.sop_instance_uid or str(document.path),
            named=parsed is not None,
            location=parsed.get("location") if parsed else None,
            time_point=self.time_point(document.time_point, description),
            reader=document.reader,
        )


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) if text and text.strip() else None


# ------------------------------------------------------------------------------------------
# Which annotation series belong to which image series


@dataclass(frozen=True)
class AnnotationLinks:
    """Annotation series of a download, by the image series they annotate.

    Attributes
    ----------
    by_image:
        Image series of the download -> the annotation series that annotate it.
    orphans:
        Annotation series -> why it annotates no image series of the download.
    excluded:
        Series that are not label series of the collection (:class:`LabelSpec`) -> why.
    without_images:
        The readable orphans, grouped by the image series they annotate (absent from the
        download); an orphan that names no image series is a group of its own, under its own
        series UID.  Their lesions are read from the annotations alone.
    problems:
        Annotation metadata CSV files that were ignored -> why (the objects' own references
        link their series instead).
    """

    by_image: dict[str, tuple[str, ...]]
    orphans: dict[str, str]
    excluded: dict[str, str] = field(default_factory=dict)
    without_images: dict[str, tuple[str, ...]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def annotated_by(self, series_uid: str) -> tuple[str, ...]:
        """The annotation series of an image series (present or not), or of an orphan group."""
        return self.by_image.get(series_uid) or self.without_images.get(series_uid, ())


def read_annotation_csv(path: Path) -> dict[str, tuple[str, str]]:
    """TCIA's annotation metadata CSV: annotation series -> (referenced series, annotation type)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AnnotationError(f"{path}: cannot read the annotation metadata CSV: {exc}") from exc
    needed = {"SeriesInstanceUID", "ReferencedSeriesInstanceUID"}
    if rows and not needed <= set(rows[0]):
        raise AnnotationError(
            f"{path}: the annotation metadata CSV needs columns {sorted(needed)}, found {sorted(rows[0])}"
        )
    return {
        row["SeriesInstanceUID"].strip(): (
            row["ReferencedSeriesInstanceUID"].strip(),
            (row.get("Annotation Type") or "").strip(),
        )
        for row in rows
        if row.get("SeriesInstanceUID")
    }


def link_annotations(
    index: Index, rules: AnnotationRules | None = None, labels: LabelSpec | None = None
) -> AnnotationLinks:
    """Map every annotation series (SEG, RTSTRUCT, SR) of a download to the image series it
    annotates: from TCIA's annotation metadata CSV when present, else from the references
    inside the objects, else by frame of reference when exactly one image series shares it."""
    rules = rules or AnnotationRules()
    table: dict[str, tuple[str, str]] = {}
    problems: dict[str, str] = {}
    for path in sorted(index.root.glob(rules.annotation_csv_glob)):
        try:
            table.update(read_annotation_csv(path))
        except AnnotationError as exc:
            problems[str(path)] = (
                f"ignored ({exc}); annotation series are linked by the references inside them"
            )
    images = {uid: s for uid, s in index.series.items() if s.modality not in ANNOTATION_MODALITIES}
    annotation_series = set(index.series) - set(images)
    labels = labels or LabelSpec()
    by_image: dict[str, list[str]] = {}
    without_images: dict[str, list[str]] = {}
    orphans: dict[str, str] = {}
    excluded: dict[str, str] = {}
    for uid, series in index.series.items():
        if series.modality not in ANNOTATION_MODALITIES:
            continue
        if not labels.selects(series.modality, series.description):
            excluded[uid] = (
                f"not a label series of this collection ({series.modality} {series.description!r})"
            )
            continue
        try:
            target, reason = _referenced_image(series, table, images, annotation_series)
        except TciaTrialsError as exc:
            orphans[uid] = f"unreadable: {exc}"
            continue
        if reason is None:
            by_image.setdefault(target, []).append(uid)
        else:
            orphans[uid] = reason
            without_images.setdefault(target or uid, []).append(uid)
    return AnnotationLinks(
        {k: tuple(v) for k, v in by_image.items()},
        orphans,
        excluded,
        {k: tuple(v) for k, v in without_images.items()},
        problems,
    )


def _referenced_image(
    series: Series,
    table: dict[str, tuple[str, str]],
    images: dict[str, Series],
    annotation_series: set[str],
) -> tuple[str | None, str | None]:
    """The image series an annotation series annotates, and why it is not in the download
    (None when it is); the series is None when the annotation names none."""
    if series.series_uid in table:
        target = table[series.series_uid][0]
        if target in images:
            return target, None
        return (
            target,
            f"the annotation metadata CSV says it annotates series {target}, which is not in the download",
        )
    referenced = _document_references(series)
    present = [uid for uid in referenced if uid in images]
    if present:
        return present[0], None
    if referenced:
        images_elsewhere = [uid for uid in referenced if uid not in annotation_series]
        return (
            images_elsewhere[0] if images_elsewhere else None,
            f"it references series {', '.join(referenced)}, not in the download",
        )
    same_frame = [
        uid
        for uid, s in images.items()
        if series.frame_of_reference_uid
        and s.frame_of_reference_uid == series.frame_of_reference_uid
    ]
    if len(same_frame) == 1:
        return same_frame[0], None
    return (
        None,
        "it names no referenced series and its frame of reference does not identify one image series",
    )


#: For linking, RTSTRUCT and SR headers are read only up to the sequences naming the referenced
#: series (contours and content trees, the bulk of the files, are never parsed).
_LAST_REFERENCE_TAG = {"RTSTRUCT": 0x30060010, "SR": 0x0040A385}


def _document_references(series: Series) -> tuple[str, ...]:
    found: list[str] = []
    for path in series.paths:
        if series.modality == "SEG":
            referenced = read_seg_document(path).referenced_series_uids
        else:
            referenced = _header_references(path, _LAST_REFERENCE_TAG[series.modality])
        found.extend(uid for uid in referenced if uid not in found)
    return tuple(found)


def _header_references(path: Path, last_tag: int) -> list[str]:
    """SeriesInstanceUIDs named by an RTSTRUCT's ReferencedFrameOfReferenceSequence or an SR's
    evidence sequences, reading the file only up to ``last_tag``."""
    from pydicom.filereader import read_partial

    try:
        with open(path, "rb") as handle:
            ds = read_partial(
                handle, stop_when=lambda tag, vr, length: int(tag) > last_tag, force=True
            )
    except Exception as exc:  # pydicom raises many types for damaged files
        raise DicomReadError(f"{path}: cannot read the DICOM header: {exc}") from exc
    found: list[str] = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            found.extend(
                str(s.SeriesInstanceUID)
                for s in study.get("RTReferencedSeriesSequence", [])
                if "SeriesInstanceUID" in s
            )
    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in ds.get(keyword, []):
            found.extend(
                str(s.SeriesInstanceUID)
                for s in study.get("ReferencedSeriesSequence", [])
                if "SeriesInstanceUID" in s
            )
    return found


def _read_document(modality: str, path: Path, header=None) -> Document:
    if modality == "SEG":
        return read_seg_document(path)
    if modality == "RTSTRUCT":
        return read_rtstruct(path)
    return read_sr(path, image_header_for=header)


# ------------------------------------------------------------------------------------------
# Reading


def read_annotations(
    index: Index,
    series_uid: str,
    *,
    volume: Volume | None = None,
    rules: AnnotationRules | None = None,
    labels: LabelSpec | None = None,
    links: AnnotationLinks | None = None,
    seeds: Sequence[SeedRow] = (),
    threshold: float = 0.5,
) -> Annotations:
    """The lesions of one image series from every annotation series that refers to it.

    Parameters
    ----------
    index, series_uid:
        The download and the annotated image series.
    volume:
        The series' volume when already read (else it is read).
    rules:
        How the collection labels its annotation series (default: the NCTN / EAY131 style).
    labels:
        Which annotation series, segments and ROIs are lesion labels (default: all).
    links:
        Annotation-to-image links of the download, when already computed (see
        :func:`link_annotations`; computing them reads every annotation header).
    seeds:
        Seed points from a table (:func:`~tcia_trials.source.seed_table.read_seed_table`); the
        rows for this series (by series UID, else by study UID, else by patient) join the
        lesions with the same label, or become seed-only lesions.
    threshold:
        Fractional SEG values at or above it are inside.
    """
    if series_uid not in index.series:
        raise SeriesNotFoundError(f"series {series_uid} is not in the index of {index.root}")
    rules = rules or AnnotationRules()
    labeler = _Labeler(rules, labels)
    volume = volume or read_volume(index, series_uid)
    links = links or link_annotations(index, rules, labels)
    reading, sources = _collect(
        index, links.by_image.get(series_uid, ()), labeler, volume, threshold
    )
    reading.pieces.extend(_table_pieces(seeds, index.series[series_uid], volume, labeler))
    lesions = _lesions(reading.pieces, volume)
    problems = []
    if reading.no_findings and lesions:
        problems.append(
            f"series {series_uid}: a 'no findings' annotation and {len(lesions)} lesion(s) refer to it"
        )
    return Annotations(
        series_uid=series_uid,
        shape=volume.shape,
        affine=volume.affine,
        lesions=tuple(lesions),
        no_findings=reading.no_findings and not lesions,
        sources=tuple(sources),
        problems=tuple(problems),
        skipped=tuple(reading.skipped),
    )


def read_lesions_without_images(
    index: Index,
    series_uid: str,
    *,
    rules: AnnotationRules | None = None,
    labels: LabelSpec | None = None,
    links: AnnotationLinks | None = None,
) -> Annotations:
    """The lesions of one image series from its annotation series alone, without reading its
    images (which may not even be downloaded): seed points in LPS mm, volumes from SEG grids or
    contour areas, time points, locations and SR measurements; no masks, voxel counts or
    bounding boxes.

    ``series_uid`` is an image series of the download, an image series that only its
    annotations name (:attr:`AnnotationLinks.without_images`), or an orphan annotation series
    that names no image series.
    """
    rules = rules or AnnotationRules()
    links = links or link_annotations(index, rules, labels)
    if series_uid not in index.series and series_uid not in links.without_images:
        raise SeriesNotFoundError(
            f"series {series_uid} is not in the index of {index.root}, and no annotation series "
            "of it names it"
        )
    return read_lesions_of_annotation_series(
        index, links.annotated_by(series_uid), series_uid=series_uid, rules=rules, labels=labels
    )


def read_lesions_of_annotation_series(
    index: Index,
    annotation_series_uids: str | Sequence[str],
    *,
    series_uid: str | None = None,
    rules: AnnotationRules | None = None,
    labels: LabelSpec | None = None,
) -> Annotations:
    """The lesions of annotation series read alone, in their own geometry (no image series):
    seed points in LPS mm, volumes from SEG grids or contour areas; the pieces of all the series
    are joined into lesions together (e.g. a contour series and its seed-point series).

    ``series_uid`` names the image series they annotate (default: the first annotation
    series).  A series that cannot be read is listed in ``sources`` as skipped, with the reason.
    """
    uids = (
        (annotation_series_uids,)
        if isinstance(annotation_series_uids, str)
        else tuple(annotation_series_uids)
    )
    missing = [uid for uid in uids if uid not in index.series]
    if missing:
        raise SeriesNotFoundError(
            f"annotation series {', '.join(missing)} not in the index of {index.root}"
        )
    labeler = _Labeler(rules or AnnotationRules(), labels)
    reading, sources = _collect(index, uids, labeler, None, 0.5)
    lesions = _lesions(reading.pieces, None)
    return Annotations(
        series_uid=series_uid or (uids[0] if uids else ""),
        shape=None,
        affine=None,
        lesions=tuple(lesions),
        no_findings=reading.no_findings and not lesions,
        sources=tuple(sources),
        skipped=tuple(reading.skipped),
    )


def _header_lookup(index: Index):
    def header_for(sop_instance_uid: str) -> pydicom.Dataset | None:
        try:
            path = index.instance(sop_instance_uid).path
        except KeyError:
            return None
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)

    return header_for


@dataclass
class _Reading:
    """What reading annotation objects gave: pieces, an explicit "no findings", and the parts
    of the input that describe no lesion, as ``(origin, why)``."""

    pieces: list[Piece] = field(default_factory=list)
    no_findings: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: _Reading) -> None:
        self.pieces.extend(other.pieces)
        self.no_findings |= other.no_findings
        self.skipped.extend(other.skipped)


def _collect(
    index: Index,
    annotation_series_uids: Iterable[str],
    labeler: _Labeler,
    volume: Volume | None,
    threshold: float,
) -> tuple[_Reading, list[AnnotationSource]]:
    """Pieces of annotation series (on ``volume``'s grid, or standalone when None), and what
    became of each series."""
    header_for = _header_lookup(index)
    reading = _Reading()
    sources: list[AnnotationSource] = []
    for uid in annotation_series_uids:
        series = index.series[uid]
        try:
            found = _reading_of_series(series, volume, labeler, header_for, threshold)
        except TciaTrialsError as exc:
            sources.append(
                AnnotationSource(uid, series.modality, series.description, "skipped", str(exc))
            )
            continue
        reading.add(found)
        status = "used" if found.pieces or found.no_findings else "skipped"
        reason = None if status == "used" else "no lesion, seed point or measurement in it"
        sources.append(AnnotationSource(uid, series.modality, series.description, status, reason))
    return reading, sources


def _reading_of_series(
    series: Series, volume: Volume | None, labeler: _Labeler, header_for, threshold: float
) -> _Reading:
    reading = _Reading()
    for path in series.paths:
        if series.modality == "SEG" and volume is not None:  # one parse: document and masks
            on_grid = seg_masks_on_volume(path, volume, threshold=threshold)
            found = _seg_pieces(on_grid.document, labeler, volume, threshold, on_grid)
            document: Document = on_grid.document
        else:
            document = _read_document(series.modality, path, header=header_for)
            found = _pieces(document, labeler, volume, threshold)
        flag = _other_stack_flag(document, volume)
        for piece in found.pieces:
            piece.flags.extend(flag)
        reading.add(found)
    return reading


def _other_stack_flag(document: Document, volume: Volume | None) -> list[str]:
    """``other-stack`` when ``volume`` is one stack of a multi-stack series and the annotation
    references only instances outside it: it was drawn on another stack of the series and is
    placed on this one by its patient-space geometry."""
    referenced = set(getattr(document, "referenced_sop_instance_uids", ()))
    if volume is None or not volume.stack or not referenced:
        return []
    if referenced & set(volume.sop_instance_uids):
        return []
    return [
        f"other-stack: the annotation references instances of another stack of series "
        f"{volume.series_uid}; placed on its stack {volume.stack!r} by patient-space geometry"
    ]


def _pieces(
    document: Document, labeler: _Labeler, volume: Volume | None, threshold: float
) -> _Reading:
    """Pieces of one annotation object (on ``volume``'s grid, or standalone when None)."""
    if isinstance(document, SegDocument):
        return _seg_pieces(document, labeler, volume, threshold)
    if isinstance(document, RtStructDocument):
        return _rtstruct_pieces(document, labeler, volume)
    return _sr_pieces(document, labeler)


def _seg_pieces(
    document: SegDocument,
    labeler: _Labeler,
    volume: Volume | None,
    threshold: float,
    on_grid: SegOnGrid | None = None,
) -> _Reading:
    single = len(document.segments) == 1
    thickness_known = True
    if volume is not None:
        on_grid = on_grid or seg_masks_on_volume(document, volume, threshold=threshold)
        masks, affine, flags = on_grid.masks, volume.affine, list(on_grid.flags)
        if on_grid.resampled:
            flags.append("resampled-seg")
    else:  # its own grid; irregular frames stacked plane by plane, flagged
        own = read_seg_own_grid(document, threshold=threshold)
        masks, affine, flags = own.masks, own.affine, list(own.flags)
        thickness_known = own.voxel_thickness_mm is not None
    reading = _Reading()
    for segment in document.segments:
        part = f"segment {segment.segment_number}"
        if not labeler.keeps(segment.label):
            reading.skipped.append(
                (
                    f"{document.series_uid}/{part}",
                    f"{segment.label!r} is not a lesion label of this collection (its LabelSpec)",
                )
            )
            continue
        piece = labeler.piece(document, "SEG", part, segment.label, single=single)
        piece.has_contour = True
        piece.segment_ref = f"{document.sop_instance_uid}#{segment.segment_number}"
        piece.tracking_id, piece.tracking_uid = segment.tracking_id, segment.tracking_uid
        piece.info = {
            key: value
            for key, value in (
                ("segment_label", segment.label),
                ("segmented_property_category", segment.category),
                ("segmented_property_type", segment.property_type),
                ("algorithm_type", segment.algorithm_type),
                ("algorithm_name", segment.algorithm_name),
            )
            if value
        }
        piece.flags.extend(flags)
        mask = masks.get(segment.segment_number)
        if mask is None or not mask.any():
            piece.flags.append(f"empty-segment: no voxel of {part} is at or above the threshold")
        if mask is not None and volume is not None:
            piece.mask = mask
        elif mask is not None:
            sizes = measure.mask_measurements(mask, affine)
            if thickness_known:  # else the voxel volume is unknown (flagged)
                piece.volume_ml = sizes["volume_ml"]  # type: ignore[assignment]
            piece.longest_diameter_mm = sizes["longest_diameter_mm"]  # type: ignore[assignment]
        reading.pieces.append(piece)
    return reading


def _rtstruct_pieces(
    document: RtStructDocument, labeler: _Labeler, volume: Volume | None
) -> _Reading:
    reading = _Reading()
    single = sum(1 for roi in document.rois if roi.contours) == 1
    for roi in document.rois:
        part = f"ROI {roi.number}"
        if labeler.is_no_findings(document.series_description, roi.name):
            reading.no_findings = True
            continue
        if not roi.contours:
            reading.skipped.append(
                (f"{document.series_uid}/{part}", f"empty ROI {roi.name!r} (no contours)")
            )
            continue
        if not labeler.keeps(roi.name):
            reading.skipped.append(
                (
                    f"{document.series_uid}/{part}",
                    f"{roi.name!r} is not a lesion label of this collection (its LabelSpec)",
                )
            )
            continue
        info = {
            key: value
            for key, value in (
                ("roi_name", roi.name),
                ("roi_interpreted_type", roi.interpreted_type),
            )
            if value
        }
        seeds = seed_points(roi)
        for number, seed in enumerate(seeds, start=1):
            where = part if len(seeds) == 1 else f"{part} point {number}"
            piece = labeler.piece(document, "RTSTRUCT", where, roi.name, single=single)
            piece.info, piece.seed_lps = dict(info), seed.lps
            piece.flags.extend(seed.flags)
            reading.pieces.append(piece)
        if seeds:
            continue
        piece = labeler.piece(document, "RTSTRUCT", part, roi.name, single=single)
        piece.info, piece.has_contour = info, True
        if volume is not None:
            rasterized = rasterize_roi(roi, volume)
            piece.mask = rasterized.mask
            piece.flags.extend(rasterized.flags)
        else:
            piece.volume_ml, piece.longest_diameter_mm = _contour_size(roi.contours)
            piece.flags.append(
                "volume-from-contours: polygon areas (even-odd: holes subtracted) times "
                "the spacing of contour planes"
            )
        reading.pieces.append(piece)
    return reading


def _sr_pieces(document: SrDocument, labeler: _Labeler) -> _Reading:
    """One piece per measurement group (none is dropped: an empty one carries its flag), named
    by its tracking identifier or UID; a seed only from a point, volume in mL and longest
    diameter in mm only from measurements in a convertible unit; every measurement value
    under a distinct key; a SEG segment it refers to in ``segment_ref`` and
    ``info["referenced_segment"]`` ("<SEG SOPInstanceUID>#<segment number>")."""
    reading = _Reading()
    for number, finding in enumerate(document.findings, start=1):
        name = finding.tracking_id or finding.tracking_uid or f"measurement group {number}"
        piece = labeler.piece(document, "SR", f"SR group {number}", name, single=False)
        piece.location = piece.location or finding.finding_site
        piece.tracking_id, piece.tracking_uid = finding.tracking_id, finding.tracking_uid
        if finding.referenced_segment is not None:
            sop_uid, segment_number = finding.referenced_segment
            piece.segment_ref = f"{sop_uid}#{segment_number}"
        piece.seed_lps = finding.seed_lps
        piece.measurements = finding.measurement_values
        piece.volume_ml = finding.volume_ml
        piece.longest_diameter_mm = finding.longest_diameter_mm
        piece.info = {
            key: value
            for key, value in (
                ("referenced_segment", piece.segment_ref),
                ("finding_type", finding.finding_type),
                ("finding_site", finding.finding_site),
                ("sr_template", finding.group_template),
                ("graphic_type", finding.graphic_type),
            )
            if value
        }
        piece.flags.extend([*finding.flags, *document.flags])
        reading.pieces.append(piece)
    return reading


def _table_pieces(
    seeds: Sequence[SeedRow], series: Series, volume: Volume, labeler: _Labeler
) -> list[Piece]:
    """Seed points from a table that belong to this image series, in LPS mm."""
    mine = [row for row in seeds if row.series_uid == series.series_uid]
    if not mine:
        mine = [row for row in seeds if not row.series_uid and row.study_uid == series.study_uid]
    if not mine:
        mine = [
            row
            for row in seeds
            if not row.series_uid and not row.study_uid and row.patient_id == series.patient_id
        ]
    pieces = []
    for row in mine:
        name = row.label or row.lesion_id or f"seed row {row.row_number}"
        parsed = labeler.parse(name)
        piece = Piece(
            label=(parsed["label"] if parsed else None) or _clean(name) or name,
            kind="TABLE",
            series_uid=series.series_uid,
            origin=f"table row {row.row_number}",
            object_uid="seed table",
            location=parsed.get("location") if parsed else None,
            time_point=row.time_point or series.time_point,
        )
        if row.lps is not None:
            piece.seed_lps = row.lps
        elif row.voxel is not None:
            point = geometry.index_to_lps(volume.affine, np.asarray(row.voxel, dtype=np.float64))
            piece.seed_lps = (float(point[0]), float(point[1]), float(point[2]))
        else:
            continue
        pieces.append(piece)
    return pieces


def _contour_size(contours: Iterable) -> tuple[float | None, float | None]:
    """Volume (mL) and longest in-plane chord (mm) of closed planar contours, without images.

    A plane's area follows the even-odd rule the masks use: a contour inside an odd number of
    the plane's other contours is a hole (nested contours that do not cross are exact).
    """
    planes: dict[float, list[np.ndarray]] = {}
    longest = 0.0
    normal = None
    for contour in contours:
        points = np.asarray(contour.points, dtype=np.float64)
        if contour.geometric_type not in AREA_TYPES or len(points) < 3:
            continue
        if normal is None:
            normal = np.linalg.svd(points - points.mean(axis=0))[2][-1]
        planes.setdefault(round(float(points[0] @ normal), 3), []).append(points)
        chord = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).max()
        longest = max(longest, float(chord))
    if normal is None or len(planes) < 2:
        return None, longest or None
    areas = {height: _even_odd_area(polygons, normal) for height, polygons in planes.items()}
    step = float(np.median(np.diff(sorted(areas))))
    return sum(areas.values()) * step / 1000.0, longest


def _even_odd_area(polygons: list[np.ndarray], normal: np.ndarray) -> float:
    """Area (mm^2) of the region inside an odd number of a plane's polygons (LPS mm)."""
    axis_u = np.linalg.svd(np.outer(normal, normal) - np.eye(3))[0][:, 0]
    axis_v = np.cross(normal, axis_u)
    flat = [np.column_stack([poly @ axis_u, poly @ axis_v]) for poly in polygons]
    total = 0.0
    for n, poly in enumerate(flat):
        x, y = poly[:, 0], poly[:, 1]
        area = 0.5 * abs(float(x @ np.roll(y, -1) - y @ np.roll(x, -1)))
        depth = sum(_inside(poly[0], other) for m, other in enumerate(flat) if m != n)
        total += area if depth % 2 == 0 else -area
    return abs(total)


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Whether a 2D point is inside a polygon (crossing number)."""
    x, y = point
    xs, ys = polygon[:, 0], polygon[:, 1]
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    crosses = (ys > y) != (yn > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = xs + (y - ys) * (xn - xs) / (yn - ys)
    return bool(np.count_nonzero(crosses & (x < at)) % 2)


# ------------------------------------------------------------------------------------------
# Pieces -> lesions

#: Which source's mask and seed point a lesion shows when several kinds describe it.
_MASK_PREFERENCE = ("SEG", "RTSTRUCT")
_SEED_PREFERENCE = ("RTSTRUCT", "SR", "TABLE")


def _lesions(pieces: list[Piece], volume: Volume | None) -> list[Lesion]:
    groups = sorted(group_pieces(pieces), key=lambda g: (natural_key(g[0].label), g[0].origin))
    return [
        _lesion(lesion_id, group, volume)
        for lesion_id, group in zip(lesion_ids(groups), groups, strict=True)
    ]


def _first(values: Iterable[object]) -> object | None:
    return next((value for value in values if value is not None), None)


def _lesion(lesion_id: str, group: list[Piece], volume: Volume | None) -> Lesion:
    flags: list[str] = [flag for piece in group for flag in piece.flags]
    masks = {piece.kind: piece.mask for piece in group if piece.mask is not None}
    mask = _first(masks.get(kind) for kind in _MASK_PREFERENCE)
    if len(masks) == 2:
        flags.append(f"rtstruct-seg-dice={measure.dice(masks['SEG'], masks['RTSTRUCT']):.3f}")
    by_seed = sorted(
        (p for p in group if p.seed_lps is not None), key=lambda p: _SEED_PREFERENCE.index(p.kind)
    )
    seed = by_seed[0].seed_lps if by_seed else None
    for other in by_seed[1:]:
        spread = float(np.linalg.norm(np.subtract(other.seed_lps, seed)))
        if spread > SEED_AGREEMENT_MM:
            flags.append(
                f"seed-sources-disagree: the {other.kind} seed {other.origin} is {spread:.2f} mm "
                f"from the {by_seed[0].kind} seed"
            )
    measurements: dict[str, float] = {}
    for piece in group:
        for key, value in piece.measurements.items():
            taken = key in measurements and measurements[key] != value
            measurements[f"{key} [{piece.origin}]" if taken else key] = value
    info = {k: v for piece in group for k, v in piece.info.items()}
    by_size = sorted(group, key=lambda p: (p.kind not in _MASK_PREFERENCE, p.kind))
    values: dict[str, object] = {}
    seed_voxel = None
    if volume is not None and mask is not None:
        values.update(measure.mask_measurements(mask, volume.affine))
        if volume.units == "SUVbw":
            values.update(
                measure.pet_measurements(mask, volume.array, volume.affine, values["bbox"])
            )
    if volume is not None and seed is not None:
        seed_voxel, seed_flags = measure.seed_on_grid(seed, volume.affine, volume.shape, mask)
        flags.extend(seed_flags)
    if mask is None:
        values["volume_ml"] = _first(p.volume_ml for p in by_size)
        values["longest_diameter_mm"] = _first(p.longest_diameter_mm for p in by_size)
    first = group[0]
    return Lesion(
        lesion_id=lesion_id,
        label=first.label,
        location=_first(p.location for p in group),  # type: ignore[arg-type]
        time_point=_first(p.time_point for p in group),  # type: ignore[arg-type]
        sources=tuple(sorted({p.kind for p in group})),
        source_series_uids=tuple(dict.fromkeys(p.series_uid for p in group)),
        origins=tuple(p.origin for p in group),
        readers=tuple(dict.fromkeys(p.reader for p in group if p.reader)),
        mask=mask,  # type: ignore[arg-type]
        seed_lps=seed,
        seed_voxel=seed_voxel,
        tracking_id=_first(p.tracking_id for p in group),  # type: ignore[arg-type]
        tracking_uid=_first(p.tracking_uid for p in group),  # type: ignore[arg-type]
        measurements=measurements,
        annotation_info=info,
        flags=tuple(dict.fromkeys(flags)),
        **values,  # type: ignore[arg-type]
    )


def read_annotation_object(
    path: str | PathLike[str], *, rules: AnnotationRules | None = None
) -> Annotations:
    """One SEG, RTSTRUCT or SR file read standalone, in its own geometry (no image series):
    its lesions, whether it says "no findings", and the parts that describe no lesion
    (:attr:`Annotations.skipped`)."""
    path = Path(path)
    try:
        header = pydicom.dcmread(
            path, stop_before_pixels=True, force=True, specific_tags=["Modality"]
        )
    except Exception as exc:
        raise DicomReadError(f"{path}: cannot read the DICOM header: {exc}") from exc
    modality = str(header.get("Modality", ""))
    if modality not in ANNOTATION_MODALITIES:
        raise AnnotationError(
            f"{path}: Modality is {modality or 'missing'!r}; expected SEG, RTSTRUCT or SR"
        )
    document = _read_document(modality, path)
    reading = _pieces(document, _Labeler(rules or AnnotationRules()), None, 0.5)
    lesions = _lesions(reading.pieces, None)
    return Annotations(
        series_uid=document.series_uid,
        shape=None,
        affine=None,
        lesions=tuple(lesions),
        no_findings=reading.no_findings and not lesions,
        sources=(),
        skipped=tuple(reading.skipped),
    )


def read_annotation_file(
    path: str | PathLike[str], *, rules: AnnotationRules | None = None
) -> list[Lesion]:
    """Lesions of one SEG, RTSTRUCT or SR file in its own geometry, without the image series:
    seed points in LPS mm, SEG volumes from the SEG's own grid, RTSTRUCT volumes from contour
    areas.  An explicit "no findings" object gives an empty list.  See
    :func:`read_annotation_object` for the parts of the file that describe no lesion."""
    return list(read_annotation_object(path, rules=rules).lesions)
