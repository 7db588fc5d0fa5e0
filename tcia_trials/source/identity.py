"""Lesion identity: which parts of which annotation objects describe the same lesion.

Every part of an annotation object that can describe a lesion (a SEG segment, an RTSTRUCT ROI,
an SR measurement group, a row of a seed table) becomes a :class:`Piece`.  The rule that turns
pieces into lesions never merges by name alone and never drops a mask or a seed:

1. Parts of one object with distinct numbers (ROI numbers, segment numbers, SR groups, table
   rows) are distinct lesions, whatever their names.
2. Parts of different objects are one lesion when an SR measurement group references a SEG
   segment (Referenced Segment), when they share a tracking UID, or when the collection's naming
   rule names both the same way (:class:`~tcia_trials.spec.AnnotationRules`: "Pre-dose, LIVER - 1"
   and "Pre-dose, LIVER - 1 - SEED POINT") at the same time point.  A table row joins the one
   lesion carrying its label.
3. A lesion holds at most one mask and one seed point of each kind of source.  A join that would
   put a second one in is refused: the pieces stay separate lesions and both are flagged
   ``not-joined: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Piece:
    """What one part of one annotation object says about one lesion.

    Attributes
    ----------
    label:
        Lesion label, e.g. "LIVER - 1" (from the series description or the part's own name).
    kind:
        "RTSTRUCT", "SEG", "SR" or "TABLE".
    series_uid:
        The annotation series.
    origin:
        The part of the input, e.g. ``"<series UID>/ROI 3"`` (see :attr:`Lesion.origins`).
    object_uid:
        The object it belongs to (SOPInstanceUID, or the table); parts of one object are
        distinct lesions.
    named:
        Whether the label was read with the collection's naming rule (only named pieces join by
        label).
    seed_lps, mask:
        Seed point (LPS mm) and mask on the image grid, when the part gives them.
    has_contour:
        Whether the part outlines the lesion (a segment, a contour ROI), with or without a mask
        on a grid.
    segment_ref:
        ``"<SEG SOPInstanceUID>#<segment number>"``: the segment a SEG piece is, or the segment
        an SR group references.
    volume_ml, longest_diameter_mm:
        Sizes measured without the image grid (SEG grid, contours, SR measurements).
    """

    label: str
    kind: str
    series_uid: str
    origin: str
    object_uid: str
    named: bool = False
    location: str | None = None
    time_point: str | None = None
    mask: np.ndarray | None = None
    has_contour: bool = False
    seed_lps: tuple[float, float, float] | None = None
    tracking_id: str | None = None
    tracking_uid: str | None = None
    segment_ref: str | None = None
    reader: str | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    volume_ml: float | None = None
    longest_diameter_mm: float | None = None
    info: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


class _Groups:
    """Union-find over pieces that refuses joins breaking the identity rule."""

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self.pieces = list(pieces)
        self.parent = list(range(len(self.pieces)))
        self.members: dict[int, list[int]] = {n: [n] for n in self.parent}
        self.number = {id(piece): n for n, piece in enumerate(self.pieces)}

    def root(self, n: int) -> int:
        while self.parent[n] != n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def group_of(self, piece: Piece) -> int:
        return self.root(self.number[id(piece)])

    def join(self, a: Piece, b: Piece, why: str) -> bool:
        ra, rb = self.group_of(a), self.group_of(b)
        if ra == rb:
            return True
        conflict = _conflict(
            [self.pieces[n] for n in self.members[ra]], [self.pieces[n] for n in self.members[rb]]
        )
        if conflict is not None:
            a.flags.append(f"not-joined: {why} with {b.origin}, but {conflict}")
            b.flags.append(f"not-joined: {why} with {a.origin}, but {conflict}")
            return False
        keep, gone = min(ra, rb), max(ra, rb)
        self.parent[gone] = keep
        self.members[keep].extend(self.members.pop(gone))
        return True

    def groups(self) -> list[list[Piece]]:
        return [[self.pieces[n] for n in sorted(members)] for members in self.members.values()]


def _conflict(a: list[Piece], b: list[Piece]) -> str | None:
    """Why two groups of pieces cannot be one lesion, or None."""
    objects = {p.object_uid for p in a} & {p.object_uid for p in b}
    if objects:
        return "parts of one annotation object are distinct lesions"
    for kind in sorted({p.kind for p in a} & {p.kind for p in b}):
        if any(p.kind == kind and p.has_contour for p in a) and any(
            p.kind == kind and p.has_contour for p in b
        ):
            return f"both have a {kind} outline"
        if any(p.kind == kind and p.seed_lps for p in a) and any(
            p.kind == kind and p.seed_lps for p in b
        ):
            return f"both have a {kind} seed point"
    return None


def _join_alike(
    groups: _Groups, pieces: Sequence[Piece], key: Callable[[Piece], Hashable | None], why: str
) -> None:
    by_key: dict[Hashable, list[Piece]] = {}
    for piece in pieces:
        value = key(piece)
        if value is not None:
            by_key.setdefault(value, []).append(piece)
    for members in by_key.values():
        for other in members[1:]:
            groups.join(members[0], other, why)


def group_pieces(pieces: Sequence[Piece]) -> list[list[Piece]]:
    """Pieces grouped into lesions by the identity rule of this module (in input order)."""
    groups = _Groups(pieces)
    segments = {p.segment_ref: p for p in pieces if p.kind == "SEG" and p.segment_ref}
    for piece in pieces:
        if piece.kind == "SR" and piece.segment_ref:
            target = segments.get(piece.segment_ref)
            if target is None:
                piece.flags.append(
                    f"referenced-segment-absent: segment {piece.segment_ref} is not among the "
                    "SEGs of this series"
                )
            else:
                groups.join(target, piece, "references segment")
    _join_alike(groups, pieces, lambda p: p.tracking_uid, "same tracking UID")
    _join_alike(
        groups,
        [p for p in pieces if p.named and p.kind != "TABLE"],
        lambda p: (p.label.upper(), (p.time_point or "").upper()),
        "same name by the collection's rule",
    )
    for row in (p for p in pieces if p.kind == "TABLE"):
        candidates = {
            groups.group_of(p)
            for p in pieces
            if p.kind != "TABLE" and p.label.upper() == row.label.upper()
        }
        if len(candidates) == 1:
            target = next(p for p in pieces if groups.group_of(p) in candidates)
            groups.join(target, row, "same label")
        elif len(candidates) > 1:
            row.flags.append(
                f"ambiguous-label: {len(candidates)} lesions are labelled {row.label!r}; "
                "the row is a lesion of its own"
            )
    return groups.groups()


def natural_key(label: str) -> tuple:
    """Sort key that orders "LIVER - 2" before "LIVER - 10"."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.upper())
        for part in re.split(r"(\d+)", label)
    )


def lesion_ids(groups: Sequence[Sequence[Piece]]) -> list[str]:
    """Identifiers unique within the groups: the label, or "label [origin]" for a shared one."""
    labels = [group[0].label for group in groups]
    ids = [
        label if labels.count(label) == 1 else f"{label} [{group[0].origin}]"
        for label, group in zip(labels, groups, strict=True)
    ]
    seen: dict[str, int] = {}
    unique = []
    for lesion_id in ids:
        seen[lesion_id] = seen.get(lesion_id, 0) + 1
        unique.append(lesion_id if seen[lesion_id] == 1 else f"{lesion_id} ({seen[lesion_id]})")
    return unique
