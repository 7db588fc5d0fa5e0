"""Binary DICOM SEG of one lesion on an image series' grid (highdicom), empty frames omitted."""

from __future__ import annotations

import datetime as dt
import warnings

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from .ids import make_uid
from .plan import Location
from .tags import StudyContext, add_patient_study, freeze

CATEGORY = hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure")
LESION = hd.sr.CodedConcept("52988006", "SCT", "Lesion")


def location_code(location: Location) -> hd.sr.CodedConcept:
    """SNOMED CT code of a lesion location."""
    return hd.sr.CodedConcept(location.code_value, "SCT", location.code_meaning)


def lesion_seg(
    ctx: StudyContext,
    *,
    images: list[Dataset],
    mask: np.ndarray,
    series_uid: str,
    series_number: int,
    description: str,
    label: str,
    location: Location,
    tracking_uid: str,
    when: dt.datetime,
    manufacturer: str = "tcia_trials.synthetic",
) -> hd.seg.Segmentation:
    """BINARY Segmentation with one segment (algorithm type MANUAL).

    Parameters
    ----------
    images
        Source image datasets sorted by slice index ``k``.
    mask
        Boolean ``(slices, rows, cols)`` on the source grid, same slice order as ``images``.
    label
        Segment label and TrackingID, e.g. ``"LIVER - 1"``.
    """
    if mask.shape != (len(images), images[0].Rows, images[0].Columns):
        raise ValueError(
            f"mask shape {mask.shape} does not match the {len(images)} source "
            f"images of {images[0].Rows}x{images[0].Columns}"
        )
    if not mask.any():
        raise ValueError(f"empty mask for {label!r}: nothing to segment")
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=CATEGORY,
        segmented_property_type=LESION,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        tracking_uid=tracking_uid,
        tracking_id=label,
        anatomic_regions=[location_code(location)],
    )
    with warnings.catch_warnings():
        # TCIA sets PatientName to the PatientID (a single component); that is intended.
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=mask.astype(bool),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=str(make_uid(series_uid, "instance", 0)),
            instance_number=1,
            manufacturer=manufacturer,
            manufacturer_model_name="synthetic",
            software_versions="1",
            device_serial_number="0",
            content_label="LESION",
            content_description=description[:64],
            content_creator_name="Synthetic^Reader",
            omit_empty_frames=True,
            series_description=description,
            content_date=when.date(),
            content_time=when.time(),
        )
    add_patient_study(seg, ctx)
    seg.SeriesDate = when.strftime("%Y%m%d")
    seg.SeriesTime = when.strftime("%H%M%S")
    freeze(seg, when)
    return seg
