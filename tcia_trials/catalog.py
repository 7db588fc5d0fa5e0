"""What each builder offers: the catalog of known collections and one builder's full description.

:func:`catalog` lists every registered builder with its sources, DOIs and licenses (from its
spec) and its size (patients, image and annotation series, MB) counted in the offline IDC index
that the ``idc-index-data`` package ships; :func:`builder_info` describes one builder: spec,
configs with their features, splits and how to download the source.  Nothing here is typed by
hand: builders absent from the IDC index (the controlled-access NCTN sets, the synthetic and the
generic builders) report None, never a guess.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from tcia_trials.errors import TciaTrialsError
from tcia_trials.registry import builder, list_builders
from tcia_trials.schema import Field, config_fields
from tcia_trials.spec import LABEL_MODALITIES, SPLIT_NAMES, SourceCollection, TrialSpec

#: Modalities of series that are neither images nor the labels builders read (IDC ``Modality``
#: values: microscopy annotations, registrations, RT plans and doses, presentation states, ...).
OTHER_MODALITIES = frozenset({"ANN", "FUSION", "KO", "M3D", "PR", "REG", "RTDOSE", "RTPLAN", "RWV"})
#: The image dtype of the array features is chosen at build time from the annotated series.
IMAGE_DTYPE_AT_BUILD = "int16|float32"
_IMAGE_DTYPE_RULE = (
    "int16 (HU) when every annotated image series is CT, else float32; chosen at build time"
)
#: Columns of ``idc_index`` read; the low-cardinality ones are read dictionary-encoded (2.5x
#: faster than plain strings).
_DICTIONARY_COLUMNS = ["collection_id", "analysis_result_id", "source_DOI", "Modality"]
_INDEX_COLUMNS = [*_DICTIONARY_COLUMNS, "PatientID", "series_size_MB"]

#: A source's rows in ``idc_index``: (collection_id, lower-case source_DOI, analysis_result_id).
_SourceKey = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class CatalogSource:
    """One source of a builder, with its figures in the IDC index (None when not in it).

    ``series`` and ``size_mb`` count every series of the source (``idc_index`` rows with its
    ``collection_id``, ``source_DOI`` and ``analysis_result_id``); ``size_mb`` in megabytes.
    """

    name: str
    role: str
    doi: str | None
    license: str
    access: str
    idc_collection_id: str | None
    idc_analysis_result_id: str | None
    patients: int | None
    series: int | None
    size_mb: float | None


@dataclass(frozen=True)
class CatalogEntry:
    """One builder in the catalog.

    Attributes
    ----------
    name, title, access:
        The builder's name, title and access ("public" or "controlled").
    collections:
        TCIA names of its sources (e.g. "EAY131", "EAY131-Tumor-Annotations").
    idc_collection_ids:
        IDC ``collection_id`` s holding the sources; empty when none is in IDC.
    dois, licenses, modalities:
        Source DOIs; what each license covers (:meth:`TrialSpec.license_summary`); the DICOM
        modalities of the sources, as the spec states them.
    sources:
        :class:`CatalogSource` per source.
    patients:
        Distinct patients over all sources in the IDC index.
    image_series, image_size_mb:
        Series of image modalities (not SEG/RTSTRUCT/SR, not :data:`OTHER_MODALITIES`) in the
        image and annotation sources, and their size in MB.
    annotation_series, annotation_size_mb:
        SEG, RTSTRUCT and SR series of the image and annotation sources (clinical SR sources
        not included), and their size in MB.
    series_by_modality:
        (modality, series) for every series of the sources, including clinical and other ones.
    idc_index_version:
        Version of ``idc-index-data`` the figures come from; None (and every figure None) when
        no source is in the IDC index.
    """

    name: str
    title: str
    access: str
    collections: tuple[str, ...]
    idc_collection_ids: tuple[str, ...]
    dois: tuple[str, ...]
    licenses: str
    modalities: tuple[str, ...]
    sources: tuple[CatalogSource, ...]
    patients: int | None
    image_series: int | None
    image_size_mb: float | None
    annotation_series: int | None
    annotation_size_mb: float | None
    series_by_modality: tuple[tuple[str, int], ...] | None
    idc_index_version: str | None

    @property
    def in_idc(self) -> bool:
        """True when the figures come from the IDC index."""
        return self.idc_index_version is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``series_by_modality`` as a {modality: series} mapping)."""
        data = asdict(self)
        if self.series_by_modality is not None:
            data["series_by_modality"] = dict(self.series_by_modality)
        return data


