"""What every annotation file (SEG, RTSTRUCT, SR) says about itself: its identity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset


@dataclass(frozen=True, eq=False)
class AnnotationFile:
    """The identity of an annotation file ("" where a tag is absent).

    Attributes
    ----------
    path:
        The file read.
    sop_instance_uid, series_uid, series_description, study_uid, patient_id:
        SOPInstanceUID, SeriesInstanceUID, SeriesDescription, StudyInstanceUID, PatientID.
    reader:
        Who drew it: ContentCreatorName, else OperatorsName; None when neither is given.
    """

    path: Path
    sop_instance_uid: str
    series_uid: str
    series_description: str
    study_uid: str
    patient_id: str
    reader: str | None


def file_identity(path: Path, ds: Dataset) -> dict[str, object]:
    """The :class:`AnnotationFile` fields of a file, as keyword arguments."""
    return {
        "path": path,
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "patient_id": str(ds.get("PatientID", "")),
        "reader": text_or_none(ds.get("ContentCreatorName") or ds.get("OperatorsName")),
    }


def text_or_none(value: object) -> str | None:
    """A text value stripped, or None when absent or empty."""
    text = str(value).strip() if value is not None else ""
    return text or None
