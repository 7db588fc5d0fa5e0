"""DICOM attributes shared by every synthetic object, file writing and 'now'-stamp freezing.

Every object (image slice, RTSTRUCT, SEG, SR) carries the same Patient, Clinical Trial Subject,
General Study and Clinical Trial Study attributes as TCIA publishes them (de-identified, dates
shifted, ``ClinicalTrialTimePointID`` holding the time point), plus TCIA's "CTP" private block
with the collection name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .ids import ds, make_uid

TRANSFER_SYNTAXES = {"explicit": ExplicitVRLittleEndian, "implicit": ImplicitVRLittleEndian}
SPONSOR = "SYNTHETIC COOPERATIVE GROUP"
SITE_ID = "001"
SITE_NAME = "SYNTHETIC SITE"
TIME_POINT_DESCRIPTIONS = {
    "Pre-dose": "Baseline imaging before the first dose",
    "Follow-up consultation": "Restaging imaging at a follow-up consultation",
}


def da(value: dt.date | dt.datetime) -> str:
    """DICOM DA (``YYYYMMDD``)."""
    return value.strftime("%Y%m%d")


def tm(value: dt.datetime | dt.time) -> str:
    """DICOM TM (``HHMMSS``)."""
    return value.strftime("%H%M%S")


def dtm(value: dt.datetime) -> str:
    """DICOM DT (``YYYYMMDDHHMMSS``)."""
    return value.strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True)
class StudyContext:
    """Patient- and study-level attributes shared by all objects of one study."""

    collection: str
    patient_id: str
    patient_sex: str
    patient_age: int
    weight_kg: float
    height_m: float
    study_uid: str
    study_start: dt.datetime
    study_description: str
    time_point: str
    frame_uid: str


def add_patient_study(dset: Dataset, ctx: StudyContext) -> None:
    """Set Patient, Clinical Trial Subject/Study, General Study and de-identification tags."""
    dset.SpecificCharacterSet = "ISO_IR 100"
    dset.PatientName = ctx.patient_id
    dset.PatientID = ctx.patient_id
    dset.PatientBirthDate = ""
    dset.PatientSex = ctx.patient_sex
    dset.PatientAge = f"{ctx.patient_age:03d}Y"
    dset.PatientWeight = ds(ctx.weight_kg, 1)
    dset.PatientSize = ds(ctx.height_m, 2)
    dset.PatientIdentityRemoved = "YES"
    dset.DeidentificationMethod = "Per DICOM PS 3.15 AnnexE. Details in 0012,0064"
    codes = []
    for value, meaning in (
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ("113108", "Retain Patient Characteristics Option"),
    ):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    dset.DeidentificationMethodCodeSequence = Sequence(codes)
    dset.LongitudinalTemporalInformationModified = "MODIFIED"
    dset.ClinicalTrialSponsorName = SPONSOR
    dset.ClinicalTrialProtocolID = ctx.collection
    dset.ClinicalTrialProtocolName = f"{ctx.collection} synthetic trial"
    dset.ClinicalTrialSiteID = SITE_ID
    dset.ClinicalTrialSiteName = SITE_NAME
    dset.ClinicalTrialSubjectID = ctx.patient_id
    dset.ClinicalTrialTimePointID = ctx.time_point
    dset.ClinicalTrialTimePointDescription = TIME_POINT_DESCRIPTIONS.get(ctx.time_point, "")
    dset.StudyInstanceUID = ctx.study_uid
    dset.StudyDate = da(ctx.study_start)
    dset.StudyTime = tm(ctx.study_start)
    dset.StudyID = ""
    dset.AccessionNumber = ""
    dset.ReferringPhysicianName = ""
    dset.StudyDescription = ctx.study_description
    block = dset.private_block(0x0013, "CTP", create=True)
    block.add_new(0x10, "LO", ctx.collection)
    block.add_new(0x13, "LO", SITE_ID)


def add_series(
    dset: Dataset,
    *,
    modality: str,
    series_uid: str,
    series_number: int,
    description: str,
    when: dt.datetime,
    manufacturer: str,
) -> None:
    """Set General Series, Clinical Trial Series and General Equipment tags."""
    dset.Modality = modality
    dset.SeriesInstanceUID = series_uid
    dset.SeriesNumber = series_number
    dset.SeriesDescription = description
    dset.SeriesDate = da(when)
    dset.SeriesTime = tm(when)
    dset.ClinicalTrialCoordinatingCenterName = SPONSOR
    dset.Manufacturer = manufacturer


def add_sop(
    dset: Dataset,
    *,
    sop_class_uid: str,
    sop_uid: str,
    instance_number: int,
    created: dt.datetime,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> None:
    """Set SOP Common tags and the file meta information."""
    dset.SOPClassUID = sop_class_uid
    dset.SOPInstanceUID = sop_uid
    dset.InstanceNumber = instance_number
    dset.InstanceCreationDate = da(created)
    dset.InstanceCreationTime = tm(created)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    dset.file_meta = meta


def write(dset: Dataset, path: Path) -> int:
    """Write ``dset`` as a DICOM Part 10 file; return its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, dset, enforce_file_format=True)
    return path.stat().st_size


def freeze(dset: Dataset, when: dt.datetime) -> None:
    """Replace values that highdicom derives from the clock or a random UID, recursively.

    InstanceCreationDate/Time, ContentDate/Time and ContributionDateTime become ``when``;
    each distinct DimensionOrganizationUID becomes a UID derived from the SOPInstanceUID.
    """
    sop_uid = str(dset.SOPInstanceUID)
    mapping: dict[str, str] = {}

    def visit(item: Dataset) -> None:
        for elem in list(item):
            kw = elem.keyword
            if kw in ("InstanceCreationDate", "ContentDate"):
                elem.value = da(when)
            elif kw in ("InstanceCreationTime", "ContentTime"):
                elem.value = tm(when)
            elif kw == "ContributionDateTime":
                elem.value = dtm(when)
            elif kw == "DimensionOrganizationUID":
                old = str(elem.value)
                mapping.setdefault(
                    old, str(make_uid(sop_uid, "dimension-organization", len(mapping)))
                )
                elem.value = mapping[old]
            elif elem.VR == "SQ":
                for sub in elem.value:
                    visit(sub)

    visit(dset)
