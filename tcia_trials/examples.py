"""The one place where a study becomes examples, in the neutral schema (writer-agnostic).

Every generator yields ``(key, split, example)`` in a deterministic order (patients, then
studies, then series, then lesions, sorted); ``key`` is stable across runs and machines.
Images are read one series at a time, so memory stays bounded by the largest series.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from tcia_trials.errors import MultipleStacksError, TciaTrialsError
from tcia_trials.schema import STACKED_CONFIGS
from tcia_trials.source import geometry
from tcia_trials.source.annotations import (
    AnnotationLinks,
    Annotations,
    read_annotations,
    read_lesions_without_images,
)
from tcia_trials.source.index import Index
from tcia_trials.source.lesions import Lesion
from tcia_trials.source.volume import SeriesStacks, Volume, read_stacks
from tcia_trials.spec import AnnotationRules, LabelSpec, StackPolicy

Example = dict[str, object]

#: Padding of patches that cross the image border, by modality (documented in the card).
PAD_VALUES = {"CT": -1024.0}
#: Configs whose examples need no images: they are also made for annotation series whose image
#: series is not in the download (:attr:`AnnotationLinks.without_images`).
IMAGE_FREE_CONFIGS = ("lesions",)


@dataclass
class SeriesNotes:
    """What converting one annotated image series found, for the conversion report."""

    examples: dict[str, int] = field(default_factory=dict)  # config -> examples made
    failed: dict[str, str] = field(default_factory=dict)  # config -> why it made none
    warnings: set[str] = field(default_factory=set)  # volume warnings, annotation problems
    used: set[str] = field(default_factory=set)  # annotation series that gave lesions
    unused: dict[str, str] = field(default_factory=dict)  # annotation series -> why not
    skipped_parts: dict[str, str] = field(default_factory=dict)  # ROI/segment/group -> why
    # lesion id -> (label, quality flags of every reading)
    lesions: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)

    def add(self, annotations: Annotations, volume: Volume | None = None) -> None:
        """Note one reading of the series (with its images, or its annotations alone)."""
        self.warnings.update(volume.warnings if volume is not None else ())
        self.warnings.update(annotations.problems)
        self.skipped_parts.update(annotations.skipped)
        for source in annotations.sources:
            if source.status == "used":
                self.used.add(source.series_uid)
            else:
                self.unused[source.series_uid] = source.reason or "gave no lesion"
        for lesion in annotations.lesions:
            _, flags = self.lesions.get(lesion.lesion_id, ("", frozenset()))
            self.lesions[lesion.lesion_id] = (lesion.label, flags | set(lesion.flags))


@dataclass
class ExampleContext:
    """What every config's examples are made from."""

    index: Index
    links: AnnotationLinks
    rules: AnnotationRules
    split: Callable[[str], str]  # patient id -> split name
    labels: LabelSpec | None = None
    clinical_rows: Mapping[str, Mapping[str, object] | None] = field(default_factory=dict)
    clinical_columns: tuple[str, ...] = ()
    image_dtype: str = "float32"
    patch_shape: tuple[int, int, int] = (32, 64, 64)
    slices_per_lesion: int | None = 1  # slices_2d: None = every slice holding the lesion
    window_presets: tuple = ()  # slices_2d: the builder's WindowPresets
    stacks: StackPolicy = field(default_factory=StackPolicy)  # multi-stack series -> examples
    skips: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # config -> (what, why)
    notes: dict[str, SeriesNotes] = field(default_factory=dict)  # image series -> notes
    _cached: tuple[tuple[str, int | None], tuple[Volume, Annotations] | TciaTrialsError] | None = (
        field(default=None, repr=False)
    )
    _stacks: tuple[str, SeriesStacks] | None = field(default=None, repr=False)  # its headers

    def clinical(self, patient_id: str) -> dict[str, object] | None:
        if not self.clinical_columns:
            return None
        row = self.clinical_rows.get(patient_id) or {}
        return {column: row.get(column) for column in self.clinical_columns}

    def annotated_series(self) -> list[str]:
        """Annotated image series, ordered by patient, study and series UID."""
        return self.series_for(())

    def series_for(self, configs: Iterable[str]) -> list[str]:
        """The series whose examples ``configs`` make, ordered by patient, study and series UID:
        the annotated image series, and for :data:`IMAGE_FREE_CONFIGS` also the image series
        (or orphan annotation series) of :attr:`AnnotationLinks.without_images`."""
        uids = [uid for uid in self.links.by_image if uid in self.index.series]
        if set(configs) & set(IMAGE_FREE_CONFIGS):
            uids.extend(self.links.without_images)
        return sorted(uids, key=lambda uid: (*self.owner(uid)[:2], uid))

    def has_images(self, series_uid: str) -> bool:
        """Whether the image series is in the download."""
        return series_uid in self.links.by_image and series_uid in self.index.series

    def owner(self, series_uid: str) -> tuple[str, str, str]:
        """(patient id, study UID, modality) of an image series; for one that is not in the
        download, the patient and study of its first annotation series and modality ""."""
        if self.has_images(series_uid):
            series = self.index.series[series_uid]
            return series.patient_id, series.study_uid, series.modality
        first = self.index.series[self.links.without_images[series_uid][0]]
        return first.patient_id, first.study_uid, ""


