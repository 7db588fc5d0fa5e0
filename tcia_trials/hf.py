"""HuggingFace output: the neutral schema as ``datasets.Features``, sharded Parquet, hub card YAML.

Layout of a built dataset folder (what ``datasets.load_dataset(folder, config)`` reads, with or
without tcia-trials installed)::

    README.md                                   hub card: YAML configs + dataset_info, then prose
    data/<config>/<split>-00000-of-00002.parquet
    .tcia_trials/configs/<config>.json          build record (features, splits, sizes, checksums)

Storage choices (measured, see README "Benchmarks"): whole volumes vary in rows x cols, which
``Array3D`` cannot hold (only its first dimension may vary), and nested lists decode ~20x slower
than flat ones, so volumes and masks are flat ``List(Value(dtype))`` next to an explicit
``image_shape``; fixed-size patches are fixed-length flat lists next to ``patch_shape``
(``Array3D`` decodes ~3x slower: ``datasets`` stores it as nested lists); 3x3 and 4x4 matrices
are ``Array2D``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tcia_trials.errors import BuiltDatasetError
from tcia_trials.schema import Field

#: Target size of one Parquet shard (bytes of encoded examples).
MAX_SHARD_BYTES = 256 * 2**20
#: Rows per Parquet row group, by config: one volume per group keeps streaming memory bounded.
ROWS_PER_GROUP = {"volume": 1, "lesion_patches": 32, "slices_2d": 64}
DEFAULT_ROWS_PER_GROUP = 1000


def hf_feature(field: Field):
    """The ``datasets`` feature of one neutral field."""
    import datasets

    if field.is_records:
        return datasets.List({f.name: hf_feature(f) for f in field.fields})
    if field.is_record:
        return {f.name: hf_feature(f) for f in field.fields}
    if field.dtype == "image":
        return datasets.Image()
    value = datasets.Value(field.dtype)
    if field.is_list or field.is_flat_tensor:
        return datasets.List(value)
    if field.is_fixed_tensor:
        if len(field.shape) == 2:  # small matrices (direction, affine) keep their shape
            return datasets.Array2D(shape=field.shape, dtype=field.dtype)
        # vectors and patches: a fixed-size flat list (Array3D decodes ~3x slower, as nested lists)
        return datasets.List(value, length=int(np.prod(field.shape)))
    return value


def hf_features(fields: Iterable[Field]):
    import datasets

    return datasets.Features({f.name: hf_feature(f) for f in fields})


def encode(fields: Iterable[Field], example: Mapping[str, object]) -> dict[str, object]:
    """An example ready for the Arrow writer: variable-shape tensors flattened."""
    encoded: dict[str, object] = {}
    for field in fields:
        value = example.get(field.name)
        if field.is_records:
            encoded[field.name] = [encode(field.fields, item) for item in value or []]  # type: ignore[union-attr]
        elif field.is_record:
            encoded[field.name] = encode(field.fields, value or {}) if value is not None else None  # type: ignore[arg-type]
        elif field.is_flat_tensor:
            encoded[field.name] = np.ascontiguousarray(value, dtype=field.dtype).ravel()
        elif field.is_fixed_tensor and len(field.shape) == 2:
            encoded[field.name] = np.asarray(value, dtype=field.dtype)
        elif field.is_fixed_tensor:
            encoded[field.name] = np.ascontiguousarray(value, dtype=field.dtype).ravel()
        else:
            encoded[field.name] = value
    return encoded


@dataclass(frozen=True)
class SplitRecord:
    name: str
    num_examples: int
    num_bytes: int
    files: tuple[str, ...]


class ConfigWriter:
    """Writes one config's examples as sharded Parquet under ``out/data/<config>/``.

    Shards go to a temporary folder that replaces the config's folder only in :meth:`commit`,
    after :meth:`finish` has completed every shard, so an interrupted build never leaves a
    dataset that looks finished (:meth:`abort` removes the temporary folder).
    """

    def __init__(
        self,
        out: Path,
        config: str,
        fields: tuple[Field, ...],
        *,
        max_shard_bytes: int = MAX_SHARD_BYTES,
    ) -> None:
        self.out, self.config, self.fields = out, config, fields
        self.features = hf_features(fields)
        self.max_shard_bytes = max_shard_bytes
        self.rows_per_group = ROWS_PER_GROUP.get(config, DEFAULT_ROWS_PER_GROUP)
        self.staging = out / "data" / f".{config}.partial-{os.getpid()}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self._writers: dict[str, object] = {}
        self._shards: dict[str, list[Path]] = {}
        self._counts: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._current: dict[str, int] = {}

    def add(self, split: str, example: Mapping[str, object]) -> None:
        from datasets.arrow_writer import ParquetWriter

        row = encode(self.fields, example)
        nbytes = _nbytes(row)
        if (
            split in self._writers
            and self._current[split] > 0
            and self._current[split] + nbytes > self.max_shard_bytes
        ):
            self._writers.pop(split).finalize()  # type: ignore[attr-defined]
        if split not in self._writers:
            path = self.staging / f"{split}-{len(self._shards.setdefault(split, [])):05d}.parquet"
            self._shards[split].append(path)
            self._writers[split] = ParquetWriter(
                path=str(path), features=self.features, writer_batch_size=self.rows_per_group
            )
            self._current[split] = 0
        self._writers[split].write(row)  # type: ignore[attr-defined]
        self._current[split] += nbytes
        self._counts[split] = self._counts.get(split, 0) + 1
        self._sizes[split] = self._sizes.get(split, 0) + nbytes

    def finish(self) -> dict[str, SplitRecord]:
        """Close every shard and name them ``<split>-NNNNN-of-NNNNN.parquet`` (still staged)."""
        for writer in self._writers.values():
            writer.finalize()  # type: ignore[attr-defined]
        self._writers.clear()
        records = {}
        for split, paths in sorted(self._shards.items()):
            names = []
            for number, path in enumerate(paths):
                name = f"{split}-{number:05d}-of-{len(paths):05d}.parquet"
                path.rename(self.staging / name)
                names.append(f"data/{self.config}/{name}")
            records[split] = SplitRecord(
                split, self._counts[split], self._sizes[split], tuple(names)
            )
        return records

    def checksums(self, on_file: Callable[[], None] | None = None) -> dict[str, str]:
        """sha256 of every finished shard, by its path in the dataset (``data/<config>/...``);
        ``on_file()`` is called after each."""
        checksums = {}
        for path in sorted(self.staging.glob("*.parquet")):
            checksums[f"data/{self.config}/{path.name}"] = sha256(path)
            if on_file is not None:
                on_file()
        return checksums

    def commit(self) -> None:
        """Replace the config's folder with the finished shards."""
        final = self.out / "data" / self.config
        shutil.rmtree(final, ignore_errors=True)
        self.staging.rename(final)

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.close()  # type: ignore[attr-defined]
        self._writers.clear()
        shutil.rmtree(self.staging, ignore_errors=True)


