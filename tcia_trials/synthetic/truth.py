"""The JSON pieces of ``ground_truth.json`` (plain dicts, lists, numbers and strings).

Top level: ``generator`` (package, version, params), ``collection``, ``layout``, ``conventions``
(:data:`CONVENTIONS`), ``metadata_csv``, ``annotations_csv``, ``clinical``, ``counts`` and
``patients`` (patient id -> ``{patient_id, sex, age, height_m, body, studies}``); each study has
``series`` (image and annotation series) and ``lesions``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.dataset import Dataset

from .phantom import Body, Ellipsoid, Grid, Phantom
from .plan import ImageSeriesPlan, StudyLesion

CONVENTIONS = {
    "coordinates": "DICOM patient coordinates LPS, mm",
    "array_axes": "(k, j, i) = (slice, row, col); slices sorted by increasing position along "
    "n = row_cosines x col_cosines",
    "row_index": "j moves along ImageOrientationPatient[3:6] by PixelSpacing[0]",
    "col_index": "i moves along ImageOrientationPatient[0:3] by PixelSpacing[1]",
    "affine": "LPS = affine @ [k, j, i, 1]",
    "direction": "3x3, columns = unit vectors of the array axes (slice, row, col)",
    "voxel_value": "value at the voxel centre: outside_value outside the body; body_value inside "
    "the body (elliptic cylinder along z: ((x-cx)/ax)^2 + ((y-cy)/ay)^2 <= 1); lesion value "
    "where sum(((p - center) / semi_axes)^2) <= 1 (later lesions win; they never overlap)",
    "ct": "HU = stored * RescaleSlope + RescaleIntercept (int16)",
    "suv": "SUVbw = (stored * RescaleSlope + RescaleIntercept) * PatientWeight[kg] * 1000 / "
    "(RadionuclideTotalDose * 2 ** (-(t_series - t_injection) / RadionuclideHalfLife)), "
    "t in s, t_series = SeriesDate/SeriesTime, t_injection = RadiopharmaceuticalStartDateTime; "
    "per-slice RescaleSlope",
    "suvmax": "max SUVbw over PET voxels whose centres are inside the lesion, from the stored "
    "(quantized) values, float64",
    "seed_image_coords": "(column, row) image coordinates on the seed slice, (0.5, 0.5) = centre "
    "of the top-left pixel (DICOM SCOORD)",
    "seed_quirk": "extra_triplets: POINT, NumberOfContourPoints 1, 2-3 triplets, the first is "
    "the seed; two_point_closed_planar: CLOSED_PLANAR with 2 points, the first is the seed "
    "(seed_rtstruct_points lists the triplets as stored)",
    "rtstruct_polygons": "one CLOSED_PLANAR polygon per CT slice plane cutting the ellipsoid, "
    "64 vertices on the ellipse of intersection scaled to the ellipse's area",
    "small": "a half-chord of the ellipsoid along some CT array axis is < 5 voxels",
}


def body_json(body: Body) -> dict:
    """The body: elliptic cylinder along z, centre and semi-axes in mm (LPS x, y)."""
    return {
        "kind": "elliptic_cylinder_z",
        "center_xy": list(body.center_xy),
        "semi_axes_xy": list(body.semi_axes_xy),
    }


def image_series_json(
    plan: ImageSeriesPlan,
    files_by_k: list[str],
    datasets: list[Dataset],
    numbers: list[int],
    order: list[int],
) -> dict:
    """An image series: identity, encoding, files by slice ``k`` and the grid geometry."""
    truth = {
        "series_uid": plan.series_uid,
        "modality": plan.modality,
        "description": plan.description,
        "role": "image",
        "image_kind": plan.role,
        "series_number": plan.series_number,
        "sop_class_uid": str(datasets[0].SOPClassUID),
        "transfer_syntax": str(datasets[0].file_meta.TransferSyntaxUID),
        "files": files_by_k,
        "sop_instance_uids": [str(d.SOPInstanceUID) for d in datasets],
        "instance_numbers": numbers,
        "instance_order": plan.instance_order,
        "files_shuffled": plan.shuffle_files,
        "download_order": order,
        "pixel_representation": plan.pixel_representation,
        "series_datetime": plan.series_time.isoformat(),
    }
    truth.update(plan.grid.to_json())
    return truth


def annotation_json(
    dset: Dataset,
    files: list[str],
    role: str,
    referenced_series_uid: str,
    annotation_type: str,
    lesion_ids: list[str],
    **extra: object,
) -> dict:
    """An annotation series (one file): identity, referenced image series, lesions."""
    truth = {
        "series_uid": str(dset.SeriesInstanceUID),
        "modality": str(dset.Modality),
        "description": str(dset.SeriesDescription),
        "role": role,
        "series_number": int(dset.SeriesNumber),
        "sop_class_uid": str(dset.SOPClassUID),
        "sop_instance_uids": [str(dset.SOPInstanceUID)],
        "files": files,
        "referenced_series_uid": referenced_series_uid,
        "annotation_type": annotation_type,
        "lesion_ids": lesion_ids,
    }
    truth.update(extra)
    return truth


def lesion_json(sl: StudyLesion) -> dict:
    """The time-point-independent part of a lesion entry (seed and voxel counts come later)."""
    les = sl.lesion
    return {
        "lesion_id": les.lesion_id,
        "label": les.label,
        "location": les.location.name,
        "location_code": [les.location.code_value, "SCT", les.location.code_meaning],
        "tracking_uid": les.tracking_uid,
        "center_lps": list(sl.ellipsoid.center),
        "semi_axes_mm": list(sl.ellipsoid.semi_axes),
        "volume_ml": sl.ellipsoid.volume_ml,
        "hu": les.hu,
        "suv": sl.suv,
        "suvmax": None,
        "suvmean": None,
        "n_voxels_pet": None,
        "seed_quirk": sl.seed_quirk,
        "sr_point": sl.sr_point,
        "contour_source": les.contour,
        "annotations": {"rtstruct": None, "seed": None, "seg": None, "seg_pet": None, "sr": None},
    }


def phantom_json(phantom: Phantom, lesions: list[StudyLesion]) -> dict:
    """Values of a series' phantom: outside, body, and each lesion's ellipsoid and value."""
    return {
        "outside_value": phantom.outside_value,
        "body_value": phantom.body_value,
        "lesions": [
            {
                "lesion_id": sl.lesion.lesion_id,
                "value": value,
                "center_lps": list(e.center),
                "semi_axes_mm": list(e.semi_axes),
            }
            for sl, (e, value) in zip(lesions, phantom.lesions, strict=True)
        ],
    }


def half_chords(grid: Grid, ellipsoid: Ellipsoid) -> list[float]:
    """Half-chords of the ellipsoid along the array axes, in voxels of each axis (k, j, i)."""
    direction = grid.direction
    return [ellipsoid.half_chord(direction[:, a]) / grid.spacing[a] for a in range(3)]


def summary(truth_path: Path) -> str:
    """One-paragraph description of a generated collection (for the CLI)."""
    truth = json.loads(Path(truth_path).read_text(encoding="utf-8"))
    c = truth["counts"]
    return (
        f"Wrote synthetic collection {truth['collection']!r} ({truth['layout']} layout): "
        f"{c['patients']} patients, {c['studies']} studies, {c['lesions']} lesions, "
        f"{c['series']} series ({c['annotation_series']} annotation series), "
        f"{c['files']} DICOM files, {c['bytes']:,} bytes "
        f"({c['bytes'] / 1e6:.1f} MB). Ground truth: {truth_path}."
    )
