"""ACRIN-NSCLC-FDG-PET (ACRIN 6668): CT and FDG PET with the AIMI tumor SEGs (data only)."""

from tcia_trials.spec import (
    CC_BY_3_0,
    CC_BY_4_0,
    CORE_RELEASE_NOTES,
    DEFAULT_CONFIGS,
    AnnotationRules,
    ClinicalSpec,
    LabelSpec,
    SourceCollection,
    TrialSpec,
)

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of
# "acrin_nsclc_fdg_pet" (titles, DOIs, modalities, licenses: images CC BY 3.0, AIMI annotations
# CC BY 4.0; access "Public"; citations) and idc_index (242 patients with images: 2,259 CT and 997
# PT series; 385 SEG series of bamf_aimi_annotations for 197 of them, described "AIMI lung and FDG
# tumor AI segmentation" (367), "... non-expert 1 corrected segmentation" (11) and "...
# radiologist 1 corrected segmentation" (7)). The image DOI is the one in issue 4.
SPEC = TrialSpec(
    name="acrin_nsclc_fdg_pet",
    title="ACRIN 6668 NSCLC FDG PET/CT with AIMI tumor segmentations",
    description="""\
CT and FDG PET of the **ACRIN 6668** trial (non-small cell lung cancer;
[collection](https://doi.org/10.7937/tcia.2019.30ilqfcl)) with the segmentations made under the
AIMI annotations initiative ([AIMI](https://doi.org/10.5281/zenodo.8345959)): AI segmentations
of the lungs and FDG-avid tumor; per IDC, roughly 10% of the predictions were reviewed and
corrected by a board-certified radiologist and by a non-expert (the series description says
which version a SEG holds).

- Licenses differ: images CC BY 3.0, AIMI segmentations CC BY 4.0.
- The AIMI SEGs hold organ (lung) segments beside the tumor; every segment is kept as a labelled
  region, named by its segment label.
- IDC index (idc-index-data 25.0.5): 242 patients, 2,259 CT and 997 PT series; 385 AIMI SEG
  series for 197 patients.
- Clinical data: IDC lists clinical supporting data for this collection (TCIA collection page);
  this builder takes the sheet at build time and infers its column types.""",
    trial_ids=("ACRIN 6668",),
    homepage="https://doi.org/10.7937/tcia.2019.30ilqfcl",
    sources=(
        SourceCollection(
            name="ACRIN-NSCLC-FDG-PET",
            title="Data from the ACRIN 6668 Trial NSCLC-FDG-PET",
            doi="10.7937/tcia.2019.30ilqfcl",
            role="images",
            license=CC_BY_3_0,
            access="public",
            modalities=("CR", "CT", "DX", "MR", "NM", "OT", "PT"),
            idc_collection_id="acrin_nsclc_fdg_pet",
            subjects=242,
            note="IDC index (idc-index-data 25.0.5).",
        ),
        SourceCollection(
            name="BAMF-AIMI-Annotations",
            title="Image segmentations produced by BAMF under the AIMI Annotations initiative",
            doi="10.5281/zenodo.8345959",
            role="annotations",
            license=CC_BY_4_0,
            access="public",
            modalities=("SEG",),
            idc_collection_id="acrin_nsclc_fdg_pet",
            idc_analysis_result_id="bamf_aimi_annotations",
            subjects=197,
            note=(
                "IDC index (idc-index-data 25.0.5); subjects counts this collection only (the "
                "analysis result spans 22 collections)."
            ),
        ),
    ),
    citation="""\
@misc{acrin_nsclc_fdg_pet,
  author = {Kinahan, P. and Muzi, M. and Bialecki, B. and Herman, B. and Coombs, L.},
  title = {Data from the ACRIN 6668 Trial NSCLC-FDG-PET},
  year = {2019},
  version = {2},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/TCIA.2019.30ILQFCL},
  url = {https://doi.org/10.7937/TCIA.2019.30ILQFCL},
}

@misc{bamf_aimi_annotations,
  author = {Van Oss, J. and Murugesan, G. K. and McCrumb, D. and Soni, R.},
  title = {Image segmentations produced by BAMF under the AIMI Annotations initiative},
  year = {2024},
  version = {v2.0.2},
  publisher = {Zenodo},
  doi = {10.5281/ZENODO.8345959},
  url = {https://doi.org/10.5281/ZENODO.8345959},
}""",
    modalities=("CT", "PT"),
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("SEG",)),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The ACRIN-NSCLC-FDG-PET collection page (https://doi.org/10.7937/tcia.2019.30ilqfcl) "
            "offers the clinical data: download the sheet and pass it (.csv or .xlsx) with its "
            "patient-id column at build time. Column types are inferred from the sheet and "
            "recorded in the output and card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id acrin_nsclc_fdg_pet holds the images and the AIMI SEGs):
  pip install idc-index
  idc download acrin_nsclc_fdg_pet --download-dir ~/TCIA/ACRIN-NSCLC-FDG-PET
Alternatively, open the .tcia manifest of https://doi.org/10.7937/tcia.2019.30ilqfcl with the
NBIA Data Retriever into ~/TCIA/ACRIN-NSCLC-FDG-PET (keep its metadata.csv) and add the AIMI SEGs
of this collection (IDC, or https://doi.org/10.5281/zenodo.8345959) to the same folder.
Then build: tcia-trials build acrin_nsclc_fdg_pet --source ~/TCIA/ACRIN-NSCLC-FDG-PET --out out""",
    tags=("oncology", "clinical-trial", "lung", "ct", "pet", "segmentation", "seg", "ai-generated"),
)
