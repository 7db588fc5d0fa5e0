"""EAY131 (NCI-MATCH): CT/MR/PET images with RTSTRUCT and SEG tumor annotations (data only)."""

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

# Facts from the IDC index (idc-index-data 25.0.5): collections_index.sources of "eay131" (titles,
# DOIs, modalities, licenses, access "Public", citations) and idc_index (patient counts). The
# annotation DOI is the one in issue 4; the image DOI is IDC's. DESIGN.md: 13,166 CT series
# (~780 GB); annotation descriptions "Pre-dose, LIVER - 1" / "... - SEED POINT".
SPEC = TrialSpec(
    name="eay131",
    title="NCI-MATCH (EAY131) tumor annotations",
    description="""\
Images of "unmatched" patients of the ECOG-ACRIN **EAY131** trial (NCI-MATCH, NCT02465060) with
the NCI-funded tumor annotations ([images](https://doi.org/10.7937/c5ke-yx42),
[annotations](https://doi.org/10.7937/q9rn-m510)): one annotation series per lesion, a 3D contour
(RTSTRUCT) or mask (SEG) described "Pre-dose, LIVER - 1", and its seed point (RTSTRUCT)
described "Pre-dose, LIVER - 1 - SEED POINT"; "LESION SEED POINT - NO FINDINGS" marks an
explicit negative. Time points: "Pre-dose" and "Follow-up consultation".

- IDC index (idc-index-data 25.0.5): 2,813 patients with images (CT, MR, NM, PT, XA; 13,166 CT
  series); 2,487 patients with annotations (14,395 RTSTRUCT and 1,404 SEG series).
- Images and annotations are public in IDC under CC BY 4.0.
- Clinical data are offered on the TCIA collection page; this builder takes the sheet at build
  time and infers its column types (recorded in the output and card).""",
    trial_ids=("NCT02465060", "EAY131", "NCI-MATCH"),
    homepage="https://doi.org/10.7937/c5ke-yx42",
    sources=(
        SourceCollection(
            name="EAY131",
            title=(
                "The MATCH Screening Trial: Targeted Therapy Directed by Genetic Testing in "
                "Treating Patients With Advanced Refractory Solid Tumors, Lymphomas, or Multiple "
                "Myeloma (EAY131)"
            ),
            doi="10.7937/c5ke-yx42",
            role="images",
            license=CC_BY_4_0,
            access="public",
            modalities=("CT", "MR", "NM", "PT", "XA"),
            idc_collection_id="eay131",
            subjects=2813,
            note="IDC index (idc-index-data 25.0.5).",
        ),
        SourceCollection(
            name="EAY131-Tumor-Annotations",
            title=(
                "Annotations for The MATCH Screening Trial: Targeted Therapy Directed by Genetic "
                "Testing in Treating Patients With Advanced Refractory Solid Tumors, Lymphomas, "
                "or Multiple Myeloma (EAY131-Tumor-Annotations)"
            ),
            doi="10.7937/q9rn-m510",
            role="annotations",
            license=CC_BY_4_0,
            access="public",
            modalities=("RTSTRUCT", "SEG"),
            idc_collection_id="eay131",
            idc_analysis_result_id="eay131_tumor_annotations",
            subjects=2487,
            note="IDC index (idc-index-data 25.0.5).",
        ),
    ),
    citation="""\
@misc{eay131_images,
  author = {{The ECOG-ACRIN Cancer Research Group}},
  title = {The MATCH Screening Trial: Targeted Therapy Directed by Genetic Testing in Treating Patients With Advanced Refractory Solid Tumors, Lymphomas, or Multiple Myeloma (EAY131)},
  year = {2026},
  version = {1},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/C5KE-YX42},
  url = {https://doi.org/10.7937/C5KE-YX42},
}

@misc{eay131_annotations,
  author = {Jordan, P. and Rozenfeld, M.},
  title = {Annotations for The MATCH Screening Trial: Targeted Therapy Directed by Genetic Testing in Treating Patients With Advanced Refractory Solid Tumors, Lymphomas, or Multiple Myeloma (EAY131-Tumor-Annotations)},
  year = {2026},
  version = {2},
  publisher = {The Cancer Imaging Archive},
  doi = {10.7937/Q9RN-M510},
  url = {https://doi.org/10.7937/Q9RN-M510},
}""",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    # The file name of TCIA's EAY131 annotation metadata CSV is not known here: the default glob
    # is kept, and without a match the links come from the references inside the objects.
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(modalities=("RTSTRUCT", "SEG")),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "The EAY131 collection page (https://doi.org/10.7937/c5ke-yx42) offers the clinical "
            "data: download the sheet and pass it (.csv or .xlsx) with its patient-id column at "
            "build time. Column types are inferred from the sheet and recorded in the output and "
            "card."
        ),
    ),
    manual_download_instructions="""\
Public data in IDC (collection_id eay131; images and annotations together, CT alone ~780 GB):
  pip install idc-index
  idc download eay131 --download-dir ~/TCIA/EAY131
To fetch only the annotated series, download the annotation metadata CSV from
https://doi.org/10.7937/q9rn-m510 and pass its SeriesInstanceUID and ReferencedSeriesInstanceUID
values to idc_index.index.IDCClient().download_from_selection(seriesInstanceUID=[...],
downloadDir=...). Alternatively, open the .tcia manifests of https://doi.org/10.7937/c5ke-yx42
and https://doi.org/10.7937/q9rn-m510 with the NBIA Data Retriever into ~/TCIA/EAY131 (keep its
metadata.csv).
Then build: tcia-trials build eay131 --source ~/TCIA/EAY131 --out out""",
    tags=(
        "oncology",
        "clinical-trial",
        "nctn",
        "ct",
        "mr",
        "pet",
        "segmentation",
        "seed-points",
        "rtstruct",
        "seg",
    ),
)