@dataclass
class _Figures:
    patients: set[tuple[str, str]]
    by_modality: dict[str, tuple[int, float]]  # modality -> (series, MB)


def _source_key(source: SourceCollection) -> _SourceKey | None:
    if source.idc_collection_id is None:
        return None
    doi = source.doi.lower() if source.doi else None
    return source.idc_collection_id, doi, source.idc_analysis_result_id


def _index_version() -> str:
    try:
        import idc_index_data
    except ImportError as exc:
        raise TciaTrialsError(
            "the catalog counts patients and series in the offline IDC index, which is not "
            "installed: pip install idc-index-data"
        ) from exc
    return idc_index_data.__version__


@cache
def _read_figures() -> dict[_SourceKey, _Figures]:
    """Patients, series and MB per modality of the sources of every builder in IDC, from
    ``idc_index.parquet`` (read once per process)."""
    import idc_index_data
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    keys = {
        key
        for name in list_builders()
        for source in builder(name).sources
        if (key := _source_key(source)) is not None
    }
    figures = {key: _Figures(set(), {}) for key in keys}
    # ParquetFile, not pq.read_table: no pyarrow.dataset scan of a single file (measured faster)
    parquet = pq.ParquetFile(
        idc_index_data.IDC_INDEX_PARQUET_FILEPATH, read_dictionary=_DICTIONARY_COLUMNS
    )
    table = parquet.read(columns=_INDEX_COLUMNS)
    wanted = pa.array(sorted({key[0] for key in keys}), pa.string())
    table = table.filter(pc.is_in(table["collection_id"], value_set=wanted))
    table = pa.table(
        {
            name: pc.cast(table[name], pa.string()) if name in _DICTIONARY_COLUMNS else table[name]
            for name in _INDEX_COLUMNS
        }
    )
    table = table.set_column(
        _INDEX_COLUMNS.index("source_DOI"), "source_DOI", pc.utf8_lower(table["source_DOI"])
    )
    group = ["collection_id", "source_DOI", "analysis_result_id"]
    sizes = table.group_by([*group, "Modality"]).aggregate(
        [("series_size_MB", "count"), ("series_size_MB", "sum")]
    )
    for row in sizes.to_pylist():
        key = (row["collection_id"], row["source_DOI"], row["analysis_result_id"])
        if key in figures:
            count, size = row["series_size_MB_count"], row["series_size_MB_sum"] or 0.0
            figures[key].by_modality[row["Modality"]] = (count, size)
    patients = table.group_by(group).aggregate([("PatientID", "distinct")])
    for row in patients.to_pylist():
        key = (row["collection_id"], row["source_DOI"], row["analysis_result_id"])
        if key in figures:
            figures[key].patients.update((key[0], p) for p in row["PatientID_distinct"])
    return figures


def _entry(spec: TrialSpec, figures: dict[_SourceKey, _Figures], version: str) -> CatalogEntry:
    keys = [_source_key(s) for s in spec.sources]
    in_idc = any(key is not None for key in keys)
    sources = []
    patients: set[tuple[str, str]] = set()
    by_modality: dict[str, int] = {}
    images = [0, 0.0]
    annotations = [0, 0.0]
    for source, key in zip(spec.sources, keys, strict=True):
        found = figures[key] if key is not None else None
        if found is not None:
            patients |= found.patients
            for modality, (count, size) in found.by_modality.items():
                by_modality[modality] = by_modality.get(modality, 0) + count
                if source.role == "clinical" or modality in OTHER_MODALITIES:
                    continue
                tally = annotations if modality in LABEL_MODALITIES else images
                tally[0] += count
                tally[1] += size
        sources.append(
            CatalogSource(
                name=source.name,
                role=source.role,
                doi=source.doi,
                license=source.license.short_name,
                access=source.access,
                idc_collection_id=source.idc_collection_id,
                idc_analysis_result_id=source.idc_analysis_result_id,
                patients=None if found is None else len(found.patients),
                series=None if found is None else sum(c for c, _ in found.by_modality.values()),
                size_mb=None
                if found is None
                else round(sum(s for _, s in found.by_modality.values()), 3),
            )
        )
    modalities = tuple(dict.fromkeys(m for s in spec.sources for m in s.modalities))
    return CatalogEntry(
        name=spec.name,
        title=spec.title,
        access=spec.access,
        collections=tuple(s.name for s in spec.sources),
        idc_collection_ids=tuple(dict.fromkeys(k[0] for k in keys if k is not None)),
        dois=spec.dois,
        licenses=spec.license_summary(),
        modalities=modalities,
        sources=tuple(sources),
        patients=len(patients) if in_idc else None,
        image_series=images[0] if in_idc else None,
        image_size_mb=round(images[1], 3) if in_idc else None,
        annotation_series=annotations[0] if in_idc else None,
        annotation_size_mb=round(annotations[1], 3) if in_idc else None,
        series_by_modality=tuple(sorted(by_modality.items())) if in_idc else None,
        idc_index_version=version if in_idc else None,
    )


