"""The ``tcia-trials`` command line."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import sys
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
    help="Comma-separated output formats: hf (Parquet + hub card), arrow (also save_to_disk), "
    "tfds (TFDS datasets OUT/NAME/<config>/<version> for tfds.load(..., data_dir=OUT)).",
)
@click.option(
    "--tfds-file-format",
    type=click.Choice(["tfrecord", "array_record"]),
    default="tfrecord",
    show_default=True,
    help="Shards of the tfds format: tfrecord (needs TensorFlow) or array_record (random access, "
    "no TensorFlow).",
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
@click.option(
    "--allow-collection-mismatch",
    is_flag=True,
    help="Build even when the download's collection names (metadata.csv Collection, IDC "
    "collection_id folder, ClinicalTrialProtocolID) are not the builder's, e.g. a renamed copy.",
)
@click.option(
    "--license",
    "license_name",
    help='License of the data, for builders without sources (generic): "CC BY 4.0", cc-by-4.0, '
    "... or any name with --license-url.",
)
@click.option("--license-url", help="URL of a --license this version does not know.")
@click.option(
    "--citation",
    help="Citation of the data, for builders without sources (generic): BibTeX text or a .bib "
    "file, one entry with title and doi per dataset.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Fail, writing nothing, when the conversion report has any warning or skip.",
)
@click.option(
    "--stacks",
    help="How series holding several stacks (multi-b-value DWI, DCE phases, echoes) become "
    "examples: single (skip them), each (one example per stack), index:N, or a stack by its "
    "feature, e.g. b_value=800.  Default: the builder's own (generic: single).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def build_command(
    name: str,
    source: Path,
    out: Path,
    formats: str,
    tfds_file_format: str,
    configs: tuple[str, ...],
    num_proc: int,
    clinical: Path | None,
    patient_column: str | None,
    dataset_name: str | None,
    allow_collection_mismatch: bool,
    license_name: str | None,
    license_url: str | None,
    citation: str | None,
    strict: bool,
    stacks: str | None,
    quiet: bool,
) -> None:
    """Build the dataset NAME from a download into OUT/NAME.

    Shows progress bars on stderr (on a terminal, unless --quiet), then a summary; the full
    conversion report is written to OUT/NAME/report.json and report.md.  Ctrl-C stops the
    build (exit code 130) without leaving a dataset that looks complete.
    """
    from .errors import TciaTrialsError

    bars = _ProgressBars(enabled=not quiet)
    try:
        import datasets

        from .build import build

        datasets.disable_progress_bars()  # the build's own bars cover its use of datasets
        if "tfds" in formats and importlib.util.find_spec("tensorflow_datasets"):
            _quiet_tfds(tfds_file_format, quiet or not sys.stderr.isatty())
        # TFDS prints "Downloading and preparing dataset ..." to stdout
        silenced = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
        with silenced:
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
                strict=strict,
                progress=bars,
                tfds_file_format=tfds_file_format,
                allow_collection_mismatch=allow_collection_mismatch,
                license=license_name,
                license_url=license_url,
                citation=citation,
                stacks=stacks,
            )
    except (TciaTrialsError, ValueError, KeyError) as exc:
        bars.close()
        raise click.ClickException(str(exc).strip("'\"")) from None
    except KeyboardInterrupt:
        bars.close()
        click.echo(
            f"Interrupted: the build was abandoned; {out} holds no partial dataset that looks "
            "complete.",
            err=True,
        )
        raise SystemExit(130) from None
    bars.close()
    megabytes = result.bytes_written / 1e6
    click.echo(
        f"{result.name} {result.version} -> {result.out} ({result.seconds:.1f} s, "
        f"{megabytes:,.1f} MB written)"
    )
    for config, splits in result.configs.items():
        counts = ", ".join(f"{split} {count}" for split, count in splits.items())
        click.echo(f"  {config:15s} {counts}")
    if result.tfds_dir is not None:
        click.echo(
            f"  tfds ({tfds_file_format}): {result.tfds_dir}/{result.name}/<config>/"
            f'{result.version}, tfds.load("{result.name}/<config>", data_dir="{result.tfds_dir}")'
        )
    assert result.report is not None
    for line in result.report.summary():
        click.echo(f"  {line}")
    for line in result.report.warning_lines(limit=5):
        click.echo(f"    {line}")
    click.echo(f"  report: {result.out / 'report.md'} (all details: report.json)")


def _quiet_tfds(file_format: str, quiet: bool) -> None:
    """TensorFlow imported without its start-up notices (TFRecord needs it); with ``quiet``
    (--quiet, or stderr is no terminal), TFDS without progress bars and INFO logs."""
    from .quiet import import_tensorflow_quietly, quiet_tfds

    if file_format == "tfrecord":
        import_tensorflow_quietly()
    if quiet:
        quiet_tfds()


class _ProgressBars:
    """``build(progress=...)`` as tqdm bars on stderr, one per stage, with rate and ETA; shown
    on terminals only (tqdm's ``disable=None``)."""

    def __init__(self, *, enabled: bool) -> None:
        self.disable = None if enabled else True
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        from .build import STAGES

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total, desc=stage, unit=STAGES[stage], file=sys.stderr, disable=self.disable
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stage = self.bar = None


@main.command("verify")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Path(file_okay=False, path_type=Path),
    help="Compare with this download instead of the one recorded at build time.",
)
@click.option("--no-source", is_flag=True, help="Check the files only; do not read the source.")
@click.option(
    "--sample",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Volume examples to compare with the source.",
)
def verify_command(path: Path, source: Path | None, no_source: bool, sample: int) -> None:
    """Re-read the built dataset PATH (OUT/NAME) and check it.

    Every shard against its build record (present, sha256, schema, examples per split), and a
    sample of volume examples against the series re-read from the source download (voxels and
    masks bit-exact, geometry, lesion seeds).  Exit code 1 on any difference.
    """
    from .errors import TciaTrialsError
    from .verify import verify

    try:
        result = verify(path, source=source, check_source=not no_source, sample=sample)
    except (TciaTrialsError, ValueError, KeyError) as exc:  # incl. unreadable build records
        raise click.ClickException(str(exc).strip("'\"")) from None
    for line in result.checked:
        click.echo(f"  ok    {line}")
    for line in result.notes:
        click.echo(f"  note  {line}")
    for line in result.errors:
        click.echo(f"  FAIL  {line}")
    if result.errors:
        raise click.ClickException(f"{path}: {len(result.errors)} problem(s) found")
    click.echo(f"{path}: verified")


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Folder for the demo's outputs (its source/ and datasets/synthetic_trial/ are "
    "regenerated on every run).",
)
@click.option("--patients", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, patients: int, seed: int) -> None:
    """Generate the synthetic trial collection, read it back, build it as HuggingFace and TFDS
    datasets, load both back, verify them, draw previews and print where everything is."""
    from .demo import run_demo
    from .errors import TciaTrialsError

    try:
        run_demo(out, patients=patients, seed=seed, echo=click.echo)
    except (FileExistsError, TciaTrialsError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("catalog")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of entries.")
def catalog_command(names: tuple[str, ...], as_json: bool) -> None:
    """List the known trial collections (or only NAMES): access, patients, image and annotation
    series with their sizes (counted in the offline IDC index of idc-index-data), licenses and
    DOIs. Collections absent from the IDC index (controlled access) show "not in IDC index"."""
    import json

    from .catalog import catalog, format_catalog
    from .errors import TciaTrialsError

    try:
        entries = catalog(names or None)
    except TciaTrialsError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        click.echo(format_catalog(entries))


@main.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_command(name: str, as_json: bool) -> None:
    """Describe the builder NAME: sources, DOIs, licenses, citation, versions, configs with their
    features, splits, and how to download the data."""
    import json

    from .catalog import builder_info, format_info
    from .errors import TciaTrialsError

    try:
        info = builder_info(name)
    except TciaTrialsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))


@main.command("preview")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--patient", help="PatientID to draw (default: every patient).")
@click.option(
    "--lesion", help='lesion_id or label to draw, e.g. "LIVER - 1" (default: every lesion).'
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder that receives previews/ (default: OUT).",
)
def preview_command(
    out: Path, patient: str | None, lesion: str | None, out_dir: Path | None
) -> None:
    """Draw PNG previews of the built dataset OUT (out/<name>), from its Parquet shards alone.

    One figure per lesion: axial slices through the seed point and through the mask's largest
    area, coronal and sagittal through the seed, with the mask (red), the series' other lesions
    (yellow) and the seed (green +), windowed by modality; plus one montage per patient (not
    with --lesion). Written to OUT/previews/<patient>/; prints the paths.
    """
    from .errors import TciaTrialsError
    from .preview import write_previews

    try:
        paths = write_previews(out, patient=patient, lesion=lesion, out_dir=out_dir)
    except (TciaTrialsError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in paths:
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
