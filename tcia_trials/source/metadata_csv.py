"""Parse the ``metadata.csv`` that TCIA download tools write next to the images.

Two dialects exist:

* ``"nbia"``: the classic NBIA Data Retriever table (``Series UID, Collection, 3rd Party Analysis,
  Data Description URI, Subject ID, Study UID, Study Description, Study Date, Series Description,
  Manufacturer, Modality, SOP Class Name, SOP Class UID, Number of Images, File Size, File Location,
  Download Timestamp``).  Values are written *unquoted*, so a description such as
  ``Pre-dose, LIVER - 1`` adds a comma to the row (in ``Series Description`` and again in
  ``File Location``).  Rows with more fields than the header are re-aligned by anchoring on the
  fields that have a recognizable shape (UIDs, the SOP Class UID, integer counts, dates, the
  ``./`` file location, the timestamp); free-text fields take whatever lies between.
* ``"tcia"``: any other header, e.g. the newer TCIA Data Retriever's quoted table with names like
  ``SeriesInstanceUID``, ``PatientID``, ``NumberOfImages``, ``FileLocation``.  Columns are mapped by
  normalized aliases (case, spaces and punctuation ignored), so unknown spellings of known fields
  still work; rows that do not fit the header are re-aligned the same way.

Rows that cannot be aligned are not fatal: they are reported in :attr:`MetadataTable.issues`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from tcia_trials.errors import DownloadLayoutError

__all__ = [
    "METADATA_FILE_NAMES",
    "MetadataRow",
    "MetadataTable",
    "normalize_column",
    "parse_metadata_csv",
    "read_metadata_csv",
    "read_series_json",
    "resolve_location",
]

#: File names (lower case) recognized as series metadata tables.
METADATA_FILE_NAMES = frozenset({"metadata.csv", "series_metadata.csv"})

# Canonical field -> normalized column-name aliases (see normalize_column).
_ALIASES: dict[str, tuple[str, ...]] = {
    "series_uid": ("seriesuid", "seriesinstanceuid", "seriesinstance", "seriesid"),
    "study_uid": ("studyuid", "studyinstanceuid", "studyinstance"),
    "patient_id": ("subjectid", "patientid", "subject", "patient", "caseid"),
    "collection": ("collection", "collectionid", "collectionname", "project", "projectname"),
    "modality": ("modality",),
    "series_description": ("seriesdescription", "seriesdesc"),
    "study_description": ("studydescription", "studydesc"),
    "study_date": ("studydate",),
    "series_number": ("seriesnumber",),
    "manufacturer": ("manufacturer",),
    "sop_class_uid": ("sopclassuid",),
    "sop_class_name": ("sopclassname",),
    "number_of_images": (
        "numberofimages",
        "imagecount",
        "numimages",
        "numberofinstances",
        "instancecount",
        "numberofseriesrelatedinstances",
        "seriesinstancecount",
        "images",
    ),
    "file_size": ("filesize", "seriessize", "size"),
    "file_location": (
        "filelocation",
        "location",
        "path",
        "filepath",
        "seriesfolder",
        "seriespath",
        "folder",
        "directory",
    ),
    "timestamp": ("downloadtimestamp", "timestamp", "downloaddate", "downloadtime"),
    "third_party": ("3rdpartyanalysis", "thirdpartyanalysis"),
    "uri": ("datadescriptionuri", "collectionuri", "doi"),
}
_FIELD_OF_ALIAS = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

# The classic NBIA Data Retriever header, normalized.
_NBIA_REQUIRED = {"seriesuid", "subjectid", "filelocation"}

_UID = re.compile(r"^\s*[0-9]+(\.[0-9]+)+\s*$")
_INT = re.compile(r"^\s*[0-9]+\s*$")
_DATE = re.compile(
    r"^\s*([0-9]{2}-[0-9]{2}-[0-9]{4}|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{8}"
    r"|[0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}|[0-9]{4}/[0-9]{2}/[0-9]{2})?\s*$"
)
_TIMESTAMP = re.compile(r"^\s*([0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?([+-][0-9:]+|Z)?)?\s*$")
_MODALITY = re.compile(r"^\s*[A-Z0-9_ ]{0,16}\s*$")
_SIZE = re.compile(
    r"^\s*([0-9]{1,3}(,[0-9]{3})+|[0-9]+)(\.[0-9]+)?\s*([KMGT]?B|bytes|[KMGT]i?B)?\s*$", re.I
)
_LOCATION = re.compile(r"^\s*(\.{1,2}[/\\]|[/\\]|[A-Za-z]:[/\\]|~[/\\])")
_NUMBER = re.compile(r"^\s*[0-9]+(\.[0-9]*)?\s*$")
# A value that starts like the second half of a company name ("Hologic, Inc.").
_COMPANY_TAIL = re.compile(
    r"^\s+(inc|ltd|llc|gmbh|co|corp|corporation|ag|s\.?a|b\.?v|n\.?v|plc|limited|kg)\b\.?", re.I
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")

_INF = float("inf")


def normalize_column(name: str) -> str:
    """Return a column name lower-cased with everything but letters and digits removed."""
    return _NOT_ALNUM.sub("", name.strip().strip('"').lower())


@dataclass(frozen=True, slots=True)
class MetadataRow:
    """One series listed in a metadata table (fields are ``None`` when the column is absent)."""

    series_uid: str
    line: int
    study_uid: str | None = None
    patient_id: str | None = None
    collection: str | None = None
    modality: str | None = None
    series_description: str | None = None
    study_description: str | None = None
    study_date: str | None = None
    sop_class_uid: str | None = None
    number_of_images: int | None = None
    file_location: str | None = None
    values: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MetadataTable:
    """A parsed metadata table: its rows in file order, and the lines that could not be used."""

    path: Path
    dialect: str  # "nbia" (classic NBIA Data Retriever) or "tcia" (any other header)
    columns: tuple[str, ...]
    rows: tuple[MetadataRow, ...]
    issues: tuple[str, ...] = ()

    def by_series(self) -> dict[str, MetadataRow]:
        """Rows by SeriesInstanceUID (the first row wins when a series is listed twice)."""
        out: dict[str, MetadataRow] = {}
        for row in self.rows:
            out.setdefault(row.series_uid, row)
        return out


# ------------------------------------------------------------------------------------------------
# Column shapes used to re-align rows whose free-text values contain commas.


@dataclass(frozen=True, slots=True)
class _Shape:
    fits: Callable[[str], bool]
    extra_cost: float  # cost of each token beyond the first; inf = exactly one token
    description: bool = False  # compared with the file location as a tie-breaker


def _any(_: str) -> bool:
    return True


def _uid(value: str) -> bool:
    return bool(_UID.match(value))


def _opt_uid(value: str) -> bool:
    return value.strip() == "" or bool(_UID.match(value))


def _opt_int(value: str) -> bool:
    return value.strip() == "" or bool(_INT.match(value))


def _opt_number(value: str) -> bool:
    return value.strip() == "" or bool(_NUMBER.match(value))


def _location(value: str) -> bool:
    return value.strip() == "" or bool(_LOCATION.match(value))


def _size(value: str) -> bool:
    return value.strip() == "" or bool(_SIZE.match(value))


def _shape_of(field_name: str | None) -> _Shape:
    """The shape of a column, by its canonical field name (``None`` for unknown columns)."""
    if field_name == "series_uid":
        return _Shape(_uid, _INF)
    if field_name in ("study_uid", "sop_class_uid"):
        return _Shape(_opt_uid, _INF)
    if field_name == "number_of_images":
        return _Shape(_opt_int, _INF)
    if field_name == "series_number":
        return _Shape(_opt_number, _INF)
    if field_name == "study_date":
        return _Shape(lambda v: bool(_DATE.match(v)), _INF)
    if field_name == "timestamp":
        return _Shape(lambda v: bool(_TIMESTAMP.match(v)), _INF)
    if field_name == "modality":
        return _Shape(lambda v: bool(_MODALITY.match(v)), _INF)
    if field_name == "file_size":
        return _Shape(_size, 2.0)
    if field_name == "file_location":
        return _Shape(_location, 1.0)
    if field_name in ("series_description", "study_description"):
        return _Shape(_any, 1.0, description=True)
    if field_name == "manufacturer":
        return _Shape(_any, 3.0)
    return _Shape(_any, 5.0)


def _normalized_text(value: str) -> str:
    return _NOT_ALNUM.sub("", value.lower())


def _align(tokens: list[str], shapes: list[_Shape], location_index: int | None) -> list[str] | None:
    """Group ``tokens`` (a row split on every comma) into ``len(shapes)`` fields.

    Each field takes one or more consecutive tokens, joined back with commas.  Fields with a
    recognizable shape must match it and take exactly one token (except file locations and sizes);
    free-text fields may absorb extra tokens at a per-token cost.  The grouping of least total cost
    wins.  Tie-breakers: a field cannot well start with a company-name tail (``" Inc."``), and a
    description should appear in the file location (NBIA folder names repeat the study and series
    descriptions).  Returns ``None`` when no grouping fits.
    """
    n_cols, n_tok = len(shapes), len(tokens)
    extra = n_tok - n_cols
    if extra < 0:
        return None
    location_text = ""
    if location_index is not None:
        for i in range(location_index, n_tok):
            if _LOCATION.match(tokens[i]):
                location_text = _normalized_text(",".join(tokens[i:]))
                break
    normalized = [_normalized_text(t) for t in tokens] if location_text else []

    # best[c][k]: least cost of placing fields c.. when field c starts at token c + k.
    best: list[list[float]] = [[_INF] * (extra + 1) for _ in range(n_cols + 1)]
    take: list[list[int]] = [[0] * (extra + 1) for _ in range(n_cols + 1)]
    best[n_cols][extra] = 0.0
    for c in range(n_cols - 1, -1, -1):
        shape = shapes[c]
        next_best = best[c + 1]
        for k in range(extra + 1):
            start = c + k
            penalty = 10.0 if c > 0 and _COMPANY_TAIL.match(tokens[start]) else 0.0
            max_span = 1 if shape.extra_cost == _INF else extra - k + 1
            for span in range(1, max_span + 1):
                cost = next_best[k + span - 1]
                if cost == _INF:
                    continue
                if shape.fits is not _any:
                    value = tokens[start] if span == 1 else ",".join(tokens[start : start + span])
                    if not shape.fits(value):
                        continue
                cost += penalty
                if span > 1:
                    cost += (span - 1) * shape.extra_cost
                if shape.description and location_text:
                    text = "".join(normalized[start : start + span])
                    if text and text not in location_text:
                        cost += 2.0
                if cost < best[c][k]:
                    best[c][k] = cost
                    take[c][k] = span
    if best[0][0] == _INF:
        return None
    out: list[str] = []
    k = 0
    for c in range(n_cols):
        span = take[c][k]
        out.append(",".join(tokens[c + k : c + k + span]))
        k += span - 1
    return out


# ------------------------------------------------------------------------------------------------
# Reading


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _split_line(line: str) -> list[list[str]]:
    """Candidate tokenizations of one physical line: CSV-quoted first, then a plain split."""
    candidates: list[list[str]] = []
    try:
        parsed = next(csv.reader([line], strict=False), [])
        candidates.append(parsed)
    except csv.Error:
        pass
    plain = line.split(",")
    if plain not in candidates:
        candidates.append(plain)
    return candidates


def _to_int(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(float(value.strip().replace(",", "")))
    except ValueError:
        return None


def _opt(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _make_row(
    values: list[str], columns: list[str], fields: list[str | None], line: int
) -> MetadataRow | None:
    by_field: dict[str, str] = {}
    for value, name in zip(values, fields, strict=True):
        if name is not None and name not in by_field:
            by_field[name] = value
    series_uid = (by_field.get("series_uid") or "").strip()
    if not series_uid:
        return None
    return MetadataRow(
        series_uid=series_uid,
        line=line,
        study_uid=_opt(by_field.get("study_uid")),
        patient_id=_opt(by_field.get("patient_id")),
        collection=_opt(by_field.get("collection")),
        modality=_opt(by_field.get("modality")),
        series_description=_opt(by_field.get("series_description")),
        study_description=_opt(by_field.get("study_description")),
        study_date=_opt(by_field.get("study_date")),
        sop_class_uid=_opt(by_field.get("sop_class_uid")),
        number_of_images=_to_int(by_field.get("number_of_images")),
        file_location=_opt(by_field.get("file_location")),
        values=dict(zip(columns, values, strict=True)),
    )


def _records(text: str, quoted: bool) -> Iterable[tuple[int, list[list[str]]]]:
    """Yield (line number, candidate tokenizations) for each data record after the header."""
    if quoted:
        reader = csv.reader(io.StringIO(text, newline=""), strict=False)
        previous_end = 0
        for i, record in enumerate(reader):
            start, previous_end = previous_end + 1, reader.line_num
            if i == 0 or not any(v.strip() for v in record):
                continue
            yield start, [record]
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if number == 1 or not line.strip():
            continue
        yield number, _split_line(line)


def parse_metadata_csv(text: str, *, source: str | Path = "metadata.csv") -> MetadataTable:
    """Parse the text of a metadata table (either dialect).

    Raises :class:`DownloadLayoutError` when the text has no header naming a series UID column.
    """
    source = Path(source)
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise DownloadLayoutError(
            f"{source}: the metadata table is empty; expected a header line such as "
            "'Series UID,Collection,...,Number of Images,File Size,File Location,...'"
        )
    header_line = lines[first]
    if first:  # skip leading blank lines, keep line numbers of the file
        text = "\n".join(lines[first:])
    columns = [c.strip() for c in next(csv.reader([header_line], strict=False))]
    normalized = [normalize_column(c) for c in columns]
    fields = [_FIELD_OF_ALIAS.get(n) for n in normalized]
    if "series_uid" not in fields:
        raise DownloadLayoutError(
            f"{source}: the header {header_line[:200]!r} has no series UID column; expected "
            "'Series UID' (NBIA Data Retriever) or 'SeriesInstanceUID' (TCIA Data Retriever)"
        )
    dialect = "nbia" if set(normalized) >= _NBIA_REQUIRED else "tcia"
    strict = [_shape_of(f) for f in fields]
    # Fallback when a value has an unexpected shape (a lower-case modality, a location without
    # "./"): only the UIDs stay anchored; other fields accept anything, at the same costs.
    relaxed = [
        shape
        if f in ("series_uid", "study_uid", "sop_class_uid")
        else _Shape(_any, shape.extra_cost, shape.description)
        for shape, f in zip(strict, fields, strict=True)
    ]
    location_index = fields.index("file_location") if "file_location" in fields else None
    # Tools other than the classic NBIA Data Retriever write proper CSV (quoted values may hold
    # commas and line breaks); the classic table is read line by line, so that a stray quote in
    # an unquoted description cannot swallow the following lines.
    quoted = dialect != "nbia" or header_line.lstrip().startswith('"')

    rows: list[MetadataRow] = []
    issues: list[str] = []
    for line, candidates in _records(text, quoted):
        line += first
        values = next((t for t in candidates if len(t) == len(columns)), None)
        for shapes in (strict, relaxed):
            for tokens in candidates:
                if values is None and len(tokens) > len(columns):
                    values = _align(tokens, shapes, location_index)
        if values is None:
            n = max(len(t) for t in candidates)
            issues.append(
                f"{source} line {line}: {n} comma-separated values do not fit the "
                f"{len(columns)} columns of the header (UIDs, counts, file location and "
                "timestamp not where the header puts them); row ignored"
            )
            continue
        row = _make_row([v.strip() if quoted else v for v in values], columns, fields, line)
        if row is None:
            issues.append(f"{source} line {line}: empty series UID; row ignored")
            continue
        rows.append(row)
    return MetadataTable(
        path=source, dialect=dialect, columns=tuple(columns), rows=tuple(rows), issues=tuple(issues)
    )


def read_metadata_csv(path: str | Path) -> MetadataTable:
    """Read and parse a metadata table file (see :func:`parse_metadata_csv`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DownloadLayoutError(f"{path}: cannot read the metadata table: {exc}") from exc
    if b"\x00" in data[:4096]:
        raise DownloadLayoutError(
            f"{path}: the metadata table is binary, not comma-separated text; expected the CSV "
            "written by the NBIA / TCIA Data Retriever"
        )
    return parse_metadata_csv(_decode(data), source=path)


def read_series_json(path: str | Path) -> MetadataRow | None:
    """Read a per-series metadata JSON (TCIA Data Retriever ``metadata/<SeriesUID>.json``).

    Returns ``None`` when the file is not such a record (no series UID key).
    """
    path = Path(path)
    try:
        record = json.loads(_decode(path.read_bytes()))
    except (OSError, ValueError):
        return None
    if isinstance(record, list) and len(record) == 1:
        record = record[0]
    if not isinstance(record, dict):
        return None
    columns = [str(k) for k in record]
    values = ["" if v is None else str(v) for v in record.values()]
    fields = [_FIELD_OF_ALIAS.get(normalize_column(c)) for c in columns]
    if "series_uid" not in fields:
        return None
    return _make_row(values, columns, fields, line=1)


def resolve_location(base: Path, location: str) -> Path:
    """Turn a ``File Location`` value into a path.

    Relative locations (``./EAY131/...`` or ``.\\EAY131\\...``) are relative to ``base``, the
    folder holding the table.  Absolute locations written on another machine are re-anchored on
    ``base`` when a tail of them exists there.
    """
    text = location.strip()
    windows = "\\" in text or bool(re.match(r"^[A-Za-z]:", text))
    pure = PureWindowsPath(text) if windows else PurePosixPath(text)
    parts = [p for p in pure.parts if p not in (".", "")]
    if not pure.is_absolute() and not pure.drive and not text.startswith(("/", "\\")):
        return base.joinpath(*parts) if parts else base
    parts = [p for p in parts if p not in (pure.anchor, "/", "\\")]
    for i in range(len(parts)):
        candidate = base.joinpath(*parts[i:])
        if candidate.exists():
            return candidate
    return Path(text)
