"""Seed tables (csv / xlsx) -> SeedRow: declared conventions, conversions, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcia_trials.errors import AnnotationError
from tcia_trials.source.seed_table import SeedRow, SeedTableSpec, read_seed_table

HEADER = ["PatientID", "StudyUID", "SeriesUID", "Lesion", "Label", "TimePoint", "c1", "c2", "c3"]
ROWS = [
    ["P-001", "1.2.3", "1.2.3.4", "L1", "LIVER - 1", "Pre-dose", "10.5", "-20.25", "300"],
    ["P-001", "1.2.3", "1.2.3.4", "L2", "LUNG - 1", "Pre-dose", "-1", "2", "-3.5"],
    ["P-002", "", "", "", "", "", "0", "0", "0"],
]


def _spec(convention: str, **kwargs: object) -> SeedTableSpec:
    return SeedTableSpec(
        patient_column="PatientID",
        coordinate_columns=("c1", "c2", "c3"),
        convention=convention,
        study_column="StudyUID",
        series_column="SeriesUID",
        lesion_column="Lesion",
        label_column="Label",
        time_point_column="TimePoint",
        **kwargs,  # type: ignore[arg-type]
    )


def _write_csv(
    path: Path, header: list[str], rows: list[list[object]], delimiter: str = ","
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_xlsx(
    path: Path, header: list[str], rows: list[list[object]], sheet: str = "Seeds"
) -> Path:
    workbook = openpyxl.Workbook()
    first = workbook.active
    first.title = "Notes"
    first.append(["this sheet is not the seed table"])
    worksheet = workbook.create_sheet(sheet)
    worksheet.append(header)
    for row in rows:
        worksheet.append(row)
    workbook.save(path)
    return path


def _numeric(rows: list[list[object]]) -> list[list[object]]:
    """The rows as an xlsx would hold them: numbers as numbers, blanks as empty cells."""
    return [[*r[:6], *(float(v) for v in r[6:])] for r in rows]


EXPECTED = {
    "lps_mm": [((10.5, -20.25, 300.0), None), ((-1.0, 2.0, -3.5), None), ((0.0, 0.0, 0.0), None)],
    "ras_mm": [((-10.5, 20.25, 300.0), None), ((1.0, -2.0, -3.5), None), ((-0.0, -0.0, 0.0), None)],
    "voxel_kji": [
        (None, (10.5, -20.25, 300.0)),
        (None, (-1.0, 2.0, -3.5)),
        (None, (0.0, 0.0, 0.0)),
    ],
    "voxel_ijk": [
        (None, (300.0, -20.25, 10.5)),
        (None, (-3.5, 2.0, -1.0)),
        (None, (0.0, 0.0, 0.0)),
    ],
}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("convention", sorted(EXPECTED))
def test_conventions(tmp_path: Path, fmt: str, convention: str) -> None:
    if fmt == "csv":
        path = _write_csv(tmp_path / "seeds.csv", HEADER, ROWS)
        spec = _spec(convention)
    else:
        path = _write_xlsx(tmp_path / "seeds.xlsx", HEADER, _numeric(ROWS))
        spec = _spec(convention, sheet="Seeds")

    rows = read_seed_table(path, spec)

    assert [(r.lps, r.voxel) for r in rows] == EXPECTED[convention]
    assert rows[0] == SeedRow(
        patient_id="P-001",
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        lesion_id="L1",
        label="LIVER - 1",
        time_point="Pre-dose",
        lps=EXPECTED[convention][0][0],
        voxel=EXPECTED[convention][0][1],
        row_number=2,
    )
    assert [r.row_number for r in rows] == [2, 3, 4]
    # blank cells of optional columns are None, not ""
    assert (rows[2].study_uid, rows[2].lesion_id, rows[2].label) == (None, None, None)


def test_optional_columns_need_not_be_declared(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "seeds.csv", ["pid", "x", "y", "z"], [["A", "1", "2", "3"]])
    spec = SeedTableSpec("pid", ("x", "y", "z"), "ras_mm")
    (row,) = read_seed_table(path, spec)
    assert row.patient_id == "A" and row.lps == (-1.0, -2.0, 3.0)
    assert row.study_uid is row.series_uid is row.lesion_id is row.label is row.time_point is None


def test_blank_rows_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = tmp_path / "seeds.csv"
    path.write_text(
        "\ufeffpid;x;y;z\n\nA;1;2;3\n;;;\n   \nB;4;5;6\n", encoding="utf-8"
    )  # BOM, semicolons, blank lines
    rows = read_seed_table(path, SeedTableSpec("pid", ("x", "y", "z"), "lps_mm"))
    assert [(r.patient_id, r.lps, r.row_number) for r in rows] == [
        ("A", (1.0, 2.0, 3.0), 3),
        ("B", (4.0, 5.0, 6.0), 6),
    ]


def test_header_matching_is_tolerant(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "s.csv", [" PatientID ", "X_MM", "y_mm", "Z_mm"], [["A", 1, 2, 3]])
    spec = SeedTableSpec("patientid", ("x_mm", "y_mm", "z_mm"), "lps_mm")
    (row,) = read_seed_table(path, spec)
    assert row.lps == (1.0, 2.0, 3.0)


def test_row_without_coordinates_has_none(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "s.csv", ["pid", "x", "y", "z", "label"], [["A", "", "", "", "NO FINDINGS"]]
    )
    spec = SeedTableSpec("pid", ("x", "y", "z"), "lps_mm", label_column="label")
    (row,) = read_seed_table(path, spec)
    assert row.lps is None and row.voxel is None and row.label == "NO FINDINGS"


def test_xlsx_numeric_ids_and_first_sheet(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["pid", "k", "j", "i"])
    sheet.append([1234, 3, 40, 50.5])
    sheet.append([None, None, None, None])
    sheet.append([5678.0, 1, 2, 3])
    path = tmp_path / "s.xlsx"
    workbook.save(path)
    rows = read_seed_table(path, SeedTableSpec("pid", ("k", "j", "i"), "voxel_kji"))
    assert [(r.patient_id, r.voxel, r.row_number) for r in rows] == [
        ("1234", (3.0, 40.0, 50.5), 2),
        ("5678", (1.0, 2.0, 3.0), 4),
    ]


def test_missing_column_names_it_and_lists_present(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "seeds.csv", ["PatientID", "x", "y"], [["A", "1", "2"]])
    spec = SeedTableSpec("PatientID", ("x", "y", "z"), "lps_mm", lesion_column="Lesion")
    with pytest.raises(AnnotationError) as info:
        read_seed_table(path, spec)
    message = str(info.value)
    assert "seeds.csv" in message
    assert "missing column(s) 'z', 'Lesion'" in message
    assert "columns present: 'PatientID', 'x', 'y'" in message


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_bad_coordinate_names_row_column_value(tmp_path: Path, fmt: str) -> None:
    rows = [["A", "1", "2", "3"], ["B", "4", "n/a", "6"]]
    if fmt == "csv":
        path = _write_csv(tmp_path / "seeds.csv", ["pid", "x", "y", "z"], rows)
    else:
        path = _write_xlsx(tmp_path / "seeds.xlsx", ["pid", "x", "y", "z"], rows, sheet="S")
    spec = SeedTableSpec("pid", ("x", "y", "z"), "lps_mm", sheet="S" if fmt == "xlsx" else None)
    with pytest.raises(
        AnnotationError,
        match=rf"seeds\.{fmt}, row 3: coordinate column 'y' holds 'n/a', not a number",
    ):
        read_seed_table(path, spec)


def test_partly_blank_or_infinite_coordinates_are_errors(tmp_path: Path) -> None:
    spec = SeedTableSpec("pid", ("x", "y", "z"), "lps_mm")
    path = _write_csv(tmp_path / "a.csv", ["pid", "x", "y", "z"], [["A", "1", "", "3"]])
    with pytest.raises(AnnotationError, match=r"row 2: coordinate column 'y' is blank"):
        read_seed_table(path, spec)
    path = _write_csv(tmp_path / "b.csv", ["pid", "x", "y", "z"], [["A", "1", "inf", "3"]])
    with pytest.raises(AnnotationError, match=r"row 2: coordinate column 'y' holds 'inf'"):
        read_seed_table(path, spec)
    path = _write_csv(tmp_path / "c.csv", ["pid", "x", "y", "z"], [["", "1", "2", "3"]])
    with pytest.raises(
        AnnotationError, match=r"c\.csv, row 2: column 'pid' \(patient id\) is blank"
    ):
        read_seed_table(path, spec)


def test_bad_files_and_specs(tmp_path: Path) -> None:
    spec = SeedTableSpec("pid", ("x", "y", "z"), "lps_mm")
    with pytest.raises(AnnotationError, match="no such seed table"):
        read_seed_table(tmp_path / "absent.csv", spec)
    odd = tmp_path / "seeds.xls"
    odd.write_bytes(b"\xd0\xcf")
    with pytest.raises(AnnotationError, match=r"unsupported seed table format '\.xls'"):
        read_seed_table(odd, spec)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(AnnotationError, match=r"broken\.xlsx: cannot be read as an xlsx"):
        read_seed_table(broken, spec)
    path = _write_xlsx(tmp_path / "s.xlsx", ["pid", "x", "y", "z"], [["A", 1, 2, 3]])
    with pytest.raises(AnnotationError, match=r"no sheet 'Missing'; sheets present: Notes, Seeds"):
        read_seed_table(path, SeedTableSpec("pid", ("x", "y", "z"), "lps_mm", sheet="Missing"))
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(AnnotationError, match="empty"):
        read_seed_table(empty, spec)
    with pytest.raises(ValueError, match="convention must be one of"):
        SeedTableSpec("pid", ("x", "y", "z"), "lps")  # never guessed
    with pytest.raises(ValueError, match="must name 3 columns"):
        SeedTableSpec("pid", ("x", "y"), "lps_mm")  # type: ignore[arg-type]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=5))
def test_csv_round_trip_is_exact(tmp_path_factory: pytest.TempPathFactory, points) -> None:
    path = tmp_path_factory.mktemp("rt") / "seeds.csv"
    _write_csv(
        path, ["pid", "r", "a", "s"], [["P", repr(x), repr(y), repr(z)] for x, y, z in points]
    )
    rows = read_seed_table(path, SeedTableSpec("pid", ("r", "a", "s"), "ras_mm"))
    assert [r.lps for r in rows] == [(-x, -y, z) for x, y, z in points]
