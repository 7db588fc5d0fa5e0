"""Exceptions raised by tcia-trials.

Every error names the file or series concerned, what was found and what was expected.  Each class
also inherits the builtin exception it refines, so ``except ValueError`` keeps working for callers
that do not know this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcia_trials.report import ConversionReport


class TciaTrialsError(Exception):
    """Base class of every error raised by tcia-trials."""


class DownloadLayoutError(TciaTrialsError, ValueError):
    """A download folder cannot be indexed (missing, empty, or an unreadable metadata.csv)."""


class DicomReadError(TciaTrialsError, ValueError):
    """A DICOM file cannot be parsed or its pixel data cannot be decoded."""


class _NotFoundError(TciaTrialsError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class SeriesNotFoundError(_NotFoundError):
    """A SeriesInstanceUID is not in the index."""


class SeriesGeometryError(TciaTrialsError, ValueError):
    """A series does not form one regular 3D volume (gaps, uneven spacing, mixed orientations)."""


class MultipleStacksError(SeriesGeometryError):
    """A series holds several volumes (time points, echoes, sizes); choose one with ``stack=``."""


class SuvError(TciaTrialsError, ValueError):
    """SUVbw cannot be computed for a PET series (a tag is missing or unsupported)."""


class InstanceNotFoundError(_NotFoundError):
    """A SOPInstanceUID is not in the index."""


class AnnotationError(TciaTrialsError, ValueError):
    """An annotation (SEG, RTSTRUCT, SR, seed table) cannot be read or is malformed."""


class UnsupportedTemplateError(AnnotationError):
    """A structured report does not follow a supported template (TID 1500 Measurement Report)."""


class MissingReferenceError(AnnotationError):
    """An annotation refers to images, a series or a frame of reference that is not available."""


class UnknownBuilderError(_NotFoundError):
    """No builder has this name (the message lists close matches and how to list all builders)."""


class ClinicalDataError(TciaTrialsError, ValueError):
    """A clinical sheet cannot be read or typed (missing column, duplicate id, bad value)."""


class CollectionMismatchError(TciaTrialsError, ValueError):
    """A download holds another collection than the builder reads (nothing was written)."""


class StrictBuildError(TciaTrialsError, ValueError):
    """A ``strict`` build met warnings or skips; nothing was written (``.report`` lists them)."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


class BuiltDatasetError(TciaTrialsError, ValueError):
    """A dataset folder cannot be read back: it has no build records, or an unreadable one."""


class PreviewError(TciaTrialsError, ValueError):
    """Previews cannot be drawn: not a built dataset, none of the configs they read, or an
    unknown patient or lesion (the message lists the available ones)."""