def image_dtype_for(index: Index, series_uids: list[str]) -> str:
    """int16 when every annotated series is CT (HU), else float32 (lossless for int16, uint16
    and float32 values alike)."""
    return (
        "int16"
        if series_uids and all(index.series[u].modality == "CT" for u in series_uids)
        else "float32"
    )


def id_values(ctx: ExampleContext, series_uid: str, time_point: str | None) -> Example:
    patient_id, study_uid, modality = ctx.owner(series_uid)
    series = ctx.index.series.get(series_uid)
    return {
        "patient_id": patient_id,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "time_point": time_point or (series.time_point if series is not None else None),
        "modality": modality,
    }


def with_clinical(ctx: ExampleContext, example: Example, patient_id: str) -> Example:
    clinical = ctx.clinical(patient_id)
    if clinical is not None:
        example["clinical"] = clinical
    return example


def lesion_record(lesion: Lesion) -> Example:
    """A lesion in the neutral schema (missing values are None; absent points are empty)."""
    return {
        "lesion_id": lesion.lesion_id,
        "label": lesion.label,
        "location": lesion.location,
        "sources": list(lesion.sources),
        "source_series_uids": list(lesion.source_series_uids),
        "origins": list(lesion.origins),
        "readers": list(lesion.readers),
        "seed_lps": list(lesion.seed_lps) if lesion.seed_lps is not None else [],
        "seed_voxel": list(lesion.seed_voxel) if lesion.seed_voxel is not None else [],
        "voxel_count": lesion.voxel_count,
        "volume_ml": lesion.volume_ml,
        "longest_diameter_mm": lesion.longest_diameter_mm,
        "bbox": list(lesion.bbox) if lesion.bbox is not None else [],
        "suv_max": lesion.suv_max,
        "suv_mean": lesion.suv_mean,
        "mtv_ml": lesion.mtv_ml,
        "tlg": lesion.tlg,
        "tracking_uid": lesion.tracking_uid,
        "flags": list(lesion.flags),
    }


def cast_lossless(array: np.ndarray, dtype: str, series_uid: str) -> np.ndarray:
    if array.dtype == np.dtype(dtype):
        return array
    cast = array.astype(dtype)
    if not np.array_equal(cast, array):
        raise TciaTrialsError(
            f"series {series_uid}: its {array.dtype} voxels do not fit the dataset's {dtype} image "
            "feature losslessly"
        )
    return cast


def _geometry(volume: Volume) -> Example:
    return {
        "spacing": np.asarray(volume.spacing, dtype=np.float64),
        "origin": np.asarray(volume.origin, dtype=np.float64),
        "direction": volume.direction.astype(np.float64),
        "affine": volume.affine,
    }


Keyed = tuple[str, str, Example]  # (key, split, example)
Skip = tuple[str, str]  # (what, why)


@dataclass(frozen=True)
class StackChoice:
    """One stack of an image series that a build makes examples of, with its stack features
    (:func:`tcia_trials.schema.stack_fields`)."""

    index: int  # 0-based, as read_volume(..., stack=N) numbers it
    count: int  # stacks in the series
    label: str  # "" for a one-stack series
    descriptors: Mapping[str, float | int | None]  # b_value, echo_time, ...

    def key(self, series_uid: str) -> str:
        """The key prefix of its examples: the series uid, plus ``/stack-N`` when it has
        several stacks."""
        return series_uid if self.count == 1 else f"{series_uid}/stack-{self.index}"

    def values(self) -> Example:
        """The stack features of its examples."""
        return {
            "stack_index": self.index,
            "stack_count": self.count,
            "stack_key": self.label,
            **self.descriptors,
        }


