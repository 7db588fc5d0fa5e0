"""The notebooks (notebooks/*.ipynb) run top to bottom in a fresh kernel and are stored clean."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from jupyter_client import KernelManager  # noqa: E402  (nbclient's dependency)
from jupyter_client.kernelspec import KernelSpec  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: What each notebook imports beyond the core dependencies.
NEEDS = {
    "huggingface.ipynb": ("matplotlib",),
    "tfds.ipynb": ("matplotlib", "tensorflow", "tensorflow_datasets"),
}


class ThisPythonKernel(KernelManager):
    """An IPython kernel run by this interpreter (the venv's), whatever kernel specs the machine
    has installed."""

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python {sys.version_info.major}.{sys.version_info.minor}",
            language="python",
        )


def _execute(notebook, cwd: Path) -> None:
    """Run every cell; a failing cell raises ``CellExecutionError`` with its traceback."""
    nbclient.NotebookClient(
        notebook,
        timeout=300,  # per cell
        kernel_manager_class=ThisPythonKernel,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()


def test_there_are_notebooks():
    assert [path.name for path in NOTEBOOKS] == sorted(NEEDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    for module in NEEDS[path.name]:
        pytest.importorskip(module)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile folder
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    _execute(nbformat.read(path, as_version=4), tmp_path)
    assert not list(tmp_path.glob("tcia-trials-*"))  # the notebook cleans up after itself


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_a_failing_cell_fails_with_its_error(tmp_path):
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")]
    )
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="ZeroDivisionError"):
        _execute(notebook, tmp_path)
