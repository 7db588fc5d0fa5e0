"""ACRIN 6698 / I-SPY2 breast DWI: MR with DWI and DCE tumor masks (SEG) (data only)."""

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

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "acrin_6698"
# (title, DOI, modalities "MR, SEG", CC BY 4.0, access "Public", citation) and idc_index (385
# patients; 16,534 MR and 2,213 SEG series; SEG descriptions "ACRIN-6698: DWI SEG: from S4: Whole
# Tumor Manual" and "ISPY2: VOLSER: uni-lateral cropped: Analysis Mask"). The DOI is the one in
# issue 4 (IDC writes it in lower case).
SPEC = TrialSpec(
    name="acrin_6698",
    title="ACRIN 6698 / I-SPY2 breast DWI with tumor segmentations",
    description="""\
Breast MR of the **ACRIN 6698** sub-study of the I-SPY2 trial (diffusion-weighted imaging for
neoadjuvant treatment response), with its tumor segmentations as DICOM SEG
([collection](https://doi.org/10.7937/TCIA.KK02-6D95)): manual whole-tumor masks on DWI ("DWI
SEG: ... Whole Tumor Manual") and the I-SPY2 DCE analysis masks ("ISPY2: VOLSER: ... Analysis
Mask"). Each SEG series is a label series; its segments become lesions named by segment label.

- IDC index (idc-index-data 25.0.5): 385 patients, 16,534 MR and 2,213 SEG series, CC BY 4.0.
- Clinical data: IDC lists clinical supporting data for this collection (TCIA collection page);
  this builder takes the sheet at build time and infers its column types.""",
    trial_ids=("ACRIN 6698", "I-SPY2"),
    homepage="https://doi.org/10.7937/TCIA.KK02-6D95",
    sources=(
        SourceCollection(
            name="ACRIN-6698",
            title="ACRIN 6698/I-SPY2 Breast DWI",
            doi="10.7937/TCIA.KK02-6D95",
            role="images",
            license=CC_BY_4_0,
            access="public",
            modalities=("MR", "SEG"),
            idc_collection_id="acrin_6698",
            subjects=385,
            note="IDC index (idc-index-data 25.0.5); the SEG masks are part of the collection.",
        ),
    ),
    citation="""\
@misc{acrin_6698,
  author = {Newitt, D. C. and Partridge, S. C. and Zhang, Z. and Gibbs, J. and Chenevert, T. and Rosen, M. and Bolan, P. and Marques, H. and Romanoff, J. and Cimino, L. and Joe, B. N. and Umphrey, H. and Ojeda-Fournier, H. and Dogan, B. and Oh, K. Y. and Abe, H. and Drukteinis, J. and Esserman, L. J. and Hylton, N. M.},
  title = {ACRIN 6698/I-SPY2 Breast DWI},
  year = {2021},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/TCIA.KK02-6D95},
  url = {https://doi.org/10.7937/TCIA.KK02-6D95},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("SEG",)),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The ACRIN-6698 collection page (https://doi.org/10.7937/TCIA.KK02-6D95) offers the "
            "clinical data: download the sheet and pass it (.csv or .xlsx) with its patient-id "
            "column at build time. Column types are inferred from the sheet and recorded in the "
            "output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id acrin_6698, MR and SEG):
  pip install idc-index
  idc download acrin_6698 --download-dir ~/TCIA/ACRIN-6698
Alternatively, open the .tcia manifest of https://doi.org/10.7937/TCIA.KK02-6D95 with the NBIA
Data Retriever into ~/TCIA/ACRIN-6698 (keep its metadata.csv).
Then build: tcia-trials build acrin_6698 --source ~/TCIA/ACRIN-6698 --out out""",
    tags=("oncology", "clinical-trial", "breast", "mr", "dwi", "segmentation", "seg"),
)
