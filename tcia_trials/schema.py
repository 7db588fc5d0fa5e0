"""The neutral example schema, rendered by the writers to ``datasets.Features`` and TFDS features.

A :class:`Field` is a scalar, a fixed- or variable-shape tensor, or a list of records.  Variable
-shape tensors (whole volumes: rows x cols differ between series) are stored flat, next to an
explicit ``<name>_shape`` field, because only fixed shapes have a native array type in both
formats; fixed-shape tensors (patches) keep their shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CONFIG_NAMES = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")
#: Unit of image voxels: the row's ``units`` field says which (CT in HU, PET in SUVbw, MR as stored).
IMAGE_UNIT = "HU, SUVbw or as stored"


@dataclass(frozen=True)
class Field:
    """One feature of an example.

    ``dtype`` is a numpy dtype name or "string"; ``shape`` is ``()`` for scalars, a tuple with
    ``None`` for variable dimensions, and ``fields`` describes the records of a list of records
    (``dtype="records"``).  ``nullable`` scalars may be missing (null in Parquet; a sentinel plus
    a presence flag in TFDS), and so may vectors with a ``length`` (empty in Parquet, a
    sentinel-filled fixed-length vector plus a presence flag in TFDS).  ``unit`` and ``doc`` go to the dataset card.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] = ()
    nullable: bool = False
    unit: str = ""
    doc: str = ""
    fields: tuple[Field, ...] = ()
    is_list: bool = False  # a variable-length list of scalars (strings, uids, flags)
    length: int | None = None  # a (None,) vector that is either empty or this long (a point)

    @property
    def is_records(self) -> bool:
        """A variable-length list of records (``fields``)."""
        return self.dtype == "records"

    @property
    def is_record(self) -> bool:
        """One record of named ``fields`` (e.g. the clinical columns)."""
        return self.dtype == "record"

    @property
    def is_fixed_tensor(self) -> bool:
        return bool(self.shape) and all(d is not None for d in self.shape)

    @property
    def is_flat_tensor(self) -> bool:
        return bool(self.shape) and any(d is None for d in self.shape)


def id_fields() -> tuple[Field, ...]:
    """The identifiers every per-series config starts with."""
    return (
        Field("patient_id", "string", doc="DICOM PatientID"),
        Field("study_uid", "string", doc="StudyInstanceUID"),
        Field("series_uid", "string", doc="SeriesInstanceUID of the annotated image series"),
        Field(
            "time_point",
            "string",
            nullable=True,
            doc='e.g. "Pre-dose" (ClinicalTrialTimePointID or description)',
        ),
        Field("modality", "string", doc="CT, PT, MR, ..."),
    )


def units_field() -> Field:
    """The unit of the row's image voxels."""
    return Field("units", "string", doc='"HU" (CT), "SUVbw" (PET), or "" (as stored, e.g. MR)')


def stack_fields() -> tuple[Field, ...]:
    """Which stack of its series an example comes from (builds with a stack policy other than
    "single"; see :class:`~tcia_trials.spec.StackPolicy`)."""
    return (
        Field(
            "stack_index",
            "int32",
            doc="0-based stack of the series (read_volume(..., stack=N)); 0 for a one-stack series",
        ),
        Field("stack_count", "int32", doc="stacks in the series (1 for an ordinary series)"),
        Field(
            "stack_key",
            "string",
            doc='what sets the stack apart, e.g. "DiffusionBValue=800"; "" for a one-stack series',
        ),
        Field("b_value", "float64", nullable=True, unit="s/mm2", doc="DiffusionBValue"),
        Field(
            "echo_time", "float64", nullable=True, unit="ms", doc="EffectiveEchoTime or EchoTime"
        ),
        Field("echo_number", "int32", nullable=True, doc="EchoNumbers"),
        Field(
            "temporal_index",
            "int32",
            nullable=True,
            doc="TemporalPositionIdentifier or TemporalPositionIndex (1-based)",
        ),
        Field("trigger_time", "float64", nullable=True, unit="ms", doc="TriggerTime"),
    )


