"""``tt.verify``: re-read a built dataset and check it against its build records and its source.

For every config: each shard listed in ``.tcia_trials/configs/<config>.json`` exists, has the
recorded sha256, holds the recorded features, and the shards of each split hold the recorded
number of examples; no unlisted shard lies beside them.  Then a deterministic sample of the
``volume`` config's examples is re-read from the download the dataset was built from
(:func:`~tcia_trials.source.index.scan`, :func:`~tcia_trials.source.volume.read_volume`,
:func:`~tcia_trials.source.annotations.read_annotations`) and compared: voxels and masks
bit-exact, geometry (spacing, origin, direction, affine) exact, lesion ids and seed points exact.
TFDS datasets built beside it (``--format tfds``) are checked for their shards and split counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from tcia_trials import hf
from tcia_trials.build import INCOMPLETE
from tcia_trials.errors import BuiltDatasetError, TciaTrialsError
from tcia_trials.registry import builder
from tcia_trials.source.annotations import AnnotationLinks, link_annotations, read_annotations
from tcia_trials.source.index import Index, scan
from tcia_trials.source.volume import read_volume
from tcia_trials.spec import TrialSpec

#: Volume examples compared with the source by default.
SAMPLE = 3


@dataclass
class VerifyResult:
    """What :func:`verify` found: ``ok`` when ``errors`` is empty."""

    path: Path
    checked: list[str] = field(default_factory=list)  # checks passed
    errors: list[str] = field(
        default_factory=list
    )  # each names the file or example and the difference
    notes: list[str] = field(default_factory=list)  # checks not made, and why

    @property
    def ok(self) -> bool:
        return not self.errors


def verify(
    path: str | PathLike[str],
    *,
    source: str | PathLike[str] | None = None,
    check_source: bool = True,
    sample: int = SAMPLE,
) -> VerifyResult:
    """Check a built dataset folder (``out/<name>``) against its build records and its source.

    Parameters
    ----------
    path:
        The dataset folder written by :func:`~tcia_trials.build.build`.
    source:
        The download to compare with, when not the one recorded at build time (moved, copied).
    check_source:
        False: check the files only (the source is not needed).
    sample:
        How many ``volume`` examples to compare with the source (evenly spaced by series UID).

    Raises
    ------
    BuiltDatasetError
        ``path`` is not a dataset folder built by tcia-trials.
    """
    folder = Path(path).expanduser()
    records = hf.read_build_records(folder)
    if not records:
        inside = sorted(str(p.parent.parent) for p in folder.glob("*/.tcia_trials/configs"))
        hint = f"; the dataset folders inside it: {', '.join(inside)}" if inside else ""
        raise BuiltDatasetError(
            f"{folder}: not a dataset built by tcia-trials (no .tcia_trials/configs/*.json){hint}"
        )
    result = VerifyResult(folder)
    if (folder / INCOMPLETE).exists():
        result.errors.append(f"{folder / INCOMPLETE}: a build was interrupted here; build again")
    if not (folder / "README.md").is_file():
        result.errors.append(f"{folder / 'README.md'}: missing (the hub card a build writes)")
    for config, record in records.items():
        _check_files(folder, config, record, result)
        _check_tfds(folder.parent / record["builder"] / config / record["version"], record, result)
    if not check_source or sample < 1:
        result.notes.append("the examples were not compared with the source (not asked for)")
    elif "volume" not in records:
        result.notes.append("no volume config: the examples were not compared with the source")
    else:
        _check_sample(folder, records["volume"], source, sample, result)
    return result


def _check_files(folder: Path, config: str, record: dict, result: VerifyResult) -> None:
    """Shards of one config: present, checksums, schema, counts per split, nothing unlisted."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors = len(result.errors)
    features = datasets.Features.from_dict(record["features"])
    expected = features.arrow_schema.remove_metadata()
    checksums: dict[str, str] = record["checksums"]
    for path in sorted((folder / "data" / config).glob("*.parquet")):
        if f"data/{config}/{path.name}" not in checksums:
            result.errors.append(f"{path}: not in the build record of {config}")
    counts = []
    for split in record["splits"]:
        rows = 0
        for name in _files(record, split):
            path = folder / name
            if not path.is_file():
                result.errors.append(f"{path}: missing (listed in the build record of {config})")
                continue
            digest = hf.sha256(path)
            if digest != checksums.get(name):
                result.errors.append(
                    f"{path}: sha256 {digest[:16]}... differs from the build record's "
                    f"{str(checksums.get(name))[:16]}... (the file changed after the build)"
                )
            try:
                shard = pq.ParquetFile(path)
            except (pa.ArrowException, OSError) as exc:
                result.errors.append(f"{path}: not readable as Parquet ({exc})")
                continue
            schema = shard.schema_arrow
            if not schema.remove_metadata().equals(expected) or (
                datasets.Features.from_arrow_schema(schema) != features
            ):
                result.errors.append(
                    f"{path}: schema differs from the build record's features "
                    f"({_schema_difference(schema, expected)})"
                )
            rows += shard.metadata.num_rows
        if rows != split["num_examples"]:
            result.errors.append(
                f"{folder / 'data' / config}: split {split['name']} holds {rows} examples, the "
                f"build record says {split['num_examples']}"
            )
        counts.append(f"{split['name']} {split['num_examples']}")
    if len(result.errors) == errors:
        result.checked.append(
            f"{config}: {len(checksums)} shard(s), checksums, schema and counts "
            f"({', '.join(counts)}) as recorded"
        )


