"""The ``tcia-trials`` command line."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Labeled TCIA clinical-trial collections as ML-ready datasets."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--patients",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Patients with images (the clinical sheet lists one more, without images).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same arguments give byte-identical files.",
)
@click.option(
    "--layout",
    type=click.Choice(["nbia", "nbia-classic", "retriever", "idc"]),
    default="nbia",
    show_default=True,
    help="Download layout to imitate: NBIA Data Retriever descriptive folders or "
    "classic UID folders (with metadata.csv), TCIA Data Retriever, or IDC.",
)
@click.option("--no-pet", is_flag=True, help="CT only, no FDG PET series.")
@click.option("--tilted-ct", is_flag=True, help="Add a gantry-tilted CT series to one study.")
@click.option("--force", is_flag=True, help="Write into OUT even if it is not empty.")
def synth(
    out: Path, patients: int, seed: int, layout: str, no_pet: bool, tilted_ct: bool, force: bool
) -> None:
    """Write a synthetic TCIA-like trial collection with exact ground truth into OUT.

    CT (and FDG PET) studies at the time points "Pre-dose" and "Follow-up consultation", one
    annotation series per lesion (RTSTRUCT contours and seed points, DICOM SEG, TID 1500 SR),
    "No findings" RTSTRUCTs, the annotation metadata CSV, a clinical sheet, and
    OUT/ground_truth.json describing every voxel.
    """
    from .synthetic import generate_collection, summary

    if out.exists() and not out.is_dir():
        raise click.ClickException(f"OUT {out} exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise click.ClickException(
            f"OUT {out} is not empty; choose an empty or new folder, or pass --force to "
            "write into it anyway (files with the same names are overwritten)."
        )
    truth = generate_collection(
        out,
        patients=patients,
        seed=seed,
        layout=layout,
        with_pet=not no_pet,
        with_tilted_ct=tilted_ct,
    )
    click.echo(summary(truth))


@main.command("build")
@click.argument("name")
@click.option(
    "--source", required=True, type=click.Path(path_type=Path), help="The download folder."
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--format",
    "formats",
    default="hf",
    show_default=True,
    help="Comma-separated output formats: hf (Parquet + hub card), arrow (also save_to_disk).",
)
@click.option("--config", "configs", multiple=True, help="Config(s) to build (default: all).")
@click.option("--num-proc", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--clinical", type=click.Path(dir_okay=False, path_type=Path), help="Clinical sheet (csv/xlsx)."
)
@click.option("--patient-column", help="Patient-id column of --clinical.")
@click.option(
    "--name-as", "dataset_name", help="The dataset's own name (e.g. for the generic builder)."
)
def build_command(
    name: str,
    source: Path,
    out: Path,
    formats: str,
    configs: tuple[str, ...],
    num_proc: int,
    clinical: Path | None,
    patient_column: str | None,
    dataset_name: str | None,
) -> None:
    """Build the dataset NAME from a download into OUT/NAME."""
    from .build import build
    from .errors import TciaTrialsError

    try:
        result = build(
            name,
            source,
            out,
            formats=[f.strip() for f in formats.split(",") if f.strip()],
            config=configs or None,
            num_proc=num_proc,
            clinical=clinical,
            patient_column=patient_column,
            dataset_name=dataset_name,
        )
    except (TciaTrialsError, ValueError, KeyError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    click.echo(f"{result.name} {result.version} -> {result.out} ({result.seconds:.1f} s)")
    for config, splits in result.configs.items():
        counts = ", ".join(f"{split} {count}" for split, count in splits.items())
        click.echo(f"  {config:15s} {counts}")
    if result.skipped:
        click.echo(
            f"  skipped {len(result.skipped)}: "
            + "; ".join(f"{w} ({why})" for _, w, why in result.skipped[:5])
        )
    if result.orphans:
        click.echo(
            f"  {len(result.orphans)} annotation series without their images (see .tcia_trials/configs/*.json)"
        )
    if result.images_without_clinical or result.clinical_without_images:
        click.echo(
            f"  clinical: {len(result.images_without_clinical)} imaged patient(s) without a row, "
            f"{len(result.clinical_without_images)} row(s) without images"
        )


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Folder for the demo's outputs (its source/ sub-folder is regenerated on every run).",
)
@click.option("--patients", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, patients: int, seed: int) -> None:
    """Generate the synthetic trial collection, index it and read every volume back."""
    from .demo import run_demo
    from .errors import TciaTrialsError

    try:
        run_demo(out, patients=patients, seed=seed, echo=click.echo)
    except (FileExistsError, TciaTrialsError) as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
