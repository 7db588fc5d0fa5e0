"""tt.scan: indexing downloads by their headers, layouts, and cross-checks."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SegmentationStorage,
)

from tcia_trials.errors import DownloadLayoutError, InstanceNotFoundError
from tcia_trials.source.index import Index, Instance, Problem, Series, scan
from tcia_trials.source.layout import choose_layout, folder_pattern, layout_collection
from tcia_trials.source.metadata_csv import read_metadata_csv, resolve_location

NBIA_HEADER = (
    "Series UID,Collection,3rd Party Analysis,Data Description URI,Subject ID,Study UID,"
    "Study Description,Study Date,Series Description,Manufacturer,Modality,SOP Class Name,"
    "SOP Class UID,Number of Images,File Size,File Location,Download Timestamp"
)
STUDY = "1.2.826.0.1.3680043.8.498.81000"
CT_SERIES = "1.2.826.0.1.3680043.8.498.81001"
SEG_SERIES = "1.2.826.0.1.3680043.8.498.81002"


def write_dicom(
    path: Path,
    *,
    sop: str | None,
    series: str | None = CT_SERIES,
    study: str = STUDY,
    patient: str = "EAY131-1",
    modality: str = "CT",
    sop_class: str = CTImageStorage,
    instance_number: int | None = 1,
    series_number: int | None = 2,
    description: str = "CT CHEST",
    frames: int | None = None,
    time_point: str | None = None,
    ctp_collection: str | None = None,
    protocol_id: str | None = None,
    headerless: bool = False,
) -> Path:
    """A small DICOM header (no pixel data: scan never needs it)."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    if sop is not None:
        ds.SOPInstanceUID = sop
    ds.StudyDate = "20160615"
    ds.Modality = modality
    ds.StudyDescription = "CT CHEST, ABD"
    ds.SeriesDescription = description
    ds.PatientID = patient
    ds.StudyInstanceUID = study
    if series is not None:
        ds.SeriesInstanceUID = series
    if series_number is not None:
        ds.SeriesNumber = series_number
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.999"
    if frames is not None:
        ds.NumberOfFrames = frames
    if time_point is not None:
        ds.ClinicalTrialTimePointID = time_point
    if protocol_id is not None:
        ds.ClinicalTrialProtocolID = protocol_id
    if ctp_collection is not None:
        ds.private_block(0x0013, "CTP", create=True).add_new(0x10, "LO", ctp_collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    if headerless:
        pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    else:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = sop or "1.2.3"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def sop(n: int) -> str:
    return f"1.2.826.0.1.3680043.8.498.2{n:04d}"


def kinds(problems: list[Problem]) -> list[str]:
    return sorted(p.kind for p in problems)


# ------------------------------------------------------------------------------------------------
# Errors


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DownloadLayoutError, match=r"nope: no such file or folder; expected a TCIA"):
        scan(tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write_dicom(tmp_path / ".git" / "x.dcm", sop=sop(1))  # hidden folders are not searched
    with pytest.raises(DownloadLayoutError, match=r"the folder is empty \(no files; hidden"):
        scan(tmp_path)


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("hello")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(
        DownloadLayoutError,
        match=r"no DICOM file could be indexed: 2 files seen, 2 skipped \(2 not-dicom\)",
    ):
        scan(tmp_path)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        scan(tmp_path, workers=0)


# ------------------------------------------------------------------------------------------------
# Files of every kind


def test_mixed_folder_every_file_accounted_for(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a" / "IM0001", sop=sop(1), instance_number=2)  # no suffix
    write_dicom(tmp_path / "a" / "b" / "x.DCM", sop=sop(2), instance_number=1)
    write_dicom(tmp_path / "c.dcm", sop=sop(3), instance_number=None)
    write_dicom(tmp_path / "headerless", sop=sop(4), instance_number=3, headerless=True)
    write_dicom(tmp_path / ".hidden" / "y.dcm", sop=sop(5))
    (tmp_path / "README.txt").write_text("TCIA download\n")
    (tmp_path / "metadata.xlsx").write_bytes(b"PK\x03\x04" + bytes(200))
    (tmp_path / "series.json").write_text('{"a": 1}')
    (tmp_path / "random.bin").write_bytes(random.Random(0).randbytes(4096))
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "fake.dcm").write_bytes(b"\x08\x00\x05\x00" + random.Random(1).randbytes(300))
    index = scan(tmp_path)

    (series,) = index.series.values()
    assert index.layout == "folder"
    # Sorted by InstanceNumber, files without one last.
    assert [i.path.name for i in series.instances] == ["x.DCM", "IM0001", "headerless", "c.dcm"]
    assert all(i.path.is_absolute() for i in series.instances)
    headerless = series.instances[2]
    assert headerless.transfer_syntax_uid is None
    assert series.instances[0].transfer_syntax_uid == ExplicitVRLittleEndian
    reasons = {p.path.name: p.kind for p in index.skipped if p.path is not None}
    assert reasons == {
        "README.txt": "not-dicom",
        "metadata.xlsx": "not-dicom",
        "series.json": "not-dicom",
        "random.bin": "not-dicom",
        "empty.dcm": "not-dicom",
        "fake.dcm": reasons["fake.dcm"],
    }
    assert reasons["fake.dcm"] in ("not-dicom", "unreadable")
    assert "empty file (0 bytes)" in next(
        p.message for p in index.skipped if "empty" in str(p.path)
    )
    assert len(series.instances) + len(index.skipped) == 10  # every non-hidden file
    assert index.problems == []


def test_missing_uids_are_skipped_with_reason(tmp_path: Path) -> None:
    write_dicom(tmp_path / "ok.dcm", sop=sop(1))
    write_dicom(tmp_path / "nosop.dcm", sop=None)
    write_dicom(tmp_path / "noseries.dcm", sop=sop(2), series=None)
    index = scan(tmp_path)
    skipped = {p.path.name: p for p in index.skipped if p.path is not None}
    assert skipped["nosop.dcm"].kind == "missing-uid"
    assert "without SOPInstanceUID" in skipped["nosop.dcm"].message
    assert skipped["noseries.dcm"].kind == "missing-uid"
    assert "without SeriesInstanceUID" in skipped["noseries.dcm"].message
    assert index.summary()["skipped"] == {"missing-uid": 2}


def test_unreadable_header(tmp_path: Path) -> None:
    write_dicom(tmp_path / "ok.dcm", sop=sop(1))
    good = (tmp_path / "ok.dcm").read_bytes()
    # A DICM file whose first element claims an undefined-length value that never ends.
    (tmp_path / "broken.dcm").write_bytes(good[:132] + b"\x02\x00\x00\x00UL\x04\x00\xff\xff")
    index = scan(tmp_path)
    (problem,) = index.skipped
    assert problem.path == tmp_path / "broken.dcm"
    assert problem.kind == "unreadable"
    assert "the DICOM header cannot be parsed" in problem.message


def test_duplicate_instance_keeps_first(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", sop=sop(1))
    write_dicom(tmp_path / "b.dcm", sop=sop(1))
    index = scan(tmp_path)
    assert index.series[CT_SERIES].paths == [tmp_path / "a.dcm"]
    (problem,) = index.problems
    assert problem.kind == "duplicate-instance"
    assert problem.path == tmp_path / "b.dcm"
    assert f"SOPInstanceUID {sop(1)} is also in {tmp_path / 'a.dcm'}" in problem.message
    assert [p.kind for p in index.skipped] == ["duplicate-instance"]


def test_conflicting_headers(tmp_path: Path) -> None:
    write_dicom(tmp_path / "1.dcm", sop=sop(1), patient="P1")
    write_dicom(tmp_path / "2.dcm", sop=sop(2), patient="P1")
    write_dicom(tmp_path / "3.dcm", sop=sop(3), patient="P2", modality="MR")
    index = scan(tmp_path)
    series = index.series[CT_SERIES]
    assert (series.patient_id, series.modality) == ("P1", "CT")  # the majority
    messages = [p.message for p in index.problems if p.kind == "conflicting-headers"]
    assert len(messages) == 2
    assert any(
        "disagree on PatientID: P1 in 2 files" in m and "P2 in 1 file" in m for m in messages
    )
    assert any("disagree on Modality" in m and "keeps 'CT'" in m for m in messages)


def test_series_fields(tmp_path: Path) -> None:
    write_dicom(
        tmp_path / "seg.dcm",
        sop=sop(1),
        series=SEG_SERIES,
        modality="SEG",
        sop_class=SegmentationStorage,
        frames=12,
        series_number=None,
        description="Pre-dose, LIVER - 1",
        time_point="Pre-dose",
        ctp_collection="EAY131",
        protocol_id="NCT02465060",
    )
    write_dicom(tmp_path / "ct.dcm", sop=sop(2), protocol_id="NCT02465060")
    index = scan(tmp_path)
    seg = index.series[SEG_SERIES]
    assert seg.modality == "SEG"
    assert seg.sop_class_uid == SegmentationStorage
    assert seg.series_number is None
    assert seg.description == "Pre-dose, LIVER - 1"
    assert seg.time_point == "Pre-dose"
    assert seg.collection == "EAY131"  # TCIA's CTP stamp
    assert seg.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.999"
    assert seg.expected_instances is None
    assert seg.instances[0].number_of_frames == 12
    ct = index.series[CT_SERIES]
    assert ct.collection == "NCT02465060"  # ClinicalTrialProtocolID, the last resort
    assert ct.instances[0].number_of_frames == 1
    assert ct.time_point is None
    (study,) = index.studies.values()
    assert (study.study_uid, study.patient_id, study.date) == (STUDY, "EAY131-1", "20160615")
    assert study.description == "CT CHEST, ABD"
    assert study.series_uids == [CT_SERIES, SEG_SERIES]  # series number 2, then none
    assert list(index.series) == [CT_SERIES, SEG_SERIES]


def test_instance_lookup_and_queries(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", sop=sop(1), patient="P1")
    write_dicom(tmp_path / "b.dcm", sop=sop(2), patient="P2", series=SEG_SERIES, study="1.2.3")
    index = scan(tmp_path)
    instance = index.instance(sop(2))
    assert isinstance(instance, Instance)
    assert instance.path == tmp_path / "b.dcm"
    with pytest.raises(InstanceNotFoundError, match=r"instance 9\.9 \(SOPInstanceUID\) is not in"):
        index.instance("9.9")
    with pytest.raises(KeyError):
        index.instance("9.9")
    assert [s.series_uid for s in index.series_for_patient("P2")] == [SEG_SERIES]
    assert index.series_for_patient("nobody") == []
    assert index.patients == ["P1", "P2"]
    assert index.summary() == {
        "patients": 2,
        "studies": 2,
        "series": 2,
        "instances": 2,
        "skipped": {},
        "problems": {},
    }
    assert "patients=2" in repr(index)
    assert isinstance(index.series[SEG_SERIES], Series)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="the platform has no symbolic links")
def test_symlinks_followed_without_loops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dicom(data / "a.dcm", sop=sop(1))
    outside = write_dicom(tmp_path / "outside" / "b.dcm", sop=sop(2))
    (data / "loop").symlink_to(data, target_is_directory=True)
    (data / "link_to_b").symlink_to(outside)
    (data / "z_again.dcm").symlink_to(data / "a.dcm")
    (data / "broken").symlink_to(tmp_path / "does-not-exist")
    index = scan(data)
    assert sorted(p.name for p in index.series[CT_SERIES].paths) == ["a.dcm", "link_to_b"]
    skipped = {p.path.name: p for p in index.skipped if p.path is not None}
    assert skipped["z_again.dcm"].kind == "duplicate-file"
    assert skipped["broken"].kind == "unreadable"
    assert "broken symbolic link" in skipped["broken"].message
    assert len(skipped) == 2


def test_workers_give_identical_results_and_progress(tmp_path: Path) -> None:
    for n in range(90):
        write_dicom(
            tmp_path / f"s{n % 3}" / f"{n:03d}",
            sop=sop(n),
            series=f"1.2.3.{n % 3}",
            instance_number=n,
        )
    (tmp_path / "s0" / "notes.txt").write_text("x")
    calls: list[tuple[int, int]] = []
    one = scan(tmp_path, workers=1, progress=lambda done, total: calls.append((done, total)))
    two = scan(tmp_path, workers=2)
    assert calls[0] == (0, 91)
    assert calls[-1] == (91, 91)
    assert one.series == two.series
    assert list(one.series) == list(two.series)
    assert one.studies == two.studies
    assert one.skipped == two.skipped
    assert one.problems == two.problems
    assert one.layout == two.layout


def test_single_file(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "one.dcm", sop=sop(1))
    index = scan(path)
    assert index.series[CT_SERIES].paths == [path]


# ------------------------------------------------------------------------------------------------
# Layouts


def test_layout_helpers() -> None:
    assert folder_pattern(("c", "p", "1.2.3", "1.2.3.4", "f.dcm"), "1.2.3", "1.2.3.4") == "uid"
    assert folder_pattern(("c", "p", "1.2.3", "CT_1.2.3.4", "f.dcm"), "1.2.3", "1.2.3.4") == "idc"
    descriptive = ("c", "p", "06-15-2016-NA-CT-12345", "2.000000-CT-67890", "1-1.dcm")
    assert folder_pattern(descriptive, "1.2.12345", "1.2.67890") == "descriptive"
    assert folder_pattern(("a", "f.dcm"), "1.2.3", "1.2.3.4") is None
    assert choose_layout([("idc", 5), (None, 5)]) == "folder"  # half is not a majority
    assert choose_layout([("uid", 5), ("uid", 5)]) == "nbia-classic"
    assert choose_layout([("uid", 4)]) == "retriever"
    assert choose_layout([("uid", 5)], table_dialects=["tcia"]) == "retriever"
    assert choose_layout([("uid", 4)], table_dialects=["nbia"]) == "nbia-classic"
    assert choose_layout([(None, 1)], has_dicomdir=True) == "dicomdir"
    assert layout_collection("idc", ("eay131", "p", "s", "CT_x", "f.dcm")) == "eay131"
    assert layout_collection("idc", ("p", "s", "CT_x", "f.dcm")) is None
    assert layout_collection("folder", ("a", "b", "c", "d", "f")) is None


def _row(series: str, desc: str, images: int, location: str, modality: str = "CT") -> str:
    return ",".join(
        [
            series,
            "EAY131",
            "NO",
            "",
            "EAY131-1",
            STUDY,
            "CT CHEST, ABD",
            "06-15-2016",
            desc,
            "GE MEDICAL SYSTEMS",
            modality,
            "CT Image Storage",
            CTImageStorage,
            str(images),
            "1.5 MB",
            location,
            "2024-01-02T03:04:05.678",
        ]
    )


def make_nbia_download(root: Path) -> tuple[Path, Path]:
    """An NBIA descriptive download with commas in descriptions, a short series, a missing one."""
    study_dir = root / "EAY131" / "EAY131-1" / "06-15-2016-NA-CT CHEST, ABD-81000"
    ct_dir = study_dir / "2.000000-CT CHEST-81001"
    seg_dir = study_dir / "300.000000-Pre-dose, LIVER - 1-81002"
    for n in range(3):
        write_dicom(ct_dir / f"1-{n + 1:02d}.dcm", sop=sop(n), instance_number=n + 1)
    write_dicom(
        seg_dir / "1-1.dcm",
        sop=sop(10),
        series=SEG_SERIES,
        modality="SEG",
        sop_class=SegmentationStorage,
        description="Pre-dose, LIVER - 1",
    )
    rel = "./EAY131/EAY131-1/06-15-2016-NA-CT CHEST, ABD-81000/"
    lines = [
        NBIA_HEADER,
        _row(CT_SERIES, "CT CHEST", 4, rel + "2.000000-CT CHEST-81001"),
        _row(
            SEG_SERIES,
            "Pre-dose, LIVER - 1",
            1,
            rel + "300.000000-Pre-dose, LIVER - 1-81002",
            "SEG",
        ),
        _row(
            "1.2.826.0.1.3680043.8.498.81003",
            "Pre-dose, LIVER - 1 - SEED POINT",
            1,
            rel + "301.000000-Pre-dose, LIVER - 1 - SEED POINT-81003",
            "RTSTRUCT",
        ),
    ]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return ct_dir, seg_dir


def test_nbia_download_cross_checks(tmp_path: Path) -> None:
    ct_dir, _ = make_nbia_download(tmp_path)
    (ct_dir / "1-04.dcm").write_bytes(b"not a dicom file")
    index = scan(tmp_path)
    assert index.layout == "nbia"
    assert index.metadata_tables == [tmp_path / "metadata.csv"]
    ct, seg = index.series[CT_SERIES], index.series[SEG_SERIES]
    assert (ct.collection, ct.expected_instances, len(ct.instances)) == ("EAY131", 4, 3)
    assert (seg.collection, seg.expected_instances, len(seg.instances)) == ("EAY131", 1, 1)
    assert kinds(index.problems) == ["count-mismatch", "missing-series"]
    mismatch = next(p for p in index.problems if p.kind == "count-mismatch")
    assert mismatch.series_uid == CT_SERIES
    assert "lists 4 images, found 3 DICOM files" in mismatch.message
    assert "2.000000-CT CHEST-81001" in mismatch.message
    assert "files skipped in that folder: 1 not-dicom" in mismatch.message
    missing = next(p for p in index.problems if p.kind == "missing-series")
    assert missing.series_uid == "1.2.826.0.1.3680043.8.498.81003"
    assert "'Pre-dose, LIVER - 1 - SEED POINT'" in missing.message
    assert "metadata.csv line 4 with 1 images" in missing.message
    assert "SEED POINT-81003 does not exist" in missing.message
    skipped = {p.path.name: p.kind for p in index.skipped if p.path is not None}
    assert skipped == {"metadata.csv": "not-dicom", "1-04.dcm": "not-dicom"}


def test_scanning_collection_folder_uses_parent_metadata(tmp_path: Path) -> None:
    make_nbia_download(tmp_path)
    index = scan(tmp_path / "EAY131")
    assert index.metadata_tables == [tmp_path / "metadata.csv"]
    assert index.series[CT_SERIES].expected_instances == 4
    assert kinds(index.problems) == ["count-mismatch", "missing-series"]
    patient = scan(tmp_path / "EAY131" / "EAY131-1")  # two levels below the table
    assert patient.metadata_tables == [tmp_path / "metadata.csv"]
    assert kinds(patient.problems) == ["count-mismatch", "missing-series"]
    # Scanning one series folder: rows of the other series point outside it and are ignored.
    seg_dir = next((tmp_path / "EAY131").rglob("300.000000-*"))
    seg_only = scan(seg_dir)
    assert seg_only.problems == []
    assert seg_only.series[SEG_SERIES].expected_instances == 1


def test_bad_metadata_rows_are_problems_not_errors(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", sop=sop(1))
    (tmp_path / "metadata.csv").write_text(NBIA_HEADER + "\nthis,row,is,broken\n")
    index = scan(tmp_path)
    (problem,) = index.problems
    assert problem.kind == "metadata-csv"
    assert "metadata.csv line 2" in problem.message
    (tmp_path / "metadata.csv").write_text("Name,Age\nx,1\n")
    (problem,) = scan(tmp_path).problems
    assert problem.kind == "metadata-csv"
    assert "no series UID column" in problem.message


def test_nbia_classic_layout(tmp_path: Path) -> None:
    write_dicom(tmp_path / "EAY131" / "EAY131-1" / STUDY / CT_SERIES / "000001.dcm", sop=sop(1))
    location = f"./EAY131/EAY131-1/{STUDY}/{CT_SERIES}"
    (tmp_path / "metadata.csv").write_text(
        NBIA_HEADER + "\n" + _row(CT_SERIES, "CT CHEST", 1, location) + "\n"
    )
    index = scan(tmp_path)
    assert index.layout == "nbia-classic"
    assert index.problems == []
    assert index.series[CT_SERIES].collection == "EAY131"


def test_tcia_retriever_layout(tmp_path: Path) -> None:
    write_dicom(tmp_path / "EAY131-1" / STUDY / CT_SERIES / "1-1.dcm", sop=sop(1))
    write_dicom(
        tmp_path / "EAY131-1" / STUDY / SEG_SERIES / "1-1.dcm",
        sop=sop(2),
        series=SEG_SERIES,
        modality="SEG",
    )
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "series_metadata.csv").write_text(
        '"Series UID","Collection","Subject ID","Study UID","Series Description",'
        '"Modality","Number of Images"\n'
        f'"{CT_SERIES}","EAY131","EAY131-1","{STUDY}","CT, CHEST","CT","2"\n'
    )
    (tmp_path / "metadata" / f"{SEG_SERIES}.json").write_text(
        f'{{"Series UID": "{SEG_SERIES}", "Collection": "EAY131", "Number of Images": "1"}}'
    )
    index = scan(tmp_path)
    assert index.layout == "retriever"
    assert index.series[CT_SERIES].expected_instances == 2
    assert index.series[SEG_SERIES].expected_instances == 1
    assert index.series[SEG_SERIES].collection == "EAY131"
    (problem,) = index.problems
    assert problem.kind == "count-mismatch"
    assert "lists 2 images, found 1 DICOM file" in problem.message


def test_idc_layout(tmp_path: Path) -> None:
    folder = tmp_path / "eay131" / "EAY131-1" / STUDY / f"CT_{CT_SERIES}"
    write_dicom(folder / "0b0c81a5-8a7e-4b5b-9a44-1d8f1c3e8e6e.dcm", sop=sop(1))
    index = scan(tmp_path)
    assert index.layout == "idc"
    assert index.series[CT_SERIES].collection == "eay131"  # the folder; no table, no CTP stamp
    write_dicom(
        folder / "1b0c81a5-8a7e-4b5b-9a44-1d8f1c3e8e6e.dcm", sop=sop(2), ctp_collection="EAY131"
    )
    assert scan(tmp_path).series[CT_SERIES].collection == "EAY131"  # the CTP stamp comes first


# ------------------------------------------------------------------------------------------------
# Real files


def _pydicom_dicomdir_tests(tmp_path: Path) -> Path:
    source = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"
    if not source.is_dir():
        pytest.skip(f"pydicom's DICOMDIR test set not found at {source}")
    return Path(shutil.copytree(source, tmp_path / "dicomdirtests"))


def test_pydicom_dicomdir_set(tmp_path: Path) -> None:
    root = _pydicom_dicomdir_tests(tmp_path)
    index = scan(root)
    assert index.layout == "dicomdir"
    dicomdirs = sorted(p.path.name for p in index.skipped if p.kind == "dicomdir")
    assert "DICOMDIR" in dicomdirs and "DICOMDIR-bigEnd" in dicomdirs
    assert index.dicomdirs == sorted(index.dicomdirs)
    assert len(index.dicomdirs) == len(dicomdirs)
    assert index.problems == []
    # Oracle: pydicom's FileSet lists the instances of the main DICOMDIR.
    fileset = FileSet(pydicom.dcmread(root / "DICOMDIR"))
    for instance in fileset:
        assert index.instance(instance.SOPInstanceUID).path == Path(instance.path)

    removed = root / "77654033" / "CR1" / "6154"
    removed.unlink()
    problems = [p for p in scan(root).problems if p.kind == "dicomdir-missing-file"]
    assert problems
    assert all(p.path == removed for p in problems)
    assert f"{root / 'DICOMDIR'} references 77654033/CR1/6154" in problems[0].message
    assert "does not exist" in problems[0].message


def test_realdata_mixed_series_folder(realdata: Path) -> None:
    folder = realdata / "13_pydicom_dicomdir_series"
    index = scan(folder)
    # Oracle: plain pydicom over every file.
    expected: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        expected.setdefault(str(ds.SeriesInstanceUID), []).append(path)
    assert {uid: sorted(s.paths) for uid, s in index.series.items()} == expected
    mixed = {
        s.series_uid for s in index.series.values() if s.paths[0].parent.name == "98892003_MR2"
    }
    assert len(mixed) == 3
    assert index.summary()["instances"] == 19
    assert index.skipped == [] and index.problems == []
    ct = next(s for s in index.series.values() if s.modality == "CT")
    assert [i.instance_number for i in ct.instances] == [6, 7, 8, 9, 10]


def test_realdata_headerless_and_truncated(realdata: Path, tmp_path: Path) -> None:
    shutil.copy(realdata / "07_rtstruct_pydicom_standalone" / "rtstruct.dcm", tmp_path / "RS1")
    shutil.copy(realdata / "12_corrupt_and_single" / "MR_truncated.dcm", tmp_path / "mr.dcm")
    (tmp_path / "README.txt").write_text("not dicom")
    index = scan(tmp_path)
    rt = next(s for s in index.series.values() if s.modality == "RTSTRUCT")
    assert rt.paths == [tmp_path / "RS1"]
    assert rt.instances[0].transfer_syntax_uid is None  # no file meta: read with force
    mr = next(s for s in index.series.values() if s.modality == "MR")
    assert mr.paths == [tmp_path / "mr.dcm"]  # the header is intact; pixel errors come later
    assert [p.kind for p in index.skipped] == ["not-dicom"]


def test_realdata_duplicates_across_encodings(realdata: Path) -> None:
    # The same SOP instance stored in several transfer syntaxes: one file kept, others reported.
    folder = realdata / "11_mr_emri_small_multiframe_pydicom_data"
    index = scan(folder)
    oracle: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        try:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        except Exception:
            continue
        oracle.setdefault(uid, []).append(path)
    n_duplicates = sum(len(paths) - 1 for paths in oracle.values())
    assert n_duplicates > 0
    assert index.summary()["problems"].get("duplicate-instance") == n_duplicates
    assert index.summary()["instances"] == len(oracle)


# ------------------------------------------------------------------------------------------------
# Synthetic downloads (written by tcia_trials.synthetic)

SYNTHETIC_LAYOUTS = ("nbia", "nbia-classic", "retriever", "idc")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small synthetic download per layout (2 patients, no PET to keep it fast)."""
    try:
        from tcia_trials.synthetic import generate_collection
    except ImportError as exc:
        pytest.skip(f"tcia_trials.synthetic.generate_collection is not available yet ({exc})")
    base = tmp_path_factory.mktemp("synthetic")
    out = {}
    for layout in SYNTHETIC_LAYOUTS:
        out[layout] = base / layout
        generate_collection(
            out[layout], patients=2, seed=0, layout=layout, ct_shape=(10, 32, 32), with_pet=False
        )
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("layout", SYNTHETIC_LAYOUTS)
def test_synthetic_layouts(synthetic: dict[str, Path], layout: str) -> None:
    out = synthetic[layout]
    truth = json.loads((out / "ground_truth.json").read_text())
    index = scan(out)
    assert index.layout == layout
    assert index.problems == []
    summary = index.summary()
    counts = truth["counts"]
    assert (summary["patients"], summary["studies"], summary["series"], summary["instances"]) == (
        counts["patients"],
        counts["studies"],
        counts["series"],
        counts["files"],
    )
    # Oracle: every DICOM file the generator wrote, read with pydicom.
    by_series: dict[str, set[Path]] = {}
    for path in out.rglob("*"):
        if path.is_file() and path.suffix == ".dcm":
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            by_series.setdefault(str(ds.SeriesInstanceUID), set()).add(path)
    assert {uid: set(s.paths) for uid, s in index.series.items()} == by_series
    assert {s.collection for s in index.series.values()} <= {truth["collection"], "synth_trial"}
    if layout != "idc":  # IDC downloads have no metadata table
        assert all(s.expected_instances == len(s.instances) for s in index.series.values())
    assert {s.time_point for s in index.series.values()} >= {"Pre-dose"}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_synthetic_nbia_download_damaged(synthetic: dict[str, Path], tmp_path: Path) -> None:
    out = Path(shutil.copytree(synthetic["nbia"], tmp_path / "nbia"))
    table = read_metadata_csv(out / "metadata.csv")
    multi = next(r for r in table.rows if (r.number_of_images or 0) > 1)
    annotation = next(r for r in table.rows if "," in (r.series_description or ""))
    assert multi.file_location and annotation.file_location
    multi_dir = resolve_location(out, multi.file_location)
    sorted(multi_dir.iterdir())[0].unlink()
    shutil.rmtree(resolve_location(out, annotation.file_location))
    index = scan(out, workers=2)
    assert kinds(index.problems) == ["count-mismatch", "missing-series"]
    mismatch = next(p for p in index.problems if p.kind == "count-mismatch")
    assert mismatch.series_uid == multi.series_uid
    n = multi.number_of_images
    assert f"lists {n} images, found {n - 1} DICOM file" in mismatch.message
    missing = next(p for p in index.problems if p.kind == "missing-series")
    assert missing.series_uid == annotation.series_uid
    assert repr(annotation.series_description) in missing.message
    assert "does not exist" in missing.message


def test_index_is_a_plain_dataclass(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", sop=sop(1), headerless=False)
    index = scan(tmp_path)
    assert isinstance(index, Index)
    copy = Index(index.root, index.layout, dict(index.series), index.studies, [], [])
    assert copy.instance(sop(1)).path == tmp_path / "a.dcm"  # lookup built lazily


def test_implicit_vr_file(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "a.dcm", sop=sop(1))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
    index = scan(tmp_path)
    assert index.instance(sop(1)).transfer_syntax_uid == ImplicitVRLittleEndian


def test_nbia_repeated_folder_suffix() -> None:
    parts = ("c", "p", "06-15-2016-NA-CT-12345", "2.000000-CT-67890 (2)", "1-1.dcm")
    assert folder_pattern(parts, "1.2.12345", "1.2.67890") == "descriptive"


def test_index_pickles(tmp_path: Path) -> None:
    # Indexes travel to worker processes (Beam, multiprocessing).
    import pickle

    write_dicom(tmp_path / "a.dcm", sop=sop(1))
    index = scan(tmp_path)
    copy = pickle.loads(pickle.dumps(index))
    assert copy == index
    assert copy.instance(sop(1)).path == tmp_path / "a.dcm"


def _media_of(folder: Path, out: Path) -> Path:
    """A DICOM file-set of the files of ``folder`` written by pydicom's FileSet: ``out/DICOMDIR``
    and ``out/PT000000/ST000000/SE000000/IM000000``, ...  (the oracle of its references)."""
    fileset = FileSet()
    for path in sorted(folder.rglob("*.dcm")):
        fileset.add(path)
    fileset.write(out)
    return out


def _missing_files(root: Path) -> list[Problem]:
    return [p for p in scan(root).problems if p.kind.startswith("dicomdir-")]


def test_realdata_dicomdir_resolves_from_its_own_folder(realdata: Path, tmp_path: Path) -> None:
    media = _media_of(realdata / "13_pydicom_dicomdir_series", tmp_path / "media")
    index = scan(media)
    assert index.layout == "dicomdir" and index.summary()["instances"] == 19
    assert _missing_files(media) == []


@pytest.mark.parametrize("layout", ["dirfile-below-files", "dirfile-above-files"])
def test_realdata_philips_dirfile_moved_from_its_files(
    realdata: Path, tmp_path: Path, layout: str
) -> None:
    """Philips exports name the DICOMDIR DIRFILE and keep it in DICOM/ beside the patient
    folders, or above a DICOM/ folder holding them: no file is reported missing, and a file
    deleted afterwards is."""
    media = _media_of(realdata / "13_pydicom_dicomdir_series", tmp_path / "media")
    export = tmp_path / "export"
    export.mkdir()
    if layout == "dirfile-below-files":
        shutil.move(media / "PT000000", export / "PT000000")
        (export / "DICOM").mkdir()
        shutil.move(media / "DICOMDIR", export / "DICOM" / "DIRFILE")
        files = export
    else:
        (export / "DICOM").mkdir()
        shutil.move(media / "PT000000", export / "DICOM" / "pt000000")  # and a change of case
        shutil.move(media / "DICOMDIR", export / "DIRFILE")
        files = export / "DICOM"
    index = scan(export)
    assert len(index.dicomdirs) == 1 and index.summary()["instances"] == 19
    assert _missing_files(export) == []

    removed = next(files.rglob("IM000003"))
    removed.unlink()
    problems = _missing_files(export)
    assert [p.kind for p in problems] == ["dicomdir-missing-file"]
    assert problems[0].path is not None and str(problems[0].path).lower() == str(removed).lower()
    assert "IM000003" in problems[0].message and "does not exist" in problems[0].message
