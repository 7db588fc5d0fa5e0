"""Typed patient-level clinical features from a trial's clinical sheet (``.csv`` or ``.xlsx``).

One row per patient, keyed by a patient-id column; every other column gets one of
:data:`COLUMN_TYPES`, either declared by the caller or inferred from the column's values.

Reading
-------
- ``.csv`` / ``.tsv`` / ``.txt``: UTF-8 (a BOM is dropped; cp1252 is the fallback for files that are
  not UTF-8); the delimiter (``,`` ``;`` or tab) is the one that splits the first records into the
  most consistent number of fields; quoted values may hold delimiters and line breaks.  In a sheet
  delimited by ``;`` or tab, a decimal comma (``"1,5"``) is read as a number, as Excel writes it
  in locales with a decimal comma.
- ``.xlsx`` / ``.xlsm``: openpyxl in read-only mode with cached formula values; the first worksheet
  unless ``sheet`` is given.
- The header is the first non-empty row.  Row numbers in messages are the sheet's own (1-based, as a
  spreadsheet shows them: the header is row 1 unless rows above it are blank; a csv record that
  spans several lines counts as one row).  Blank rows are skipped.  A column without a header name
  is dropped with a warning (e.g. the unnamed index column pandas writes); duplicate header names are
  an error.
- Every cell is trimmed.  Empty cells and the texts of :data:`MISSING_VALUES` (case-insensitive),
  and Excel error values (``#N/A``, ``#DIV/0!``, ...), are missing: ``None``.
- Patient ids are trimmed strings; whole numbers from xlsx cells become ``"1001"``, not ``"1001.0"``.

Types
-----
- ``int``: whole numbers (``"12"``, ``"+3"``, or ``"12.0"`` as pandas writes integers next to
  missing values).
- ``float``: finite numbers.
- ``bool``: ``true/false``, ``yes/no``, ``t/f``, ``y/n``, ``1/0`` (case-insensitive), xlsx
  booleans and the numbers 0 and 1.
- ``category``: text labels; :attr:`ClinicalColumn.categories` holds the levels (the declared
  levels in their order when ``categories`` is given, else the sorted distinct values seen).
- ``date_offset``: a whole number of days relative to a per-patient anchor (TCIA shifts dates, so
  offsets are what survives).  Only integers are accepted: actual dates are never converted to
  offsets here, because the anchor is trial-specific; declare such a column ``"string"``.
- ``string``: the trimmed text; xlsx dates become ISO strings (``"2020-01-02"``, or
  ``"2020-01-02T10:30:00"`` with a time of day).

Inference (columns not in ``types``), from the non-missing values, first rule that fits:

1. no values at all -> ``string``;
2. any date (an xlsx date cell or ISO ``YYYY-MM-DD...`` text) -> ``string`` (see ``date_offset``);
3. only boolean words -> ``bool``: ``true/false/yes/no`` (and xlsx booleans), or single letters
   only when both letters of a pair are present (``Y`` and ``N``, or ``T`` and ``F``), so that a
   sex column holding only ``F`` is not read as boolean;
4. only whole numbers -> ``int``; but ``bool`` when they are all 0 or 1 and the column name says
   it is a flag (:data:`FLAG_NAME_PATTERN`: ``is_*``, ``has_*``, ``*_event``, ``*_flag``, ...).
   Numbers written with a decimal point in a csv (``"12.0"``) are not whole numbers here;
5. only numbers -> ``float``;
6. short labels (at most :data:`MAX_CATEGORIES` distinct values, none longer than
   :data:`MAX_CATEGORY_LENGTH` characters nor spanning lines) that repeat (fewer distinct values
   than half the non-missing values) -> ``category``.  With fewer than :data:`SMALL_TABLE`
   non-missing values, repetition proves nothing and short labels are categories anyway;
7. anything else -> ``string``.

Inference never yields ``date_offset``: declare it.  Inferred types are a guess about a sheet; a
builder that knows its columns declares them.

Data problems
-------------
``on_invalid`` decides what a value that does not fit its declared type does, and also a row
without a patient id and a duplicate patient id: ``"raise"`` raises :class:`ClinicalDataError`
naming the file, the sheet (xlsx), the row, the column and the value; ``"null"`` records a warning
with the same details in :attr:`ClinicalTable.warnings` and stores ``None`` (a row without a patient
id is skipped, and of duplicate patient ids the first row wins).  ``"warn"`` and ``"skip"`` (the
names of :data:`tcia_trials.spec.ON_INVALID`) behave as ``"null"``.  A missing patient column, a
declared column missing from the sheet and duplicate header names always raise.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import ClinicalDataError

__all__ = [
    "COLUMN_TYPES",
    "FLAG_NAME_PATTERN",
    "MAX_CATEGORIES",
    "MAX_CATEGORY_LENGTH",
    "MISSING_VALUES",
    "ON_INVALID",
    "SMALL_TABLE",
    "ClinicalColumn",
    "ClinicalTable",
    "Reconciliation",
    "read_clinical_table",
]

#: Types a clinical column can have (the same names as :data:`tcia_trials.spec.CLINICAL_TYPES`).
COLUMN_TYPES = ("int", "float", "bool", "category", "date_offset", "string")
#: Policies for values that do not fit: "raise", or "null" (None plus a recorded warning);
#: "warn" and "skip" are accepted as synonyms of "null".
ON_INVALID = ("raise", "null", "warn", "skip")
#: Cell texts read as missing besides empty cells (trimmed, compared case-insensitively).
MISSING_VALUES = ("", "NA", "N/A", "NaN", "null", "None", ".", "-")
#: Inference: at most this many distinct values make a category.
MAX_CATEGORIES = 20
#: Inference: category labels are at most this many characters long.
MAX_CATEGORY_LENGTH = 64
#: Inference: below this many non-missing values, short labels are categories even if unique.
SMALL_TABLE = 20
#: Inference: names of 0/1 columns that are read as ``bool`` (matched case-insensitively after
#: turning every run of non-alphanumerics into ``_``).
FLAG_NAME_PATTERN = re.compile(
    r"^(is|has|had|was|any)_.+|.+_(event|flag|yn|indicator|bool)$|^(event|flag|censor|censored)$",
    re.IGNORECASE,
)

_EXCEL_ERRORS = frozenset(
    {"#N/A", "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#GETTING_DATA"}
)
_TRUE = frozenset({"true", "yes", "t", "y", "1"})
_FALSE = frozenset({"false", "no", "f", "n", "0"})
_BOOL_FULL_WORDS = frozenset({"true", "false", "yes", "no"})
_BOOL_LETTER_PAIRS = (frozenset({"y", "n"}), frozenset({"t", "f"}))
_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA_RE = re.compile(r"[+-]?\d*,\d+")
_ISO_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_XLSX_SUFFIXES = (".xlsx", ".xlsm")
_DELIMITERS = (",", ";", "\t")
_SNIFF_RECORDS = 50
_ID_SEPARATORS = ("_", "-")

_EXPECTED = {
    "int": "a whole number",
    "float": "a finite number",
    "bool": "true/false, yes/no, t/f, y/n or 1/0",
    "category": "one of the declared levels",
    "date_offset": "a whole number of days",
    "string": "text",
}


@dataclass(frozen=True)
class ClinicalColumn:
    """One typed column of a clinical sheet.

    Attributes
    ----------
    name
        Column name as in the sheet (trimmed).
    type
        One of :data:`COLUMN_TYPES`.
    inferred
        True when the type was inferred from the values, not declared.
    categories
        For "category": the declared levels in their order, else the sorted distinct values seen.
    """

    name: str
    type: str
    inferred: bool
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reconciliation:
    """How the patients of the image series and of the clinical sheet correspond.

    Attributes
    ----------
    matched
        Image patient id -> sheet patient id (equal, or differing by an NCTN-style prefix).
    images_without_clinical
        Image patient ids without a sheet row, in the order given.
    clinical_without_images
        Sheet patient ids without images, in sheet order.
    """

    matched: dict[str, str]
    images_without_clinical: tuple[str, ...]
    clinical_without_images: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class ClinicalTable:
    """A clinical sheet with typed values, one row per patient.

    Attributes
    ----------
    source
        The file read.
    patient_column
        Name of the patient-id column.
    columns
        The typed columns, without the patient column, in sheet order.
    rows
        Patient id -> {column name: typed value or None}, in sheet order.
    warnings
        Data problems recorded instead of raised (policy "null"), dropped columns, and the like;
        each names the file, sheet, row, column and value concerned.
    """

    source: Path
    patient_column: str
    columns: tuple[ClinicalColumn, ...]
    rows: dict[str, dict[str, object]]
    warnings: tuple[str, ...]

    def schema(self) -> dict[str, str]:
        """Column name -> type, in sheet order (for cards and outputs)."""
        return {column.name: column.type for column in self.columns}

    def row(self, patient_id: str) -> dict[str, object] | None:
        """The typed row of a patient, or None when the sheet has none.

        An exact id match wins; otherwise ids that differ by a prefix ending in ``_`` or ``-`` on
        either side match (DICOM PatientID ``"ACNS0332_PARFPN"`` and sheet id ``"PARFPN"``, or
        the reverse), when exactly one sheet id does.
        """
        patient_id = str(patient_id).strip()
        if patient_id in self.rows:
            return self.rows[patient_id]
        candidates = _prefix_candidates(patient_id, self.rows, self._tail_index)
        return self.rows[candidates[0]] if len(candidates) == 1 else None

    @cached_property
    def _tail_index(self) -> dict[str, list[str]]:
        """Sheet ids by the ids they end with after a prefix (built on the first use)."""
        return _tail_index(self.rows)

    def reconcile(self, patient_ids: Iterable[str]) -> Reconciliation:
        """Match the patient ids of the images with the sheet's ids, both ways.

        Exact matches first; then the remaining ids are matched as in :meth:`row`, only where the
        match is one-to-one among the ids not yet matched.

        Parameters
        ----------
        patient_ids
            PatientIDs of the image series (duplicates are ignored).
        """
        images = list(dict.fromkeys(str(pid).strip() for pid in patient_ids))
        matched = {pid: pid for pid in images if pid in self.rows}
        open_images = [pid for pid in images if pid not in matched]
        taken = set(matched.values())
        open_sheet = {pid: None for pid in self.rows if pid not in taken}
        sheet_tails = _tail_index(open_sheet)
        image_tails = _tail_index(dict.fromkeys(open_images))
        open_image_set = dict.fromkeys(open_images)
        for pid in open_images:
            candidates = _prefix_candidates(pid, open_sheet, sheet_tails)
            if len(candidates) != 1:
                continue
            back = _prefix_candidates(candidates[0], open_image_set, image_tails)
            if back == [pid]:
                matched[pid] = candidates[0]
        used = set(matched.values())
        return Reconciliation(
            matched={pid: matched[pid] for pid in images if pid in matched},
            images_without_clinical=tuple(pid for pid in images if pid not in matched),
            clinical_without_images=tuple(pid for pid in self.rows if pid not in used),
        )


def read_clinical_table(
    path: str | Path,
    *,
    patient_column: str,
    types: Mapping[str, str] | None = None,
    sheet: str | None = None,
    on_invalid: str = "raise",
    categories: Mapping[str, Sequence[str]] | None = None,
    missing_values: Iterable[str] | None = None,
) -> ClinicalTable:
    """Read a clinical sheet into typed patient rows.

    Parameters
    ----------
    path
        A ``.csv`` (``.tsv``, ``.txt``) or ``.xlsx`` (``.xlsm``) file.
    patient_column
        Header of the patient-id column.
    types
        Column -> one of :data:`COLUMN_TYPES`; columns not given are inferred (see the module
        docstring).  Every declared column must be in the sheet.
    sheet
        Worksheet of an xlsx file (default: the first); not allowed for csv.
    on_invalid
        "raise" or "null" (see the module docstring); "warn" and "skip" act as "null".
    categories
        Category column -> its levels in a fixed order; values outside them do not fit.  Such a
        column is "category" even when ``types`` does not declare it.
    missing_values
        Cell texts read as missing, replacing :data:`MISSING_VALUES` (empty cells always are).

    Returns
    -------
    ClinicalTable

    Raises
    ------
    ClinicalDataError
        Unreadable file, unknown sheet, missing patient or declared column, duplicate header,
        or (policy "raise") a value that does not fit, a row without patient id, a duplicate id.
    ValueError
        An unknown policy or type, or ``sheet`` for a csv file.
    """
    path = Path(path)
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid={on_invalid!r} is not one of {ON_INVALID}")
    declared = dict(types or {})
    levels = {name: tuple(str(v) for v in values) for name, values in (categories or {}).items()}
    for name, kind in declared.items():
        if kind not in COLUMN_TYPES:
            raise ValueError(f"types[{name!r}]={kind!r} is not one of {COLUMN_TYPES}")
    for name, values in levels.items():
        declared.setdefault(name, "category")
        if declared[name] != "category":
            raise ValueError(f"categories[{name!r}] given for a column of type {declared[name]!r}")
        if not values or len(set(values)) != len(values):
            raise ValueError(
                f"categories[{name!r}]={values!r}: expected distinct, non-empty levels"
            )
    if patient_column in declared:
        raise ValueError(f"types/categories name the patient column {patient_column!r}")
    missing = {
        m.strip().lower() for m in (MISSING_VALUES if missing_values is None else missing_values)
    }
    missing.add("")

    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        if sheet is not None:
            raise ValueError(f"sheet={sheet!r} given for {path}, which is a csv file")
        raw = _read_csv(path, missing)
    elif suffix in _XLSX_SUFFIXES:
        raw = _read_xlsx(path, sheet, missing)
    elif suffix == ".xls":
        raise ClinicalDataError(
            f"{path}: legacy .xls workbooks are not supported; save the sheet as .xlsx or .csv"
        )
    else:
        raise ClinicalDataError(
            f"{path}: unknown clinical sheet format {suffix!r}; expected one of "
            f"{_CSV_SUFFIXES + _XLSX_SUFFIXES}"
        )
    return _build_table(path, raw, patient_column, declared, levels, _Policy(on_invalid))


# --------------------------------------------------------------------------------------------
# Reading cells


@dataclass
class _RawSheet:
    """Trimmed cells of a sheet: None (missing), str, or an xlsx value (int, float, bool, date)."""

    sheet: str | None
    header: list[str]
    header_row: int
    rows: list[tuple[int, list[object]]]
    decimal_comma: bool
    notes: list[str]


def _read_csv(path: Path, missing: set[str]) -> _RawSheet:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"clinical sheet not found: {path}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    delimiter = _sniff_delimiter(text)
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ClinicalDataError(f"{path}: not a readable csv file ({exc})") from None
    numbered = [
        (n, [_clean_text(cell, missing) for cell in rec]) for n, rec in enumerate(records, 1)
    ]
    return _split_header(path, None, numbered, decimal_comma=delimiter != ",")


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first records into the most consistent field counts."""
    best, best_score = ",", (-1.0, 0)
    for delimiter in _DELIMITERS:
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            widths = []
            for record in reader:
                if any(cell.strip() for cell in record):
                    widths.append(len(record))
                if len(widths) >= _SNIFF_RECORDS:
                    break
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_xlsx(path: Path, sheet: str | None, missing: set[str]) -> _RawSheet:
    from openpyxl import load_workbook

    if not path.is_file():
        raise FileNotFoundError(f"clinical sheet not found: {path}")
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, InvalidFileException...
        raise ClinicalDataError(f"{path}: not a readable xlsx workbook ({exc})") from exc
    try:
        names = workbook.sheetnames
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in names:
            worksheet = workbook[sheet]
        else:
            raise ClinicalDataError(f"{path}: no worksheet {sheet!r}; the workbook has {names}")
        name = worksheet.title
        worksheet.reset_dimensions()  # some writers record wrong dimensions
        # read-only worksheets yield every row from 1, empty ones included: numbering is exact
        numbered = [
            (n, [_clean_xlsx(cell, missing) for cell in values])
            for n, values in enumerate(worksheet.iter_rows(values_only=True), 1)
        ]
    finally:
        workbook.close()
    return _split_header(path, name, numbered, decimal_comma=False)


