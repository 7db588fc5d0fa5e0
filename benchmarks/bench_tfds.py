"""TFDS output: read throughput, size and conversion time against baselines of the same run.

Generates the synthetic collection of ``bench_hf.py`` (default 4 patients, CT 80x256x256 + FDG
PET), writes its ``volume`` and ``lesion_patches`` configs with ``tcia_trials.tfds.write_tfds``
as TFRecord and as array_record, then measures (warm page cache; reads touch every page of every
array):

- read throughput in steady state, how a training loop reads: ONE iterator over every example
  (``split='train+validation+test'``) repeated for E epochs, E chosen so that the run lasts
  >= ``--seconds`` past its first example; ms per example after the first (best of N), and
  separately the start-up: the time from creating the iterator to its first example;
- baseline: the same arrays (image and mask of each volume, patch and patch_mask of each patch)
  saved as raw ``.npy`` files and read back E times with ``np.load``;
- TFRecord: ``builder.as_dataset(split, read_config=tfds.ReadConfig(try_autocache=False))``
  ``.repeat(E)`` (the builder made once; without TFDS's auto-cache, which keeps datasets under
  250 MiB decoded in RAM), every feature decoded, with ``as_supervised=True``, with
  ``PartialDecoding`` of the arrays, with both, and for patches ``PartialDecoding`` +
  ``batch(32)`` + ``prefetch``;
- array_record: ``builder.as_data_source(split)`` indexed element by element E times, and for
  patches 32 at a time (``__getitems__``, how a PyTorch/Grain loader reads); the same with
  ``tcia_trials.tfds_arrays.array_source``, which decodes only the arrays;
- output bytes of both formats against the input DICOM bytes (annotated image series and their
  annotation series), also for a copy with CT-like noise (the phantom is piecewise constant);
- the storage of the volume image (with noise) and mask, and of the patch mask (raw bytes or
  zlib): bytes and read time per array in both formats (steady state: one iterator of >= 64
  arrays, after its first; best of N);
- conversion time against the volume-read floor (``read_volume`` of every annotated series).

Prints seconds, MB/s and ratios (machines are noisy: compare ratios, not seconds).

    python benchmarks/bench_tfds.py [--patients 4] [--slices 80] [--size 256] [--repeat 3]
        [--seconds 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging
from bench_hf import (
    ARRAYS,
    CONFIGS,
    NOISE_HU,
    add_source_arguments,
    noisy,
    synthetic_source,
    touch,
)
from bench_hf import npy_reader as npy_examples
from timing import best_of

import tcia_trials as tt
from tcia_trials.prepare import prepare
from tcia_trials.registry import builder as spec_of
from tcia_trials.tfds import FILE_FORMATS, write_tfds
from tcia_trials.tfds_arrays import array_source

NAME = "synthetic_trial"
BATCH = 32
#: Arrays read (at least) per storage measurement, over as many epochs as that takes.
MIN_READS = 64
#: Read throughput target of ``lesion_patches`` against ``np.load``.
TARGET = {"lesion_patches": 0.5}
BASELINE = "raw .npy (np.load)"
F = tfds.features
#: A reader: every example's arrays, the given number of epochs, from one iterator.
Epochs = Callable[[int], Iterator[dict[str, np.ndarray]]]


def npy_epochs(files: list[dict[str, Path]], epochs: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example's ``.npy`` files, loaded ``epochs`` times."""
    for _ in range(epochs):
        yield from npy_examples(files)


def tfds_epochs(
    config: str, builder, split: str, epochs: int, *, batch_size: int = 1, **options
) -> Iterator[dict[str, np.ndarray]]:
    """Every example of ``split``, ``epochs`` times, from one ``as_dataset(**options)`` iterator
    without auto-cache; with ``batch_size`` > 1 batched and prefetched, and split per example."""
    import tensorflow as tf  # after TF_CPP_MIN_LOG_LEVEL is set

    dataset = builder.as_dataset(split=split, read_config=uncached(), **options).repeat(epochs)
    if batch_size > 1:
        dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    for item in dataset.as_numpy_iterator():
        arrays = dict(zip(ARRAYS[config], item, strict=True)) if isinstance(item, tuple) else item
        if batch_size == 1:
            yield arrays
            continue
        for n in range(len(arrays[ARRAYS[config][0]])):
            yield {name: arrays[name][n] for name in ARRAYS[config]}


def source_epochs(make_source: Callable, epochs: int, *, batch_size: int = 1) -> Iterator[dict]:
    """Every element of a source made by ``make_source()``, ``epochs`` times, by index or
    ``batch_size`` at a time."""
    source = make_source()
    for _ in range(epochs):
        for start in range(0, len(source), batch_size):
            if batch_size == 1:
                yield source[start]
            else:
                yield from source.__getitems__(
                    list(range(start, min(start + batch_size, len(source))))
                )


