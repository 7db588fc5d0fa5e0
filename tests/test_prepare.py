"""A download must hold the builder's collection: the names it carries against the spec's."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tcia_trials.errors import CollectionMismatchError
from tcia_trials.prepare import expected_names, require_collection
from tcia_trials.registry import builder
from tcia_trials.source.index import Index, Instance, Series, scan
from tcia_trials.synthetic import generate_collection


def _index(*series: tuple[str | None, str | None, str]) -> Index:
    """An index of series given as (collection, ClinicalTrialProtocolID, PatientID)."""
    made = {
        f"1.2.3.{n}": Series(
            series_uid=f"1.2.3.{n}",
            study_uid="1.2.3",
            patient_id=patient,
            modality="CT",
            description="",
            series_number=n,
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            frame_of_reference_uid=None,
            time_point=None,
            collection=collection,
            instances=[Instance(Path(f"/dl/{n}/1.dcm"), f"1.2.3.{n}.1", "", 1, 1, None)],
            expected_instances=None,
            trial_protocol_id=protocol,
        )
        for n, (collection, protocol, patient) in enumerate(series, start=1)
    }
    return Index(Path("/dl"), "folder", made, {}, [], [])


def test_expected_names_are_sources_idc_ids_and_trial_ids_once_each():
    assert expected_names(builder("eay131")) == (
        "EAY131",
        "EAY131-Tumor-Annotations",
        "NCT02465060",
        "NCI-MATCH",
    )
    assert expected_names(builder("generic")) == ()  # accepts any download


@pytest.mark.parametrize(
    ("collection", "protocol"),
    [
        ("EAY131", None),  # metadata.csv Collection, NBIA collection folder
        ("eay131", None),  # IDC collection_id folder
        ("EAY131-Tumor-Annotations", None),
        (None, "ECOG-ACRIN EAY131"),  # the protocol id holds the trial's id as words
        ("my_local_copy", "NCI-MATCH"),
        (None, None),  # nothing to judge by
    ],
)
def test_a_series_naming_the_collection_is_accepted(collection, protocol):
    require_collection(builder("eay131"), _index((collection, protocol, "P1")))


@pytest.mark.parametrize(
    ("spec", "collection"),
    [
        ("acrin_6698", "ISPY2"),  # trial id "I-SPY2" up to punctuation
        ("acrin_6698", "acrin_6698"),
        ("cptac_ccrcc_tumor_annotations", "CPTAC-CCRCC"),
    ],
)
def test_names_agree_up_to_case_and_punctuation(spec, collection):
    require_collection(builder(spec), _index((collection, None, "P1")))


def test_another_collection_is_refused_naming_what_was_expected_and_found():
    index = _index(
        ("ACRIN-NSCLC-FDG-PET", "ACRIN 6668", "P1"),
        ("ACRIN-NSCLC-FDG-PET", "ACRIN 6668", "P2"),
        ("EAY131", None, "P3"),
    )
    with pytest.raises(CollectionMismatchError) as raised:
        require_collection(builder("eay131"), index)
    message = str(raised.value)
    assert (
        "builder 'eay131' expects the collection or trial EAY131 / EAY131-Tumor-Annotations"
        in message
    )
    assert "found ACRIN-NSCLC-FDG-PET / ACRIN 6668 in 2 of 3 series (e.g. patient P1" in message
    assert "a download for builder acrin_nsclc_fdg_pet" in message
    assert "--allow-collection-mismatch" in message and "nothing was written" in message


def test_a_longer_name_is_another_collection():
    with pytest.raises(CollectionMismatchError, match="found EAY1310 in 1 of 1 series"):
        require_collection(builder("eay131"), _index(("EAY1310", None, "P1")))


def test_patient_ids_outside_the_spec_pattern_are_refused():
    spec = builder("eay131")
    clinical = dataclasses.replace(spec.clinical, patient_id_pattern=r"EAY131-(?P<id>\d+)")
    strict = dataclasses.replace(spec, clinical=clinical)
    require_collection(strict, _index(("EAY131", None, "EAY131-0042")))
    with pytest.raises(CollectionMismatchError, match=r"found PatientID 'LUNG-7' \(not of the"):
        require_collection(strict, _index(("EAY131", None, "LUNG-7")))


@pytest.mark.parametrize("layout", ["nbia", "nbia-classic", "retriever", "idc"])
def test_synthetic_downloads_carry_their_collection_in_every_layout(tmp_path, layout):
    generate_collection(tmp_path, patients=1, seed=5, layout=layout, with_pet=False)
    index = scan(tmp_path)
    require_collection(builder("synthetic_trial"), index)
    with pytest.raises(CollectionMismatchError, match="found SYNTH-TRIAL in"):
        require_collection(builder("ispy2"), index)


def test_generic_license_and_citation_reach_the_tfds_metadata(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from tcia_trials.build import build, built_spec

    generate_collection(tmp_path / "source", patients=1, seed=5, with_pet=False)
    bibtex = "@misc{doe2024, title = {Liver CT labels}, doi = {10.1234/liver.42}}"
    result = build(
        "generic",
        tmp_path / "source",
        tmp_path / "out",
        formats=("hf", "tfds"),
        config="lesions",
        tfds_file_format="array_record",
        dataset_name="liver_set",
        license="CC BY 4.0",
        citation=bibtex,
    )
    info = json.loads(next((tmp_path / "out" / "generic").rglob("dataset_info.json")).read_text())
    assert (
        info["citation"] == bibtex and info["redistributionInfo"]["license"] == "images CC BY 4.0"
    )
    again = built_spec(result.out)  # what a later card refresh (previews) renders
    assert again.citation == bibtex and again.sources[0].license.short_name == "CC BY 4.0"


def test_realdata_tcia_project_tag_names_the_collection(realdata):
    """Real TCIA files of QIN-HEADNECK carry the collection in TCIA's CTP project tag (0013,1010)
    only: they are not EAY131, and no builder reads them."""
    index = scan(realdata / "04_sr_tid1500_dcmqi")
    with pytest.raises(CollectionMismatchError, match="found QIN-HEADNECK in 3 of 3 series") as e:
        require_collection(builder("eay131"), index)
    assert "looks like a download for builder" not in str(e.value)
    require_collection(builder("generic"), index)


def test_realdata_without_collection_names_is_not_judged(realdata):
    require_collection(builder("eay131"), scan(realdata / "13_pydicom_dicomdir_series"))
