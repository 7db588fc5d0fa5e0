"""``tt.build``: a builder's spec + a download -> versioned dataset folders."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from tcia_trials import examples as ex
from tcia_trials import hf
from tcia_trials.errors import StrictBuildError, TciaTrialsError
from tcia_trials.prepare import Prepared, prepare
from tcia_trials.registry import builder
from tcia_trials.report import ConversionReport
from tcia_trials.spec import License, TrialSpec, license_named, with_user_sources

if TYPE_CHECKING:
    import datasets

#: Configs this version writes.
BUILT_CONFIGS = ("volume", "lesions", "lesion_patches", "slices_2d", "clinical")
#: "hf": Parquet shards + hub card; "arrow": also the ``save_to_disk`` layout under
#: ``<out>/<name>/arrow/<config>`` for ``datasets.load_from_disk`` (made from the Parquet shards).
#: "tfds": TFDS datasets (TFRecord or array_record shards) beside them.
FORMATS = ("hf", "arrow", "tfds")
#: Stages reported to ``build(progress=...)``, with the unit they count.
STAGES = {"scan": "file", "series": "series", "checksums": "shard", "arrow": "config"}
#: Present while a build swaps its output in; a folder holding it is not a complete dataset.
INCOMPLETE = Path(".tcia_trials") / "INCOMPLETE"

#: ``progress(stage, done, total)``: a build's progress (see :data:`STAGES`).
Progress = Callable[[str, int, int], None]


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
    report: ConversionReport | None = None  # also written as out/<name>/report.json
    bytes_written: int = 0  # Parquet shards
    tfds: dict[str, dict[str, int]] = field(default_factory=dict)  # config -> split -> examples
    tfds_dir: Path | None = None  # the TFDS data_dir
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
    strict: bool = False,
    progress: Progress | None = None,
    tfds_file_format: str = "tfrecord",
    allow_collection_mismatch: bool = False,
    license: str | None = None,
    license_url: str | None = None,
    citation: str | PathLike[str] | None = None,
    stacks: str | None = None,
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
        "hf" (Parquet shards + hub card), "arrow" (also the ``save_to_disk`` layout) and/or
        "tfds" (TFDS datasets ``out/<builder>/<config>/<version>``, for ``tfds.load(...,
        data_dir=out)``; needs the ``tfds`` or ``tf`` extra).
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
    strict:
        Raise :class:`~tcia_trials.errors.StrictBuildError` (listing them) when the conversion
        report has any warning (a skipped file, series or example, an index problem, ...); then
        nothing is written.
    progress:
        Called as ``progress(stage, done, total)`` for the stages of :data:`STAGES`.
    tfds_file_format:
        "tfrecord" (needs TensorFlow) or "array_record" (random access, no TensorFlow).
    allow_collection_mismatch:
        Build a download whose series name another collection than the builder reads (a
        renamed local copy); by default it is refused with
        :class:`~tcia_trials.errors.CollectionMismatchError` before anything is written.
    license, license_url, citation:
        For a builder without sources (``generic``): the data's license (a short name or hub id
        of :data:`~tcia_trials.spec.KNOWN_LICENSES`, or any name with its URL) and its citation
        (BibTeX text or a ``.bib`` file, one entry with title and DOI per dataset).  They reach
        the card, its YAML header and the TFDS metadata.
    stacks:
        How image series holding several stacks (multi-b-value DWI, DCE phases, echoes) become
        examples: "single", "each", "index:N" or e.g. "b_value=800"
        (:class:`~tcia_trials.spec.StackPolicy`); default: the builder's ``TrialSpec.stacks``.

    The output appears only when complete: every config is written to staging folders and
    swapped in at the end, under an :data:`INCOMPLETE` marker; an interrupted or failed build
    leaves the previous build as it was, or no folder when there was none.
    """
    started = time.perf_counter()
    spec = builder(name)
    check_collection = bool(spec.sources) and not allow_collection_mismatch
    if license is not None or license_url is not None or citation is not None:
        spec = _with_user_sources(spec, dataset_name, license, license_url, citation)
    if stacks is not None:
        spec = dataclasses.replace(spec, stacks=stacks)  # validated, and shown in the card
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"unknown output format(s) {unknown}; this version writes {', '.join(FORMATS)}"
        )
    configs = _configs(spec, config)
    if dataset_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", dataset_name):
        raise ValueError(
            f"dataset_name {dataset_name!r}: use letters, digits, '_', '-' and '.' only"
        )
    progress = progress or _no_progress
    prepared = prepare(
        spec,
        source,
        clinical=clinical,
        patient_column=patient_column,
        on_scan=lambda done, total: progress("scan", done, total),
        check_collection=check_collection,
        configs=configs,
    )
    links, table = prepared.links, prepared.table
    target = Path(out).expanduser() / (dataset_name or spec.name)
    missing = [folder for folder in (target, *target.parents) if not folder.exists()]
    target.mkdir(parents=True, exist_ok=True)
    result = BuildResult(
        spec.name, spec.version, target, orphans=dict(links.orphans), excluded=dict(links.excluded)
    )
    if table is not None:
        result.clinical_schema = table.schema()
        reconciliation = table.reconcile(prepared.patients_with_images)
        result.images_without_clinical = reconciliation.images_without_clinical
        result.clinical_without_images = reconciliation.clinical_without_images
    if {"hf", "arrow"} & set(formats):
        _write_hf(
            prepared,
            configs,
            target,
            missing,
            formats,
            dataset_name,
            strict,
            num_proc,
            progress,
            result,
        )
    if "tfds" in formats:
        _write_tfds(
            prepared,
            configs,
            Path(out).expanduser(),
            target,
            missing,
            tfds_file_format,
            strict,
            num_proc,
            result,
            after_hf="hf" in formats or "arrow" in formats,
        )
    result.seconds = time.perf_counter() - started
    return result


