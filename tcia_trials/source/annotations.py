"""Annotations of an image series: SEG, RTSTRUCT and SR objects become lesions on its grid.

Every annotation object is first turned into *pieces* (a mask, a seed point, measurements, or an
explicit "no findings"), each with a label and optional tracking UID.  Pieces are grouped into
lesions by tracking UID, then by label (the collection's :class:`~tcia_trials.spec.AnnotationRules`
say how labels are read from series descriptions), and measured on the image grid.
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
from tcia_trials.source.index import Index, Series
from tcia_trials.source.lesions import Lesion
from tcia_trials.source.rtstruct import RtStructDocument, rasterize_roi, read_rtstruct, seed_point
from tcia_trials.source.seed_table import SeedRow
from tcia_trials.source.seg import (
    SegDocument,
    SegOnGrid,
    read_seg_document,
    seg_masks_on_volume,
    seg_masks_own_grid,
)
from tcia_trials.source.sr import SrDocument, read_sr
from tcia_trials.source.volume import Volume, read_volume
from tcia_trials.spec import AnnotationRules, LabelSpec

ANNOTATION_MODALITIES = ("SEG", "RTSTRUCT", "SR")
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
    every case (lesion ``n`` -> bit ``n``).
    """

    series_uid: str
    shape: tuple[int, int, int] | None  # None when read without the images
    affine: np.ndarray | None
    lesions: tuple[Lesion, ...]
    no_findings: bool
    sources: tuple[AnnotationSource, ...]
    problems: tuple[str, ...] = field(default=())

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


@dataclass(eq=False)
class _Piece:
    """What one annotation object says about one lesion."""

    label: str
    kind: str  # RTSTRUCT | SEG | SR
    series_uid: str
    location: str | None = None
    time_point: str | None = None
    mask: np.ndarray | None = None
    seed_lps: tuple[float, float, float] | None = None
    tracking_id: str | None = None
    tracking_uid: str | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    volume_ml: float | None = None
    longest_diameter_mm: float | None = None
    info: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


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
        kind: str,
        series_uid: str,
        description: str,
        name: str | None,
        time_tag: str | None,
        *,
        single: bool,
    ) -> _Piece:
        """A piece labelled from the series description when the object holds one lesion and
        the description names it, else from the object's own name (ROI name, segment label,
        tracking identifier)."""
        parsed = self.parse(description) if single else None
        parsed = (
            parsed
            or self.parse(name)
            or {"label": _clean(name) or _clean(description), "location": None}
        )
        return _Piece(
            label=parsed["label"] or "lesion",
            kind=kind,
            series_uid=series_uid,
            location=parsed.get("location"),
            time_point=self.time_point(time_tag, description),
        )


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) if text and text.strip() else None


# ------------------------------------------------------------------------------------------
# Which annotation series belong to which image series


@dataclass(frozen=True)
class AnnotationLinks:
    """Annotation series of a download, by the image series they annotate."""

    by_image: dict[str, tuple[str, ...]]
    orphans: dict[str, str]  # annotation series -> why it annotates no image series here
    excluded: dict[str, str] = field(default_factory=dict)  # not label series (LabelSpec)


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
    for path in sorted(index.root.glob(rules.annotation_csv_glob)):
        table.update(read_annotation_csv(path))
    images = {uid: s for uid, s in index.series.items() if s.modality not in ANNOTATION_MODALITIES}
    labels = labels or LabelSpec()
    by_image: dict[str, list[str]] = {}
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
            target, reason = _referenced_image(series, table, images)
        except TciaTrialsError as exc:
            target, reason = None, f"unreadable: {exc}"
        if target is None:
            orphans[uid] = reason or "references no image series of this download"
        else:
            by_image.setdefault(target, []).append(uid)
    return AnnotationLinks({k: tuple(v) for k, v in by_image.items()}, orphans, excluded)


def _referenced_image(
    series: Series, table: dict[str, tuple[str, str]], images: dict[str, Series]
) -> tuple[str | None, str | None]:
    if series.series_uid in table:
        target = table[series.series_uid][0]
        if target in images:
            return target, None
        return (
            None,
            f"the annotation metadata CSV says it annotates series {target}, which is not in the download",
        )
    referenced = _document_references(series)
    present = [uid for uid in referenced if uid in images]
    if present:
        return present[0], None
    if referenced:
        return None, f"it references series {', '.join(referenced)}, not in the download"
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


