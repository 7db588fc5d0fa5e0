"""I-SPY1 / ACRIN 6657: breast DCE-MRI with percent-enhancement tumor masks (SEG) (data only)."""

from tcia_trials.spec import (
    CC_BY_3_0,
    CORE_RELEASE_NOTES,
    DEFAULT_CONFIGS,
    AnnotationRules,
    ClinicalSpec,
    LabelSpec,
    SourceCollection,
    TrialSpec,
)

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "ispy1" (titles,
# DOIs, modalities, CC BY 3.0 for both sources, access "Public", citations) and idc_index (222
# patients with images: 6,464 MR and 2,568 SEG series; 221 patients with 845 SR series
# "Standard Breast Imaging Report" of the dicom_sr_breast_clinical analysis result). SEG series
# descriptions: "PE Segmentation thresh=<n>" and "VOI PE Segmentation thresh=<n>" (tumor masks,
# 708 and 576 series) and "(VOI) Breast Tissue Segmentation" (not tumor; excluded below).
SPEC = TrialSpec(
    name="ispy1",
    title="I-SPY1 / ACRIN 6657 breast DCE-MRI with tumor segmentations",
    description="""\
Breast dynamic contrast-enhanced MR of the **I-SPY1** trial and its companion imaging study
**ACRIN 6657** (neoadjuvant chemotherapy), with tumor masks as DICOM SEG
([collection](https://doi.org/10.7937/k9/tcia.2016.hdhpgjlk)).

- Labels: the percent-enhancement masks, "PE Segmentation thresh=<n>" (whole breast) and, for
  most studies, "VOI PE Segmentation thresh=<n>" (inside a volume of interest):
  two label series of the same tumor, kept apart by their series description. The breast tissue
  masks ("Breast Tissue Segmentation") are not tumor and are skipped.
- The DICOM SR "Standard Breast Imaging Report" series
  ([clinical SR](https://doi.org/10.7937/tcia.2019.wgllssg1)) carry clinical data and
  measurements; they are a clinical source, not labels, in this version.
- IDC index (idc-index-data 25.0.5): 222 patients, 6,464 MR and 2,568 SEG series; everything
  CC BY 3.0.
- Clinical sheet: taken at build time; column types are inferred.""",
    trial_ids=("I-SPY1", "ACRIN 6657"),
    homepage="https://doi.org/10.7937/k9/tcia.2016.hdhpgjlk",
    sources=(
        SourceCollection(
            name="ISPY1",
            title=(
                "Multi-center breast DCE-MRI data and segmentations from patients in the I-SPY "
                "1/ACRIN 6657 trials"
            ),
            doi="10.7937/k9/tcia.2016.hdhpgjlk",
            role="images",
            license=CC_BY_3_0,
            access="public",
            modalities=("MR", "SEG"),
            idc_collection_id="ispy1",
            subjects=222,
            note="IDC index (idc-index-data 25.0.5); the SEG masks are part of the collection.",
        ),
        SourceCollection(
            name="dicom_sr_breast_clinical",
            title=(
                "DICOM SR of clinical data and measurement for breast cancer collections to TCIA"
            ),
            doi="10.7937/tcia.2019.wgllssg1",
            role="clinical",
            license=CC_BY_3_0,
            access="public",
            modalities=("SR",),
            idc_collection_id="ispy1",
            idc_analysis_result_id="dicom_sr_breast_clinical",
            subjects=221,
            note="IDC index (idc-index-data 25.0.5); the analysis result also covers other breast collections.",
        ),
    ),
    citation="""\
@misc{ispy1,
  author = {Newitt, D. and Hylton, N.},
  title = {Multi-center breast DCE-MRI data and segmentations from patients in the I-SPY 1/ACRIN 6657 trials},
  year = {2016},
  version = {2},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/K9/TCIA.2016.HDHPGJLK},
  url = {https://doi.org/10.7937/K9/TCIA.2016.HDHPGJLK},
}

@misc{ispy1_clinical_sr,
  author = {Clunie, D. A. and Hickman, H. and Ver Hoef, W. and Hastak, S. and Wagner, U. and Helton, E.},
  title = {DICOM SR of clinical data and measurement for breast cancer collections to TCIA},
  year = {2019},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/TCIA.2019.WGLLSSG1},
  url = {https://doi.org/10.7937/TCIA.2019.WGLLSSG1},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("SEG",), include_pattern=r"PE Segmentation"),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The ISPY1 collection page (https://doi.org/10.7937/k9/tcia.2016.hdhpgjlk) offers the "
            "clinical data: download the sheet and pass it (.csv or .xlsx) with its "
            "patient-id column at build time. Column types are inferred from the sheet and "
            "recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id ispy1: MR, SEG and the clinical SR):
  pip install idc-index
  idc download ispy1 --download-dir ~/TCIA/ISPY1
Alternatively, open the .tcia manifest of https://doi.org/10.7937/k9/tcia.2016.hdhpgjlk with
the NBIA Data Retriever into ~/TCIA/ISPY1 (keep its metadata.csv).
Then build: tcia-trials build ispy1 --source ~/TCIA/ISPY1 --out out""",
    tags=("oncology", "clinical-trial", "breast", "mr", "dce-mri", "segmentation", "seg"),
)
