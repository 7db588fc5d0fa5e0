"""DICOM SR TID 1500 Measurement Reports -> lesion findings: seed points, regions, measurements.

highdicom parses the document (:func:`highdicom.sr.Comprehensive3DSR.from_dataset` & co.) and the
measurement groups (:class:`highdicom.sr.MeasurementReport` and its TID 1410 / 1411 / 1501 group
classes); this module adds what highdicom leaves to the caller:

- one flat, immutable :class:`SrFinding` per measurement group, in document order, with no group
  silently dropped (a group highdicom cannot classify is still reported, with a flag);
- image-coordinate points (SCOORD) mapped to patient coordinates through the header of the
  referenced image, supplied by the caller;
- measurements whose value is missing (a NUM item with only a qualifier) reported as flags instead
  of failing the whole group;
- every measurement under a distinct key (:func:`keyed_values`: concept name, derivation, unit,
  and the other modifiers when needed), values kept in their stored unit and converted only
  through a table of UCUM length / area / volume units (:meth:`SrMeasurement.in_unit`,
  :attr:`SrFinding.volume_ml`, :attr:`SrFinding.longest_diameter_mm`), with flags for a geometric
  quantity in a unit that is not one and for one quantity stored in units that disagree;
- a seed point only where the SR says the region is a point; other regions keep their centre
  (:attr:`SrFinding.region_centre_lps`) and a ``region-not-a-point`` flag;
- clear errors naming the file for other templates and malformed content trees.

Conventions
-----------
- Patient coordinates are DICOM LPS, in millimetres (SCOORD3D GraphicData as stored).
- Image coordinates (SCOORD) are ``(column, row)`` pairs in pixel units with ``(0.5, 0.5)`` the
  centre of the top-left pixel and ``(0, 0)`` its top-left corner (DICOM PS3.3 C.18.6.1.2), i.e.
  pixel index = coordinate - 0.5.  They are mapped with
  :class:`highdicom.spatial.ImageToReferenceTransformer`, which uses exactly this convention:
  ``LPS = IPP + (column - 0.5) * PixelSpacing[1] * IOP[0:3] + (row - 0.5) * PixelSpacing[0] *
  IOP[3:6]``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from highdicom.spatial import ImageToReferenceTransformer
from highdicom.sr.utils import find_content_items
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from tcia_trials.errors import AnnotationError, DicomReadError, UnsupportedTemplateError
from tcia_trials.source.documents import AnnotationFile, file_identity

logger = logging.getLogger(__name__)

#: Looks up the header of an image instance by SOPInstanceUID (None when it is not available).
ImageHeaderLookup = Callable[[str], Dataset | None]

#: SR classes highdicom reads, by SOPClassUID.
_SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.22": hd.sr.EnhancedSR,
    "1.2.840.10008.5.1.4.1.1.88.33": hd.sr.ComprehensiveSR,
    "1.2.840.10008.5.1.4.1.1.88.34": hd.sr.Comprehensive3DSR,
}
#: "Imaging Measurement Report" (DCM 126000): the document title of TID 1500.
_MEASUREMENT_REPORT_TITLE = ("126000", "DCM")
#: TID 1502 "Time Point" (UMLS C2348792), as written by highdicom and dcmqi.
_TIME_POINT = hd.sr.CodedConcept("C2348792", "UMLS", "Time Point")
_REGION_IN_SPACE = hd.sr.CodedConcept("130488", "DCM", "Region in Space")
#: UCUM unit codes of lengths, areas and volumes -> (dimension, factor to the base unit: mm, mm2,
#: mm3).  UCUM is case-sensitive; "l" and "L" are both the litre.
_UNITS: dict[str, tuple[str, float]] = {
    "um": ("length", 1e-3),
    "mm": ("length", 1.0),
    "cm": ("length", 10.0),
    "dm": ("length", 100.0),
    "m": ("length", 1e3),
    "um2": ("area", 1e-6),
    "mm2": ("area", 1.0),
    "cm2": ("area", 1e2),
    "dm2": ("area", 1e4),
    "m2": ("area", 1e6),
    "uL": ("volume", 1.0),
    "ul": ("volume", 1.0),
    "mm3": ("volume", 1.0),
    "mL": ("volume", 1e3),
    "ml": ("volume", 1e3),
    "cm3": ("volume", 1e3),
    "dL": ("volume", 1e5),
    "dl": ("volume", 1e5),
    "L": ("volume", 1e6),
    "l": ("volume", 1e6),
    "dm3": ("volume", 1e6),
    "m3": ("volume", 1e9),
}
#: Concept names (case-insensitive) of geometric quantities, with the dimension their unit must
#: have (CID 7470 linear, CID 7471 area, CID 7472 volume measurements).
_NAME_DIMENSIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "length",
            "diameter",
            "long axis",
            "short axis",
            "major axis",
            "minor axis",
            "perpendicular axis",
            "radius",
            "perimeter",
            "circumference",
            "height",
            "width",
            "depth",
            "thickness",
            "distance",
        ),
        "length",
    ),
    "area": "area",
    "area of defined region": "area",
    "surface area": "area",
    "volume": "volume",
}
#: Two values of one quantity in different units that differ by more than this (relative) are
#: flagged.
UNIT_AGREEMENT_RTOL = 1e-3
#: Derivation (DCM 121401), a concept modifier of a measurement.
_DERIVATION = "121401"
#: Exceptions highdicom and pydicom raise on malformed content items.
_MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError, RuntimeError)


@dataclass(frozen=True)
class SrMeasurement:
    """One numeric measurement (NUM content item) of a measurement group.

    Attributes
    ----------
    name:
        Concept name meaning, e.g. "Volume", "Long Axis", "SUVbw".
    value:
        The measured value (FloatingPointValue when present, else NumericValue).
    unit:
        UCUM code of the unit as stored, e.g. "ml", "mL", "mm", "{SUVbw}g/ml", "1".
    derivation:
        Meaning of the Derivation modifier (e.g. "Maximum", "Mean"), or None.
    modifiers:
        The item's other ``(concept, value)`` modifiers, in document order: HAS CONCEPT MOD
        codes and texts (e.g. ``("Finding Site", "Liver")``, ``("Image transformation",
        "Wavelet transformation")``) and NUM children such as derivation parameters
        (e.g. ``("Kernel size", "1.0 mm")``).
    """

    name: str
    value: float
    unit: str
    derivation: str | None
    modifiers: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """Concept name, derivation and unit, e.g. ``"SUVbw [Mean] ({SUVbw}g/ml)"``,
        ``"Volume (mm3)"``."""
        return _key(self.name, [self.derivation] if self.derivation else [], self.unit)

    @property
    def qualified_key(self) -> str:
        """:attr:`key` with every modifier, e.g. ``"Energy [Image transformation=Wavelet
        transformation; Wavelet sub-band=LLH] (1)"``."""
        parts = [self.derivation] if self.derivation else []
        parts.extend(f"{concept}={value}" for concept, value in self.modifiers)
        return _key(self.name, parts, self.unit)

    @property
    def dimension(self) -> str | None:
        """The dimension of :attr:`unit` ("length", "area", "volume"), or None for a unit
        that is no UCUM length, area or volume unit."""
        known = _UNITS.get(self.unit)
        return known[0] if known else None

    @property
    def expected_dimension(self) -> str | None:
        """The dimension the concept name calls for ("Volume" -> "volume", "Long Axis" ->
        "length", "Area" -> "area"), or None for other quantities."""
        return _NAME_DIMENSIONS.get(self.name.casefold())

    def in_unit(self, unit: str) -> float | None:
        """The value converted to the UCUM ``unit`` ("mm", "cm", "mm2", "ml", "mL", "mm3",
        ...); None when either unit is not a known length / area / volume unit or they
        measure different dimensions (e.g. "1" or "{SUVbw}g/ml" to "ml")."""
        source, target = _UNITS.get(self.unit), _UNITS.get(unit)
        if source is None or target is None or source[0] != target[0]:
            return None
        return self.value * source[1] / target[1]