def _clean_text(cell: str, missing: set[str]) -> str | None:
    text = cell.strip()
    return None if text.lower() in missing or text in _EXCEL_ERRORS else text


def _clean_xlsx(cell: object, missing: set[str]) -> object:
    if cell is None:
        return None
    if isinstance(cell, str):
        return _clean_text(cell, missing)
    if isinstance(cell, float) and not math.isfinite(cell):
        return None
    return cell


def _split_header(
    path: Path, sheet: str | None, numbered: list[tuple[int, list[object]]], decimal_comma: bool
) -> _RawSheet:
    filled = [(n, cells) for n, cells in numbered if any(c is not None for c in cells)]
    if not filled:
        raise ClinicalDataError(f"{_where(path, sheet)}: the sheet is empty (no header row)")
    header_row, header_cells = filled[0]
    header = ["" if c is None else _text(c) for c in header_cells]
    return _RawSheet(sheet, header, header_row, filled[1:], decimal_comma, [])


# --------------------------------------------------------------------------------------------
# Typing


class _Invalid(Exception):
    """A value does not fit a type (internal)."""


@dataclass
class _Policy:
    """The one place where data problems are raised or recorded."""

    on_invalid: str
    warnings: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        if self.on_invalid == "raise":
            raise ClinicalDataError(message)
        self.warnings.append(message)