def _series_stacks(ctx: ExampleContext, series_uid: str) -> SeriesStacks:
    """The series' headers grouped into stacks, read once per series."""
    if ctx._stacks is None or ctx._stacks[0] != series_uid:
        ctx._stacks = None  # release the previous series' headers first
        ctx._stacks = (series_uid, read_stacks(ctx.index, series_uid))
    return ctx._stacks[1]


def _listing(series: SeriesStacks) -> str:
    return "; ".join(f"stack {n}: {s.describe()}" for n, s in enumerate(series.stacks))


def stacks_to_build(ctx: ExampleContext, series_uid: str) -> list[StackChoice]:
    """The stacks of an image series that ``ctx.stacks`` (a policy other than "single") builds.

    Raises
    ------
    MultipleStacksError
        The policy chooses one stack and the series has none or several that fit it.
    """
    series = _series_stacks(ctx, series_uid)
    count = len(series.stacks)
    choices = [
        StackChoice(n, count, stack.label if count > 1 else "", stack.descriptors())
        for n, stack in enumerate(series.stacks)
    ]
    policy = ctx.stacks
    if count == 1 or policy.mode == "each":
        return choices
    if policy.mode == "index" and policy.index is not None and policy.index < count:
        return [choices[policy.index]]
    if policy.mode == "key":
        fits = [c for c in choices if _matches(c.descriptors.get(str(policy.key)), policy.value)]
        if len(fits) == 1:
            return fits
        found = f"{len(fits)} of its stacks have it" if fits else "none of its stacks has it"
    else:
        found = "it has no such stack"
    raise MultipleStacksError(
        f"series {series_uid}: stack policy {str(policy)!r} chooses one stack, but {found}; "
        f"its {count} stacks: {_listing(series)}"
    )


def _matches(value: float | int | None, wanted: float | None) -> bool:
    """A stack feature equals a policy's number (relative tolerance 1e-6: binary FD values)."""
    return value is not None and wanted is not None and math.isclose(value, wanted, rel_tol=1e-6)


def read_series(
    ctx: ExampleContext, series_uid: str, stack: StackChoice | None = None
) -> tuple[Volume, Annotations]:
    """The volume of one stack of the series (``None``: the series, which must be a single
    stack) and its annotations on it, read once for all the configs of a build (a failure too:
    every config gets the same error without reading the series again)."""
    number = stack.index if stack is not None and stack.count > 1 else None
    if ctx._cached is None or ctx._cached[0] != (series_uid, number):
        ctx._cached = None  # release the previous series before reading the next
        series = _series_stacks(ctx, series_uid)
        if stack is None and len(series.stacks) > 1:
            raise MultipleStacksError(
                f"series {series_uid}: it holds {len(series.stacks)} stacks "
                f"({_listing(series)}); build them with a stack policy: stacks='each' "
                "(--stacks each), one of them with 'index:N' or by its features, e.g. "
                "'b_value=800' (or TrialSpec.stacks)"
            )
        try:
            volume = series.volume(number)
            annotations = read_annotations(
                ctx.index,
                series_uid,
                volume=volume,
                rules=ctx.rules,
                labels=ctx.labels,
                links=ctx.links,
            )
        except TciaTrialsError as exc:
            ctx._cached = ((series_uid, number), exc)
            raise
        ctx._cached = ((series_uid, number), (volume, annotations))
        ctx.notes.setdefault(series_uid, SeriesNotes()).add(annotations, volume)
    read = ctx._cached[1]
    if isinstance(read, TciaTrialsError):
        raise read
    return read


def with_stack(example: Example, stack: StackChoice | None) -> Example:
    """``example`` with the stack features of ``stack`` (unchanged when None)."""
    if stack is not None:
        example.update(stack.values())
    return example