def _key(name: str, qualifiers: Sequence[str], unit: str) -> str:
    text = f"{name} [{'; '.join(qualifiers)}]" if qualifiers else name
    return f"{text} ({unit})" if unit else text


def keyed_values(measurements: Sequence[SrMeasurement]) -> tuple[dict[str, float], list[str]]:
    """Every measurement under a distinct key, and flags for keys that needed help.

    A measurement is keyed by :attr:`SrMeasurement.key` (concept name, derivation, unit);
    measurements that share it are keyed by :attr:`SrMeasurement.qualified_key` (with their
    other modifiers: finding site, method, image transformation, derivation parameters, ...);
    any that still collide get a ``" #2"``, ``" #3"``, ... suffix and a
    ``measurement-key-collision`` flag.  No value is ever dropped.
    """
    short = Counter(m.key for m in measurements)
    keys = [m.key if short[m.key] == 1 else m.qualified_key for m in measurements]
    values: dict[str, float] = {}
    flags: list[str] = []
    for key, measurement in zip(keys, measurements, strict=True):
        unique, number = key, 1
        while unique in values:
            number += 1
            unique = f"{key} #{number}"
        if unique != key:
            flags.append(
                f"measurement-key-collision: two measurements are both {key!r} "
                f"(same name, derivation, modifiers and unit); the later one is kept as {unique!r}"
            )
        values[unique] = measurement.value
    return values, flags


def _unit_flags(measurements: Sequence[SrMeasurement]) -> list[str]:
    """Geometric measurements whose unit cannot be converted, and one quantity stored in
    several units whose values disagree by more than :data:`UNIT_AGREEMENT_RTOL`."""
    flags: list[str] = []
    by_quantity: dict[tuple, list[SrMeasurement]] = {}
    for m in measurements:
        expected = m.expected_dimension
        if expected is not None and m.dimension != expected:
            flags.append(
                f"unit-not-convertible: {m.name!r} = {m.value:g} {m.unit!r} is not a UCUM "
                f"{expected} unit; kept as stored, not converted"
            )
            continue
        if m.dimension is not None:
            quantity = (m.name.casefold(), m.derivation, m.modifiers, m.dimension)
            by_quantity.setdefault(quantity, []).append(m)
    for group in by_quantity.values():
        first = group[0]
        for other in group[1:]:
            converted = other.in_unit(first.unit)
            if other.unit == first.unit or converted is None:
                continue
            if abs(converted - first.value) > UNIT_AGREEMENT_RTOL * abs(first.value):
                flags.append(
                    f"units-disagree: {first.name!r} is {first.value:g} {first.unit} and "
                    f"{other.value:g} {other.unit} (= {converted:g} {first.unit}) in the same "
                    "group"
                )
    return flags


