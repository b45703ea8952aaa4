"""The notebooks in notebooks/: stored without outputs, and every cell runs without an error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "workbench-tests"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec that runs this interpreter, so the kernel sees the packages the tests see."""
    folder = tmp_path_factory.mktemp("kernels")
    spec = folder / KERNEL
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "workbench tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return folder


def test_there_are_notebooks() -> None:
    """The glob below finds the walkthrough, so the execution test cannot pass vacuously."""
    assert "replay_walkthrough.ipynb" in [path.name for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    """A committed notebook is valid and holds no outputs or execution counts."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_without_errors(path: Path, kernel_dir: Path) -> None:
    """Every cell executes in a kernel of this interpreter, from the repository root."""
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    client = NotebookClient(nb, km=manager, timeout=60, resources={"metadata": {"path": str(ROOT)}})
    # Raises CellExecutionError naming the cell and its traceback. The client shuts down a
    # kernel it did not start only when told to.
    client.execute(cleanup_kc=True)
    html = [
        output["data"]["text/html"]
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]
    assert len(html) == 2 and html[0].startswith("<div><h4>Replay")
    # The test model answers the example's JSON-mode outline as asked: no warning on stderr.
    stderr = [
        output.get("text", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if output.get("name") == "stderr"
    ]
    assert stderr == []
