"""ACNS0332: high-risk medulloblastoma / PNET, NCTN tumor annotations (controlled access; data only)."""

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
# Annotation metadata CSV name (ACNS0332_annotations_metadata-2023-08-03.csv) from the same
# notebook.
# NCT00392327: from TCIA's ACNS0332 notebook (the trial to name in the NCTN Data Archive request).
# Neither source is in the IDC index (idc-index-data 25.0.5), so no license is stated:
# LICENSE_UNKNOWN ("see TCIA page"), access "controlled" (DESIGN.md: NCTN annotation datasets
# since 2025).
SPEC = TrialSpec(
    name="acns0332",
    title="ACNS0332 tumor annotations (NCTN)",
    description="""\
Tumor annotations of the Children's Oncology Group (COG) trial **ACNS0332** (high-risk
medulloblastoma / PNET), published on TCIA by the NCI-funded NCTN annotation effort:
radiologist-made 3D segmentations stored as DICOM SEG (the only NCTN set that uses SEG), seed
points and "no findings" assessments stored as RTSTRUCT, on the trial's images
([images](https://doi.org/10.7937/TCIA.582B-XZ89),
[annotations](https://doi.org/10.7937/D8A8-6252)).

- Lesions are paired with their seed points by the series description ("<time point>, <LOCATION>
  - <n>" and "... - SEED POINT"); time points come from ClinicalTrialTimePointID.
- Access: controlled since 2025 (dbGaP approval, CRDC manifest, TCIA Data Retriever); manual
  download only.
- Clinical data: the NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/838),
  supplied at build time; column types are inferred from the sheet and recorded in the output
  and card.
- Neither the images nor the annotations are in the IDC index (idc-index-data 25.0.5):
  modalities, patient counts and licenses are on the TCIA pages.
- DICOM PatientID carries the prefix the download folders lack (ACNS0332_PARFPN vs PARFPN); the
  clinical join strips it.""",
    trial_ids=("NCT00392327", "COG ACNS0332"),
    homepage="https://doi.org/10.7937/TCIA.582B-XZ89",
    sources=(
        SourceCollection(
            name="ACNS0332",
            title=(
                "Chemotherapy and Radiation Therapy in Treating Young Patients With Newly "
                "Diagnosed, Previously Untreated, High-Risk Medulloblastoma/PNET (ACNS0332)"
            ),
            doi="10.7937/TCIA.582B-XZ89",
            role="images",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("MR",),  # MR: issue 4 and TCIA's manifest names ("OriginalMRs")
            note=NOT_IN_IDC_NOTE,
        ),
        SourceCollection(
            name="ACNS0332-Tumor-Annotations",
            title=(
                "Annotations for Chemotherapy and Radiation Therapy in Treating Young Patients "
                "With Newly Diagnosed, Previously Untreated, High-Risk Medulloblastoma/PNET "
                "(ACNS0332-Tumor-Annotations)"
            ),
            doi="10.7937/D8A8-6252",
            role="annotations",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("RTSTRUCT", "SEG"),
            note=NOT_IN_IDC_NOTE,
        ),
    ),
    citation="""\
@misc{acns0332_images,
  title = {Chemotherapy and Radiation Therapy in Treating Young Patients With Newly Diagnosed, Previously Untreated, High-Risk Medulloblastoma/PNET (ACNS0332)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/TCIA.582B-XZ89},
  url = {https://doi.org/10.7937/TCIA.582B-XZ89},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}

@misc{acns0332_annotations,
  title = {Annotations for Chemotherapy and Radiation Therapy in Treating Young Patients With Newly Diagnosed, Previously Untreated, High-Risk Medulloblastoma/PNET (ACNS0332-Tumor-Annotations)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/D8A8-6252},
  url = {https://doi.org/10.7937/D8A8-6252},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    # the default glob matches TCIA's ACNS0332_annotations_metadata-2023-08-03.csv
    annotation_rules=AnnotationRules(),
    clinical=ClinicalSpec(
        source="user",
        patient_id_pattern=r"(?:ACNS0332_)?(?P<id>.+)",
        instructions=(
            "Clinical data of ACNS0332 are not part of the TCIA download: request them from the "
            "NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/838; register, choose "
            '"Request Data", enter NCT00392327 as the trial and tick "Imaging Data Requested"), '
            "then pass the sheet (.csv or .xlsx) and its patient-id column at build time. Column "
            "types are inferred from the sheet and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
ACNS0332 and ACNS0332-Tumor-Annotations are controlled-access data (since 2025):
1. Request access through dbGaP (the collection page https://doi.org/10.7937/TCIA.582B-XZ89
   explains how).
2. Once approved, download the CRDC manifests of the images
   (https://doi.org/10.7937/TCIA.582B-XZ89) and of the annotations
   (https://doi.org/10.7937/D8A8-6252) with your API key using the TCIA Data Retriever, both
   into one folder, e.g. ~/TCIA/ACNS0332.
3. Put TCIA's annotation metadata CSV from https://doi.org/10.7937/D8A8-6252 (published as
   ACNS0332_annotations_metadata-2023-08-03.csv) in the top folder of the download; it links
   each annotation to its image series (without it the links come from the references inside the
   DICOM objects).
4. Clinical data come from the NCTN Data Archive
   (https://nctn-data-archive.nci.nih.gov/node/838); pass the sheet at build time.
Then build: tcia-trials build acns0332 --source ~/TCIA/ACNS0332 --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "pediatric",
        "brain",
        "mr",
        "segmentation",
        "seed-points",
        "controlled-access",
    ),
)
