"""HuggingFace output: read throughput, size and conversion time against baselines of the same run.

Generates a synthetic collection (default 16 patients, CT 80x256x256 + FDG PET: 43 volumes and
107 patches, so that what is measured is reading, not opening each split), builds its
``volume`` and ``lesion_patches`` configs with ``tcia_trials.build``, then measures (best of
N, warm page cache; reads go over every split and touch every page of every array):

- baseline: the same arrays (each volume's image and mask reshaped, each patch and patch_mask)
  saved as raw ``.npy`` files and read back with ``np.load``;
- the local Arrow cache: ``load_dataset(out, config, split=...)`` (preparing the cache is done
  once, before timing) iterated with ``.with_format("numpy", dtype=None)`` (all columns, or only
  the array columns), and with ``.with_format("arrow")`` + ``flatten().to_numpy()``;
- streaming from the Parquet shards: ``load_dataset(..., streaming=True)`` with
  ``.with_format("numpy")`` (all columns, or ``select_columns`` of the array columns) and
  ``.with_format("arrow")``, and pyarrow's own ``ParquetFile.iter_batches(batch_size=1)`` (no
  ``datasets``) as the decoding floor;
- output bytes (Parquet shards) against the input DICOM bytes (annotated image series and their
  annotation series), also for a copy with CT-like noise and with other Parquet writer settings
  (the phantom is piecewise constant, so dictionary encoding makes its size unrealistically small);
- conversion time against the volume-read floor (``read_volume`` of every annotated series).

Prints seconds, MB/s and ratios (machines are noisy: compare ratios, not seconds).

    python benchmarks/bench_hf.py [--patients 16] [--slices 80] [--size 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from timing import best_of

import tcia_trials as tt
from tcia_trials.build import build
from tcia_trials.hf import DEFAULT_ROWS_PER_GROUP, ROWS_PER_GROUP
from tcia_trials.synthetic import generate_collection

CONFIGS = ("volume", "lesion_patches")
ARRAYS = {"volume": ("image", "mask"), "lesion_patches": ("patch", "patch_mask")}
NOISE_HU = 20.0
PAGE = 4096

Reader = Callable[[], Iterator[dict[str, np.ndarray]]]


def touch(array: np.ndarray) -> int:
    """Read one byte of every page (memory-mapped arrays are not read until touched)."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return int(flat[::PAGE].sum())


def consume(reader: Reader, config: str) -> int:
    """Iterate a reader touching every array; the number of examples."""
    count = 0
    for arrays in reader():
        for name in ARRAYS[config]:
            touch(arrays[name])
        count += 1
    return count


def shaped(config: str, example: dict) -> dict[str, np.ndarray]:
    """The example's arrays, volumes reshaped with ``image_shape``."""
    key = "image_shape" if config == "volume" else "patch_shape"
    shape = tuple(int(v) for v in example[key])
    return {name: np.asarray(example[name]).reshape(shape) for name in ARRAYS[config]}


