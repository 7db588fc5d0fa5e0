"""The neutral dataset definition: frozen dataclasses, validated on construction, no I/O.

A builder (``builders/<name>.py``) is one :class:`TrialSpec`: its :class:`SourceCollection` s
(each with a :class:`License`), the :class:`ConfigSpec` s it offers, its :class:`SplitSpec`, which
series are labels (:class:`LabelSpec`) and how they name lesions (:class:`AnnotationRules`), and
its clinical sheet (:class:`ClinicalSpec`).  Validation errors are ValueErrors naming the field,
the value received and the value expected.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AnnotationRules:
    """How a collection names its annotation series, as data (never per-trial code).

    The default follows the NCTN / EAY131 tumor annotations: one series per lesion, described
    ``"<time point>, <LOCATION> - <n>"`` for contours and masks and
    ``"<time point>, <LOCATION> - <n> - SEED POINT"`` for seed points, and
    ``"<time point>, LESION SEED POINT - NO FINDINGS"`` for an explicit negative.

    Attributes
    ----------
    lesion_pattern:
        Regular expression matched (``re.fullmatch``, case-insensitive) against a series
        description. Named groups: ``label`` (required, e.g. "LIVER - 1"), ``location``
        (e.g. "LIVER"), ``time_point`` and ``seed`` (non-empty when the series holds the seed).
        Series whose description does not match label their lesions by segment / ROI name.
    no_findings_pattern:
        Regular expression searched in a series description, ROI name or segment label that
        marks an explicit "no lesion" annotation.
    time_point_source:
        Where the time point comes from: "tag" (ClinicalTrialTimePointID, falling back to the
        description), "description", or "tag-only".
    annotation_csv_glob:
        File-name pattern of TCIA's annotation metadata CSV (SeriesInstanceUID,
        ReferencedSeriesInstanceUID, Annotation Type) searched in the download's top folders.
    """

    lesion_pattern: str = (
        r"\s*(?:(?P<time_point>[^,]+?)\s*,\s*)?"
        r"(?P<label>(?P<location>.+?)\s*-\s*(?P<number>\d+))"
        r"(?P<seed>\s*-\s*SEED\s+POINT)?\s*"
    )
    no_findings_pattern: str = r"NO\s+FINDINGS"
    time_point_source: str = "tag"
    annotation_csv_glob: str = "*nnotation*metadata*.csv"

    def __post_init__(self) -> None:
        for name in ("lesion_pattern", "no_findings_pattern"):
            try:
                compiled = re.compile(getattr(self, name), re.IGNORECASE)
            except re.error as exc:
                raise ValueError(
                    f"AnnotationRules.{name} is not a valid regular expression: {exc}"
                ) from exc
            if name == "lesion_pattern" and "label" not in compiled.groupindex:
                raise ValueError("AnnotationRules.lesion_pattern needs a named group 'label'")
        if self.time_point_source not in ("tag", "description", "tag-only"):
            raise ValueError(
                "AnnotationRules.time_point_source must be 'tag', 'description' or 'tag-only', "
                f"got {self.time_point_source!r}"
            )


# --------------------------------------------------------------------------------------------
# Controlled vocabularies
# --------------------------------------------------------------------------------------------

#: Roles a source plays in a dataset.
ROLES = ("images", "annotations", "clinical")
#: Access levels: "public" (TCIA / IDC without login) or "controlled" (dbGaP approval, then a
#: CRDC manifest and an API key with the TCIA Data Retriever; the NCTN annotation datasets since
#: 2025).
ACCESS_LEVELS = ("public", "controlled")
#: Configs a builder can offer, in the order cards and catalogs list them.
CONFIG_NAMES = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")
#: Types a clinical column can be declared with.  ``date_offset`` is a whole number of days
#: relative to a per-patient anchor (TCIA shifts dates; offsets are what survives).
CLINICAL_TYPES = ("int", "float", "bool", "category", "date_offset", "string")
#: Where a clinical sheet comes from: a file inside the download ("tcia"), a path the user passes
#: at build time ("user": e.g. NCTN Data Archive sheets, which are not part of a TCIA download),
#: or nowhere ("none").
CLINICAL_SOURCES = ("tcia", "user", "none")
#: The data-problem policy of the package (STYLE.md): raise, warn and record, or skip and record.
ON_INVALID = ("raise", "warn", "skip")
#: Modalities of label (annotation) series.
LABEL_MODALITIES = ("SEG", "RTSTRUCT", "SR")
#: DICOM modality codes (C.7.3.1.1.1) that sources of the known collections carry.
KNOWN_MODALITIES = frozenset(
    {
        *LABEL_MODALITIES,
        "CR",
        "CT",
        "DX",
        "KO",
        "MG",
        "MR",
        "NM",
        "OT",
        "PR",
        "PT",
        "RF",
        "RTDOSE",
        "RTPLAN",
        "SC",
        "SM",
        "US",
        "XA",
    }
)
#: Written where a license is not in the IDC index (e.g. controlled-access NCTN collections):
#: never guess one, send the reader to the collection's TCIA page.
LICENSE_UNKNOWN_NAME = "see TCIA page"

_DOI = re.compile(r"10\.\d{4,9}/[-._;()/:A-Za-z0-9]+")
_NCT = re.compile(r"NCT\d{8}")
_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_TAG = re.compile(r"[a-z0-9]+(?:[-.:][a-z0-9]+)*")
_URL = re.compile(r"https?://\S+")
_BIB_ENTRY = re.compile(r"@(?P<type>[A-Za-z]+)\s*\{\s*(?P<key>[^,\s{}]+)\s*,")
_BIB_FIELD = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_-]*)\s*=\s*")


def _fail(cls: str, field: str, value: object, expected: str) -> ValueError:
    """The one message format of spec validation: field, value received, value expected."""
    return ValueError(f"{cls}.{field}: got {value!r}, expected {expected}")


def _check_regex(cls: str, field: str, pattern: str | None) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise _fail(cls, field, pattern, f"a valid regular expression ({exc})") from exc


def _as_pairs(
    cls: str, field: str, value: Mapping[str, object] | Iterable[tuple[str, object]]
) -> tuple:
    """Freeze a mapping (or pairs) into a tuple of (key, value) pairs, keeping the order."""
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise _fail(cls, field, value, "a dict (or a tuple of (key, value) pairs)")
    else:
        items = list(value)
        if any(not isinstance(item, tuple) or len(item) != 2 for item in items):
            raise _fail(cls, field, value, "a dict (or a tuple of (key, value) pairs)")
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in items)


def parse_version(version: str) -> tuple[int, int, int]:
    """``"MAJOR.MINOR.PATCH"`` -> ``(major, minor, patch)``; ValueError otherwise."""
    match = _SEMVER.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise _fail("TrialSpec", "version", version, 'a semantic version "MAJOR.MINOR.PATCH"')
    return int(match[1]), int(match[2]), int(match[3])


def _bib_value(text: str, pos: int) -> tuple[str, int]:
    """Read one BibTeX field value (``{...}`` with nesting, ``"..."`` or a bare word) at pos."""
    if pos < len(text) and text[pos] == "{":
        depth, start = 0, pos
        for i in range(pos, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start + 1 : i], i + 1
        raise ValueError(f"unbalanced braces in BibTeX value starting {text[pos : pos + 40]!r}")
    if pos < len(text) and text[pos] == '"':
        end = text.find('"', pos + 1)
        if end < 0:
            raise ValueError(f"unterminated quoted BibTeX value starting {text[pos : pos + 40]!r}")
        return text[pos + 1 : end], end + 1
    match = re.compile(r"[^,}\s]+").match(text, pos)
    if match is None:
        raise ValueError(f"missing BibTeX value at {text[pos : pos + 40]!r}")
    return match.group(), match.end()


def parse_bibtex(text: str) -> list[dict[str, str]]:
    """A small BibTeX reader: ``[{"ENTRYTYPE", "ID", field: value, ...}, ...]``.

    Enough for the citations of this package (one ``@type{key, field = {value}, ...}`` entry per
    DOI, braces nested, values in braces, quotes or bare); field names are lower-cased and the
    outer braces of values removed.  Raises ValueError on malformed input.
    """
    entries: list[dict[str, str]] = []
    pos = 0
    while True:
        match = _BIB_ENTRY.search(text, pos)
        if match is None:
            break
        entry = {"ENTRYTYPE": match["type"].lower(), "ID": match["key"]}
        pos = match.end()
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text):
                raise ValueError(f"BibTeX entry {entry['ID']!r} is not closed with '}}'")
            if text[pos] == "}":
                pos += 1
                break
            field = _BIB_FIELD.match(text, pos)
            if field is None:
                raise ValueError(
                    f"BibTeX entry {entry['ID']!r}: expected 'name = value' at "
                    f"{text[pos : pos + 40]!r}"
                )
            value, pos = _bib_value(text, field.end())
            entry[field["name"].lower()] = " ".join(value.split())
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class License:
    """A data license as the IDC index states it (``license_short_name``, ``license_url``,
    ``license_long_name``).  ``url`` is None only for :data:`LICENSE_UNKNOWN`."""

    short_name: str
    url: str | None = None
    long_name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.short_name, str) or not self.short_name.strip():
            raise _fail("License", "short_name", self.short_name, 'a non-empty name ("CC BY 4.0")')
        if self.url is not None and not _URL.fullmatch(self.url):
            raise _fail("License", "url", self.url, "an http(s) URL or None")
        if self.url is None and self.short_name != LICENSE_UNKNOWN_NAME:
            raise _fail(
                "License", "url", self.url, f"a URL (only {LICENSE_UNKNOWN_NAME!r} has none)"
            )

    @property
    def known(self) -> bool:
        """False for :data:`LICENSE_UNKNOWN`."""
        return self.short_name != LICENSE_UNKNOWN_NAME


#: License texts exactly as the IDC index (idc-index-data) gives them.
CC_BY_3_0 = License(
    "CC BY 3.0",
    "https://creativecommons.org/licenses/by/3.0/",
    "Creative Commons Attribution 3.0 Unported License",
)
CC_BY_4_0 = License(
    "CC BY 4.0",
    "https://creativecommons.org/licenses/by/4.0/",
    "Creative Commons Attribution 4.0 International License",
)


def _creative_commons(kind: str, title: str, version: str) -> License:
    """A Creative Commons license, e.g. ``_creative_commons("BY-NC", "Attribution-NonCommercial",
    "4.0")`` is "CC BY-NC 4.0"."""
    scope = "Unported" if version == "3.0" else "International"
    return License(
        f"CC {kind} {version}",
        f"https://creativecommons.org/licenses/{kind.lower()}/{version}/",
        f"Creative Commons {title} {version} {scope} License",
    )


#: Licenses a build can name by their short name or hub id (``"CC BY 4.0"`` or ``cc-by-4.0``);
#: others need their URL.
KNOWN_LICENSES = (
    CC_BY_3_0,
    CC_BY_4_0,
    *(
        _creative_commons(kind, title, version)
        for kind, title in (
            ("BY-SA", "Attribution-ShareAlike"),
            ("BY-NC", "Attribution-NonCommercial"),
            ("BY-NC-SA", "Attribution-NonCommercial-ShareAlike"),
            ("BY-NC-ND", "Attribution-NonCommercial-NoDerivatives"),
        )
        for version in ("3.0", "4.0")
    ),
    License(
        "CC0 1.0",
        "https://creativecommons.org/publicdomain/zero/1.0/",
        "Creative Commons Zero v1.0 Universal",
    ),
    License("Apache-2.0", "https://www.apache.org/licenses/LICENSE-2.0", "Apache License 2.0"),
    License("MIT", "https://opensource.org/license/mit", "MIT License"),
)


def license_named(name: str, url: str | None = None) -> License:
    """The license called ``name``: one of :data:`KNOWN_LICENSES` (by short name or hub id, case
    and punctuation ignored), else a new one at ``url``; ValueError when neither."""
    key = re.sub(r"[^a-z0-9.]+", "-", name.strip().lower())
    for known in KNOWN_LICENSES:
        if key == re.sub(r"[^a-z0-9.]+", "-", known.short_name.lower()):
            return known if url is None else License(known.short_name, url, known.long_name)
    if url is None:
        raise ValueError(
            f"license {name!r} is not one this version knows "
            f"({', '.join(k.short_name for k in KNOWN_LICENSES)}); give its URL as well"
        )
    return License(name.strip(), url)


#: For sources absent from the IDC index: the license is on the collection's TCIA page.
LICENSE_UNKNOWN = License(LICENSE_UNKNOWN_NAME)
#: The ``SourceCollection.note`` of those sources.
NOT_IN_IDC_NOTE = (
    "Not in the IDC index (idc-index-data 25.0.5): license, modalities and patient count are on "
    "the TCIA page."
)


@dataclass(frozen=True)
class SourceCollection:
    """One published dataset a builder reads: a TCIA collection or an analysis result.

    Attributes
    ----------
    name:
        TCIA short name, e.g. ``"EAY131"`` or ``"EAY131-Tumor-Annotations"``.
    title:
        Full title of the dataset as published (TCIA / IDC).
    doi:
        The dataset's DOI (``10.xxxx/...``, case-insensitive); None only for data that has none
        (the synthetic collection).
    role:
        One of :data:`ROLES`.  An image collection that also carries its own segmentations (I-SPY1,
        ACRIN 6698) is "images" with SEG among its modalities.
    license:
        :class:`License`; :data:`LICENSE_UNKNOWN` where the IDC index has no entry.
    access:
        One of :data:`ACCESS_LEVELS`.
    modalities:
        DICOM modalities of this source (IDC ``sources[].modalities``); empty when unknown.
    idc_collection_id:
        IDC ``collection_id`` holding the series, or None when the source is not in IDC.
    idc_analysis_result_id:
        IDC ``analysis_result_id`` for annotation sets published as analysis results.
    subjects:
        Number of patients of this source in this collection (distinct ``PatientID`` of the
        ``idc_index`` rows with this ``collection_id`` and ``source_DOI``); None when unknown.
    note:
        Provenance of the facts above, or why some are missing.
    """

    name: str
    title: str
    doi: str | None
    role: str
    license: License
    access: str = "public"
    modalities: tuple[str, ...] = ()
    idc_collection_id: str | None = None
    idc_analysis_result_id: str | None = None
    subjects: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        cls = "SourceCollection"
        if not isinstance(self.name, str) or not self.name.strip():
            raise _fail(cls, "name", self.name, 'a non-empty TCIA name ("EAY131")')
        if not isinstance(self.title, str) or not self.title.strip():
            raise _fail(cls, "title", self.title, "a non-empty title")
        if self.doi is not None and not (isinstance(self.doi, str) and _DOI.fullmatch(self.doi)):
            raise _fail(cls, "doi", self.doi, 'a DOI like "10.7937/q9rn-m510" (no URL prefix)')
        if self.role not in ROLES:
            raise _fail(cls, "role", self.role, f"one of {ROLES}")
        if not isinstance(self.license, License):
            raise _fail(cls, "license", self.license, "a License (e.g. spec.CC_BY_4_0)")
        if self.access not in ACCESS_LEVELS:
            raise _fail(cls, "access", self.access, f"one of {ACCESS_LEVELS}")
        object.__setattr__(self, "modalities", tuple(self.modalities))
        unknown = [m for m in self.modalities if m not in KNOWN_MODALITIES]
        if unknown:
            raise _fail(
                cls,
                "modalities",
                self.modalities,
                f"DICOM modality codes from {sorted(KNOWN_MODALITIES)}",
            )
        for name in ("idc_collection_id", "idc_analysis_result_id"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and _SNAKE.fullmatch(value)):
                raise _fail(cls, name, value, 'an IDC id in snake_case ("eay131") or None')
        if self.idc_analysis_result_id is not None and self.idc_collection_id is None:
            raise _fail(
                cls,
                "idc_collection_id",
                None,
                f"the collection holding analysis result {self.idc_analysis_result_id!r}",
            )
        if self.idc_collection_id is not None and not self.license.known:
            raise _fail(
                cls,
                "license",
                self.license,
                "the license the IDC index gives (a source in IDC always has one)",
            )
        if self.subjects is not None and (
            isinstance(self.subjects, bool)
            or not isinstance(self.subjects, int)
            or self.subjects < 0
        ):
            raise _fail(cls, "subjects", self.subjects, "a patient count >= 0 or None")

    @property
    def doi_url(self) -> str | None:
        """``https://doi.org/<doi>``, or None."""
        return None if self.doi is None else f"https://doi.org/{self.doi}"

    @property
    def in_idc(self) -> bool:
        """True when the IDC index holds this source (its facts can be checked against it)."""
        return self.idc_collection_id is not None

    @property
    def provides(self) -> tuple[str, ...]:
        """What the source contributes: its role, plus "annotations" for an image collection
        that carries label series (SEG, RTSTRUCT, SR) of its own."""
        if self.role == "images" and any(m in LABEL_MODALITIES for m in self.modalities):
            return ("images", "annotations")
        return (self.role,)