@dataclass(frozen=True, eq=False)
class SrFinding:
    """One measurement group of a TID 1500 report (TID 1410 planar ROI, TID 1411 volumetric ROI,
    or TID 1501 image measurements).

    Attributes
    ----------
    tracking_id, tracking_uid:
        Tracking Identifier (text) and Tracking Unique Identifier of the group.
    finding_type, finding_site:
        Meanings of the Finding and (first) Finding Site codes, e.g. "Lesion", "Liver".
    seed_lps:
        ``(x, y, z)`` LPS mm: a SCOORD3D POINT (Image Region or Volume Surface) as stored, or an
        SCOORD POINT mapped through the referenced image's header; None otherwise or when the
        image header is not available (see ``flags``).
    image_point:
        ``(column, row)`` of an SCOORD POINT as stored (``(0.5, 0.5)`` = centre of the top-left
        pixel).
    referenced_sop_instance_uid:
        The image an SCOORD refers to (the first one for several regions); for a TID 1501 group,
        its first source image, else the image of its first SCOORD.
    graphic_type:
        POINT, MULTIPOINT, POLYLINE, POLYGON, CIRCLE, ELLIPSE, ELLIPSOID, or None without a
        spatial ROI.  For a TID 1501 group: of the coordinates its measurements are inferred
        from (SCOORD / SCOORD3D anywhere in the group).
    region_lps:
        ``(N, 3)`` LPS mm of a non-point region: SCOORD3D graphic data as stored, or SCOORD
        graphic data mapped through the referenced image(s).  For CIRCLE the rows are the centre
        and a point on the circle; for ELLIPSE the end points of the major then minor axis.
    measurements:
        The group's numeric measurements, in document order.
    referenced_segment:
        ``(SEG SOPInstanceUID, segment number)`` of a Referenced Segment (TID 1411) or Referenced
        Segmentation Frame (TID 1410).
    flags:
        Non-fatal findings, each starting with a keyword: ``image-point-unresolved``,
        ``image-region-unresolved``, ``region-not-a-point``, ``no-roi``, ``empty-group``,
        ``measurement-without-value``, ``unit-not-convertible``, ``units-disagree``,
        ``measurement-key-collision``, ...
    group_template:
        "TID1410", "TID1411" or "TID1501" as classified by highdicom, or None for a group it
        could not classify.
    image_region:
        ``(N, 2)`` SCOORD graphic data ``(column, row)`` as stored, for every SCOORD type.
    frame_of_reference_uid:
        ReferencedFrameOfReferenceUID of SCOORD3D data (or FrameOfReferenceUID of the image an
        SCOORD was mapped through).
    """

    tracking_id: str | None
    tracking_uid: str | None
    finding_type: str | None
    finding_site: str | None
    seed_lps: tuple[float, float, float] | None
    image_point: tuple[float, float] | None
    referenced_sop_instance_uid: str | None
    graphic_type: str | None
    region_lps: np.ndarray | None
    measurements: tuple[SrMeasurement, ...]
    referenced_segment: tuple[str, int] | None
    flags: tuple[str, ...]
    group_template: str | None = None
    image_region: np.ndarray | None = None
    frame_of_reference_uid: str | None = None

    def measurement(self, name: str, derivation: str | None = None) -> SrMeasurement | None:
        """The first measurement with this concept name (case-insensitive) and derivation."""
        wanted = name.casefold()
        for m in self.measurements:
            if m.name.casefold() == wanted and (
                (m.derivation or "").casefold() == (derivation or "").casefold()
            ):
                return m
        return None

    @property
    def measurement_values(self) -> dict[str, float]:
        """Every measurement's value under a distinct key (see :func:`keyed_values`)."""
        return keyed_values(self.measurements)[0]

    @property
    def volume_ml(self) -> float | None:
        """The first "Volume" measurement without derivation, in mL, converted from its UCUM
        unit (mm3, cm3, ml, mL, l, ...); None when absent or in no volume unit."""
        return self._converted(("Volume",), "ml")

    @property
    def longest_diameter_mm(self) -> float | None:
        """The first "Long Axis" (else "Diameter") measurement without derivation, in mm,
        converted from its UCUM unit (um, mm, cm, m, ...); None when absent."""
        return self._converted(("Long Axis", "Diameter"), "mm")

    def _converted(self, names: Sequence[str], unit: str) -> float | None:
        for name in names:
            wanted = name.casefold()
            for m in self.measurements:
                if m.name.casefold() == wanted and m.derivation is None:
                    value = m.in_unit(unit)
                    if value is not None:
                        return value
        return None

    @property
    def region_centre_lps(self) -> tuple[float, float, float] | None:
        """``(x, y, z)`` LPS mm: the centre of a non-point region (a CIRCLE's centre, else the
        centre of the bounding box of ``region_lps``: the centre of an ELLIPSE or ELLIPSOID,
        the midpoint of a two-point line); None without a region in LPS."""
        if self.region_lps is None:
            return None
        return _region_centre(self.graphic_type, self.region_lps)


@dataclass(frozen=True, eq=False)
class SrDocument(AnnotationFile):
    """A TID 1500 Measurement Report read by :func:`read_sr`.

    Attributes
    ----------
    path, sop_instance_uid, series_uid, series_description, study_uid, patient_id:
        Identity of the SR file (:class:`~tcia_trials.source.documents.AnnotationFile`).
    time_point:
        ClinicalTrialTimePointID, else the single TID 1502 "Time Point" of the content tree.
    template:
        "TID1500".
    referenced_series_uids:
        SeriesInstanceUIDs of the evidence (CurrentRequestedProcedureEvidenceSequence, then
        PertinentOtherEvidenceSequence) and of "Source series for segmentation" items, in order.
    findings:
        One :class:`SrFinding` per measurement group, in document order.
    document_title:
        Meaning of the root concept name ("Imaging Measurement Report").
    flags:
        Non-fatal findings about the document as a whole.
    """

    time_point: str | None
    template: str | None
    referenced_series_uids: tuple[str, ...]
    findings: tuple[SrFinding, ...]
    document_title: str | None = None
    flags: tuple[str, ...] = field(default=())