def catalog(names: Iterable[str] | None = None) -> list[CatalogEntry]:
    """The catalog: one :class:`CatalogEntry` per builder (each once), sorted by name.

    Parameters
    ----------
    names
        Builders to describe (any spelling :func:`tcia_trials.builder` accepts); default all
        registered builders (:func:`tcia_trials.list_builders`).

    Raises
    ------
    UnknownBuilderError
        For a name no builder has (the message lists close matches).
    TciaTrialsError
        When the ``idc-index-data`` package is not installed.
    """
    chosen = [builder(n) for n in (list_builders() if names is None else names)]
    specs = sorted({spec.name: spec for spec in chosen}.values(), key=lambda s: s.name)
    if any(_source_key(s) is not None for spec in specs for s in spec.sources):
        version, figures = _index_version(), _read_figures()
    else:  # only builders in IDC need the index
        version, figures = "", {}
    return [_entry(spec, figures, version) for spec in specs]


def _field_info(field: Field) -> dict[str, Any]:
    info: dict[str, Any] = {"name": field.name, "dtype": field.dtype}
    if field.shape:
        info["shape"] = list(field.shape)
    if field.is_list:
        info["list"] = True
    if field.nullable:
        info["nullable"] = True
    if field.unit:
        info["unit"] = field.unit
    if field.doc:
        info["doc"] = field.doc
    if field.fields:
        info["fields"] = [_field_info(f) for f in field.fields]
    return info


def builder_info(name: str) -> dict[str, Any]:
    """Everything about one builder, JSON-ready.

    Keys: name, title, description, version, release_notes (version -> text), trial_ids,
    homepage, access, tags, dois, licenses, sources (title, role, DOI, license, modalities, IDC
    ids, note), citation (BibTeX), configs (name, description, features: name, dtype, shape,
    unit, doc, nested fields), image_dtype, clinical, labels, splits (fractions, salt),
    download (instructions) and catalog (the :class:`CatalogEntry` as a dict).

    Raises
    ------
    UnknownBuilderError
        For a name no builder has (the message lists close matches).
    """
    spec = builder(name)
    clinical_types = spec.clinical.column_types
    configs = [
        {
            "name": config.name,
            "description": config.description,
            "features": [
                _field_info(f)
                for f in config_fields(
                    config.name,
                    image_dtype=IMAGE_DTYPE_AT_BUILD,
                    # only lesion_patches has (and uses) a patch size
                    patch_shape=config.patch_size or (0, 0, 0),
                    clinical=clinical_types,
                )
            ],
        }
        for config in spec.configs
    ]
    if spec.clinical.source == "none":
        clinical = "none"
    elif spec.clinical.infer_types:
        clinical = "column types inferred from the sheet at build time"
    else:
        clinical = f"{len(clinical_types)} declared columns"
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "version": spec.version,
        "release_notes": spec.notes,
        "trial_ids": list(spec.trial_ids),
        "homepage": spec.homepage,
        "access": spec.access,
        "tags": list(spec.tags),
        "dois": list(spec.dois),
        "licenses": spec.license_summary(),
        "sources": [
            {
                "name": s.name,
                "title": s.title,
                "role": s.role,
                "doi": s.doi,
                "doi_url": s.doi_url,
                "license": {
                    "short_name": s.license.short_name,
                    "url": s.license.url,
                    "long_name": s.license.long_name,
                },
                "access": s.access,
                "modalities": list(s.modalities),
                "idc_collection_id": s.idc_collection_id,
                "idc_analysis_result_id": s.idc_analysis_result_id,
                "note": s.note,
            }
            for s in spec.sources
        ],
        "citation": spec.citation,
        "configs": configs,
        "image_dtype": _IMAGE_DTYPE_RULE,
        "clinical": {
            "source": spec.clinical.source,
            "columns": clinical,
            "instructions": spec.clinical.instructions,
        },
        "labels": {
            "modalities": list(spec.labels.modalities),
            "include_pattern": spec.labels.include_pattern,
            "exclude_pattern": spec.labels.exclude_pattern,
        },
        "splits": {
            **{split: getattr(spec.splits, split) for split in SPLIT_NAMES},
            "salt": spec.splits.salt,
        },
        "download": spec.manual_download_instructions,
        "catalog": catalog([spec.name])[0].to_dict(),
    }