def volume_examples(
    ctx: ExampleContext, series_uid: str, stack: StackChoice | None = None
) -> tuple[list[Keyed], list[Skip]]:
    """One example per annotated image series (or per ``stack`` of it): the whole volume, its
    lesion bit planes, lesions."""
    volume, annotations = read_series(ctx, series_uid, stack)
    time_point = next((les.time_point for les in annotations.lesions if les.time_point), None)
    example = with_stack(id_values(ctx, series_uid, time_point), stack)
    example.update(
        units=volume.units,
        image=cast_lossless(volume.array, ctx.image_dtype, series_uid),
        image_shape=np.asarray(volume.shape, dtype=np.int32),
        **_geometry(volume),
        mask=annotations.bitmask(max_planes=32).astype(np.uint32),  # the uint32 feature
        lesions=[lesion_record(lesion) for lesion in annotations.lesions],
        no_findings=annotations.no_findings,
        lesion_count=annotations.lesion_count,
        total_volume_ml=annotations.total_volume_ml,
    )
    patient = str(example["patient_id"])
    key = stack.key(series_uid) if stack is not None else series_uid
    return [(key, ctx.split(patient), with_clinical(ctx, example, patient))], []


def lesion_examples(ctx: ExampleContext, series_uid: str) -> tuple[list[Keyed], list[Skip]]:
    """One row per lesion; a study annotated as having no lesion gives one row with
    ``no_findings`` and null lesion fields.

    With the image series in the download the rows are the lesions of the ``volume`` config
    (measured on the image grid, :func:`read_series`); without it, or when it cannot be read,
    they come from the annotation series alone (no voxel count, bounding box or seed voxel).
    """
    annotations = _lesions_of(ctx, series_uid)
    patient = ctx.owner(series_uid)[0]
    rows = [
        (lesion.lesion_id, lesion_record(lesion), lesion.time_point)
        for lesion in annotations.lesions
    ]
    if not rows and annotations.no_findings:
        empty = dict.fromkeys(lesion_record(Lesion("", "")))
        empty.update(
            sources=[],
            source_series_uids=[],
            origins=[],
            readers=[],
            seed_lps=[],
            seed_voxel=[],
            bbox=[],
            flags=[],
        )
        rows = [("no-findings", empty, None)]
    keyed = []
    for lesion_id, record, time_point in rows:
        example = {
            **id_values(ctx, series_uid, time_point),
            "no_findings": lesion_id == "no-findings",
            **record,
        }
        keyed.append(
            (f"{series_uid}/{lesion_id}", ctx.split(patient), with_clinical(ctx, example, patient))
        )
    return keyed, []


def _lesions_of(ctx: ExampleContext, series_uid: str) -> Annotations:
    """The series' lesions on its image grid when it is there and readable, else from its
    annotation series alone."""
    notes = ctx.notes.setdefault(series_uid, SeriesNotes())
    if ctx.has_images(series_uid):
        try:
            return read_series(ctx, series_uid)[1]
        except TciaTrialsError as exc:
            notes.warnings.add(
                f"lesions read from the annotations alone, without the images: {exc}"
            )
    annotations = read_lesions_without_images(
        ctx.index, series_uid, rules=ctx.rules, labels=ctx.labels, links=ctx.links
    )
    notes.add(annotations)
    return annotations


def patch_examples(
    ctx: ExampleContext, series_uid: str, stack: StackChoice | None = None
) -> tuple[list[Keyed], list[Skip]]:
    """One example per lesion (per ``stack`` of the series): a fixed-size patch centred on its
    seed point (or, without a seed, on the centre of its mask's bounding box), with the
    lesion's mask crop."""
    volume, annotations = read_series(ctx, series_uid, stack)
    pad = PAD_VALUES.get(volume.modality, 0.0)
    patient = ctx.index.series[series_uid].patient_id
    prefix = stack.key(series_uid) if stack is not None else series_uid
    keyed: list[Keyed] = []
    skips: list[Skip] = []
    for lesion in annotations.lesions:
        centre = _patch_centre(lesion)
        if centre is None:
            skips.append(
                (f"{prefix}/{lesion.lesion_id}", "no seed point and no mask: no patch centre")
            )
            continue
        patch, start, valid = crop_patch(volume.array, centre, ctx.patch_shape, pad)
        mask = lesion.mask if lesion.mask is not None else np.zeros(volume.shape, dtype=bool)
        patch_mask, _, _ = crop_patch(mask, centre, ctx.patch_shape, False)
        example = with_stack(id_values(ctx, series_uid, lesion.time_point), stack)
        example.update(
            units=volume.units,
            **lesion_record(lesion),
            patch=cast_lossless(patch, ctx.image_dtype, series_uid),
            patch_mask=patch_mask.astype(np.uint8),
            patch_shape=np.asarray(ctx.patch_shape, dtype=np.int32),
            patch_start=np.asarray(start, dtype=np.int32),
            valid_box=np.asarray(valid, dtype=np.int32),
            pad_value=float(pad),
            spacing=np.asarray(volume.spacing, dtype=np.float64),
            direction=volume.direction.astype(np.float64),
            patch_origin=geometry.index_to_lps(volume.affine, np.asarray(start, dtype=np.float64)),
        )
        keyed.append(
            (
                f"{prefix}/{lesion.lesion_id}",
                ctx.split(patient),
                with_clinical(ctx, example, patient),
            )
        )
    return keyed, skips


