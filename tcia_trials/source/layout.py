"""Recognize how a TCIA download is laid out on disk, from folder names and header UIDs.

Layouts (see DESIGN.md, "Download layouts"):

``"nbia"``
    NBIA Data Retriever, descriptive names:
    ``Collection/PatientID/{StudyDate-}{StudyDesc-}{last 5 of StudyUID}/{SeriesNumber-}{SeriesDesc-}
    {last 5 of SeriesUID}/1-001.dcm`` with ``metadata.csv`` beside ``Collection``.
``"nbia-classic"``
    NBIA Data Retriever, classic UID names: ``Collection/PatientID/StudyUID/SeriesUID/...``.
``"retriever"``
    The newer TCIA Data Retriever: ``PatientID/StudyUID/SeriesUID/...`` (no collection level), with
    its own metadata table.
``"idc"``
    idc-index / s5cmd: ``collection_id/PatientID/StudyInstanceUID/Modality_SeriesInstanceUID/
    <uuid>.dcm``.
``"dicomdir"``
    A DICOM media set described by a DICOMDIR file.
``"folder"``
    Anything else: DICOM files in any nesting.

A file votes for a pattern when its two parent folders match its own Study and Series UIDs in one
of the shapes above; the layout is the pattern of more than half of the indexed files.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["LAYOUTS", "choose_layout", "folder_pattern", "layout_collection"]

LAYOUTS = ("nbia", "nbia-classic", "retriever", "idc", "dicomdir", "folder")
# NBIA appends " (2)", " (3)"... to a series folder whose name is already taken.
_COPY_SUFFIX = re.compile(r" \([0-9]+\)$")


def folder_pattern(rel_parts: tuple[str, ...], study_uid: str, series_uid: str) -> str | None:
    """Classify the folders holding one file.

    ``rel_parts`` are the path components of the file relative to the scanned root (the file name
    last).  Returns ``"uid"`` (``StudyUID/SeriesUID/file``), ``"idc"``
    (``StudyUID/Modality_SeriesUID/file``), ``"descriptive"`` (NBIA folder names ending with the
    last 5 characters of the Study and Series UIDs; a `` (2)`` suffix that NBIA adds to a
    repeated folder name is ignored) or ``None``.
    """
    if len(rel_parts) < 3 or not study_uid or not series_uid:
        return None
    study_dir, series_dir = rel_parts[-3], _COPY_SUFFIX.sub("", rel_parts[-2])
    if study_dir == study_uid:
        if series_dir == series_uid:
            return "uid"
        if series_dir.endswith("_" + series_uid) and len(series_dir) > len(series_uid) + 1:
            return "idc"
    if (
        series_dir != series_uid
        and study_dir != study_uid
        and series_dir.endswith(series_uid[-5:])
        and study_dir.endswith(study_uid[-5:])
    ):
        return "descriptive"
    return None


def choose_layout(
    patterns: Iterable[tuple[str | None, int]],
    *,
    table_dialects: Iterable[str] = (),
    has_dicomdir: bool = False,
) -> str:
    """Pick the layout of a download.

    ``patterns`` holds ``(folder_pattern, depth)`` for every indexed file, ``depth`` being the
    number of path components below the root.  ``table_dialects`` are the dialects of the metadata
    tables found (``"nbia"`` or ``"tcia"``, see :mod:`.metadata_csv`): UID folders are the classic
    NBIA layout when an NBIA ``metadata.csv`` is present, the TCIA Data Retriever layout when its
    table is present, and otherwise decided by depth (a collection level above the patient
    folders means NBIA classic).
    """
    votes: Counter[str] = Counter()
    min_uid_depth: int | None = None
    total = 0
    for pattern, depth in patterns:
        total += 1
        if pattern is None:
            continue
        votes[pattern] += 1
        if pattern == "uid":
            min_uid_depth = depth if min_uid_depth is None else min(min_uid_depth, depth)
    if votes:
        # most_common is stable: ties go to the pattern seen first.
        top, count = votes.most_common(1)[0]
        if 2 * count > total:
            if top == "idc":
                return "idc"
            if top == "descriptive":
                return "nbia"
            dialects = set(table_dialects)
            if "nbia" in dialects:
                return "nbia-classic"
            if "tcia" in dialects:
                return "retriever"
            return "nbia-classic" if (min_uid_depth or 0) >= 5 else "retriever"
    return "dicomdir" if has_dicomdir else "folder"


def layout_collection(layout: str, rel_parts: tuple[str, ...]) -> str | None:
    """The collection named by the folders of ``layout`` (``None`` when the root is below it).

    IDC's ``collection_id`` and NBIA's ``Collection`` folder sit four levels above the file
    (``collection/patient/study/series/file``).
    """
    if layout in ("idc", "nbia", "nbia-classic") and len(rel_parts) >= 5:
        return rel_parts[-5]
    return None
