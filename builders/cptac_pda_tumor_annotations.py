"""CPTAC-PDA tumor annotations: radiology with RTSTRUCT contours and seed points (data only)."""

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

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "cptac_pda"
# (titles, DOIs, modalities, CC BY 4.0, access "Public", citations) and idc_index (patients per
# source DOI, series counts, descriptions such as "PANCREAS - 1"). DOIs as IDC writes them.
SPEC = TrialSpec(
    name="cptac_pda_tumor_annotations",
    title="CPTAC-PDA tumor annotations",
    description="""\
Radiology of the **CPTAC-PDA** cohort (pancreatic ductal adenocarcinoma) with tumor annotations
([images](https://doi.org/10.7937/k9/tcia.2018.sc20fo18),
[annotations](https://doi.org/10.7937/bw9v-bx61)) from the same NCI annotation program as the
NCTN trial annotations: one RTSTRUCT series per lesion and time point with its 3D contour,
described e.g. "Pre-Dose, PANCREAS - 1", and one with its seed point ("... - SEED POINT");
"Pre-Dose, No Findings" marks an explicit negative. Time points: "Pre-Dose", "Post-Chemotherapy
#1", ...

- CPTAC is a proteogenomic consortium, not a clinical trial: there is no trial id.
- IDC index (idc-index-data 25.0.5): 110 patients with radiology (757 CT, 365 MR, 8 PT and 3 US
  series), 103 patients with annotations (536 RTSTRUCT series); everything CC BY 4.0.
- The collection also holds slide microscopy; it is not read here.
- Clinical data: IDC lists clinical supporting data for this collection (TCIA collection page);
  this builder takes the sheet at build time and infers its column types.""",
    trial_ids=(),
    homepage="https://doi.org/10.7937/bw9v-bx61",
    sources=(
        SourceCollection(
            name="CPTAC-PDA",
            title="The Clinical Proteomic Tumor Analysis Consortium Pancreatic Ductal Adenocarcinoma Collection (CPTAC-PDA)",
            doi="10.7937/k9/tcia.2018.sc20fo18",
            role="images",
            license=CC_BY_4_0,
            access="public",
            modalities=("CT", "MR", "PT", "US"),
            idc_collection_id="cptac_pda",
            subjects=110,
            note="IDC index (idc-index-data 25.0.5): the radiology source (slide microscopy has its own DOI).",
        ),
        SourceCollection(
            name="CPTAC-PDA-Tumor-Annotations",
            title="Annotations for The Clinical Proteomic Tumor Analysis Consortium Pancreatic Ductal Adenocarcinoma Collection (CPTAC-PDA-Tumor-Annotations)",
            doi="10.7937/bw9v-bx61",
            role="annotations",
            license=CC_BY_4_0,
            access="public",
            modalities=("RTSTRUCT",),
            idc_collection_id="cptac_pda",
            idc_analysis_result_id="cptac_pda_tumor_annotations",
            subjects=103,
            note="IDC index (idc-index-data 25.0.5).",
        ),
    ),
    citation="""\
@misc{cptac_pda_images,
  author = {{National Cancer Institute Clinical Proteomic Tumor Analysis Consortium (CPTAC)}},
  title = {The Clinical Proteomic Tumor Analysis Consortium Pancreatic Ductal Adenocarcinoma Collection (CPTAC-PDA)},
  year = {2018},
  version = {15},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/K9/TCIA.2018.SC20FO18},
  url = {https://doi.org/10.7937/K9/TCIA.2018.SC20FO18},
}

@misc{cptac_pda_annotations,
  author = {Rozenfeld, M. and Jordan, P.},
  title = {Annotations for The Clinical Proteomic Tumor Analysis Consortium Pancreatic Ductal Adenocarcinoma Collection (CPTAC-PDA-Tumor-Annotations)},
  year = {2023},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/BW9V-BX61},
  url = {https://doi.org/10.7937/BW9V-BX61},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("RTSTRUCT",)),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The CPTAC-PDA collection page (https://doi.org/10.7937/k9/tcia.2018.sc20fo18) "
            "offers the clinical data: download the sheet and pass it (.csv or .xlsx) with "
            "its patient-id column at build time. Column types are inferred from the sheet "
            "and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id cptac_pda). The collection also holds slide microscopy, so
select the radiology and the annotations:
  pip install idc-index
  python -c "from idc_index import index; c = index.IDCClient(); q = \"SELECT SeriesInstanceUID FROM index WHERE collection_id = 'cptac_pda' AND Modality IN ('CT', 'MR', 'PT', 'US', 'RTSTRUCT')\"; c.download_from_selection(seriesInstanceUID=c.sql_query(q)['SeriesInstanceUID'].tolist(), downloadDir='TCIA/CPTAC-PDA')"
Alternatively, open the .tcia manifests of https://doi.org/10.7937/k9/tcia.2018.sc20fo18 and
https://doi.org/10.7937/bw9v-bx61 with the NBIA Data Retriever into TCIA/CPTAC-PDA (keep its metadata.csv).
Then build: tcia-trials build cptac_pda_tumor_annotations --source TCIA/CPTAC-PDA --out out""",
    tags=("oncology", "pancreas", "ct", "segmentation", "seed-points", "rtstruct"),
)
