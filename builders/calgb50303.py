"""CALGB50303: diffuse large B-cell lymphoma, NCTN tumor annotations (controlled access; data only)."""

from tcia_trials.spec import (
    CORE_RELEASE_NOTES,
    DEFAULT_CONFIGS,
    LICENSE_UNKNOWN,
    NOT_IN_IDC_NOTE,
    AnnotationRules,
    ClinicalSpec,
    SourceCollection,
    TrialSpec,
)

# Facts: DOIs from issue 4; annotation modalities (RTSTRUCT, SEG for ACNS0332 only) from
# DESIGN.md.
# Image title from TCIA's TCIA_NCTN_Annotations.ipynb (github.com/kirbyju/TCIA_Notebooks).
# NCTN Data Archive link from the same notebook.
# Annotation metadata CSV name (Metadata_Report_CALGB50303_02272023.csv) from the same notebook.
# NCT00118209: from TCIA's CALGB50303 notebook (the trial to name in the NCTN Data Archive
# request).
# Annotation title: TCIA's pattern "Annotations for <title> (<NAME>-Tumor-Annotations)" (seen for
# ACNS0332, AREN0533, EAY131 and CPTAC); check it on the DOI page.
# Neither source is in the IDC index (idc-index-data 25.0.5), so no license is stated:
# LICENSE_UNKNOWN ("see TCIA page"), access "controlled" (DESIGN.md: NCTN annotation datasets
# since 2025).
SPEC = TrialSpec(
    name="calgb50303",
    title="CALGB50303 tumor annotations (NCTN)",
    description="""\
Tumor annotations of the Cancer and Leukemia Group B (CALGB, now Alliance) trial **CALGB50303**
(diffuse large B-cell lymphoma), published on TCIA by the NCI-funded NCTN annotation effort:
radiologist-made 3D segmentations, seed points and "no findings" assessments, all stored as
RTSTRUCT, on the trial's images ([images](https://doi.org/10.7937/CM65-A013),
[annotations](https://doi.org/10.7937/9jer-g980)).

- Lesions are paired with their seed points by the series description ("<time point>, <LOCATION>
  - <n>" and "... - SEED POINT"); time points come from ClinicalTrialTimePointID.
- Access: controlled since 2025 (dbGaP approval, CRDC manifest, TCIA Data Retriever); manual
  download only.
- Clinical data: the NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/989),
  supplied at build time; column types are inferred from the sheet and recorded in the output
  and card.
- Neither the images nor the annotations are in the IDC index (idc-index-data 25.0.5):
  modalities, patient counts and licenses are on the TCIA pages.""",
    trial_ids=("NCT00118209", "CALGB 50303"),
    homepage="https://doi.org/10.7937/CM65-A013",
    sources=(
        SourceCollection(
            name="CALGB50303",
            title=(
                "Rituximab and Combination Chemotherapy in Treating Patients With Diffuse Large "
                "B-Cell Non-Hodgkin's Lymphoma (CALGB50303)"
            ),
            doi="10.7937/CM65-A013",
            role="images",
            license=LICENSE_UNKNOWN,
            access="controlled",
            note=NOT_IN_IDC_NOTE,
        ),
        SourceCollection(
            name="CALGB50303-Tumor-Annotations",
            title=(
                "Annotations for Rituximab and Combination Chemotherapy in Treating Patients With "
                "Diffuse Large B-Cell Non-Hodgkin's Lymphoma (CALGB50303-Tumor-Annotations)"
            ),
            doi="10.7937/9jer-g980",
            role="annotations",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("RTSTRUCT",),
            note=NOT_IN_IDC_NOTE,
        ),
    ),
    citation="""\
@misc{calgb50303_images,
  title = {Rituximab and Combination Chemotherapy in Treating Patients With Diffuse Large B-Cell Non-Hodgkin's Lymphoma (CALGB50303)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/CM65-A013},
  url = {https://doi.org/10.7937/CM65-A013},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}

@misc{calgb50303_annotations,
  title = {Annotations for Rituximab and Combination Chemotherapy in Treating Patients With Diffuse Large B-Cell Non-Hodgkin's Lymphoma (CALGB50303-Tumor-Annotations)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/9jer-g980},
  url = {https://doi.org/10.7937/9jer-g980},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    # TCIA names the annotation metadata CSV Metadata_Report_CALGB50303_02272023.csv
    annotation_rules=AnnotationRules(annotation_csv_glob="Metadata_Report_*.csv"),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "Clinical data of CALGB50303 are not part of the TCIA download: request them from the "
            "NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/989; register, choose "
            '"Request Data", enter NCT00118209 as the trial and tick "Imaging Data Requested"), '
            "then pass the sheet (.csv or .xlsx) and its patient-id column at build time. Column "
            "types are inferred from the sheet and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
CALGB50303 and CALGB50303-Tumor-Annotations are controlled-access data (since 2025):
1. Request access through dbGaP (the collection page https://doi.org/10.7937/CM65-A013 explains
   how).
2. Once approved, download the CRDC manifests of the images (https://doi.org/10.7937/CM65-A013)
   and of the annotations (https://doi.org/10.7937/9jer-g980) with your API key using the TCIA
   Data Retriever, both into one folder, e.g. ~/TCIA/CALGB50303.
3. Put TCIA's annotation metadata CSV from https://doi.org/10.7937/9jer-g980 (published as
   Metadata_Report_CALGB50303_02272023.csv) in the top folder of the download; it links each
   annotation to its image series (without it the links come from the references inside the
   DICOM objects).
4. Clinical data come from the NCTN Data Archive
   (https://nctn-data-archive.nci.nih.gov/node/989); pass the sheet at build time.
Then build: tcia-trials build calgb50303 --source ~/TCIA/CALGB50303 --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "lymphoma",
        "segmentation",
        "seed-points",
        "controlled-access",
    ),
)
