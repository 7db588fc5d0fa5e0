"""Clinical sheets: reading csv/xlsx, typing, inference, data-problem policy, id reconciliation."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from tcia_trials.errors import ClinicalDataError, TciaTrialsError
from tcia_trials.source.clinical import (
    COLUMN_TYPES,
    ClinicalColumn,
    ClinicalTable,
    Reconciliation,
    read_clinical_table,
)

HEADER = ["PatientID", "age", "weight", "smoker", "stage", "days_to_surgery", "note"]
DATA = [
    ["P1", "61", "72.5", "yes", "II", "14", "first patient"],
    ["P2", "", "80", "No", "III", "-3", "NA"],
    ["P3", "55", "N/A", "YES", "II", ".", "quoted, with comma"],
    ["P4", "70", "65.25", "null", "IV", "0", "-"],
]
TYPES = {
    "age": "int",
    "weight": "float",
    "smoker": "bool",
    "stage": "category",
    "days_to_surgery": "date_offset",
    "note": "string",
}
EXPECTED = {
    "P1": {
        "age": 61,
        "weight": 72.5,
        "smoker": True,
        "stage": "II",
        "days_to_surgery": 14,
        "note": "first patient",
    },
    "P2": {
        "age": None,
        "weight": 80.0,
        "smoker": False,
        "stage": "III",
        "days_to_surgery": -3,
        "note": None,
    },
    "P3": {
        "age": 55,
        "weight": None,
        "smoker": True,
        "stage": "II",
        "days_to_surgery": None,
        "note": "quoted, with comma",
    },
    "P4": {
        "age": 70,
        "weight": 65.25,
        "smoker": None,
        "stage": "IV",
        "days_to_surgery": 0,
        "note": None,
    },
}


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",", bom: bool = False) -> Path:
    """Write rows as csv, quoting every field that needs it."""
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    return path


def write_xlsx(path: Path, rows: list[list[object]], title: str = "clinical", extra=None) -> Path:
    """Write rows into the first worksheet (None and "" are empty cells)."""
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append([None if v == "" else v for v in row])
    if extra:
        wb.create_sheet(extra[0])
        for row in extra[1]:
            wb[extra[0]].append(row)
    wb.save(path)
    return path


def as_xlsx_values(row: list[str]) -> list[object]:
    """The same row as a spreadsheet program would store it: numbers as numbers."""
    out: list[object] = []
    for value in row:
        try:
            out.append(int(value))
        except ValueError:
            try:
                out.append(float(value) if value not in ("N/A", "NA") else value)
            except ValueError:
                out.append(value)
    return out


# --------------------------------------------------------------------------------------------
# Declared types, both formats


@pytest.mark.parametrize(
    ("delimiter", "bom"), [(",", False), (",", True), (";", False), ("\t", True)]
)
def test_csv_declared_types(tmp_path: Path, delimiter: str, bom: bool) -> None:
    path = write_csv(tmp_path / "clin.csv", [HEADER, *DATA], delimiter=delimiter, bom=bom)
    table = read_clinical_table(path, patient_column="PatientID", types=TYPES)
    assert isinstance(table, ClinicalTable)
    assert table.source == path
    assert table.patient_column == "PatientID"
    assert table.schema() == TYPES
    assert list(table.schema()) == HEADER[1:]  # sheet order
    assert all(not c.inferred for c in table.columns)
    assert table.columns[3] == ClinicalColumn("stage", "category", False, ("II", "III", "IV"))
    assert table.rows == EXPECTED
    assert list(table.rows) == ["P1", "P2", "P3", "P4"]
    assert table.warnings == ()
    assert set(table.schema().values()) == set(COLUMN_TYPES)


def test_xlsx_declared_types_match_csv(tmp_path: Path) -> None:
    rows = [HEADER, *[as_xlsx_values(r) for r in DATA]]
    path = write_xlsx(tmp_path / "clin.xlsx", rows)
    table = read_clinical_table(path, patient_column="PatientID", types=TYPES)
    csv_table = read_clinical_table(
        write_csv(tmp_path / "clin.csv", [HEADER, *DATA]), patient_column="PatientID", types=TYPES
    )
    assert table.rows == csv_table.rows == EXPECTED
    assert table.columns == csv_table.columns


def test_xlsx_sheet_choice_header_below_blank_rows_and_numeric_ids(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.title = "notes"
    wb.active.append(["not the clinical sheet"])
    ws = wb.create_sheet("clinical")
    ws["B3"] = "pid"
    ws["C3"] = "visit_date"
    ws["D3"] = "dead"
    ws["B4"] = 1001.0
    ws["C4"] = dt.datetime(2020, 1, 2)
    ws["D4"] = True
    ws["B5"] = " 1002 "
    ws["C5"] = dt.datetime(2020, 3, 4, 10, 30)
    ws["D5"] = False
    ws["B7"] = 1003
    ws["D7"] = "#N/A"
    path = tmp_path / "clin.xlsx"
    wb.save(path)

    table = read_clinical_table(path, patient_column="pid", sheet="clinical")
    assert list(table.rows) == ["1001", "1002", "1003"]
    assert table.schema() == {"visit_date": "string", "dead": "bool"}
    assert table.rows["1001"] == {"visit_date": "2020-01-02", "dead": True}
    assert table.rows["1002"] == {"visit_date": "2020-03-04T10:30:00", "dead": False}
    assert table.rows["1003"] == {"visit_date": None, "dead": None}
    with pytest.raises(ClinicalDataError, match=r"no worksheet 'other'.*\['notes', 'clinical'\]"):
        read_clinical_table(path, patient_column="pid", sheet="other")
    with pytest.raises(ClinicalDataError, match=r"sheet 'notes'.*no patient column 'pid'"):
        read_clinical_table(path, patient_column="pid")


def test_csv_quoted_values_with_delimiters_and_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "clin.csv"
    path.write_text(
        'id;comment;dose\n"A";"a; b";"1,5"\n"B";"two\nlines";2\nC;"say ""hi""";\n',
        encoding="utf-8",
    )
    table = read_clinical_table(path, patient_column="id", types={"comment": "string"})
    assert table.rows == {
        "A": {"comment": "a; b", "dose": 1.5},  # decimal comma in a ;-delimited sheet
        "B": {"comment": "two\nlines", "dose": 2.0},
        "C": {"comment": 'say "hi"', "dose": None},
    }
    assert table.schema()["dose"] == "float"
    # a record spanning two lines is one row, as a spreadsheet shows it
    path.write_text('id,x\n"A\nB",1\nC,oops\n', encoding="utf-8")
    with pytest.raises(ClinicalDataError, match=r", row 3, column 'x': value 'oops'"):
        read_clinical_table(path, patient_column="id", types={"x": "int"})