# --------------------------------------------------------------------------------------------
# Text for the command line
# --------------------------------------------------------------------------------------------

_NOT_IN_IDC = "not in IDC index"
_WIDTH = 100


def _size(mb: float) -> str:
    """Megabytes as MB, GB or TB (decimal, as the IDC index counts them)."""
    for unit, scale in (("TB", 1e6), ("GB", 1e3)):
        if mb >= scale:
            return f"{mb / scale:.1f} {unit}"
    return f"{mb:.1f} MB"


def format_catalog(entries: Iterable[CatalogEntry]) -> str:
    """The catalog as an aligned text table, one builder per line, and a footer naming the
    version of the IDC index the figures come from."""
    entries = list(entries)
    headers = ["NAME", "ACCESS", "PATIENTS", "IMAGE SERIES", "IMAGE SIZE", "ANN. SERIES"]
    headers += ["ANN. SIZE", "LICENSE", "DOI"]
    first, last = 2, 7  # the figures: columns first .. last - 1, right-aligned
    rows: list[list[str]] = []
    for e in entries:
        figures = [_NOT_IN_IDC, "", "", "", ""]
        if e.in_idc:
            figures = [
                f"{e.patients:,}",
                f"{e.image_series:,}",
                _size(e.image_size_mb or 0.0),
                f"{e.annotation_series:,}",
                _size(e.annotation_size_mb or 0.0),
            ]
        licenses = ", ".join(dict.fromkeys(s.license for s in e.sources)) or "-"
        rows.append([e.name, e.access, *figures, licenses, ", ".join(e.dois) or "-"])
    pairs = list(zip(entries, rows, strict=True))
    widths = [
        max(
            len(r[i])
            for r in [headers, *(r for e, r in pairs if e.in_idc or not first <= i < last)]
        )
        for i in range(len(headers))
    ]
    block = sum(widths[first:last]) + 2 * (last - first - 1)
    widths[first] += max(0, len(_NOT_IN_IDC) - block)
    block = max(block, len(_NOT_IN_IDC))

    def line(cells: list[str], in_idc: bool = True) -> str:
        if not in_idc:  # one merged cell over the figures
            cells = [*cells[:first], cells[first], *cells[last:]]
            sizes = [*widths[:first], block, *widths[last:]]
            return "  ".join(c.ljust(w) for c, w in zip(cells, sizes, strict=True)).rstrip()
        return "  ".join(
            c.rjust(w) if first <= i < last else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(headers)]
    lines += [line(row, e.in_idc) for e, row in pairs]
    versions = sorted({e.idc_index_version for e in entries if e.idc_index_version})
    if versions:
        lines += [
            "",
            f"Patients, series and sizes: IDC index (idc-index-data {', '.join(versions)}). "
            "Details: tcia-trials info NAME.",
        ]
    return "\n".join(lines)


def _wrap(text: str, indent: str, then: str | None = None) -> list[str]:
    """``text`` wrapped to the line width, its first line indented by ``indent``, the others by
    ``then`` (default ``indent``)."""
    return textwrap.wrap(
        text,
        _WIDTH,
        initial_indent=indent,
        subsequent_indent=indent if then is None else then,
        break_on_hyphens=False,
    )