def _geometry() -> tuple[Field, ...]:
    return (
        Field(
            "spacing",
            "float64",
            (3,),
            unit="mm",
            doc="(z, y, x) voxel spacing: slice step, row, column",
        ),
        Field(
            "origin",
            "float64",
            (3,),
            unit="mm",
            doc="LPS position of the centre of voxel (0, 0, 0)",
        ),
        Field(
            "direction",
            "float64",
            (3, 3),
            doc="columns: LPS unit vectors of the (slice, row, col) axes",
        ),
        Field("affine", "float64", (4, 4), unit="mm", doc="LPS = affine @ [k, j, i, 1]"),
    )


LESION_FIELDS: tuple[Field, ...] = (
    Field("lesion_id", "string", doc="unique within its image series"),
    Field("label", "string", doc='e.g. "LIVER - 1"'),
    Field("location", "string", nullable=True, doc='e.g. "LIVER"'),
    Field("sources", "string", is_list=True, doc="RTSTRUCT, SEG, SR, TABLE"),
    Field(
        "source_series_uids", "string", is_list=True, doc="annotation series describing the lesion"
    ),
    Field(
        "origins",
        "string",
        is_list=True,
        doc='parts of the input it came from: "<series UID>/ROI <n>", ".../segment <n>", ...',
    ),
    Field("readers", "string", is_list=True, doc="who drew it (ContentCreatorName, OperatorsName)"),
    Field(
        "seed_lps",
        "float64",
        (None,),
        length=3,
        unit="mm",
        doc="seed point (x, y, z) LPS; empty when none",
    ),
    Field(
        "seed_voxel",
        "float64",
        (None,),
        length=3,
        doc="seed as fractional voxel index (k, j, i); empty when none",
    ),
    Field("voxel_count", "int64", nullable=True, doc="mask voxels"),
    Field(
        "volume_ml",
        "float64",
        nullable=True,
        unit="mL",
        doc="mask volume (or the annotation's own)",
    ),
    Field("longest_diameter_mm", "float64", nullable=True, unit="mm", doc="longest axial diameter"),
    Field(
        "bbox",
        "int32",
        (None,),
        length=6,
        doc="(k0, j0, i0, k1, j1, i1) end-exclusive; empty without mask",
    ),
    Field("suv_max", "float64", nullable=True, unit="SUVbw", doc="PET only"),
    Field("suv_mean", "float64", nullable=True, unit="SUVbw", doc="PET only"),
    Field("mtv_ml", "float64", nullable=True, unit="mL", doc="PET metabolic tumour volume"),
    Field("tlg", "float64", nullable=True, unit="SUVbw*mL", doc="PET total lesion glycolysis"),
    Field("tracking_uid", "string", nullable=True, doc="longitudinal identity (TrackingUID)"),
    Field("flags", "string", is_list=True, doc="quality flags (seed-outside-mask, ...)"),
)


def clinical_field(types: dict[str, str]) -> Field | None:
    """A record of typed clinical columns (None when the builder has no clinical data)."""
    dtypes = {
        "int": "int64",
        "float": "float64",
        "bool": "bool",
        "category": "string",
        "date_offset": "int64",
        "string": "string",
    }
    if not types:
        return None
    return Field(
        "clinical",
        "record",
        fields=tuple(
            Field(name, dtypes[kind], nullable=True, doc=kind) for name, kind in types.items()
        ),
        doc="patient-level clinical features (null when missing)",
    )


#: Configs whose examples are made from image voxels, one stack of a series at a time.
STACKED_CONFIGS = ("volume", "lesion_patches", "slices_2d")


