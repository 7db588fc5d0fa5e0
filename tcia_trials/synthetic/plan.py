"""Random but deterministic plan of a synthetic collection: patients, studies, series, lesions.

Everything random is drawn here, from one ``numpy.random.default_rng`` per patient seeded with
``(seed, patient_index)``, so adding patients leaves the earlier ones unchanged (except the last,
which becomes the "No findings" patient); the writers only
turn the plan into files.  Variety that tests rely on (oblique CT, descending InstanceNumbers
written in shuffled order, Implicit VR, both PixelRepresentations, seed-point quirks, SEG vs
RTSTRUCT contours, SR, a "No findings" study) is assigned from running counters over studies and
lesions, so the default collection (4 patients) has all of it; patient 0 always has two studies
(an axial CT with shuffled, descending instances and an oblique Implicit VR CT).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from .ids import make_uid
from .phantom import (
    BOUNDARY_MARGIN,
    Body,
    Ellipsoid,
    Grid,
    boundary_margin,
    make_grid,
    rotation,
)

TIME_POINTS = ("Pre-dose", "Follow-up consultation")
NO_FINDINGS_ROI = "LESION SEED POINT - NO FINDINGS"
F18_HALF_LIFE_S = 6586.2
PET_PIXEL_MM = 4.0
CT_PIXEL_MM = 2.0
CT_SLICE_MM = 2.5
SEED_QUIRKS = (None, "extra_triplets", "two_point_closed_planar")


@dataclass(frozen=True)
class Location:
    """Lesion location: label text as in EAY131 and its SNOMED CT code (value, meaning)."""

    name: str
    code_value: str
    code_meaning: str


LOCATIONS = (
    Location("LIVER", "10200004", "Liver"),
    Location("LUNG", "39607008", "Lung"),
    Location("LYMPH NODE", "59441001", "Lymph node"),
    Location("ADRENAL GLAND", "23451007", "Adrenal gland"),
    Location("KIDNEY", "64033007", "Kidney"),
)

MANUFACTURERS = (
    ("SIEMENS", "Biograph 64", "B30f"),
    ("GE MEDICAL SYSTEMS", "Discovery 710", "STANDARD"),
    ("Philips", "Ingenuity TF PET/CT", "B"),
)
STUDY_DESCRIPTIONS_PET = ("PET/CT SKULL BASE TO MID-THIGH", "PETCT WHOLE BODY")
STUDY_DESCRIPTIONS_CT = ("CT CHEST, ABDOMEN & PELVIS W CONTRAST", "CT CHEST/ABD/PELVIS W CONTRAST")
ARMS = ("ARM A", "ARM B", "ARM C")
RESPONSES = ("CR", "PR", "SD", "PD")

# Pythagorean cosines: direction cosines and positions stay short exact decimals.
_OBLIQUE = rotation(0.96, 0.28, 0.96, 0.28)
TILT_COS, TILT_SIN = 0.96, 0.28


@dataclass
class LesionPlan:
    """A lesion of a patient (tracked across time points)."""

    index: int
    global_index: int
    lesion_id: str
    location: Location
    number: int
    tracking_uid: str
    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    growth: float
    hu: int
    suv: float
    suv_change: float
    contour: str  # "rtstruct" | "seg" | "both"
    planned_small: bool

    @property
    def label(self) -> str:
        """EAY131-style label, e.g. ``"LIVER - 1"``."""
        return f"{self.location.name} - {self.number}"


@dataclass
class StudyLesion:
    """One lesion at one time point: its ellipsoid, SUV and the annotation choices."""

    lesion: LesionPlan
    ellipsoid: Ellipsoid
    suv: float
    annotation_index: int
    seed_quirk: str | None
    seed_fraction: float
    seed_angle: float
    sr_point: str | None  # "SCOORD3D" | "SCOORD" | None


@dataclass
class ImageSeriesPlan:
    """An image series: geometry, identifiers and encoding choices."""

    role: str  # "ct" | "ct_tilted" | "pet"
    modality: str
    grid: Grid
    series_uid: str
    series_number: int
    description: str
    series_time: dt.datetime
    manufacturer: str
    model: str
    kernel: str
    pixel_representation: int = 1
    transfer_syntax: str = "explicit"  # "explicit" | "implicit"
    instance_order: str = "ascending"  # InstanceNumber vs k: "ascending" | "descending"
    shuffle_files: bool = False
    spacing_between_slices_tag: bool = False
    gantry_tilt_deg: float = 0.0


@dataclass
class PetParams:
    """Tags that define SUVbw; times are naive datetimes of the (shifted) study day."""

    weight_kg: float
    total_dose_bq: float
    half_life_s: float
    injection: dt.datetime
    series_start: dt.datetime
    background_suv: float

    @property
    def delta_t_s(self) -> float:
        """Seconds from injection to series start (the decay time of DecayCorrection START)."""
        return (self.series_start - self.injection).total_seconds()

    @property
    def suv_factor(self) -> float:
        """SUVbw per Bq/mL: ``PatientWeight[kg] * 1000 / (RadionuclideTotalDose *
        2 ** (-delta_t_s / RadionuclideHalfLife))``."""
        return (self.weight_kg * 1000.0) / (
            self.total_dose_bq * 2.0 ** (-self.delta_t_s / self.half_life_s)
        )


@dataclass
class StudyPlan:
    """One study (time point) of a patient."""

    index: int
    global_index: int
    time_point: str
    study_uid: str
    frame_uid: str
    start: dt.datetime
    description: str
    ct: ImageSeriesPlan
    extra_ct: ImageSeriesPlan | None
    pet: ImageSeriesPlan | None
    pet_params: PetParams | None
    lesions: list[StudyLesion]
    no_findings: bool
    with_sr: bool
    weight_kg: float

    @property
    def image_series(self) -> list[ImageSeriesPlan]:
        """CT, optional tilted CT and optional PET, in writing order."""
        return [s for s in (self.ct, self.extra_ct, self.pet) if s is not None]


@dataclass
class PatientPlan:
    """A patient: demographics, body, lesions and studies."""

    index: int
    patient_id: str
    sex: str
    age: int
    height_m: float
    body: Body
    lesions: list[LesionPlan]
    studies: list[StudyPlan] = field(default_factory=list)
    clinical: dict = field(default_factory=dict)


@dataclass
class CollectionPlan:
    """The whole collection (plus the clinical row of a patient without images)."""

    collection: str
    seed: int
    ct_shape: tuple[int, int, int]
    with_pet: bool
    with_tilted_ct: bool
    patients: list[PatientPlan]
    extra_clinical: list[dict]


class _Counters:
    def __init__(self) -> None:
        self.study = 0
        self.lesion = 0
        self.annotation = 0


def _round3(v: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(x) + 0.0 for x in np.round(v, 3))  # type: ignore[return-value]


def plan_collection(
    *,
    patients: int,
    seed: int,
    ct_shape: tuple[int, int, int],
    with_pet: bool,
    collection: str,
    with_tilted_ct: bool = False,
) -> CollectionPlan:
    """Draw the plan of a collection (see module docstring)."""
    if patients < 1:
        raise ValueError(f"patients must be >= 1, got {patients}")
    shape = tuple(int(s) for s in ct_shape)
    if len(shape) != 3 or shape[0] < 8 or shape[1] < 32 or shape[2] < 32:
        raise ValueError(f"ct_shape must be (slices >= 8, rows >= 32, cols >= 32), got {ct_shape}")
    counters = _Counters()
    key = (collection, seed, "x".join(map(str, shape)))
    plans = [
        _plan_patient(p, patients, seed, shape, with_pet, with_tilted_ct, key, counters)
        for p in range(patients)
    ]
    extra_rng = np.random.default_rng([seed, patients, 424242])
    extra = [
        {
            "patient_id": f"SYNTH-{patients + 1:04d}",
            "age": int(extra_rng.integers(40, 80)),
            "sex": str(extra_rng.choice(["M", "F"])),
            "arm": str(extra_rng.choice(ARMS)),
            "best_response": None,
            "pfs_days": int(extra_rng.integers(20, 120)),
            "progression_event": 1,
        }
    ]
    return CollectionPlan(
        collection=collection,
        seed=seed,
        ct_shape=shape,  # type: ignore[arg-type]
        with_pet=with_pet,
        with_tilted_ct=with_tilted_ct,
        patients=plans,
        extra_clinical=extra,
    )


def _plan_patient(
    p: int,
    n_patients: int,
    seed: int,
    shape: tuple[int, int, int],
    with_pet: bool,
    with_tilted_ct: bool,
    key: tuple,
    counters: _Counters,
) -> PatientPlan:
    rng = np.random.default_rng([seed, p, 1500])
    pid = f"SYNTH-{p + 1:04d}"
    sex = str(rng.choice(["M", "F"]))
    age = int(rng.integers(38, 80))
    weight = round(float(rng.uniform(52, 98)), 1)
    height = round(float(rng.uniform(1.55, 1.92)), 2)
    no_findings = n_patients >= 2 and p == n_patients - 1
    n_studies = 2 if p == 0 else (1 if no_findings else int(rng.integers(1, 3)))

    nk, nj, ni = shape
    center = np.array([0.0, 0.0, -200.0])
    fov = np.array([ni * CT_PIXEL_MM, nj * CT_PIXEL_MM, nk * CT_SLICE_MM])
    body = Body(
        center_xy=(round(float(rng.uniform(-3, 3)), 2), round(float(rng.uniform(-3, 3)), 2)),
        semi_axes_xy=(
            round(float(fov[0] * 0.44 * rng.uniform(0.93, 1.0)), 2),
            round(float(fov[1] * 0.34 * rng.uniform(0.93, 1.0)), 2),
        ),
    )
    first_day = dt.datetime(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))

    # Studies first (grids are needed to place the lesions).
    studies: list[StudyPlan] = []
    day = first_day
    for s in range(n_studies):
        g = counters.study
        counters.study += 1
        if s > 0:
            day = day + dt.timedelta(days=int(rng.integers(42, 120)))
        studies.append(
            _plan_study(
                rng,
                key,
                pid,
                s,
                g,
                day,
                shape,
                center,
                with_pet,
                with_tilted_ct,
                no_findings,
                weight,
            )
        )

    while min(boundary_margin(s.grid, body, []) for st in studies for s in st.image_series) <= (
        BOUNDARY_MARGIN
    ):
        body = Body(
            body.center_xy,
            (round(body.semi_axes_xy[0] + 0.013, 3), round(body.semi_axes_xy[1] + 0.017, 3)),
        )
    lesions: list[LesionPlan] = []
    if not no_findings:
        lesions = _place_lesions(rng, key, pid, body, studies, center, fov, counters)
    for study in studies:
        if study.no_findings:
            continue
        for les in lesions:
            a = counters.annotation
            counters.annotation += 1
            scale = 1.0 if study.index == 0 else les.growth
            suv = les.suv if study.index == 0 else round(les.suv * les.suv_change, 2)
            study.lesions.append(
                StudyLesion(
                    lesion=les,
                    ellipsoid=Ellipsoid(
                        les.center, tuple(round(r * scale, 3) for r in les.semi_axes)
                    ),
                    suv=suv,
                    annotation_index=a,
                    seed_quirk=SEED_QUIRKS[{1: 1, 3: 2}.get(a % 4, 0)],
                    seed_fraction=(0.0, 0.3, 0.5)[a % 3],
                    seed_angle=float(rng.uniform(0, 2 * math.pi)),
                    sr_point=(("SCOORD3D", "SCOORD")[a % 2]) if study.with_sr else None,
                )
            )
    clinical = {
        "patient_id": pid,
        "age": age,
        "sex": sex,
        "arm": str(rng.choice(ARMS)),
        "best_response": None if no_findings else str(rng.choice(RESPONSES)),
        "pfs_days": None if p % 4 == 1 else int(rng.integers(30, 900)),
        "progression_event": int(rng.integers(0, 2)),
    }
    return PatientPlan(
        index=p,
        patient_id=pid,
        sex=sex,
        age=age,
        height_m=height,
        body=body,
        lesions=lesions,
        studies=studies,
        clinical=clinical,
    )


def _plan_study(
    rng: np.random.Generator,
    key: tuple,
    pid: str,
    s: int,
    g: int,
    day: dt.datetime,
    shape: tuple[int, int, int],
    center: np.ndarray,
    with_pet: bool,
    with_tilted_ct: bool,
    no_findings: bool,
    weight: float,
) -> StudyPlan:
    def uid(*parts: object) -> str:
        return str(make_uid(*key, pid, s, *parts))

    has_pet = with_pet and g % 3 != 2
    start = day + dt.timedelta(hours=int(rng.integers(7, 15)), minutes=int(rng.integers(0, 60)))
    manufacturer, model, kernel = MANUFACTURERS[g % len(MANUFACTURERS)]
    oblique = g % 2 == 1
    if oblique:
        grid = make_grid(
            shape,
            center=center,
            pixel_spacing=(CT_PIXEL_MM, CT_PIXEL_MM),
            slice_spacing=CT_SLICE_MM,
            row_cosines=_OBLIQUE[:, 0],
            col_cosines=_OBLIQUE[:, 1],
        )
    else:
        grid = make_grid(
            shape,
            center=center,
            pixel_spacing=(CT_PIXEL_MM, CT_PIXEL_MM),
            slice_spacing=CT_SLICE_MM,
        )
    pet_params = None
    pet = None
    weight_s = weight if s == 0 else round(weight + float(rng.uniform(-3, 3)), 1)
    if has_pet:
        injection = start
        series_start = injection + dt.timedelta(seconds=int(rng.integers(3300, 4200)))
        ct_time = series_start - dt.timedelta(seconds=240)
        pet_params = PetParams(
            weight_kg=weight_s,
            total_dose_bq=float(round(float(rng.uniform(300, 420)) * 10) * 100000),
            half_life_s=F18_HALF_LIFE_S,
            injection=injection,
            series_start=series_start,
            background_suv=round(float(rng.uniform(0.85, 1.15)), 2),
        )
        nk, nj, ni = shape
        pet_shape = (
            math.ceil(nk * CT_SLICE_MM / PET_PIXEL_MM),
            math.ceil(nj * CT_PIXEL_MM / PET_PIXEL_MM),
            math.ceil(ni * CT_PIXEL_MM / PET_PIXEL_MM),
        )
        pet_grid = make_grid(
            pet_shape,
            center=center,
            pixel_spacing=(PET_PIXEL_MM, PET_PIXEL_MM),
            slice_spacing=PET_PIXEL_MM,
        )
        pet = ImageSeriesPlan(
            role="pet",
            modality="PT",
            grid=pet_grid,
            series_uid=uid("series", "pet"),
            series_number=4,
            description="PET WB AC",
            series_time=series_start,
            manufacturer=manufacturer,
            model=model,
            kernel="",
            pixel_representation=1,
            instance_order="descending",
        )
        description = STUDY_DESCRIPTIONS_PET[g % 2]
    else:
        ct_time = start + dt.timedelta(seconds=300)
        description = STUDY_DESCRIPTIONS_CT[g % 2]
    ct = ImageSeriesPlan(
        role="ct",
        modality="CT",
        grid=grid,
        series_uid=uid("series", "ct"),
        series_number=2 if has_pet else 3,
        description="OBLIQUE CT 2.5mm" if oblique else "CT 2.5mm STND",
        series_time=ct_time,
        manufacturer=manufacturer,
        model=model,
        kernel=kernel,
        pixel_representation=1 if (g // 2) % 2 == 0 else 0,
        transfer_syntax="implicit" if g == 1 else "explicit",
        instance_order="descending" if g % 3 == 0 else "ascending",
        shuffle_files=g % 3 == 0,
        spacing_between_slices_tag=g % 2 == 0,
    )
    extra = None
    if with_tilted_ct and g == 0:
        tgrid = make_grid(
            shape,
            center=center,
            pixel_spacing=(CT_PIXEL_MM, CT_PIXEL_MM),
            row_cosines=(1.0, 0.0, 0.0),
            col_cosines=(0.0, TILT_COS, TILT_SIN),
            slice_step=(0.0, 0.0, CT_SLICE_MM),
        )
        extra = ImageSeriesPlan(
            role="ct_tilted",
            modality="CT",
            grid=tgrid,
            series_uid=uid("series", "ct_tilted"),
            series_number=5,
            description="CT TILT 2.5mm",
            series_time=ct_time,
            manufacturer=manufacturer,
            model=model,
            kernel=kernel,
            pixel_representation=1,
            instance_order="ascending",
            gantry_tilt_deg=tgrid.gantry_tilt_deg,
        )
    return StudyPlan(
        index=s,
        global_index=g,
        time_point=TIME_POINTS[min(s, 1)],
        study_uid=uid("study"),
        frame_uid=uid("frame"),
        start=start,
        description=description,
        ct=ct,
        extra_ct=extra,
        pet=pet,
        pet_params=pet_params,
        lesions=[],
        no_findings=no_findings,
        with_sr=(g % 2 == 0) and not no_findings,
        weight_kg=weight_s,
    )


def _inside_grid(grid: Grid, lo: np.ndarray, hi: np.ndarray) -> bool:
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    idx = grid.to_index(corners)
    upper = np.array(grid.shape, dtype=np.float64) - 2.0
    return bool(np.all(idx >= 1.0) and np.all(idx <= upper))


def _place_lesions(
    rng: np.random.Generator,
    key: tuple,
    pid: str,
    body: Body,
    studies: list[StudyPlan],
    center: np.ndarray,
    fov: np.ndarray,
    counters: _Counters,
) -> list[LesionPlan]:
    grids = [s.grid for st in studies for s in st.image_series]
    n = int(rng.integers(1, 5))
    for _attempt in range(50):
        placed: list[LesionPlan] = []
        per_location: dict[str, int] = {}
        ok = True
        for m in range(n):
            gidx = counters.lesion + m
            small = gidx % 5 == 4
            loc = LOCATIONS[int(rng.integers(0, len(LOCATIONS)))]
            les = _place_one(rng, body, grids, placed, center, fov, small)
            if les is None:
                ok = False
                break
            semi, growth, c = les
            per_location[loc.name] = per_location.get(loc.name, 0) + 1
            placed.append(
                LesionPlan(
                    index=m + 1,
                    global_index=gidx,
                    lesion_id=f"{pid}-L{m + 1:02d}",
                    location=loc,
                    number=per_location[loc.name],
                    tracking_uid=str(make_uid(*key, pid, "lesion", m + 1)),
                    center=c,
                    semi_axes=semi,
                    growth=growth,
                    hu=int(rng.integers(80, 141)),
                    suv=round(float(rng.uniform(4, 12)), 2),
                    suv_change=float(rng.uniform(0.6, 1.2)),
                    contour=("both", "rtstruct", "seg")[gidx % 3],
                    planned_small=small,
                )
            )
        if not ok:
            continue
        # No voxel centre may sit (numerically) on a boundary, at any time point.
        margins = []
        for st in studies:
            ells = [
                Ellipsoid(
                    les.center,
                    tuple(
                        round(r * (1.0 if st.index == 0 else les.growth), 3) for r in les.semi_axes
                    ),
                )
                for les in placed
            ]
            margins += [boundary_margin(s.grid, None, ells) for s in st.image_series]
        if min(margins) > BOUNDARY_MARGIN:
            counters.lesion += n
            return placed
    raise ValueError(f"could not place {n} lesions for {pid}; is ct_shape too small?")


def _place_one(
    rng: np.random.Generator,
    body: Body,
    grids: list[Grid],
    placed: list[LesionPlan],
    center: np.ndarray,
    fov: np.ndarray,
    small: bool,
) -> tuple[tuple[float, float, float], float, tuple[float, float, float]] | None:
    growth = round(float(rng.uniform(0.75, 1.25)), 3)
    if small:
        base = np.array(
            [
                rng.uniform(2.2, 3.5) * CT_PIXEL_MM,
                rng.uniform(2.2, 3.5) * CT_PIXEL_MM,
                rng.uniform(1.8, 3.0) * CT_SLICE_MM,
            ]
        )
    else:
        base = np.array(
            [
                rng.uniform(5.3, 8.5) * CT_PIXEL_MM,
                rng.uniform(5.3, 8.5) * CT_PIXEL_MM,
                rng.uniform(5.4, 7.0) * CT_SLICE_MM,
            ]
        )
    # Small grids: at most 12 % of the field of view in x and y, 20 % in z.
    base = np.minimum(base, fov * np.array([0.12, 0.12, 0.2]))
    for _shrink in range(8):
        semi = np.round(base, 2)
        rmax = semi * max(1.0, growth)
        for _ in range(300):
            c = center + (rng.uniform(-0.5, 0.5, 3) * (fov - 2 * rmax))
            c = np.round(c, 3)
            lo, hi = c - rmax, c + rmax
            box_xy = np.array([[x, y, 0.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])])
            if np.max(body.q(box_xy)) > 0.8:
                continue
            if not all(_inside_grid(g, lo, hi) for g in grids):
                continue
            clash = False
            for other in placed:
                orad = np.array(other.semi_axes) * max(1.0, other.growth)
                olo, ohi = np.array(other.center) - orad, np.array(other.center) + orad
                if not np.any((lo > ohi + 4.0) | (olo > hi + 4.0)):
                    clash = True
                    break
            if not clash:
                return _round3(semi), growth, _round3(c)
        base = base * 0.85
    return None