def _wrap_items(label: str, items: list[str], indent: str) -> list[str]:
    """``label`` and ``items`` joined by "; ", wrapped between items (within an item only when
    it is longer than a line)."""
    lines: list[str] = []
    current = label
    for i, item in enumerate(items):
        token = item + (";" if i < len(items) - 1 else "")
        if current and len(indent) + len(current) + 1 + len(token) > _WIDTH:
            lines.append(indent + current)
            current = ""
        if len(indent) + len(token) > _WIDTH:
            lines += _wrap(token, indent)[:-1]
            token = _wrap(token, indent)[-1].strip()
        current = f"{current} {token}" if current else token
    return [*lines, indent + current] if current else lines


def _feature(info: dict[str, Any]) -> str:
    """``name dtype[shape]`` (``?``: variable), ``[]`` for lists, record fields in braces."""
    text = info["name"] + " " + info["dtype"]
    if info.get("shape"):
        text += "[" + ",".join("?" if d is None else str(d) for d in info["shape"]) + "]"
    if info.get("list"):
        text += "[]"
    if "fields" in info:
        text += " {" + ", ".join(f["name"] for f in info["fields"]) + "}"
    return text


def format_info(info: dict[str, Any]) -> str:
    """:func:`builder_info` as text for the terminal."""
    out = [f"{info['name']} {info['version']}: {info['title']}"]
    for label, value in (
        ("Trial ids", ", ".join(info["trial_ids"])),
        ("Homepage", info["homepage"]),
        ("Access", info["access"]),
        ("Licenses", info["licenses"]),
        ("Tags", ", ".join(info["tags"])),
    ):
        if value:
            out += _wrap(f"{label}: {value}", "", "  ")
    out += ["", "Sources:"]
    for s in info["sources"] or [{"name": "none (given at build time)"}]:
        if "role" not in s:
            out.append(f"  {s['name']}")
            continue
        idc = s["idc_collection_id"]
        if idc and s["idc_analysis_result_id"]:
            idc += f" / analysis result {s['idc_analysis_result_id']}"
        out += _wrap(f"{s['name']} ({s['role']}, {s['access']}): {s['title']}", "  ", "    ")
        out += _wrap(
            f"DOI {s['doi'] or '-'}; license {s['license']['short_name']}; modalities "
            f"{', '.join(s['modalities']) or 'not stated'}; IDC {idc or '-'}",
            "    ",
        )
    entry = info["catalog"]
    if entry["idc_index_version"]:
        by_modality = ", ".join(f"{m} {n:,}" for m, n in entry["series_by_modality"].items())
        out += _wrap(
            f"In the IDC index (idc-index-data {entry['idc_index_version']}): "
            f"{entry['patients']:,} patients; image series {entry['image_series']:,} "
            f"({_size(entry['image_size_mb'])}); annotation series "
            f"{entry['annotation_series']:,} ({_size(entry['annotation_size_mb'])}); "
            f"by modality: {by_modality}.",
            "  ",
        )
    else:
        out.append("  Not in the IDC index: no patient or series counts.")
    out += ["", "Release notes:"]
    out += [f"  {version}  {text}" for version, text in info["release_notes"].items()]
    out += ["", "Configs:"]
    for config in info["configs"]:
        out.append(f"  {config['name']}")
        out += _wrap(config["description"], "    ")
        out += _wrap_items("features:", [_feature(f) for f in config["features"]], "    ")
    out += _wrap(f"image dtype: {info['image_dtype']}", "  ", "    ")
    clinical = info["clinical"]
    out += ["", f"Clinical: source {clinical['source']}, {clinical['columns']}."]
    if clinical["instructions"]:
        out += _wrap(clinical["instructions"], "  ")
    splits = info["splits"]
    fractions = ", ".join(f"{n} {splits[n]:.2f}" for n in SPLIT_NAMES)
    out += ["", f"Splits (patient-level, salt {splits['salt']!r}): {fractions}"]
    out += ["", "Download:"] + [f"  {line}".rstrip() for line in info["download"].splitlines()]
    if info["citation"]:
        out += ["", "Citation:"] + [f"  {line}".rstrip() for line in info["citation"].splitlines()]
    return "\n".join(out)
