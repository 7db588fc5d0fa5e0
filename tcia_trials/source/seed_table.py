"""Lesion seed points from csv / xlsx tables (one row per seed).

The coordinate convention of a table is declared by the caller in a :class:`SeedTableSpec`, never
guessed:

- ``"lps_mm"``: DICOM patient coordinates (x, y, z) in mm, kept as is;
- ``"ras_mm"``: RAS mm (NIfTI / 3D Slicer world coordinates), converted to LPS by negating x and y;
- ``"voxel_kji"``: voxel coordinates (slice, row, column) = ``(k, j, i)`` of the series' volume
  array (:class:`tcia_trials.source.volume.Volume`), kept as is;
- ``"voxel_ijk"``: voxel coordinates (column, row, slice), reordered to ``(k, j, i)``.

Voxel coordinates are returned as floats (fractional positions are allowed); mapping them to LPS
needs the image volume (``geometry.index_to_lps(volume.affine, voxel)``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from tcia_trials.errors import AnnotationError

CONVENTIONS = ("lps_mm", "ras_mm", "voxel_kji", "voxel_ijk")
_CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
_XLSX_SUFFIXES = {".xlsx", ".xlsm"}


@dataclass(frozen=True)
class SeedRow:
    """One seed point read from a table.

    Attributes
    ----------
    patient_id, study_uid, series_uid, lesion_id, label, time_point:
        Values of the declared columns (stripped text; None when the column is not declared or
        the cell is blank).  Whole numbers read from xlsx cells are written without ".0".
    lps:
        ``(x, y, z)`` in LPS mm, for the ``lps_mm`` and ``ras_mm`` conventions.
    voxel:
        ``(k, j, i)`` = (slice, row, column) voxel coordinates, for the ``voxel_kji`` and
        ``voxel_ijk`` conventions.
    row_number:
        1-based line (csv, counting the header line) or sheet row (xlsx) of the row.
    """

    patient_id: str
    study_uid: str | None
    series_uid: str | None
    lesion_id: str | None
    label: str | None
    time_point: str | None
    lps: tuple[float, float, float] | None
    voxel: tuple[float, float, float] | None
    row_number: int


@dataclass(frozen=True)
class SeedTableSpec:
    """How to read a seed table.

    Attributes
    ----------
    patient_column:
        Column holding the PatientID.
    coordinate_columns:
        The three coordinate columns, in the order of the convention: (x, y, z) for ``lps_mm``
        and ``ras_mm``, (k, j, i) for ``voxel_kji``, (i, j, k) for ``voxel_ijk``.
    convention:
        One of :data:`CONVENTIONS` (see the module docstring).
    study_column, series_column, lesion_column, label_column, time_point_column:
        Optional columns (StudyInstanceUID, SeriesInstanceUID, lesion id, label, time point).
    sheet:
        xlsx sheet name (default: the first sheet).

    Column names match exactly after stripping spaces, else case-insensitively.
    """

    patient_column: str
    coordinate_columns: tuple[str, str, str]
    convention: str
    study_column: str | None = None
    series_column: str | None = None
    lesion_column: str | None = None
    label_column: str | None = None
    time_point_column: str | None = None
    sheet: str | None = None

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(
                f"SeedTableSpec.convention must be one of {', '.join(CONVENTIONS)}; "
                f"got {self.convention!r}"
            )
        if isinstance(self.coordinate_columns, str) or len(self.coordinate_columns) != 3:
            raise ValueError(
                "SeedTableSpec.coordinate_columns must name 3 columns, got "
                f"{self.coordinate_columns!r}"
            )
        object.__setattr__(self, "coordinate_columns", tuple(self.coordinate_columns))


def read_seed_table(path: str | PathLike[str], spec: SeedTableSpec) -> list[SeedRow]:
    """Read seed points from a csv (comma, semicolon or tab separated) or xlsx table.

    Parameters
    ----------
    path:
        ``.csv`` / ``.tsv`` / ``.txt`` (UTF-8, optional BOM) or ``.xlsx`` / ``.xlsm``.  The first
        non-blank row is the header.
    spec:
        Columns and coordinate convention.

    Returns
    -------
    list of SeedRow
        One per non-blank row, in table order; coordinates converted to LPS mm or ``(k, j, i)``
        as described in the module docstring.  A row whose three coordinate cells are all
        blank has ``lps`` and ``voxel`` None.

    Raises
    ------
    AnnotationError
        Unreadable file, unknown sheet, missing column (the message lists the columns present),
        blank patient id, or a non-numeric / partly blank coordinate (the message names the file,
        row, column and value).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such seed table")
    suffix = path.suffix.lower()
    if suffix in _CSV_SUFFIXES:
        rows = _csv_rows(path)
    elif suffix in _XLSX_SUFFIXES:
        rows = _xlsx_rows(path, spec.sheet)
    else:
        raise AnnotationError(
            f"{path}: unsupported seed table format {path.suffix!r}; use .csv, .tsv or .xlsx"
        )
    header: list[str] | None = None
    columns: dict[str, int] = {}
    out: list[SeedRow] = []
    for row_number, cells in rows:
        if all(_blank(c) for c in cells):
            continue
        if header is None:
            header = [_text(c) or "" for c in cells]
            columns = _resolve_columns(path, header, spec)
            continue
        out.append(_seed_row(path, row_number, cells, columns, spec))
    if header is None:
        raise AnnotationError(f"{path}: the seed table is empty (no header row)")
    return out


