"""ACRIN-HNSCC-FDG-PET-CT: head and neck squamous cell carcinoma (FDG PET/CT), NCTN tumor annotations (controlled access; data only)."""

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
# TCIA's full title was not available offline; the collection's short name and protocol are used.
# Annotation metadata CSV name (Metadata_Report_ACRIN-HNSCC_2023_11_07.csv) from the same
# notebook.
# Annotation title: TCIA's pattern "Annotations for <title> (<NAME>-Tumor-Annotations)" (seen for
# ACNS0332, AREN0533, EAY131 and CPTAC); check it on the DOI page.
# Neither source is in the IDC index (idc-index-data 25.0.5), so no license is stated:
# LICENSE_UNKNOWN ("see TCIA page"), access "controlled" (DESIGN.md: NCTN annotation datasets
# since 2025).
SPEC = TrialSpec(
    name="acrin_hnscc_fdg_pet_ct",
    title="ACRIN-HNSCC-FDG-PET-CT tumor annotations (NCTN)",
    description="""\
Tumor annotations of the American College of Radiology Imaging Network (ACRIN, now ECOG-ACRIN)
trial **ACRIN-HNSCC-FDG-PET-CT** (head and neck squamous cell carcinoma (FDG PET/CT)), published
on TCIA by the NCI-funded NCTN annotation effort: radiologist-made 3D segmentations, seed points
and "no findings" assessments, all stored as RTSTRUCT, on the trial's images
([images](https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG),
[annotations](https://doi.org/10.7937/JVGC-AQ36)).

- Lesions are paired with their seed points by the series description ("<time point>, <LOCATION>
  - <n>" and "... - SEED POINT"); time points come from ClinicalTrialTimePointID.
- Access: controlled since 2025 (dbGaP approval, CRDC manifest, TCIA Data Retriever); manual
  download only.
- Clinical data: the collection page (https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG), supplied
  at build time; column types are inferred from the sheet and recorded in the output and card.
- Neither the images nor the annotations are in the IDC index (idc-index-data 25.0.5):
  modalities, patient counts and licenses are on the TCIA pages.""",
    trial_ids=("ACRIN 6685",),
    homepage="https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG",
    sources=(
        SourceCollection(
            name="ACRIN-HNSCC-FDG-PET-CT",
            title="ACRIN-HNSCC-FDG-PET-CT (ACRIN 6685)",
            doi="10.7937/K9/TCIA.2016.JQEJZZNG",
            role="images",
            license=LICENSE_UNKNOWN,
            access="controlled",
            note=NOT_IN_IDC_NOTE,
        ),
        SourceCollection(
            name="ACRIN-HNSCC-FDG-PET-CT-Tumor-Annotations",
            title="Annotations for ACRIN-HNSCC-FDG-PET-CT (ACRIN-HNSCC-FDG-PET-CT-Tumor-Annotations)",
            doi="10.7937/JVGC-AQ36",
            role="annotations",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("RTSTRUCT",),
            note=NOT_IN_IDC_NOTE,
        ),
    ),
    citation="""\
@misc{acrin_hnscc_fdg_pet_ct_images,
  title = {ACRIN-HNSCC-FDG-PET-CT (ACRIN 6685)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/K9/TCIA.2016.JQEJZZNG},
  url = {https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}

@misc{acrin_hnscc_fdg_pet_ct_annotations,
  title = {Annotations for ACRIN-HNSCC-FDG-PET-CT (ACRIN-HNSCC-FDG-PET-CT-Tumor-Annotations)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/JVGC-AQ36},
  url = {https://doi.org/10.7937/JVGC-AQ36},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}""",
    modalities=("CT", "PT"),  # FDG PET/CT, per the collection name
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    # TCIA names the annotation metadata CSV Metadata_Report_ACRIN-HNSCC_2023_11_07.csv
    annotation_rules=AnnotationRules(annotation_csv_glob="Metadata_Report_*.csv"),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "TCIA lists the clinical data of ACRIN-HNSCC-FDG-PET-CT on the collection page "
            "(https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG); download the sheet there and pass it "
            "(.csv or .xlsx) with its patient-id column at build time. Column types are inferred "
            "from the sheet and recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
ACRIN-HNSCC-FDG-PET-CT and ACRIN-HNSCC-FDG-PET-CT-Tumor-Annotations are controlled-access data
   (since 2025):
1. Request access through dbGaP (the collection page
   https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG explains how).
2. Once approved, download the CRDC manifests of the images
   (https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG) and of the annotations
   (https://doi.org/10.7937/JVGC-AQ36) with your API key using the TCIA Data Retriever, both
   into one folder, e.g. ~/TCIA/ACRIN-HNSCC-FDG-PET-CT.
3. Put TCIA's annotation metadata CSV from https://doi.org/10.7937/JVGC-AQ36 (published as
   Metadata_Report_ACRIN-HNSCC_2023_11_07.csv) in the top folder of the download; it links each
   annotation to its image series (without it the links come from the references inside the
   DICOM objects).
4. Clinical data come from the collection page (https://doi.org/10.7937/K9/TCIA.2016.JQEJZZNG);
   pass the sheet at build time.
Then build: tcia-trials build acrin_hnscc_fdg_pet_ct --source ~/TCIA/ACRIN-HNSCC-FDG-PET-CT
   --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "head-and-neck",
        "ct",
        "pet",
        "segmentation",
        "seed-points",
        "controlled-access",
    ),
)
