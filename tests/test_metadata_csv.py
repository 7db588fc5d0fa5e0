"""metadata.csv parsing: the classic unquoted NBIA table and the quoted TCIA Data Retriever one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcia_trials.errors import DownloadLayoutError
from tcia_trials.source.metadata_csv import (
    normalize_column,
    parse_metadata_csv,
    read_metadata_csv,
    read_series_json,
    resolve_location,
)

NBIA_HEADER = (
    "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,Study UID,"
    "Study Description,Study Date,Series Description,Manufacturer,Modality,SOP Class Name,"
    "SOP Class UID,Number of Images,File Size,File Location,Download Timestamp"
)
# A real row (HNSCC, from a public test suite): no comma inside any value.
HNSCC_ROW = (
    "1.3.6.1.4.1.14519.5.2.1.1706.8040.150602874655732880945154527032,HNSCC,null,"
    "httpsdoi.org10.7937k9tcia.2020.a8sh-7363,HNSCC-01-0001,"
    "1.3.6.1.4.1.14519.5.2.1.1706.8040.141473127645431244275904143582,RT SIMULATION,12-05-1998,"
    "NA,ADAC,RTPLAN,RT Plan Storage,1.2.840.10008.5.1.4.1.1.481.5,1,163.31 KB,"
    "./HNSCC/HNSCC-01-0001/12-05-1998-NA-RT SIMULATION-43582/1.000000-NA-27032,"
    "2021-09-30T21:38:59.207"
)


def nbia_row(
    *,
    series_uid: str = "1.2.826.0.1.3680043.8.498.11",
    study_uid: str = "1.2.826.0.1.3680043.8.498.5",
    patient: str = "EAY131-1234",
    study_desc: str = "CT CHEST",
    study_date: str = "06-15-2016",
    series_desc: str = "Pre-dose, LIVER - 1",
    manufacturer: str = "GE MEDICAL SYSTEMS",
    modality: str = "RTSTRUCT",
    images: int = 1,
    size: str = "12.5 KB",
    location: str | None = None,
) -> str:
    """One unquoted row as the NBIA Data Retriever writes it."""
    if location is None:
        study_folder = f"{study_date}-NA-{study_desc}-{study_uid[-5:]}"
        location = f"./EAY131/{patient}/{study_folder}/1.000000-{series_desc}-{series_uid[-5:]}"
    values = [
        series_uid, "EAY131", "NO", "https://doi.org/10.7937/q9rn-m510", patient, study_uid,
        study_desc, study_date, series_desc, manufacturer, modality, "RT Structure Set Storage",
        "1.2.840.10008.5.1.4.1.1.481.3", str(images), size, location, "2024-01-02T03:04:05.678",
    ]  # fmt: skip
    return ",".join(values)


def test_real_nbia_row_without_commas() -> None:
    table = parse_metadata_csv(NBIA_HEADER + "\n" + HNSCC_ROW + "\n")
    assert table.dialect == "nbia"
    assert table.issues == ()
    (row,) = table.rows
    assert row.series_uid == "1.3.6.1.4.1.14519.5.2.1.1706.8040.150602874655732880945154527032"
    assert row.study_uid == "1.3.6.1.4.1.14519.5.2.1.1706.8040.141473127645431244275904143582"
    assert row.patient_id == "HNSCC-01-0001"
    assert row.collection == "HNSCC"
    assert row.modality == "RTPLAN"
    assert row.number_of_images == 1
    assert row.study_date == "12-05-1998"
    assert row.file_location == (
        "./HNSCC/HNSCC-01-0001/12-05-1998-NA-RT SIMULATION-43582/1.000000-NA-27032"
    )
    assert row.values["File Size"] == "163.31 KB"
    assert row.line == 2


def test_description_and_location_with_commas() -> None:
    text = "\n".join([NBIA_HEADER, nbia_row(images=3)])
    (row,) = parse_metadata_csv(text).rows
    assert row.series_description == "Pre-dose, LIVER - 1"
    assert row.values["Manufacturer"] == "GE MEDICAL SYSTEMS"
    assert row.modality == "RTSTRUCT"
    assert row.number_of_images == 3
    assert row.file_location is not None
    assert row.file_location.endswith("/1.000000-Pre-dose, LIVER - 1-98.11")
    assert row.values["Download Timestamp"] == "2024-01-02T03:04:05.678"


def test_commas_everywhere_and_company_name_with_comma() -> None:
    line = nbia_row(
        study_desc="CT CHEST, ABDOMEN, PELVIS W CONTRAST",
        series_desc="Follow-up consultation, LUNG, RIGHT - 2 - SEED POINT",
        manufacturer="Hologic, Inc.",
        size="1,234.5 KB",
    )
    (row,) = parse_metadata_csv(NBIA_HEADER + "\n" + line).rows
    assert row.study_description == "CT CHEST, ABDOMEN, PELVIS W CONTRAST"
    assert row.series_description == "Follow-up consultation, LUNG, RIGHT - 2 - SEED POINT"
    assert row.values["Manufacturer"] == "Hologic, Inc."
    assert row.values["File Size"] == "1,234.5 KB"
    assert row.study_date == "06-15-2016"


def test_empty_study_date_between_descriptions_with_commas() -> None:
    line = nbia_row(study_desc="CT CHEST, ABD", study_date="", series_desc="Pre-dose, LIVER - 1")
    (row,) = parse_metadata_csv(NBIA_HEADER + "\n" + line).rows
    assert row.study_description == "CT CHEST, ABD"
    assert row.study_date is None
    assert row.series_description == "Pre-dose, LIVER - 1"


def test_windows_location_bom_and_crlf() -> None:
    location = ".\\EAY131\\EAY131-1234\\06-15-2016-NA-CT-00.5\\1.000000-Pre-dose, LIVER - 1-00.11"
    text = "\ufeff" + NBIA_HEADER + "\r\n" + nbia_row(location=location) + "\r\n\r\n"
    (row,) = parse_metadata_csv(text).rows
    assert row.series_uid == "1.2.826.0.1.3680043.8.498.11"
    assert row.file_location == location
    assert row.series_description == "Pre-dose, LIVER - 1"


def test_quoted_tcia_dialect_with_other_column_names() -> None:
    text = (
        '"PatientID","StudyInstanceUID","SeriesInstanceUID","Modality","SeriesDescription",'
        '"NumberOfImages","FileLocation","Collection"\n'
        '"EAY131-1","1.2.3.4","1.2.3.4.5","SEG","Pre-dose, LIVER - 1","7",'
        '"EAY131-1/1.2.3.4/1.2.3.4.5","EAY131"\n'
        '"EAY131-1","1.2.3.4","1.2.3.4.6","RTSTRUCT","multi\nline","1","","EAY131"\n'
    )
    table = parse_metadata_csv(text)
    assert table.dialect == "tcia"
    assert table.issues == ()
    first, second = table.rows
    assert first.series_description == "Pre-dose, LIVER - 1"
    assert first.number_of_images == 7
    assert first.patient_id == "EAY131-1"
    assert first.collection == "EAY131"
    assert first.file_location == "EAY131-1/1.2.3.4/1.2.3.4.5"
    assert second.series_description == "multi\nline"
    assert second.line == 3
    assert second.file_location is None


@pytest.mark.parametrize(
    ("series", "count", "patient"),
    [
        ("Series Instance UID", "Image Count", "SUBJECT ID"),
        ("series_instance_uid", "number_of_images", "patient_id"),
        ("SeriesUID", "ImageCount", "Patient ID"),
        ("Series UID", "Number Of Series Related Instances", "PatientID"),
    ],
)
def test_column_name_variants(series: str, count: str, patient: str) -> None:
    text = f"{patient},{series},{count}\nP1,1.2.3.9,42\n"
    (row,) = parse_metadata_csv(text).rows
    assert (row.patient_id, row.series_uid, row.number_of_images) == ("P1", "1.2.3.9", 42)
    assert normalize_column(f' "{series}" ') in ("seriesinstanceuid", "seriesuid")


def test_unquoted_other_dialect_realigned_by_shape() -> None:
    # Another header order and an unquoted description with commas: anchored on UID and count.
    text = "SeriesInstanceUID,SeriesDescription,NumberOfImages,PatientID\n1.2.3.4,a, b, c,12,P9\n"
    (row,) = parse_metadata_csv(text).rows
    assert row.series_description == "a, b, c"
    assert row.number_of_images == 12
    assert row.patient_id == "P9"


def test_row_that_fits_nowhere_is_reported_with_its_line() -> None:
    text = "\n".join([NBIA_HEADER, nbia_row(), "garbage,row", nbia_row(series_uid="1.2.3.77")])
    table = parse_metadata_csv(text, source="dl/metadata.csv")
    assert [r.series_uid for r in table.rows] == ["1.2.826.0.1.3680043.8.498.11", "1.2.3.77"]
    (issue,) = table.issues
    assert "dl/metadata.csv line 3" in issue
    assert "17 columns" in issue


def test_header_without_series_column() -> None:
    with pytest.raises(DownloadLayoutError, match=r"no series UID column.*'Series UID'"):
        parse_metadata_csv("PatientID,Age\nP1,42\n", source="clinical/metadata.csv")


def test_empty_table() -> None:
    with pytest.raises(DownloadLayoutError, match=r"x/metadata.csv: the metadata table is empty"):
        parse_metadata_csv("\n\n", source="x/metadata.csv")


def test_binary_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DownloadLayoutError, match=r"metadata.csv: the metadata table is binary"):
        read_metadata_csv(path)


def test_read_metadata_csv_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_bytes((NBIA_HEADER + "\n" + nbia_row(series_desc="Récidive, FOIE")).encode("cp1252"))
    table = read_metadata_csv(path)
    assert table.path == path
    assert table.rows[0].series_description == "Récidive, FOIE"


def test_by_series_keeps_first_row() -> None:
    text = "\n".join([NBIA_HEADER, nbia_row(images=2), nbia_row(images=5)])
    assert (
        parse_metadata_csv(text).by_series()["1.2.826.0.1.3680043.8.498.11"].number_of_images == 2
    )


def test_series_json(tmp_path: Path) -> None:
    path = tmp_path / "1.2.3.json"
    record = {"Series UID": "1.2.3", "Number of Images": "2", "Collection": "CBIS-DDSM"}
    path.write_text(json.dumps(record))
    row = read_series_json(path)
    assert row is not None
    assert (row.series_uid, row.number_of_images, row.collection) == ("1.2.3", 2, "CBIS-DDSM")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    assert read_series_json(other) is None


def test_resolve_location(tmp_path: Path) -> None:
    (tmp_path / "EAY131" / "P1").mkdir(parents=True)
    assert resolve_location(tmp_path, "./EAY131/P1") == tmp_path / "EAY131" / "P1"
    assert resolve_location(tmp_path, ".\\EAY131\\P1") == tmp_path / "EAY131" / "P1"
    # Absolute, written on another machine: re-anchored on the tail that exists here.
    assert resolve_location(tmp_path, "C:\\Users\\me\\manifest-1\\EAY131\\P1") == (
        tmp_path / "EAY131" / "P1"
    )
    assert resolve_location(tmp_path, "/data/elsewhere/EAY131/P1") == tmp_path / "EAY131" / "P1"


# Free text as TCIA writes it: words, hyphens, digits, and ", " between parts. A part made only of
# digits could equally be a date or a count when the date is blank (e.g. "0, 00000000"): that is
# ambiguous for any reader, so parts start with a letter.
_word = st.text(alphabet="ABCDEFGHIJKLMNOPRSTUVXYZabcdefgh0123456789-() ", min_size=0, max_size=11)
_free_text = st.lists(
    st.tuples(st.sampled_from("ACLPRSTaceilnrt"), _word).map(lambda p: (p[0] + p[1]).strip()),
    min_size=1,
    max_size=4,
).map(", ".join)


@settings(max_examples=150, deadline=None)
@given(
    study_desc=_free_text,
    series_desc=_free_text,
    manufacturer=st.sampled_from(["GE MEDICAL SYSTEMS", "SIEMENS", "Hologic, Inc.", ""]),
    study_date=st.sampled_from(["06-15-2016", ""]),
    images=st.integers(0, 5000),
)
def test_alignment_recovers_every_field(
    study_desc: str, series_desc: str, manufacturer: str, study_date: str, images: int
) -> None:
    line = nbia_row(
        study_desc=study_desc,
        series_desc=series_desc,
        manufacturer=manufacturer,
        study_date=study_date,
        images=images,
    )
    table = parse_metadata_csv(NBIA_HEADER + "\n" + line)
    assert table.issues == ()
    (row,) = table.rows
    assert row.study_description == study_desc
    assert row.series_description == series_desc
    assert row.values["Manufacturer"] == manufacturer
    assert row.study_date == (study_date or None)
    assert row.number_of_images == images
    assert row.modality == "RTSTRUCT"


def test_minimal_quoting_csv_writer_with_multiline_value() -> None:
    # Python's csv.writer: header unquoted, only values with commas or line breaks quoted.
    text = (
        "PatientID,StudyInstanceUID,SeriesInstanceUID,SeriesDescription,NumberOfImages,FileSize\n"
        'P1,1.2.3,1.2.3.4,"Pre-dose, LIVER - 1",3,123456\n'
        'P1,1.2.3,1.2.3.5,"two\nlines",1,99\n'
    )
    table = parse_metadata_csv(text)
    assert table.dialect == "tcia"
    assert [r.series_description for r in table.rows] == ["Pre-dose, LIVER - 1", "two\nlines"]
    assert [r.line for r in table.rows] == [2, 3]


def test_unexpected_shapes_fall_back_to_uid_anchors() -> None:
    # A lower-case modality and a count that is not a number still leave the UIDs in place.
    line = nbia_row(modality="ct", series_desc="Pre-dose, LIVER - 1").replace(
        ",1,12.5 KB,", ",n/a,12.5 KB,"
    )
    (row,) = parse_metadata_csv(NBIA_HEADER + "\n" + line).rows
    assert row.modality == "ct"
    assert row.series_description == "Pre-dose, LIVER - 1"
    assert row.number_of_images is None
    assert row.values["Number of Images"] == "n/a"
    assert row.sop_class_uid == "1.2.840.10008.5.1.4.1.1.481.3"
