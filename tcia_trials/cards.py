"""Dataset cards: a builder's hub card (``README.md``) rendered from its spec, and from a build.

Without a build, :func:`render_card` gives the card checked in under
``dataset_cards/<builder>/README.md`` (regenerate with ``python -m tcia_trials.cards --write
dataset_cards`` or ``make cards``; a test fails when they are stale).  With a build's records and
statistics (:func:`write_card`, called by ``tt.build``) the card also carries the hub's
``dataset_info`` (features, splits, sizes), patients per split, lesion counts, the lesion volume
distribution and a preview montage.  Output is deterministic: no dates, no absolute paths.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tcia_trials import hf
from tcia_trials.registry import builder, list_builders
from tcia_trials.schema import LESION_FIELDS, Field, config_fields
from tcia_trials.spec import (
    LICENSE_UNKNOWN_NAME,
    SPLIT_NAMES,
    USER_SOURCE_NOTE,
    SourceCollection,
    TrialSpec,
)

if TYPE_CHECKING:
    import pyarrow as pa

#: TCIA's Data Usage Policies and Restrictions.
TCIA_POLICY_URL = "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/"
#: The publication TCIA's data usage policy asks every user of TCIA data to cite.
TCIA_CITATION = """\
@article{clark2013tcia,
  author = {Clark, K. and Vendt, B. and Smith, K. and Freymann, J. and Kirby, J. and Koppel, P. and Moore, S. and Phillips, S. and Maffitt, D. and Pringle, M. and Tarbox, L. and Prior, F.},
  title = {The Cancer Imaging Archive (TCIA): Maintaining and Operating a Public Information Repository},
  journal = {Journal of Digital Imaging},
  year = {2013},
  volume = {26},
  number = {6},
  pages = {1045--1057},
  doi = {10.1007/s10278-013-9622-7},
}"""
#: License ids of the hub (https://huggingface.co/docs/hub/repositories-licenses) that a
#: source license's short name maps to (lower case, spaces as hyphens: "CC BY 4.0" -> cc-by-4.0).
HUB_LICENSE_IDS = frozenset(
    {
        "apache-2.0",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc0-1.0",
        "mit",
    }
)
#: The hub's size categories, by powers of ten of the number of examples from 10^3 up.
SIZE_CATEGORIES = (
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
)
#: Hub task categories of every builder (tumor masks on images).
TASK_CATEGORIES = ("image-segmentation",)
#: Hub tags of every builder, besides the spec's own.
BASE_TAGS = ("medical", "radiology", "clinical-trial")
#: Where the build and load snippets put the output folder.
OUT = "out"
#: The image dtype written in spec-only cards (a build picks one: ``examples.image_dtype_for``).
SPEC_IMAGE_DTYPE = "int16 or float32"
#: Files generated per builder folder under ``dataset_cards/``.
CARD_FILES = ("README.md", "CITATIONS.bib", "TAGS.txt")
#: TFDS catalog tags of every builder (TFDS accepts only its own vocabulary); TAGS.txt and the
#: TFDS builders' metadata.
TFDS_TAGS = (
    "content.data-type.3d",
    "content.data-type.image",
    "content.subject.health",
    "ml.task.image-segmentation",
)
REGENERATE = "python -m tcia_trials.cards --write dataset_cards"

_LESION_NAMES = frozenset(f.name for f in LESION_FIELDS)
_SOURCE_DIR = re.compile(r"--source\s+(\S+)")
#: Lines reshaping the flat arrays of a config in the HuggingFace snippet.
_RESHAPES = {
    "volume": (
        'image = ex["image"].reshape(ex["image_shape"])  # (slices, rows, cols)',
        'mask = ex["mask"].reshape(ex["image_shape"])  # lesion n: (mask >> n) & 1',
    ),
    "lesion_patches": ('patch = ex["patch"].reshape(ex["patch_shape"])  # (slices, rows, cols)',),
    "slices_2d": ('image = ex["image"].reshape(ex["image_shape"])  # (rows, cols)',),
}


@dataclass(frozen=True)
class BuildStats:
    """Statistics of a built dataset folder, read from its Parquet shards.

    Attributes
    ----------
    patients:
        Split -> distinct patients with an example in an image config (not ``clinical``).
    lesions:
        Lesions (rows of the ``lesions`` config without ``no_findings``); None when the
        ``lesions`` config was not built.
    no_findings:
        Rows of the ``lesions`` config for a study annotated as having no lesion.
    with_seed, with_volume:
        Lesions with a seed point, and with a volume.
    volume_ml:
        (min, median, max) lesion volume in mL; None without volumes.
    time_points:
        Time point -> lesions.
    """

    patients: Mapping[str, int]
    lesions: int | None = None
    no_findings: int = 0
    with_seed: int = 0
    with_volume: int = 0
    volume_ml: tuple[float, float, float] | None = None
    time_points: Mapping[str, int] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Reading a build
# --------------------------------------------------------------------------------------------


def _shards(folder: Path, config: str, split: str) -> list[str]:
    return [str(p) for p in sorted((folder / "data" / config).glob(f"{split}-*.parquet"))]


def _read_columns(files: Sequence[str], columns: list[str]) -> pa.Table:
    """``columns`` of Parquet shards (at least one) as one table, read in the calling thread.

    No Arrow dataset scanner: its thread pools can still be busy when a short-lived process
    exits, which aborts it ("terminate called without an active exception", exit code 134;
    apache/arrow#34314, huggingface/datasets#7566).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for path in files:
        with pq.ParquetFile(path) as shard:
            tables.append(shard.read(columns=columns, use_threads=False))
    return pa.concat_tables(tables)


def read_stats(folder: Path, records: Mapping[str, dict]) -> BuildStats:
    """The statistics of a built dataset folder: only the few columns needed are read."""
    import numpy as np
    import pyarrow.compute as pc

    patients: dict[str, set[str]] = {}
    for config, record in records.items():
        if config == "clinical":
            continue
        for split in record["splits"]:
            files = _shards(folder, config, split["name"])
            found = patients.setdefault(split["name"], set())
            if files:
                found.update(_read_columns(files, ["patient_id"]).column(0).to_pylist())
    counts = {split: len(patients[split]) for split in SPLIT_NAMES if split in patients}
    if "lesions" not in records:
        return BuildStats(counts)
    files = [f for s in records["lesions"]["splits"] for f in _shards(folder, "lesions", s["name"])]
    if not files:  # a build whose annotations named no lesion
        return BuildStats(counts, lesions=0)
    table = _read_columns(files, ["no_findings", "seed_lps", "volume_ml", "time_point"])
    lesions = table.filter(pc.invert(table.column("no_findings")))
    volumes = np.sort(lesions.column("volume_ml").drop_null().to_numpy())
    seeds = pc.greater(pc.list_value_length(lesions.column("seed_lps")), 0)
    return BuildStats(
        counts,
        lesions=lesions.num_rows,
        no_findings=table.num_rows - lesions.num_rows,
        with_seed=pc.sum(seeds).as_py() or 0,
        with_volume=len(volumes),
        volume_ml=(
            (float(volumes[0]), float(np.median(volumes)), float(volumes[-1]))
            if len(volumes)
            else None
        ),
        time_points=dict(
            sorted(Counter(t or "(none)" for t in lesions.column("time_point").to_pylist()).items())
        ),
    )


def find_preview(folder: Path) -> str | None:
    """The first preview montage (``previews/<patient>/<patient>_montage.png``, as written by
    ``tcia-trials preview``) of a dataset folder, relative to it; None without previews."""
    montages = sorted((folder / "previews").rglob("*_montage.png"))
    return montages[0].relative_to(folder).as_posix() if montages else None


def write_card(folder: Path, spec: TrialSpec, dataset_name: str | None = None) -> None:
    """Render the card of a built dataset folder (its records, statistics and preview) into
    ``folder/README.md``."""
    records = hf.read_build_records(folder)
    header, body = _render(
        spec,
        records=records,
        stats=read_stats(folder, records),
        dataset_name=dataset_name,
        preview=find_preview(folder),
    )
    hf.write_card(folder, header, body)


# --------------------------------------------------------------------------------------------
# The hub header
# --------------------------------------------------------------------------------------------


def hub_license(spec: TrialSpec) -> dict[str, str | list[str]]:
    """The hub's license keys of a spec.

    ``license`` is the hub id of the sources' license, or their ids as a list when images and
    annotations carry different ones; when a source's license has no hub id (e.g. "see TCIA
    page" for the NCTN sets), ``license: other`` with ``license_name`` and ``license_link`` (the
    license's URL, else the source's DOI page); ``unknown`` for a spec without sources.
    """
    if not spec.sources:
        return {"license": "unknown"}
    ids: list[str] = []
    for source in spec.sources:
        hub_id = source.license.short_name.lower().replace(" ", "-")
        if hub_id not in HUB_LICENSE_IDS:
            return {
                "license": "other",
                "license_name": re.sub(r"[^a-z0-9.]+", "-", source.license.short_name.lower()),
                "license_link": source.license.url or _doi_url(source),
            }
        if hub_id not in ids:
            ids.append(hub_id)
    return {"license": ids[0] if len(ids) == 1 else ids}


def size_category(count: int) -> str:
    """The hub's ``size_categories`` value of ``count`` examples."""
    power = int(math.log10(count)) if count > 0 else 0
    return SIZE_CATEGORIES[min(max(power - 2, 0), len(SIZE_CATEGORIES) - 1)]


def _patients(spec: TrialSpec) -> int | None:
    """Annotated patients as the spec knows them (the annotation sources' counts): the size of a
    card without a build, a lower bound of every image config's examples."""
    counts = [s.subjects for s in spec.sources if "annotations" in s.provides and s.subjects]
    return max(counts) if counts else None


def _header(spec: TrialSpec, records: Mapping[str, dict] | None, title: str) -> str:
    if records:
        size: int | None = max(
            sum(s["num_examples"] for s in r["splits"]) for r in records.values()
        )
    else:
        size = _patients(spec)
    license_keys = hub_license(spec)
    return hf.card_yaml(
        records or {},
        license_id=license_keys["license"],
        pretty_name=title,
        tags=(*BASE_TAGS, *spec.tags),
        declared=None if records else {c: spec.splits.names for c in spec.config_names},
        task_categories=list(TASK_CATEGORIES),
        size_categories=[size_category(size)] if size else None,
        license_name=license_keys.get("license_name"),
        license_link=license_keys.get("license_link"),
    )


# --------------------------------------------------------------------------------------------
# The body
# --------------------------------------------------------------------------------------------


def _doi_url(source: SourceCollection) -> str:
    return f"https://doi.org/{source.doi}" if source.doi else TCIA_POLICY_URL


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _tcia_data(spec: TrialSpec) -> bool:
    """True unless every source is unpublished (the synthetic collection): TCIA's policy and
    citation apply to builds of TCIA downloads."""
    return not spec.sources or any(s.doi for s in spec.sources)


def _trial_ids(spec: TrialSpec) -> str:
    return ", ".join(
        f"[{t}](https://clinicaltrials.gov/study/{t})" if t.startswith("NCT") else t
        for t in spec.trial_ids
    )


def _summary(spec: TrialSpec) -> str:
    rows = [
        ("builder", f"`{spec.name}` version {spec.version} ({spec.current_release_notes})"),
        ("trial", _trial_ids(spec) or "-"),
        ("homepage", spec.homepage or "-"),
        (
            "image modalities",
            ", ".join(spec.modalities) or "every image series an annotation refers to",
        ),
        ("label modalities", ", ".join(spec.labels.modalities)),
        ("access", spec.access),
        ("license", spec.license_summary()),
        ("configs", ", ".join(f"`{c}`" for c in spec.config_names)),
    ]
    return _table(("", ""), rows)


def _sources(spec: TrialSpec) -> str:
    if not spec.sources:
        return "No published source: the data, their license and citation are given at build time."
    rows = [
        (
            s.name,
            " and ".join(s.provides),
            f"[{s.doi}]({_doi_url(s)})" if s.doi else "-",
            ", ".join(s.modalities) or "see DOI page",
            f"{s.subjects:,}" if s.subjects else "-",
            f"[{s.license.short_name}]({s.license.url})" if s.license.url else s.license.short_name,
            s.access,
            s.idc_collection_id or "-",
        )
        for s in spec.sources
    ]
    titles = "\n".join(f"- **{s.name}**: {s.title}" for s in spec.sources)
    header = ("collection", "provides", "DOI", "modalities", "patients", "license", "access")
    return _table((*header, "IDC collection_id"), rows) + "\n\n" + titles


def _obtain(spec: TrialSpec) -> str:
    if spec.access == "controlled":
        access = (
            "Controlled access: request access through dbGaP; once approved, download the CRDC "
            "manifests with your API key using the TCIA Data Retriever."
        )
    elif spec.sources:
        access = (
            "Public: no login needed (IDC with `idc-index`, or the NBIA Data Retriever with the "
            "`.tcia` manifest from the DOI page)."
        )
    else:
        access = "Any labeled DICOM download (see below)."
    parts = [access, f"```text\n{spec.manual_download_instructions}\n```"]
    if spec.clinical.instructions:
        parts.append(f"Clinical data: {spec.clinical.instructions}")
    return "\n\n".join(parts)


def _build_and_load(spec: TrialSpec, name: str, configs: Sequence[str]) -> str:
    match = _SOURCE_DIR.search(spec.manual_download_instructions)
    source = match[1] if match else "path/to/download"
    first, *others = configs
    hf_lines = [
        "import datasets",
        "",
        f'ds = datasets.load_dataset("{OUT}/{name}", "{first}", split="train")',
        'ds = ds.with_format("numpy", dtype=None)  # keep int16 / uint8 / uint32 as stored',
        "ex = ds[0]",
        *_RESHAPES.get(first, ()),
    ]
    for config in others:
        if config in _RESHAPES:
            hf_lines += [
                "",
                f'ds = datasets.load_dataset("{OUT}/{name}", "{config}", split="train")',
                'ex = ds.with_format("numpy", dtype=None)[0]',
                *_RESHAPES[config],
            ]
    tfds_lines = (
        "import tcia_trials  # registers the TFDS builders",
        "import tensorflow_datasets as tfds",
        f'ds = tfds.load("{spec.name}/{first}", split="train", data_dir="{OUT}", '
        'download_and_prepare_kwargs={"download_config": '
        f'tfds.download.DownloadConfig(manual_dir="{source}")}})',
    )
    return "\n".join(
        (
            "With tcia-trials installed (`pip install tcia-trials`), build from the download:",
            "",
            "```bash",
            f"tcia-trials build {spec.name} --source {source} --out {OUT}"
            + (f" --name-as {name}" if name != spec.name else ""),
            "```",
            "",
            f"This writes `{OUT}/{name}/` (Parquet shards, this card and build records). Load it "
            "with `datasets` alone (tcia-trials is not needed to read it):",
            "",
            "```python",
            *hf_lines,
            "```",
            "",
            "or with TensorFlow Datasets:",
            "",
            "```python",
            *tfds_lines,
            "```",
        )
    )


def _configs(spec: TrialSpec) -> str:
    lines = []
    for config in spec.configs:
        extra = []
        if config.patch_size:
            extra.append("patch " + " x ".join(map(str, config.patch_size)) + " voxels")
        if config.isotropic_spacing_mm:
            extra.append(f"resampled to {config.isotropic_spacing_mm} mm")
        if config.window_presets:
            extra.append(
                "preview windows "
                + ", ".join(f"`{w.name}` ({w.modality})" for w in config.window_presets)
            )
        if config.name == "slices_2d":
            extra.append(
                f"{config.slices_per_lesion} slice(s) per lesion"
                if config.slices_per_lesion
                else "every slice holding the lesion"
            )
        details = f" ({'; '.join(extra)})" if extra else ""
        lines.append(f"- `{config.name}`: {config.description}{details}")
    return "\n".join(lines)


GEOMETRY = """\
- Coordinates are DICOM patient coordinates **LPS** (x to the patient's left, y posterior,
  z superior), in mm.
- Arrays are indexed `(k, j, i)` = (slices, rows, cols). Slices are sorted by increasing
  position along the slice normal (row cosines x column cosines).
- `spacing` is (z, y, x) = (slice step, row spacing, column spacing) in mm; `origin` is the LPS
  position of the centre of voxel (0, 0, 0); `direction` holds in its columns the LPS unit
  vectors of the (slice, row, col) axes; `affine` maps indices to LPS mm:
  `LPS = affine @ [k, j, i, 1]`.
- Images stay on each series' own grid (no resampling): CT in HU (int16 when every annotated
  series is CT, else float32), PET in SUVbw (float32), MR as stored; `units` says which.
- Variable-shape arrays are stored flat: reshape them with their `*_shape` field. `mask` of
  `volume` holds lesion n in bit n (overlapping lesions lose nothing)."""


def _dtype(field: Field) -> str:
    if field.is_records:
        return "list of records"
    if field.is_record:
        return "record"
    text = "PNG image" if field.dtype == "image" else field.dtype
    text = f"list of {text}" if field.is_list else text
    return f"{text}, nullable" if field.nullable else text


def _shape(field: Field) -> str:
    if not field.shape:
        return ""
    dims = ", ".join("?" if d is None else str(d) for d in field.shape)
    return f"({dims}{',' if len(field.shape) == 1 else ''})" + (
        " flat" if field.is_flat_tensor else ""
    )


def _rows(fields: Iterable[Field], prefix: str = "") -> list[tuple[str, ...]]:
    rows = []
    for field in fields:
        doc = field.doc
        if field.is_records and {f.name for f in field.fields} == _LESION_NAMES:
            doc = f"{doc}; fields: see *Lesion fields*"
        elif field.fields:
            rows.append((f"`{prefix}{field.name}`", _dtype(field), "", field.unit, doc))
            rows += _rows(field.fields, f"{prefix}{field.name}.")
            continue
        rows.append((f"`{prefix}{field.name}`", _dtype(field), _shape(field), field.unit, doc))
    return rows


def _features(
    spec: TrialSpec, records: Mapping[str, dict] | None, clinical: Mapping[str, str]
) -> str:
    configs = _described(spec, records)
    patches = spec.config("lesion_patches").patch_size if "lesion_patches" in configs else None
    parts = [GEOMETRY]
    for config in configs:
        fields = config_fields(
            config,
            image_dtype=_image_dtype(records) if records else SPEC_IMAGE_DTYPE,
            patch_shape=patches or (1, 1, 1),
            clinical=dict(clinical),
            stacks=spec.stack_policy.has_stack_fields,
        )
        shown = [f for f in fields if f.name not in _LESION_NAMES]
        rows = _rows(shown)
        if len(shown) < len(fields):
            note = "the lesion's fields (see *Lesion fields*)"
            if config == "lesions":
                note += "; null or empty in a `no_findings` row"
            rows.append(("lesion fields", "", "", "", note))
        parts.append(
            f"### `{config}`\n\n" + _table(("field", "dtype", "shape", "unit", "meaning"), rows)
        )
    parts.append(
        "### Lesion fields\n\n"
        + _table(("field", "dtype", "shape", "unit", "meaning"), _rows(LESION_FIELDS))
    )
    return "\n\n".join(parts)


def _image_dtype(records: Mapping[str, dict]) -> str:
    """The image dtype a build wrote (the ``image`` or ``patch`` feature of its records)."""
    for record in records.values():
        for name in ("image", "patch"):
            feature = record["features"].get(name)
            if feature:
                return feature["feature"]["dtype"]
    return SPEC_IMAGE_DTYPE


def _clinical(spec: TrialSpec, schema: Mapping[str, str], built: bool) -> str:
    clinical = spec.clinical
    if clinical.source == "none":
        return "No clinical data: this collection comes without a clinical sheet."
    levels = clinical.category_levels
    declared = clinical.column_types
    rows = [
        (
            f"`{column}`",
            f"{kind} ({', '.join(levels[column])})" if column in levels else kind,
            "declared" if column in declared else "inferred from the sheet",
        )
        for column, kind in schema.items()
    ]
    where = (
        f"From `{clinical.file_glob}` in the download"
        if clinical.source == "tcia"
        else "Supplied at build time (`--clinical SHEET --patient-column COLUMN`; see *Source data*)"
    )
    key = (
        f"; patient id column `{clinical.patient_id_column}`" if clinical.patient_id_column else ""
    )
    text = f"{where}{key}. Missing values are null."
    if rows:
        return f"{text}\n\n" + _table(("column", "type", "origin"), rows)
    if built:
        return f"{text} This build was made without a clinical sheet."
    return f"{text} Column types are inferred from the sheet and listed here by a build."


def _splits(spec: TrialSpec, records: Mapping[str, dict] | None) -> str:
    split = spec.splits
    fractions = ", ".join(f"{name} {getattr(split, name):.0%}" for name in split.names)
    text = (
        f"Patient-level and deterministic ({fractions}; salt `{split.salt}`): a patient is in a "
        'split by `sha256("<salt>/<PatientID>")` alone, so no patient straddles two splits, every '
        "config agrees, and adding patients never moves existing ones."
    )
    if not records:
        return text
    names = [n for n in split.names if any(n in _split_counts(r) for r in records.values())]
    rows = [
        (f"`{config}`", *(f"{_split_counts(records[config]).get(n, 0):,}" for n in names))
        for config in _described(spec, records)
    ]
    return f"{text}\n\nExamples per config:\n\n" + _table(("config", *names), rows)


def _described(spec: TrialSpec, records: Mapping[str, dict] | None) -> list[str]:
    """The configs a card describes, in the spec's order: those built, or without a build all."""
    return [c for c in spec.config_names if not records or c in records]


def _split_counts(record: dict) -> dict[str, int]:
    return {s["name"]: s["num_examples"] for s in record["splits"]}


def _statistics(spec: TrialSpec, stats: BuildStats | None, preview: str | None) -> str:
    if stats is None:
        known = [f"{s.name}: {s.subjects:,} patients" for s in spec.sources if s.subjects]
        facts = f" The sources hold {'; '.join(known)} (see *Source collections*)." if known else ""
        return (
            "Filled in by a build: the card written into the built dataset folder lists patients "
            "per split, lesions, seed points, the lesion volume distribution and a preview." + facts
        )
    patients = ", ".join(f"{split} {n:,}" for split, n in stats.patients.items())
    lines = [f"- patients with images: {sum(stats.patients.values()):,} ({patients})"]
    if stats.lesions is None:
        lines.append("- lesions: build the `lesions` config for lesion statistics")
    else:
        lines += [
            f"- lesions: {stats.lesions:,} ({stats.with_seed:,} with a seed point, "
            f"{stats.with_volume:,} with a volume)",
            f'- studies annotated "no findings": {stats.no_findings:,}',
        ]
        if stats.volume_ml:
            low, median, high = stats.volume_ml
            lines.append(
                f"- lesion volume (mL): min {low:.2f}, median {median:.2f}, max {high:.2f}"
            )
        if stats.time_points:
            lines.append(
                "- lesions per time point: "
                + ", ".join(f"{t} {n:,}" for t, n in stats.time_points.items())
            )
    if preview:
        lines.append(f"\n![preview: slices with the lesion masks and seed points]({preview})")
    return "\n".join(lines)


def _limitations(spec: TrialSpec) -> str:
    items = [
        "Splits hash the PatientID, so their sizes match the fractions only approximately "
        "(most visibly in small collections).",
        "Lesions without a seed point have an empty `seed_lps` / `seed_voxel`; their patch is "
        "centred on the centre of the mask's bounding box. A lesion with neither a seed nor a "
        "mask has no patch (the build record lists it as skipped).",
        'A study annotated "no findings" is a row with `no_findings = true` and null lesion fields '
        "in `lesions`.",
        "Image series that cannot be read exactly (missing slices, uneven slice spacing, PET "
        "without the tags SUVbw needs, ...) are skipped, never resampled or guessed, and listed "
        "with the reason in `.tcia_trials/configs/<config>.json`; annotation series whose image "
        "series is not in the download are left out.",
        "Images keep their own grid (anisotropic voxels, no resampling); a gantry-tilted CT has a "
        "sheared affine that follows the true slice step. The `slices_2d` previews do not correct "
        "anisotropic pixels.",
    ]
    labels = spec.labels
    items.append(f"Only {', '.join(labels.modalities)} series are read as labels.")
    if labels.include_pattern or labels.exclude_pattern:
        patterns = [
            f"`{p}`" for p in (labels.include_pattern, labels.exclude_pattern) if p is not None
        ]
        items[-1] += f" Label series are selected by description ({' / '.join(patterns)})."
    if labels.segment_exclude_pattern:
        items.append(
            f"Segments or ROIs matching `{labels.segment_exclude_pattern}` are not lesions."
        )
    if spec.clinical.source == "user":
        items.append(
            "Clinical data are not part of the download: the `clinical` config and fields exist "
            "only when a sheet is supplied at build time, with inferred column types."
        )
    if spec.access == "controlled":
        items.append(
            "The source data are controlled access: a built dataset derives from data obtained "
            "under a data use agreement; check its terms before sharing it."
        )
    if any(not s.license.known for s in spec.sources):
        items.append(
            f"The license of some sources is not in the IDC index ({LICENSE_UNKNOWN_NAME!r}): read "
            "it on the collection's TCIA page before use or redistribution."
        )
    return "\n".join(f"- {item}" for item in items)


def _license(spec: TrialSpec) -> str:
    lines = [f"Data: {spec.license_summary()}."]
    lines += [
        f"- {s.name} ({' and '.join(s.provides)}): "
        + (
            f"[{s.license.long_name or s.license.short_name}]({s.license.url})"
            if s.license.url
            else f"{s.license.short_name} ({_doi_url(s)})"
        )
        for s in spec.sources
    ]
    lines.append(
        "\nThe tcia-trials code that builds this dataset is Apache-2.0; the dataset's terms are "
        "those of its sources."
    )
    if _tcia_data(spec):
        lines.append(
            "\n**TCIA Data Usage Policy.** Data from The Cancer Imaging Archive are used under "
            f"TCIA's [Data Usage Policies and Restrictions]({TCIA_POLICY_URL}): users must not "
            "attempt to identify or contact the participants; must cite the data citation (DOI) of "
            "every dataset used, and the TCIA publication below, in all presentations and "
            "publications; must abide by the license of each collection (some collections carry "
            "additional restrictions); and must have the approval that controlled-access "
            "collections require. Consult each collection's citation and data usage policy on its "
            "DOI page before use."
        )
    return "\n".join(lines)


def citations(spec: TrialSpec) -> str:
    """The BibTeX of a builder: one entry per source DOI, plus TCIA's publication for TCIA data
    (empty when there is nothing to cite)."""
    entries = [e for e in (spec.citation.strip(), TCIA_CITATION if _tcia_data(spec) else "") if e]
    return "\n\n".join(entries)


def _citation(spec: TrialSpec) -> str:
    bibtex = citations(spec)
    if not bibtex and any(s.note == USER_SOURCE_NOTE for s in spec.sources):
        return "No citation was given at build time: cite the data as their publisher asks."
    if not bibtex:
        return "Synthetic data: nothing to cite besides tcia-trials itself."
    intro = (
        "Cite every source dataset (one entry per DOI) and TCIA:"
        if spec.sources
        else "Cite the datasets you build from (their DOIs) and TCIA:"
    )
    return f"{intro}\n\n```bibtex\n{bibtex}\n```"


def _render(
    spec: TrialSpec,
    *,
    records: Mapping[str, dict] | None = None,
    stats: BuildStats | None = None,
    dataset_name: str | None = None,
    preview: str | None = None,
) -> tuple[str, str]:
    """(YAML header, Markdown body) of a card; see :func:`render_card`."""
    title = f"{dataset_name} ({spec.title})" if dataset_name else spec.title
    name = dataset_name or spec.name
    schema = next(
        (r["clinical_schema"] for r in (records or {}).values() if r.get("clinical_schema")),
        spec.clinical.column_types if not records else {},
    )
    sections = (
        ("Summary", _summary(spec)),
        ("Source collections", _sources(spec)),
        ("Source data", _obtain(spec)),
        ("Build and load", _build_and_load(spec, name, _described(spec, records))),
        ("Configs", _configs(spec)),
        ("Features", _features(spec, records, schema)),
        ("Clinical features", _clinical(spec, schema, bool(records))),
        ("Splits", _splits(spec, records)),
        ("Statistics", _statistics(spec, stats, preview)),
        ("Known limitations", _limitations(spec)),
        ("License", _license(spec)),
        ("Citation", _citation(spec)),
        ("Versions", "\n".join(f"- {v}: {text}" for v, text in spec.release_notes)),
    )
    body = f"# {title}\n\n{spec.description}\n" + "".join(
        f"\n## {heading}\n\n{text}\n" for heading, text in sections
    )
    return _header(spec, records, title), body


def render_card(
    spec: TrialSpec,
    *,
    records: Mapping[str, dict] | None = None,
    stats: BuildStats | None = None,
    dataset_name: str | None = None,
    preview: str | None = None,
) -> str:
    """A builder's hub card (YAML header and Markdown).

    Parameters
    ----------
    spec:
        The builder's spec.
    records:
        Build records (``hf.read_build_records``): adds ``dataset_info``, the built configs'
        features and examples per split.  None: the card of the spec alone (configs declared
        from the spec, statistics left to a build).
    stats:
        :func:`read_stats` of the build.
    dataset_name:
        The dataset's own name (``generic`` builds): title and load paths.
    preview:
        Path of a preview montage relative to the dataset folder (:func:`find_preview`).
    """
    header, body = _render(
        spec, records=records, stats=stats, dataset_name=dataset_name, preview=preview
    )
    return hf.card_text(header, body)


# --------------------------------------------------------------------------------------------
# The checked-in cards
# --------------------------------------------------------------------------------------------


def card_files(spec: TrialSpec) -> dict[str, str]:
    """The generated files of a builder's ``dataset_cards/<name>/`` folder: name -> text."""
    files = {"README.md": render_card(spec), "TAGS.txt": "\n".join(tfds_tags(spec)) + "\n"}
    bibtex = citations(spec)
    if bibtex:
        files["CITATIONS.bib"] = bibtex + "\n"
    return files


def tfds_tags(spec: TrialSpec) -> list[str]:
    """The builder's TFDS tags (``TAGS.txt``, as in TFDS's own dataset folders)."""
    tabular = ("content.data-type.tabular",) if "clinical" in spec.config_names else ()
    return sorted((*TFDS_TAGS, *tabular))


def _expected() -> dict[str, str]:
    """Every generated file under ``dataset_cards/``: ``"<builder>/<file>"`` -> text."""
    return {
        f"{name}/{file}": text
        for name in list_builders()
        for file, text in card_files(builder(name)).items()
    }


def _present(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.glob("*/*") if p.name in CARD_FILES}


def stale_cards(root: Path) -> list[str]:
    """Paths under ``root`` that differ from freshly generated cards (missing, changed, or left
    over from a builder that no longer exists); empty when all are current."""
    expected = _expected()
    changed = [
        path
        for path, text in expected.items()
        if not (root / path).is_file() or (root / path).read_text() != text
    ]
    return sorted([*changed, *(_present(root) - set(expected))])


def write_cards(root: Path) -> list[Path]:
    """(Re)write ``root/<builder>/`` for every builder and remove generated files no builder
    produces any more; returns the files written."""
    expected = _expected()
    for path in _present(root) - set(expected):
        (root / path).unlink()
    written = []
    for path, text in expected.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tcia_trials.cards --write DIR | --check DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m tcia_trials.cards", description="Generate the builders' dataset cards."
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="DIR", help="write DIR/<builder>/README.md")
    action.add_argument("--check", type=Path, metavar="DIR", help="exit 1 when DIR is stale")
    args = parser.parse_args(argv)
    if args.write:
        written = write_cards(args.write)
        print(f"wrote {len(written)} files under {args.write}")
        return 0
    stale = stale_cards(args.check)
    if stale:
        print(f"stale dataset cards: {', '.join(stale)}; run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
