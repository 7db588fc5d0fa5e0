"""Volume reading: tcia-trials against its peers and the I/O floor, measured in the same run.

Generates a CT series (default 300 slices of 512x512, Explicit VR Little Endian, uncompressed),
warms the page cache, then times (best of N) on the same files:

- floor: parse each header without pixel data + read the raw pixel bytes into a preallocated
  array (the least any DICOM reader must do);
- pydicom: ``dcmread`` of every file + ``pixel_array`` + ``numpy.stack`` (sorted by position);
- highdicom: ``get_volume_from_series`` on the datasets it reads;
- SimpleITK: ``ImageSeriesReader`` (ITK + GDCM, C++);
- tcia-trials: ``read_volume(paths)`` (sorted, geometry checked, HU as int16).

Prints seconds and ratios (machines are noisy: compare ratios, not seconds), and the peak
memory of ``read_volume`` relative to the decoded volume size.

    python benchmarks/bench_volume_read.py [--slices 300] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
from timing import best_of

from tcia_trials.source.volume import read_volume
from tcia_trials.synthetic import write_ct_series


def floor(paths: list[Path]) -> np.ndarray:
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    out = np.empty((len(paths), first.Rows, first.Columns), dtype=np.int16)
    for k, path in enumerate(paths):
        with open(path, "rb") as fp:
            pydicom.dcmread(fp, stop_before_pixels=True)
            header = fp.read(12)  # explicit VR little endian: tag, VR, reserved, length
            (length,) = struct.unpack("<L", header[8:12])
            fp.readinto(memoryview(out[k]).cast("B")[:length])
    return out


def plain_pydicom(paths: list[Path]) -> np.ndarray:
    datasets = [pydicom.dcmread(p) for p in paths]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array for ds in datasets])


def highdicom_volume(paths: list[Path]) -> np.ndarray:
    import highdicom

    return highdicom.get_volume_from_series([pydicom.dcmread(p) for p in paths]).array


def simpleitk_volume(paths: list[Path]) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(paths[0].parent)))
    return sitk.GetArrayFromImage(reader.Execute())


def tcia_trials_volume(paths: list[Path]) -> np.ndarray:
    return read_volume(paths).array


def peak_memory_ratio(paths: list[Path]) -> float:
    tracemalloc.start()
    volume = read_volume(paths)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / volume.array.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512, help="rows and columns")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_ct_series(Path(tmp) / "ct", shape=(args.slices, args.size, args.size))
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"CT series: {len(paths)} files of {args.size}x{args.size}, {mb:.0f} MB")
        for path in paths:  # warm the page cache
            path.read_bytes()
        peers = {
            "floor (headers + raw bytes)": floor,
            "plain pydicom": plain_pydicom,
            "highdicom get_volume_from_series": highdicom_volume,
            "SimpleITK ImageSeriesReader": simpleitk_volume,
            "tcia-trials read_volume": tcia_trials_volume,
        }
        np.testing.assert_array_equal(
            tcia_trials_volume(paths).astype(np.int32), simpleitk_volume(paths).astype(np.int32)
        )
        seconds = {
            name: best_of(partial(function, paths), args.repeat) for name, function in peers.items()
        }
        ours = seconds["tcia-trials read_volume"]
        print(f"{'reader':36s} {'best s':>8s} {'ours faster by':>15s}")
        for name, value in seconds.items():
            print(f"{name:36s} {value:8.3f} {value / ours:14.2f}x")
        print(
            f"tcia-trials vs plain pydicom speed: {seconds['plain pydicom'] / ours:.2f}x (target >= 1.0x)"
        )
        print(
            f"tcia-trials time / floor time:      {ours / seconds['floor (headers + raw bytes)']:.2f}x "
            "(target <= 1.5x)"
        )
        print(
            f"peak memory / decoded volume:       {peak_memory_ratio(paths):.2f}x (target <= 1.5x)"
        )


if __name__ == "__main__":
    main()