def read_sr(
    path: str | PathLike[str],
    *,
    image_header_for: ImageHeaderLookup | None = None,
) -> SrDocument:
    """Read a DICOM SR TID 1500 Measurement Report.

    Parameters
    ----------
    path:
        The SR file (Enhanced, Comprehensive or Comprehensive 3D SR).
    image_header_for:
        Returns the header (a :class:`pydicom.Dataset` with at least ImagePositionPatient,
        ImageOrientationPatient and PixelSpacing, or the functional groups of a multi-frame
        image) of an image instance given its SOPInstanceUID, or None when it is not available
        (a ``KeyError`` is treated like None).  Needed only to map SCOORD image coordinates to
        LPS; without it such findings get ``seed_lps=None`` and a flag.

    Returns
    -------
    SrDocument
        Findings in document order; coordinates in LPS mm (see the module docstring).

    Raises
    ------
    DicomReadError
        The file is missing or is not DICOM.
    UnsupportedTemplateError
        The document is an SR of another template (the message names the template and the
        document title) or of an SR class highdicom does not read.
    AnnotationError
        The file is not an SR document, or its content tree is malformed.
    """
    path = Path(path)
    ds = _read_dataset(path)
    title_code, title = _document_title(ds)
    template = _template_id(ds)
    doc_flags: list[str] = []
    sop_class = str(ds.get("SOPClassUID", ""))
    described = (
        f"document title {title!r}, template "
        f"{'TID' + template if template else 'not declared'}, "
        f"SOP class {UID(sop_class).name if sop_class else 'missing'}"
    )
    if template != "1500":
        if template is None and title_code == _MEASUREMENT_REPORT_TITLE:
            # Some writers omit ContentTemplateSequence; the title identifies TID 1500.
            template_item = Dataset()
            template_item.MappingResource = "DCMR"
            template_item.TemplateIdentifier = "1500"
            ds.ContentTemplateSequence = [template_item]
            doc_flags.append(
                "template-not-declared: no ContentTemplateSequence; read as TID 1500 because "
                "the document title is 'Imaging Measurement Report'"
            )
        else:
            raise UnsupportedTemplateError(
                f"{path}: not a TID 1500 Measurement Report ({described}); only TID 1500 "
                "measurement reports are read"
            )
    sr_class = _SR_CLASSES.get(sop_class)
    if sr_class is None:
        raise UnsupportedTemplateError(
            f"{path}: SR class not supported for TID 1500 ({described}); supported: "
            "Enhanced SR, Comprehensive SR, Comprehensive 3D SR"
        )
    try:
        valueless, stray = _strip_valueless_numbers(ds)
        doc_flags.extend(stray)
        doc_flags.extend(_stray_numbers(ds))
        sr = sr_class.from_dataset(ds, copy=False)
        report = sr.content
        if not isinstance(report, hd.sr.MeasurementReport):
            raise ValueError("highdicom did not recognize the root as a Measurement Report")
        findings, group_flags = _findings(report, path, image_header_for, valueless)
        evidence = [str(series) for _, series in sr.get_evidence_series()]
        source_series = _source_series(report)
        time_point, time_flags = _time_point(ds, report)
    except AnnotationError:
        raise
    except _MALFORMED as exc:
        raise AnnotationError(
            f"{path}: malformed TID 1500 content tree ({described}): {_short(exc)}"
        ) from exc
    doc_flags.extend(group_flags)
    doc_flags.extend(time_flags)
    return SrDocument(
        **file_identity(path, ds),
        time_point=time_point,
        template="TID1500",
        referenced_series_uids=tuple(dict.fromkeys([*evidence, *source_series])),
        findings=tuple(findings),
        document_title=title,
        flags=tuple(doc_flags),
    )


# --------------------------------------------------------------------------- document level


def _read_dataset(path: Path) -> Dataset:
    if not path.is_file():
        raise DicomReadError(f"{path}: no such file")
    errors = (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError)
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        # No preamble / file meta (seen in TCIA downloads): read the bare dataset.
        try:
            ds = pydicom.dcmread(path, force=True)
            if "SOPClassUID" not in ds:
                raise InvalidDicomError("no SOPClassUID") from None
        except errors:
            raise DicomReadError(f"{path}: cannot be read as DICOM: {exc}") from exc
    except errors as exc:
        raise DicomReadError(f"{path}: cannot be read as DICOM: {exc}") from exc
    if "TransferSyntaxUID" not in ds.file_meta:  # headerless: record how it was read
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            (ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
            if little is not False
            else ExplicitVRBigEndian
        )
    if "ContentSequence" not in ds or "ValueType" not in ds:
        modality = ds.get("Modality", "missing")
        sop_class = ds.get("SOPClassUID")
        raise AnnotationError(
            f"{path}: not a structured report (Modality {modality}, SOP class "
            f"{UID(str(sop_class)).name if sop_class else 'missing'}): no SR content tree"
        )
    return ds


def _document_title(ds: Dataset) -> tuple[tuple[str, str] | None, str | None]:
    try:
        item = ds.ConceptNameCodeSequence[0]
    except (AttributeError, IndexError):
        return None, None
    code = (str(item.get("CodeValue", "")), str(item.get("CodingSchemeDesignator", "")))
    if code[1] == "SRT":  # old SNOMED designator; TID 1500's title is DCM anyway
        code = (code[0], "SCT")
    return code, str(item.get("CodeMeaning", "")) or None


def _template_id(ds: Dataset) -> str | None:
    try:
        return str(ds.ContentTemplateSequence[0].TemplateIdentifier).strip() or None
    except (AttributeError, IndexError):
        return None


def _time_point(ds: Dataset, report: hd.sr.MeasurementReport) -> tuple[str | None, list[str]]:
    value = str(ds.get("ClinicalTrialTimePointID", "") or "").strip()
    if value:
        return value, []
    items = find_content_items(report[0], name=_TIME_POINT, value_type="TEXT", recursive=True)
    values = list(dict.fromkeys(str(item.TextValue).strip() for item in items))
    values = [v for v in values if v]
    if len(values) == 1:
        return values[0], []
    if len(values) > 1:
        return None, [f"several-time-points: the groups name {len(values)} time points: {values}"]
    return None, []


def _source_series(report: hd.sr.MeasurementReport) -> list[str]:
    items = find_content_items(
        report[0],
        name=codes.DCM.SourceSeriesForSegmentation,
        value_type="UIDREF",
        recursive=True,
    )
    return [str(item.UID) for item in items]


# --------------------------------------------------------------------------- groups