@pytest.mark.parametrize("marker", ["", "  ", "NA", "n/a", "NaN", "NULL", "None", ".", "-", "#N/A"])
def test_missing_markers(tmp_path: Path, marker: str) -> None:
    rows = [["id", "n", "s"], ["A", marker, marker], ["B", "1", "x"]]
    for path in (write_csv(tmp_path / "m.csv", rows), write_xlsx(tmp_path / "m.xlsx", rows)):
        table = read_clinical_table(path, patient_column="id", types={"n": "int", "s": "string"})
        assert table.rows["A"] == {"n": None, "s": None}, path


def test_custom_missing_values_replace_the_defaults(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [["id", "s"], ["A", "unknown"], ["B", "NA"]])
    table = read_clinical_table(path, patient_column="id", missing_values=["unknown"])
    assert table.rows == {"A": {"s": None}, "B": {"s": "NA"}}


def test_declared_category_levels(tmp_path: Path) -> None:
    rows = [["id", "sex"], ["A", "M"], ["B", "F"], ["C", "X"]]
    path = write_csv(tmp_path / "c.csv", rows)
    table = read_clinical_table(
        path, patient_column="id", categories={"sex": ["M", "F"]}, on_invalid="null"
    )
    assert table.columns == (ClinicalColumn("sex", "category", False, ("M", "F")),)
    assert table.rows["C"] == {"sex": None}
    assert "value 'X'" in table.warnings[0] and "['M', 'F']" in table.warnings[0]


