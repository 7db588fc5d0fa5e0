"""AREN0533: Wilms tumor (stage III-IV), NCTN tumor annotations (controlled access; data only)."""

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
# Annotation metadata CSV name (AREN0533_Annotations_Metadata__01-12-2023.csv) from the same
# notebook.
# NCT00379340: from TCIA's AREN0533 notebook (the trial to name in the NCTN Data Archive request).
# Neither source is in the IDC index (idc-index-data 25.0.5), so no license is stated:
# LICENSE_UNKNOWN ("see TCIA page"), access "controlled" (DESIGN.md: NCTN annotation datasets
# since 2025).
SPEC = TrialSpec(
    name="aren0533",
    title="AREN0533 tumor annotations (NCTN)",
    description="""\
Tumor annotations of the Children's Oncology Group (COG) trial **AREN0533** (Wilms tumor (stage
III-IV)), published on TCIA by the NCI-funded NCTN annotation effort: radiologist-made 3D
segmentations, seed points and "no findings" assessments, all stored as RTSTRUCT, on the trial's
images ([images](https://doi.org/10.7937/SJEZ-CJ78),
[annotations](https://doi.org/10.7937/WFCC-DA41)).

- Lesions are paired with their seed points by the series description ("<time point>, <LOCATION>
  - <n>" and "... - SEED POINT"); time points come from ClinicalTrialTimePointID.
- Access: controlled since 2025 (dbGaP approval, CRDC manifest, TCIA Data Retriever); manual
  download only.
- Clinical data: the NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/737),
  supplied at build time; column types are inferred from the sheet and recorded in the output
  and card.
- Neither the images nor the annotations are in the IDC index (idc-index-data 25.0.5):
  modalities, patient counts and licenses are on the TCIA pages.""",
    trial_ids=("NCT00379340", "COG AREN0533"),
    homepage="https://doi.org/10.7937/SJEZ-CJ78",
    sources=(
        SourceCollection(
            name="AREN0533",
            title=(
                "Combination Chemotherapy With or Without Radiation Therapy in Treating Young "
                "Patients With Newly Diagnosed Stage III or Stage IV Wilms Tumor (AREN0533)"
            ),
            doi="10.7937/SJEZ-CJ78",
            role="images",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("CT",),  # CT: TCIA's manifest names ("OriginalCTs")
            note=NOT_IN_IDC_NOTE,
        ),
        SourceCollection(
            name="AREN0533-Tumor-Annotations",
            title=(
                "Annotations for Combination Chemotherapy With or Without Radiation Therapy in "
                "Treating Young Patients With Newly Diagnosed Stage III or Stage IV Wilms Tumor "
                "(AREN0533-Tumor-Annotations)"
            ),
            doi="10.7937/WFCC-DA41",
            role="annotations",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("RTSTRUCT",),
            note=NOT_IN_IDC_NOTE,
        ),
    ),
    citation="""\
@misc{aren0533_images,
  title = {Combination Chemotherapy With or Without Radiation Therapy in Treating Young Patients With Newly Diagnosed Stage III or Stage IV Wilms Tumor (AREN0533)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/SJEZ-CJ78},
  url = {https://doi.org/10.7937/SJEZ-CJ78},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}

@misc{aren0533_annotations,
  title = {Annotations for Combination Chemotherapy With or Without Radiation Therapy in Treating Young Patients With Newly Diagnosed Stage III or Stage IV Wilms Tumor (AREN0533-Tumor-Annotations)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/WFCC-DA41},
  url = {https://doi.org/10.7937/WFCC-DA41},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    # TCIA names the annotation metadata CSV AREN0533_Annotations_Metadata__01-12-2023.csv
    annotation_rules=AnnotationRules(annotation_csv_glob="*nnotation*[Mm]etadata*.csv"),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "Clinical data of AREN0533 are not part of the TCIA download: request them from the "
            "NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/737; register, choose "
            '"Request Data", enter NCT00379340 as the trial and tick "Imaging Data Requested"), '
            "then pass the sheet (.csv or .xlsx) and its patient-id column at build time. Column "
            "types are inferred from the sheet and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
AREN0533 and AREN0533-Tumor-Annotations are controlled-access data (since 2025):
1. Request access through dbGaP (the collection page https://doi.org/10.7937/SJEZ-CJ78 explains
   how).
2. Once approved, download the CRDC manifests of the images (https://doi.org/10.7937/SJEZ-CJ78)
   and of the annotations (https://doi.org/10.7937/WFCC-DA41) with your API key using the TCIA
   Data Retriever, both into one folder, e.g. ~/TCIA/AREN0533.
3. Put TCIA's annotation metadata CSV from https://doi.org/10.7937/WFCC-DA41 (published as
   AREN0533_Annotations_Metadata__01-12-2023.csv) in the top folder of the download; it links
   each annotation to its image series (without it the links come from the references inside the
   DICOM objects).
4. Clinical data come from the NCTN Data Archive
   (https://nctn-data-archive.nci.nih.gov/node/737); pass the sheet at build time.
Then build: tcia-trials build aren0533 --source ~/TCIA/AREN0533 --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "pediatric",
        "kidney",
        "ct",
        "segmentation",
        "seed-points",
        "controlled-access",
    ),
)