def _build_table(
    path: Path,
    raw: _RawSheet,
    patient_column: str,
    declared: dict[str, str],
    levels: dict[str, tuple[str, ...]],
    policy: _Policy,
) -> ClinicalTable:
    where = _where(path, raw.sheet)
    named = [h for h in raw.header if h]
    duplicates = sorted({h for h in named if named.count(h) > 1})
    if duplicates:
        raise ClinicalDataError(
            f"{where}, row {raw.header_row}: duplicate column names {duplicates} in the header"
        )
    if patient_column not in named:
        close = difflib.get_close_matches(patient_column, named, n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise ClinicalDataError(
            f"{where}: no patient column {patient_column!r} in the header (row "
            f"{raw.header_row}); the columns are {named}{hint}"
        )
    absent = [name for name in declared if name not in named]
    if absent:
        raise ClinicalDataError(
            f"{where}: declared columns {absent} are not in the header (row {raw.header_row}); "
            f"the columns are {named}"
        )
    width = max([len(raw.header)] + [len(cells) for _, cells in raw.rows])
    header = raw.header + [""] * (width - len(raw.header))
    notes = []
    for index, name in enumerate(header):
        if not name and any(index < len(c) and c[index] is not None for _, c in raw.rows):
            notes.append(
                f"{where}: column {_column_letter(index)} has values but no header name; dropped"
            )
    key = header.index(patient_column)
    names = [h for h in header if h and h != patient_column]
    positions = {h: header.index(h) for h in names}

    # patient ids: rows without one, duplicates
    kept: list[tuple[int, str, list[object]]] = []
    seen: dict[str, int] = {}
    for number, cells in raw.rows:
        cells = cells + [None] * (width - len(cells))
        pid_cell = cells[key]
        if pid_cell is None:
            policy.problem(
                f"{where}, row {number}, column {patient_column!r}: no patient id in a row with "
                f"values {[c for c in cells if c is not None]!r}; row skipped"
            )
            continue
        pid = _text(pid_cell)
        if pid in seen:
            policy.problem(
                f"{where}, row {number}, column {patient_column!r}: duplicate patient id {pid!r} "
                f"(first in row {seen[pid]}); the first row is kept"
            )
            continue
        seen[pid] = number
        kept.append((number, pid, cells))

    columns = []
    for name in names:
        values = [cells[positions[name]] for _, _, cells in kept]
        kind = declared.get(name)
        inferred = kind is None
        if kind is None:
            kind = _infer(name, [v for v in values if v is not None], raw.decimal_comma)
        columns.append((name, kind, inferred))

    rows: dict[str, dict[str, object]] = {pid: {} for _, pid, _ in kept}
    typed_columns = []
    for name, kind, inferred in columns:
        allowed = levels.get(name)
        seen_levels = set()
        for number, pid, cells in kept:
            value = cells[positions[name]]
            typed = None
            if value is not None:
                try:
                    typed = _convert(value, kind, raw.decimal_comma, allowed)
                except _Invalid:
                    expected = f"one of {list(allowed)}" if allowed is not None else _EXPECTED[kind]
                    policy.problem(
                        f"{where}, row {number}, column {name!r}: value {_shown(value)!r} is not "
                        f"a valid {kind} (expected {expected})"
                        + ("" if policy.on_invalid == "raise" else "; stored as null")
                    )
            if kind == "category" and typed is not None:
                seen_levels.add(typed)
            rows[pid][name] = typed
        cats = (allowed or tuple(sorted(seen_levels))) if kind == "category" else ()
        typed_columns.append(ClinicalColumn(name, kind, inferred, cats))
    return ClinicalTable(
        source=path,
        patient_column=patient_column,
        columns=tuple(typed_columns),
        rows=rows,
        warnings=tuple(notes + policy.warnings),
    )


def _convert(value: object, kind: str, decimal_comma: bool, allowed: tuple[str, ...] | None):
    """One cell value as ``kind``; raises :class:`_Invalid` when it does not fit."""
    if kind in ("int", "date_offset"):
        if kind == "date_offset" and isinstance(value, dt.timedelta):
            if value % dt.timedelta(days=1):
                raise _Invalid
            return value.days
        number = _number(value, decimal_comma)
        if number is None or not float(number).is_integer():
            raise _Invalid
        return int(number)
    if kind == "float":
        number = _number(value, decimal_comma)
        if number is None:
            raise _Invalid
        return float(number)
    if kind == "bool":
        return _bool(value, decimal_comma)
    if kind == "category":
        if isinstance(value, dt.date | dt.time | dt.timedelta):
            raise _Invalid
        text = _text(value)
        if allowed is not None and text not in allowed:
            raise _Invalid
        return text
    return _text(value)


def _number(value: object, decimal_comma: bool) -> int | float | None:
    """An int or finite float from a cell, or None when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    if _INT_RE.fullmatch(value):
        return int(value)
    if decimal_comma and _DECIMAL_COMMA_RE.fullmatch(value):
        value = value.replace(",", ".")
    if _FLOAT_RE.fullmatch(value):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _bool(value: object, decimal_comma: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    number = _number(value, decimal_comma)
    if number in (0, 1):
        return bool(number)
    raise _Invalid


def _infer(name: str, values: list[object], decimal_comma: bool) -> str:
    """The type of a column from its non-missing values (rules in the module docstring)."""
    if not values:
        return "string"
    if any(_is_date(v) for v in values):
        return "string"
    if _all_bool_words(values):
        return "bool"
    numbers = [_number(v, decimal_comma) for v in values]
    if all(n is not None for n in numbers):
        if all(_is_whole(v, n) for v, n in zip(values, numbers, strict=True)):
            if set(numbers) <= {0, 1} and _is_flag_name(name):
                return "bool"
            return "int"
        return "float"
    texts = [_text(v) for v in values]
    distinct = set(texts)
    short = all(len(t) <= MAX_CATEGORY_LENGTH and "\n" not in t for t in texts)
    repeats = len(distinct) < len(texts) / 2 or len(texts) < SMALL_TABLE
    if len(distinct) <= MAX_CATEGORIES and short and repeats:
        return "category"
    return "string"


def _is_date(value: object) -> bool:
    if isinstance(value, dt.date | dt.time):
        return True
    return isinstance(value, str) and _ISO_DATE_RE.fullmatch(value) is not None


def _all_bool_words(values: list[object]) -> bool:
    words = set()
    for value in values:
        if isinstance(value, bool):
            continue
        if not isinstance(value, str) or value.lower() not in _TRUE | _FALSE:
            return False
        words.add(value.lower())
    if words & {"1", "0"}:
        return False  # 0/1 columns are numbers unless their name says flag
    letters = words - _BOOL_FULL_WORDS
    return not letters or any(letters <= pair and pair <= words for pair in _BOOL_LETTER_PAIRS)


def _is_whole(value: object, number: float) -> bool:
    if isinstance(value, str):
        return _INT_RE.fullmatch(value) is not None
    return float(number).is_integer()


def _is_flag_name(name: str) -> bool:
    return FLAG_NAME_PATTERN.fullmatch(re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")) is not None


# --------------------------------------------------------------------------------------------
# Text and ids


def _text(value: object) -> str:
    """A cell as text: whole numbers without ``.0``, dates in ISO format, TRUE/FALSE."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


def _shown(value: object) -> object:
    """A value as the message shows it (text as in the sheet, xlsx values as Python values)."""
    return _text(value) if isinstance(value, dt.date | dt.time) else value


def _where(path: Path, sheet: str | None) -> str:
    return f"{path}" if sheet is None else f"{path}, sheet {sheet!r}"


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _tails(patient_id: str) -> list[str]:
    """The ids left after removing a prefix that ends in ``_`` or ``-``."""
    return [
        patient_id[i + 1 :]
        for i, char in enumerate(patient_id[:-1])
        if char in _ID_SEPARATORS and i > 0
    ]


def _tail_index(ids: Iterable[str]) -> dict[str, list[str]]:
    """Tail -> ids that end with it after a prefix (see :func:`_tails`)."""
    index: dict[str, list[str]] = {}
    for pid in ids:
        for tail in _tails(pid):
            index.setdefault(tail, []).append(pid)
    return index


def _prefix_candidates(
    patient_id: str, ids: Mapping[str, object], tail_index: Mapping[str, list[str]]
) -> list[str]:
    """Ids of ``ids`` that equal ``patient_id`` up to a prefix on either side, in order."""
    found = [tail for tail in _tails(patient_id) if tail in ids]
    found += [pid for pid in tail_index.get(patient_id, ()) if pid not in found]
    return list(dict.fromkeys(found))
