"""Reading DICOM headers and stored pixel values.

Native (uncompressed) pixel data are read straight from the file into the caller's array: the
header is parsed once, without pixel data, and the byte offset of the Pixel Data value is kept.
Compressed transfer syntaxes (JPEG lossless, JPEG-LS, JPEG 2000, RLE, deflate) are decoded with
pydicom's pixel handlers (pylibjpeg, gdcm).  Both give the same values as ``Dataset.pixel_array``,
including pydicom's correction of unused high bits.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from tcia_trials.errors import DicomReadError
from tcia_trials.source.frames import Frame, PixelFormat, header_uint

_PIXEL_DATA_TAG = 0x7FE00010
_SOP_INSTANCE_UID = 0x00080018
_ROWS = 0x00280010
_UNDEFINED_LENGTH = 0xFFFFFFFF


def read_header(path: Path) -> tuple[Dataset, PixelFormat]:
    """Parse a file's header (everything before the pixel data) and how its pixels are stored."""
    try:
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            if _SOP_INSTANCE_UID not in ds:
                raise DicomReadError(f"{path}: not a DICOM file (no SOPInstanceUID could be read)")
            if _ROWS not in ds:
                sop_class = ds.get("SOPClassUID")
                raise DicomReadError(
                    f"{path}: not an image ({sop_class.name if sop_class else 'no SOPClassUID'}); "
                    "it has no pixel data to read as a volume"
                )
            return ds, _pixel_format(fp, ds)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error, KeyError) as exc:
        if isinstance(exc, DicomReadError):
            raise
        raise DicomReadError(f"{path}: cannot read the DICOM header: {exc}") from exc


@functools.cache
def _syntax(uid: str) -> tuple[bool, bool, bool] | None:
    """(compressed, implicit VR, little endian) of a transfer syntax; None if unknown."""
    syntax = UID(uid)
    if not syntax.is_transfer_syntax:
        return None
    return syntax.is_compressed, syntax.is_implicit_VR, syntax.is_little_endian


def _pixel_format(fp: BinaryIO, ds: Dataset) -> PixelFormat:
    meta = getattr(ds, "file_meta", None)
    syntax = _syntax(_uid_text(meta)) if meta is not None else None
    if syntax is None:
        implicit, little = (bool(v) for v in ds.original_encoding)
        compressed = False
    else:
        compressed, implicit, little = syntax
    bits_allocated = header_uint(ds, 0x00280100, little) or 0
    kind = "i" if header_uint(ds, 0x00280103, little) == 1 else "u"
    dtype = np.dtype(f"{kind}{bits_allocated // 8}" if bits_allocated in (8, 16, 32) else "u1")
    bits_stored = header_uint(ds, 0x00280101, little) or bits_allocated
    location = None
    if (
        not compressed
        and header_uint(ds, 0x00280002, little) in (None, 1)
        and bits_allocated in (8, 16, 32)
    ):
        location = _native_pixel_location(fp, implicit, little)
    if location is None:
        return PixelFormat(dtype, bits_stored, little)
    return PixelFormat(dtype, bits_stored, little, offset=location[0], length=location[1])


def _uid_text(meta: Dataset) -> str:
    element = meta.get_item(0x00020010)
    if element is None:
        return ""
    value = element.value
    return (
        value.decode("ascii", "replace").strip(" \x00") if isinstance(value, bytes) else str(value)
    )


def _native_pixel_location(fp: BinaryIO, implicit: bool, little: bool) -> tuple[int, int] | None:
    """(offset, length) of the Pixel Data value at the file position pydicom stopped at."""
    endian = "<" if little else ">"
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return None
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | element) != _PIXEL_DATA_TAG:
        return None
    if implicit:
        (length,) = struct.unpack(endian + "L", head[4:8])
        offset = start + 8
    else:
        if head[4:6] not in (b"OB", b"OW") or len(head) < 12:
            return None
        (length,) = struct.unpack(endian + "L", head[8:12])
        offset = start + 12
    if length == _UNDEFINED_LENGTH:
        return None  # encapsulated data under a native syntax label: let pydicom decide
    return offset, length


def read_frames_into(frames: list[Frame], out: np.ndarray) -> None:
    """Fill ``out[n]`` with the stored values of ``frames[n]``, all from one file.

    ``out`` has shape ``(len(frames), rows, cols)``.
    """
    path, pixel_format = frames[0].path, frames[0].pixel_format
    if not (pixel_format.is_native and out.dtype == pixel_format.dtype):
        decoded = decode_pixels(path)
        for n, frame in enumerate(frames):
            out[n] = decoded[frame.frame_index]
        return
    rows, cols = frames[0].rows, frames[0].columns
    frame_bytes = rows * cols * pixel_format.dtype.itemsize
    needed = frame_bytes * frames[0].number_of_frames
    if pixel_format.length < needed:
        raise DicomReadError(
            f"{path}: Pixel Data holds {pixel_format.length} bytes but "
            f"{frames[0].number_of_frames} frame(s) of {rows}x{cols} at "
            f"{pixel_format.dtype.itemsize * 8} bits need {needed}"
        )
    with open(path, "rb") as fp:
        for n, frame in enumerate(frames):
            fp.seek(pixel_format.offset + frame.frame_index * frame_bytes)
            got = fp.readinto(memoryview(out[n]).cast("B"))
            if got != frame_bytes:
                raise DicomReadError(
                    f"{path}: truncated pixel data: frame {frame.frame_index + 1} needs "
                    f"{frame_bytes} bytes but the file ends after {got}"
                )
    if not pixel_format.little_endian and pixel_format.dtype.itemsize > 1:
        out.byteswap(inplace=True)
    _correct_unused_bits(out, pixel_format)


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


def _correct_unused_bits(frames: np.ndarray, pixel_format: PixelFormat) -> None:
    """Ignore bits above BitsStored exactly as pydicom does (sign-extend signed values)."""
    shift = pixel_format.dtype.itemsize * 8 - pixel_format.bits_stored
    if shift > 0:
        np.left_shift(frames, shift, out=frames)
        np.right_shift(frames, shift, out=frames)
