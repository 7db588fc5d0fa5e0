"""I-SPY2: breast DCE-MRI with functional tumor volume analysis masks (SEG) (data only)."""

from tcia_trials.spec import (
    CC_BY_4_0,
    CORE_RELEASE_NOTES,
    DEFAULT_CONFIGS,
    AnnotationRules,
    ClinicalSpec,
    LabelSpec,
    SourceCollection,
    TrialSpec,
)

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "ispy2" (title,
# DOI, modalities "MR, SEG", CC BY 4.0, access "Public", citation, whose author list IDC
# abbreviates with "...") and idc_index (719 patients, 2,688 studies; 29,723 MR and 2,688 SEG
# series described "ISPY2: VOLSER: uni-lateral cropped: Analysis Mask" or "... bi-lateral ...").
SPEC = TrialSpec(
    name="ispy2",
    title="I-SPY2 breast DCE-MRI with tumor analysis masks",
    description="""\
Breast dynamic contrast-enhanced MR of the **I-SPY2** trial (neoadjuvant therapy of breast
cancer) with one analysis mask per study as DICOM SEG ("ISPY2: VOLSER: uni-lateral cropped:
Analysis Mask" or "... bi-lateral: Analysis Mask")
([collection](https://doi.org/10.7937/tcia.d8z0-9t85)). Its segments become lesions named by
segment label.

- IDC index (idc-index-data 25.0.5): 719 patients, 2,688 studies, 29,723 MR and 2,688 SEG series
  (~1.7 TB of MR per DESIGN.md), CC BY 4.0.
- Clinical data: IDC lists clinical supporting data for this collection (TCIA collection page);
  this builder takes the sheet at build time and infers its column types.""",
    trial_ids=("I-SPY2",),
    homepage="https://doi.org/10.7937/tcia.d8z0-9t85",
    sources=(
        SourceCollection(
            name="ISPY2",
            title="I-SPY 2 Breast Dynamic Contrast Enhanced MRI (I-SPY2 TRIAL)",
            doi="10.7937/tcia.d8z0-9t85",
            role="images",
            license=CC_BY_4_0,
            access="public",
            modalities=("MR", "SEG"),
            idc_collection_id="ispy2",
            subjects=719,
            note="IDC index (idc-index-data 25.0.5); the SEG masks are part of the collection.",
        ),
    ),
    citation="""\
@misc{ispy2,
  author = {Li, W. and Newitt, D. C. and Gibbs, J. and Wilmes, L. J. and Jones, E. F. and Arasu, V. A. and Strand, F. and Onishi, N. and Nguyen, A. A.-T. and Kornak, J. and Joe, B. N. and Price, E. R. and Ojeda-Fournier, H. and Eghtedari, M. and Zamora, K. W. and Woodard, S. A. and Umphrey, H. and Bernreuter, W. and Nelson, M. and others and Hylton, N. M.},
  title = {I-SPY 2 Breast Dynamic Contrast Enhanced MRI (I-SPY2 TRIAL)},
  year = {2022},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/TCIA.D8Z0-9T85},
  url = {https://doi.org/10.7937/TCIA.D8Z0-9T85},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("SEG",)),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The ISPY2 collection page (https://doi.org/10.7937/tcia.d8z0-9t85) offers the "
            "clinical data: download the sheet and pass it (.csv or .xlsx) with its patient-id "
            "column at build time. Column types are inferred from the sheet and recorded in the "
            "output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id ispy2, MR and SEG, ~1.7 TB):
  pip install idc-index
  idc download ispy2 --download-dir ~/TCIA/ISPY2
Alternatively, open the .tcia manifest of https://doi.org/10.7937/tcia.d8z0-9t85 with the NBIA
Data Retriever into ~/TCIA/ISPY2 (keep its metadata.csv).
Then build: tcia-trials build ispy2 --source ~/TCIA/ISPY2 --out out""",
    tags=("oncology", "clinical-trial", "breast", "mr", "dce-mri", "segmentation", "seg"),
)