def _check_tfds(tfds_dir: Path, record: dict, result: VerifyResult) -> None:
    """The TFDS dataset of the same config, when built: its shards exist and its splits hold
    the examples of the HuggingFace splits (read from its ``dataset_info.json``)."""
    info_path = tfds_dir / "dataset_info.json"
    if not info_path.is_file():
        return
    info = json.loads(info_path.read_text())
    template = "{name}-{split}.{fmt}-{shard:05d}-of-{total:05d}"
    counts, problems = {}, []
    for split in info.get("splits", []):
        lengths = [int(n) for n in split.get("shardLengths", [])]
        counts[split["name"]] = sum(lengths)
        for shard in range(len(lengths)):
            name = template.format(
                name=info["name"],
                split=split["name"],
                fmt=info["fileFormat"],
                shard=shard,
                total=len(lengths),
            )
            if not (tfds_dir / name).is_file():
                problems.append(f"{tfds_dir / name}: TFDS shard missing")
    expected = {s["name"]: s["num_examples"] for s in record["splits"]}
    if counts != expected:
        problems.append(f"{info_path}: TFDS splits {counts} differ from the HuggingFace {expected}")
    result.errors.extend(problems)
    if not problems:
        result.checked.append(
            f"{record['config']} (tfds, {info['fileFormat']}): {sum(counts.values())} examples "
            "in the same splits as the HuggingFace dataset"
        )


def _files(record: dict, split: dict) -> list[str]:
    """The shards of one split (records written before they listed them: by name)."""
    if "files" in split:
        return split["files"]
    return sorted(
        name for name in record["checksums"] if name.split("/")[-1].startswith(f"{split['name']}-")
    )


def _schema_difference(actual, expected) -> str:
    found = {f.name: f.type for f in actual}
    wanted = {f.name: f.type for f in expected}
    parts = [f"column {name} missing" for name in wanted if name not in found]
    parts += [f"column {name} unexpected" for name in found if name not in wanted]
    parts += [
        f"column {name}: {found[name]} instead of {wanted[name]}"
        for name in wanted
        if name in found and found[name] != wanted[name]
    ]
    return "; ".join(parts) or "the features in the file's metadata differ"


