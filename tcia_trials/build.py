"""``tt.build``: a builder's spec + a download -> versioned dataset folders."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from tcia_trials import examples as ex
from tcia_trials import hf
from tcia_trials.errors import ClinicalDataError, DownloadLayoutError
from tcia_trials.registry import builder
from tcia_trials.schema import config_fields
from tcia_trials.source.annotations import link_annotations
from tcia_trials.source.clinical import ClinicalTable, read_clinical_table
from tcia_trials.source.index import scan
from tcia_trials.spec import TrialSpec

if TYPE_CHECKING:
    import datasets

#: Configs this version writes.
BUILT_CONFIGS = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")
#: "hf": Parquet shards + hub card; "arrow": also the ``save_to_disk`` layout under
#: ``<out>/<name>/arrow/<config>`` for ``datasets.load_from_disk`` (made from the Parquet shards).
FORMATS = ("hf", "arrow")


@dataclass
class BuildResult:
    """What a build wrote and what it skipped."""

    name: str
    version: str
    out: Path
    configs: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> examples
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (config, what, why)
    orphans: dict[str, str] = field(default_factory=dict)  # annotation series without images
    excluded: dict[str, str] = field(default_factory=dict)  # series that are not labels
    clinical_schema: dict[str, str] = field(default_factory=dict)
    images_without_clinical: tuple[str, ...] = ()
    clinical_without_images: tuple[str, ...] = ()
    seconds: float = 0.0


def build(
    name: str,
    source: str | PathLike[str],
    out: str | PathLike[str],
    *,
    formats: Iterable[str] = ("hf",),
    config: str | Iterable[str] | None = None,
    num_proc: int = 1,
    clinical: str | PathLike[str] | None = None,
    patient_column: str | None = None,
    dataset_name: str | None = None,
) -> BuildResult:
    """Build a dataset from a download.

    Parameters
    ----------
    name:
        Builder name (``tcia_trials.list_builders()``).
    source:
        The download folder (NBIA / TCIA Data Retriever, IDC, or plain DICOM folders).
    out:
        Output folder; ``out/<name>`` receives the HuggingFace dataset.
    formats:
        "hf" (Parquet shards + hub card) and/or "arrow" (also the ``save_to_disk`` layout).
    config:
        One config name or several; all the builder's buildable configs by default.
    num_proc:
        Worker processes reading series in parallel (the output is identical).
    clinical, patient_column:
        The clinical sheet (csv/xlsx) and its patient-id column when the builder's clinical
        data are supplied by the user (NCTN Data Archive sheets, ``generic``).
    dataset_name:
        The dataset's own name (folder ``out/<dataset_name>`` and card title), e.g. for a
        ``generic`` build of a download that is none of the known collections.
    """
    started = time.perf_counter()
    spec = builder(name)
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown output format(s) {unknown}; this version writes {', '.join(FORMATS)}"
        )
    configs = _configs(spec, config)
    source = Path(source).expanduser()
    if not source.is_dir():
        raise DownloadLayoutError(
            f"source {source} is not a folder; pass the download folder of {spec.title}"
        )
    index = scan(source)
    links = link_annotations(index, spec.annotation_rules, spec.labels)
    table = _clinical_table(spec, source, clinical, patient_column)
    annotated = [uid for uid in links.by_image if uid in index.series]
    patients_with_images = {index.series[uid].patient_id for uid in annotated}
    if not annotated:
        raise DownloadLayoutError(
            f"{source}: no annotated image series for builder {spec.name!r} ({index.summary()['series']} series "
            f"indexed, {len(links.orphans)} annotation series without their images). Is this a download of "
            f"{spec.title}?"
        )
    ctx = ex.ExampleContext(
        index=index,
        links=links,
        rules=spec.annotation_rules,
        split=spec.splits.assign,
        labels=spec.labels,
        clinical_rows=_clinical_rows(table, patients_with_images),
        clinical_columns=tuple(table.schema()) if table else (),
        image_dtype=ex.image_dtype_for(index, annotated),
        patch_shape=tuple(spec.config("lesion_patches").patch_size or (32, 64, 64))
        if "lesion_patches" in spec.config_names
        else (32, 64, 64),
    )
    if "slices_2d" in spec.config_names:
        slices_config = spec.config("slices_2d")
        ctx.slices_per_lesion = slices_config.slices_per_lesion
        ctx.window_presets = tuple(slices_config.window_presets)
    if dataset_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", dataset_name):
        raise ValueError(
            f"dataset_name {dataset_name!r}: use letters, digits, '_', '-' and '.' only"
        )
    target = Path(out).expanduser() / (dataset_name or spec.name)
    target.mkdir(parents=True, exist_ok=True)
    result = BuildResult(
        spec.name, spec.version, target, orphans=dict(links.orphans), excluded=dict(links.excluded)
    )
    if table is not None:
        result.clinical_schema = table.schema()
        reconciliation = table.reconcile(patients_with_images)
        result.images_without_clinical = reconciliation.images_without_clinical
        result.clinical_without_images = reconciliation.clinical_without_images
    clinical_types = table.schema() if table else {}
    fields = {
        name: config_fields(
            name, image_dtype=ctx.image_dtype, patch_shape=ctx.patch_shape, clinical=clinical_types
        )
        for name in configs
    }
    writers: dict[str, hf.ConfigWriter] = {}
    try:
        writers = {name: hf.ConfigWriter(target, name, fields[name]) for name in configs}
        per_series = tuple(name for name in configs if name != "clinical")
        for name, (_key, split, example) in ex.iter_examples(ctx, per_series, num_proc=num_proc):
            writers[name].add(split, example)  # every series is read once for all its configs
        if "clinical" in writers:
            for _key, split, example in ex.clinical_examples(ctx, patients_with_images):
                writers["clinical"].add(split, example)
        for name in configs:
            writer = writers.pop(name)
            splits = writer.finish()
            _record(target, spec, name, writer.features, splits, ctx.skips.get(name, []), result)
    finally:
        for writer in writers.values():
            writer.abort()
    _write_card(target, spec, dataset_name)
    if "arrow" in formats:
        for config_name in configs:
            hf.write_arrow(target, config_name)
    result.seconds = time.perf_counter() - started
    return result


def _record(
    target: Path,
    spec: TrialSpec,
    config: str,
    features: datasets.Features,
    splits: dict[str, hf.SplitRecord],
    skips: list[tuple[str, str]],
    result: BuildResult,
) -> None:
    """The config's build record (features, splits, checksums, skips) and its summary."""
    files = [name for record in splits.values() for name in record.files]
    hf.write_build_record(
        target,
        config,
        {
            "builder": spec.name,
            "version": spec.version,
            "config": config,
            "features": features.to_dict(),
            "splits": [
                {"name": r.name, "num_examples": r.num_examples, "num_bytes": r.num_bytes}
                for r in splits.values()
            ],
            "checksums": hf.file_checksums(target, files),
            "skipped": [{"what": what, "why": why} for what, why in skips],
            "clinical_schema": result.clinical_schema,
        },
    )
    result.configs[config] = {r.name: r.num_examples for r in splits.values()}
    result.skipped.extend((config, what, why) for what, why in skips)


