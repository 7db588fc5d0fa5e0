"""Annotation cost per study against the cost of reading the image volume, in the same run.

Generates a synthetic study with a 300-slice 512x512 CT and its lesion annotations (RTSTRUCT
contours and seed points, SEG, SR), plus a 300-frame SEG (a body mask on every slice), then times
(best of N, warm page cache):

- reading the CT volume (``read_volume``): the baseline;
- all annotations of the study (``read_annotations``: every RTSTRUCT rasterized, every SEG
  decoded onto the grid, SR parsed, lesions measured);
- decoding the 300-frame SEG onto the CT grid (``seg_masks_on_volume``).

    python benchmarks/bench_annotations.py [--slices 300] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from timing import best_of

import tcia_trials as tt
from tcia_trials.source.seg import seg_masks_on_volume
from tcia_trials.synthetic import generate_collection


def write_body_seg(paths: list[Path], volume: tt.Volume, out: Path) -> Path:
    """A BINARY SEG of the body (HU > -500) with one frame per CT slice."""
    sources = sorted(
        (pydicom.dcmread(p) for p in paths),
        key=lambda ds: volume.sop_instance_uids.index(ds.SOPInstanceUID),
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="BODY",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="threshold", version="1", family=codes.DCM.ArtificialIntelligence
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=volume.array > -500,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="benchmark",
        manufacturer_model_name="benchmark",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "collection"
        truth = json.loads(
            generate_collection(
                out,
                patients=1,
                seed=0,
                ct_shape=(args.slices, args.size, args.size),
                with_pet=False,
            ).read_text()
        )
        study = next(s for p in truth["patients"].values() for s in p["studies"] if s["lesions"])
        index = tt.scan(out)
        links = tt.link_annotations(index)
        ct_uid = study["ct_series_uid"]
        paths = index.series[ct_uid].paths
        for path in out.rglob("*.dcm"):  # warm the page cache
            path.read_bytes()
        volume = tt.read_volume(index, ct_uid)
        body_seg = write_body_seg(paths, volume, Path(tmp) / "body_seg.dcm")

        volume_s = best_of(lambda: tt.read_volume(index, ct_uid), args.repeat)
        annotations = tt.read_annotations(index, ct_uid, volume=volume, links=links)
        annotations_s = best_of(
            lambda: tt.read_annotations(index, ct_uid, volume=volume, links=links), args.repeat
        )
        seg_s = best_of(lambda: seg_masks_on_volume(body_seg, volume), args.repeat)
        rtstructs = sum(1 for s in annotations.sources if s.modality == "RTSTRUCT")
        seg_frames = int(np.count_nonzero(np.any(volume.array > -500, axis=(1, 2))))

        print(f"CT volume: {volume.shape[0]} x {volume.shape[1]} x {volume.shape[2]}")
        print(
            f"study: {annotations.lesion_count} lesions from {len(annotations.sources)} annotation series "
            f"({rtstructs} RTSTRUCT)"
        )
        print(f"{'step':46s} {'best s':>8s} {'/ volume read':>14s}")
        print(f"{'read_volume (baseline)':46s} {volume_s:8.3f} {1.0:13.2f}x")
        print(
            f"{'read_annotations (all lesions of the study)':46s} {annotations_s:8.3f} {annotations_s / volume_s:13.2f}x"
        )
        print(
            f"{f'300-frame SEG onto the grid ({seg_frames} frames)':46s} {seg_s:8.3f} {seg_s / volume_s:13.2f}x"
        )
        print(f"annotations / volume read: {annotations_s / volume_s:.2f}x (target <= 0.5x)")


if __name__ == "__main__":
    main()
