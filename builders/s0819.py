"""S0819: advanced non-small cell lung cancer, NCTN tumor annotations (controlled access; data only)."""

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
# Title = the ClinicalTrials.gov brief title of NCT00946712 + "(S0819)", the form TCIA uses for
# the other NCTN collections; check it on the DOI page.
# NCT00946712: the ClinicalTrials.gov record of SWOG S0819; not stated on a TCIA page read for
# this spec.
# Annotation title: TCIA's pattern "Annotations for <title> (<NAME>-Tumor-Annotations)" (seen for
# ACNS0332, AREN0533, EAY131 and CPTAC); check it on the DOI page.
# Neither source is in the IDC index (idc-index-data 25.0.5), so no license is stated:
# LICENSE_UNKNOWN ("see TCIA page"), access "controlled" (DESIGN.md: NCTN annotation datasets
# since 2025).
SPEC = TrialSpec(
    name="s0819",
    title="S0819 tumor annotations (NCTN)",
    description="""\
Tumor annotations of the SWOG Cancer Research Network trial **S0819** (advanced non-small cell
lung cancer), published on TCIA by the NCI-funded NCTN annotation effort: radiologist-made 3D
segmentations, seed points and "no findings" assessments, all stored as RTSTRUCT, on the trial's
images ([images](https://doi.org/10.7937/DT39-JS04),
[annotations](https://doi.org/10.7937/R0R8-BN93)).

- Lesions are paired with their seed points by the series description ("<time point>, <LOCATION>
  - <n>" and "... - SEED POINT"); time points come from ClinicalTrialTimePointID.
- Access: controlled since 2025 (dbGaP approval, CRDC manifest, TCIA Data Retriever); manual
  download only.
- Clinical data: the NCTN Data Archive, supplied at build time; column types are inferred from
  the sheet and recorded in the output and card.
- Neither the images nor the annotations are in the IDC index (idc-index-data 25.0.5):
  modalities, patient counts and licenses are on the TCIA pages.""",
    trial_ids=("NCT00946712", "SWOG S0819"),
    homepage="https://doi.org/10.7937/DT39-JS04",
    sources=(
        SourceCollection(
            name="S0819",
            title=(
                "Carboplatin and Paclitaxel With or Without Bevacizumab and/or Cetuximab in "
                "Treating Patients With Stage IV or Recurrent Non-Small Cell Lung Cancer (S0819)"
            ),
            doi="10.7937/DT39-JS04",
            role="images",
            license=LICENSE_UNKNOWN,
            access="controlled",
            note=NOT_IN_IDC_NOTE,
        ),
        SourceCollection(
            name="S0819-Tumor-Annotations",
            title=(
                "Annotations for Carboplatin and Paclitaxel With or Without Bevacizumab and/or "
                "Cetuximab in Treating Patients With Stage IV or Recurrent Non-Small Cell Lung "
                "Cancer (S0819-Tumor-Annotations)"
            ),
            doi="10.7937/R0R8-BN93",
            role="annotations",
            license=LICENSE_UNKNOWN,
            access="controlled",
            modalities=("RTSTRUCT",),
            note=NOT_IN_IDC_NOTE,
        ),
    ),
    citation="""\
@misc{s0819_images,
  title = {Carboplatin and Paclitaxel With or Without Bevacizumab and/or Cetuximab in Treating Patients With Stage IV or Recurrent Non-Small Cell Lung Cancer (S0819)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/DT39-JS04},
  url = {https://doi.org/10.7937/DT39-JS04},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}

@misc{s0819_annotations,
  title = {Annotations for Carboplatin and Paclitaxel With or Without Bevacizumab and/or Cetuximab in Treating Patients With Stage IV or Recurrent Non-Small Cell Lung Cancer (S0819-Tumor-Annotations)},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/R0R8-BN93},
  url = {https://doi.org/10.7937/R0R8-BN93},
  note = {Controlled access. Authors, year and version: see the DOI page.},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(annotation_csv_glob="S0819-Annotations_metadata.csv"),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "Clinical data of S0819 come from the NCTN Data Archive "
            '(https://nctn-data-archive.nci.nih.gov/; request the trial NCT00946712 with "Imaging '
            'Data Requested"), not from TCIA: pass the sheet (.csv or .xlsx) and its patient-id '
            "column at build time. Column types are inferred from the sheet and recorded in the "
            "output and card."
        ),
    ),
    manual_download_instructions="""\
S0819 and S0819-Tumor-Annotations are controlled-access data (since 2025):
1. Request access through dbGaP (the collection page https://doi.org/10.7937/DT39-JS04 explains
   how).
2. Once approved, download the CRDC manifests of the images (https://doi.org/10.7937/DT39-JS04)
   and of the annotations (https://doi.org/10.7937/R0R8-BN93) with your API key using the TCIA
   Data Retriever, both into one folder, e.g. ~/TCIA/S0819.
3. If https://doi.org/10.7937/R0R8-BN93 offers an annotation metadata CSV (SeriesInstanceUID,
   ReferencedSeriesInstanceUID, Annotation Type), put it in the top folder of the download and
   name it S0819-Annotations_metadata.csv (the name this builder looks for); without it the
   links come from the references inside the DICOM objects.
4. Clinical data come from the NCTN Data Archive; pass the sheet at build time.
Then build: tcia-trials build s0819 --source ~/TCIA/S0819 --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "lung",
        "segmentation",
        "seed-points",
        "controlled-access",
    ),
)
