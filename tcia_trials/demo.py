"""The end-to-end demo: synthetic collection -> index -> volumes -> lesions -> HuggingFace and
TFDS datasets, loaded back with ``datasets.load_dataset`` and ``tfds.load``, verified, previewed;
then where everything is."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tcia_trials.build import BuildResult, build
from tcia_trials.errors import TciaTrialsError
from tcia_trials.source.annotations import link_annotations, read_annotations
from tcia_trials.source.index import scan
from tcia_trials.source.volume import read_volume
from tcia_trials.synthetic import generate_collection
from tcia_trials.verify import verify

NAME = "synthetic_trial"
#: The examples loaded back from both formats: config -> (fields naming an example, arrays).
LOADED = {
    "volume": (("series_uid",), ("image", "mask", "affine")),
    "lesion_patches": (("series_uid", "lesion_id"), ("patch", "patch_mask")),
}
#: HuggingFace stores these arrays flat, beside their shape.
FLAT = {
    "image": "image_shape",
    "mask": "image_shape",
    "patch": "patch_shape",
    "patch_mask": "patch_shape",
}
#: TFDS file formats, as the summary names them.
FORMAT_NAMES = {"tfrecord": "TFRecord", "array_record": "array_record"}
#: How to read the TFDS data_dir, by file format.
TFDS_USAGE = {
    "tfrecord": f'tfds.load("{NAME}/volume", data_dir=PATH)',
    "array_record": f'tfds.builder("{NAME}/volume", data_dir=PATH, file_format="array_record")'
    '.as_data_source("test")',
}


def run_demo(out: Path, *, patients: int = 4, seed: int = 0, echo=print) -> dict:
    """Generate the synthetic trial collection in ``out/source``, index it, read every image
    series as a volume and its annotations and check them against the ground truth, build the
    HuggingFace and TFDS datasets in ``out/datasets``, load one example of each back from both,
    verify the build and draw previews.  Returns the summary numbers and the paths listed."""
    source, data_dir = Path(out) / "source", Path(out) / "datasets"
    # an earlier run's build goes too: TFDS would reuse its prepared data in the same data_dir
    earlier = {source: "ground_truth.json", data_dir / NAME: "report.json"}
    for folder, marker in earlier.items():
        if folder.exists() and not (folder / marker).is_file():
            raise FileExistsError(
                f"{folder} exists and was not written by the demo; choose another --out"
            )
    for folder in earlier:
        shutil.rmtree(folder, ignore_errors=True)
    file_format = _tfds_file_format(echo)
    started = time.perf_counter()
    truth = json.loads(generate_collection(source, patients=patients, seed=seed).read_text())
    echo(f"1. synthetic collection: {source} ({time.perf_counter() - started:.1f} s)")

    started = time.perf_counter()
    index = scan(source)
    counts = index.summary()
    echo(
        f"2. scan: {counts['patients']} patients, {counts['studies']} studies, {counts['series']} series, "
        f"{counts['instances']} instances; skipped {counts['skipped']}; problems {counts['problems'] or 'none'} "
        f"({time.perf_counter() - started:.2f} s)"
    )

    echo("3. volumes (checked against ground_truth.json):")
    started = time.perf_counter()
    images = [
        series
        for patient in truth["patients"].values()
        for study in patient["studies"]
        for series in study["series"]
        if series["role"] == "image"
    ]
    for expected in images:
        volume = read_volume(index, expected["series_uid"])
        exact = np.allclose(volume.affine, expected["affine"], atol=1e-6) and volume.shape == tuple(
            expected["shape"]
        )
        low, high = float(volume.array.min()), float(volume.array.max())
        tilt = f", gantry tilt {volume.gantry_tilt_deg:.1f} deg" if volume.gantry_tilt_deg else ""
        echo(
            f"   {index.series[expected['series_uid']].patient_id}  {volume.modality:2s} "
            f"{'x'.join(map(str, volume.shape)):>10s} spacing {'/'.join(f'{v:g}' for v in volume.spacing)} mm"
            f"  {volume.array.dtype} {volume.units} [{low:g}, {high:g}]{tilt}  geometry {'exact' if exact else 'MISMATCH'}"
        )
        if not exact:
            raise TciaTrialsError(
                f"series {expected['series_uid']}: geometry differs from the ground truth"
            )
    echo(f"   {len(images)} volumes in {time.perf_counter() - started:.2f} s")

    echo("4. tumor annotations (lesions per annotated series, against ground_truth.json):")
    started = time.perf_counter()
    links = link_annotations(index)
    lesions = 0
    for patient in truth["patients"].values():
        for study in patient["studies"]:
            annotations = read_annotations(index, study["ct_series_uid"], links=links)
            lesions += annotations.lesion_count
            if annotations.lesion_count != len(study["lesions"]):
                raise TciaTrialsError(
                    f"study {study['study_uid']}: lesion count differs from the ground truth"
                )
            found = ", ".join(
                f"{les.label} {les.volume_ml:.1f} mL [{'+'.join(les.sources)}]"
                for les in annotations.lesions
            )
            echo(
                f"   {patient['patient_id']} {study['time_point']:<22s} "
                f"{'no findings' if annotations.no_findings else found}"
            )
    echo(
        f"   {lesions} lesions, {len(links.orphans)} orphan annotation series, {time.perf_counter() - started:.2f} s"
    )

    result = _build(source, data_dir, file_format, echo)
    patient = _load_back(result, file_format, echo)
    _verify(result.out, echo)
    listing = [  # what, where, how to read it
        ("source", source, ""),
        ("HF dataset", result.out, 'datasets.load_dataset(PATH, "volume")'),
        ("TFDS data_dir", result.tfds_dir, TFDS_USAGE.get(file_format, "")),
        ("report", result.out / "report.md", ""),
        ("previews", _previews(result.out, patient, echo), ""),
        ("card", result.out / "README.md", ""),
    ]
    listing = [row for row in listing if row[1] is not None]
    width = max(len(str(path)) for _, path, usage in listing if usage)
    echo("Where everything is:")
    for what, path, usage in listing:
        echo(f"   {what:14s} {path!s:{width}s}  {usage}".rstrip())
    paths = {what: path for what, path, _ in listing}
    return {"volumes": len(images), "lesions": lesions, **counts, "paths": paths}


def _tfds_file_format(echo) -> str | None:
    """TFRecord with TensorFlow, array_record without; None without tensorflow-datasets.  Quiets
    TensorFlow's and TFDS's logs and progress bars."""
    if importlib.util.find_spec("tensorflow_datasets") is None:
        echo(
            "note: tensorflow-datasets is not installed, so no TFDS build (pip install 'tcia-trials[tf]')"
        )
        return None
    from tcia_trials.quiet import import_tensorflow_quietly, quiet_tfds

    import_tensorflow_quietly()
    quiet_tfds()
    if importlib.util.find_spec("tensorflow") is None:
        echo(
            "note: TensorFlow is not installed, so TFDS writes array_record, read with "
            "as_data_source (pip install 'tcia-trials[tf]' for TFRecord and tf.data)"
        )
        return "array_record"
    return "tfrecord"


def _build(source: Path, out: Path, file_format: str | None, echo) -> BuildResult:
    """Build every config in both formats; check that ``load_dataset`` and TFDS count the
    examples the build wrote."""
    import datasets

    datasets.disable_progress_bars()
    formats = ("hf", "tfds") if file_format else ("hf",)
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints "Downloading and preparing ..."
        result = build(
            NAME, source, out, formats=formats, tfds_file_format=file_format or "tfrecord"
        )
    tfds = f", TFDS ({FORMAT_NAMES[file_format]})" if file_format else ""
    echo(
        f"5. build: HuggingFace (Parquet shards, hub card){tfds} in {result.seconds:.1f} s; "
        f"examples per split (datasets.load_dataset{' and TFDS' if file_format else ''} agree):"
    )
    for config, splits in result.configs.items():
        loaded = datasets.load_dataset(str(result.out), config)
        sizes = {split: len(part) for split, part in loaded.items()}
        if sizes != splits or (file_format and result.tfds[config] != splits):
            tfds_sizes = f", TFDS {result.tfds[config]}" if file_format else ""
            raise TciaTrialsError(
                f"config {config}: the build wrote {splits}, load_dataset gives {sizes}{tfds_sizes}"
            )
        echo(f"   {config:15s} " + ", ".join(f"{split} {n}" for split, n in sizes.items()))
    return result


def _load_back(result: BuildResult, file_format: str | None, echo) -> str:
    """The first example of ``volume`` and ``lesion_patches`` from ``datasets.load_dataset``,
    compared with the same example read from TFDS; returns the patient of the lesion patch."""
    import datasets

    reader = {"tfrecord": " and tfds.load", "array_record": " and as_data_source"}
    echo(f"6. one example loaded back with datasets.load_dataset{reader.get(file_format, '')}:")
    for config, (keys, names) in LOADED.items():
        split = next(iter(result.configs[config]))
        example = datasets.load_dataset(str(result.out), config, split=split)
        example = example.with_format("numpy", dtype=None)[0]
        arrays = {
            name: example[name].reshape(example[FLAT[name]]) if name in FLAT else example[name]
            for name in names
        }
        key = tuple(str(example[name]) for name in keys)
        what = example["lesion_id"] if "lesion_id" in keys else example["modality"]
        line = f"   {config}[0]: {example['patient_id']} {what} ({split}): "
        if file_format is None:
            echo(line + ", ".join(f"{n} {a.shape} {a.dtype}" for n, a in arrays.items()))
            continue
        other = next(
            (
                e
                for e in _tfds_examples(result, config, split, file_format)
                if tuple(_text(e[name]) for name in keys) == key
            ),
            None,
        )
        if other is None:
            raise TciaTrialsError(f"{config} {key}: in the HuggingFace dataset, not in TFDS")
        parts = []
        for name, array in arrays.items():
            if array.shape != other[name].shape or not np.array_equal(array, other[name]):
                raise TciaTrialsError(
                    f"{config} {key}: {name} differs between HuggingFace and TFDS"
                )
            dtype = other[name].dtype
            parts.append(
                f"{name} {array.shape} {array.dtype}{'' if dtype == array.dtype else f' (TFDS {dtype})'}"
            )
        echo(f"{line}{', '.join(parts)}: equal in both")
    return str(example["patient_id"])


def _tfds_examples(
    result: BuildResult, config: str, split: str, file_format: str
) -> Iterable[dict]:
    """The examples of one TFDS split as numpy: ``tfds.load`` for TFRecord, ``as_data_source``
    for array_record."""
    import tensorflow_datasets as tfds

    name, data_dir = f"{NAME}/{config}", str(result.tfds_dir)
    if file_format == "array_record":
        builder = tfds.builder(name, data_dir=data_dir, file_format=file_format)
        return builder.as_data_source(split=split)
    return tfds.as_numpy(tfds.load(name, split=split, data_dir=data_dir, download=False))


def _text(value: bytes | str) -> str:
    """TFDS gives strings as bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _verify(dataset: Path, echo) -> None:
    """``tt.verify``: shards against their build records, a sample against the source."""
    started = time.perf_counter()
    checked = verify(dataset)
    echo(f"7. verify: tcia-trials verify {dataset} ({time.perf_counter() - started:.1f} s)")
    for line in checked.checked:
        echo(f"   ok    {line}")
    if not checked.ok:
        raise TciaTrialsError("verify: " + "; ".join(checked.errors))


def _previews(dataset: Path, patient: str, echo) -> Path | None:
    """PNG previews of one patient's lesions: their folder (None without matplotlib)."""
    if importlib.util.find_spec("matplotlib") is None:
        echo(
            "note: matplotlib is not installed, so no previews (pip install 'tcia-trials[preview]')"
        )
        return None
    from tcia_trials.preview import write_previews

    started = time.perf_counter()
    paths = write_previews(dataset, patient=patient)
    echo(
        f"8. previews of {patient}: {len(paths)} PNGs, slices through each lesion with its mask "
        f"and seed point, and a montage ({time.perf_counter() - started:.1f} s)"
    )
    return paths[0].parent
