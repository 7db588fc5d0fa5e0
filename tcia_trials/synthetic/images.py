"""CT and PET single-frame image slices (pydicom datasets) and a standalone CT series writer.

CT: stored = HU + 1024 with RescaleIntercept -1024 and RescaleSlope 1, unsigned (BitsStored 12)
or signed (BitsStored 16).  PET: int16 stored values with a per-slice RescaleSlope (Bq/mL per
stored unit) and intercept 0; SUVbw follows :func:`suv_from_stored`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, PositronEmissionTomographyImageStorage

from .ids import ds, ds_list, ds_sig, make_uid
from .phantom import COSINE_DECIMALS, POSITION_DECIMALS, Body, Ellipsoid, Grid, Phantom, make_grid
from .tags import TRANSFER_SYNTAXES, StudyContext, add_patient_study, add_series, add_sop, da, tm
from .tags import write as write_dataset

logger = logging.getLogger(__name__)

CT_INTERCEPT = -1024.0
PET_MAX_STORED = 32000  # headroom below 32767 for the rounding of the DS slope


@dataclass(frozen=True)
class ImageSeriesOptions:
    """Encoding and identity of one image series (see :class:`plan.ImageSeriesPlan`)."""

    modality: str
    series_uid: str
    series_number: int
    description: str
    series_time: dt.datetime
    manufacturer: str
    model: str
    kernel: str = ""
    pixel_representation: int = 1
    transfer_syntax: str = "explicit"
    instance_order: str = "ascending"
    spacing_between_slices_tag: bool = False
    gantry_tilt_deg: float = 0.0
    body_part: str = "CHEST"


def instance_numbers(n_slices: int, order: str) -> list[int]:
    """InstanceNumber of each slice ``k`` (``"ascending"``: k+1, ``"descending"``: n-k)."""
    if order == "ascending":
        return [k + 1 for k in range(n_slices)]
    if order == "descending":
        return [n_slices - k for k in range(n_slices)]
    raise ValueError(f"instance_order must be 'ascending' or 'descending', got {order!r}")


def write_order(numbers: Sequence[int], shuffle: bool, seed: Sequence[int]) -> list[int]:
    """Slice indices ``k`` in the order their files are written (and numbered 1-1, 1-2 ...).

    By InstanceNumber, or a seeded random permutation when ``shuffle``.
    """
    order = sorted(range(len(numbers)), key=lambda k: numbers[k])
    if shuffle:
        rng = np.random.default_rng(list(seed))
        order = [int(k) for k in rng.permutation(len(numbers))]
    return order


def sop_uid_for(series_uid: str, k: int) -> str:
    """SOPInstanceUID of slice ``k`` of a series."""
    return str(make_uid(series_uid, "instance", k))


def _image_plane(dset: Dataset, grid: Grid, k: int) -> None:
    _, nj, ni = grid.shape
    dset.ImageOrientationPatient = ds_list(
        list(grid.row_cosines) + list(grid.col_cosines), COSINE_DECIMALS
    )
    dset.ImagePositionPatient = ds_list(grid.position(k), POSITION_DECIMALS)
    dset.PixelSpacing = ds_list(grid.pixel_spacing, POSITION_DECIMALS)
    dset.SliceLocation = ds(grid.position(k)[2], POSITION_DECIMALS)
    dset.Rows = nj
    dset.Columns = ni
    dset.SamplesPerPixel = 1
    dset.PhotometricInterpretation = "MONOCHROME2"
    dset.BitsAllocated = 16


def _derive(template: Dataset, values: dict[str, object]) -> Dataset:
    """A new dataset with the template's elements, ``values`` (keyword -> value) replaced.

    The template's element objects are shared, never modified: replaced elements are new.
    """
    dset = Dataset(dict(template.items()))
    for keyword, value in values.items():
        tag = tag_for_keyword(keyword)
        dset[tag] = DataElement(tag, dictionary_VR(tag), value)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = template.file_meta.MediaStorageSOPClassUID
    meta.MediaStorageSOPInstanceUID = dset.SOPInstanceUID
    meta.TransferSyntaxUID = template.file_meta.TransferSyntaxUID
    dset.file_meta = meta
    return dset


def _slice_values(grid: Grid, k: int, sop_uid: str, instance_number: int) -> dict[str, object]:
    return {
        "SOPInstanceUID": sop_uid,
        "InstanceNumber": instance_number,
        "ImagePositionPatient": ds_list(grid.position(k), POSITION_DECIMALS),
        "SliceLocation": ds(grid.position(k)[2], POSITION_DECIMALS),
    }


def _image_dataset(
    ctx: StudyContext,
    opts: ImageSeriesOptions,
    k: int,
    instance_number: int,
    sop_class_uid: str,
    modality: str,
) -> Dataset:
    """The attributes every image slice of a series shares: SOP common, patient, study, series,
    equipment, frame of reference and content date."""
    dset = Dataset()
    add_sop(
        dset,
        sop_class_uid=sop_class_uid,
        sop_uid=sop_uid_for(opts.series_uid, k),
        instance_number=instance_number,
        created=opts.series_time,
        transfer_syntax=TRANSFER_SYNTAXES[opts.transfer_syntax],
    )
    add_patient_study(dset, ctx)
    add_series(
        dset,
        modality=modality,
        series_uid=opts.series_uid,
        series_number=opts.series_number,
        description=opts.description,
        when=opts.series_time,
        manufacturer=opts.manufacturer,
    )
    dset.ManufacturerModelName = opts.model
    dset.PatientPosition = "FFS"
    dset.ContentDate = da(opts.series_time)
    dset.ContentTime = tm(opts.series_time)
    dset.FrameOfReferenceUID = ctx.frame_uid
    dset.PositionReferenceIndicator = ""
    return dset


def ct_slice_dataset(
    ctx: StudyContext,
    opts: ImageSeriesOptions,
    grid: Grid,
    k: int,
    hu: np.ndarray,
    instance_number: int,
    template: Dataset | None = None,
) -> Dataset:
    """One CT Image Storage slice ``k`` holding ``hu`` (int, shape ``(rows, cols)``, HU).

    With ``template`` (an earlier slice of the same series) only the per-slice attributes are
    new; the result is the same as without it, only faster.
    """
    signed = opts.pixel_representation == 1
    stored = np.asarray(hu, dtype=np.int32) - int(CT_INTERCEPT)
    if stored.min() < 0 or stored.max() > (32767 if signed else 4095):
        raise ValueError(f"HU range {hu.min()}..{hu.max()} does not fit the stored type")
    pixels = stored.astype("<i2" if signed else "<u2").tobytes()
    if template is not None:
        values = _slice_values(grid, k, sop_uid_for(opts.series_uid, k), instance_number)
        values["PixelData"] = pixels
        return _derive(template, values)
    dset = _image_dataset(ctx, opts, k, instance_number, CTImageStorage, "CT")
    dset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dset.BodyPartExamined = opts.body_part
    dset.AcquisitionDate = da(opts.series_time)
    dset.AcquisitionTime = tm(opts.series_time)
    dset.AcquisitionNumber = 1
    dset.KVP = "120"
    dset.XRayTubeCurrent = 200
    dset.ConvolutionKernel = opts.kernel
    dset.SliceThickness = ds(grid.slice_spacing, POSITION_DECIMALS)
    if opts.spacing_between_slices_tag:
        dset.SpacingBetweenSlices = ds(grid.slice_distance, POSITION_DECIMALS)
    dset.GantryDetectorTilt = ds(opts.gantry_tilt_deg, 4)
    _image_plane(dset, grid, k)
    dset.BitsStored = 16 if signed else 12
    dset.HighBit = dset.BitsStored - 1
    dset.PixelRepresentation = opts.pixel_representation
    dset.RescaleIntercept = ds(CT_INTERCEPT)
    dset.RescaleSlope = "1"
    dset.RescaleType = "HU"
    dset.WindowCenter = "40"
    dset.WindowWidth = "400"
    dset.PixelData = pixels
    return dset


def pet_quantize(suv: np.ndarray, suv_factor: float, k: int = 0) -> tuple[np.ndarray, str]:
    """Quantize one PET slice given in SUVbw to int16 with a per-slice slope.

    The slope maps the slice maximum to ``32000 - 997 * (k % 5)`` stored units, so slopes differ
    from slice to slice even where the activity does not (readers must rescale per slice).

    Parameters
    ----------
    suv
        SUVbw values of the slice, shape ``(rows, cols)``.
    suv_factor
        SUVbw per Bq/mL (``PatientWeight*1000 / decayed dose``).
    k
        Slice index.

    Returns
    -------
    stored, slope
        int16 stored values and the RescaleSlope as written (DS text; Bq/mL per unit).
    """
    activity = np.asarray(suv, dtype=np.float64) / suv_factor
    peak = float(activity.max())
    slope = ds_sig(peak / (PET_MAX_STORED - 997 * (k % 5))) if peak > 0 else "1"
    stored = np.rint(activity / float(slope))
    return np.clip(stored, -32768, 32767).astype(np.int16), slope


def suv_from_stored(
    stored: np.ndarray,
    slope: float,
    intercept: float,
    weight_kg: float,
    total_dose_bq: float,
    delta_t_s: float,
    half_life_s: float,
) -> np.ndarray:
    """SUVbw (float64) exactly as defined for the synthetic collection.

    ``SUV = (stored*slope + intercept) [Bq/mL] * weight_kg*1000
    / (total_dose_bq * 2**(-delta_t_s / half_life_s))``, ``delta_t_s`` = series start minus
    injection (seconds), DecayCorrection START.
    """
    bqml = np.asarray(stored, dtype=np.float64) * slope + intercept
    return bqml * (weight_kg * 1000.0) / (total_dose_bq * 2.0 ** (-delta_t_s / half_life_s))


def pet_slice_dataset(
    ctx: StudyContext,
    opts: ImageSeriesOptions,
    grid: Grid,
    k: int,
    stored: np.ndarray,
    slope: str,
    instance_number: int,
    *,
    weight_kg: float,
    total_dose_bq: float,
    half_life_s: float,
    injection: dt.datetime,
    acquisition: dt.datetime,
    frame_duration_s: float,
    template: Dataset | None = None,
) -> Dataset:
    """One PET Image Storage slice ``k``: ``stored`` int16 ``(rows, cols)``, slope in Bq/mL.

    With ``template`` (an earlier slice of the same series) only the per-slice attributes are
    new; the result is the same as without it, only faster.
    """
    offset = (acquisition - opts.series_time).total_seconds()
    per_slice = {
        "AcquisitionDate": da(acquisition),
        "AcquisitionTime": tm(acquisition),
        "RescaleSlope": slope,
        "FrameReferenceTime": ds((offset + frame_duration_s / 2) * 1000.0, 3),
        "DecayFactor": ds(2.0 ** ((offset + frame_duration_s / 2) / half_life_s), 6),
        "ImageIndex": instance_number,
        "PixelData": np.asarray(stored, dtype="<i2").tobytes(),
    }
    if template is not None:
        values = _slice_values(grid, k, sop_uid_for(opts.series_uid, k), instance_number)
        values.update(per_slice)
        return _derive(template, values)
    dset = _image_dataset(
        ctx, opts, k, instance_number, PositronEmissionTomographyImageStorage, "PT"
    )
    dset.PatientWeight = ds(weight_kg, 1)
    dset.BodyPartExamined = "WHOLEBODY"
    dset.ImageType = ["ORIGINAL", "PRIMARY"]
    dset.AcquisitionDate = per_slice["AcquisitionDate"]
    dset.AcquisitionTime = per_slice["AcquisitionTime"]
    dset.SliceThickness = ds(grid.slice_distance, POSITION_DECIMALS)
    _image_plane(dset, grid, k)
    dset.BitsStored = 16
    dset.HighBit = 15
    dset.PixelRepresentation = 1
    dset.RescaleIntercept = "0"
    dset.RescaleSlope = slope
    # PET Series
    dset.Units = "BQML"
    dset.CountsSource = "EMISSION"
    dset.SeriesType = ["WHOLE BODY", "IMAGE"]
    dset.NumberOfSlices = grid.shape[0]
    dset.CorrectedImage = ["ATTN", "DECY"]
    dset.DecayCorrection = "START"
    dset.RandomsCorrectionMethod = "DLYD"
    dset.AttenuationCorrectionMethod = "CT"
    dset.ScatterCorrectionMethod = "MODEL"
    dset.ReconstructionMethod = "OSEM 3i21s"
    dset.CollimatorType = "NONE"
    # PET Image
    dset.FrameReferenceTime = per_slice["FrameReferenceTime"]
    dset.ActualFrameDuration = round(frame_duration_s * 1000)
    dset.DecayFactor = per_slice["DecayFactor"]
    dset.ImageIndex = instance_number
    # PET Isotope
    nuclide = Dataset()
    nuclide.CodeValue = "77004003"
    nuclide.CodingSchemeDesignator = "SCT"
    nuclide.CodeMeaning = "^18^Fluorine"
    drug = Dataset()
    drug.CodeValue = "35321007"
    drug.CodingSchemeDesignator = "SCT"
    drug.CodeMeaning = "Fluorodeoxyglucose F^18^"
    info = Dataset()
    info.Radiopharmaceutical = "Fluorodeoxyglucose"
    info.RadiopharmaceuticalStartTime = tm(injection)
    info.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
    info.RadionuclideTotalDose = ds(total_dose_bq, 1)
    info.RadionuclideHalfLife = ds(half_life_s, 4)
    info.RadionuclidePositronFraction = "0.9673"
    info.RadionuclideCodeSequence = DicomSequence([nuclide])
    info.RadiopharmaceuticalCodeSequence = DicomSequence([drug])
    dset.RadiopharmaceuticalInformationSequence = DicomSequence([info])
    dset.PatientGantryRelationshipCodeSequence = DicomSequence([])
    dset.PixelData = per_slice["PixelData"]
    return dset


def default_phantom(grid: Grid, seed: int = 0, *, n_lesions: int = 3) -> Phantom:
    """A CT phantom fitted to ``grid``: a body ellipse and ``n_lesions`` ellipsoids (HU).

    Lesion centres and semi-axes are seeded random fractions of the field of view, so that a
    voxel centre never lies on a boundary by construction of round numbers.
    """
    rng = np.random.default_rng([seed, 77])
    corners = grid.corners()
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    center, half = (lo + hi) / 2, (hi - lo) / 2
    body = Body(
        center_xy=(float(center[0]) + 0.37, float(center[1]) - 0.21),
        semi_axes_xy=(float(half[0] * 0.86) + 0.013, float(half[1] * 0.68) + 0.017),
    )
    lesions = []
    for m in range(n_lesions):
        angle = 2 * np.pi * (m / max(n_lesions, 1)) + rng.uniform(0, 0.5)
        c = center + np.array(
            [
                np.cos(angle) * half[0] * 0.35,
                np.sin(angle) * half[1] * 0.3,
                rng.uniform(-0.3, 0.3) * half[2],
            ]
        )
        r = np.array(
            [
                half[0] * rng.uniform(0.06, 0.1),
                half[1] * rng.uniform(0.06, 0.1),
                max(half[2] * rng.uniform(0.1, 0.2), 2.2 * grid.slice_distance),
            ]
        )
        lesions.append(
            (
                Ellipsoid(
                    tuple(float(v) for v in c),  # type: ignore[arg-type]
                    tuple(float(v) for v in r),
                ),  # type: ignore[arg-type]
                float(80 + 20 * m),
            )
        )
    return Phantom(body=body, outside_value=-1000.0, body_value=40.0, lesions=tuple(lesions))


def ct_grid(
    shape: tuple[int, int, int] = (300, 512, 512),
    *,
    center: Sequence[float] = (0.0, 0.0, -200.0),
    pixel_spacing: tuple[float, float] = (0.8, 0.8),
    slice_spacing: float = 1.25,
    row_cosines: Sequence[float] = (1.0, 0.0, 0.0),
    col_cosines: Sequence[float] = (0.0, 1.0, 0.0),
    slice_step: Sequence[float] | None = None,
    gantry_tilt_deg: float = 0.0,
) -> Grid:
    """The grid :func:`write_ct_series` uses for the same arguments.

    With ``gantry_tilt_deg`` the column cosines tilt about the x axis
    (``(0, cos t, sin t)``) while slices step along +z by ``slice_spacing`` (table feed),
    i.e. not along the normal.
    """
    if gantry_tilt_deg:
        t = np.radians(gantry_tilt_deg)
        col_cosines = (0.0, float(np.cos(t)), float(np.sin(t)))
        row_cosines = (1.0, 0.0, 0.0)
        slice_step = (0.0, 0.0, slice_spacing)
    return make_grid(
        shape,
        center=center,
        pixel_spacing=pixel_spacing,
        slice_spacing=slice_spacing,
        row_cosines=row_cosines,
        col_cosines=col_cosines,
        slice_step=slice_step,
    )


def write_ct_series(
    folder: Path,
    *,
    shape: tuple[int, int, int] = (300, 512, 512),
    seed: int = 0,
    grid: Grid | None = None,
    phantom: Phantom | None = None,
    pixel_spacing: tuple[float, float] = (0.8, 0.8),
    slice_spacing: float = 1.25,
    row_cosines: Sequence[float] = (1.0, 0.0, 0.0),
    col_cosines: Sequence[float] = (0.0, 1.0, 0.0),
    slice_step: Sequence[float] | None = None,
    center: Sequence[float] = (0.0, 0.0, -200.0),
    gantry_tilt_deg: float = 0.0,
    pixel_representation: int = 1,
    transfer_syntax: str = "explicit",
    instance_order: str = "ascending",
    shuffle_files: bool = False,
    patient_id: str = "SYNTH-CT",
) -> list[Path]:
    """Write one CT series (uncompressed single-frame files) into ``folder``.

    Geometry comes from ``grid`` or, when None, from :func:`ct_grid` with the geometry
    arguments; voxel values (HU) from ``phantom`` or :func:`default_phantom`.  Files are named
    ``{InstanceNumber:06d}.dcm``.

    Parameters
    ----------
    folder
        Output folder (created).
    shape
        ``(slices, rows, cols)`` when ``grid`` is None.
    seed
        Seeds the UIDs and the default phantom.
    pixel_representation
        0 (uint16, BitsStored 12) or 1 (int16).
    transfer_syntax
        ``"explicit"`` or ``"implicit"`` (VR Little Endian).
    instance_order
        ``"ascending"`` (InstanceNumber k+1) or ``"descending"``.
    shuffle_files
        Write the files in a random order (file names still follow InstanceNumber).

    Returns
    -------
    list of Path
        The files, sorted by slice index ``k`` (increasing position along the normal).
    """
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(
            f"transfer_syntax must be one of {sorted(TRANSFER_SYNTAXES)}, got {transfer_syntax!r}"
        )
    if pixel_representation not in (0, 1):
        raise ValueError(f"pixel_representation must be 0 or 1, got {pixel_representation!r}")
    if grid is None:
        grid = ct_grid(
            shape,
            center=center,
            pixel_spacing=pixel_spacing,
            slice_spacing=slice_spacing,
            row_cosines=row_cosines,
            col_cosines=col_cosines,
            slice_step=slice_step,
            gantry_tilt_deg=gantry_tilt_deg,
        )
    if phantom is None:
        phantom = default_phantom(grid, seed)
    when = dt.datetime(2001, 2, 3, 10, 20, 30)
    ctx = StudyContext(
        collection="SYNTH-TRIAL",
        patient_id=patient_id,
        patient_sex="F",
        patient_age=60,
        weight_kg=70.0,
        height_m=1.7,
        study_uid=str(make_uid("write_ct_series", seed, "study")),
        study_start=when,
        study_description="CT CHEST",
        time_point="Pre-dose",
        frame_uid=str(make_uid("write_ct_series", seed, "frame")),
    )
    opts = ImageSeriesOptions(
        modality="CT",
        series_uid=str(make_uid("write_ct_series", seed, grid.shape, "series")),
        series_number=2,
        description="CT SERIES",
        series_time=when,
        manufacturer="SIEMENS",
        model="SOMATOM",
        kernel="B30f",
        pixel_representation=pixel_representation,
        transfer_syntax=transfer_syntax,
        instance_order=instance_order,
        gantry_tilt_deg=grid.gantry_tilt_deg,
    )
    numbers = instance_numbers(grid.shape[0], instance_order)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[int, Path] = {}
    template = None
    for k in write_order(numbers, shuffle_files, [seed, 99]):
        hu = np.rint(phantom.slice_values(grid, k)).astype(np.int16)
        dset = ct_slice_dataset(ctx, opts, grid, k, hu, numbers[k], template)
        template = template or dset
        path = folder / f"{numbers[k]:06d}.dcm"
        write_dataset(dset, path)
        paths[k] = path
    logger.debug("wrote %d CT slices to %s", len(paths), folder)
    return [paths[k] for k in range(grid.shape[0])]
