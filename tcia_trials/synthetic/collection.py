"""Write a whole synthetic collection from its plan, study by study, and its ground truth.

Memory is bounded by one study: image datasets are kept (without pixel data) only until the
study's annotations, which reference them, are written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from .clinical import COLUMN_TYPES, write_clinical
from .ids import GENERATOR_VERSION, make_uid
from .images import (
    CT_INTERCEPT,
    ImageSeriesOptions,
    ct_slice_dataset,
    instance_numbers,
    pet_quantize,
    pet_slice_dataset,
    suv_from_stored,
    write_order,
)
from .layout import Layout, SeriesEntry, write_annotation_csv
from .phantom import Grid, Phantom, lesion_mask
from .plan import NO_FINDINGS_ROI, ImageSeriesPlan, PatientPlan, StudyLesion, StudyPlan
from .plan import plan_collection as _plan_collection
from .rtstruct import RtSeries, contour_rtstruct, no_findings_rtstruct, seed_rtstruct
from .seg import lesion_seg
from .sr import SrLesion, measurement_report
from .tags import StudyContext
from .tags import write as write_dataset
from .truth import (
    CONVENTIONS,
    annotation_json,
    body_json,
    half_chords,
    image_series_json,
    lesion_json,
    phantom_json,
)

logger = logging.getLogger(__name__)

PET_BED_SLICES = 8
PET_FRAME_S = 150.0
CT_OUTSIDE_HU = -1000.0
CT_BODY_HU = 40.0


@dataclass
class _Writer:
    """Places series with the layout and counts what was written."""

    out: Path
    layout: Layout
    files: int = 0
    bytes: int = 0
    series: int = 0
    annotation_rows: list[tuple[str, str, str]] = field(default_factory=list)

    def write_series(self, entry: SeriesEntry, datasets: list[Dataset]) -> list[str]:
        """Write datasets (download order) of one series; return their paths relative to out."""
        rel_dir = self.layout.series_dir(entry)
        size, rels = 0, []
        for pos, dset in enumerate(datasets):
            rel = rel_dir / self.layout.file_name(pos, len(datasets), str(dset.SOPInstanceUID))
            size += write_dataset(dset, self.out / rel)
            rels.append(rel.as_posix())
        self.layout.record(entry, rel_dir, len(datasets), size)
        self.files += len(datasets)
        self.bytes += size
        self.series += 1
        return rels


def generate_collection(
    out: Path,
    *,
    patients: int = 4,
    seed: int = 0,
    layout: str = "nbia",
    ct_shape: tuple[int, int, int] = (40, 128, 128),
    with_pet: bool = True,
    collection: str = "SYNTH-TRIAL",
    with_tilted_ct: bool = False,
) -> Path:
    """Write a TCIA-like labeled clinical-trial collection with exact ground truth.

    Parameters
    ----------
    out
        Output folder (created; existing files with the same names are overwritten).
    patients
        Number of patients with images (the clinical sheet has one more, without images).
    seed
        Seeds every random choice; the same arguments give byte-identical files.
    layout
        ``"nbia"`` (NBIA Data Retriever descriptive folders + metadata.csv), ``"nbia-classic"``
        (UID folders + metadata.csv), ``"retriever"`` (TCIA Data Retriever) or ``"idc"``.
    ct_shape
        CT ``(slices, rows, cols)``; CT voxels are 2.0 x 2.0 mm, slices 2.5 mm apart.
    with_pet
        Add FDG PET series (4 mm grid, SUVbw ground truth) to most studies.
    collection
        Collection name (folder names, ClinicalTrialProtocolID, CSV file names).
    with_tilted_ct
        Add a gantry-tilted CT series (slices step along z, not along the normal) to the first
        study.

    Returns
    -------
    Path
        ``out / "ground_truth.json"``.
    """
    out = Path(out)
    layout_writer = Layout(layout, out, collection)  # validates the layout name
    plan = _plan_collection(
        patients=patients,
        seed=seed,
        ct_shape=ct_shape,
        with_pet=with_pet,
        collection=collection,
        with_tilted_ct=with_tilted_ct,
    )
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, layout_writer)
    truth_patients = {}
    n_studies = n_lesions = 0
    for patient in plan.patients:
        studies = []
        for study in patient.studies:
            studies.append(_StudyWriter(writer, collection, seed, patient, study).write())
            n_studies += 1
            n_lesions += len(study.lesions)
        truth_patients[patient.patient_id] = {
            "patient_id": patient.patient_id,
            "sex": patient.sex,
            "age": patient.age,
            "height_m": patient.height_m,
            "body": body_json(patient.body),
            "studies": studies,
        }
        logger.info("wrote patient %s (%d studies)", patient.patient_id, len(studies))
    metadata = writer.layout.write_metadata()
    annotations_csv = write_annotation_csv(out, collection, writer.annotation_rows)
    rows = [p.clinical for p in plan.patients] + plan.extra_clinical
    xlsx, csv_path = write_clinical(out / "clinical", collection, rows)
    truth = {
        "generator": {
            "package": "tcia_trials.synthetic",
            "version": GENERATOR_VERSION,
            "params": {
                "patients": patients,
                "seed": seed,
                "layout": layout,
                "ct_shape": [int(s) for s in ct_shape],
                "with_pet": with_pet,
                "collection": collection,
                "with_tilted_ct": with_tilted_ct,
            },
        },
        "collection": collection,
        "layout": layout,
        "conventions": CONVENTIONS,
        "metadata_csv": None if metadata is None else metadata.relative_to(out).as_posix(),
        "annotations_csv": annotations_csv.relative_to(out).as_posix(),
        "clinical": {
            "xlsx": xlsx.relative_to(out).as_posix(),
            "csv": csv_path.relative_to(out).as_posix(),
            "key": "patient_id",
            "columns": list(COLUMN_TYPES),
            "column_types": COLUMN_TYPES,
            "rows": rows,
            "patients_without_images": [r["patient_id"] for r in plan.extra_clinical],
        },
        "counts": {
            "patients": len(plan.patients),
            "studies": n_studies,
            "lesions": n_lesions,
            "series": writer.series,
            "files": writer.files,
            "bytes": writer.bytes,
            "annotation_series": len(writer.annotation_rows),
        },
        "patients": truth_patients,
    }
    path = out / "ground_truth.json"
    path.write_text(json.dumps(truth, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return path


def _options(s: ImageSeriesPlan) -> ImageSeriesOptions:
    return ImageSeriesOptions(
        modality=s.modality,
        series_uid=s.series_uid,
        series_number=s.series_number,
        description=s.description,
        series_time=s.series_time,
        manufacturer=s.manufacturer,
        model=s.model,
        kernel=s.kernel,
        pixel_representation=s.pixel_representation,
        transfer_syntax=s.transfer_syntax,
        instance_order=s.instance_order,
        spacing_between_slices_tag=s.spacing_between_slices_tag,
        gantry_tilt_deg=s.gantry_tilt_deg,
        body_part="CHEST" if s.modality == "CT" else "WHOLEBODY",
    )


def seed_point(grid: Grid, sl: StudyLesion) -> tuple[int, np.ndarray]:
    """Slice ``k`` nearest the lesion centre and a seed on that slice plane (LPS mm, 4 dp).

    The seed is ``seed_fraction`` of the way from the centre of the lesion's cross-section on
    that plane towards its rim (0: the cross-section centre), so it is inside the lesion.
    """
    center = np.asarray(sl.ellipsoid.center)
    kc = float((center - grid.position(0)) @ grid.normal) / grid.slice_distance
    k = int(min(max(round(kc), 0), grid.shape[0] - 1))
    section = sl.ellipsoid.section(grid.position(k), grid.row_cosines, grid.col_cosines)
    if section is None:
        raise ValueError(f"lesion {sl.lesion.lesion_id} does not cut its nearest CT slice {k}")
    return k, np.round(section.point(sl.seed_fraction, sl.seed_angle), 4)


class _StudyWriter:
    """Writes one study (images, then one annotation series per lesion) and its truth."""

    def __init__(
        self, writer: _Writer, collection: str, seed: int, patient: PatientPlan, study: StudyPlan
    ) -> None:
        self.writer = writer
        self.seed = seed
        self.patient = patient
        self.study = study
        years = (study.start - patient.studies[0].start).days // 365
        self.ctx = StudyContext(
            collection=collection,
            patient_id=patient.patient_id,
            patient_sex=patient.sex,
            patient_age=patient.age + years,
            weight_kg=study.weight_kg,
            height_m=patient.height_m,
            study_uid=study.study_uid,
            study_start=study.start,
            study_description=study.description,
            time_point=study.time_point,
            frame_uid=study.frame_uid,
        )
        self.when = dt.datetime.combine(
            study.start.date() + dt.timedelta(days=14), dt.time(16, 0, 0)
        )
        self.series: list[dict] = []
        self.lesions = {sl.lesion.lesion_id: lesion_json(sl) for sl in study.lesions}
        self.ct_images: list[Dataset] = []
        self.pet_images: list[Dataset] = []
        self.pet_suv: np.ndarray | None = None

    def entry(self, dset: Dataset, third_party: bool) -> SeriesEntry:
        """The layout's view of a series."""
        return SeriesEntry(
            patient_id=self.ctx.patient_id,
            study_uid=self.ctx.study_uid,
            study_date=self.ctx.study_start.date(),
            study_description=self.ctx.study_description,
            series_uid=str(dset.SeriesInstanceUID),
            series_number=int(dset.SeriesNumber),
            series_description=str(dset.SeriesDescription),
            modality=str(dset.Modality),
            manufacturer=str(dset.Manufacturer),
            sop_class_uid=str(dset.SOPClassUID),
            third_party=third_party,
        )

    def write(self) -> dict:
        """Write everything of the study; return its ground-truth entry."""
        study = self.study
        for plan in [study.ct] + ([study.extra_ct] if study.extra_ct else []):
            self.write_ct(plan)
        if study.pet is not None:
            self.write_pet(study.pet)
        if study.no_findings:
            rt = RtSeries(
                str(make_uid(study.study_uid, "no_findings")),
                study.ct.series_number,
                f"{study.time_point}, {NO_FINDINGS_ROI}",
                self.when,
            )
            dset = no_findings_rtstruct(self.ctx, rt, self.ct_images, NO_FINDINGS_ROI)
            self.annotation(dset, "no_findings", study.ct.series_uid, "No findings", [])
        sr_lesions = [self.write_lesion(sl) for sl in study.lesions]
        self.write_sr([s for s in sr_lesions if s is not None])
        return {
            "study_uid": study.study_uid,
            "time_point": study.time_point,
            "study_date": study.start.strftime("%Y%m%d"),
            "study_time": study.start.strftime("%H%M%S"),
            "description": study.description,
            "frame_of_reference_uid": study.frame_uid,
            "no_findings": study.no_findings,
            "ct_series_uid": study.ct.series_uid,
            "pet_series_uid": None if study.pet is None else study.pet.series_uid,
            "tilted_ct_series_uid": None if study.extra_ct is None else study.extra_ct.series_uid,
            "series": self.series,
            "lesions": [self.lesions[sl.lesion.lesion_id] for sl in study.lesions],
        }

    def write_images(
        self, plan: ImageSeriesPlan, datasets: list[Dataset], numbers: list[int], shuffle: bool
    ) -> dict:
        """Write an image series (datasets by slice ``k``); return its truth entry."""
        order = write_order(numbers, shuffle, [self.seed, self.study.global_index, len(plan.role)])
        rels = self.writer.write_series(
            self.entry(datasets[0], False), [datasets[k] for k in order]
        )
        files_by_k = [""] * len(datasets)
        for pos, k in enumerate(order):
            files_by_k[k] = rels[pos]
        truth = image_series_json(plan, files_by_k, datasets, numbers, order)
        self.series.append(truth)
        for d in datasets:  # annotations need the metadata only
            del d.PixelData
        return truth

    def write_ct(self, plan: ImageSeriesPlan) -> None:
        """A CT series: HU at voxel centres, stored = HU + 1024."""
        phantom = Phantom(
            body=self.patient.body,
            outside_value=CT_OUTSIDE_HU,
            body_value=CT_BODY_HU,
            lesions=tuple((sl.ellipsoid, float(sl.lesion.hu)) for sl in self.study.lesions),
        )
        opts = _options(plan)
        numbers = instance_numbers(plan.grid.shape[0], plan.instance_order)
        datasets: list[Dataset] = []
        for k in range(plan.grid.shape[0]):
            hu = np.rint(phantom.slice_values(plan.grid, k)).astype(np.int16)
            template = datasets[0] if datasets else None
            datasets.append(
                ct_slice_dataset(self.ctx, opts, plan.grid, k, hu, numbers[k], template)
            )
        truth = self.write_images(plan, datasets, numbers, plan.shuffle_files)
        truth.update(
            {
                "dtype": "int16",
                "units": "HU",
                "rescale_intercept": CT_INTERCEPT,
                "rescale_slopes": [1.0] * len(datasets),
                "phantom": phantom_json(phantom, self.study.lesions),
            }
        )
        if plan is self.study.ct:
            self.ct_images = datasets

    def write_pet(self, plan: ImageSeriesPlan) -> None:
        """A PET series: SUVbw at voxel centres, int16 with a per-slice slope (Bq/mL)."""
        pp = self.study.pet_params
        if pp is None:
            raise ValueError(f"PET series {plan.series_uid} has no PET parameters")
        phantom = Phantom(
            body=self.patient.body,
            outside_value=0.0,
            body_value=pp.background_suv,
            lesions=tuple((sl.ellipsoid, sl.suv) for sl in self.study.lesions),
        )
        opts = _options(plan)
        nk = plan.grid.shape[0]
        numbers = instance_numbers(nk, plan.instance_order)
        datasets: list[Dataset] = []
        slopes, suv = [], []
        for k in range(nk):
            stored, slope = pet_quantize(phantom.slice_values(plan.grid, k), pp.suv_factor, k)
            bed = (nk - 1 - k) // PET_BED_SLICES
            datasets.append(
                pet_slice_dataset(
                    self.ctx,
                    opts,
                    plan.grid,
                    k,
                    stored,
                    slope,
                    numbers[k],
                    weight_kg=pp.weight_kg,
                    total_dose_bq=pp.total_dose_bq,
                    half_life_s=pp.half_life_s,
                    injection=pp.injection,
                    acquisition=pp.series_start + dt.timedelta(seconds=bed * PET_FRAME_S),
                    frame_duration_s=PET_FRAME_S,
                    template=datasets[0] if datasets else None,
                )
            )
            slopes.append(float(slope))
            suv.append(
                suv_from_stored(
                    stored,
                    float(slope),
                    0.0,
                    pp.weight_kg,
                    pp.total_dose_bq,
                    pp.delta_t_s,
                    pp.half_life_s,
                )
            )
        truth = self.write_images(plan, datasets, numbers, shuffle=False)
        truth.update(
            {
                "dtype": "float32",
                "units": "SUVbw",
                "rescale_intercept": 0.0,
                "rescale_slopes": slopes,
                "phantom": phantom_json(phantom, self.study.lesions),
                "suv": {
                    "weight_kg": pp.weight_kg,
                    "total_dose_bq": pp.total_dose_bq,
                    "half_life_s": pp.half_life_s,
                    "injection_datetime": pp.injection.isoformat(),
                    "series_datetime": pp.series_start.isoformat(),
                    "delta_t_s": pp.delta_t_s,
                    "suv_factor": pp.suv_factor,
                    "decay_correction": "START",
                    "background_suv": pp.background_suv,
                },
            }
        )
        self.pet_images = datasets
        self.pet_suv = np.stack(suv)

    def annotation(
        self,
        dset: Dataset,
        role: str,
        referenced: str,
        annotation_type: str,
        lesion_ids: list[str],
        **extra: object,
    ) -> dict:
        """Write a one-file annotation series, its truth entry and its annotation CSV row."""
        rels = self.writer.write_series(self.entry(dset, True), [dset])
        self.series.append(
            annotation_json(dset, rels, role, referenced, annotation_type, lesion_ids, **extra)
        )
        series_uid = str(dset.SeriesInstanceUID)
        self.writer.annotation_rows.append((series_uid, referenced, annotation_type))
        return {"series_uid": series_uid, "file": rels[0]}

    def write_lesion(self, sl: StudyLesion) -> SrLesion | None:
        """The lesion's contour RTSTRUCT and/or SEG, seed RTSTRUCT, PET SEG; its SR item."""
        les, study, ct = sl.lesion, self.study, self.study.ct
        grid = ct.grid
        truth = self.lesions[les.lesion_id]
        ann = truth["annotations"]
        description = f"{study.time_point}, {les.label}"
        mask = lesion_mask(grid, sl.ellipsoid)
        k_seed, seed = seed_point(grid, sl)
        idx = grid.to_index(seed)
        column_row = (float(idx[2]) + 0.5, float(idx[1]) + 0.5)
        voxel_ml = abs(float(np.linalg.det(grid.affine[:3, :3]))) / 1000.0
        chords = half_chords(grid, sl.ellipsoid)
        truth.update(
            {
                "seed_lps": [float(v) for v in seed],
                "seed_voxel": [float(v) for v in idx],
                "seed_slice": k_seed,
                "seed_sop_instance_uid": str(self.ct_images[k_seed].SOPInstanceUID),
                "seed_image_coords": list(column_row),
                "n_voxels_ct": int(mask.sum()),
                "volume_ml_voxels": float(mask.sum()) * voxel_ml,
                "half_chords_voxels": chords,
                "small": min(chords) < 5.0,
            }
        )
        if les.contour in ("rtstruct", "both"):
            rt = RtSeries(
                str(make_uid(study.study_uid, "rtstruct", les.lesion_id)),
                ct.series_number,
                description,
                self.when,
            )
            dset, slices = contour_rtstruct(
                self.ctx, rt, self.ct_images, grid, sl.ellipsoid, les.label
            )
            ann["rtstruct"] = self.annotation(
                dset,
                "rtstruct",
                ct.series_uid,
                "Segmentation",
                [les.lesion_id],
                contour_slices=slices,
            )
        rt = RtSeries(
            str(make_uid(study.study_uid, "seed", les.lesion_id)),
            ct.series_number,
            f"{description} - SEED POINT",
            self.when,
        )
        dset = seed_rtstruct(
            self.ctx,
            rt,
            self.ct_images,
            grid,
            k_seed,
            seed,
            f"{les.label} - SEED POINT",
            sl.seed_quirk,
            n_extra=2 if sl.annotation_index % 8 == 1 else 1,
        )
        ann["seed"] = self.annotation(dset, "seed", ct.series_uid, "Seed point", [les.lesion_id])
        stored = dset.ROIContourSequence[0].ContourSequence[0].ContourData
        truth["seed_rtstruct_points"] = np.asarray(stored, dtype=float).reshape(-1, 3).tolist()
        if les.contour in ("seg", "both") and mask.any():  # tiny grids: a lesion may miss all
            ann["seg"] = self.write_seg(sl, ct, self.ct_images, mask, "ct")
        if study.pet is not None and self.pet_suv is not None:
            pet_mask = lesion_mask(study.pet.grid, sl.ellipsoid)
            truth["n_voxels_pet"] = int(pet_mask.sum())
            if pet_mask.any():
                truth["suvmax"] = float(self.pet_suv[pet_mask].max())
                truth["suvmean"] = float(self.pet_suv[pet_mask].mean())
                ann["seg_pet"] = self.write_seg(sl, study.pet, self.pet_images, pet_mask, "pet")
        if sl.sr_point is None:
            return None
        return SrLesion(
            label=les.label,
            tracking_uid=les.tracking_uid,
            location=les.location,
            volume_ml=sl.ellipsoid.volume_ml,
            point_kind=sl.sr_point,
            seed_lps=seed,
            image=self.ct_images[k_seed],
            column_row=column_row,
        )

    def write_seg(
        self,
        sl: StudyLesion,
        image_plan: ImageSeriesPlan,
        images: list[Dataset],
        mask: np.ndarray,
        grid_name: str,
    ) -> dict:
        """A binary SEG of one lesion on an image series' grid (``mask`` by slice ``k``)."""
        les = sl.lesion
        seg = lesion_seg(
            self.ctx,
            images=images,
            mask=mask,
            series_uid=str(make_uid(self.ctx.study_uid, f"seg_{grid_name}", les.lesion_id)),
            series_number=image_plan.series_number,
            description=f"{self.study.time_point}, {les.label}",
            label=les.label,
            location=les.location,
            tracking_uid=les.tracking_uid,
            when=self.when,
        )
        return self.annotation(
            seg,
            "seg",
            image_plan.series_uid,
            "Segmentation",
            [les.lesion_id],
            grid=grid_name,
            frames=int(seg.NumberOfFrames),
            frame_slices=[int(k) for k in np.flatnonzero(mask.any(axis=(1, 2)))],
        )

    def write_sr(self, items: list[SrLesion]) -> None:
        """One TID 1500 SR for the lesions that have an SR item (none: nothing written)."""
        if not items:
            return
        ct = self.study.ct
        sr = measurement_report(
            self.ctx,
            images=self.ct_images,
            lesions=items,
            series_uid=str(make_uid(self.study.study_uid, "sr")),
            series_number=ct.series_number,
            description=f"{self.study.time_point}, MEASUREMENT REPORT",
            when=self.when,
        )
        ids = [sl.lesion.lesion_id for sl in self.study.lesions if sl.sr_point is not None]
        ref = self.annotation(sr, "sr", ct.series_uid, "Seed point", ids)
        for lesion_id in ids:
            self.lesions[lesion_id]["annotations"]["sr"] = ref