# --------------------------------------------------------------------------------------------
# Inference


def inferred(tmp_path: Path, columns: dict[str, list[str]]) -> ClinicalTable:
    n = len(next(iter(columns.values())))
    rows = [["id", *columns]] + [[f"P{i}", *(v[i] for v in columns.values())] for i in range(n)]
    table = read_clinical_table(write_csv(tmp_path / "i.csv", rows), patient_column="id")
    assert all(c.inferred for c in table.columns)
    return table


def test_inference_rules(tmp_path: Path) -> None:
    n = 30
    columns = {
        "age": [str(40 + i) for i in range(n)],
        "with_blank": ["" if i % 3 else str(i) for i in range(n)],
        "pandas_int": [f"{i}.0" for i in range(n)],  # written with a decimal point: float
        "bmi": ["22.5" if i % 2 else "30" for i in range(n)],
        "responded": ["Yes" if i % 2 else "no" for i in range(n)],
        "letters": ["Y" if i % 2 else "N" for i in range(n)],
        "only_f": ["F"] * n,  # one letter alone is no boolean: a sex column of women
        "progression_event": [str(i % 2) for i in range(n)],
        "is_alive": ["1"] * n,
        "ecog": [str(i % 2) for i in range(n)],  # 0/1 without a flag name: int
        "arm": ["ARM A", "ARM B", "ARM C"] * 10,
        "comment": [f"free text number {i}" for i in range(n)],
        "many": [str(i % 25) + "x" for i in range(n)],  # 25 distinct > MAX_CATEGORIES
        "visit": [f"2020-01-{1 + i % 28:02d}" for i in range(n)],  # dates stay text
        "empty": [""] * n,
        "mixed": ["1", "two"] * 15,
    }
    table = inferred(tmp_path, columns)
    assert table.schema() == {
        "age": "int",
        "with_blank": "int",
        "pandas_int": "float",
        "bmi": "float",
        "responded": "bool",
        "letters": "bool",
        "only_f": "category",
        "progression_event": "bool",
        "is_alive": "bool",
        "ecog": "int",
        "arm": "category",
        "comment": "string",
        "many": "string",
        "visit": "string",
        "empty": "string",
        "mixed": "category",
    }
    cats = {c.name: c.categories for c in table.columns}
    assert cats["arm"] == ("ARM A", "ARM B", "ARM C")
    assert cats["age"] == ()
    row = table.rows["P1"]
    assert row["responded"] is True and row["letters"] is True and row["progression_event"] is True
    assert row["ecog"] == 1 and row["pandas_int"] == 1.0 and row["visit"] == "2020-01-02"
    assert table.rows["P0"]["with_blank"] == 0 and table.rows["P1"]["with_blank"] is None


def test_inference_small_and_large_tables(tmp_path: Path) -> None:
    # few rows: unique short labels are categories; many rows: they must repeat
    small = inferred(tmp_path, {"label": ["a", "b", "c"]})
    assert small.schema() == {"label": "category"}
    big = inferred(tmp_path, {"label": [f"L{i}" for i in range(20)]})
    assert big.schema() == {"label": "string"}
    long = inferred(tmp_path, {"label": ["x" * 65, "y"]})
    assert long.schema() == {"label": "string"}


def test_declared_types_win_over_inference(tmp_path: Path) -> None:
    rows = [["id", "code", "score"], ["A", "1", "1"], ["B", "2", "0"]]
    path = write_csv(tmp_path / "d.csv", rows)
    table = read_clinical_table(path, patient_column="id", types={"code": "string"})
    assert table.columns == (
        ClinicalColumn("code", "string", False),
        ClinicalColumn("score", "int", True),
    )
    assert table.rows["A"] == {"code": "1", "score": 1}