def _csv_rows(path: Path) -> Iterator[tuple[int, list[object]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read the seed table as UTF-8 text: {exc}") from exc
    first = next((line for line in text.splitlines() if line.strip()), "")
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        counts = {d: first.count(d) for d in (",", ";", "\t")}
        delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    try:
        for cells in reader:
            yield reader.line_num, list(cells)
    except csv.Error as exc:
        raise AnnotationError(f"{path}, line {reader.line_num}: malformed csv: {exc}") from exc


def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[tuple[int, list[object]]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException...
        raise AnnotationError(f"{path}: cannot be read as an xlsx workbook: {exc}") from exc
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise AnnotationError(
                f"{path}: no sheet {sheet!r}; sheets present: {', '.join(workbook.sheetnames)}"
            )
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            yield number, list(values)
    finally:
        workbook.close()


def _resolve_columns(path: Path, header: Sequence[str], spec: SeedTableSpec) -> dict[str, int]:
    wanted = {
        "patient": spec.patient_column,
        "x0": spec.coordinate_columns[0],
        "x1": spec.coordinate_columns[1],
        "x2": spec.coordinate_columns[2],
        "study": spec.study_column,
        "series": spec.series_column,
        "lesion": spec.lesion_column,
        "label": spec.label_column,
        "time_point": spec.time_point_column,
    }
    stripped = [h.strip() for h in header]
    found: dict[str, int] = {}
    missing: list[str] = []
    for key, name in wanted.items():
        if name is None:
            continue
        index = _find_column(stripped, name.strip())
        if index is None:
            missing.append(name)
        else:
            found[key] = index
    if missing:
        present = ", ".join(repr(h) for h in stripped if h)
        raise AnnotationError(
            f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}; "
            f"columns present: {present}"
        )
    return found


def _find_column(header: Sequence[str], name: str) -> int | None:
    if name in header:
        return header.index(name)
    folded = [i for i, h in enumerate(header) if h.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _seed_row(
    path: Path,
    row_number: int,
    cells: Sequence[object],
    columns: dict[str, int],
    spec: SeedTableSpec,
) -> SeedRow:
    def cell(key: str) -> object:
        index = columns.get(key)
        return cells[index] if index is not None and index < len(cells) else None

    patient = _text(cell("patient"))
    if patient is None:
        raise AnnotationError(
            f"{path}, row {row_number}: column {spec.patient_column!r} (patient id) is blank"
        )
    raw = [cell(f"x{n}") for n in range(3)]
    coords: tuple[float, float, float] | None = None
    if not all(_blank(v) for v in raw):
        values = [
            _number(path, row_number, name, value)
            for name, value in zip(spec.coordinate_columns, raw, strict=True)
        ]
        coords = (values[0], values[1], values[2])
    lps = voxel = None
    if coords is not None:
        a, b, c = coords
        if spec.convention == "lps_mm":
            lps = (a, b, c)
        elif spec.convention == "ras_mm":
            lps = (-a, -b, c)
        elif spec.convention == "voxel_kji":
            voxel = (a, b, c)
        else:  # voxel_ijk
            voxel = (c, b, a)
    return SeedRow(
        patient_id=patient,
        study_uid=_text(cell("study")),
        series_uid=_text(cell("series")),
        lesion_id=_text(cell("lesion")),
        label=_text(cell("label")),
        time_point=_text(cell("time_point")),
        lps=lps,
        voxel=voxel,
        row_number=row_number,
    )


def _number(path: Path, row_number: int, column: str, value: object) -> float:
    problem = None
    number = math.nan
    if _blank(value):
        problem = "is blank (the other coordinates are not)"
    elif isinstance(value, bool):
        problem = f"holds {value!r}, not a number"
    elif isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            problem = f"holds {str(value)!r}, not a number"
    if problem is None and not math.isfinite(number):
        problem = f"holds {value!r}, not a finite number"
    if problem is not None:
        raise AnnotationError(f"{path}, row {row_number}: coordinate column {column!r} {problem}")
    return number


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: object) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
