"""CPTAC-CCRCC tumor annotations: radiology with RTSTRUCT contours and seed points (data only)."""

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

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "cptac_ccrcc"
# (titles, DOIs, modalities, CC BY 4.0, access "Public", citations) and idc_index (patients per
# source DOI, series counts, descriptions such as "RIGHT KIDNEY - 1"). DOIs as IDC writes them.
SPEC = TrialSpec(
    name="cptac_ccrcc_tumor_annotations",
    title="CPTAC-CCRCC tumor annotations",
    description="""\
Radiology of the **CPTAC-CCRCC** cohort (clear cell renal cell carcinoma) with tumor annotations
([images](https://doi.org/10.7937/k9/tcia.2018.oblamn27),
[annotations](https://doi.org/10.7937/skq4-qx48)) from the same NCI annotation program as the
NCTN trial annotations: one RTSTRUCT series per lesion and time point with its 3D contour,
described e.g. "Pre-Dose, RIGHT KIDNEY - 1", and one with its seed point ("... - SEED POINT");
"Pre-Dose, No Findings" marks an explicit negative. Time points: "Pre-Dose", "Post-Chemotherapy
#1", ...

- CPTAC is a proteogenomic consortium, not a clinical trial: there is no trial id.
- IDC index (idc-index-data 25.0.5): 71 patients with radiology (612 CT and 254 MR series), 60
  patients with annotations (636 RTSTRUCT series); everything CC BY 4.0.
- The collection also holds BAMF AIMI SEGs (bamf_aimi_annotations) and slide microscopy; neither
  is read here.
- Clinical data: IDC lists clinical supporting data for this collection (TCIA collection page);
  this builder takes the sheet at build time and infers its column types.""",
    trial_ids=(),
    homepage="https://doi.org/10.7937/skq4-qx48",
    sources=(
        SourceCollection(
            name="CPTAC-CCRCC",
            title="The Clinical Proteomic Tumor Analysis Consortium Clear Cell Renal Cell Carcinoma Collection (CPTAC-CCRCC)",
            doi="10.7937/k9/tcia.2018.oblamn27",
            role="images",
            license=CC_BY_4_0,
            access="public",
            modalities=("CT", "MR"),
            idc_collection_id="cptac_ccrcc",
            subjects=71,
            note="IDC index (idc-index-data 25.0.5): the radiology source (slide microscopy has its own DOI).",
        ),
        SourceCollection(
            name="CPTAC-CCRCC-Tumor-Annotations",
            title="Annotations for The Clinical Proteomic Tumor Analysis Consortium Clear Cell Renal Cell Carcinoma Collection (CPTAC-CCRCC-Tumor-Annotations)",
            doi="10.7937/skq4-qx48",
            role="annotations",
            license=CC_BY_4_0,
            access="public",
            modalities=("RTSTRUCT",),
            idc_collection_id="cptac_ccrcc",
            idc_analysis_result_id="cptac_ccrcc_tumor_annotations",
            subjects=60,
            note="IDC index (idc-index-data 25.0.5).",
        ),
    ),
    citation="""\
@misc{cptac_ccrcc_images,
  author = {{National Cancer Institute Clinical Proteomic Tumor Analysis Consortium (CPTAC)}},
  title = {The Clinical Proteomic Tumor Analysis Consortium Clear Cell Renal Cell Carcinoma Collection (CPTAC-CCRCC)},
  year = {2018},
  version = {14},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/K9/TCIA.2018.OBLAMN27},
  url = {https://doi.org/10.7937/K9/TCIA.2018.OBLAMN27},
}

@misc{cptac_ccrcc_annotations,
  author = {Rozenfeld, M. and Jordan, P.},
  title = {Annotations for The Clinical Proteomic Tumor Analysis Consortium Clear Cell Renal Cell Carcinoma Collection (CPTAC-CCRCC-Tumor-Annotations)},
  year = {2023},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/SKQ4-QX48},
  url = {https://doi.org/10.7937/SKQ4-QX48},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("RTSTRUCT",)),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The CPTAC-CCRCC collection page (https://doi.org/10.7937/k9/tcia.2018.oblamn27) "
            "offers the clinical data: download the sheet and pass it (.csv or .xlsx) with "
            "its patient-id column at build time. Column types are inferred from the sheet "
            "and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id cptac_ccrcc). The collection also holds slide microscopy, so
select the radiology and the annotations:
  pip install idc-index
  python -c "from idc_index import index; c = index.IDCClient(); q = \"SELECT SeriesInstanceUID FROM index WHERE collection_id = 'cptac_ccrcc' AND Modality IN ('CT', 'MR', 'RTSTRUCT')\"; c.download_from_selection(seriesInstanceUID=c.sql_query(q)['SeriesInstanceUID'].tolist(), downloadDir='TCIA/CPTAC-CCRCC')"
Alternatively, open the .tcia manifests of https://doi.org/10.7937/k9/tcia.2018.oblamn27 and
https://doi.org/10.7937/skq4-qx48 with the NBIA Data Retriever into TCIA/CPTAC-CCRCC (keep its metadata.csv).
Then build: tcia-trials build cptac_ccrcc_tumor_annotations --source TCIA/CPTAC-CCRCC --out out""",
    tags=("oncology", "kidney", "ct", "segmentation", "seed-points", "rtstruct"),
)