# --------------------------------------------------------------------------------------------
# Invalid values and other data problems


BAD = [["id", "age", "smoker", "days"], ["A", "61", "yes", "3"], ["B", "sixty", "maybe", "1.5"]]
BAD_TYPES = {"age": "int", "smoker": "bool", "days": "date_offset"}


def test_invalid_value_raises_naming_file_row_column_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", BAD)
    message = rf"{re.escape(str(path))}, row 3, column 'age': value 'sixty' is not a valid int"
    with pytest.raises(ClinicalDataError, match=message) as info:
        read_clinical_table(path, patient_column="id", types=BAD_TYPES)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TciaTrialsError)


def test_invalid_value_in_xlsx_names_the_sheet(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "bad.xlsx", [[None], [None], BAD[0], ["A", 61, True, 3]], "Sheet A"
    )
    with pytest.raises(ClinicalDataError, match=r"sheet 'Sheet A', row 4, column 'smoker'.*True"):
        read_clinical_table(path, patient_column="id", types={"smoker": "int"})
    path = write_xlsx(tmp_path / "dates.xlsx", [["id", "d"], ["A", dt.datetime(2021, 5, 6)]])
    with pytest.raises(
        ClinicalDataError, match=r"row 2, column 'd': value '2021-05-06' .* date_offset"
    ):
        read_clinical_table(path, patient_column="id", types={"d": "date_offset"})


@pytest.mark.parametrize("policy", ["null", "warn", "skip"])
def test_invalid_values_become_null_with_warnings(tmp_path: Path, policy: str) -> None:
    path = write_csv(tmp_path / "bad.csv", BAD)
    table = read_clinical_table(path, patient_column="id", types=BAD_TYPES, on_invalid=policy)
    assert table.rows == {
        "A": {"age": 61, "smoker": True, "days": 3},
        "B": {"age": None, "smoker": None, "days": None},
    }
    assert len(table.warnings) == 3
    for warning, (column, value) in zip(
        table.warnings, [("age", "sixty"), ("smoker", "maybe"), ("days", "1.5")], strict=True
    ):
        assert warning.startswith(f"{path}, row 3, column {column!r}: value {value!r}")
        assert warning.endswith("stored as null")


@pytest.mark.parametrize("policy", ["ignore", "RAISE", None])
def test_unknown_policy_is_a_value_error(tmp_path: Path, policy) -> None:
    path = write_csv(tmp_path / "bad.csv", BAD)
    with pytest.raises(ValueError, match="on_invalid"):
        read_clinical_table(path, patient_column="id", on_invalid=policy)


def test_argument_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", BAD)
    with pytest.raises(ValueError, match=r"types\['age'\]='integer'"):
        read_clinical_table(path, patient_column="id", types={"age": "integer"})
    with pytest.raises(ValueError, match="patient column"):
        read_clinical_table(path, patient_column="id", types={"id": "string"})
    with pytest.raises(ValueError, match="csv file"):
        read_clinical_table(path, patient_column="id", sheet="x")
    with pytest.raises(ClinicalDataError, match=r"declared columns \['weight'\]"):
        read_clinical_table(path, patient_column="id", types={"weight": "float"})
    with pytest.raises(ClinicalDataError, match=r"\.xls workbooks are not supported"):
        read_clinical_table(tmp_path / "old.xls", patient_column="id")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_clinical_table(tmp_path / "nope.csv", patient_column="id")


def test_missing_patient_column_lists_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [["Patient ID", "age"], ["A", "1"]])
    with pytest.raises(
        ClinicalDataError,
        match=r"no patient column 'PatientID'.*\['Patient ID', 'age'\].*did you mean",
    ):
        read_clinical_table(path, patient_column="PatientID")