def uncached() -> tfds.ReadConfig:
    """No auto-cache: TFDS keeps decoded datasets under 250 MiB in RAM after the first pass
    (the benchmark's datasets are that small, real collections are not)."""
    return tfds.ReadConfig(try_autocache=False)


def config_readers(
    config: str, data_dirs: dict[str, Path], split: str, npy_files: list[dict[str, Path]]
) -> dict[str, Epochs]:
    """Reader name -> a function iterating every example's arrays for a number of epochs."""
    tfrecord = tfds.builder(f"{NAME}/{config}", data_dir=str(data_dirs["tfrecord"]))
    array_record = tfds.builder(f"{NAME}/{config}", data_dir=str(data_dirs["array_record"]))
    arrays = tfds.decode.PartialDecoding(dict.fromkeys(ARRAYS[config], True))
    dataset = partial(tfds_epochs, config, tfrecord, split)
    source = partial(source_epochs, partial(array_record.as_data_source, split=split))
    readers: dict[str, Epochs] = {
        BASELINE: partial(npy_epochs, npy_files),
        "TFRecord: every feature decoded": dataset,
        "TFRecord: as_supervised=True": partial(dataset, as_supervised=True),
        "TFRecord: PartialDecoding of the arrays": partial(dataset, decoders=arrays),
        "TFRecord: as_supervised + PartialDecoding": partial(
            dataset, as_supervised=True, decoders=arrays
        ),
    }
    if config == "lesion_patches":  # fixed shape: batchable
        readers[f"TFRecord: PartialDecoding, batch({BATCH}) + prefetch"] = partial(
            dataset, decoders=arrays, batch_size=BATCH
        )
    arrays_only = partial(source_epochs, partial(array_source, array_record, split, ARRAYS[config]))
    readers["array_record: as_data_source()[i]"] = source
    readers["array_record: array_source()[i] (the arrays)"] = arrays_only
    if config == "lesion_patches":
        readers[f"array_record: as_data_source, {BATCH} at a time"] = partial(
            source, batch_size=BATCH
        )
        readers[f"array_record: array_source, {BATCH} at a time"] = partial(
            arrays_only, batch_size=BATCH
        )
    return readers


def timed(reader: Epochs, names: tuple[str, ...], epochs: int) -> tuple[float, float, int]:
    """One iterator of ``epochs`` epochs touching arrays ``names``: (seconds to its first
    example, seconds from then to its last, examples)."""
    start = time.perf_counter()
    first = start
    count = 0
    for arrays in reader(epochs):
        for name in names:
            touch(arrays[name])
        count += 1
        if count == 1:
            first = time.perf_counter()
    return first - start, time.perf_counter() - first, count


def epochs_for(reader: Epochs, config: str, seconds: float) -> int:
    """Epochs that keep one iterator busy ``seconds`` past its first example (estimated from
    runs of growing length; also the warm-up)."""
    epochs = 1
    while True:
        steady = timed(reader, ARRAYS[config], epochs)[1]
        if steady >= seconds / 4:
            return max(epochs, math.ceil(epochs * seconds / steady))
        epochs *= 4


def shard_bytes(folder: Path, file_format: str) -> int:
    """Total bytes of the shards of one file format under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob(f"*.{file_format}-*"))


def quiet() -> contextlib.AbstractContextManager:
    """TFDS prints "Downloading and preparing dataset ..." to stdout on every write."""
    return contextlib.redirect_stdout(io.StringIO())


def store(name: str, features: F.FeatureConnector, splits: dict, data_dir: Path, fmt: str):
    """A throwaway TFDS dataset of ``(key, example)`` iterables per split."""
    with quiet():
        return tfds.dataset_builders.store_as_tfds_dataset(
            name=name,
            version="1.0.0",
            features=features,
            split_datasets=splits,
            data_dir=str(data_dir),
            file_format=fmt,
        )


def noisy_examples(source, name: str) -> Iterator[tuple[str, dict]]:
    """The source's examples with :func:`noisy` values of array ``name`` (same noise per call)."""
    rng = np.random.default_rng(0)
    for n in range(len(source)):
        example = source[n]
        example[name] = noisy(example[name], rng)
        yield str(n), example


def noisy_copy_bytes(config: str, data_dirs: dict[str, Path], fmt: str, folder: Path) -> int:
    """Shard bytes of ``config`` written again with noisy images/patches."""
    built = tfds.builder(f"{NAME}/{config}", data_dir=str(data_dirs["array_record"]))
    splits = {
        s: noisy_examples(built.as_data_source(split=s), ARRAYS[config][0])
        for s in built.info.splits
    }
    store(f"noisy_{config}", built.info.features, splits, folder / fmt, fmt)
    return shard_bytes(folder / fmt / f"noisy_{config}", fmt)


