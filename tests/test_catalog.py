"""The catalog and builder descriptions: figures checked against the IDC index itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tcia_trials as tt
from tcia_trials.catalog import builder_info, catalog, format_catalog
from tcia_trials.cli import main
from tcia_trials.errors import TciaTrialsError, UnknownBuilderError

idc_index_data = pytest.importorskip("idc_index_data")
pd = pytest.importorskip("pandas")

#: The controlled-access NCTN annotation sets (DESIGN.md), absent from the IDC index.
NCTN = (
    "a091105",
    "acns0332",
    "acrin_hnscc_fdg_pet_ct",
    "ahep0731",
    "ahod0831",
    "arar0331",
    "aren0532",
    "aren0533",
    "aren0534",
    "calgb50303",
    "s0819",
)
LABELS = {"SEG", "RTSTRUCT", "SR"}


@pytest.fixture(scope="module")
def idc() -> pd.DataFrame:
    """The IDC index as pandas reads it (no pyarrow compute, no grouping by the code under test)."""
    columns = [
        "collection_id",
        "analysis_result_id",
        "source_DOI",
        "PatientID",
        "Modality",
        "series_size_MB",
    ]
    return pd.read_parquet(idc_index_data.IDC_INDEX_PARQUET_FILEPATH, columns=columns)


def _rows(idc: pd.DataFrame, source) -> pd.DataFrame:
    """The series of one source: its collection, its DOI, its analysis result (or none)."""
    rows = idc[idc["collection_id"] == source.idc_collection_id]
    rows = rows[rows["source_DOI"].str.lower() == source.doi.lower()]
    if source.idc_analysis_result_id is None:
        return rows[rows["analysis_result_id"].isna()]
    return rows[rows["analysis_result_id"] == source.idc_analysis_result_id]


@pytest.mark.parametrize("name", ["acrin_nsclc_fdg_pet", "ispy1", "eay131"])
def test_figures_equal_an_independent_query(idc, name):
    spec = tt.builder(name)
    (entry,) = catalog([name])
    per_source = {s.name: _rows(idc, s) for s in spec.sources}
    everything = pd.concat(per_source.values())
    countable = pd.concat(per_source[s.name] for s in spec.sources if s.role != "clinical")
    images = countable[~countable["Modality"].isin(LABELS | {"KO", "PR", "RTPLAN", "RTDOSE"})]
    labels = countable[countable["Modality"].isin(LABELS)]

    assert entry.in_idc and entry.idc_index_version == idc_index_data.__version__
    assert entry.patients == everything["PatientID"].nunique() > 0
    assert entry.image_series == len(images) > 0
    assert entry.image_size_mb == pytest.approx(images["series_size_MB"].sum(), abs=0.01)
    assert entry.annotation_series == len(labels) > 0
    assert entry.annotation_size_mb == pytest.approx(labels["series_size_MB"].sum(), abs=0.01)
    assert dict(entry.series_by_modality) == everything["Modality"].value_counts().to_dict()
    for source in entry.sources:
        rows = per_source[source.name]
        assert source.patients == rows["PatientID"].nunique()
        assert source.series == len(rows)
        assert source.size_mb == pytest.approx(rows["series_size_MB"].sum(), abs=0.01)


def test_figures_agree_with_the_design_facts():
    if idc_index_data.__version__ != "25.0.5":
        pytest.skip(
            f"DESIGN.md states idc-index-data 25.0.5, installed {idc_index_data.__version__}"
        )
    entries = {e.name: e for e in catalog(["eay131", "ispy1", "acrin_nsclc_fdg_pet"])}
    eay131 = entries["eay131"]
    assert eay131.patients == 2813
    assert dict(eay131.series_by_modality)["CT"] == 13166
    assert eay131.annotation_series == 14395 + 1404  # RTSTRUCT + SEG
    assert [s.patients for s in eay131.sources] == [2813, 2487]
    assert entries["ispy1"].patients == 222
    assert entries["ispy1"].annotation_series == 2568  # the 845 clinical SR are not labels
    assert entries["acrin_nsclc_fdg_pet"].patients == 242
    assert entries["acrin_nsclc_fdg_pet"].annotation_series == 385


@pytest.mark.parametrize("name", [*NCTN, "synthetic_trial", "generic"])
def test_builders_absent_from_the_index_report_none(name):
    (entry,) = catalog([name])
    assert not entry.in_idc and entry.idc_index_version is None
    figures = (entry.patients, entry.image_series, entry.image_size_mb)
    figures += (entry.annotation_series, entry.annotation_size_mb, entry.series_by_modality)
    assert figures == (None,) * 6
    assert all(s.patients is None and s.series is None for s in entry.sources)
    if name in NCTN:
        assert entry.access == "controlled" and len(entry.dois) == 2


def test_catalog_lists_every_builder_with_its_spec_facts():
    entries = catalog()
    assert [e.name for e in entries] == tt.list_builders()
    assert tt.catalog is catalog and "catalog" in tt.__all__ and "builder_info" in tt.__all__
    by_name = {e.name: e for e in entries}
    nsclc = by_name["acrin_nsclc_fdg_pet"]
    assert nsclc.dois == ("10.7937/tcia.2019.30ilqfcl", "10.5281/zenodo.8345959")
    assert [s.license for s in nsclc.sources] == ["CC BY 3.0", "CC BY 4.0"]
    assert nsclc.idc_collection_ids == ("acrin_nsclc_fdg_pet",)
    assert nsclc.collections == ("ACRIN-NSCLC-FDG-PET", "BAMF-AIMI-Annotations")
    assert {"CT", "PT", "SEG"} <= set(nsclc.modalities)


def test_catalog_without_the_index_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "idc_index_data", None)  # import now raises ImportError
    with pytest.raises(TciaTrialsError, match="pip install idc-index-data"):
        catalog(["eay131"])
    assert catalog(["acns0332"])[0].patients is None  # builders outside IDC need no index


def test_table_marks_absent_builders_and_names_the_index_version():
    text = format_catalog(catalog(["acns0332", "eay131"]))
    header, acns0332, eay131 = text.splitlines()[:3]
    assert header.split()[:3] == ["NAME", "ACCESS", "PATIENTS"]
    assert acns0332.startswith("acns0332") and "not in IDC index" in acns0332
    assert "2,813" in eay131 and "10.7937/q9rn-m510" in eay131
    assert eay131.index("CC BY 4.0") == acns0332.index("see TCIA page")  # aligned columns
    assert f"idc-index-data {idc_index_data.__version__}" in text


def test_builder_info_describes_spec_configs_splits_and_download():
    info = builder_info("ISPY1")
    spec = tt.builder("ispy1")
    json.dumps(info)  # JSON-ready
    assert info["name"] == "ispy1" and info["version"] == spec.version
    assert info["release_notes"] == spec.notes
    assert info["dois"] == list(spec.dois) and info["citation"] == spec.citation
    assert [c["name"] for c in info["configs"]] == list(spec.config_names)
    volume = {f["name"]: f for f in info["configs"][0]["features"]}
    assert volume["image"]["shape"] == [None, None, None]
    assert volume["spacing"] == {
        "name": "spacing",
        "dtype": "float64",
        "shape": [3],
        "unit": "mm",
        "doc": volume["spacing"]["doc"],
    }
    assert [f["name"] for f in volume["lesions"]["fields"]][:2] == ["lesion_id", "label"]
    patches = {f["name"]: f for f in info["configs"][2]["features"]}
    assert patches["patch"]["shape"] == list(spec.config("lesion_patches").patch_size)
    assert info["splits"] == {"train": 0.7, "validation": 0.15, "test": 0.15, "salt": "tcia-trials"}
    assert "idc download ispy1" in info["download"]
    assert info["catalog"]["patients"] == catalog(["ispy1"])[0].patients


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownBuilderError, match="did you mean 'eay131'"):
        builder_info("eay13")
    with pytest.raises(UnknownBuilderError, match="did you mean 'ispy2', 'ispy1'"):
        catalog(["ispy"])


def test_cli_catalog_json_and_table():
    runner = CliRunner()
    result = runner.invoke(main, ["catalog", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["name"] for e in entries] == tt.list_builders()
    eay131 = next(e for e in entries if e["name"] == "eay131")
    assert eay131["series_by_modality"]["RTSTRUCT"] > 0
    assert next(e for e in entries if e["name"] == "s0819")["patients"] is None

    table = runner.invoke(main, ["catalog", "ispy1", "s0819"])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[1].startswith("ispy1")
    assert "not in IDC index" in table.output.splitlines()[2]


def test_cli_info_text_and_json():
    runner = CliRunner()
    text = runner.invoke(main, ["info", "acrin-nsclc-fdg-pet"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("acrin_nsclc_fdg_pet 1.1.0: ")
    for part in ("10.5281/zenodo.8345959", "lesion_patches", "train 0.70", "Download:", "@misc{"):
        assert part in text.output
    as_json = runner.invoke(main, ["info", "acns0332", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["catalog"]["patients"] is None


@pytest.mark.parametrize(
    "args", [["info", "eay13"], ["catalog", "eay13"], ["info", "eay13", "--json"]]
)
def test_cli_unknown_name_exits_1_with_close_matches(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "unknown builder 'eay13': did you mean 'eay131'?" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["catalog", "info"])
def test_cli_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--json" in result.output


def test_console_script_catalog_json():
    script = Path(sys.executable).with_name("tcia-trials")
    result = subprocess.run(
        [str(script), "catalog", "--json"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == len(tt.list_builders())
    failed = subprocess.run(
        [str(script), "info", "no-such-trial"], capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert "unknown builder 'no-such-trial'" in failed.stderr and "Traceback" not in failed.stderr