def config_fields(
    config: str,
    *,
    image_dtype: str,
    patch_shape: tuple[int, int, int],
    clinical: dict[str, str],
    stacks: bool = False,
) -> tuple[Field, ...]:
    """The fields of one builder config; ``stacks`` adds :func:`stack_fields` after the
    identifiers of the :data:`STACKED_CONFIGS`."""
    fields = _config_fields(
        config, image_dtype=image_dtype, patch_shape=patch_shape, clinical=clinical
    )
    if not stacks or config not in STACKED_CONFIGS:
        return fields
    ids = len(id_fields())
    return (*fields[:ids], *stack_fields(), *fields[ids:])


def _config_fields(
    config: str, *, image_dtype: str, patch_shape: tuple[int, int, int], clinical: dict[str, str]
) -> tuple[Field, ...]:
    extra = tuple(f for f in (clinical_field(clinical),) if f is not None)
    if config == "volume":
        return (
            *id_fields(),
            units_field(),
            Field(
                "image",
                image_dtype,
                (None, None, None),
                unit=IMAGE_UNIT,
                doc="voxels (slices, rows, cols), flat",
            ),
            Field(
                "image_shape", "int32", (3,), doc="(slices, rows, cols) to reshape image and mask"
            ),
            *_geometry(),
            Field(
                "mask",
                "uint32",
                (None, None, None),
                doc="bit n set where lesion n is (lossless with overlaps), flat",
            ),
            Field("lesions", "records", fields=LESION_FIELDS, doc="lesion n is bit n of mask"),
            Field("no_findings", "bool", doc="an explicit 'no lesion' annotation"),
            Field("lesion_count", "int32", doc="number of lesions (entries of lesions)"),
            Field(
                "total_volume_ml", "float64", unit="mL", doc="sum of lesion volumes (tumour burden)"
            ),
            *extra,
        )
    if config == "lesions":
        return (
            *id_fields(),
            Field(
                "no_findings",
                "bool",
                doc="the row stands for a study annotated as having no lesion",
            ),
            # a no-findings row has no lesion: every scalar lesion field may be null
            *(f if f.is_list or f.shape else replace(f, nullable=True) for f in LESION_FIELDS),
            *extra,
        )
    if config == "lesion_patches":
        return (
            *id_fields(),
            units_field(),
            *LESION_FIELDS,
            Field(
                "patch",
                image_dtype,
                patch_shape,
                unit=IMAGE_UNIT,
                doc="voxels around the seed (slices, rows, cols), flat",
            ),
            Field("patch_mask", "uint8", patch_shape, doc="1 inside this lesion"),
            Field(
                "patch_shape",
                "int32",
                (3,),
                doc="(slices, rows, cols) to reshape patch and patch_mask",
            ),
            Field(
                "patch_start",
                "int32",
                (3,),
                doc="voxel index (k, j, i) of patch[0, 0, 0] in the series grid",
            ),
            Field(
                "valid_box",
                "int32",
                (6,),
                doc="(k0, j0, i0, k1, j1, i1) of the patch inside the image; the rest is padding",
            ),
            Field("pad_value", "float64", unit=IMAGE_UNIT, doc="value of padded voxels"),
            Field(
                "spacing",
                "float64",
                (3,),
                unit="mm",
                doc="(z, y, x) voxel spacing of the series: slice step, row, column",
            ),
            Field(
                "direction",
                "float64",
                (3, 3),
                doc="columns: LPS unit vectors of the series' (slice, row, col) axes",
            ),
            Field(
                "patch_origin",
                "float64",
                (3,),
                unit="mm",
                doc="LPS of the centre of patch[0, 0, 0]",
            ),
            *extra,
        )
    if config == "slices_2d":
        from tcia_trials.slices import slice_fields  # slices builds on this module

        return slice_fields(image_dtype=image_dtype, clinical=clinical)
    if config == "clinical":
        return (
            Field(
                "patient_id",
                "string",
                doc="DICOM PatientID; the sheet's id for a patient without images",
            ),
            Field("has_images", "bool", doc="the patient has an annotated image series"),
            *extra,
        )
    raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIG_NAMES)}")
