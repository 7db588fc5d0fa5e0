"""ARAR0331: nasopharyngeal cancer, NCTN tumor annotations (controlled access; data only)."""

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
# Annotation metadata CSV name (Metadata_Report_ARAR0331_2023_11_13.csv) from the same notebook.
# Annotation title: TCIA's pattern "Annotations for <title> (<NAME>-Tumor-Annotations)" (seen for
# ACNS0332, AREN0533, EAY131 and CPTAC); check it on the DOI page.
# Neither source is in the IDC index (idc-index-data 25.0.5), so no license is stated:
# LICENSE_UNKNOWN ("see TCIA page"), access "controlled" (DESIGN.md: NCTN annotation datasets
# since 2025).
SPEC = TrialSpec(
    name="arar0331",
    title="ARAR0331 tumor annotations (NCTN)",
    description="""\
Tumor annotations of the Children's Oncology Group (COG) trial **ARAR0331** (nasopharyngeal
cancer), published on TCIA by the NCI-funded NCTN annotation effort: radiologist-made 3D
segmentations, seed points and "no findings" assessments, all stored as RTSTRUCT, on the trial's
images ([images](https://doi.org/10.7937/WTEC-MN22),
[annotations](https://doi.org/10.25737/H65S-8F58)).

- Lesions are paired with their seed points by the series description ("<time point>, <LOCATION>
  - <n>" and "... - SEED POINT"); time points come from ClinicalTrialTimePointID.
- Access: controlled since 2025 (dbGaP approval, CRDC manifest, TCIA Data Retriever); manual
  download only.
- Clinical data: the NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/1302),
  supplied at build time; column types are inferred from the sheet and recorded in the output
  and card.
- Neither the images nor the annotations are in the IDC index (idc-index-data 25.0.5):
  modalities, patient counts and licenses are on the TCIA pages.""",
    trial_ids=("COG ARAR0331",),
    homepage="https://doi.org/10.7937/WTEC-MN22",
    sources=(
        SourceCollection(
            name="ARAR0331",
            title=(
                "Radiation Therapy, Amifostine, and Chemotherapy in Treating Young Patients With "
                "Newly Diagnosed Nasopharyngeal Cancer (ARAR0331)"
            ),
            doi="10.7937/WTEC-MN22",
            role="images",
            license=LICENSE_UNKNOWN,
            access="controlled",
            note=NOT_IN_IDC_NOTE,
        ),
        SourceCollection(
            name="ARAR0331-Tumor-Annotations",
            title=(
                "Annotations for Radiation Therapy, Amifostine, and Chemotherapy in Treating Young "
                "Patients With Newly Diagnosed Nasopharyngeal Cancer (ARAR0331-Tumor-Annotations)"
            ),
            doi="10.25737/H65S-8F58",
            role="annotations",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("RTSTRUCT",),
            note=NOT_IN_IDC_NOTE,
        ),
    ),
    citation="""\
@misc{arar0331_images,
  title = {Radiation Therapy, Amifostine, and Chemotherapy in Treating Young Patients With Newly Diagnosed Nasopharyngeal Cancer (ARAR0331)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/WTEC-MN22},
  url = {https://doi.org/10.7937/WTEC-MN22},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}

@misc{arar0331_annotations,
  title = {Annotations for Radiation Therapy, Amifostine, and Chemotherapy in Treating Young Patients With Newly Diagnosed Nasopharyngeal Cancer (ARAR0331-Tumor-Annotations)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.25737/H65S-8F58},
  url = {https://doi.org/10.25737/H65S-8F58},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    # TCIA names the annotation metadata CSV Metadata_Report_ARAR0331_2023_11_13.csv
    annotation_rules=AnnotationRules(annotation_csv_glob="Metadata_Report_*.csv"),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "Clinical data of ARAR0331 are not part of the TCIA download: request them from the "
            "NCTN Data Archive (https://nctn-data-archive.nci.nih.gov/node/1302; register and "
            'choose "Request Data" for this trial), then pass the sheet (.csv or .xlsx) and its '
            "patient-id column at build time. Column types are inferred from the sheet and "
            "recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
ARAR0331 and ARAR0331-Tumor-Annotations are controlled-access data (since 2025):
1. Request access through dbGaP (the collection page https://doi.org/10.7937/WTEC-MN22 explains
   how).
2. Once approved, download the CRDC manifests of the images (https://doi.org/10.7937/WTEC-MN22)
   and of the annotations (https://doi.org/10.25737/H65S-8F58) with your API key using the TCIA
   Data Retriever, both into one folder, e.g. ~/TCIA/ARAR0331.
3. Put TCIA's annotation metadata CSV from https://doi.org/10.25737/H65S-8F58 (published as
   Metadata_Report_ARAR0331_2023_11_13.csv) in the top folder of the download; it links each
   annotation to its image series (without it the links come from the references inside the
   DICOM objects).
4. Clinical data come from the NCTN Data Archive
   (https://nctn-data-archive.nci.nih.gov/node/1302); pass the sheet at build time.
Then build: tcia-trials build arar0331 --source ~/TCIA/ARAR0331 --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "pediatric",
        "head-and-neck",
        "segmentation",
        "seed-points",
        "controlled-access",
    ),
)