def _check_sample(
    folder: Path,
    record: dict,
    source: str | PathLike[str] | None,
    sample: int,
    result: VerifyResult,
) -> None:
    """Compare ``sample`` volume examples with the series re-read from the source."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if source is None and "source" not in record:
        result.notes.append("the build record names no source: the examples were not compared")
        return
    root = Path(source if source is not None else record["source"]).expanduser()
    if not root.is_dir():
        result.notes.append(
            f"the source folder {root} is gone: the examples were not compared with it "
            "(pass the download's new place as source)"
        )
        return
    rows = []  # (shard, row group, row in the group, series uid) of every example
    for split in record["splits"]:
        for name in _files(record, split):
            try:
                shard = pq.ParquetFile(folder / name)
                uids = iter(shard.read(["series_uid"])[0].to_pylist())
            except (pa.ArrowException, OSError):
                continue  # reported by the file checks
            for group in range(shard.num_row_groups):
                size = shard.metadata.row_group(group).num_rows
                rows += [(shard, group, row, next(uids)) for row in range(size)]
    rows.sort(key=lambda r: r[3])
    if not rows:
        result.notes.append("no volume example to compare with the source")
        return
    chosen = sorted({round(i * (len(rows) - 1) / max(sample - 1, 1)) for i in range(sample)})
    spec = builder(record["builder"])
    index = scan(root)
    links = link_annotations(index, spec.annotation_rules, spec.labels)
    errors = len(result.errors)
    for shard, group, row, _ in (rows[i] for i in chosen):
        table = shard.read_row_group(group)  # one volume per row group: memory stays bounded
        result.errors.extend(_compare(table, row, index, links, spec))
    if len(result.errors) == errors:
        result.checked.append(
            f"source: {len(chosen)} volume example(s) equal the series re-read from {root} "
            "(voxels, masks, geometry, lesion seeds)"
        )


def _compare(table, row: int, index: Index, links: AnnotationLinks, spec: TrialSpec) -> list[str]:
    """Differences between one stored volume example and its series re-read from the source."""
    uid = table.column("series_uid")[row].as_py()
    where = f"volume example {uid} ({table.column('patient_id')[row].as_py()})"
    if uid not in index.series:
        return [f"{where}: the series is not in the source {index.root}"]
    stack = None
    if "stack_count" in table.column_names and table.column("stack_count")[row].as_py() > 1:
        stack = table.column("stack_index")[row].as_py()  # one stack of a multi-stack series
        where = f"volume example {uid} stack {stack} ({table.column('patient_id')[row].as_py()})"
    try:
        volume = read_volume(index, uid, stack=stack)
        annotations = read_annotations(
            index, uid, volume=volume, rules=spec.annotation_rules, labels=spec.labels, links=links
        )
    except TciaTrialsError as exc:
        return [f"{where}: cannot be re-read from the source: {exc}"]
    differences = []
    shape = tuple(table.column("image_shape")[row].as_py())
    if shape != volume.shape:
        differences.append(f"image shape {shape}, the source's is {volume.shape}")
    else:
        for name, expected in (("image", volume.array), ("mask", annotations.bitmask())):
            stored = table.column(name)[row].values.to_numpy(zero_copy_only=False).reshape(shape)
            if not np.array_equal(stored, expected):
                count = int(np.count_nonzero(stored != expected))
                differences.append(f"{name}: {count} voxel(s) differ from the source")
    for name, expected in (
        ("spacing", volume.spacing),
        ("origin", volume.origin),
        ("direction", volume.direction),
        ("affine", volume.affine),
    ):
        stored = np.asarray(table.column(name)[row].as_py(), dtype=np.float64)
        if not np.array_equal(stored, np.asarray(expected, dtype=np.float64)):
            differences.append(
                f"{name} {stored.tolist()}, the source's is {np.asarray(expected).tolist()}"
            )
    stored_lesions = {
        lesion["lesion_id"]: (lesion["seed_lps"], lesion["seed_voxel"])
        for lesion in table.column("lesions")[row].as_py()
    }
    source_lesions = {
        lesion.lesion_id: (list(lesion.seed_lps or ()), list(lesion.seed_voxel or ()))
        for lesion in annotations.lesions
    }
    if list(stored_lesions) != list(source_lesions):
        differences.append(
            f"lesions {list(stored_lesions)}, the source's are {list(source_lesions)}"
        )
    else:
        differences += [
            f"lesion {lesion_id}: seed (LPS mm, voxel) {stored_lesions[lesion_id]}, the source's "
            f"is {seeds}"
            for lesion_id, seeds in source_lesions.items()
            if stored_lesions[lesion_id] != seeds
        ]
    return [f"{where}: {difference}" for difference in differences]
