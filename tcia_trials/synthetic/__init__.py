"""A deterministic, TCIA-like synthetic clinical-trial collection with exact ground truth.

Imitates EAY131 + EAY131-Tumor-Annotations and the NCTN annotation datasets: CT (some oblique,
shuffled, Implicit VR) and FDG PET studies at two time points, one annotation series per lesion
(RTSTRUCT contours, RTSTRUCT seed points with the real files' quirks, DICOM SEG, TID 1500 SR),
"No findings" RTSTRUCTs, the annotation metadata CSV, a clinical sheet, and the download layouts
of NBIA / TCIA Data Retriever / IDC.  ``ground_truth.json`` describes every voxel analytically.

Main entry points: :func:`generate_collection` and :func:`write_ct_series`.
"""

from __future__ import annotations

from .collection import generate_collection
from .images import ct_grid, default_phantom, suv_from_stored, write_ct_series
from .layout import LAYOUTS
from .phantom import Body, Ellipsoid, Grid, Phantom, lesion_mask, make_grid
from .truth import summary

__all__ = [
    "LAYOUTS",
    "Body",
    "Ellipsoid",
    "Grid",
    "Phantom",
    "ct_grid",
    "default_phantom",
    "generate_collection",
    "lesion_mask",
    "make_grid",
    "summary",
    "suv_from_stored",
    "write_ct_series",
]