def _findings(
    report: hd.sr.MeasurementReport,
    path: Path,
    lookup: ImageHeaderLookup | None,
    valueless: dict[int, list[str]],
) -> tuple[list[SrFinding], list[str]]:
    """One finding per measurement group, in document order."""
    containers = find_content_items(
        report[0], name=codes.DCM.ImagingMeasurements, value_type="CONTAINER"
    )
    flags: list[str] = []
    if not containers:
        return [], flags
    if len(containers) > 1:
        flags.append(
            f"several-imaging-measurements: {len(containers)} 'Imaging Measurements' containers; "
            "only the first is read (as highdicom does)"
        )
    raw_groups = find_content_items(
        containers[0], name=codes.DCM.MeasurementGroup, value_type="CONTAINER"
    )
    classified: list[tuple[str, hd.sr.templates.Template]] = [
        *(("TID1410", g) for g in report.get_planar_roi_measurement_groups()),
        *(("TID1411", g) for g in report.get_volumetric_roi_measurement_groups()),
        *(("TID1501", g) for g in report.get_image_measurement_groups()),
    ]
    # highdicom returns each kind separately (as copies); restore document order by content.
    unmatched = list(classified)
    ordered: list[tuple[str | None, hd.sr.templates.Template]] = []
    for raw in raw_groups:
        for n, (kind, group) in enumerate(unmatched):
            if group[0] == raw:
                ordered.append((kind, group))
                del unmatched[n]
                break
        else:
            ordered.append((None, hd.sr.MeasurementsAndQualitativeEvaluations.from_sequence([raw])))
    ordered.extend(unmatched)  # not expected: highdicom found a group the walk did not
    findings = []
    for number, (kind, group) in enumerate(ordered, start=1):
        # the first len(raw_groups) entries are in document order, as ``valueless`` is keyed
        extra = valueless.get(number - 1, []) if number <= len(raw_groups) else []
        try:
            findings.append(_finding(kind, group, lookup, extra))
        except AnnotationError:
            raise
        except _MALFORMED as exc:
            raise AnnotationError(
                f"{path}: malformed measurement group {number} of {len(ordered)} "
                f"({_describe_group(group)}): {_short(exc)}"
            ) from exc
    return findings, flags


def _strip_valueless_numbers(ds: Dataset) -> tuple[dict[int, list[str]], list[str]]:
    """Remove NUM items whose MeasuredValueSequence is empty (allowed by DICOM, with a
    NumericValueQualifier such as "Measurement failure"; highdicom cannot parse them).

    Returns flags per measurement group (its index among the Measurement Group containers of the
    first Imaging Measurements container, the order highdicom uses) and flags for NUM items
    elsewhere in the tree.
    """
    per_group: dict[int, list[str]] = {}
    elsewhere: list[str] = []
    for n, group in enumerate(_group_items(ds)):
        found = _strip_in(group)
        if found:
            per_group[n] = [f"measurement-without-value: {text}" for text in found]
    for text in _strip_in(ds):
        elsewhere.append(f"measurement-without-value: {text} (outside the measurement groups)")
    return per_group, elsewhere


def _group_items(ds: Dataset) -> list[Dataset]:
    """The Measurement Group containers of the first Imaging Measurements container."""
    for item in ds.get("ContentSequence", []):
        if _is_named(item, "126010", "CONTAINER"):  # Imaging Measurements
            return [
                g for g in item.get("ContentSequence", []) if _is_named(g, "125007", "CONTAINER")
            ]
    return []


def _stray_numbers(ds: Dataset) -> list[str]:
    """Flags for NUM items with a value that no finding holds: outside the measurement groups
    read here (e.g. in "Derived Imaging Measurements") or nested deeper inside a group.  Not
    counted: the Image Library's image descriptors (TID 1601) and NUM children of a NUM (its
    derivation parameters, in :attr:`SrMeasurement.modifiers`)."""
    groups = {id(group) for group in _group_items(ds)}
    flags: list[str] = []

    def walk(parent: Dataset, where: str) -> None:
        for item in parent.get("ContentSequence", []):
            if _is_named(item, "111028", "CONTAINER"):  # Image Library
                continue
            name = _meaning(item.get("ConceptNameCodeSequence")) or "?"
            if item.get("ValueType") != "NUM":
                walk(item, name)
                continue
            if id(parent) in groups or not item.get("MeasuredValueSequence"):
                continue
            value = item.MeasuredValueSequence[0]
            unit = _code_value(value.get("MeasurementUnitsCodeSequence"))
            flags.append(
                f"measurement-outside-groups: {name!r} = {value.NumericValue} {unit} in "
                f"{where!r} is not a measurement of a measurement group; not read as one"
            )

    walk(ds, "the document root")
    return flags


def _strip_in(parent: Dataset) -> list[str]:
    found: list[str] = []
    items = parent.get("ContentSequence")
    if not items:
        return found
    keep = []
    for item in items:
        if item.get("ValueType") == "NUM" and not item.get("MeasuredValueSequence"):
            name = _meaning(item.get("ConceptNameCodeSequence"))
            qualifier = _meaning(item.get("NumericValueQualifierCodeSequence"))
            found.append(f"{name!r} ({qualifier or 'no value and no qualifier'})")
            continue
        found.extend(_strip_in(item))
        keep.append(item)
    if len(keep) != len(items):
        parent.ContentSequence = keep
    return found


def _is_named(item: Dataset, code_value: str, value_type: str) -> bool:
    names = item.get("ConceptNameCodeSequence")
    return (
        item.get("ValueType") == value_type
        and bool(names)
        and str(names[0].get("CodeValue", "")) == code_value
    )


def _meaning(codes_sequence: Sequence[Dataset] | None) -> str | None:
    if not codes_sequence:
        return None
    return str(codes_sequence[0].get("CodeMeaning", "")) or None


def _describe_group(group: hd.sr.templates.Template) -> str:
    try:
        tracking = group.tracking_identifier  # type: ignore[attr-defined]
    except _MALFORMED:
        tracking = None
    return f"tracking identifier {tracking!r}" if tracking else "no tracking identifier"