def test_duplicate_patient_ids(tmp_path: Path) -> None:
    rows = [["id", "age"], ["A", "1"], ["B", "2"], [" A ", "3"]]
    path = write_csv(tmp_path / "dup.csv", rows)
    with pytest.raises(ClinicalDataError, match=r"row 4, column 'id': duplicate patient id 'A'"):
        read_clinical_table(path, patient_column="id")
    table = read_clinical_table(path, patient_column="id", on_invalid="null")
    assert table.rows == {"A": {"age": 1}, "B": {"age": 2}}  # first wins
    assert "first in row 2" in table.warnings[0]


def test_rows_without_patient_id_blank_rows_and_unnamed_columns(tmp_path: Path) -> None:
    rows = [["", "id", "age", ""], ["0", "A", "1", ""], ["", "", "", ""], ["2", "", "5", ""]]
    path = write_csv(tmp_path / "r.csv", rows)
    with pytest.raises(ClinicalDataError, match=r"row 4, column 'id': no patient id"):
        read_clinical_table(path, patient_column="id")
    table = read_clinical_table(path, patient_column="id", on_invalid="null")
    assert table.rows == {"A": {"age": 1}}
    assert "column A has values but no header name" in table.warnings[0]
    assert "row 4" in table.warnings[1]


def test_duplicate_header_and_empty_sheet(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", [["id", "x", "x"], ["A", "1", "2"]])
    with pytest.raises(ClinicalDataError, match=r"row 1: duplicate column names \['x'\]"):
        read_clinical_table(path, patient_column="id")
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ClinicalDataError, match="empty"):
        read_clinical_table(path, patient_column="id")


def test_deterministic(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "clin.csv", [HEADER, *DATA])
    a = read_clinical_table(path, patient_column="PatientID", on_invalid="null")
    b = read_clinical_table(path, patient_column="PatientID", on_invalid="null")
    assert (a.columns, a.rows, a.warnings) == (b.columns, b.rows, b.warnings)
    assert [list(r) for r in a.rows.values()] == [HEADER[1:]] * 4


# --------------------------------------------------------------------------------------------
# Patient ids: prefix tolerance and reconciliation


def id_table(tmp_path: Path, ids: list[str]) -> ClinicalTable:
    rows = [["pid", "v"]] + [[pid, str(i)] for i, pid in enumerate(ids)]
    return read_clinical_table(write_csv(tmp_path / "ids.csv", rows), patient_column="pid")


def test_row_exact_and_prefix_tolerant(tmp_path: Path) -> None:
    table = id_table(tmp_path, ["PARFPN", "ACNS0332_PAXQRT", "X-1"])
    assert table.row("PARFPN") == {"v": 0}
    assert table.row("ACNS0332_PARFPN") == {"v": 0}  # DICOM id with a prefix the sheet lacks
    assert table.row("PAXQRT") == {"v": 1}  # the reverse
    assert table.row("Y_X-1") == {"v": 2}
    assert table.row("FPN") is None  # a prefix must end in "_" or "-"
    assert table.row("ACNS0332PARFPN") is None
    assert table.row("PARFPN_2") is None  # suffixes are not tolerated
    assert table.row("NOPE") is None


def test_row_prefix_ambiguous_is_none(tmp_path: Path) -> None:
    table = id_table(tmp_path, ["A_7", "B_7", "7"])
    assert table.row("7") == {"v": 2}  # exact wins
    table = id_table(tmp_path, ["A_7", "B_7"])
    assert table.row("7") is None
    assert table.row("C_A_7") == {"v": 0}


def test_reconcile_both_ways(tmp_path: Path) -> None:
    table = id_table(tmp_path, ["PARFPN", "P2", "ONLY_SHEET", "S_Q1", "S_Q2"])
    images = ["ACNS0332_PARFPN", "P2", "P2", "IMG_ONLY", "Q1", "X_Q2", "Y_Q2"]
    result = table.reconcile(images)
    assert result == Reconciliation(
        matched={"ACNS0332_PARFPN": "PARFPN", "P2": "P2", "Q1": "S_Q1"},
        images_without_clinical=("IMG_ONLY", "X_Q2", "Y_Q2"),  # Q2 is ambiguous
        clinical_without_images=("ONLY_SHEET", "S_Q2"),
    )


