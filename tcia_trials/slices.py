"""The ``slices_2d`` config: slices through lesions as 2D images (what hub viewers display).

One example per (lesion, slice): the slice ``k`` of the image series' own grid (the acquisition
plane: axial for axial CT/PET) through the lesion, lossless, with the lesion's mask on it, the
labels of every lesion of the series on it, its 2D geometry, and a PNG preview (windowed grey
slice, lesion outlines and seed marker in colour) for the hub's image viewer.

Which slices (``slices_per_lesion``, the config's ``ConfigSpec.slices_per_lesion``):

- the *centre slice* of a lesion is the slice through its seed point (``k`` rounded half up,
  ``floor(k + 0.5)``, as the patch centre of ``lesion_patches``); a lesion without a seed point
  (or whose seed lies outside the volume) is centred on the slice where its mask has the
  largest area (lowest ``k`` on ties); a lesion with neither seed nor mask is skipped with a
  reason;
- ``1`` (the default) gives the centre slice only; ``N > 1`` gives the centre slice plus the
  ``N - 1`` other slices where the lesion's mask has the largest area (ties: nearer the centre
  slice, then lower ``k``); fewer when the mask spans fewer slices; a lesion without a mask has
  only its centre slice;
- ``None`` gives every slice that holds voxels of the lesion (and the centre slice).

Slices of one lesion come in increasing ``k``; keys are ``f"{series_uid}/{lesion_id}/{k}"``
(``f"{series_uid}/stack-{n}/{lesion_id}/{k}"`` for stack ``n`` of a multi-stack series).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tcia_trials.examples import (
    ExampleContext,
    Keyed,
    Skip,
    StackChoice,
    cast_lossless,
    id_values,
    lesion_record,
    read_series,
    with_clinical,
    with_stack,
)
from tcia_trials.schema import (
    IMAGE_UNIT,
    LESION_FIELDS,
    Field,
    clinical_field,
    id_fields,
    units_field,
)
from tcia_trials.source import geometry
from tcia_trials.source.lesions import Lesion
from tcia_trials.spec import WindowPreset

#: Colours of the PNG preview (RGB).
OUTLINE_RGB = (255, 0, 0)  # this example's lesion
OTHER_OUTLINE_RGB = (255, 255, 0)  # the other lesions of the series on the same slice
SEED_RGB = (0, 255, 0)  # the seed point, when it lies on the slice
SEED_MARKER_RADIUS = 2  # pixels: the seed is drawn as a "+" of 2 * radius + 1 pixels

#: Units in which fixed (center/width) windows are expressed, by modality.
_WINDOW_UNITS = {"CT": "HU", "PT": "SUVbw"}
#: Default windows when no preset fits: CT soft tissue; PET SUVbw 0 .. max(5, p99.5); others
#: the 0.5 and 99.5 percentiles of the slice.
DEFAULT_CT_WINDOW = (40.0, 400.0)
DEFAULT_PET_MIN_MAX_SUV = 5.0
DEFAULT_PERCENTILES = (0.5, 99.5)


def slice_fields(*, image_dtype: str, clinical: dict[str, str]) -> tuple[Field, ...]:
    """The fields of the ``slices_2d`` config.

    2D arrays vary in rows x cols between series, so ``image``, ``mask`` and ``labels`` are flat
    (the schema's variable-shape convention) next to ``image_shape``; ``preview`` has dtype
    ``"image"`` (PNG bytes; ``datasets.Image()`` in the HuggingFace output).
    """
    extra = tuple(f for f in (clinical_field(clinical),) if f is not None)
    return (
        *id_fields(),
        units_field(),
        Field(
            "slice_index",
            "int32",
            doc="k: index of the slice in the series (its position along the stacking axis)",
        ),
        Field(
            "lesion_index",
            "int32",
            doc="n: position of the lesion in its series (label n + 1 in labels, bit n of the "
            "volume config's mask)",
        ),
        *LESION_FIELDS,
        Field(
            "image",
            image_dtype,
            (None, None),
            unit=IMAGE_UNIT,
            doc="pixels (rows, cols) of slice k, flat",
        ),
        Field("image_shape", "int32", (2,), doc="(rows, cols) to reshape image, mask and labels"),
        Field("mask", "uint8", (None, None), doc="1 inside this lesion, flat"),
        Field(
            "labels",
            "uint16",
            (None, None),
            doc="n + 1 where lesion n of the series is (0 = background); where lesions overlap "
            "the lowest n wins; flat",
        ),
        Field(
            "preview",
            "image",
            doc="PNG: the slice windowed to 8-bit grey, this lesion's outline in red, other "
            "lesions' outlines in yellow, the seed point as a green cross; rows x cols as stored "
            "(anisotropic pixels are not corrected)",
        ),
        Field("window_name", "string", doc="the preset used for the preview"),
        Field("window_center", "float64", doc="window of the preview, in the image's units"),
        Field("window_width", "float64", doc="window of the preview, in the image's units"),
        Field("pixel_spacing", "float64", (2,), unit="mm", doc="(row, col) pixel spacing"),
        Field(
            "slice_origin",
            "float64",
            (3,),
            unit="mm",
            doc="LPS position of the centre of pixel (0, 0) of the slice",
        ),
        Field(
            "direction",
            "float64",
            (3, 3),
            doc="columns: LPS unit vectors of the series' (slice, row, col) axes",
        ),
        *extra,
    )


@dataclass(frozen=True)
class Window:
    """A display window: values ``center - width / 2`` .. ``center + width / 2`` map to 0 .. 255."""

    name: str
    center: float
    width: float

    @property
    def low(self) -> float:
        return self.center - self.width / 2

    @property
    def high(self) -> float:
        return self.center + self.width / 2


def window_for(
    modality: str, units: str, array: np.ndarray, presets: Sequence[WindowPreset] = ()
) -> Window:
    """The preview window of a slice.

    The first of ``presets`` for ``modality`` is used: a fixed one (center/width) only when the
    image is in the units fixed windows are expressed in (HU for CT, SUVbw for PET), a
    percentile one always (percentiles of ``array``).  Without a fitting preset: CT soft tissue
    (center 40, width 400 HU), PET in SUVbw 0 .. max(5, 99.5th percentile), anything else the
    0.5 and 99.5 percentiles of ``array``.  A percentile window of a constant slice gets width 1
    (centred on the value), so it never divides by zero.
    """
    for preset in presets:
        if preset.modality != modality:
            continue
        if preset.percentiles is not None:
            return _percentile_window(preset.name, array, preset.percentiles)
        if units == _WINDOW_UNITS.get(modality, units):
            return Window(preset.name, float(preset.center), float(preset.width))  # type: ignore[arg-type]
    if modality == "CT" and units == "HU":
        return Window("default_soft_tissue", *DEFAULT_CT_WINDOW)
    if modality == "PT" and units == "SUVbw":
        high = max(DEFAULT_PET_MIN_MAX_SUV, _percentile(array, 99.5))
        return Window("default_suv", high / 2, high)
    return _percentile_window("default_percentiles", array, DEFAULT_PERCENTILES)


def _percentile(array: np.ndarray, q: float) -> float:
    values = np.asarray(array, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else 0.0


def _percentile_window(name: str, array: np.ndarray, percentiles: tuple[float, float]) -> Window:
    low, high = (_percentile(array, q) for q in percentiles)
    if not high > low:
        return Window(name, low, 1.0)
    return Window(name, (low + high) / 2, high - low)


def windowed(array: np.ndarray, window: Window) -> np.ndarray:
    """8-bit grey: ``low`` -> 0, ``high`` -> 255, linear between, clipped (NaN -> 0)."""
    scaled = (np.asarray(array, dtype=np.float64) - window.low) / window.width
    grey = np.rint(np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0) * 255.0)
    return grey.astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~interior


def preview_png(
    image: np.ndarray,
    window: Window,
    mask: np.ndarray | None = None,
    others: Sequence[np.ndarray] = (),
    seed: tuple[int, int] | None = None,
) -> bytes:
    """PNG bytes of a 2D slice: windowed grey, the outlines of ``others`` in yellow, of ``mask``
    in red, the ``seed`` pixel ``(j, i)`` as a green cross.

    Rows x cols are as stored (no resampling): anisotropic pixels (row spacing != col spacing)
    are not corrected, so such previews look stretched; use ``pixel_spacing`` to display them
    to scale.
    """
    from PIL import Image

    grey = windowed(image, window)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    for other in others:
        rgb[outline(other)] = OTHER_OUTLINE_RGB
    if mask is not None:
        rgb[outline(mask)] = OUTLINE_RGB
    if seed is not None:
        rows, cols = grey.shape
        j, i = seed
        r = SEED_MARKER_RADIUS
        if 0 <= j < rows and 0 <= i < cols:
            rgb[max(j - r, 0) : j + r + 1, i] = SEED_RGB
            rgb[j, max(i - r, 0) : i + r + 1] = SEED_RGB
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _round(value: float) -> int:
    return int(np.floor(value + 0.5))


def slice_areas(mask: np.ndarray) -> np.ndarray:
    """Lesion pixels per slice ``k``."""
    return np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)


def lesion_slices(
    lesion: Lesion, n_slices: int, slices_per_lesion: int | None = 1
) -> list[int] | None:
    """The slices ``k`` of a lesion's examples, increasing (see the module docstring); None
    when the lesion has neither a seed point in the volume nor a non-empty mask."""
    areas = slice_areas(lesion.mask) if lesion.mask is not None else None
    centre = None
    if lesion.seed_voxel is not None:
        k = _round(lesion.seed_voxel[0])
        if 0 <= k < n_slices:
            centre = k
    if centre is None:
        if areas is None or not areas.any():
            return None
        centre = int(np.argmax(areas))
    if areas is None:
        return [centre]
    others = [int(k) for k in np.flatnonzero(areas) if k != centre]
    if slices_per_lesion is not None:
        others.sort(key=lambda k: (-int(areas[k]), abs(k - centre), k))
        others = others[: slices_per_lesion - 1]
    return sorted([centre, *others])


def label_slice(lesions: Sequence[Lesion], k: int, shape: tuple[int, int]) -> np.ndarray:
    """uint16 labels of slice ``k``: lesion ``n`` -> ``n + 1``; on overlaps the lowest ``n``."""
    labels = np.zeros(shape, dtype=np.uint16)
    for number in range(len(lesions) - 1, -1, -1):
        mask = lesions[number].mask
        if mask is not None:
            labels[mask[k]] = number + 1
    return labels


def slice_examples(
    ctx: ExampleContext,
    series_uid: str,
    *,
    slices_per_lesion: int | None = 1,
    presets: Sequence[WindowPreset] = (),
    stack: StackChoice | None = None,
) -> tuple[list[Keyed], list[Skip]]:
    """The ``slices_2d`` examples of one annotated image series, or of one ``stack`` of it
    (see the module docstring).

    ``slices_per_lesion`` is the config's ``ConfigSpec.slices_per_lesion`` (None: every slice
    holding lesion voxels) and ``presets`` its ``window_presets`` (see :func:`window_for`).
    """
    if slices_per_lesion is not None and slices_per_lesion < 1:
        raise ValueError(f"slices_per_lesion must be >= 1 or None, got {slices_per_lesion}")
    volume, annotations = read_series(ctx, series_uid, stack)
    prefix = stack.key(series_uid) if stack is not None else series_uid
    lesions = annotations.lesions
    n_slices, rows, cols = volume.shape
    patient = ctx.index.series[series_uid].patient_id
    split = ctx.split(patient)
    pixel_spacing = np.asarray(volume.spacing[1:], dtype=np.float64)
    direction = volume.direction.astype(np.float64)
    keyed: list[Keyed] = []
    skips: list[Skip] = []
    slice_cache: dict[int, tuple[np.ndarray, np.ndarray, Window]] = {}
    for number, lesion in enumerate(lesions):
        chosen = lesion_slices(lesion, n_slices, slices_per_lesion)
        if chosen is None:
            why = (
                "seed point outside the volume and no mask: no slice"
                if lesion.seed_voxel is not None
                else "no seed point and no mask: no slice"
            )
            skips.append((f"{prefix}/{lesion.lesion_id}", why))
            continue
        record = lesion_record(lesion)
        seed = (
            tuple(_round(v) for v in lesion.seed_voxel) if lesion.seed_voxel is not None else None
        )
        for k in chosen:
            if k not in slice_cache:
                pixels = volume.array[k]
                slice_cache[k] = (
                    cast_lossless(pixels, ctx.image_dtype, series_uid),
                    label_slice(lesions, k, (rows, cols)),
                    window_for(volume.modality, volume.units, pixels, presets),
                )
            image, labels, window = slice_cache[k]
            mask = lesion.mask[k] if lesion.mask is not None else np.zeros((rows, cols), dtype=bool)
            others = [
                other.mask[k]
                for m, other in enumerate(lesions)
                if m != number and other.mask is not None and other.mask[k].any()
            ]
            png = preview_png(
                volume.array[k],
                window,
                mask,
                others,
                seed[1:] if seed is not None and seed[0] == k else None,
            )
            example = with_stack(id_values(ctx, series_uid, lesion.time_point), stack)
            example.update(
                units=volume.units,
                slice_index=k,
                lesion_index=number,
                **record,
                image=image,
                image_shape=np.asarray((rows, cols), dtype=np.int32),
                mask=mask.astype(np.uint8),
                labels=labels,
                preview=png,
                window_name=window.name,
                window_center=float(window.center),
                window_width=float(window.width),
                pixel_spacing=pixel_spacing,
                slice_origin=geometry.index_to_lps(
                    volume.affine, np.asarray((k, 0, 0), dtype=np.float64)
                ),
                direction=direction,
            )
            keyed.append(
                (
                    f"{prefix}/{lesion.lesion_id}/{k}",
                    split,
                    with_clinical(ctx, example, patient),
                )
            )
    return keyed, skips