def _finding(
    kind: str | None,
    group: hd.sr.templates.Template,
    lookup: ImageHeaderLookup | None,
    flags_before: Sequence[str] = (),
) -> SrFinding:
    flags: list[str] = list(flags_before)
    tracking_uid = group.tracking_uid  # type: ignore[attr-defined]
    finding_type = group.finding_type  # type: ignore[attr-defined]
    sites = [site.value.meaning for site in group.finding_sites]  # type: ignore[attr-defined]
    if len(sites) > 1:
        flags.append(f"several-finding-sites: {'; '.join(sites)} (the first is kept)")
    measurements = _measurements(group[0])
    roi = _Roi()
    if kind == "TID1410":
        _planar_roi(group, roi, lookup, flags)  # type: ignore[arg-type]
    elif kind == "TID1411":
        _volumetric_roi(group, roi, lookup, flags)  # type: ignore[arg-type]
    elif kind == "TID1501":
        _image_measurement_roi(group, roi, lookup, flags)  # type: ignore[arg-type]
    else:
        flags.append(
            "unclassified-group: highdicom recognizes no TID 1410/1411/1501 structure in this "
            "measurement group; its measurements are kept, its region (if any) is not read"
        )
    if not measurements and roi.is_empty():
        flags.append("empty-group: no measurement, region or segment reference")
    flags.extend(_unit_flags(measurements))
    flags.extend(keyed_values(measurements)[1])
    return SrFinding(
        tracking_id=group.tracking_identifier,  # type: ignore[attr-defined]
        tracking_uid=str(tracking_uid) if tracking_uid is not None else None,
        finding_type=finding_type.meaning if finding_type is not None else None,
        finding_site=sites[0] if sites else None,
        seed_lps=roi.seed_lps,
        image_point=roi.image_point,
        referenced_sop_instance_uid=roi.referenced_sop_instance_uid,
        graphic_type=roi.graphic_type,
        region_lps=roi.region_lps,
        measurements=tuple(measurements),
        referenced_segment=roi.referenced_segment,
        flags=tuple(flags),
        group_template=kind,
        image_region=roi.image_region,
        frame_of_reference_uid=roi.frame_of_reference_uid,
    )


def _measurements(group_item: Dataset) -> list[SrMeasurement]:
    """The group's NUM items with their derivation and other modifiers (a NUM item without a
    value, i.e. with only a NumericValueQualifier, was flagged by
    :func:`_strip_valueless_numbers`)."""
    out = []
    for item in find_content_items(group_item, value_type="NUM"):
        measurement = hd.sr.Measurement.from_sequence([item])
        derivation = measurement.derivation
        out.append(
            SrMeasurement(
                name=item.name.meaning,
                value=float(measurement.value),
                unit=str(measurement.unit.value),
                derivation=derivation.meaning if derivation is not None else None,
                modifiers=_modifiers(item),
            )
        )
    return out


def _modifiers(item: Dataset) -> tuple[tuple[str, str], ...]:
    """``(concept, value)`` of a NUM item's concept modifiers (CODE or TEXT, except the
    derivation) and NUM children (derivation parameters), in document order."""
    out = []
    for child in item.get("ContentSequence", []):
        concept = _meaning(child.get("ConceptNameCodeSequence")) or "?"
        value_type = child.get("ValueType")
        if value_type == "NUM" and child.get("MeasuredValueSequence"):
            value = child.MeasuredValueSequence[0]
            unit = _code_value(value.get("MeasurementUnitsCodeSequence"))
            out.append((concept, f"{value.NumericValue} {unit}".strip()))
        elif child.get("RelationshipType") != "HAS CONCEPT MOD":
            continue
        elif value_type == "CODE" and _code_value(child.ConceptNameCodeSequence) != _DERIVATION:
            out.append((concept, _meaning(child.get("ConceptCodeSequence")) or "?"))
        elif value_type == "TEXT":
            out.append((concept, str(child.get("TextValue", ""))))
    return tuple(out)


def _code_value(codes_sequence: Sequence[Dataset] | None) -> str:
    return str(codes_sequence[0].get("CodeValue", "")) if codes_sequence else ""


@dataclass
class _Roi:
    seed_lps: tuple[float, float, float] | None = None
    image_point: tuple[float, float] | None = None
    referenced_sop_instance_uid: str | None = None
    graphic_type: str | None = None
    region_lps: np.ndarray | None = None
    referenced_segment: tuple[str, int] | None = None
    image_region: np.ndarray | None = None
    frame_of_reference_uid: str | None = None
    region_in_space: bool = False

    def is_empty(self) -> bool:
        """True when the group names no region, segment or other ROI object."""
        return (
            self.graphic_type is None
            and self.referenced_segment is None
            and not self.region_in_space
        )


def _planar_roi(
    group: hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations,
    roi: _Roi,
    lookup: ImageHeaderLookup | None,
    flags: list[str],
) -> None:
    reference_type = _reference_type(group, flags)
    if reference_type is None:
        return
    if reference_type == codes.DCM.ImageRegion:
        region = group.roi
        if isinstance(region, hd.sr.ImageRegion3D):
            _set_3d(
                roi,
                region.graphic_type.value,
                region.value,
                region.frame_of_reference_uid,
                flags,
            )
        elif isinstance(region, hd.sr.ImageRegion):
            _set_2d(roi, [region], lookup, flags)
    elif reference_type == codes.DCM.ReferencedSegmentationFrame:
        frame = group.referenced_segmentation_frame
        if frame is not None:
            _set_segment(roi, frame[0], flags, planar=True)
    else:
        _region_in_space(group[0], roi, flags)