def _read_document(
    modality: str, path: Path, header=None
) -> SegDocument | RtStructDocument | SrDocument:
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
    pieces, sources, no_findings = _collect(index, series_uid, links, labeler, volume, threshold)
    pieces.extend(_table_pieces(seeds, index.series[series_uid], volume, labeler))
    lesions = _lesions(pieces, volume)
    problems = []
    if no_findings and lesions:
        problems.append(
            f"series {series_uid}: a 'no findings' annotation and {len(lesions)} lesion(s) refer to it"
        )
    return Annotations(
        series_uid=series_uid,
        shape=volume.shape,
        affine=volume.affine,
        lesions=tuple(lesions),
        no_findings=no_findings and not lesions,
        sources=tuple(sources),
        problems=tuple(problems),
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
    contour areas, time points, locations and SR measurements; no masks."""
    if series_uid not in index.series:
        raise SeriesNotFoundError(f"series {series_uid} is not in the index of {index.root}")
    rules = rules or AnnotationRules()
    labeler = _Labeler(rules, labels)
    links = links or link_annotations(index, rules, labels)
    pieces, sources, no_findings = _collect(index, series_uid, links, labeler, None, 0.5)
    lesions = _lesions(pieces, None)
    return Annotations(
        series_uid=series_uid,
        shape=None,
        affine=None,
        lesions=tuple(lesions),
        no_findings=no_findings and not lesions,
        sources=tuple(sources),
    )


def _header_lookup(index: Index):
    def header_for(sop_instance_uid: str) -> pydicom.Dataset | None:
        try:
            path = index.instance(sop_instance_uid).path
        except KeyError:
            return None
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)

    return header_for


def _collect(
    index: Index,
    series_uid: str,
    links: AnnotationLinks,
    labeler: _Labeler,
    volume: Volume | None,
    threshold: float,
) -> tuple[list[_Piece], list[AnnotationSource], bool]:
    """Pieces of every annotation series linked to an image series (on ``volume``'s grid, or
    standalone when None), what became of each series, and whether one says "no findings"."""
    header_for = _header_lookup(index)
    pieces: list[_Piece] = []
    sources: list[AnnotationSource] = []
    no_findings = False
    for uid in links.by_image.get(series_uid, ()):
        series = index.series[uid]
        try:
            found, negative = _pieces_of_series(series, volume, labeler, header_for, threshold)
        except TciaTrialsError as exc:
            sources.append(
                AnnotationSource(uid, series.modality, series.description, "skipped", str(exc))
            )
            continue
        pieces.extend(found)
        no_findings |= negative
        status = "used" if found or negative else "skipped"
        reason = None if status == "used" else "no lesion, seed point or measurement in it"
        sources.append(AnnotationSource(uid, series.modality, series.description, status, reason))
    return pieces, sources, no_findings


def _pieces_of_series(
    series: Series, volume: Volume | None, labeler: _Labeler, header_for, threshold: float
) -> tuple[list[_Piece], bool]:
    pieces: list[_Piece] = []
    negative = False
    for path in series.paths:
        if series.modality == "SEG" and volume is not None:  # one parse: document and masks
            on_grid = seg_masks_on_volume(path, volume, threshold=threshold)
            pieces.extend(_seg_pieces(on_grid.document, labeler, volume, threshold, on_grid))
            continue
        document = _read_document(series.modality, path, header=header_for)
        found, no_findings = _pieces(document, labeler, volume, threshold)
        pieces.extend(found)
        negative |= no_findings
    return pieces, negative


def _pieces(
    document: SegDocument | RtStructDocument | SrDocument,
    labeler: _Labeler,
    volume: Volume | None,
    threshold: float,
) -> tuple[list[_Piece], bool]:
    """Pieces of one annotation object (on ``volume``'s grid, or standalone when None)."""
    if isinstance(document, SegDocument):
        return _seg_pieces(document, labeler, volume, threshold), False
    if isinstance(document, RtStructDocument):
        return _rtstruct_pieces(document, labeler, volume)
    return _sr_pieces(document, labeler), False


def _seg_pieces(
    document: SegDocument,
    labeler: _Labeler,
    volume: Volume | None,
    threshold: float,
    on_grid: SegOnGrid | None = None,
) -> list[_Piece]:
    single = len(document.segments) == 1
    if volume is not None:
        on_grid = on_grid or seg_masks_on_volume(document, volume, threshold=threshold)
        masks, affine, flags = on_grid.masks, volume.affine, list(on_grid.flags)
        if on_grid.resampled:
            flags.append("resampled-seg")
    else:
        masks, affine = seg_masks_own_grid(document, threshold=threshold)
        flags = []
    pieces = []
    for segment in document.segments:
        if not labeler.keeps(segment.label):
            continue
        piece = labeler.piece(
            "SEG",
            document.series_uid,
            document.series_description,
            segment.label,
            document.time_point,
            single=single,
        )
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
        if mask is not None and volume is not None:
            piece.mask = mask
        elif mask is not None:
            sizes = measure.mask_measurements(mask, affine)
            piece.volume_ml = sizes["volume_ml"]  # type: ignore[assignment]
            piece.longest_diameter_mm = sizes["longest_diameter_mm"]  # type: ignore[assignment]
        pieces.append(piece)
    return pieces


def _rtstruct_pieces(
    document: RtStructDocument, labeler: _Labeler, volume: Volume | None
) -> tuple[list[_Piece], bool]:
    pieces: list[_Piece] = []
    negative = False
    single = sum(1 for roi in document.rois if roi.contours) == 1
    for roi in document.rois:
        if labeler.is_no_findings(document.series_description, roi.name):
            negative = True
            continue
        if not roi.contours or not labeler.keeps(roi.name):
            continue
        piece = labeler.piece(
            "RTSTRUCT",
            document.series_uid,
            document.series_description,
            roi.name,
            document.time_point,
            single=single,
        )
        seed = seed_point(roi)
        if seed is not None:
            piece.seed_lps = seed.lps
            piece.flags.extend(seed.flags)
        elif volume is not None:
            rasterized = rasterize_roi(roi, volume)
            piece.mask = rasterized.mask
            piece.flags.extend(rasterized.flags)
        else:
            piece.volume_ml, piece.longest_diameter_mm = _contour_size(roi.contours)
            piece.flags.append(
                "volume-from-contours: polygon areas (holes not subtracted) times the spacing of contour planes"
            )
        pieces.append(piece)
    return pieces, negative


def _sr_pieces(document: SrDocument, labeler: _Labeler) -> list[_Piece]:
    """One piece per measurement group (none is dropped: an empty one carries its flag), named
    by its tracking identifier or UID; a seed only from a point, volume in mL and longest
    diameter in mm only from measurements in a convertible unit; every measurement value
    under a distinct key; a SEG segment it refers to in ``info["referenced_segment"]``
    ("<SEG SOPInstanceUID>#<segment number>")."""
    pieces = []
    for number, finding in enumerate(document.findings, start=1):
        name = finding.tracking_id or finding.tracking_uid or f"measurement group {number}"
        piece = labeler.piece(
            "SR",
            document.series_uid,
            document.series_description,
            name,
            document.time_point,
            single=False,
        )
        piece.location = piece.location or finding.finding_site
        piece.tracking_id, piece.tracking_uid = finding.tracking_id, finding.tracking_uid
        piece.seed_lps = finding.seed_lps
        piece.measurements = finding.measurement_values
        piece.volume_ml = finding.volume_ml
        piece.longest_diameter_mm = finding.longest_diameter_mm
        segment = finding.referenced_segment
        piece.info = {
            key: value
            for key, value in (
                ("referenced_segment", f"{segment[0]}#{segment[1]}" if segment else None),
                ("finding_type", finding.finding_type),
                ("finding_site", finding.finding_site),
                ("sr_template", finding.group_template),
                ("graphic_type", finding.graphic_type),
            )
            if value
        }
        piece.flags.extend([*finding.flags, *document.flags])
        pieces.append(piece)
    return pieces


def _table_pieces(
    seeds: Sequence[SeedRow], series: Series, volume: Volume, labeler: _Labeler
) -> list[_Piece]:
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
        piece = labeler.piece(
            "TABLE", series.series_uid, series.description, name, row.time_point, single=False
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
    """Volume (mL) and longest in-plane chord (mm) of closed planar contours, without images."""
    planes: dict[float, float] = {}
    longest = 0.0
    normal = None
    for contour in contours:
        points = np.asarray(contour.points, dtype=np.float64)
        if contour.geometric_type != "CLOSED_PLANAR" or len(points) < 3:
            continue
        centred = points - points.mean(axis=0)
        if normal is None:
            normal = np.linalg.svd(centred)[2][-1]
        area_vector = 0.5 * np.cross(points, np.roll(points, -1, axis=0)).sum(axis=0)
        height = round(float(points[0] @ normal), 3)
        planes[height] = planes.get(height, 0.0) + abs(float(area_vector @ normal))
        chord = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)).max()
        longest = max(longest, float(chord))
    if len(planes) < 2:
        return None, longest or None
    step = float(np.median(np.diff(sorted(planes))))
    return sum(planes.values()) * step / 1000.0, longest


# ------------------------------------------------------------------------------------------
# Pieces -> lesions


def _group(pieces: list[_Piece]) -> list[list[_Piece]]:
    """Group pieces of the same lesion: same tracking UID, else same label."""
    groups: list[list[_Piece]] = []
    by_key: dict[tuple[str, str], int] = {}
    for piece in pieces:
        keys = [("uid", piece.tracking_uid)] if piece.tracking_uid else []
        keys.append(("label", piece.label.upper()))
        number = next((by_key[k] for k in keys if k in by_key), None)
        if number is None:
            number = len(groups)
            groups.append([])
        groups[number].append(piece)
        for key in keys:
            by_key.setdefault(key, number)
    return groups


def _lesions(pieces: list[_Piece], volume: Volume | None) -> list[Lesion]:
    groups = sorted(_group(pieces), key=lambda g: (_natural(g[0].label), g[0].series_uid))
    lesions, seen = [], {}
    for group in groups:
        label = group[0].label
        seen[label] = seen.get(label, 0) + 1
        lesion_id = label if seen[label] == 1 else f"{label} ({seen[label]})"
        lesions.append(_lesion(lesion_id, group, volume))
    return lesions


def _natural(label: str) -> tuple:
    return tuple(
        int(part) if part.isdigit() else part.upper() for part in re.split(r"(\d+)", label)
    )


def _lesion(lesion_id: str, group: list[_Piece], volume: Volume | None) -> Lesion:
    flags: list[str] = [flag for piece in group for flag in piece.flags]
    masks = {piece.kind: piece.mask for piece in group if piece.mask is not None}
    mask = masks.get("SEG", masks.get("RTSTRUCT"))
    if "SEG" in masks and "RTSTRUCT" in masks:
        flags.append(f"rtstruct-seg-dice={measure.dice(masks['SEG'], masks['RTSTRUCT']):.3f}")
    seeds = [
        piece.seed_lps
        for piece in sorted(group, key=lambda p: p.kind != "RTSTRUCT")
        if piece.seed_lps
    ]
    seed = seeds[0] if seeds else None
    if len(seeds) > 1:
        spread = max(float(np.linalg.norm(np.subtract(s, seed))) for s in seeds)
        if spread > SEED_AGREEMENT_MM:
            flags.append(f"seed-sources-disagree: {spread:.2f} mm apart")
    measurements = {k: v for piece in group for k, v in piece.measurements.items()}
    info = {k: v for piece in group for k, v in piece.info.items()}
    values: dict[str, object] = {}
    seed_voxel = None
    if volume is not None:
        if mask is not None:
            values.update(measure.mask_measurements(mask, volume.affine))
            if volume.units == "SUVbw":
                values.update(
                    measure.pet_measurements(mask, volume.array, volume.affine, values["bbox"])
                )
        if seed is not None:
            seed_voxel, seed_flags = measure.seed_on_grid(seed, volume.affine, volume.shape, mask)
            flags.extend(seed_flags)
    else:
        values["volume_ml"] = next((p.volume_ml for p in group if p.volume_ml is not None), None)
        values["longest_diameter_mm"] = next(
            (p.longest_diameter_mm for p in group if p.longest_diameter_mm), None
        )
    if values.get("volume_ml") is None:
        values["volume_ml"] = next(
            (v for k, v in measurements.items() if k.lower().startswith("volume")), None
        )
    first = group[0]
    return Lesion(
        lesion_id=lesion_id,
        label=first.label,
        location=next((p.location for p in group if p.location), None),
        time_point=next((p.time_point for p in group if p.time_point), None),
        sources=tuple(sorted({p.kind for p in group})),
        source_series_uids=tuple(dict.fromkeys(p.series_uid for p in group)),
        mask=mask,
        seed_lps=seed,
        seed_voxel=seed_voxel,
        tracking_id=next((p.tracking_id for p in group if p.tracking_id), None),
        tracking_uid=next((p.tracking_uid for p in group if p.tracking_uid), None),
        measurements=measurements,
        annotation_info=info,
        flags=tuple(dict.fromkeys(flags)),
        **values,  # type: ignore[arg-type]
    )


def read_annotation_file(
    path: str | PathLike[str], *, rules: AnnotationRules | None = None
) -> list[Lesion]:
    """Lesions of one SEG, RTSTRUCT or SR file in its own geometry, without the image series:
    seed points in LPS mm, SEG volumes from the SEG's own grid, RTSTRUCT volumes from contour
    areas.  An explicit "no findings" object gives an empty list."""
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
    pieces, _ = _pieces(document, _Labeler(rules or AnnotationRules()), None, 0.5)
    return _lesions(pieces, None)