def arrow_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A (possibly nested, possibly Array3D extension) list column of one row as a flat array.

    ``flatten()`` respects the row's slice; ``.values`` would return the whole chunk's values.
    """
    if isinstance(column, pa.ChunkedArray):
        chunks = [chunk for chunk in column.chunks if len(chunk)]
        column = chunks[0] if len(chunks) == 1 else column.combine_chunks()
    array = column
    if len(array) != 1:
        raise ValueError(f"expected one row, got {len(array)}")
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False)


def arrow_shaped(config: str, table: pa.Table | pa.RecordBatch) -> dict:
    key = "image_shape" if config == "volume" else "patch_shape"
    shape = tuple(int(v) for v in arrow_values(table.column(key)))
    return {name: arrow_values(table.column(name)).reshape(shape) for name in ARRAYS[config]}


def npy_reader(files: list[dict[str, Path]]) -> Iterator[dict[str, np.ndarray]]:
    for example in files:
        yield {name: np.load(path) for name, path in example.items()}


def array_columns(config: str) -> list[str]:
    return [*ARRAYS[config], "image_shape" if config == "volume" else "patch_shape"]


def local_numpy(config: str, local: dict[str, datasets.Dataset], only_arrays: bool = False):
    columns = array_columns(config) if only_arrays else None
    for ds in local.values():
        for example in ds.with_format("numpy", columns=columns, dtype=None):
            yield shaped(config, example)


def batch_examples(config: str, batch: dict) -> Iterator[dict[str, np.ndarray]]:
    """The shaped arrays of every example of a numpy batch."""
    for n in range(len(batch[ARRAYS[config][0]])):
        yield shaped(config, {name: values[n] for name, values in batch.items()})


def local_numpy_batches(config: str, local: dict[str, datasets.Dataset], batch_size: int = 32):
    """All columns, read as numpy batches (how a training loader reads), split per example."""
    for ds in local.values():
        for batch in ds.with_format("numpy", dtype=None).iter(batch_size=batch_size):
            yield from batch_examples(config, batch)


def local_arrow(config: str, local: dict[str, datasets.Dataset]):
    for ds in local.values():
        for table in ds.with_format("arrow").iter(batch_size=1):
            yield arrow_shaped(config, table)


def stream_numpy(
    config: str, streamed: dict[str, datasets.IterableDataset], only_arrays: bool = False
):
    for ds in streamed.values():
        if only_arrays:
            ds = ds.select_columns(array_columns(config))
        for example in ds.with_format("numpy"):
            yield shaped(config, example)


def stream_batches(
    config: str, streamed: dict[str, datasets.IterableDataset], fmt: str, batch_size: int = 32
):
    """The array columns streamed in batches (how a training loader reads), split per example."""
    for ds in streamed.values():
        columns = ds.select_columns(array_columns(config)).with_format(fmt)
        for batch in columns.iter(batch_size=batch_size):
            if fmt == "arrow":
                for n in range(batch.num_rows):
                    yield arrow_shaped(config, batch.slice(n, 1))
            else:
                yield from batch_examples(config, batch)


def stream_arrow(config: str, streamed: dict[str, datasets.IterableDataset]):
    for ds in streamed.values():
        for table in ds.select_columns(array_columns(config)).with_format("arrow"):
            yield arrow_shaped(config, table)


def pyarrow_batches(config: str, paths: list[Path]):
    for path in paths:
        batches = pq.ParquetFile(path).iter_batches(
            batch_size=1, columns=array_columns(config), use_threads=False
        )
        for batch in batches:
            yield arrow_shaped(config, batch)


def config_readers(
    config: str,
    npy_files: list[dict[str, Path]],
    local: dict[str, datasets.Dataset],
    streamed: dict[str, datasets.IterableDataset],
    paths: list[Path],
) -> dict[str, tuple[Reader, str]]:
    """Reader name -> (a function iterating every example's arrays, the target vs .npy)."""
    return {
        "raw .npy (np.load)": (partial(npy_reader, npy_files), ""),
        "Arrow cache, numpy": (partial(local_numpy, config, local), ">= 0.5x"),
        "Arrow cache, numpy, array columns only": (
            partial(local_numpy, config, local, only_arrays=True),
            "",
        ),
        "Arrow cache, numpy, batches of 32": (
            partial(local_numpy_batches, config, local),
            "",
        ),
        "Arrow cache, arrow + flatten().to_numpy()": (
            partial(local_arrow, config, local),
            "",
        ),
        "streaming, numpy": (partial(stream_numpy, config, streamed), ">= 0.2x"),
        "streaming, numpy, array columns only": (
            partial(stream_numpy, config, streamed, only_arrays=True),
            "",
        ),
        "streaming, arrow, array columns only": (
            partial(stream_arrow, config, streamed),
            "",
        ),
        "streaming, numpy, array columns, batches of 32": (
            partial(stream_batches, config, streamed, "numpy"),
            "",
        ),
        "streaming, arrow, array columns, batches of 32": (
            partial(stream_batches, config, streamed, "arrow"),
            "",
        ),
        "pyarrow iter_batches, 1 thread, no datasets": (
            partial(pyarrow_batches, config, paths),
            "",
        ),
    }


def add_source_arguments(parser: argparse.ArgumentParser, *, patients: int = 4) -> None:
    """The options of the benchmarks' synthetic collection (and best-of-N)."""
    parser.add_argument("--patients", type=int, default=patients)
    parser.add_argument("--slices", type=int, default=80, help="CT slices")
    parser.add_argument("--size", type=int, default=256, help="CT rows and columns")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pet", action="store_true", help="CT only (image stored as int16)")


def synthetic_source(source: Path, args: argparse.Namespace) -> tuple[tt.Index, list[str], int]:
    """Generate the benchmark's collection (warm in the page cache) and describe it: its index,
    the annotated image series and the DICOM bytes they and their annotations take."""
    generate_collection(
        source,
        patients=args.patients,
        seed=args.seed,
        ct_shape=(args.slices, args.size, args.size),
        with_pet=not args.no_pet,
    )
    index = tt.scan(source)
    links = tt.link_annotations(index)
    annotated = [uid for uid in links.by_image if uid in index.series]
    image_bytes, annotation_bytes, n_files = dicom_bytes(index, links)
    for series in index.series.values():  # warm the page cache
        for instance in series.instances:
            instance.path.read_bytes()
    print(
        f"source: {args.patients} patients, CT {args.slices}x{args.size}x{args.size}"
        f"{'' if args.no_pet else ' + PET'}; {len(annotated)} annotated series, {n_files} "
        f"DICOM files, {image_bytes / 1e6:.1f} MB images + {annotation_bytes / 1e6:.1f} MB "
        "annotations"
    )
    return index, annotated, image_bytes + annotation_bytes


def dicom_bytes(index: tt.Index, links: tt.AnnotationLinks) -> tuple[int, int, int]:
    """Bytes of the annotated image series, of their annotation series, and their file count."""
    images = [uid for uid in links.by_image if uid in index.series]
    annotations = {uid for uid in images for uid in links.by_image[uid] if uid in index.series}
    image_paths = [i.path for uid in images for i in index.series[uid].instances]
    annotation_paths = [i.path for uid in annotations for i in index.series[uid].instances]
    return (
        sum(p.stat().st_size for p in image_paths),
        sum(p.stat().st_size for p in annotation_paths),
        len(image_paths) + len(annotation_paths),
    )


def noisy(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` + round(N(0, NOISE_HU)), same dtype (integers clipped to its range)."""
    noise = np.round(rng.normal(0.0, NOISE_HU, values.shape))
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        result = np.clip(values.astype(np.int64) + noise.astype(np.int64), info.min, info.max)
    else:
        result = values + noise
    return result.astype(values.dtype)


def with_noise(array: pa.Array, rng: np.random.Generator) -> pa.Array:
    """The list column with :func:`noisy` values (structure kept)."""
    if isinstance(array.type, pa.ExtensionType):
        return pa.ExtensionArray.from_storage(array.type, with_noise(array.storage, rng))
    if pa.types.is_list(array.type):
        return pa.ListArray.from_arrays(array.offsets, with_noise(array.values, rng))
    return pa.array(noisy(array.to_numpy(zero_copy_only=False), rng))


def writer_options(table: pa.Table, variant: str, noisy_columns: tuple[str, ...]) -> dict:
    """Parquet writer options: as ``datasets.arrow_writer.ParquetWriter`` sets them, or a variant."""
    from datasets import config as hf_config
    from datasets.arrow_writer import get_parquet_column_options

    features = datasets.Features.from_arrow_schema(table.schema)
    options = get_parquet_column_options(features, table.schema)
    options.update(
        use_content_defined_chunking=hf_config.DEFAULT_CDC_OPTIONS, write_page_index=True
    )
    if variant == "built":
        return options
    options["compression"] = {leaf: "zstd" for leaf in options["compression"]}
    if variant == "zstd":
        return options
    # zstd + BYTE_STREAM_SPLIT (no dictionary) on the voxel columns
    split_leaves = [
        leaf for leaf in options["use_dictionary"] if leaf.split(".")[0] in noisy_columns
    ]
    options["use_dictionary"] = [
        leaf for leaf in options["use_dictionary"] if leaf not in split_leaves
    ]
    options["column_encoding"] = {
        **options["column_encoding"],
        **dict.fromkeys(split_leaves, "BYTE_STREAM_SPLIT"),
    }
    return options


def rewritten_bytes(
    shards: list[Path], config: str, variant: str, noisy: bool, folder: Path
) -> int:
    """Total bytes of the shards rewritten with a writer variant (optionally with noise)."""
    noisy_columns = ARRAYS[config][:1]  # image / patch
    rng = np.random.default_rng(0)
    total = 0
    for number, shard in enumerate(shards):
        table = pq.read_table(shard)
        if noisy:
            for name in noisy_columns:
                column = with_noise(table.column(name).combine_chunks(), rng)
                table = table.set_column(table.schema.get_field_index(name), name, column)
        path = folder / f"{config}-{variant}-{int(noisy)}-{number}.parquet"
        pq.write_table(
            table,
            path,
            row_group_size=ROWS_PER_GROUP.get(config, DEFAULT_ROWS_PER_GROUP),
            **writer_options(table, variant, noisy_columns),
        )
        total += path.stat().st_size
        path.unlink()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(parser, patients=16)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    logging.getLogger("tcia_trials").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source, cache = tmp / "source", tmp / "hf-cache"
        index, annotated, dicom_total = synthetic_source(source, args)

        conversions = []
        for _ in range(args.repeat):  # best of N: the first build also pays for lazy imports
            start = time.perf_counter()
            result = build("synthetic_trial", source, tmp / "out", config=CONFIGS)
            conversions.append(time.perf_counter() - start)
        conversion = min(conversions)
        read_floor = best_of(
            lambda: [tt.read_volume(index, uid) for uid in annotated], args.repeat, warm=True
        )
        examples = {c: sum(result.configs[c].values()) for c in CONFIGS}
        print(
            "built: "
            + ", ".join(f"{c} {n} examples" for c, n in examples.items())
            + (f"; {len(result.skipped)} skipped" if result.skipped else "")
        )

        rows: list[tuple[str, str, str, float, int, int]] = []
        dtype_notes: list[str] = []
        shards: dict[str, list[Path]] = {}
        for config in CONFIGS:
            splits = list(result.configs[config])
            shards[config] = sorted((result.out / "data" / config).glob("*.parquet"))
            start = time.perf_counter()
            local = {
                s: datasets.load_dataset(str(result.out), config, split=s, cache_dir=str(cache))
                for s in splits
            }
            prepare = time.perf_counter() - start
            streamed = {
                s: datasets.load_dataset(
                    str(result.out), config, split=s, streaming=True, cache_dir=str(cache)
                )
                for s in splits
            }

            # baseline: the same arrays as .npy files
            npy_folder = tmp / "npy" / config
            npy_folder.mkdir(parents=True)
            npy_files: list[dict[str, Path]] = []
            stored_dtypes: dict[str, np.dtype] = {}
            data_bytes = 0
            for s in splits:
                for example in local[s].with_format("numpy", dtype=None):
                    files = {}
                    for name, array in shaped(config, example).items():
                        path = npy_folder / f"{len(npy_files):05d}-{name}.npy"
                        np.save(path, array)
                        files[name] = path
                        stored_dtypes[name] = array.dtype
                        data_bytes += array.nbytes
                    npy_files.append(files)

            for name, (reader, target) in config_readers(
                config, npy_files, local, streamed, shards[config]
            ).items():
                counted = consume(reader, config)  # also the warm-up
                if counted != examples[config]:
                    raise AssertionError(f"{name}: {counted} examples, expected {examples[config]}")
                seconds = best_of(partial(consume, reader, config), args.repeat, warm=False)
                rows.append((config, name, target, seconds, examples[config], data_bytes))
            first = next(iter(stream_numpy(config, streamed)))
            for name, array in first.items():
                if array.dtype != stored_dtypes[name]:
                    dtype_notes.append(
                        f"{config}: streaming numpy format returns {name} as {array.dtype} "
                        f"(stored {stored_dtypes[name]})"
                    )
            print(
                f"{config}: Arrow cache prepared in {prepare:.2f} s (not in the timings); "
                f"{data_bytes / 1e6:.0f} MB of arrays"
            )

        print()
        print(
            f"{'config':15s} {'reader':44s} {'best s':>7s} {'ex/s':>7s} {'MB/s':>7s} "
            f"{'vs .npy':>8s} {'target':>8s}"
        )
        baseline: dict[str, float] = {}
        for config, name, target, seconds, count, nbytes in rows:
            baseline.setdefault(config, seconds)
            print(
                f"{config:15s} {name:44s} {seconds:7.3f} {count / seconds:7.1f} "
                f"{nbytes / 1e6 / seconds:7.0f} {baseline[config] / seconds:7.2f}x {target:>8s}"
            )
        for note in dtype_notes:
            print(f"note: {note}")

        print()
        parquet = {c: sum(p.stat().st_size for p in shards[c]) for c in CONFIGS}
        print(f"{'output / input DICOM bytes':50s} {'MB':>8s} {'ratio':>8s} {'target':>8s}")
        print(f"{'input DICOM (images + annotations)':50s} {dicom_total / 1e6:8.1f}")
        for config in CONFIGS:
            print(
                f"{'Parquet ' + config:50s} {parquet[config] / 1e6:8.2f} "
                f"{parquet[config] / dicom_total:7.3f}x"
            )
        both = sum(parquet.values())
        print(f"{'Parquet both':50s} {both / 1e6:8.2f} {both / dicom_total:7.3f}x {'<= 1.0x':>8s}")
        what_if = tmp / "what-if"
        what_if.mkdir()
        for noisy in (False, True):
            for variant, label in (
                ("built", "as built (snappy, dictionary)"),
                ("zstd", "zstd"),
                ("split", "zstd + BYTE_STREAM_SPLIT voxels"),
            ):
                if not noisy and variant == "built":
                    continue  # the row above
                size = sum(rewritten_bytes(shards[c], c, variant, noisy, what_if) for c in CONFIGS)
                prefix = f"+noise {NOISE_HU:.0f} HU, " if noisy else ""
                print(
                    f"{'both, ' + prefix + label:50s} {size / 1e6:8.2f} {size / dicom_total:7.3f}x"
                )

        print()
        print(f"{'conversion vs volume-read floor':50s} {'s':>8s} {'ratio':>8s}")
        print(f"{'read_volume of every annotated series':50s} {read_floor:8.2f}")
        print(
            f"{'build volume + lesion_patches':50s} {conversion:8.2f} "
            f"{conversion / read_floor:7.2f}x  (every series read once; most of the rest is "
            "parsing the annotation objects)"
        )


if __name__ == "__main__":
    main()
