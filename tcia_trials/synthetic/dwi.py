"""A multi-b-value diffusion-weighted MR study with exact ground truth: one image series holding
one stack per b-value (every slice position repeats once per DiffusionBValue, as in ACRIN 6698 /
I-SPY2 breast DWI), and a DICOM SEG drawn on the stack of one b-value.

Geometry: axial slices (row cosines +x, column cosines +y), slice ``k`` at ``z = z0 + k *
slice_spacing`` (LPS mm); stored values are uint16 (BitsStored 12) without a rescale, so the
voxels of a stack are exactly the stored values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage

from .ids import ds, ds_list, make_uid
from .plan import Location
from .seg import lesion_seg
from .tags import StudyContext, add_patient_study, add_series, add_sop, da, tm
from .tags import write as write_dataset

BREAST = Location("BREAST", "76752008", "Breast")
_WHEN = dt.datetime(2020, 1, 2, 10, 0, 0)


@dataclass(frozen=True)
class DwiTruth:
    """What :func:`write_dwi_study` wrote.

    ``images[b]`` is the stack of b-value ``b`` (s/mm2) as ``(slices, rows, cols)`` uint16 in
    increasing ``z``; ``mask`` the SEG's segment on that grid (bool, same shape), drawn on the
    stack ``seg_b_value``; ``origin`` the LPS position (mm) of voxel ``(0, 0, 0)`` and
    ``spacing`` ``(z, y, x)`` mm.
    """

    series_uid: str
    seg_series_uid: str
    b_values: tuple[float, ...]
    images: dict[float, np.ndarray]
    mask: np.ndarray
    seg_b_value: float
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    image_paths: tuple[Path, ...]
    seg_path: Path


def write_dwi_study(
    folder: Path,
    *,
    b_values: tuple[float, ...] = (0.0, 100.0, 600.0, 800.0),
    shape: tuple[int, int, int] = (5, 12, 16),
    seg_b_value: float = 800.0,
    seed: int = 0,
    patient_id: str = "SYNTH-DWI",
) -> DwiTruth:
    """Write the DWI series (``folder/dwi``, one file per slice and b-value, instances numbered
    position by position) and its SEG (``folder/seg``); returns the ground truth."""
    if seg_b_value not in b_values:
        raise ValueError(f"seg_b_value {seg_b_value} is not one of the b-values {b_values}")
    rng = np.random.default_rng(seed)
    n_slices, rows, cols = shape
    spacing = (2.5, 0.75, 0.5)  # (z, y, x) mm
    origin = (-4.0, -3.0, 10.0)
    ctx = StudyContext(
        collection="SYNTH-DWI",
        patient_id=patient_id,
        patient_sex="F",
        patient_age=50,
        weight_kg=60.0,
        height_m=1.65,
        study_uid=str(make_uid(patient_id, seed, "study")),
        study_start=_WHEN,
        study_description="MR BREAST",
        time_point="Pre-treatment",
        frame_uid=str(make_uid(patient_id, seed, "frame")),
    )
    series_uid = str(make_uid(patient_id, seed, "dwi"))
    description = "DWI bVals=" + ",".join(f"{b:g}" for b in b_values)
    images = {b: rng.integers(0, 4096, size=shape, dtype=np.uint16) for b in b_values}
    datasets: dict[float, list[Dataset]] = {b: [] for b in b_values}
    paths = []
    for k in range(n_slices):
        position = (origin[0], origin[1], origin[2] + k * spacing[0])
        for n, b in enumerate(b_values):
            number = k * len(b_values) + n + 1
            dset = _mr_slice(ctx, (series_uid, description), number, position, spacing, b)
            dset.Rows, dset.Columns = rows, cols
            dset.PixelData = np.ascontiguousarray(images[b][k], dtype="<u2").tobytes()
            datasets[b].append(dset)
            path = folder / "dwi" / f"{number:06d}.dcm"
            write_dataset(dset, path)
            paths.append(path)
    mask = np.zeros(shape, dtype=bool)
    mask[1:4, 3:8, 4:11] = True
    mask[1, 3:5, 4:6] = False  # no symmetry: a flipped placement would differ
    seg_uid = str(make_uid(patient_id, seed, "seg"))
    seg = lesion_seg(
        ctx,
        images=datasets[seg_b_value],
        mask=mask,
        series_uid=seg_uid,
        series_number=100,
        description="DWI SEG: Whole Tumor Manual",
        label="BREAST - 1",
        location=BREAST,
        tracking_uid=str(make_uid(patient_id, seed, "tracking")),
        when=_WHEN,
    )
    seg_path = folder / "seg" / "000001.dcm"
    write_dataset(seg, seg_path)
    return DwiTruth(
        series_uid,
        seg_uid,
        tuple(b_values),
        images,
        mask,
        seg_b_value,
        origin,
        spacing,
        tuple(paths),
        seg_path,
    )


def _mr_slice(
    ctx: StudyContext,
    series: tuple[str, str],
    number: int,
    position: tuple[float, float, float],
    spacing: tuple[float, float, float],
    b_value: float,
) -> Dataset:
    """One single-frame MR image of the DWI series ``(uid, description)``, without its size
    (Rows, Columns) and pixels."""
    series_uid, description = series
    dset = Dataset()
    add_sop(
        dset,
        sop_class_uid=MRImageStorage,
        sop_uid=str(make_uid(series_uid, "instance", number)),
        instance_number=number,
        created=_WHEN,
    )
    add_patient_study(dset, ctx)
    add_series(
        dset,
        modality="MR",
        series_uid=series_uid,
        series_number=5,
        description=description,
        when=_WHEN,
        manufacturer="tcia_trials.synthetic",
    )
    dset.ContentDate, dset.ContentTime = da(_WHEN), tm(_WHEN)
    dset.FrameOfReferenceUID = ctx.frame_uid
    dset.PositionReferenceIndicator = ""
    dset.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    dset.ScanningSequence, dset.SequenceVariant = "EP", "NONE"
    dset.EchoTime, dset.RepetitionTime = ds(60.0), ds(6000.0)
    dset.DiffusionBValue = float(b_value)
    dset.ImagePositionPatient = ds_list(position, 4)
    dset.ImageOrientationPatient = ds_list((1, 0, 0, 0, 1, 0))
    dset.PixelSpacing = ds_list(spacing[1:])
    dset.SliceThickness = ds(spacing[0])
    dset.SpacingBetweenSlices = ds(spacing[0])
    dset.SamplesPerPixel = 1
    dset.PhotometricInterpretation = "MONOCHROME2"
    dset.BitsAllocated, dset.BitsStored, dset.HighBit = 16, 12, 11
    dset.PixelRepresentation = 0
    return dset
