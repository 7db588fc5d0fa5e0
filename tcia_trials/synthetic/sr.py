"""TID 1500 Measurement Report (Comprehensive 3D SR, highdicom): one measurement group per
lesion with tracking identifier, finding site/type, a seed point and the lesion volume (mL).

The seed is a SCOORD3D POINT (ImageRegion3D, LPS mm) or a SCOORD POINT in image coordinates
(ImageRegion + SourceImageForRegion: ``(column, row)`` with ``(0.5, 0.5)`` the centre of the
top-left pixel).
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from .ids import make_uid
from .plan import Location
from .seg import LESION, location_code
from .tags import StudyContext, add_patient_study, freeze

VOLUME = hd.sr.CodedConcept("118565006", "SCT", "Volume")
MILLILITER = hd.sr.CodedConcept("mL", "UCUM", "milliliter")
PROCEDURE = hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region")


@dataclass(frozen=True)
class SrLesion:
    """What one measurement group says about a lesion."""

    label: str
    tracking_uid: str
    location: Location
    volume_ml: float
    point_kind: str  # "SCOORD3D" | "SCOORD"
    seed_lps: np.ndarray
    image: Dataset  # the CT slice of the seed (SCOORD reference)
    column_row: tuple[float, float]  # image coordinates of the seed on ``image``


def measurement_report(
    ctx: StudyContext,
    *,
    images: list[Dataset],
    lesions: list[SrLesion],
    series_uid: str,
    series_number: int,
    description: str,
    when: dt.datetime,
    manufacturer: str = "tcia_trials.synthetic",
) -> hd.sr.Comprehensive3DSR:
    """Comprehensive 3D SR with one TID 1410 group per lesion (see module docstring)."""
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121006", "DCM", "Person"),
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name="Synthetic^Reader"
        ),
    )
    groups = []
    for les in lesions:
        if les.point_kind == "SCOORD3D":
            region: hd.sr.ImageRegion | hd.sr.ImageRegion3D = hd.sr.ImageRegion3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.asarray(les.seed_lps, dtype=np.float64).reshape(1, 3),
                frame_of_reference_uid=ctx.frame_uid,
            )
        elif les.point_kind == "SCOORD":
            region = hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POINT,
                graphic_data=np.array([les.column_row], dtype=np.float64),
                source_image=hd.sr.SourceImageForRegion(
                    referenced_sop_class_uid=les.image.SOPClassUID,
                    referenced_sop_instance_uid=les.image.SOPInstanceUID,
                ),
            )
        else:
            raise ValueError(f"point_kind must be 'SCOORD3D' or 'SCOORD', got {les.point_kind!r}")
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=les.tracking_uid, identifier=les.label
                ),
                referenced_region=region,
                time_point_context=hd.sr.TimePointContext(time_point=ctx.time_point),
                finding_type=LESION,
                finding_sites=[hd.sr.FindingSite(anatomic_location=location_code(les.location))],
                measurements=[hd.sr.Measurement(name=VOLUME, value=les.volume_ml, unit=MILLILITER)],
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=PROCEDURE,
        imaging_measurements=groups,
    )
    with warnings.catch_warnings():
        # TCIA sets PatientName to the PatientID (a single component); that is intended.
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        sr = hd.sr.Comprehensive3DSR(
            evidence=images,
            content=report,
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=str(make_uid(series_uid, "instance", 0)),
            instance_number=1,
            manufacturer=manufacturer,
            is_complete=True,
            series_description=description,
            content_date=when.date(),
            content_time=when.time(),
        )
    add_patient_study(sr, ctx)
    sr.SeriesDate = when.strftime("%Y%m%d")
    sr.SeriesTime = when.strftime("%H%M%S")
    freeze(sr, when)
    return sr