def _nbytes(value: object) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, list):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, str):
        return len(value)
    return 8


def write_arrow(out: Path, config: str) -> Path:
    """The config's Parquet shards as a ``save_to_disk`` folder (``datasets.load_from_disk``),
    written next to them under ``out/arrow/<config>`` and swapped in atomically."""
    import datasets

    final = out / "arrow" / config
    staging = out / "arrow" / f".{config}.partial-{os.getpid()}"
    cache = out / ".tcia_trials" / f"cache-{os.getpid()}"
    try:
        loaded = datasets.load_dataset(str(out), config, cache_dir=str(cache))
        loaded.save_to_disk(str(staging))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    return final


def sha256(path: Path) -> str:
    """Hex sha256 of a file (build records keep one per shard, for ``verify``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_build_record(out: Path, config: str, record: dict) -> None:
    folder = out / ".tcia_trials" / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{config}.json", json.dumps(record, indent=2) + "\n")


def read_build_records(out: Path) -> dict[str, dict]:
    """The build records of a dataset folder, by config ({} when there are none)."""
    records = {}
    for path in sorted((out / ".tcia_trials" / "configs").glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text())
        except ValueError as exc:
            raise BuiltDatasetError(
                f"{path}: not a readable build record ({exc}); build the dataset again"
            ) from None
    return records


def card_yaml(
    records: Mapping[str, dict],
    *,
    license_id: str | list[str],
    pretty_name: str,
    tags: Iterable[str],
    declared: Mapping[str, Iterable[str]] | None = None,
    **metadata: object,
) -> str:
    """The hub card's YAML header: configs (data files per split) and dataset_info (features,
    splits, sizes), rendered by ``datasets`` itself so the hub parses it as it parses its own.

    ``records`` are build records (:func:`read_build_records`); ``declared`` (config -> split
    names) adds the data files of configs not built yet, for a card made from a spec alone;
    ``metadata`` are further hub keys (``task_categories``, ``size_categories``,
    ``license_name``, ``license_link``; None values are left out).
    """
    import datasets
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card = DatasetCardData(
        license=license_id, pretty_name=pretty_name, tags=sorted(set(tags)), **metadata
    )
    split_names = {name: list(splits) for name, splits in (declared or {}).items()}
    infos = {}
    for config, record in sorted(records.items()):
        splits = datasets.SplitDict()
        for split in record["splits"]:
            splits.add(datasets.SplitInfo(split["name"], split["num_bytes"], split["num_examples"]))
        features = datasets.Features.from_dict(record["features"])
        infos[config] = DatasetInfo(features=features, config_name=config, splits=splits)
        split_names[config] = [split["name"] for split in record["splits"]]
    configs = {
        config: {
            "data_files": [
                {"split": split, "path": f"data/{config}/{split}-*.parquet"} for split in splits
            ]
        }
        for config, splits in sorted(split_names.items())
    }
    if infos:
        DatasetInfosDict(infos).to_dataset_card_data(card)
    MetadataConfigs(configs).to_dataset_card_data(card)
    return card.to_yaml()


def card_text(yaml_header: str, body: str) -> str:
    """A hub card: the YAML header between ``---`` lines, then the Markdown body."""
    return f"---\n{yaml_header}\n---\n\n{body}"


def atomic_write(path: Path, text: str) -> None:
    """Write a text file so that readers see the old or the new content, never a part."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_card(out: Path, yaml_header: str, body: str) -> None:
    """Write ``out/README.md`` (:func:`card_text`) atomically."""
    atomic_write(out / "README.md", card_text(yaml_header, body))
