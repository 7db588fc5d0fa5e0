"""ReferencedSOPInstanceUIDs of long reference sequences, read from the sequence's raw bytes.

TCIA's RTSTRUCTs and highdicom's SEGs list every image of the referenced series (hundreds of
sequence items, e.g. ContourImageSequence, ReferencedInstanceSequence, SourceImageSequence).
pydicom builds a dataset per item when such a sequence is accessed (~20 ms a file); the UIDs
alone are found in the undecoded bytes by their tag (0008,1155) ReferencedSOPInstanceUID, then
the value length and value.
Sequences pydicom has already parsed are read the ordinary way.
"""

from __future__ import annotations

import re
import struct

from pydicom.dataset import Dataset

_UID_CHARACTERS = re.compile(rb"[0-9.]+")


def referenced_instance_uids(
    parent: Dataset, sequence_tag: int, encoding: tuple[bool, bool]
) -> list[str]:
    """The ReferencedSOPInstanceUIDs of the items of ``parent``'s sequence ``sequence_tag``.

    ``encoding`` is the file's ``(implicit VR, little endian)``.
    """
    element = parent.get_item(sequence_tag)
    if element is None:
        return []
    raw = element.value
    if not isinstance(raw, bytes):  # already parsed
        return [
            str(item.ReferencedSOPInstanceUID)
            for item in raw or []
            if "ReferencedSOPInstanceUID" in item
        ]
    implicit, little = encoding
    tag = struct.pack("<HH" if little else ">HH", 0x0008, 0x1155)  # (0008,1155) as stored
    order = "little" if little else "big"
    uids = []
    start = raw.find(tag)
    while start >= 0:
        head = start + 4
        if implicit:
            length, value_start = int.from_bytes(raw[head : head + 4], order), head + 4
        elif raw[head : head + 2] == b"UI":
            length, value_start = int.from_bytes(raw[head + 2 : head + 4], order), head + 4
        else:
            start = raw.find(tag, start + 1)
            continue
        value = raw[value_start : value_start + length].rstrip(b"\x00 ")
        if value and _UID_CHARACTERS.fullmatch(value):
            uids.append(value.decode("ascii"))
        start = raw.find(tag, value_start + length)
    return uids