def _patch_centre(lesion: Lesion) -> tuple[int, int, int] | None:
    if lesion.seed_voxel is not None:
        return tuple(int(np.floor(v + 0.5)) for v in lesion.seed_voxel)  # type: ignore[return-value]
    if lesion.bbox is not None:
        k0, j0, i0, k1, j1, i1 = lesion.bbox
        return ((k0 + k1 - 1) // 2, (j0 + j1 - 1) // 2, (i0 + i1 - 1) // 2)
    return None


def crop_patch(
    array: np.ndarray, centre: tuple[int, int, int], shape: tuple[int, int, int], pad: float | bool
) -> tuple[np.ndarray, tuple[int, int, int], tuple[int, ...]]:
    """A ``shape`` patch of ``array`` whose centre voxel (index ``shape // 2``) is ``centre``.

    Returns the patch (padded with ``pad`` outside the array), the array index of its first
    voxel, and the valid region inside the patch as ``(k0, j0, i0, k1, j1, i1)``.
    """
    start = tuple(c - s // 2 for c, s in zip(centre, shape, strict=True))
    patch = np.full(shape, pad, dtype=array.dtype)
    source, target, valid = [], [], []
    for axis, (first, size) in enumerate(zip(start, shape, strict=True)):
        lo = min(max(first, 0), array.shape[axis])
        hi = max(min(first + size, array.shape[axis]), lo)
        source.append(slice(lo, hi))
        target.append(slice(lo - first, hi - first))
        valid.append((min(max(lo - first, 0), size), min(max(hi - first, 0), size)))
    patch[tuple(target)] = array[tuple(source)]
    return patch, start, tuple(v[0] for v in valid) + tuple(v[1] for v in valid)


def clinical_examples(
    ctx: ExampleContext, patients_with_images: set[str]
) -> Iterator[tuple[str, str, Example]]:
    """One row per patient of the clinical sheet (and per imaged patient without a row)."""
    for patient in sorted(set(ctx.clinical_rows) | patients_with_images):
        example = {"patient_id": patient, "has_images": patient in patients_with_images}
        yield patient, ctx.split(patient), with_clinical(ctx, example, patient)


def _slices_2d_examples(
    ctx: ExampleContext, series_uid: str, stack: StackChoice | None = None
) -> tuple[list[Keyed], list[Skip]]:
    from tcia_trials.slices import slice_examples  # slices builds on this module

    return slice_examples(
        ctx,
        series_uid,
        slices_per_lesion=ctx.slices_per_lesion,
        presets=ctx.window_presets,
        stack=stack,
    )


PER_SERIES = {
    "volume": volume_examples,
    "lesions": lesion_examples,
    "lesion_patches": patch_examples,
    "slices_2d": _slices_2d_examples,
}

_worker_context: ExampleContext | None = None

#: One series: its uid, (config, examples, skips) per config, and its notes.
Results = tuple[str, list[tuple[str, list[Keyed], list[Skip]]], SeriesNotes]


def _init_worker(ctx: ExampleContext) -> None:
    global _worker_context
    _worker_context = ctx


def _run(task: tuple[tuple[str, ...], str]) -> Results:
    configs, series_uid = task
    assert _worker_context is not None
    return examples_of_series(_worker_context, configs, series_uid)


def examples_of_series(ctx: ExampleContext, configs: tuple[str, ...], series_uid: str) -> Results:
    """A series' examples for every config (each stack's volume read once), or recorded skips
    naming the series and the problem, with what reading it found (:class:`SeriesNotes`).

    With a stack policy other than "single" (``ctx.stacks``), the :data:`STACKED_CONFIGS` make
    examples of each stack the policy chooses (:func:`stacks_to_build`), stack by stack."""
    made: dict[str, tuple[list[Keyed], list[Skip]]] = {config: ([], []) for config in configs}
    notes = ctx.notes.setdefault(series_uid, SeriesNotes())
    stacked = ctx.stacks.has_stack_fields
    if not ctx.has_images(series_uid):
        configs = tuple(config for config in configs if config in IMAGE_FREE_CONFIGS)
    try:
        for config in configs:
            if not (stacked and config in STACKED_CONFIGS):
                _add(ctx, made, notes, config, series_uid, None)
        per_stack = [c for c in configs if stacked and c in STACKED_CONFIGS]
        for stack in _stacks_or_failure(ctx, made, notes, per_stack, series_uid):
            for config in per_stack:
                _add(ctx, made, notes, config, series_uid, stack)
    finally:
        ctx._cached = ctx._stacks = None
    results = [(config, *made[config]) for config in configs]
    return series_uid, results, ctx.notes.pop(series_uid)


def _stacks_or_failure(
    ctx: ExampleContext,
    made: dict[str, tuple[list[Keyed], list[Skip]]],
    notes: SeriesNotes,
    configs: list[str],
    series_uid: str,
) -> list[StackChoice]:
    """The stacks to build for ``configs``, or none and a recorded failure of each config."""
    if not configs:
        return []
    try:
        return stacks_to_build(ctx, series_uid)
    except TciaTrialsError as exc:
        for config in configs:
            made[config][1].append((series_uid, str(exc)))
            notes.failed[config] = str(exc)
            notes.examples[config] = 0
        return []


def _add(
    ctx: ExampleContext,
    made: dict[str, tuple[list[Keyed], list[Skip]]],
    notes: SeriesNotes,
    config: str,
    series_uid: str,
    stack: StackChoice | None,
) -> None:
    """Make one config's examples of the series (or of one stack of it) and note them."""
    examples, skips = made[config]
    try:
        found, skipped = (
            PER_SERIES[config](ctx, series_uid)
            if stack is None
            else PER_SERIES[config](ctx, series_uid, stack)  # type: ignore[call-arg]
        )
    except TciaTrialsError as exc:
        what = series_uid if stack is None else stack.key(series_uid)
        found, skipped = [], [(what, str(exc))]
        notes.failed[config] = str(exc)
    examples.extend(found)
    skips.extend(skipped)
    notes.examples[config] = len(examples)


def iter_examples(
    ctx: ExampleContext,
    configs: tuple[str, ...],
    *,
    num_proc: int = 1,
    on_series: Callable[[], None] | None = None,
    series: Iterable[str] | None = None,
) -> Iterator[tuple[str, Keyed]]:
    """``(config, (key, split, example))`` of several configs, series by series in deterministic
    order, each series read once; skips go to ``ctx.skips[config]``, what reading each series
    found to ``ctx.notes[series_uid]``, and ``on_series()`` is called after each series.

    With ``num_proc > 1`` series are read in worker processes; the order stays the same.
    ``series`` restricts the run to those series (default: :meth:`ExampleContext.series_for`
    the configs, in order); series without images make only :data:`IMAGE_FREE_CONFIGS`.
    """
    tasks = [(configs, uid) for uid in (ctx.series_for(configs) if series is None else series)]
    if num_proc <= 1:
        results: Iterable[Results] = (examples_of_series(ctx, configs, uid) for _, uid in tasks)
        yield from _flatten(ctx, results, on_series)
        return
    import multiprocessing

    with contextlib.ExitStack() as stack:
        with _sigint_deferred():
            pool = stack.enter_context(
                multiprocessing.get_context("spawn").Pool(
                    num_proc, initializer=_init_worker, initargs=(ctx,)
                )
            )
        yield from _flatten(ctx, pool.imap(_run, tasks), on_series)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """While worker processes start: they inherit a blocked SIGINT, so Ctrl-C is the parent's
    alone to handle (it then stops them); a Ctrl-C the parent receives meanwhile (in any of its
    threads) is raised only at the end, never halfway through handing the workers their work."""
    previous = signal.getsignal(signal.SIGINT)
    if (
        previous is None
        or not hasattr(signal, "pthread_sigmask")  # Windows
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # now: starting it later would unblock SIGINT
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda number, _frame: received.append(number))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _flatten(
    ctx: ExampleContext, results: Iterable[Results], on_series: Callable[[], None] | None
) -> Iterator[tuple[str, Keyed]]:
    for series_uid, per_series, notes in results:
        ctx.notes[series_uid] = notes
        for config, examples, skips in per_series:
            ctx.skips.setdefault(config, []).extend(skips)
            for keyed in examples:
                yield config, keyed
        if on_series is not None:
            on_series()