def _write_hf(
    prepared: Prepared,
    configs: tuple[str, ...],
    target: Path,
    missing: list[Path],
    formats: tuple[str, ...],
    dataset_name: str | None,
    strict: bool,
    num_proc: int,
    progress: Progress,
    result: BuildResult,
) -> None:
    """The HuggingFace dataset: every series read once for all configs, committed at the end."""
    spec, ctx = prepared.spec, prepared.ctx
    fields = {name: prepared.fields(name) for name in configs}
    writers: dict[str, hf.ConfigWriter] = {}
    try:
        writers = {name: hf.ConfigWriter(target, name, fields[name]) for name in configs}
        per_series = tuple(name for name in configs if name != "clinical")
        series = ctx.series_for(per_series)
        series_done = itertools.count(1)
        progress("series", 0, len(series))
        examples = ex.iter_examples(
            ctx,
            per_series,
            num_proc=num_proc,
            on_series=lambda: progress("series", next(series_done), len(series)),
            series=series,
        )
        with contextlib.closing(examples):  # stops the worker processes on Ctrl-C
            for name, (_key, split, example) in examples:
                writers[name].add(split, example)  # every series is read once for all its configs
        if "clinical" in writers:
            for _key, split, example in ex.clinical_examples(ctx, prepared.patients_with_images):
                writers["clinical"].add(split, example)
        splits = {name: writer.finish() for name, writer in writers.items()}
        for name, config_splits in splits.items():
            result.configs[name] = {r.name: r.num_examples for r in config_splits.values()}
            result.skipped.extend((name, what, why) for what, why in ctx.skips.get(name, []))
        report = _report(prepared, target, result, strict)
        shards = sum(
            len(r.files) for config_splits in splits.values() for r in config_splits.values()
        )
        hashed = itertools.count(1)
        records = {
            name: _record(
                spec,
                name,
                writer.features,
                splits[name],
                writer.checksums(lambda: progress("checksums", next(hashed), shards)),
                ctx,
                result.clinical_schema,
            )
            for name, writer in writers.items()
        }
        _commit(target, spec, dataset_name, formats, writers, records, report, progress)
    except BaseException:  # Ctrl-C included: no half-written dataset
        for writer in writers.values():
            writer.abort()
        if missing:  # made by this build: remove the topmost
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise
    result.bytes_written = sum(
        (target / name).stat().st_size
        for record in records.values()
        for name in record["checksums"]
    )


def _report(
    prepared: Prepared, target: Path, result: BuildResult, strict: bool
) -> ConversionReport:
    """The conversion report of what was converted; with ``strict``, any warning raises."""
    spec, ctx = prepared.spec, prepared.ctx
    report = result.report = ConversionReport.assemble(
        builder=spec.name,
        version=spec.version,
        dataset=target.name,
        index=prepared.index,
        links=prepared.links,
        notes=ctx.notes,
        skips=ctx.skips,
        configs=result.configs,
        images_without_clinical=result.images_without_clinical,
        clinical_without_images=result.clinical_without_images,
    )
    if strict and report.warnings:
        raise StrictBuildError(
            f"strict build of {spec.name}: {len(report.warnings)} warning(s), so nothing was "
            f"written to {target}:\n" + "\n".join(report.warning_lines()),
            report,
        )
    return report


