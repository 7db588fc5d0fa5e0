"""Clinical sheet of the synthetic trial: an .xlsx (byte-deterministic) and the same as .csv.

One row per patient, keyed by ``patient_id``; blanks (None) where a value is missing, as in real
trial spreadsheets; one patient has clinical data but no images.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from pathlib import Path

from openpyxl import Workbook

#: Column name -> type as documented in ground_truth.json.
COLUMN_TYPES = {
    "patient_id": "str",
    "age": "int",
    "sex": "category[M,F]",
    "arm": "category[ARM A,ARM B,ARM C]",
    "best_response": "category[CR,PR,SD,PD]",
    "pfs_days": "int",
    "progression_event": "bool[0,1]",
}
FIXED_TIME = dt.datetime(2024, 1, 1, 0, 0, 0)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_clinical(folder: Path, collection: str, rows: list[dict]) -> tuple[Path, Path]:
    """Write ``<collection>_clinical.xlsx`` and ``.csv`` into ``folder``.

    Parameters
    ----------
    rows
        Dicts with the keys of :data:`COLUMN_TYPES`; None is written as an empty cell.

    Returns
    -------
    xlsx, csv
        The two paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(COLUMN_TYPES)
    csv_path = folder / f"{collection}_clinical.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])

    wb = Workbook()
    ws = wb.active
    ws.title = "clinical"
    ws.append(columns)
    for row in rows:
        ws.append([row.get(c) for c in columns])
    wb.properties.creator = "tcia_trials.synthetic"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    wb.save(buffer)
    xlsx_path = folder / f"{collection}_clinical.xlsx"
    xlsx_path.write_bytes(_deterministic_zip(buffer.getvalue()))
    return xlsx_path, csv_path


def _deterministic_zip(data: bytes) -> bytes:
    """Rewrite an .xlsx with fixed member timestamps and fixed core-property dates."""
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = content.decode("utf-8")
                text = re.sub(
                    r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rf"\g<1>{stamp}\g<2>",
                    text,
                )
                content = text.encode("utf-8")
            member = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = info.external_attr
            dst.writestr(member, content)
    return out.getvalue()
