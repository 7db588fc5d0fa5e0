"""Reading DICOM headers and stored pixel values.

Native (uncompressed) pixel data are read straight from the file into the caller's array: the
header is parsed once, without pixel data, and the byte offset of the Pixel Data value is kept.
Compressed transfer syntaxes (JPEG lossless, JPEG-LS, JPEG 2000, RLE, deflate) are decoded with
pydicom's pixel handlers (pylibjpeg, gdcm).  Both give the same values as ``Dataset.pixel_array``,
including pydicom's correction of unused high bits.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from tcia_trials.errors import DicomReadError
from tcia_trials.source.frames import Frame, PixelLocation

_PIXEL_DATA_TAG = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF


def read_header(path: Path) -> tuple[Dataset, PixelLocation | None]:
    """Parse a file's header (everything before the pixel data) and locate native pixel data.

    Returns the dataset and, for uncompressed single-sample pixel data that can be read as a
    flat array, where the Pixel Data value lies in the file (``None`` otherwise).
    """
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            location = _native_pixel_location(fp, ds)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error, KeyError) as exc:
        raise DicomReadError(f"{path}: cannot read the DICOM header: {exc}") from exc
    if "SOPInstanceUID" not in ds:
        raise DicomReadError(f"{path}: not a DICOM file (no SOPInstanceUID could be read)")
    return ds, location


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a dataset read from file."""
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if syntax is not None and UID(syntax).is_transfer_syntax:
        uid = UID(syntax)
        return uid.is_implicit_VR, uid.is_little_endian
    implicit, little = ds.original_encoding
    return bool(implicit), bool(little)


def _native_pixel_location(fp, ds: Dataset) -> PixelLocation | None:
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if syntax is not None and UID(syntax).is_transfer_syntax and UID(syntax).is_compressed:
        return None
    if ds.get("SamplesPerPixel", 1) != 1 or ds.get("BitsAllocated") not in (8, 16, 32):
        return None
    implicit, little = _encoding(ds)
    endian = "<" if little else ">"
    start = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        return None
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | element) != _PIXEL_DATA_TAG:
        return None
    if implicit:
        (length,) = struct.unpack(endian + "L", head[4:8])
        offset = start + 8
    else:
        vr = head[4:6]
        if vr not in (b"OB", b"OW"):
            return None
        more = fp.read(4)
        if len(more) < 4:
            return None
        (length,) = struct.unpack(endian + "L", more)
        offset = start + 12
    if length == _UNDEFINED_LENGTH:
        return None  # encapsulated data under a native syntax label: let pydicom decide
    return PixelLocation(offset, length)


def stored_dtype(ds: Dataset) -> np.dtype:
    """numpy dtype of the stored values of a monochrome image (native byte order)."""
    bits = int(ds.BitsAllocated)
    kind = "i" if int(ds.get("PixelRepresentation", 0)) == 1 else "u"
    if bits == 1 or bits > 32 or bits % 8:
        return np.dtype(np.uint8 if bits == 1 else f"{kind}4")
    return np.dtype(f"{kind}{bits // 8}")


def read_frames_into(frames: list[Frame], header: Dataset, out: np.ndarray) -> None:
    """Fill ``out[n]`` with the stored values of ``frames[n]``, all from one file.

    ``header`` is that file's header dataset.  ``out`` has shape ``(len(frames), rows, cols)``.
    """
    path = frames[0].path
    location = frames[0].pixel_location
    dtype = stored_dtype(header)
    rows, cols = frames[0].rows, frames[0].columns
    frame_bytes = rows * cols * dtype.itemsize
    if location is not None and out.dtype == dtype:
        _, little = _encoding(header)
        needed = frame_bytes * frames[0].number_of_frames
        if location.length < needed:
            raise DicomReadError(
                f"{path}: Pixel Data holds {location.length} bytes but {frames[0].number_of_frames} "
                f"frame(s) of {rows}x{cols} at {dtype.itemsize * 8} bits need {needed}"
            )
        with open(path, "rb") as fp:
            for n, frame in enumerate(frames):
                fp.seek(location.offset + frame.frame_index * frame_bytes)
                got = fp.readinto(memoryview(out[n]).cast("B"))
                if got != frame_bytes:
                    raise DicomReadError(
                        f"{path}: truncated pixel data: frame {frame.frame_index + 1} needs "
                        f"{frame_bytes} bytes but the file ends after {got}"
                    )
                if not little and dtype.itemsize > 1:
                    out[n].byteswap(inplace=True)
                _correct_unused_bits(out[n], header)
        return
    decoded = decode_pixels(path)
    for n, frame in enumerate(frames):
        out[n] = decoded[frame.frame_index]


def decode_pixels(path: Path) -> np.ndarray:
    """Decode all frames of a file with pydicom; returns ``(frames, rows, cols)``."""
    ds: Dataset | None = None
    try:
        ds = pydicom.dcmread(path, force=True)
        array = ds.pixel_array
    except Exception as exc:  # decoders raise many types; report them all the same way
        syntax = (
            getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID") if ds is not None else None
        )
        name = UID(syntax).name if syntax else "unknown transfer syntax"
        raise DicomReadError(
            f"{path}: cannot decode pixel data ({name}): {exc}. Compressed transfer syntaxes need "
            "pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle or python-gdcm "
            "(installed with tcia-trials)"
        ) from exc
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise DicomReadError(
            f"{path}: {ds.SamplesPerPixel} samples per pixel ({ds.get('PhotometricInterpretation')}); "
            "only monochrome images form volumes"
        )
    return array.reshape(-1, int(ds.Rows), int(ds.Columns))


def _correct_unused_bits(frame: np.ndarray, header: Dataset) -> None:
    """Ignore bits above BitsStored exactly as pydicom does (sign-extend signed values)."""
    allocated, stored = (
        int(header.BitsAllocated),
        int(header.get("BitsStored", header.BitsAllocated)),
    )
    if stored < allocated:
        shift = allocated - stored
        np.left_shift(frame, shift, out=frame)
        np.right_shift(frame, shift, out=frame)