def _volumetric_roi(
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations,
    roi: _Roi,
    lookup: ImageHeaderLookup | None,
    flags: list[str],
) -> None:
    reference_type = _reference_type(group, flags)
    if reference_type is None:
        return
    if reference_type == codes.DCM.ImageRegion:
        regions = group.roi
        if isinstance(regions, list) and regions:
            _set_2d(roi, regions, lookup, flags)
    elif reference_type == codes.DCM.VolumeSurface:
        surface = group.roi
        if isinstance(surface, hd.sr.VolumeSurface):
            data = np.concatenate(
                [np.asarray(d, float).reshape(-1, 3) for d in surface.graphic_data]
            )
            _set_3d(
                roi,
                surface.graphic_type.value,
                data,
                surface.frame_of_reference_uid,
                flags,
                len(surface.graphic_data),
            )
            if len(surface.graphic_data) > 1:
                flags.append(
                    f"several-surface-items: the volume surface has {len(surface.graphic_data)} "
                    "SCOORD3D items; region_lps concatenates them"
                )
    elif reference_type == codes.DCM.ReferencedSegment:
        segment = group.referenced_segment
        if segment is not None:
            _set_segment(roi, segment[0], flags, planar=False)
    else:
        _region_in_space(group[0], roi, flags)


def _image_measurement_roi(
    group: hd.sr.MeasurementsAndQualitativeEvaluations,
    roi: _Roi,
    lookup: ImageHeaderLookup | None,
    flags: list[str],
) -> None:
    """A TID 1501 group: its first source image, and the coordinates its measurements are
    inferred from (SCOORD / SCOORD3D items anywhere in the group, e.g. the end points of a
    length, the axes of a bidirectional measurement, an ellipse, a probe point)."""
    sources = group.source_images
    if sources:
        roi.referenced_sop_instance_uid = str(sources[0].referenced_sop_instance_uid)
    planar = find_content_items(group[0], value_type="SCOORD", recursive=True)
    spatial = find_content_items(group[0], value_type="SCOORD3D", recursive=True)
    if planar and spatial:
        flags.append(
            f"mixed-coordinates: {len(planar)} SCOORD and {len(spatial)} SCOORD3D items; "
            "only the SCOORD items are read"
        )
    if planar:
        _set_2d(roi, planar, lookup, flags)
    elif spatial:
        types = list(dict.fromkeys(str(item.GraphicType) for item in spatial))
        if len(types) > 1:
            flags.append(f"mixed-graphic-types: the SCOORD3D items are {', '.join(types)}")
        data = [np.asarray(item.GraphicData, dtype=np.float64).reshape(-1, 3) for item in spatial]
        frame_of_reference = spatial[0].get("ReferencedFrameOfReferenceUID")
        _set_3d(roi, types[0], np.concatenate(data), frame_of_reference, flags, len(spatial))


def _reference_type(group: hd.sr.templates.Template, flags: list[str]) -> object | None:
    try:
        return group.reference_type  # type: ignore[attr-defined]
    except RuntimeError:
        flags.append("no-roi: the measurement group references no region, segment or surface")
        return None


def _set_3d(
    roi: _Roi,
    graphic_type: str,
    data: np.ndarray,
    frame_of_reference: object,
    flags: list[str],
    items: int = 1,
) -> None:
    """SCOORD3D graphic data (LPS mm, as stored): a seed when it is one POINT, else a region."""
    data = np.asarray(data, dtype=np.float64).reshape(-1, 3)
    roi.graphic_type = graphic_type
    roi.frame_of_reference_uid = str(frame_of_reference) if frame_of_reference else None
    if graphic_type == "POINT" and items == 1:
        roi.seed_lps = _triplet(data[0])
    else:
        roi.region_lps = data
        flags.append(_not_a_point(graphic_type, items, data))


def _set_2d(
    roi: _Roi,
    regions: Sequence[hd.sr.ScoordContentItem],
    lookup: ImageHeaderLookup | None,
    flags: list[str],
) -> None:
    """SCOORD image region(s): keep the stored (column, row) data and map them to LPS; a seed
    when it is one POINT, else a region."""
    types = list(dict.fromkeys(r.graphic_type.value for r in regions))
    roi.graphic_type = types[0]
    if len(types) > 1:
        flags.append(f"mixed-graphic-types: the image regions are {', '.join(types)}")
    data = [np.asarray(r.value, dtype=np.float64).reshape(-1, 2) for r in regions]
    roi.image_region = np.concatenate(data)
    is_point = len(regions) == 1 and types[0] == "POINT"
    if is_point:
        roi.image_point = (float(data[0][0, 0]), float(data[0][0, 1]))
    keyword = "image-point-unresolved" if is_point else "image-region-unresolved"
    lps = _map_regions(roi, regions, data, lookup, flags, keyword)
    if is_point:
        roi.seed_lps = _triplet(lps[0]) if lps is not None else None
    else:
        roi.region_lps = lps
        flags.append(_not_a_point(types[0], len(regions), lps))


def _map_regions(
    roi: _Roi,
    regions: Sequence[hd.sr.ScoordContentItem],
    data: Sequence[np.ndarray],
    lookup: ImageHeaderLookup | None,
    flags: list[str],
    keyword: str,
) -> np.ndarray | None:
    """``(N, 3)`` LPS mm of the regions' ``(column, row)`` points through their source images'
    headers, or None (with a ``keyword`` flag) when one cannot be mapped."""
    mapped: list[np.ndarray] = []
    images: list[str] = []
    for region, points in zip(regions, data, strict=True):
        source = _source_image(region)
        if source is None:
            flags.append(f"{keyword}: the image region names no source image")
            return None
        sop_uid, frame_number = source
        images.append(sop_uid)
        if roi.referenced_sop_instance_uid is None:
            roi.referenced_sop_instance_uid = sop_uid
        header = _lookup(lookup, sop_uid)
        if header is None:
            flags.append(f"{keyword}: referenced instance {sop_uid} not available")
            return None
        lps, problem = image_to_lps(header, points, frame_number=frame_number, sop_uid=sop_uid)
        if lps is None:
            flags.append(f"{keyword}: {problem}")
            return None
        mapped.append(lps)
        if roi.frame_of_reference_uid is None and header.get("FrameOfReferenceUID"):
            roi.frame_of_reference_uid = str(header.FrameOfReferenceUID)
    if len(regions) > 1:
        flags.append(
            f"several-image-regions: {len(regions)} regions on {len(set(images))} image(s); "
            "image_region and region_lps concatenate them"
        )
    return np.concatenate(mapped)