def _configs(spec: TrialSpec, config: str | Iterable[str] | None) -> tuple[str, ...]:
    wanted = (
        tuple(c for c in spec.config_names if c in BUILT_CONFIGS)
        if config is None
        else ((config,) if isinstance(config, str) else tuple(config))
    )
    for name in wanted:
        if name not in spec.config_names:
            raise ValueError(
                f"builder {spec.name!r} has no config {name!r}; its configs: {', '.join(spec.config_names)}"
            )
        if name not in BUILT_CONFIGS:
            raise ValueError(
                f"config {name!r} is specified but not produced by this version (built: {', '.join(BUILT_CONFIGS)})"
            )
    if "clinical" in wanted and spec.clinical.source == "none":
        wanted = tuple(c for c in wanted if c != "clinical")
    return wanted


def _clinical_table(
    spec: TrialSpec, source: Path, clinical: str | PathLike[str] | None, patient_column: str | None
) -> ClinicalTable | None:
    clinical_spec = spec.clinical
    path: Path | None = Path(clinical).expanduser() if clinical else None
    if path is None and clinical_spec.source == "tcia" and clinical_spec.file_glob:
        matches = sorted(source.glob(clinical_spec.file_glob))
        path = matches[0] if matches else None
        if path is None:
            raise ClinicalDataError(
                f"{source}: no clinical sheet matching {clinical_spec.file_glob!r}; {clinical_spec.instructions}".rstrip(
                    "; "
                )
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


def _write_card(target: Path, spec: TrialSpec, dataset_name: str | None) -> None:
    records = hf.read_build_records(target)
    title = f"{dataset_name} ({spec.title})" if dataset_name else spec.title
    yaml_header = hf.card_yaml(
        records,
        license_id=_hub_license(spec),
        pretty_name=title,
        tags=("medical", "radiology", "clinical-trial", *spec.tags),
    )
    configs = ", ".join(f"`{name}`" for name in records)
    schema = next((r["clinical_schema"] for r in records.values() if r.get("clinical_schema")), {})
    declared = dict(spec.clinical.column_types)
    clinical = "".join(
        f"\n| `{column}` | {kind} | {'declared' if column in declared else 'inferred from the sheet'} |"
        for column, kind in schema.items()
    )
    clinical_section = (
        f"\n## Clinical features\n\n| column | type | origin |\n|---|---|---|{clinical}\n"
        if schema
        else ""
    )
    body = f"""# {title}

{spec.description}

Built by [tcia-trials](https://pypi.org/project/tcia-trials/) builder `{spec.name}` version {spec.version}
({spec.current_release_notes}). Configs: {configs}.

## Load

```python
import datasets
ds = datasets.load_dataset("path/to/{spec.name}", "volume", split="train")
ds = ds.with_format("numpy", dtype=None)   # keep int16 / uint8 / uint32 as stored
ex = ds[0]
image = ex["image"].reshape(ex["image_shape"])   # (slices, rows, cols); geometry in ex["affine"] (LPS mm)
```

{clinical_section}
## License

{spec.license_summary()}

## Citation

```bibtex
{spec.citation}
```
"""
    hf.write_card(target, yaml_header, body)
    (target / ".tcia_trials" / "spec.json").write_text(
        json.dumps({"name": spec.name, "version": spec.version, "title": spec.title}, indent=2)
        + "\n"
    )


def _hub_license(spec: TrialSpec) -> str:
    names = {s.license.short_name.lower() for s in spec.sources}
    if len(names) == 1:
        (only,) = names
        return only.replace(" ", "-")
    return "other"
