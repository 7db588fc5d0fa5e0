"""Any labeled download: image series with SEG / RTSTRUCT / SR labels (data only)."""

from tcia_trials.spec import (
    CORE_RELEASE_NOTES,
    DEFAULT_CONFIGS,
    AnnotationRules,
    ClinicalSpec,
    LabelSpec,
    TrialSpec,
)

# No published source: the dataset's name, its sources' licenses and the clinical sheet are given
# at build time, so this spec states none of them.
SPEC = TrialSpec(
    name="generic",
    title="Generic labeled DICOM download",
    description="""\
Builds a dataset from any labeled download that is not one of the known collections: image
series (CT, MR, PET, ...) with their labels as DICOM SEG, RTSTRUCT or TID 1500 SR, in the NBIA
Data Retriever layout (descriptive or classic folders with metadata.csv), the TCIA Data
Retriever layout, the IDC (idc-index) layout or plain folders of DICOM files.

- Labels are linked to their image series through TCIA's annotation metadata CSV when present,
  else through the references inside the objects, else through a shared frame of reference.
- Lesion names, time points and seed points follow the NCTN convention ("<time point>,
  <LOCATION> - <n>" and "... - SEED POINT") when the series descriptions use it; otherwise
  lesions are named by segment label / ROI name.
- The dataset name and an optional clinical sheet are given at build time; the sheet's column
  types are inferred and recorded in the output and card.
- State the license and citation of the data you build when you publish it.""",
    sources=(),
    citation="",
    version="1.1.0",
    release_notes=CORE_RELEASE_NOTES,
    configs=DEFAULT_CONFIGS,
    annotation_rules=AnnotationRules(),
    labels=LabelSpec(),
    clinical=ClinicalSpec(
        source="user",
        instructions=(
            "Optional: pass any per-patient sheet (.csv or .xlsx) and its patient-id column at "
            "build time. Column types are inferred from the sheet and recorded in the output and "
            "card."
        ),
    ),
    manual_download_instructions="""\
Download the collection with the NBIA Data Retriever (a .tcia manifest, keep metadata.csv), the
TCIA Data Retriever, or IDC (pip install idc-index; idc download <collection_id> --download-dir
DIR), or point at any folder of DICOM files with images and their SEG / RTSTRUCT / SR labels.
Then build with a dataset name of your choice:
  tcia-trials build generic --source DIR --out out""",
    tags=("medical-imaging", "segmentation"),
)