def _not_a_point(graphic_type: str, count: int, lps: np.ndarray | None) -> str:
    what = graphic_type if count == 1 else f"{count} {graphic_type} regions"
    centre = _region_centre(graphic_type, lps) if lps is not None else None
    where = (
        f"region centre LPS ({centre[0]:.2f}, {centre[1]:.2f}, {centre[2]:.2f}) mm"
        if centre is not None
        else "region not in LPS"
    )
    return f"region-not-a-point: {what}; no seed point taken from it ({where})"


def _region_centre(
    graphic_type: str | None, points: np.ndarray
) -> tuple[float, float, float] | None:
    """The centre of a region in LPS mm: a single CIRCLE's centre (its first point), else the
    centre of the points' bounding box (an ELLIPSE's or ELLIPSOID's centre from its axis end
    points, the midpoint of a two-point line)."""
    if not len(points):
        return None
    if graphic_type == "CIRCLE" and len(points) == 2:
        return _triplet(points[0])
    return _triplet((points.min(axis=0) + points.max(axis=0)) / 2.0)


def _source_image(region: Dataset) -> tuple[str, int | None] | None:
    for item in region.get("ContentSequence", []):
        if item.get("ValueType") == "IMAGE" and item.get("ReferencedSOPSequence"):
            ref = item.ReferencedSOPSequence[0]
            frames = ref.get("ReferencedFrameNumber")
            if frames is not None and not isinstance(frames, int):
                frames = list(frames)
                frame = int(frames[0]) if len(frames) == 1 else None
            else:
                frame = int(frames) if frames is not None else None
            return str(ref.ReferencedSOPInstanceUID), frame
    return None


def _lookup(lookup: ImageHeaderLookup | None, sop_uid: str) -> Dataset | None:
    if lookup is None:
        return None
    try:
        return lookup(sop_uid)
    except KeyError:
        return None


def image_to_lps(
    header: Dataset,
    points: np.ndarray,
    *,
    frame_number: int | None = None,
    sop_uid: str | None = None,
) -> tuple[np.ndarray | None, str]:
    """Map SCOORD image coordinates to LPS through an image header.

    Parameters
    ----------
    header:
        The image (single-frame: ImagePositionPatient, ImageOrientationPatient, PixelSpacing;
        multi-frame: the functional groups of ``frame_number``).
    points:
        ``(N, 2)`` ``(column, row)`` image coordinates, ``(0.5, 0.5)`` = centre of the top-left
        pixel.
    frame_number:
        1-based frame of a multi-frame image (may be omitted for a one-frame image).
    sop_uid:
        The SOPInstanceUID the caller asked for (checked against the header's, for messages).

    Returns
    -------
    (numpy.ndarray or None, str)
        ``(N, 3)`` LPS mm, or None and the reason the header cannot be used.
    """
    name = f"instance {sop_uid or header.get('SOPInstanceUID', '?')}"
    found = header.get("SOPInstanceUID")
    if sop_uid is not None and found is not None and str(found) != sop_uid:
        return None, f"the header given for {name} is instance {found}"
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    try:
        frames = int(header.get("NumberOfFrames", 1) or 1)
        if "PerFrameFunctionalGroupsSequence" in header or frames > 1:
            if frame_number is None and frames == 1:
                frame_number = 1
            if frame_number is None:
                return None, (
                    f"{name} is a {frames}-frame image and the region names no frame number"
                )
            transformer = ImageToReferenceTransformer.for_image(header, frame_number=frame_number)
        else:
            missing = [
                k
                for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
                if not header.get(k)
            ]
            if missing:
                return None, f"{name} has no {', '.join(missing)}"
            transformer = ImageToReferenceTransformer(
                image_position=[float(v) for v in header.ImagePositionPatient],
                image_orientation=[float(v) for v in header.ImageOrientationPatient],
                pixel_spacing=[float(v) for v in header.PixelSpacing],
            )
        return transformer(points), ""
    except _MALFORMED as exc:
        return None, f"{name}: cannot map image coordinates: {_short(exc)}"


def _set_segment(roi: _Roi, item: Dataset, flags: list[str], *, planar: bool) -> None:
    ref = item.ReferencedSOPSequence[0]
    numbers = ref.get("ReferencedSegmentNumber")
    if numbers is not None and not isinstance(numbers, int):
        numbers = list(numbers)
        if len(numbers) > 1:
            flags.append(f"several-segments: {numbers} referenced; the first is kept")
        numbers = numbers[0] if numbers else None
    if numbers is None:
        flags.append(f"segment-number-missing: {ref.ReferencedSOPInstanceUID} names no segment")
        return
    roi.referenced_segment = (str(ref.ReferencedSOPInstanceUID), int(numbers))
    if planar:
        frames = ref.get("ReferencedFrameNumber")
        flags.append(f"segmentation-frame: planar ROI on frame(s) {frames} of the segmentation")


def _region_in_space(group_item: Dataset, roi: _Roi, flags: list[str]) -> None:
    items = find_content_items(group_item, name=_REGION_IN_SPACE, value_type="COMPOSITE")
    uids = [str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for i in items]
    roi.region_in_space = True
    flags.append(
        f"region-in-space: the ROI is defined in instance(s) {', '.join(uids)} "
        "(e.g. an RTSTRUCT); it is not resolved here"
    )


def _short(exc: BaseException) -> str:
    """The exception's first line (highdicom appends whole dataset dumps to some messages)."""
    lines = str(exc).strip().splitlines()
    text = lines[0].rstrip(":") if lines else ""
    return f"{type(exc).__name__}: {text[:300]}"


def _triplet(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))
