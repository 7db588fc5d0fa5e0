"""The end-to-end demo: synthetic collection -> index -> volumes -> lesions -> HuggingFace
datasets loaded back, with a summary.

It grows as the project does (annotations, HuggingFace and TFDS builds join it as they land).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from tcia_trials.build import build
from tcia_trials.errors import TciaTrialsError
from tcia_trials.source.annotations import link_annotations, read_annotations
from tcia_trials.source.index import scan
from tcia_trials.source.volume import read_volume
from tcia_trials.synthetic import generate_collection


def run_demo(out: Path, *, patients: int = 4, seed: int = 0, echo=print) -> dict:
    """Generate the synthetic trial collection in ``out/source``, index it, read every image
    series as a volume and check it against the ground truth.  Returns the summary numbers."""
    source = Path(out) / "source"
    if source.exists():
        if not (source / "ground_truth.json").is_file():
            raise FileExistsError(
                f"{source} exists and was not written by the demo; choose another --out"
            )
        shutil.rmtree(source)
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

    echo(
        "5. HuggingFace datasets (Parquet shards + hub card), loaded back with datasets.load_dataset:"
    )
    started = time.perf_counter()
    result = build("synthetic_trial", source, Path(out) / "hf")
    echo(f"   built {result.out} in {result.seconds:.1f} s")
    import datasets

    datasets.disable_progress_bars()
    for config, splits in result.configs.items():
        loaded = datasets.load_dataset(str(result.out), config)
        sizes = {split: len(part) for split, part in loaded.items()}
        if sizes != splits:
            raise TciaTrialsError(
                f"config {config}: load_dataset gives {sizes}, the build wrote {splits}"
            )
        echo(f"   {config:15s} " + ", ".join(f"{split} {n}" for split, n in sizes.items()))
    example = datasets.load_dataset(
        str(result.out), "volume", split=next(iter(result.configs["volume"]))
    ).with_format("numpy", dtype=None)[0]
    image = example["image"].reshape(example["image_shape"])
    echo(
        f"   volume[0]: {example['patient_id']} {example['modality']} image {image.shape} {image.dtype}, "
        f"{len(example['lesions'])} lesions ({time.perf_counter() - started:.1f} s)"
    )
    return {
        "source": str(source),
        "volumes": len(images),
        "lesions": lesions,
        "hf": str(result.out),
        **counts,
    }