# --------------------------------------------------------------------------------------------
# Labels and clinical data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """Which series of a download are labels (the rest of the annotation series are counted in the
    conversion report as skipped).  How a label series names lesions, time points and seed pairs
    is :class:`AnnotationRules`.

    Attributes
    ----------
    modalities:
        Label modalities read, a subset of :data:`LABEL_MODALITIES`.
    include_pattern:
        Regular expression searched (case-insensitive) in the SeriesDescription; when given, only
        matching label series are read.
    exclude_pattern:
        Regular expression searched in the SeriesDescription; matching series are not read.
    segment_exclude_pattern:
        Regular expression searched in segment labels / ROI names; matching segments or ROIs
        are not lesions (e.g. organ segments stored beside the tumor in one SEG).
    """

    modalities: tuple[str, ...] = LABEL_MODALITIES
    include_pattern: str | None = None
    exclude_pattern: str | None = None
    segment_exclude_pattern: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if not self.modalities or any(m not in LABEL_MODALITIES for m in self.modalities):
            raise _fail(
                "LabelSpec",
                "modalities",
                self.modalities,
                f"a non-empty subset of {LABEL_MODALITIES}",
            )
        _check_regex("LabelSpec", "include_pattern", self.include_pattern)
        _check_regex("LabelSpec", "exclude_pattern", self.exclude_pattern)
        _check_regex("LabelSpec", "segment_exclude_pattern", self.segment_exclude_pattern)

    def selects(self, modality: str, description: str) -> bool:
        """True when a series of this modality and SeriesDescription is a label series."""
        if modality not in self.modalities:
            return False
        text = description or ""
        if self.include_pattern and not re.search(self.include_pattern, text, re.IGNORECASE):
            return False
        return not (self.exclude_pattern and re.search(self.exclude_pattern, text, re.IGNORECASE))

    def selects_segment(self, label: str) -> bool:
        """True when a segment label / ROI name inside a label series names a lesion."""
        pattern = self.segment_exclude_pattern
        return not (pattern and re.search(pattern, label or "", re.IGNORECASE))


@dataclass(frozen=True)
class ClinicalSpec:
    """Where a collection's patient-level clinical sheet comes from and how to type it.

    When the real column names are not known (e.g. NCTN Data Archive sheets, which need their own
    access request), ``columns`` stays empty: the types are then inferred from the sheet at build
    time and the inferred schema is recorded in the output and its card.  Column names are never
    invented here.

    Attributes
    ----------
    source:
        One of :data:`CLINICAL_SOURCES`.
    file_glob:
        For "tcia": glob of the sheet relative to the download folder (``.csv`` or ``.xlsx``),
        e.g. ``"clinical/SYNTH-TRIAL_clinical.csv"``.
    sheet:
        Worksheet name of an ``.xlsx`` (None: the first sheet).
    patient_id_column:
        Column holding the patient id; None when unknown, in which case it must be given at
        build time together with the sheet.
    patient_id_pattern:
        Optional regular expression with a named group ``id``, applied (``re.fullmatch``) to both
        the DICOM PatientID and the sheet's ids to get the join key, e.g.
        ``r"(?:ACNS0332_)?(?P<id>.+)"`` where DICOM ids carry a prefix the sheet lacks.
    columns:
        Column name -> type from :data:`CLINICAL_TYPES`, given as a dict; stored as a tuple of
        pairs in the given order (see :attr:`column_types`).  Empty: types inferred at build time;
        columns of the sheet not listed here are typed by inference as well.
    categories:
        Category column -> its levels in a fixed order (class ids), for columns declared
        "category"; optional.
    missing_values:
        Cell texts read as missing (null) besides empty cells.
    on_invalid:
        What a value that does not fit its declared type does: "raise" (an error naming sheet,
        row, column and value), "warn" (null plus a warning and a report entry), or "skip"
        (null plus a report entry).
    instructions:
        Where the sheet is obtained (shown in cards and in errors when it is missing).
    """

    source: str = "none"
    file_glob: str | None = None
    sheet: str | None = None
    patient_id_column: str | None = None
    patient_id_pattern: str | None = None
    columns: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    categories: Mapping[str, tuple[str, ...]] | tuple[tuple[str, tuple[str, ...]], ...] = ()
    missing_values: tuple[str, ...] = ("NA", "N/A", "NaN", "null", "None")
    on_invalid: str = "raise"
    instructions: str = ""

    def __post_init__(self) -> None:
        cls = "ClinicalSpec"
        if self.source not in CLINICAL_SOURCES:
            raise _fail(cls, "source", self.source, f"one of {CLINICAL_SOURCES}")
        if self.source == "tcia" and not self.file_glob:
            raise _fail(
                cls, "file_glob", self.file_glob, 'a glob inside the download for source "tcia"'
            )
        if self.source != "tcia" and self.file_glob is not None:
            raise _fail(cls, "file_glob", self.file_glob, f"None for source {self.source!r}")
        if self.source == "none" and (self.columns or self.patient_id_column):
            raise _fail(cls, "source", self.source, '"tcia" or "user" when columns are declared')
        if self.source == "user" and not self.instructions.strip():
            raise _fail(
                cls, "instructions", self.instructions, 'where to obtain the sheet (source "user")'
            )
        object.__setattr__(self, "columns", _as_pairs(cls, "columns", self.columns))
        object.__setattr__(self, "categories", _as_pairs(cls, "categories", self.categories))
        object.__setattr__(self, "missing_values", tuple(self.missing_values))
        names = [name for name, _ in self.columns]
        if len(set(names)) != len(names):
            raise _fail(cls, "columns", names, "unique column names")
        for name, kind in self.columns:
            if not isinstance(name, str) or not name:
                raise _fail(cls, "columns", name, "non-empty column names")
            if kind not in CLINICAL_TYPES:
                raise _fail(cls, f"columns[{name!r}]", kind, f"one of {CLINICAL_TYPES}")
        if self.patient_id_column is not None and self.patient_id_column in names:
            raise _fail(
                cls, "columns", self.patient_id_column, "the typed columns, without the patient id"
            )
        types = dict(self.columns)
        for name, levels in self.categories:
            if types.get(name) != "category":
                raise _fail(cls, "categories", name, 'a column declared "category" in columns')
            if not levels or len(set(levels)) != len(levels):
                raise _fail(cls, f"categories[{name!r}]", levels, "distinct, non-empty levels")
        if self.patient_id_pattern is not None:
            _check_regex(cls, "patient_id_pattern", self.patient_id_pattern)
            if "id" not in re.compile(self.patient_id_pattern).groupindex:
                raise _fail(
                    cls, "patient_id_pattern", self.patient_id_pattern, "a named group 'id'"
                )
        if self.on_invalid not in ON_INVALID:
            raise _fail(cls, "on_invalid", self.on_invalid, f"one of {ON_INVALID}")

    @property
    def column_types(self) -> dict[str, str]:
        """Declared column -> type (empty when types are inferred at build time)."""
        return dict(self.columns)

    @property
    def category_levels(self) -> dict[str, tuple[str, ...]]:
        """Category column -> levels, for the declared categories."""
        return dict(self.categories)

    @property
    def infer_types(self) -> bool:
        """True when no column is declared: types are inferred from the sheet at build time."""
        return self.source != "none" and not self.columns


# --------------------------------------------------------------------------------------------
# Configs and splits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowPreset:
    """An intensity window for PNG previews of ``slices_2d`` (display only; arrays stay raw).

    Either a fixed window (``center``, ``width`` in the image's units: HU for CT, SUVbw for PET)
    or, when both are None, percentiles of the slice (``percentiles``, e.g. MR).
    """

    name: str
    modality: str
    center: float | None = None
    width: float | None = None
    percentiles: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        cls = "WindowPreset"
        if not isinstance(self.name, str) or not _SNAKE.fullmatch(self.name):
            raise _fail(cls, "name", self.name, 'a snake_case name ("soft_tissue")')
        if self.modality not in KNOWN_MODALITIES or self.modality in LABEL_MODALITIES:
            raise _fail(cls, "modality", self.modality, "an image modality code (CT, MR, PT, ...)")
        fixed = self.center is not None or self.width is not None
        if fixed == (self.percentiles is not None):
            raise _fail(
                cls,
                "center/width/percentiles",
                (self.center, self.width, self.percentiles),
                "either center and width, or percentiles",
            )
        if fixed and (self.center is None or self.width is None or not self.width > 0):
            raise _fail(cls, "width", self.width, "a positive width with a center")
        if self.percentiles is not None:
            low, high = self.percentiles
            if not 0 <= low < high <= 100:
                raise _fail(
                    cls, "percentiles", self.percentiles, "(low, high) with 0 <= low < high <= 100"
                )


@dataclass(frozen=True)
class ConfigSpec:
    """One builder config (a TFDS ``BuilderConfig`` / an HF config name).

    Attributes
    ----------
    name:
        One of :data:`CONFIG_NAMES`.
    description:
        One paragraph for cards.
    patch_size:
        ``lesion_patches`` only (required there): patch shape ``(slices, rows, cols)`` in voxels,
        centred on the seed point.
    isotropic_spacing_mm:
        ``lesion_patches`` only: resample to this isotropic spacing (mm) before cutting the patch;
        None keeps the series' own grid (lossless, voxel-exact).
    pad_value:
        ``lesion_patches`` only: value of image voxels outside the series where a patch crosses
        its border (mask voxels there are 0 and a valid-region box is recorded); None pads with
        the series' minimum (air for CT).
    window_presets:
        ``slices_2d`` only (required there): windows of the PNG previews.
    slices_per_lesion:
        ``slices_2d`` only: number of axial slices per lesion, centred on the seed slice; None
        takes every slice that holds voxels of the lesion.
    """

    name: str
    description: str
    patch_size: tuple[int, int, int] | None = None
    isotropic_spacing_mm: float | None = None
    pad_value: float | None = None
    window_presets: tuple[WindowPreset, ...] = ()
    slices_per_lesion: int | None = None

    def __post_init__(self) -> None:
        cls = "ConfigSpec"
        if self.name not in CONFIG_NAMES:
            raise _fail(cls, "name", self.name, f"one of {CONFIG_NAMES}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise _fail(cls, "description", self.description, "a non-empty description")
        object.__setattr__(self, "window_presets", tuple(self.window_presets))
        patches = self.name == "lesion_patches"
        slices = self.name == "slices_2d"
        if patches:
            size = self.patch_size
            if (
                not isinstance(size, tuple)
                or len(size) != 3
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in size)
            ):
                raise _fail(
                    cls, "patch_size", size, "three positive voxel counts (slices, rows, cols)"
                )
            if self.isotropic_spacing_mm is not None and not self.isotropic_spacing_mm > 0:
                raise _fail(
                    cls,
                    "isotropic_spacing_mm",
                    self.isotropic_spacing_mm,
                    "a spacing > 0 mm or None",
                )
        else:
            for field in ("patch_size", "isotropic_spacing_mm", "pad_value"):
                if getattr(self, field) is not None:
                    raise _fail(cls, field, getattr(self, field), f"None for config {self.name!r}")
        if slices:
            if not self.window_presets:
                raise _fail(cls, "window_presets", self.window_presets, "at least one WindowPreset")
            names = [w.name for w in self.window_presets]
            if len(set(names)) != len(names):
                raise _fail(cls, "window_presets", names, "unique preset names")
            n = self.slices_per_lesion
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise _fail(cls, "slices_per_lesion", n, "a count >= 1 or None")
        else:
            if self.window_presets:
                raise _fail(
                    cls, "window_presets", self.window_presets, f"() for config {self.name!r}"
                )
            if self.slices_per_lesion is not None:
                raise _fail(
                    cls,
                    "slices_per_lesion",
                    self.slices_per_lesion,
                    f"None for config {self.name!r}",
                )


#: Display windows of the ``slices_2d`` previews.
CT_SOFT_TISSUE = WindowPreset("soft_tissue", "CT", center=40.0, width=400.0)
CT_LUNG = WindowPreset("lung", "CT", center=-600.0, width=1500.0)
CT_BONE = WindowPreset("bone", "CT", center=400.0, width=1800.0)
PT_SUV = WindowPreset("suv_0_10", "PT", center=5.0, width=10.0)
MR_AUTO = WindowPreset("auto", "MR", percentiles=(0.5, 99.5))
DEFAULT_WINDOWS = (CT_SOFT_TISSUE, CT_LUNG, CT_BONE, PT_SUV, MR_AUTO)

VOLUME_CONFIG = ConfigSpec(
    "volume",
    "One example per annotated image series: the whole volume on its own grid (lossless), its "
    "geometry (spacing, origin, direction, affine; LPS mm), the label map of its lesions and the "
    "lesion table.",
)
LESIONS_CONFIG = ConfigSpec(
    "lesions",
    "One row per lesion of every annotation series, also when its images are not downloaded: "
    "label and location, time point, annotation sources, seed point (LPS mm), volume (mL) and "
    "bounding box; measured on the image grid as in volume when the images are there, else from "
    "the annotations alone (no voxel count or bounding box).",
)
LESION_PATCHES_CONFIG = ConfigSpec(
    "lesion_patches",
    "One example per lesion: a fixed-size patch of 32 x 64 x 64 voxels (slices, rows, cols) on "
    "the series' own grid, centred on the seed point, with its mask crop, spacing and the box of "
    "the patch that lies inside the series.",
    patch_size=(32, 64, 64),
)
SLICES_2D_CONFIG = ConfigSpec(
    "slices_2d",
    "Axial slices through each lesion: image and mask as 2D arrays plus windowed PNG previews "
    "the hub viewer can show.",
    window_presets=DEFAULT_WINDOWS,
)
CLINICAL_CONFIG = ConfigSpec(
    "clinical",
    "One row per patient: the typed clinical fields (missing values are null), joined on the "
    "patient id.",
)
#: The five configs with their default parameters, in :data:`CONFIG_NAMES` order.
DEFAULT_CONFIGS = (
    VOLUME_CONFIG,
    LESIONS_CONFIG,
    LESION_PATCHES_CONFIG,
    SLICES_2D_CONFIG,
    CLINICAL_CONFIG,
)
#: The same without ``clinical``, for collections that come with no clinical sheet.
IMAGING_CONFIGS = DEFAULT_CONFIGS[:-1]

#: Releases of the reading core that every builder's datasets share (a builder adds its own).
CORE_RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "1.1.0": (
        "Lesion identity: distinct RTSTRUCT ROIs, SEG segments, seed points and SR measurement "
        "groups are distinct lesions (nothing merged by a shared name), joined across objects "
        "only by tracking UID, SR segment reference or the collection's naming rule; new "
        "lesion fields `origins` and `readers`; RTSTRUCT contour volumes by the even-odd rule. "
        "SR measurements keyed by name, derivation and UCUM unit, volumes and diameters "
        "converted from their units. The lesions config also covers annotation series whose "
        "images are not in the download. Multi-stack series follow a stack policy (--stacks)."
    ),
}

SPLIT_NAMES = ("train", "validation", "test")
_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SplitSpec:
    """Patient-level, deterministic train / validation / test splits.

    A patient's split depends only on its PatientID and the salt, so no patient straddles two
    splits, every config of a builder agrees, and adding patients never moves existing ones:
    ``u = int.from_bytes(sha256(f"{salt}/{patient_id}".encode("utf-8")).digest()[:8], "big")
    / 2**64`` (uniform in [0, 1)); the patient is in "train" when ``u < train``, in
    "validation" when ``u < train + validation``, else in "test".

    Attributes
    ----------
    train, validation, test:
        Fractions in [0, 1] summing to 1 (within 1e-9); ``train`` > 0.  A split with fraction 0
        is not written.
    salt:
        Changes the assignment (e.g. for a different random partition); part of the spec, so a
        change is a content change and bumps the builder's version.
    """

    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    salt: str = "tcia-trials"

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise _fail("SplitSpec", name, value, "a fraction in [0, 1]")
        if not self.train > 0:
            raise _fail("SplitSpec", "train", self.train, "a fraction > 0")
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > _SUM_TOLERANCE:
            raise _fail(
                "SplitSpec",
                "train + validation + test",
                round(total, 12),
                f"fractions summing to 1 (got {self.train} + {self.validation} + {self.test})",
            )
        if not isinstance(self.salt, str):
            raise _fail("SplitSpec", "salt", self.salt, "a string")

    @property
    def names(self) -> tuple[str, ...]:
        """The splits written (fraction > 0), in train / validation / test order."""
        return tuple(n for n in SPLIT_NAMES if getattr(self, n) > 0)

    def unit(self, patient_id: str) -> float:
        """The patient's position in [0, 1) (see the class docstring)."""
        digest = hashlib.sha256(f"{self.salt}/{patient_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def assign(self, patient_id: str) -> str:
        """The split of a patient: "train", "validation" or "test"."""
        u = self.unit(patient_id)
        if u < self.train:
            return "train"
        if u < self.train + self.validation or self.test == 0:
            return "validation"
        return "test"


#: What a stack of a multi-stack series can be chosen by (``"b_value=800"``): the typed stack
#: features of the examples (:data:`tcia_trials.source.frames.STACK_DESCRIPTORS`).
STACK_CHOICE_KEYS = ("b_value", "echo_time", "echo_number", "temporal_index", "trigger_time")
_STACK_POLICY_FORMS = (
    '"single", "each", "index:N" (N >= 0) or "<key>=<number>" with key one of '
    + ", ".join(STACK_CHOICE_KEYS)
)


@dataclass(frozen=True)
class StackPolicy:
    """How an image series holding several stacks (time points, b-values, echoes, ...) becomes
    examples of the image configs (``volume``, ``lesion_patches``, ``slices_2d``).

    Written as text (``TrialSpec.stacks``, ``tt.build(stacks=...)``, ``--stacks``):

    - ``"single"``: only single-stack series are built; a multi-stack series is a recorded skip
      naming its stacks (the examples carry no stack features);
    - ``"each"``: one example (set) per stack;
    - ``"index:N"``: the stack ``N`` (0-based, in the order ``read_volume`` lists them);
    - ``"<key>=<number>"``: the one stack whose feature ``key`` (:data:`STACK_CHOICE_KEYS`)
      equals the number, e.g. ``"b_value=800"`` (s/mm2) or ``"temporal_index=2"``.

    Single-stack series are built whole under every policy.
    """

    mode: str = "single"  # "single", "each", "index" or "key"
    index: int | None = None
    key: str | None = None
    value: float | None = None

    @classmethod
    def parse(cls, text: str, *, owner: str = "StackPolicy") -> StackPolicy:
        """The policy written as ``text`` (see the class docstring); a ValueError naming
        ``owner.stacks`` otherwise."""
        if not isinstance(text, str):
            raise _fail(owner, "stacks", text, _STACK_POLICY_FORMS)
        spelled = text.strip()
        if spelled in ("single", "each"):
            return cls(spelled)
        name, sep, number = spelled.partition(":" if spelled.startswith("index:") else "=")
        try:
            if sep and name == "index" and number.strip().isdigit():
                return cls("index", index=int(number))
            if sep and name.strip() in STACK_CHOICE_KEYS and math.isfinite(float(number)):
                return cls("key", key=name.strip(), value=float(number))
        except ValueError:
            pass
        raise _fail(owner, "stacks", text, _STACK_POLICY_FORMS)

    def __str__(self) -> str:
        if self.mode == "index":
            return f"index:{self.index}"
        if self.mode == "key":
            return f"{self.key}={self.value:g}"
        return self.mode

    @property
    def has_stack_fields(self) -> bool:
        """Whether examples carry the stack features (every policy but "single")."""
        return self.mode != "single"


# --------------------------------------------------------------------------------------------
# The trial
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialSpec:
    """The definition of one labeled trial dataset: what it is, where it comes from, under which
    licenses, and how it is built.  Builders are modules holding ``SPEC = TrialSpec(...)``.

    Attributes
    ----------
    name:
        snake_case, equal to the builder module's name (and the TFDS / HF dataset name).
    title:
        Human-readable title.
    description:
        Markdown for the dataset card.
    trial_ids:
        Trial identifiers: NCT number(s) (``NCT`` + 8 digits) and protocol ids ("EAY131",
        "ACRIN 6698", ...).
    homepage:
        http(s) URL (usually the DOI of the image collection), or None.
    sources:
        The published datasets read (:class:`SourceCollection`), images first.
    citation:
        BibTeX, one entry per source DOI; each entry has a key, ``title`` and ``doi``.
    modalities:
        Image modalities the build reads; other image series are reported as skipped.  Empty:
        every image series an annotation refers to.
    version:
        ``"MAJOR.MINOR.PATCH"``; any change of content bumps it.
    release_notes:
        Version -> text, given as a dict (stored as pairs, see :attr:`notes`); must hold the
        current version and no version above it.
    configs:
        The configs offered (:class:`ConfigSpec`, unique names from :data:`CONFIG_NAMES`);
        default :data:`IMAGING_CONFIGS` (add ``clinical`` with :data:`DEFAULT_CONFIGS` when the
        collection has a clinical source).
    splits:
        :class:`SplitSpec`.
    annotation_rules:
        :class:`AnnotationRules`: how label series name lesions, time points and seeds.
    labels:
        :class:`LabelSpec`: which series are labels.
    clinical:
        :class:`ClinicalSpec`.
    stacks:
        How series holding several stacks (multi-b-value DWI, DCE phases, echoes) become
        examples, as :class:`StackPolicy` text: "single" (default: such series are recorded
        skips), "each", "index:N" or e.g. "b_value=800".
    manual_download_instructions:
        Exact steps to get the data onto disk (NBIA / TCIA Data Retriever manifest or an
        ``idc download`` command) and where to put the folder.
    tags:
        Lower-case keywords for catalogs and hub cards.
    """

    name: str
    title: str
    description: str
    sources: tuple[SourceCollection, ...]
    manual_download_instructions: str
    trial_ids: tuple[str, ...] = ()
    homepage: str | None = None
    citation: str = ""
    modalities: tuple[str, ...] = ()
    version: str = "1.0.0"
    release_notes: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    configs: tuple[ConfigSpec, ...] = IMAGING_CONFIGS
    splits: SplitSpec = SplitSpec()
    annotation_rules: AnnotationRules = AnnotationRules()
    labels: LabelSpec = LabelSpec()
    clinical: ClinicalSpec = ClinicalSpec()
    tags: tuple[str, ...] = ()
    stacks: str = "single"

    def __post_init__(self) -> None:
        cls = "TrialSpec"
        StackPolicy.parse(self.stacks, owner=cls)
        if not isinstance(self.name, str) or not _SNAKE.fullmatch(self.name):
            raise _fail(cls, "name", self.name, 'a snake_case module name ("eay131")')
        for field in ("title", "description", "manual_download_instructions"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                raise _fail(cls, field, value, "a non-empty string")
        for field in ("sources", "trial_ids", "modalities", "configs", "tags"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        object.__setattr__(
            self, "release_notes", _as_pairs(cls, "release_notes", self.release_notes)
        )
        self._check_sources()
        self._check_ids()
        self._check_version()
        self._check_configs()
        self._check_citation()
        for field, kind in (
            ("splits", SplitSpec),
            ("annotation_rules", AnnotationRules),
            ("labels", LabelSpec),
            ("clinical", ClinicalSpec),
        ):
            if not isinstance(getattr(self, field), kind):
                raise _fail(cls, field, getattr(self, field), f"a {kind.__name__}")
        bad_tags = [t for t in self.tags if not isinstance(t, str) or not _TAG.fullmatch(t)]
        if bad_tags or len(set(self.tags)) != len(self.tags):
            raise _fail(cls, "tags", self.tags, 'unique lower-case tags ("oncology", "ct")')

    def _check_sources(self) -> None:
        cls = "TrialSpec"
        if any(not isinstance(s, SourceCollection) for s in self.sources):
            raise _fail(cls, "sources", self.sources, "SourceCollection objects")
        dois = [s.doi.lower() for s in self.sources if s.doi]
        if len(set(dois)) != len(dois):
            raise _fail(cls, "sources", dois, "one source per DOI")
        image_modalities = {
            m for s in self.sources if s.role == "images" for m in s.modalities
        } - set(LABEL_MODALITIES)
        for m in self.modalities:
            if m not in KNOWN_MODALITIES or m in LABEL_MODALITIES:
                raise _fail(
                    cls, "modalities", self.modalities, "image modality codes (CT, MR, PT, ...)"
                )
            if image_modalities and m not in image_modalities:
                raise _fail(
                    cls,
                    "modalities",
                    self.modalities,
                    f"modalities of the image sources ({sorted(image_modalities)})",
                )
        if len(set(self.modalities)) != len(self.modalities):
            raise _fail(cls, "modalities", self.modalities, "unique modality codes")

    def _check_ids(self) -> None:
        cls = "TrialSpec"
        for trial_id in self.trial_ids:
            if not isinstance(trial_id, str) or not trial_id.strip():
                raise _fail(cls, "trial_ids", self.trial_ids, "non-empty identifiers")
            if trial_id.upper().startswith("NCT") and not _NCT.fullmatch(trial_id):
                raise _fail(cls, "trial_ids", trial_id, 'an NCT number "NCT" + 8 digits')
        if self.homepage is not None and not _URL.fullmatch(str(self.homepage)):
            raise _fail(cls, "homepage", self.homepage, "an http(s) URL or None")

    def _check_version(self) -> None:
        current = parse_version(self.version)
        notes = dict(self.release_notes)
        if len(notes) != len(self.release_notes):
            raise _fail("TrialSpec", "release_notes", self.release_notes, "one entry per version")
        if self.version not in notes:
            raise _fail(
                "TrialSpec",
                "release_notes",
                sorted(notes),
                f"an entry for the current version {self.version!r}",
            )
        for version, text in notes.items():
            try:
                parsed = parse_version(version)
            except ValueError:
                raise _fail(
                    "TrialSpec", "release_notes", version, 'versions "MAJOR.MINOR.PATCH"'
                ) from None
            if parsed > current:
                raise _fail(
                    "TrialSpec", "release_notes", version, f"versions up to {self.version!r}"
                )
            if not isinstance(text, str) or not text.strip():
                raise _fail("TrialSpec", f"release_notes[{version!r}]", text, "a non-empty text")

    def _check_configs(self) -> None:
        cls = "TrialSpec"
        if not self.configs or any(not isinstance(c, ConfigSpec) for c in self.configs):
            raise _fail(cls, "configs", self.configs, "one or more ConfigSpec")
        names = [c.name for c in self.configs]
        if len(set(names)) != len(names):
            raise _fail(cls, "configs", names, "unique config names")
        if "clinical" in names and self.clinical.source == "none":
            raise _fail(
                cls,
                "configs",
                names,
                'no "clinical" config when clinical.source is "none" (or a clinical source)',
            )

    def _check_citation(self) -> None:
        cls = "TrialSpec"
        try:
            entries = parse_bibtex(self.citation)
        except ValueError as exc:
            raise _fail(cls, "citation", self.citation[:60], f"valid BibTeX ({exc})") from exc
        keys = [e["ID"] for e in entries]
        if len(set(keys)) != len(keys):
            raise _fail(cls, "citation", keys, "unique BibTeX keys")
        for entry in entries:
            missing = [f for f in ("title", "doi") if not entry.get(f)]
            if missing:
                raise _fail(cls, "citation", entry["ID"], f"an entry with {', '.join(missing)}")
        cited = [e["doi"].lower() for e in entries]
        wanted = sorted(s.doi.lower() for s in self.sources if s.doi)
        if sorted(cited) != wanted:
            raise _fail(cls, "citation", sorted(cited), f"one BibTeX entry per source DOI {wanted}")

    # -- views ---------------------------------------------------------------------------------

    @property
    def stack_policy(self) -> StackPolicy:
        """:attr:`stacks` parsed."""
        return StackPolicy.parse(self.stacks)

    @property
    def config_names(self) -> tuple[str, ...]:
        """Names of the configs offered, in declaration order."""
        return tuple(c.name for c in self.configs)

    def config(self, name: str) -> ConfigSpec:
        """The config called ``name``; KeyError listing the configs offered otherwise."""
        for config in self.configs:
            if config.name == name:
                return config
        raise KeyError(
            f"builder {self.name!r} has no config {name!r}; its configs are {list(self.config_names)}"
        )

    @property
    def notes(self) -> dict[str, str]:
        """Release notes, version -> text."""
        return dict(self.release_notes)

    @property
    def current_release_notes(self) -> str:
        """The release notes of :attr:`version`."""
        return self.notes[self.version]

    @property
    def dois(self) -> tuple[str, ...]:
        """DOIs of the sources, in source order."""
        return tuple(s.doi for s in self.sources if s.doi)

    @property
    def access(self) -> str:
        """ "controlled" when any source is, else "public"."""
        return "controlled" if any(s.access == "controlled" for s in self.sources) else "public"

    @property
    def citation_entries(self) -> list[dict[str, str]]:
        """The citation parsed (:func:`parse_bibtex`)."""
        return parse_bibtex(self.citation)

    def sources_with_role(self, role: str) -> tuple[SourceCollection, ...]:
        """Sources that provide ``role`` ("images", "annotations" or "clinical")."""
        if role not in ROLES:
            raise _fail("TrialSpec", "role", role, f"one of {ROLES}")
        return tuple(s for s in self.sources if role in s.provides)

    def license_summary(self) -> str:
        """One line per dataset card: what each license covers, e.g.
        ``"images CC BY 3.0, annotations CC BY 4.0"`` or ``"images and annotations CC BY 4.0"``.
        Licenses missing from the IDC index read ``"images and annotations: see TCIA page"``."""
        grouped: dict[str, list[str]] = {}
        for source in self.sources:
            parts = grouped.setdefault(source.license.short_name, [])
            parts.extend(p for p in source.provides if p not in parts)
        if not grouped:
            return "no published source (license given at build time)"
        pieces = []
        for short_name, parts in grouped.items():
            ordered = [p for p in ROLES if p in parts]
            what = (
                ordered[0] if len(ordered) == 1 else ", ".join(ordered[:-1]) + " and " + ordered[-1]
            )
            known = short_name != LICENSE_UNKNOWN_NAME
            pieces.append(f"{what} {short_name}" if known else f"{what}: {short_name}")
        return ", ".join(pieces)


#: The ``SourceCollection.note`` of sources described at build time (:func:`with_user_sources`).
USER_SOURCE_NOTE = "License and citation given at build time."


def with_user_sources(
    spec: TrialSpec, *, name: str, license: License, citation: str = ""
) -> TrialSpec:
    """``spec`` (a builder without sources, such as ``generic``) describing data given at build
    time: one source per BibTeX entry of ``citation`` (each with a title and a DOI; its key names
    the source), or one source called ``name`` without DOI, all under ``license``."""
    if spec.sources:
        raise ValueError(
            f"builder {spec.name!r} states the license and citation of its sources "
            f"({spec.license_summary()}); a license and citation are given at build time only "
            "to a builder without sources, such as 'generic'"
        )
    try:
        entries = parse_bibtex(citation)
    except ValueError as exc:
        raise ValueError(f"citation: not valid BibTeX ({exc})") from None
    if citation.strip() and not entries:
        raise ValueError(
            "citation: expected BibTeX, one '@misc{key, title = {...}, doi = {...}}' entry per "
            f"dataset, got {citation.strip()[:60]!r}"
        )
    for entry in entries:
        missing = [f for f in ("title", "doi") if not entry.get(f)]
        if missing:
            raise ValueError(
                f"citation: entry {entry['ID']!r} has no {' and no '.join(missing)}; each entry "
                "cites a dataset by its title and DOI"
            )
    described = {"role": "images", "license": license, "note": USER_SOURCE_NOTE}
    sources = tuple(
        SourceCollection(name=e["ID"], title=e["title"], doi=e["doi"], **described) for e in entries
    ) or (SourceCollection(name=name, title=name, doi=None, **described),)
    return replace(spec, sources=sources, citation=citation.strip())
