"""A builder's spec + a download -> what every writer draws its examples from.

Both output formats (HuggingFace in :mod:`tcia_trials.build`, TFDS in :mod:`tcia_trials.tfds`)
start here, so they index, link, type the clinical sheet and split patients identically.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from tcia_trials import examples as ex
from tcia_trials.errors import ClinicalDataError, CollectionMismatchError, DownloadLayoutError
from tcia_trials.schema import Field, config_fields
from tcia_trials.source.annotations import AnnotationLinks, link_annotations
from tcia_trials.source.clinical import ClinicalTable, read_clinical_table
from tcia_trials.source.index import Index, Series, scan
from tcia_trials.spec import StackPolicy, TrialSpec

#: Patch size of ``lesion_patches`` when the spec gives none: (slices, rows, cols).
DEFAULT_PATCH_SHAPE = (32, 64, 64)


@dataclass
class Prepared:
    """An indexed download, its annotation links and clinical table, and the example context."""

    spec: TrialSpec
    source: Path
    index: Index
    links: AnnotationLinks
    table: ClinicalTable | None
    ctx: ex.ExampleContext
    annotated: list[str]  # annotated image series present in the download
    patients_with_images: set[str]

    @property
    def clinical_types(self) -> dict[str, str]:
        return self.table.schema() if self.table else {}

    def fields(self, config: str) -> tuple[Field, ...]:
        """The neutral fields of ``config`` for this download."""
        return config_fields(
            config,
            image_dtype=self.ctx.image_dtype,
            patch_shape=self.ctx.patch_shape,
            clinical=self.clinical_types,
            stacks=self.ctx.stacks.has_stack_fields,
        )


def patch_shape(spec: TrialSpec) -> tuple[int, int, int]:
    if "lesion_patches" in spec.config_names and spec.config("lesion_patches").patch_size:
        return tuple(spec.config("lesion_patches").patch_size)  # type: ignore[return-value]
    return DEFAULT_PATCH_SHAPE


def prepare(
    spec: TrialSpec,
    source: str | PathLike[str],
    *,
    clinical: str | PathLike[str] | None = None,
    patient_column: str | None = None,
    image_dtype: str | None = None,
    stacks: str | None = None,
    on_scan: Callable[[int, int], None] | None = None,
    check_collection: bool = True,
    configs: Iterable[str] | None = None,
) -> Prepared:
    """Index ``source``, link its annotations and read its clinical sheet for ``spec``.

    ``image_dtype`` fixes the image feature's dtype; by default it follows the download
    (:func:`tcia_trials.examples.image_dtype_for`).  ``stacks`` (:class:`StackPolicy` text)
    overrides the spec's stack policy.  With ``check_collection``, a download of another
    collection is refused (:func:`require_collection`).  ``configs`` (default: all of the spec's)
    are the configs to be built: a download without annotated image series raises
    :class:`DownloadLayoutError` unless they need no images.
    """
    policy = spec.stack_policy if stacks is None else StackPolicy.parse(stacks, owner="build")
    source = Path(source).expanduser()
    if not source.is_dir():
        raise DownloadLayoutError(
            f"source {source} is not a folder; pass the download folder of {spec.title}"
        )
    index = scan(source, progress=on_scan)
    if check_collection:
        require_collection(spec, index)
    links = link_annotations(index, spec.annotation_rules, spec.labels)
    table = clinical_table(spec, source, clinical, patient_column)
    annotated = [uid for uid in links.by_image if uid in index.series]
    if not annotated:
        _check_image_free(spec, source, index, links, configs)
    patients_with_images = {index.series[uid].patient_id for uid in annotated}
    patients_with_lesions = {
        index.series[uids[0]].patient_id for uids in links.without_images.values()
    }
    ctx = ex.ExampleContext(
        index=index,
        links=links,
        rules=spec.annotation_rules,
        split=spec.splits.assign,
        labels=spec.labels,
        clinical_rows=_clinical_rows(table, patients_with_images | patients_with_lesions),
        clinical_columns=tuple(table.schema()) if table else (),
        image_dtype=image_dtype or ex.image_dtype_for(index, annotated),
        patch_shape=patch_shape(spec),
        stacks=policy,
    )
    if "slices_2d" in spec.config_names:
        slices_config = spec.config("slices_2d")
        ctx.slices_per_lesion = slices_config.slices_per_lesion
        ctx.window_presets = tuple(slices_config.window_presets)
    return Prepared(spec, source, index, links, table, ctx, annotated, patients_with_images)


def _check_image_free(
    spec: TrialSpec,
    source: Path,
    index: Index,
    links: AnnotationLinks,
    configs: Iterable[str] | None,
) -> None:
    """A download without annotated image series: fine for configs that need no images when
    it has annotation series, else a clear error."""
    wanted = tuple(spec.config_names if configs is None else configs)
    needing = [c for c in wanted if c not in ex.IMAGE_FREE_CONFIGS and c != "clinical"]
    counts = (
        f"{index.summary()['series']} series indexed, {len(links.orphans)} annotation series "
        "without their images"
    )
    if not links.without_images:
        raise DownloadLayoutError(
            f"{source}: no annotated image series and no annotation series for builder "
            f"{spec.name!r} ({counts}). Is this a download of {spec.title}?"
        )
    if needing:
        raise DownloadLayoutError(
            f"{source}: no annotated image series for builder {spec.name!r} ({counts}): "
            f"config(s) {', '.join(needing)} need the images; "
            f"{', '.join(ex.IMAGE_FREE_CONFIGS)} can be built from the annotation series alone "
            f"(--config {ex.IMAGE_FREE_CONFIGS[0]})"
        )


def clinical_table(
    spec: TrialSpec,
    source: Path | None,
    clinical: str | PathLike[str] | None,
    patient_column: str | None,
) -> ClinicalTable | None:
    """The typed clinical sheet: ``clinical`` when given, else the spec's sheet inside
    ``source`` (clinical source "tcia"), else None."""
    clinical_spec = spec.clinical
    path: Path | None = Path(clinical).expanduser() if clinical else None
    if path is None and clinical_spec.source == "tcia" and clinical_spec.file_glob:
        if source is None:
            return None
        matches = sorted(source.glob(clinical_spec.file_glob))
        path = matches[0] if matches else None
        if path is None:
            raise ClinicalDataError(
                f"{source}: no clinical sheet matching {clinical_spec.file_glob!r}; "
                f"{clinical_spec.instructions}".rstrip("; ")
            )
    if path is None:
        return None
    column = patient_column or clinical_spec.patient_id_column
    if column is None:
        raise ClinicalDataError(
            f"{path}: say which column holds the patient id (patient_column=...)"
        )
    policy = "raise" if clinical_spec.on_invalid == "raise" else "null"
    return read_clinical_table(
        path,
        patient_column=column,
        types=dict(clinical_spec.column_types) if clinical_spec.column_types else None,
        sheet=clinical_spec.sheet,
        on_invalid=policy,
    )


def _clinical_rows(
    table: ClinicalTable | None, patients_with_images: set[str]
) -> dict[str, dict | None]:
    if table is None:
        return {}
    rows: dict[str, dict | None] = dict(table.rows)
    for patient in patients_with_images:
        rows[patient] = table.row(patient)
    reconciliation = table.reconcile(patients_with_images)
    for sheet_id in set(reconciliation.matched.values()) - set(reconciliation.matched):
        rows.pop(sheet_id, None)  # known under its image patient id
    return rows


# --------------------------------------------------------------------------------------------
# Does the download hold the builder's collection?
# --------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Lower-case alphanumeric words: "ACRIN-6698", "acrin_6698" and "ACRIN 6698" agree."""
    return tuple(re.findall(r"[a-z0-9]+", text.lower()))


def expected_names(spec: TrialSpec) -> tuple[str, ...]:
    """Names a download of ``spec`` carries: its sources' TCIA names and IDC collection ids,
    its trial ids (ClinicalTrialProtocolID); empty for a builder without sources (``generic``)."""
    names = [n for s in spec.sources for n in (s.name, s.idc_collection_id) if n]
    if spec.sources:
        names += spec.trial_ids
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault("".join(_words(name)), name)  # the first spelling of each
    return tuple(unique.values())


def _names_match(found: str, expected: Iterable[str]) -> bool:
    """True when ``found`` is one of ``expected`` up to case and punctuation ("ISPY2" is
    "I-SPY2"), or contains one as whole words ("ECOG-ACRIN EAY131" holds "EAY131")."""
    words = _words(found)
    for name in expected:
        want = _words(name)
        if "".join(words) == "".join(want):
            return True
        if want and any(words[i : i + len(want)] == want for i in range(len(words))):
            return True
    return False


def _series_names(series: Series) -> tuple[str, ...]:
    """The collection names a series carries (metadata table, TCIA project tag or collection
    folder, see :mod:`tcia_trials.source.index`) and its ClinicalTrialProtocolID."""
    return tuple(n for n in dict.fromkeys((series.collection, series.trial_protocol_id)) if n)


def _foreign(spec: TrialSpec, series: Series, expected: tuple[str, ...]) -> str | None:
    """Why ``series`` is not of ``spec``'s collection, or None when nothing says so."""
    names = _series_names(series)
    if names and not any(_names_match(n, expected) for n in names):
        return " / ".join(names)
    pattern = spec.clinical.patient_id_pattern
    if pattern and not re.fullmatch(pattern, series.patient_id):
        return f"PatientID {series.patient_id!r} (not of the form {pattern})"
    return None


def _builders_for(found: Iterable[str]) -> list[str]:
    """Builders whose collection names match any of ``found``."""
    from tcia_trials.registry import builder, list_builders

    found = tuple(found)
    return [
        name
        for name in list_builders()
        if (names := expected_names(builder(name))) and any(_names_match(f, names) for f in found)
    ]


def require_collection(spec: TrialSpec, index: Index) -> None:
    """Refuse a download whose series name another collection than ``spec`` reads.

    This runs before anything is built or written, so the error is cheap and leaves no output.

    A series belongs to another collection when its collection name (metadata table column
    ``Collection``, TCIA project tag, IDC ``collection_id`` or NBIA collection folder) and its
    ClinicalTrialProtocolID all differ from the spec's source names, IDC ids and trial ids, or
    when its PatientID does not fit the spec's ``clinical.patient_id_pattern``.  Series that name
    no collection are not judged.  Raises :class:`CollectionMismatchError`.
    """
    expected = expected_names(spec)
    if not expected:
        return
    foreign: Counter[str] = Counter()
    example: dict[str, Series] = {}
    for series in index.series.values():
        found = _foreign(spec, series, expected)
        if found is not None:
            foreign[found] += 1
            example.setdefault(found, series)
    if not foreign:
        return
    names = {n for series in example.values() for n in _series_names(series)}
    found_text = "; ".join(
        f"{name} in {n} of {len(index.series)} series (e.g. patient {example[name].patient_id}, "
        f"{example[name].paths[0].parent})"
        for name, n in foreign.most_common(3)
    )
    others = _builders_for(names)
    hint = f" It looks like a download for builder {', '.join(others)}." if others else ""
    raise CollectionMismatchError(
        f"{index.root} is not a download of {spec.title}: builder {spec.name!r} expects the "
        f"collection or trial {' / '.join(expected)}, found {found_text}.{hint} If this is a renamed "
        "copy of the collection, build it anyway with --allow-collection-mismatch "
        "(tt.build(..., allow_collection_mismatch=True)); nothing was written."
    )