def _write_tfds(
    prepared: Prepared,
    configs: tuple[str, ...],
    data_dir: Path,
    target: Path,
    missing: list[Path],
    file_format: str,
    strict: bool,
    num_proc: int,
    result: BuildResult,
    *,
    after_hf: bool,
) -> None:
    """The TFDS datasets ``data_dir/<builder>/<config>/<version>`` (each written atomically by
    TFDS).  Alone, this build's conversion report comes from them; with ``strict``, any warning
    removes them again."""
    if importlib.util.find_spec("tensorflow_datasets") is None:
        raise TciaTrialsError(
            "format 'tfds' needs tensorflow-datasets: pip install 'tcia-trials[tf]' (TFRecord, "
            "tfds.load) or 'tcia-trials[tfds]' (array_record, no TensorFlow)"
        )
    from tcia_trials.tfds import write_tfds

    if after_hf:  # a fresh context: the HF pass's notes and skips are in its report already
        fresh = dataclasses.replace(prepared.ctx, skips={}, notes={}, _cached=None)
        prepared = dataclasses.replace(prepared, ctx=fresh)
    written = [data_dir / prepared.spec.name / config / prepared.spec.version for config in configs]
    try:
        result.tfds = write_tfds(
            prepared, configs, data_dir, file_format=file_format, num_proc=num_proc
        )
        result.tfds_dir = data_dir
        if not after_hf:
            result.configs = dict(result.tfds)
            for config in configs:
                result.skipped.extend(
                    (config, what, why) for what, why in prepared.ctx.skips.get(config, [])
                )
            _report(prepared, target, result, strict).write(target)
    except BaseException:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)
        raise


def _with_user_sources(
    spec: TrialSpec,
    dataset_name: str | None,
    license: str | None,
    license_url: str | None,
    citation: str | PathLike[str] | None,
) -> TrialSpec:
    """``spec`` with the license and citation given at build time (see :func:`build`)."""
    if license is None:
        raise ValueError(
            f"builder {spec.name!r}: give the license of the data (license=..., --license) with "
            "its citation or license URL"
        )
    bibtex = ""
    if citation is not None:
        text = str(citation)
        bibtex = text if "@" in text else _read_citation(Path(text).expanduser())
    return with_user_sources(
        spec,
        name=dataset_name or spec.name,
        license=license_named(license, license_url),
        citation=bibtex,
    )


def _read_citation(path: Path) -> str:
    """The BibTeX of a citation file."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"citation {str(path)!r}: neither BibTeX text ('@misc{{key, ...}}') nor a readable "
            f"BibTeX file ({exc})"
        ) from None


def _no_progress(stage: str, done: int, total: int) -> None:
    """The default ``progress``: report nothing."""


def _commit(
    target: Path,
    spec: TrialSpec,
    dataset_name: str | None,
    formats: tuple[str, ...],
    writers: dict[str, hf.ConfigWriter],
    records: dict[str, dict],
    report: ConversionReport,
    progress: Progress,
) -> None:
    """Swap the finished configs in, then write their build records, the card, the Arrow
    copies and the report, under the :data:`INCOMPLETE` marker (the old card goes first)."""
    marker = target / INCOMPLETE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("A build was interrupted while writing this folder; build it again.\n")
    (target / "README.md").unlink(missing_ok=True)
    for name, writer in writers.items():
        writer.commit()
        hf.write_build_record(target, name, records[name])
    _write_card(target, spec, dataset_name)
    if "arrow" in formats:
        for done, name in enumerate(writers, start=1):
            hf.write_arrow(target, name)
            progress("arrow", done, len(writers))
    report.write(target)
    marker.unlink()


def _record(
    spec: TrialSpec,
    config: str,
    features: datasets.Features,
    splits: dict[str, hf.SplitRecord],
    checksums: dict[str, str],
    ctx: ex.ExampleContext,
    clinical_schema: dict[str, str],
) -> dict:
    """The config's build record: its source, features, splits, checksums and skips."""
    return {
        "builder": spec.name,
        "version": spec.version,
        "config": config,
        "source": str(ctx.index.root),
        "features": features.to_dict(),
        "splits": [
            {
                "name": r.name,
                "num_examples": r.num_examples,
                "num_bytes": r.num_bytes,
                "files": list(r.files),
            }
            for r in splits.values()
        ],
        "checksums": checksums,
        "skipped": [{"what": what, "why": why} for what, why in ctx.skips.get(config, [])],
        "clinical_schema": clinical_schema,
    }


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


def _write_card(target: Path, spec: TrialSpec, dataset_name: str | None) -> None:
    # imported here: ``python -m tcia_trials.cards`` must not find cards imported by the package
    from tcia_trials import cards

    cards.write_card(target, spec, dataset_name)
    record = {"name": spec.name, "version": spec.version, "title": spec.title}
    if spec.sources and not builder(spec.name).sources:  # license and citation given at build
        record |= {
            "license": dataclasses.asdict(spec.sources[0].license),
            "citation": spec.citation,
        }
    (target / ".tcia_trials" / "spec.json").write_text(json.dumps(record, indent=2) + "\n")


def built_spec(dataset_dir: Path) -> TrialSpec:
    """The spec a dataset folder ``out/<name>`` was built with, including the license and
    citation given at build time."""
    record = json.loads((dataset_dir / ".tcia_trials" / "spec.json").read_text())
    spec = builder(record["name"])
    if "license" not in record:
        return spec
    return with_user_sources(
        spec,
        name=dataset_dir.name,
        license=License(**record["license"]),
        citation=record["citation"],
    )