def test_reconcile_exact_match_takes_precedence(tmp_path: Path) -> None:
    table = id_table(tmp_path, ["7", "8"])
    result = table.reconcile(["7", "A_7", "B_8"])
    assert result.matched == {"7": "7", "B_8": "8"}
    assert result.images_without_clinical == ("A_7",)
    assert result.clinical_without_images == ()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ids=st.lists(
        st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True), min_size=1, max_size=8, unique=True
    ),
    prefix=st.from_regex(r"[A-Z0-9]{1,8}[_-]", fullmatch=True),
)
def test_reconcile_prefixed_ids_property(tmp_path: Path, ids: list[str], prefix: str) -> None:
    table = id_table(tmp_path, ids)
    result = table.reconcile(prefix + pid for pid in ids)
    assert result.matched == {prefix + pid: pid for pid in ids}
    assert result.images_without_clinical == result.clinical_without_images == ()


# --------------------------------------------------------------------------------------------
# The synthetic collection's sheet


def _our_type(declared: str) -> tuple[str, tuple[str, ...] | None]:
    """The generator's documented type ("int", "category[M,F]", "bool[0,1]", "str") as ours."""
    base, _, rest = declared.partition("[")
    kind = {"str": "string"}.get(base, base)
    levels = tuple(rest.rstrip("]").split(",")) if kind == "category" and rest else None
    return kind, levels


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from tcia_trials.synthetic import generate_collection

    out = tmp_path_factory.mktemp("synthetic_clinical")
    truth = generate_collection(out, patients=3, seed=1, with_pet=False)
    return out, json.loads(truth.read_text())["clinical"]


def test_synthetic_sheet_csv_and_xlsx(synthetic: tuple[Path, dict]) -> None:
    out, gt = synthetic
    key = gt["key"]
    declared = {c: _our_type(t) for c, t in gt["column_types"].items() if c != key}
    types = {c: kind for c, (kind, _) in declared.items()}
    levels = {c: lv for c, (_, lv) in declared.items() if lv is not None}
    assert set(types.values()) <= set(COLUMN_TYPES)

    tables = [
        read_clinical_table(out / gt[fmt], patient_column=key, types=types, categories=levels)
        for fmt in ("csv", "xlsx")
    ]
    for table in tables:
        assert list(table.schema()) == [c for c in gt["columns"] if c != key]
        assert table.schema() == {c: types[c] for c in table.schema()}
        assert table.warnings == ()
        expected = {}
        for row in gt["rows"]:
            expected[row[key]] = {
                c: (None if row[c] is None else bool(row[c]) if types[c] == "bool" else row[c])
                for c in table.schema()
            }
        assert table.rows == expected
    assert tables[0].rows == tables[1].rows
    assert tables[0].columns == tables[1].columns
    assert tables[0].row(gt["patients_without_images"][0]) is not None

    # inference alone agrees with the declared types, in both formats
    for fmt in ("csv", "xlsx"):
        table = read_clinical_table(out / gt[fmt], patient_column=key)
        assert table.schema() == {c: types[c] for c in table.schema()}
        assert table.rows == tables[0].rows


def test_synthetic_reconcile_reports_patient_without_images(synthetic: tuple[Path, dict]) -> None:
    out, gt = synthetic
    table = read_clinical_table(out / gt["csv"], patient_column=gt["key"])
    without = set(gt["patients_without_images"])
    image_ids = [r[gt["key"]] for r in gt["rows"] if r[gt["key"]] not in without]
    result = table.reconcile([*image_ids, "SYNTH-9999"])
    assert result.matched == {pid: pid for pid in image_ids}
    assert result.images_without_clinical == ("SYNTH-9999",)
    assert result.clinical_without_images == tuple(gt["patients_without_images"])
