"""CPTAC-UCEC tumor annotations: radiology with RTSTRUCT contours and seed points (data only)."""

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

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "cptac_ucec"
# (titles, DOIs, modalities, CC BY 4.0, access "Public", citations) and idc_index (patients per
# source DOI, series counts, descriptions such as "UTERUS - 1"). DOIs as IDC writes them.
SPEC = TrialSpec(
    name="cptac_ucec_tumor_annotations",
    title="CPTAC-UCEC tumor annotations",
    description="""\
Radiology of the **CPTAC-UCEC** cohort (uterine corpus endometrial carcinoma) with tumor
annotations ([images](https://doi.org/10.7937/k9/tcia.2018.3r3juisw),
[annotations](https://doi.org/10.7937/89m3-kq43)) from the same NCI annotation program as the
NCTN trial annotations: one RTSTRUCT series per lesion and time point with its 3D contour,
described e.g. "Pre-Dose, UTERUS - 1", and one with its seed point ("... - SEED POINT");
"Pre-Dose, No Findings" marks an explicit negative. Time points: "Pre-Dose", "Post-Chemotherapy
#1", ...

- CPTAC is a proteogenomic consortium, not a clinical trial: there is no trial id.
- IDC index (idc-index-data 25.0.5): 90 patients with radiology (894 CT, 1,056 MR, 7 PT and 2 US
  series), 72 patients with annotations (617 RTSTRUCT series); everything CC BY 4.0.
- The collection also holds slide microscopy; it is not read here.
- Clinical data: IDC lists clinical supporting data for this collection (TCIA collection page);
  this builder takes the sheet at build time and infers its column types.""",
    trial_ids=(),
    homepage="https://doi.org/10.7937/89m3-kq43",
    sources=(
        SourceCollection(
            name="CPTAC-UCEC",
            title="The Clinical Proteomic Tumor Analysis Consortium Uterine Corpus Endometrial Carcinoma Collection (CPTAC-UCEC)",
            doi="10.7937/k9/tcia.2018.3r3juisw",
            role="images",
            license=CC_BY_4_0,
            access="public",
            modalities=("CT", "MR", "PT", "US"),
            idc_collection_id="cptac_ucec",
            subjects=90,
            note="IDC index (idc-index-data 25.0.5): the radiology source (slide microscopy has its own DOI).",
        ),
        SourceCollection(
            name="CPTAC-UCEC-Tumor-Annotations",
            title="Annotations for The Clinical Proteomic Tumor Analysis Consortium Uterine Corpus Endometrial Carcinoma Collection (CPTAC-UCEC-Tumor-Annotations)",
            doi="10.7937/89m3-kq43",
            role="annotations",
            license=CC_BY_4_0,
            access="public",
            modalities=("RTSTRUCT",),
            idc_collection_id="cptac_ucec",
            idc_analysis_result_id="cptac_ucec_tumor_annotations",
            subjects=72,
            note="IDC index (idc-index-data 25.0.5).",
        ),
    ),
    citation="""\
@misc{cptac_ucec_images,
  author = {{National Cancer Institute Clinical Proteomic Tumor Analysis Consortium (CPTAC)}},
  title = {The Clinical Proteomic Tumor Analysis Consortium Uterine Corpus Endometrial Carcinoma Collection (CPTAC-UCEC)},
  year = {2019},
  version = {13},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/K9/TCIA.2018.3R3JUISW},
  url = {https://doi.org/10.7937/K9/TCIA.2018.3R3JUISW},
}

@misc{cptac_ucec_annotations,
  author = {Rozenfeld, M. and Jordan, P.},
  title = {Annotations for The Clinical Proteomic Tumor Analysis Consortium Uterine Corpus Endometrial Carcinoma Collection (CPTAC-UCEC-Tumor-Annotations)},
  year = {2023},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/89M3-KQ43},
  url = {https://doi.org/10.7937/89M3-KQ43},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("RTSTRUCT",)),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The CPTAC-UCEC collection page (https://doi.org/10.7937/k9/tcia.2018.3r3juisw) "
            "offers the clinical data: download the sheet and pass it (.csv or .xlsx) with "
            "its patient-id column at build time. Column types are inferred from the sheet "
            "and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id cptac_ucec). The collection also holds slide microscopy, so
select the radiology and the annotations:
  pip install idc-index
  python -c "from idc_index import index; c = index.IDCClient(); q = \"SELECT SeriesInstanceUID FROM index WHERE collection_id = 'cptac_ucec' AND Modality IN ('CT', 'MR', 'PT', 'US', 'RTSTRUCT')\"; c.download_from_selection(seriesInstanceUID=c.sql_query(q)['SeriesInstanceUID'].tolist(), downloadDir='TCIA/CPTAC-UCEC')"
Alternatively, open the .tcia manifests of https://doi.org/10.7937/k9/tcia.2018.3r3juisw and
https://doi.org/10.7937/89m3-kq43 with the NBIA Data Retriever into TCIA/CPTAC-UCEC (keep its metadata.csv).
Then build: tcia-trials build cptac_ucec_tumor_annotations --source TCIA/CPTAC-UCEC --out out""",
    tags=("oncology", "uterus", "ct", "segmentation", "seed-points", "rtstruct"),
)