def train_epochs(built, epochs: int) -> Iterator[dict[str, np.ndarray]]:
    """The train split of a TFRecord dataset, ``epochs`` times, from one iterator."""
    dataset = built.as_dataset(split="train", read_config=uncached())
    return dataset.repeat(epochs).as_numpy_iterator()


def encoding_rows(tensors: dict[str, list[np.ndarray]], folder: Path, repeat: int) -> list[tuple]:
    """(array, encoding, format, raw bytes, shard bytes, write s, read s) of each storage of
    each named list of arrays (a fixed shape when they all share one, as patches do)."""
    rows = []
    for name, arrays in tensors.items():
        examples = [(str(n), {name: array}) for n, array in enumerate(arrays)]
        raw = sum(a.nbytes for a in arrays)
        shapes = {a.shape for a in arrays}
        shape = shapes.pop() if len(shapes) == 1 else (None,) * arrays[0].ndim
        for encoding in (F.Encoding.BYTES, F.Encoding.ZLIB):
            tensor = F.Tensor(shape=shape, dtype=arrays[0].dtype, encoding=encoding)
            dataset = f"{name}_{encoding.value}"
            for fmt in FILE_FORMATS:
                start = time.perf_counter()
                built = store(
                    dataset, F.FeaturesDict({name: tensor}), {"train": examples}, folder / fmt, fmt
                )
                write = time.perf_counter() - start
                epochs = math.ceil(MIN_READS / len(arrays))
                if fmt == "tfrecord":
                    reader = partial(train_epochs, built)
                else:
                    reader = partial(source_epochs, partial(built.as_data_source, split="train"))
                runs = [timed(reader, (name,), epochs) for _ in range(repeat)]
                read = min(steady / (count - 1) for _, steady, count in runs)
                size = shard_bytes(folder / fmt / dataset, fmt)
                rows.append((name, encoding.value, fmt, raw, size, write, read))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_source_arguments(parser)
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="minimum steady-state time of a read"
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow is imported lazily
    absl_logging.set_verbosity(absl_logging.ERROR)
    tfds.disable_progress_bar()
    logging.getLogger("tcia_trials").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source"
        index, annotated, dicom_total = synthetic_source(source, args)

        # conversion (best of N: the first write also pays for lazy imports); the first
        # output of each format is the one read below
        conversion: dict[str, float] = {}
        data_dirs: dict[str, Path] = {}
        for fmt in FILE_FORMATS:
            times = []
            for run in range(args.repeat):
                out = tmp / f"{fmt}-{run}"
                with quiet():
                    start = time.perf_counter()
                    prepared = prepare(spec_of(NAME), source)
                    counts = write_tfds(prepared, CONFIGS, out, file_format=fmt)
                    times.append(time.perf_counter() - start)
                if run:
                    shutil.rmtree(out)
            conversion[fmt] = min(times)
            data_dirs[fmt] = tmp / f"{fmt}-0"
        read_floor = best_of(
            lambda: [tt.read_volume(index, uid) for uid in annotated], args.repeat, warm=True
        )
        examples = {c: sum(counts[c].values()) for c in CONFIGS}
        print("built: " + ", ".join(f"{c} {n} examples" for c, n in examples.items()))

        rows: list[tuple[str, str, int, float, float, float]] = []
        volumes: list[dict[str, np.ndarray]] = []
        patch_masks: list[np.ndarray] = []
        array_bytes: dict[str, int] = {}
        for config in CONFIGS:
            split = "+".join(counts[config])
            built = tfds.builder(f"{NAME}/{config}", data_dir=str(data_dirs["array_record"]))

            # baseline: the same arrays (as TFDS returns them) as .npy files
            npy_folder = tmp / "npy" / config
            npy_folder.mkdir(parents=True)
            npy_files: list[dict[str, Path]] = []
            data_bytes = 0
            for example in source_epochs(partial(built.as_data_source, split=split), 1):
                files = {}
                for name in ARRAYS[config]:
                    path = npy_folder / f"{len(npy_files):05d}-{name}.npy"
                    np.save(path, example[name])
                    files[name] = path
                    data_bytes += example[name].nbytes
                npy_files.append(files)
                if config == "volume":
                    volumes.append({name: example[name] for name in ARRAYS[config]})
                else:
                    patch_masks.append(example["patch_mask"])
            array_bytes[config] = data_bytes

            for name, reader in config_readers(config, data_dirs, split, npy_files).items():
                epochs = epochs_for(reader, config, args.seconds)
                runs = [timed(reader, ARRAYS[config], epochs) for _ in range(args.repeat)]
                expected = epochs * examples[config]
                if any(count != expected for *_, count in runs):
                    raise AssertionError(f"{name}: {runs}, expected {expected} examples")
                startup = min(first for first, _, _ in runs)
                per_example = min(steady for _, steady, _ in runs) / (expected - 1)
                rows.append((config, name, epochs, startup, per_example, data_bytes / 1e6))
        dtypes = ", ".join(f"{n} {a.dtype}" for n, a in volumes[0].items())
        print(f"volume arrays: {dtypes} (the mask's uint32 bits, viewed as int32)")

        print()
        print(
            f"steady state: one iterator over every split repeated for E epochs (>= "
            f"{args.seconds:g} s), ms per example after the first; start: time to the first"
        )
        width = max(len(row[1]) for row in rows)
        print(
            f"{'config':15s} {'reader':{width}s} {'E':>5s} {'start s':>8s} {'ms/ex':>7s} "
            f"{'MB/s':>6s} {'vs .npy':>8s} {'target':>13s}"
        )
        baseline: dict[str, float] = {}
        for config, name, epochs, startup, per_example, megabytes in rows:
            baseline.setdefault(config, per_example)
            ratio = baseline[config] / per_example
            target = ""
            if config in TARGET and name != BASELINE:
                met = "met" if ratio >= TARGET[config] else "not met"
                target = f">= {TARGET[config]}x {met}"
            print(
                f"{config:15s} {name:{width}s} {epochs:5d} {startup:8.3f} "
                f"{per_example * 1e3:7.2f} {megabytes / examples[config] / per_example:6.0f} "
                f"{ratio:7.2f}x {target:>13s}"
            )

        print()
        print(f"{'output / input DICOM bytes':50s} {'MB':>8s} {'ratio':>8s}")
        print(f"{'input DICOM (images + annotations)':50s} {dicom_total / 1e6:8.1f}")
        for config, size in array_bytes.items():
            print(
                f"{'arrays of ' + config + ' (decoded, as .npy)':50s} {size / 1e6:8.2f} "
                f"{size / dicom_total:7.3f}x"
            )
        noisy_folder = tmp / "noisy"
        for fmt in FILE_FORMATS:
            for label, sizes in (
                ("", {c: shard_bytes(data_dirs[fmt] / NAME / c, fmt) for c in CONFIGS}),
                (
                    f", +noise {NOISE_HU:.0f} HU",
                    {c: noisy_copy_bytes(c, data_dirs, fmt, noisy_folder) for c in CONFIGS},
                ),
            ):
                for config, size in sizes.items():
                    print(
                        f"{fmt + ' ' + config + label:50s} {size / 1e6:8.2f} "
                        f"{size / dicom_total:7.3f}x"
                    )
                both = sum(sizes.values())
                print(f"{fmt + ' both' + label:50s} {both / 1e6:8.2f} {both / dicom_total:7.3f}x")

        print()
        config_of = {"image": "volume", "mask": "volume", "patch_mask": "lesion_patches"}
        current = {
            name: tfds.builder(f"{NAME}/{config}", data_dir=str(data_dirs["tfrecord"]))
            .info.features[name]
            .to_json_content()
            .encoding
            for name, config in config_of.items()
        }
        rng = np.random.default_rng(0)
        tensors = {
            "image": [noisy(v["image"], rng) for v in volumes],
            "mask": [v["mask"] for v in volumes],
            "patch_mask": patch_masks,
        }
        print(
            f"tensors: volume image +noise {NOISE_HU:.0f} HU ({volumes[0]['image'].dtype}), "
            f"volume mask ({volumes[0]['mask'].dtype}), patch mask ({patch_masks[0].dtype} "
            f"{'x'.join(map(str, patch_masks[0].shape))}); read: ms per array, steady state; "
            "* = as built"
        )
        print(
            f"{'array':10s} {'storage':9s} {'format':13s} {'MB':>8s} {'/ raw':>7s} "
            f"{'write s':>8s} {'read ms':>8s} {'MB/s':>7s}"
        )
        for name, encoding, fmt, raw, size, write, read in encoding_rows(
            tensors, tmp / "encodings", args.repeat
        ):
            mark = "*" if current[name] == encoding else " "
            per_array = raw / len(tensors[name])
            print(
                f"{name:10s} {encoding + mark:9s} {fmt:13s} {size / 1e6:8.2f} {size / raw:6.3f}x "
                f"{write:8.2f} {read * 1e3:8.3f} {per_array / 1e6 / read:7.0f}"
            )

        print()
        print(f"{'conversion vs volume-read floor':60s} {'s':>8s} {'ratio':>8s}")
        print(f"{'read_volume of every annotated series':60s} {read_floor:8.2f}")
        for fmt in FILE_FORMATS:
            print(
                f"{'prepare + write_tfds volume + lesion_patches, ' + fmt:60s} "
                f"{conversion[fmt]:8.2f} {conversion[fmt] / read_floor:7.2f}x"
            )


if __name__ == "__main__":
    main()
