"""RT Structure Set objects written by hand with pydicom, one ROI per file as TCIA publishes them:
lesion contours (CLOSED_PLANAR, one polygon per CT slice the lesion cuts), seed points (POINT,
with the quirks of the real NCTN files) and "No findings" ROIs without contours.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RTStructureSetStorage

from .ids import ds_list, make_uid
from .phantom import Ellipsoid, Grid
from .tags import StudyContext, add_patient_study, add_series, add_sop, da, tm

#: Retired Detached Study Management SOP Class, still what RT Referenced Study items carry.
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
CONTOUR_DECIMALS = 4


@dataclass(frozen=True)
class RtSeries:
    """Identity of one RTSTRUCT series (one file)."""

    series_uid: str
    series_number: int
    description: str
    when: dt.datetime
    manufacturer: str = "tcia_trials.synthetic"

    @property
    def sop_uid(self) -> str:
        """SOPInstanceUID of the single file."""
        return str(make_uid(self.series_uid, "instance", 0))


def _ref(image: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = image.SOPClassUID
    item.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return item


def _structure_set(ctx: StudyContext, rt: RtSeries, images: list[Dataset], label: str) -> Dataset:
    """RT Structure Set skeleton referencing every image of the series ``images``."""
    dset = Dataset()
    add_sop(
        dset,
        sop_class_uid=RTStructureSetStorage,
        sop_uid=rt.sop_uid,
        instance_number=1,
        created=rt.when,
    )
    add_patient_study(dset, ctx)
    add_series(
        dset,
        modality="RTSTRUCT",
        series_uid=rt.series_uid,
        series_number=rt.series_number,
        description=rt.description,
        when=rt.when,
        manufacturer=rt.manufacturer,
    )
    dset.OperatorsName = ""
    dset.SoftwareVersions = "1"
    dset.StructureSetLabel = label
    dset.StructureSetName = rt.description[:64]
    dset.StructureSetDate = da(rt.when)
    dset.StructureSetTime = tm(rt.when)
    series = Dataset()
    series.SeriesInstanceUID = images[0].SeriesInstanceUID
    series.ContourImageSequence = Sequence([_ref(im) for im in images])
    study = Dataset()
    study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
    study.ReferencedSOPInstanceUID = ctx.study_uid
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ctx.frame_uid
    frame.RTReferencedStudySequence = Sequence([study])
    dset.ReferencedFrameOfReferenceSequence = Sequence([frame])
    dset.StructureSetROISequence = Sequence()
    dset.ROIContourSequence = Sequence()
    dset.RTROIObservationsSequence = Sequence()
    return dset


def _add_roi(
    dset: Dataset,
    ctx: StudyContext,
    name: str,
    interpreted_type: str,
    contours: list[Dataset] | None,
    color: tuple[int, int, int],
) -> None:
    number = len(dset.StructureSetROISequence) + 1
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = ctx.frame_uid
    roi.ROIName = name
    roi.ROIGenerationAlgorithm = "MANUAL"
    dset.StructureSetROISequence.append(roi)
    roi_contour = Dataset()
    roi_contour.ROIDisplayColor = list(color)
    if contours is not None:
        roi_contour.ContourSequence = Sequence(contours)
    roi_contour.ReferencedROINumber = number
    dset.ROIContourSequence.append(roi_contour)
    obs = Dataset()
    obs.ObservationNumber = number
    obs.ReferencedROINumber = number
    obs.ROIObservationLabel = name[:16]
    obs.RTROIInterpretedType = interpreted_type
    obs.ROIInterpreter = ""
    dset.RTROIObservationsSequence.append(obs)


def _contour(
    image: Dataset,
    geometric_type: str,
    points: np.ndarray,
    number_of_points: int,
    contour_number: int,
) -> Dataset:
    item = Dataset()
    item.ContourImageSequence = Sequence([_ref(image)])
    item.ContourGeometricType = geometric_type
    item.NumberOfContourPoints = number_of_points
    item.ContourNumber = contour_number
    item.ContourData = ds_list(np.asarray(points, dtype=np.float64).ravel(), CONTOUR_DECIMALS)
    return item


def contour_rtstruct(
    ctx: StudyContext,
    rt: RtSeries,
    images: list[Dataset],
    grid: Grid,
    ellipsoid: Ellipsoid,
    roi_name: str,
    *,
    n_vertices: int = 64,
) -> tuple[Dataset, list[int]]:
    """RTSTRUCT with one CLOSED_PLANAR polygon per slice plane that cuts ``ellipsoid``.

    Each polygon has ``n_vertices`` vertices on the exact ellipse of intersection, scaled so that
    its area equals the ellipse's area; vertices are LPS mm rounded to 4 decimals.

    Parameters
    ----------
    images
        The image series' datasets sorted by slice index ``k`` (of ``grid``).

    Returns
    -------
    dataset, slices
        The RTSTRUCT and the slice indices ``k`` that carry a polygon.
    """
    dset = _structure_set(ctx, rt, images, "SEGMENTATION")
    u, v = np.asarray(grid.row_cosines), np.asarray(grid.col_cosines)
    contours, slices = [], []
    for k, image in enumerate(images):
        section = ellipsoid.section(grid.position(k), u, v)
        if section is None:
            continue
        slices.append(k)
        contours.append(
            _contour(
                image, "CLOSED_PLANAR", section.polygon(n_vertices), n_vertices, len(contours) + 1
            )
        )
    _add_roi(dset, ctx, roi_name, "GTV", contours, (255, 0, 0))
    return dset, slices


def seed_rtstruct(
    ctx: StudyContext,
    rt: RtSeries,
    images: list[Dataset],
    grid: Grid,
    k: int,
    seed_lps: np.ndarray,
    roi_name: str,
    quirk: str | None,
    n_extra: int = 2,
) -> Dataset:
    """RTSTRUCT with one seed-point ROI on slice ``k`` (RTROIInterpretedType MARKER).

    ``quirk`` None: a POINT with one triplet.  ``"extra_triplets"``: a POINT with
    NumberOfContourPoints 1 but ``1 + n_extra`` triplets (the first is the seed, the others lie
    a few mm away in the slice plane).  ``"two_point_closed_planar"``: a CLOSED_PLANAR contour
    of 2 points, the seed first and a point 0.6 mm away second.
    """
    dset = _structure_set(ctx, rt, images, "SEED POINT")
    seed = np.asarray(seed_lps, dtype=np.float64)
    u, v = np.asarray(grid.row_cosines), np.asarray(grid.col_cosines)
    if quirk is None:
        item = _contour(images[k], "POINT", seed[None], 1, 1)
    elif quirk == "extra_triplets":
        extra = [seed + 2.0 * u - 1.5 * v, seed - 1.0 * u + 2.5 * v][:n_extra]
        item = _contour(images[k], "POINT", np.vstack([seed, *extra]), 1, 1)
    elif quirk == "two_point_closed_planar":
        item = _contour(images[k], "CLOSED_PLANAR", np.vstack([seed, seed + 0.6 * u]), 2, 1)
    else:
        raise ValueError(f"unknown seed quirk {quirk!r}")
    _add_roi(dset, ctx, roi_name, "MARKER", [item], (255, 255, 0))
    return dset


def no_findings_rtstruct(
    ctx: StudyContext, rt: RtSeries, images: list[Dataset], roi_name: str
) -> Dataset:
    """RTSTRUCT with one ROI named ``roi_name`` and no contours (an explicit negative)."""
    dset = _structure_set(ctx, rt, images, "NO FINDINGS")
    _add_roi(dset, ctx, roi_name, "MARKER", None, (0, 255, 0))
    return dset
