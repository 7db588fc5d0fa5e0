"""Dataset cards: the checked-in cards are current and parse as hub cards; a build's card carries
its statistics (checked against the built Parquet shards) and its preview."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
import yaml

from tcia_trials import cards
from tcia_trials.build import build
from tcia_trials.registry import builder, list_builders
from tcia_trials.spec import SPLIT_NAMES, parse_bibtex
from tcia_trials.synthetic import generate_collection

ROOT = Path(__file__).resolve().parents[1] / "dataset_cards"
BUILDERS = list_builders()


def _header(text: str) -> dict:
    assert text.startswith("---\n"), "a hub card starts with its YAML header"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_checked_in_cards_are_current():
    stale = cards.stale_cards(ROOT)
    assert not stale, (
        f"dataset cards are stale or missing: {', '.join(stale)}; regenerate them with "
        f"`{cards.REGENERATE}` (or `make cards`) and check them in"
    )


@pytest.mark.parametrize("name", BUILDERS)
def test_card_header_has_the_hub_keys(name):
    spec = builder(name)
    header = _header((ROOT / name / "README.md").read_text())
    assert header["pretty_name"] == spec.title
    assert header["task_categories"] == list(cards.TASK_CATEGORIES)
    assert set(spec.tags) | set(cards.BASE_TAGS) == set(header["tags"])
    licenses = header["license"] if isinstance(header["license"], list) else [header["license"]]
    if licenses == ["other"]:
        assert header["license_name"] and header["license_link"].startswith("https://")
    else:
        assert set(licenses) <= cards.HUB_LICENSE_IDS | {"unknown"}, licenses
    assert header.get("size_categories", ["n<1K"])[0] in cards.SIZE_CATEGORIES
    assert [c["config_name"] for c in header["configs"]] == sorted(spec.config_names)
    for config in header["configs"]:
        assert config["data_files"] == [
            {"split": split, "path": f"data/{config['config_name']}/{split}-*.parquet"}
            for split in spec.splits.names
        ]
    assert "dataset_info" not in header  # sizes come with a build


@pytest.mark.parametrize("name", BUILDERS)
def test_card_cites_every_doi_and_states_the_tcia_policy(name):
    spec = builder(name)
    text = (ROOT / name / "README.md").read_text()
    for doi in spec.dois:
        assert f"https://doi.org/{doi}" in text
    if not spec.dois:
        return
    assert cards.TCIA_POLICY_URL in text and "TCIA Data Usage Policy" in text
    cited = {e["doi"].lower() for e in parse_bibtex((ROOT / name / "CITATIONS.bib").read_text())}
    assert cited == {d.lower() for d in spec.dois} | {"10.1007/s10278-013-9622-7"}


def test_hub_license_per_case():
    assert cards.hub_license(builder("eay131")) == {"license": "cc-by-4.0"}
    assert cards.hub_license(builder("acrin_nsclc_fdg_pet")) == {
        "license": ["cc-by-3.0", "cc-by-4.0"]  # images and annotations differ
    }
    assert cards.hub_license(builder("acns0332")) == {
        "license": "other",
        "license_name": "see-tcia-page",
        "license_link": "https://doi.org/10.7937/TCIA.582B-XZ89",
    }
    assert cards.hub_license(builder("generic")) == {"license": "unknown"}


@pytest.mark.parametrize(
    ("count", "category"),
    [(1, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (2487, "1K<n<10K"), (10**13, "n>1T")],
)
def test_size_category(count, category):
    assert cards.size_category(count) == category


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    generate_collection(root / "source", patients=4, seed=3)
    return build("synthetic_trial", root / "source", root / "out", config=("lesions", "clinical"))


def test_built_card_has_the_build_statistics(built):
    text = (built.out / "README.md").read_text()
    header = _header(text)
    assert {info["config_name"] for info in header["dataset_info"]} == {"lesions", "clinical"}
    assert {c["config_name"] for c in header["configs"]} == {"lesions", "clinical"}
    table = pads.dataset(sorted((built.out / "data" / "lesions").glob("*.parquet"))).to_table()
    lesions = table.filter(~np.asarray(table.column("no_findings")))
    volumes = np.asarray(lesions.column("volume_ml").drop_null())
    assert lesions.num_rows > 0 and len(volumes) > 0
    assert f"- lesions: {lesions.num_rows:,} (" in text
    no_findings = table.num_rows - lesions.num_rows
    assert f'- studies annotated "no findings": {no_findings:,}' in text
    assert (
        f"min {volumes.min():.2f}, median {np.median(volumes):.2f}, max {volumes.max():.2f}" in text
    )
    splits = [s for s in SPLIT_NAMES if any(s in c for c in built.configs.values())]
    per_split = {
        split: len(set(pads.dataset(files).to_table(columns=["patient_id"])[0].to_pylist()))
        for split in splits
        if (files := sorted((built.out / "data" / "lesions").glob(f"{split}-*.parquet")))
    }
    assert f"- patients with images: {sum(per_split.values()):,} (" in text
    assert ", ".join(f"{split} {n:,}" for split, n in per_split.items()) in text
    counts = " | ".join(f"{built.configs['lesions'].get(s, 0):,}" for s in splits)
    assert f"| `lesions` | {counts} |" in text  # examples per config and split
    assert "Filled in by a build" not in text
    assert "| `age` | int | declared |" in text
    assert cards.TCIA_POLICY_URL not in text  # synthetic data are not TCIA's


def test_built_card_links_a_preview_montage(built, tmp_path):
    folder = shutil.copytree(built.out, tmp_path / "synthetic_trial")
    for patient in ("P2", "P1"):
        (folder / "previews" / patient).mkdir(parents=True)
        (folder / "previews" / patient / f"{patient}_montage.png").write_bytes(b"png")
    (folder / "previews" / "P1" / "P1_s1_L1.png").write_bytes(b"png")  # one lesion's figure
    cards.write_card(folder, builder("synthetic_trial"))
    assert "](previews/P1/P1_montage.png)" in (folder / "README.md").read_text()


def test_card_of_a_named_build_uses_its_name():
    spec = builder("generic")
    text = cards.render_card(spec, dataset_name="my_trial")
    assert _header(text)["pretty_name"] == "my_trial (Generic labeled DICOM download)"
    assert 'datasets.load_dataset("out/my_trial", "volume"' in text
    assert "--name-as my_trial" in text


def test_write_and_check_commands(tmp_path, capsys):
    assert cards.main(["--write", str(tmp_path)]) == 0
    assert cards.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "eay131" / "README.md").write_text("edited\n")
    (tmp_path / "removed_builder").mkdir()
    (tmp_path / "removed_builder" / "README.md").write_text("old\n")
    assert cards.main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "eay131/README.md" in err and "removed_builder/README.md" in err
    assert cards.REGENERATE in err
    cards.main(["--write", str(tmp_path)])
    assert cards.stale_cards(tmp_path) == []
    assert not (tmp_path / "removed_builder" / "README.md").exists()
