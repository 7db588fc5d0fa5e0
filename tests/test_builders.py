"""Builder specs and the registry: every spec valid, data-only, cited, licensed as IDC says."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tcia_trials.spec as spec_module
from tcia_trials.cards import render_card
from tcia_trials.errors import TciaTrialsError, UnknownBuilderError
from tcia_trials.registry import builder, list_builders
from tcia_trials.spec import (
    CC_BY_3_0,
    CC_BY_4_0,
    CONFIG_NAMES,
    DEFAULT_CONFIGS,
    LICENSE_UNKNOWN,
    ClinicalSpec,
    ConfigSpec,
    LabelSpec,
    License,
    SourceCollection,
    SplitSpec,
    TrialSpec,
    WindowPreset,
    parse_bibtex,
)

BUILDERS_DIR = Path(importlib.import_module("tcia_trials.builders").__file__).parent
EXPECTED_BUILDERS = {
    "a091105",
    "acns0332",
    "acrin_6698",
    "acrin_hnscc_fdg_pet_ct",
    "acrin_nsclc_fdg_pet",
    "ahep0731",
    "ahod0831",
    "arar0331",
    "aren0532",
    "aren0533",
    "aren0534",
    "calgb50303",
    "cptac_ccrcc_tumor_annotations",
    "cptac_pda_tumor_annotations",
    "cptac_ucec_tumor_annotations",
    "eay131",
    "generic",
    "ispy1",
    "ispy2",
    "s0819",
    "synthetic_trial",
}
#: DOIs stated in issue 4 (authoritative for the DOI values): builder -> (images, annotations).
ISSUE_DOIS = {
    "acns0332": ("10.7937/TCIA.582B-XZ89", "10.7937/D8A8-6252"),
    "ahod0831": ("10.7937/CV5M-1H59", "10.7937/4QAD-4280"),
    "aren0532": ("10.7937/6PJ1-M859", "10.7937/kja4-1z76"),
    "aren0533": ("10.7937/SJEZ-CJ78", "10.7937/WFCC-DA41"),
    "aren0534": ("10.7937/TCIA.5M9S-6Y97", "10.7937/N930-BM78"),
    "calgb50303": ("10.7937/CM65-A013", "10.7937/9jer-g980"),
    "a091105": ("10.7937/0WF5-SJ50", "10.7937/T8RN-J447"),
    "arar0331": ("10.7937/WTEC-MN22", "10.25737/H65S-8F58"),
    "acrin_hnscc_fdg_pet_ct": ("10.7937/K9/TCIA.2016.JQEJZZNG", "10.7937/JVGC-AQ36"),
    "ahep0731": ("10.7937/F2DB-8826", "10.7937/BDBN-NQ81"),
    "s0819": ("10.7937/DT39-JS04", "10.7937/R0R8-BN93"),
    "eay131": (None, "10.7937/q9rn-m510"),
    "acrin_6698": ("10.7937/TCIA.KK02-6D95", None),
    "acrin_nsclc_fdg_pet": ("10.7937/tcia.2019.30ilqfcl", None),
}
DOI_RE = re.compile(r"10\.\d{4,9}/[-._;()/:A-Za-z0-9]+")

ALL = sorted(EXPECTED_BUILDERS)


# --------------------------------------------------------------------------------------------
# every builder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_spec_is_valid_and_named_after_its_module(name: str) -> None:
    spec = builder(name)
    assert isinstance(spec, TrialSpec)
    assert spec.name == name
    module = importlib.import_module(f"tcia_trials.builders.{name}")
    assert module.SPEC is spec
    # validation runs again on a copy: the stored (normalised) fields are valid input too
    assert dataclasses.replace(spec) == spec


@pytest.mark.parametrize("name", ALL)
def test_current_version_has_release_notes(name: str) -> None:
    spec = builder(name)
    assert re.fullmatch(r"\d+\.\d+\.\d+", spec.version)
    assert spec.current_release_notes.strip()
    assert spec.notes[spec.version] == spec.current_release_notes


@pytest.mark.parametrize("name", ALL)
def test_dois_are_well_formed_and_unique(name: str) -> None:
    dois = [d.lower() for d in builder(name).dois]
    assert all(DOI_RE.fullmatch(d) for d in dois), dois
    assert len(set(dois)) == len(dois)


@pytest.mark.parametrize("name", sorted(ISSUE_DOIS))
def test_dois_are_the_ones_of_the_issue(name: str) -> None:
    spec = builder(name)
    images, annotations = ISSUE_DOIS[name]
    if images:
        assert images.lower() in {s.doi.lower() for s in spec.sources_with_role("images")}
    if annotations:
        assert annotations.lower() in {s.doi.lower() for s in spec.sources_with_role("annotations")}


@pytest.mark.parametrize("name", ALL)
def test_configs_are_known(name: str) -> None:
    spec = builder(name)
    assert spec.config_names
    assert set(spec.config_names) <= set(CONFIG_NAMES)
    for config_name in spec.config_names:
        assert spec.config(config_name).name == config_name


@pytest.mark.parametrize("name", ALL)
def test_citation_is_bibtex_with_one_entry_per_doi(name: str) -> None:
    spec = builder(name)
    # an independent, deliberately naive reading: entry headers and the fields of each entry
    chunks = [c for c in re.split(r"(?m)^@", spec.citation) if c.strip()]
    assert len(chunks) == len(spec.dois)
    cited = set()
    for chunk in chunks:
        header = re.match(r"(\w+)\{([^,\s]+),", chunk)
        assert header, chunk[:80]
        title = re.search(r"(?m)^\s*title\s*=\s*\{(.+)\},?\s*$", chunk)
        doi = re.search(r"(?m)^\s*doi\s*=\s*\{([^}]+)\},?\s*$", chunk)
        assert title and title.group(1).strip(), f"{header.group(2)}: no title"
        assert doi and DOI_RE.fullmatch(doi.group(1)), f"{header.group(2)}: no doi"
        assert chunk.count("{") == chunk.count("}"), f"{header.group(2)}: unbalanced braces"
        cited.add(doi.group(1).lower())
    assert cited == {d.lower() for d in spec.dois}
    entries = parse_bibtex(spec.citation)
    assert [e["doi"].lower() for e in entries] == [d.lower() for d in spec.dois]


@pytest.mark.parametrize("name", ALL)
def test_sources_are_licensed_and_explained(name: str) -> None:
    spec = builder(name)
    for source in spec.sources:
        assert source.note.strip(), f"{source.name}: say where the facts come from"
        if source.in_idc:
            assert source.license.known and source.subjects is not None and source.modalities
        if not source.license.known:
            assert source.access == "controlled" and not source.in_idc
    summary = spec.license_summary()
    for source in spec.sources:
        assert source.license.short_name in summary


def _logic_in_builder(source: str) -> list[str]:
    """Why a builder module is not data only (empty when it holds only imports from
    tcia_trials.spec, a docstring and ``SPEC = TrialSpec(...)`` built from literals)."""
    tree = ast.parse(source)
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # module docstring
    problems: list[str] = []
    imported: set[str] = set()
    assignments = []
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.module in ("tcia_trials.spec", "__future__"):
            imported.update(alias.asname or alias.name for alias in node.names)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "SPEC"
        ):
            assignments.append(node)
        else:
            problems.append(f"line {node.lineno}: {type(node).__name__} at module level")
    if len(assignments) != 1:
        return [*problems, f"{len(assignments)} SPEC assignments, expected 1"]
    value = assignments[0].value
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)):
        return [*problems, "SPEC is not TrialSpec(...)"]
    if value.func.id != "TrialSpec":
        problems.append(f"SPEC = {value.func.id}(...), expected TrialSpec(...)")
    allowed = (ast.Call, ast.keyword, ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Name)
    allowed += (ast.Load, ast.UnaryOp, ast.USub)
    for node in ast.walk(value):
        where = f"line {getattr(node, 'lineno', '?')}"
        if not isinstance(node, allowed):
            problems.append(f"{where}: {type(node).__name__} is logic, not data")
        elif isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in imported
        ):
            problems.append(f"{where}: calls something not imported from tcia_trials.spec")
        elif isinstance(node, ast.Name) and node.id not in imported:
            problems.append(f"{where}: {node.id} is not imported from tcia_trials.spec")
    return problems


@pytest.mark.parametrize("name", ALL)
def test_builder_module_is_data_only(name: str) -> None:
    path = BUILDERS_DIR / f"{name}.py"
    assert _logic_in_builder(path.read_text(encoding="utf-8")) == [], path.name


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("import os\nSPEC = TrialSpec()", "Import at module level"),
        (
            "from tcia_trials.spec import TrialSpec\ndef f(): pass\nSPEC = TrialSpec()",
            "FunctionDef",
        ),
        ("from tcia_trials.spec import TrialSpec\nX = 1\nSPEC = TrialSpec()", "Assign at module"),
        ("from tcia_trials.spec import TrialSpec\nSPEC = TrialSpec(name=f'{1}')", "JoinedStr"),
        ("from tcia_trials.spec import TrialSpec\nSPEC = TrialSpec(t=[x for x in ()])", "ListComp"),
        ("from tcia_trials.spec import TrialSpec\nSPEC = TrialSpec(v='1' + '2')", "BinOp"),
        ("from tcia_trials.spec import TrialSpec\nSPEC = TrialSpec(v=open('x'))", "not imported"),
        ("from tcia_trials.spec import TrialSpec", "0 SPEC assignments"),
    ],
)
def test_data_only_check_rejects_logic(source: str, problem: str) -> None:
    assert any(problem in p for p in _logic_in_builder(source)), _logic_in_builder(source)


# --------------------------------------------------------------------------------------------
# facts against the IDC index (idc-index-data)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def idc() -> dict:
    """Sources, analysis results and per-source patient counts of the offline IDC index."""
    idc_index_data = pytest.importorskip(
        "idc_index_data", reason="idc-index-data is not installed (pip install idc-index-data)"
    )
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow reads the idc-index-data tables")
    folder = Path(idc_index_data.__file__).parent
    collections = pq.read_table(folder / "collections_index.parquet").to_pylist()
    results = pq.read_table(folder / "analysis_results_index.parquet").to_pylist()
    wanted = sorted(
        {
            s.idc_collection_id
            for n in list_builders()
            for s in builder(n).sources
            if s.idc_collection_id
        }
    )
    table = pq.read_table(
        folder / "idc_index.parquet",
        columns=["collection_id", "source_DOI", "PatientID"],
        filters=[("collection_id", "in", wanted)],
    )
    grouped = table.group_by(["collection_id", "source_DOI"]).aggregate(
        [("PatientID", "count_distinct")]
    )
    subjects = {
        (row["collection_id"], row["source_DOI"].lower()): row["PatientID_count_distinct"]
        for row in grouped.to_pylist()
    }
    return {
        "version": getattr(idc_index_data, "__version__", "?"),
        "sources": {
            (c["collection_id"], s["source_doi"].lower()): s
            for c in collections
            for s in c["sources"]
        },
        "dois": {s["source_doi"].lower() for c in collections for s in c["sources"]}
        | {r["source_DOI"].lower() for r in results},
        "subjects": subjects,
    }


@pytest.mark.parametrize("name", ALL)
def test_sources_match_the_idc_index(name: str, idc: dict) -> None:
    for source in builder(name).sources:
        if not source.in_idc:
            if source.doi:  # the spec says "not in IDC": check that it really is not
                assert source.doi.lower() not in idc["dois"], (
                    f"{source.name} ({source.doi}) is in IDC {idc['version']}: take its facts "
                    "from there"
                )
            continue
        key = (source.idc_collection_id, source.doi.lower())
        assert key in idc["sources"], f"{name}: {key} not among IDC's sources"
        entry = idc["sources"][key]
        license_ = entry["license"]
        assert source.license.short_name == license_["license_short_name"], source.name
        assert source.license.url == license_["license_url"], source.name
        assert source.license.long_name == license_["license_long_name"], source.name
        assert set(source.modalities) == {m.strip() for m in entry["modalities"].split(",")}
        assert source.access == entry["Access"].lower()
        if source.idc_analysis_result_id:
            assert entry["source_type"] == "analysis_result"
            assert entry["source_id"] == source.idc_analysis_result_id
        else:
            assert entry["source_type"] == "original_data"
        assert source.subjects == idc["subjects"][key], source.name


def test_licenses_of_issue_examples() -> None:
    """Issue 4: ACRIN-NSCLC-FDG-PET images CC BY 3.0, its AIMI annotations CC BY 4.0; I-SPY1 CC
    BY 3.0."""
    nsclc = builder("acrin_nsclc_fdg_pet")
    assert nsclc.license_summary() == "images CC BY 3.0, annotations CC BY 4.0"
    assert [s.license for s in nsclc.sources] == [CC_BY_3_0, CC_BY_4_0]
    assert builder("ispy1").license_summary() == "images, annotations and clinical CC BY 3.0"
    assert builder("eay131").license_summary() == "images and annotations CC BY 4.0"
    assert builder("acns0332").license_summary() == "images and annotations: see TCIA page"


def test_nctn_builders_are_controlled_with_a_user_clinical_sheet() -> None:
    for name in sorted(set(ISSUE_DOIS) - {"eay131", "acrin_6698", "acrin_nsclc_fdg_pet"}):
        spec = builder(name)
        assert spec.access == "controlled"
        assert spec.clinical.source == "user" and spec.clinical.infer_types
        assert all(
            s.license is LICENSE_UNKNOWN or s.license == LICENSE_UNKNOWN for s in spec.sources
        )
        assert "TCIA Data Retriever" in " ".join(spec.manual_download_instructions.split())
        assert spec.homepage == spec.sources_with_role("images")[0].doi_url


def test_synthetic_spec_matches_the_generator() -> None:
    from tcia_trials.synthetic import generate_collection
    from tcia_trials.synthetic.clinical import COLUMN_TYPES

    spec = builder("synthetic_trial")
    collection = inspect.signature(generate_collection).parameters["collection"].default
    assert spec.sources[0].name == collection
    assert spec.clinical.file_glob == f"clinical/{collection}_clinical.csv"
    assert spec.clinical.patient_id_column == "patient_id"
    declared = spec.clinical.column_types
    for column, kind in COLUMN_TYPES.items():
        if column == spec.clinical.patient_id_column:
            continue
        base, _, levels = kind.partition("[")
        assert declared[column] == base
        if base == "category":
            assert spec.clinical.category_levels[column] == tuple(levels.rstrip("]").split(","))
    assert set(declared) == set(COLUMN_TYPES) - {"patient_id"}


def test_synthetic_spec_globs_match_a_generated_collection(tmp_path: Path) -> None:
    from tcia_trials.synthetic import generate_collection

    generate_collection(tmp_path, patients=1, ct_shape=(8, 32, 32), with_pet=False)
    spec = builder("synthetic_trial")
    sheets = list(tmp_path.glob(spec.clinical.file_glob))
    assert [p.name for p in sheets] == ["SYNTH-TRIAL_clinical.csv"]
    header = sheets[0].read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == [spec.clinical.patient_id_column, *spec.clinical.column_types]
    csvs = list(tmp_path.glob(spec.annotation_rules.annotation_csv_glob))
    assert [p.name for p in csvs] == ["SYNTH-TRIAL-Annotations_metadata.csv"]


def test_label_selection() -> None:
    ispy1 = builder("ispy1").labels
    assert ispy1.selects("SEG", "PE Segmentation thresh=70")
    assert ispy1.selects("SEG", "VOI PE Segmentation thresh=90")
    assert not ispy1.selects("SEG", "Breast Tissue Segmentation")
    assert not ispy1.selects("SR", "Standard Breast Imaging Report")
    cptac = builder("cptac_ccrcc_tumor_annotations").labels
    assert cptac.selects("RTSTRUCT", "Pre-Dose, RIGHT KIDNEY - 1")
    assert not cptac.selects("SEG", "AIMI kidney segmentation")
    assert LabelSpec(segment_exclude_pattern=r"\blung\b").selects_segment("Tumor")
    assert not LabelSpec(segment_exclude_pattern=r"\blung\b").selects_segment("Left Lung")


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_list_builders_is_sorted_and_complete() -> None:
    names = list_builders()
    assert names == sorted(names)
    assert set(names) == EXPECTED_BUILDERS
    module_files = {p.stem for p in BUILDERS_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert set(names) == module_files


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("eay131", "eay131"),
        ("EAY131", "eay131"),
        ("acrin-6698", "acrin_6698"),
        ("ACRIN_6698", "acrin_6698"),
        (" Acrin-NSCLC-FDG-PET ", "acrin_nsclc_fdg_pet"),
        ("cptac-pda-tumor-annotations", "cptac_pda_tumor_annotations"),
        ("synthetic-trial", "synthetic_trial"),
    ],
)
def test_builder_lookup_accepts_dashes_and_case(query: str, name: str) -> None:
    assert builder(query) is builder(name)


def test_unknown_builder_lists_close_matches() -> None:
    with pytest.raises(UnknownBuilderError, match=r"unknown builder 'eay13'.*'eay131'") as info:
        builder("eay13")
    assert isinstance(info.value, KeyError) and isinstance(info.value, TciaTrialsError)
    assert "list_builders()" in str(info.value) and "tcia-trials catalog" in str(info.value)
    with pytest.raises(UnknownBuilderError, match=r"'aren0533'"):
        builder("AREN-0533")
    with pytest.raises(KeyError, match="no builder has a similar name"):
        builder("lidc-idri")


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _minimal(**changes: object) -> TrialSpec:
    fields = {
        "name": "demo_trial",
        "title": "Demo",
        "description": "A demo.",
        "sources": (
            SourceCollection(
                name="DEMO",
                title="Demo images",
                doi="10.1234/demo-1",
                role="images",
                license=CC_BY_4_0,
                modalities=("CT",),
                note="test",
            ),
        ),
        "citation": "@misc{demo, title = {Demo images}, doi = {10.1234/demo-1}}",
        "manual_download_instructions": "idc download demo --download-dir DIR",
        "release_notes": {"1.0.0": "Initial release."},
        "configs": DEFAULT_CONFIGS[:-1],
    }
    fields.update(changes)
    return TrialSpec(**fields)  # type: ignore[arg-type]


def test_minimal_spec_is_valid() -> None:
    spec = _minimal()
    assert spec.access == "public" and spec.license_summary() == "images CC BY 4.0"
    assert spec.notes == {"1.0.0": "Initial release."}


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0-rc1", "01.0.0", ""])
def test_bad_version_string(version: str) -> None:
    with pytest.raises(ValueError, match=r"TrialSpec\.version: got .* semantic version"):
        _minimal(version=version, release_notes={version: "x", "1.0.0": "y"})


def test_release_notes_need_the_current_version() -> None:
    with pytest.raises(
        ValueError, match=r"release_notes: .*entry for the current version '1\.1\.0'"
    ):
        _minimal(version="1.1.0")
    with pytest.raises(ValueError, match=r"release_notes: got '2\.0\.0', expected versions up to"):
        _minimal(release_notes={"1.0.0": "a", "2.0.0": "b"})


def test_unknown_config_name() -> None:
    with pytest.raises(ValueError, match=r"ConfigSpec\.name: got 'patches', expected one of"):
        ConfigSpec("patches", "Patches.")
    with pytest.raises(KeyError, match="has no config 'slices_3d'"):
        _minimal().config("slices_3d")


def test_config_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match=r"patch_size: got None, expected three positive"):
        ConfigSpec("lesion_patches", "Patches.")
    with pytest.raises(ValueError, match=r"patch_size: got \(32, 64, 64\), expected None"):
        ConfigSpec("volume", "Volumes.", patch_size=(32, 64, 64))
    with pytest.raises(ValueError, match=r"window_presets: got \(\), expected at least one"):
        ConfigSpec("slices_2d", "Slices.")
    with pytest.raises(ValueError, match="either center and width, or percentiles"):
        WindowPreset("odd", "CT", center=40.0, width=400.0, percentiles=(1.0, 99.0))
    with pytest.raises(ValueError, match=r"configs: got \['volume', 'volume'\]"):
        _minimal(configs=(DEFAULT_CONFIGS[0], DEFAULT_CONFIGS[0]))
    with pytest.raises(ValueError, match=r'no "clinical" config when clinical.source is "none"'):
        _minimal(configs=DEFAULT_CONFIGS)


@pytest.mark.parametrize(
    ("fractions", "total"),
    [((0.7, 0.2, 0.2), "1.1"), ((0.5, 0.2, 0.2), "0.9"), ((0.8, 0.1, 0.0), "0.9")],
)
def test_split_fractions_must_sum_to_one(fractions: tuple[float, float, float], total: str) -> None:
    with pytest.raises(ValueError, match=rf"train \+ validation \+ test: got {total}"):
        SplitSpec(*fractions)
    with pytest.raises(ValueError, match=r"SplitSpec\.test: got -0\.1, expected a fraction"):
        SplitSpec(0.9, 0.2, -0.1)


def test_sources_and_citations_are_checked() -> None:
    with pytest.raises(ValueError, match=r"SourceCollection\.doi: got 'https://doi.org/10"):
        dataclasses.replace(_minimal().sources[0], doi="https://doi.org/10.1234/x")
    with pytest.raises(ValueError, match=r"SourceCollection\.role: got 'labels'"):
        dataclasses.replace(_minimal().sources[0], role="labels")
    with pytest.raises(ValueError, match=r"SourceCollection\.license: .*IDC index gives"):
        dataclasses.replace(_minimal().sources[0], license=LICENSE_UNKNOWN, idc_collection_id="x")
    with pytest.raises(ValueError, match=r"License\.url: got None"):
        License("CC BY 4.0")
    with pytest.raises(ValueError, match=r"citation: got \[\], expected one BibTeX entry per"):
        _minimal(citation="")
    with pytest.raises(ValueError, match=r"citation: got 'demo', expected an entry with doi"):
        _minimal(citation="@misc{demo, title = {Demo images}}")
    with pytest.raises(ValueError, match=r"trial_ids: got 'NCT123', expected an NCT number"):
        _minimal(trial_ids=("NCT123",))
    with pytest.raises(ValueError, match=r"TrialSpec\.name: got 'Demo-Trial'"):
        _minimal(name="Demo-Trial")
    with pytest.raises(ValueError, match=r"modalities: got \('MR',\), expected modalities of"):
        _minimal(modalities=("MR",))


def test_clinical_spec_is_checked() -> None:
    with pytest.raises(ValueError, match=r"ClinicalSpec\.file_glob: got None, expected a glob"):
        ClinicalSpec(source="tcia")
    with pytest.raises(ValueError, match=r"columns\['age'\]: got 'integer', expected one of"):
        ClinicalSpec(source="tcia", file_glob="c.csv", columns={"age": "integer"})
    with pytest.raises(ValueError, match=r"categories: got 'age', expected a column declared"):
        ClinicalSpec(
            source="tcia", file_glob="c.csv", columns={"age": "int"}, categories={"age": ("1",)}
        )
    with pytest.raises(ValueError, match=r"instructions: got '', expected where to obtain"):
        ClinicalSpec(source="user")
    with pytest.raises(ValueError, match=r"patient_id_pattern: got '\(\.\+\)', expected a named"):
        ClinicalSpec(source="user", instructions="x", patient_id_pattern="(.+)")
    with pytest.raises(ValueError, match=r"columns: got 'age', expected a dict"):
        ClinicalSpec(source="tcia", file_glob="c.csv", columns="age")  # type: ignore[arg-type]
    spec = ClinicalSpec(source="user", instructions="From the NCTN Data Archive.")
    assert spec.infer_types and spec.column_types == {}


def test_parse_bibtex_reads_nested_braces_and_reports_errors() -> None:
    entries = parse_bibtex(
        '@misc{a, author = {{The Group}}, title = "T", doi = 10.1/x}\n@article{b,title={B {C}},}'
    )
    assert entries[0] == {
        "ENTRYTYPE": "misc",
        "ID": "a",
        "author": "{The Group}",
        "title": "T",
        "doi": "10.1/x",
    }
    assert entries[1]["title"] == "B {C}"
    with pytest.raises(ValueError, match="not closed"):
        parse_bibtex("@misc{a, title = {T}")


# --------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------


def test_split_hash_is_the_documented_one() -> None:
    split = SplitSpec()
    for pid in ("EAY131-10017", "SYNTH-0001", "ISPY1_1001", "ünïcode"):
        digest = hashlib.sha256(f"tcia-trials/{pid}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        expected = "train" if u < 0.7 else "validation" if u < 0.85 else "test"
        assert split.assign(pid) == expected
        assert split.unit(pid) == u


def test_splits_follow_the_fractions_and_the_salt() -> None:
    ids = [f"P-{i:05d}" for i in range(6000)]
    split = SplitSpec(0.6, 0.3, 0.1)
    counts = {n: 0 for n in split.names}
    for pid in ids:
        counts[split.assign(pid)] += 1
    assert abs(counts["train"] / len(ids) - 0.6) < 0.03
    assert abs(counts["validation"] / len(ids) - 0.3) < 0.03
    assert abs(counts["test"] / len(ids) - 0.1) < 0.02
    other = SplitSpec(0.6, 0.3, 0.1, salt="other")
    assert sum(split.assign(p) != other.assign(p) for p in ids) > 1000
    assert SplitSpec(1.0, 0.0, 0.0).names == ("train",)
    assert {SplitSpec(0.8, 0.2, 0.0).assign(p) for p in ids} == {"train", "validation"}


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30, unique=True))
def test_adding_patients_never_moves_existing_ones(patients: list[str]) -> None:
    split = SplitSpec()
    before = {p: split.assign(p) for p in patients}
    after = {p: split.assign(p) for p in [*patients, "NEW-1", "NEW-2"]}
    assert all(after[p] == before[p] for p in patients)


def test_spec_module_holds_no_io() -> None:
    source = Path(spec_module.__file__).read_text(encoding="utf-8")
    for forbidden in ("open(", "Path(", "import os", "pathlib", "urllib", "requests"):
        assert forbidden not in source, forbidden


@pytest.mark.parametrize("name", ["CC BY 4.0", "cc-by-4.0", "CC-BY-4.0", " cc by 4.0 "])
def test_license_named_finds_known_licenses_by_name_or_hub_id(name: str) -> None:
    assert spec_module.license_named(name) is spec_module.CC_BY_4_0


def test_license_named_takes_other_licenses_with_their_url() -> None:
    terms = spec_module.license_named("Site terms", "https://example.org/terms")
    assert (terms.short_name, terms.url) == ("Site terms", "https://example.org/terms")
    with pytest.raises(ValueError, match=r"'Site terms' is not one this version knows \(CC BY"):
        spec_module.license_named("Site terms")


def test_user_sources_of_a_builder_without_sources() -> None:
    generic = builder("generic")
    plain = spec_module.with_user_sources(generic, name="my_set", license=spec_module.CC_BY_4_0)
    assert [(s.name, s.doi) for s in plain.sources] == [("my_set", None)]
    assert plain.license_summary() == "images CC BY 4.0" and plain.citation == ""
    citation = render_card(plain).split("## Citation", 1)[1]
    assert "No citation was given at build time" in citation
    bibtex = "@misc{a, title = {A}, doi = {10.1234/a}}\n@misc{b, title = {B}, doi = {10.1234/b}}"
    cited = spec_module.with_user_sources(
        generic, name="my_set", license=spec_module.CC_BY_3_0, citation=bibtex
    )
    assert [(s.name, s.title, s.doi) for s in cited.sources] == [
        ("a", "A", "10.1234/a"),
        ("b", "B", "10.1234/b"),
    ]
    assert cited.dois == ("10.1234/a", "10.1234/b") and cited.citation == bibtex
    with pytest.raises(ValueError, match="builder 'eay131' states the license and citation"):
        spec_module.with_user_sources(builder("eay131"), name="x", license=spec_module.CC_BY_4_0)
