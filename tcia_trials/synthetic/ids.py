"""Deterministic identifiers: DICOM UIDs, UUIDs and decimal-string formatting.

Every identifier of the synthetic collection is a pure function of the generator arguments and of
a path of names (patient, study, series, instance), so two runs with the same arguments produce
the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable

from pydicom.uid import UID, generate_uid

#: Version of the generator's output; part of every UID so a format change gives new UIDs.
GENERATOR_VERSION = 1


def make_uid(*parts: object) -> UID:
    """Return a DICOM UID derived from ``parts`` (pydicom root, SHA-512 of the parts).

    Parameters
    ----------
    *parts
        Anything with a stable ``str()``: collection name, seed, patient index, role names...
    """
    return generate_uid(
        entropy_srcs=["tcia_trials.synthetic", str(GENERATOR_VERSION)] + [str(p) for p in parts]
    )


def make_uuid(*parts: object) -> str:
    """Return a version-4-shaped UUID string derived from ``parts`` (as IDC's crdc_instance_uuid)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def ds(value: float, decimals: int = 6) -> str:
    """Format a number as a DICOM Decimal String (at most 16 characters).

    The value is rounded to ``decimals`` places, trailing zeros are dropped; fewer decimals are
    used if the string would be longer than 16 characters.

    Parameters
    ----------
    value
        The number.
    decimals
        Decimal places kept (the value written is ``round(value, decimals)``).
    """
    for d in range(decimals, -1, -1):
        text = f"{round(float(value), d):.{d}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value!r} cannot be written as a DICOM DS of at most 16 characters")


def ds_list(values: Iterable[float], decimals: int = 6) -> list[str]:
    """Format several numbers with :func:`ds`."""
    return [ds(v, decimals) for v in values]


def ds_round(value: float, decimals: int = 6) -> float:
    """Return the float a reader gets back from ``ds(value, decimals)``."""
    return float(ds(value, decimals))


def ds_sig(value: float, significant: int = 8) -> str:
    """Format a number as a DICOM DS with ``significant`` significant digits (``%g`` style)."""
    text = f"{float(value):.{significant}g}"
    if len(text) > 16:
        raise ValueError(f"{value!r} cannot be written as a DICOM DS of at most 16 characters")
    return text
