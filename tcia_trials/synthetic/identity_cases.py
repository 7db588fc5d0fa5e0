"""A small download with the lesion-identity conventions real annotation sets use, and its truth.

One CT series and the annotation objects that a reader merging by name would get wrong:

- a seed-point RTSTRUCT with several ROIs that share one name ("Spine Met Seed Point"), each a
  POINT at another place;
- a SEG whose segments repeat a SegmentLabel ("Neoplasm, Secondary" twice);
- two readers' SEG series on the same CT, each one segment labelled "Liver";
- an RTSTRUCT with a contour ROI that has a hole (an outer and an inner square on each slice) and
  an ROI without contours.

``write_identity_cases`` returns the truth: every ROI / segment of every object, by its origin
(``"<series UID>/ROI <n>"``, ``"<series UID>/segment <n>"``), with its seed point (LPS mm) or
voxel count on the CT grid, and what must happen to it (a lesion of its own, or a skip).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from .ids import make_uid
from .images import ct_grid, write_ct_series
from .rtstruct import RtSeries, _add_roi, _contour, _structure_set
from .seg import CATEGORY, LESION
from .tags import StudyContext, add_patient_study, freeze
from .tags import write as write_dataset

SHAPE = (12, 48, 48)
PIXEL_MM = 2.0
SLICE_MM = 2.5
WHEN = dt.datetime(2001, 2, 3, 11, 0, 0)


def _context(ct: Dataset) -> StudyContext:
    return StudyContext(
        collection="SYNTH-TRIAL",
        patient_id=str(ct.PatientID),
        patient_sex="F",
        patient_age=60,
        weight_kg=70.0,
        height_m=1.7,
        study_uid=str(ct.StudyInstanceUID),
        study_start=WHEN,
        study_description="CT CHEST",
        time_point="Pre-dose",
        frame_uid=str(ct.FrameOfReferenceUID),
    )


def _box(k: tuple[int, int], j: tuple[int, int], i: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[k[0] : k[1], j[0] : j[1], i[0] : i[1]] = True
    return mask


def _seg(
    ctx: StudyContext,
    images: list[Dataset],
    name: str,
    description: str,
    segments: list[tuple[str, np.ndarray]],
    reader: str,
) -> Dataset:
    """A BINARY SEG of ``segments`` (label, mask on the CT grid), numbered from 1."""
    series_uid = str(make_uid("identity-cases", name))
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=CATEGORY,
            segmented_property_type=LESION,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number, (label, _) in enumerate(segments, start=1)
    ]
    pixels = np.stack([mask for _, mask in segments], axis=-1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=series_uid,
            series_number=50 + len(name),
            sop_instance_uid=str(make_uid(series_uid, "instance", 0)),
            instance_number=1,
            manufacturer="tcia_trials.synthetic",
            manufacturer_model_name="synthetic",
            software_versions="1",
            device_serial_number="0",
            content_label="LESIONS",
            content_creator_name=reader,
            omit_empty_frames=True,
            series_description=description,
            content_date=WHEN.date(),
            content_time=WHEN.time(),
        )
    add_patient_study(seg, ctx)
    freeze(seg, WHEN)
    return seg


def _square(centre: np.ndarray, half_mm: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    return np.array([centre + half_mm * (a * u + b * v) for a, b in corners])


def write_identity_cases(folder: Path, *, seed: int = 0) -> dict:
    """Write the CT and its annotation objects under ``folder``; return the truth (see module
    docstring): ``{"ct_series_uid", "files": {name: path}, "parts": {origin: {...}}}``."""
    grid = ct_grid(
        SHAPE, center=(0.0, 0.0, 0.0), pixel_spacing=(PIXEL_MM, PIXEL_MM), slice_spacing=SLICE_MM
    )
    paths = write_ct_series(folder / "ct", grid=grid, seed=seed, patient_id="SYNTH-IDENTITY")
    images = [pydicom.dcmread(path) for path in paths]
    ctx = _context(images[0])
    u, v = np.asarray(grid.row_cosines), np.asarray(grid.col_cosines)
    parts: dict[str, dict] = {}
    files: dict[str, Path] = {}

    def save(name: str, dset: Dataset) -> str:
        path = folder / "annotations" / f"{name}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_dataset(dset, path)
        files[name] = path
        return str(dset.SeriesInstanceUID)

    # Seed points: one RTSTRUCT, three ROIs of the same name, up to ~30 mm apart.
    rt = RtSeries(
        str(make_uid("identity-cases", "seeds")), 40, "Pre-dose, SPINE MET SEED POINTS", WHEN
    )
    dset = _structure_set(ctx, rt, images, "SEED POINT")
    for n, (k, j, i) in enumerate([(3, 10, 12), (6, 20, 30), (9, 35, 18)], start=1):
        point = grid.position(k) + j * PIXEL_MM * v + i * PIXEL_MM * u
        _add_roi(
            dset,
            ctx,
            "Spine Met Seed Point",
            "MARKER",
            [_contour(images[k], "POINT", point[None], 1, 1)],
            (255, 255, 0),
        )
        parts[f"{rt.series_uid}/ROI {n}"] = {"seed_lps": point.tolist(), "seed_voxel": [k, j, i]}
    save("seeds", dset)

    # One SEG whose first two segments share a label.
    segments = [
        ("Neoplasm, Secondary", _box((2, 5), (5, 10), (5, 10))),
        ("Neoplasm, Secondary", _box((6, 10), (30, 36), (30, 34))),
        ("Liver", _box((1, 11), (12, 28), (20, 40))),
    ]
    uid = save("seg-repeated-labels", _seg(ctx, images, "repeated", "Lesions", segments, "R^A"))
    for number, (_, mask) in enumerate(segments, start=1):
        parts[f"{uid}/segment {number}"] = {"voxel_count": int(mask.sum()), "reader": "R^A"}

    # Two readers' SEGs of the same name on the same CT.
    for reader, mask in (
        ("Reader^One", _box((3, 8), (14, 24), (22, 34))),
        ("Reader^Two", _box((3, 9), (15, 25), (22, 36))),
    ):
        uid = save(
            f"seg-{reader[-3:].lower()}",
            _seg(ctx, images, reader, "Liver segmentation", [("Liver", mask)], reader),
        )
        parts[f"{uid}/segment 1"] = {"voxel_count": int(mask.sum()), "reader": reader}

    # A ring (outer 18 mm square, inner 6 mm square hole) on slices 4-7, and an empty ROI.
    rt = RtSeries(str(make_uid("identity-cases", "ring")), 41, "Structures", WHEN)
    dset = _structure_set(ctx, rt, images, "STRUCTURES")
    centre_ji = (24.0, 24.0)
    contours = []
    for k in range(4, 8):
        centre = grid.position(k) + centre_ji[0] * PIXEL_MM * v + centre_ji[1] * PIXEL_MM * u
        for half in (9.0, 3.0):
            contours.append(
                _contour(images[k], "CLOSED_PLANAR", _square(centre, half, u, v), 4, len(contours))
            )
    _add_roi(dset, ctx, "Ring", "GTV", contours, (255, 0, 0))
    _add_roi(dset, ctx, "Bladder", "ORGAN", None, (0, 0, 255))
    save("ring-and-empty", dset)
    ring_area_mm2 = 18.0**2 - 6.0**2
    parts[f"{rt.series_uid}/ROI 1"] = {
        "volume_ml": ring_area_mm2 * SLICE_MM * 4 / 1000.0,
        # 9 x 9 voxel centres inside the outer square, 3 x 3 of them inside the hole, 4 slices
        "voxel_count": 4 * (9 * 9 - 3 * 3),
    }
    parts[f"{rt.series_uid}/ROI 2"] = {"skipped": "empty ROI"}
    return {"ct_series_uid": str(images[0].SeriesInstanceUID), "files": files, "parts": parts}
