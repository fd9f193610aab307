"""Every notebook in ``notebooks/`` runs top to bottom on small sizes (``NT_NOTEBOOK_SMALL=1``),
each in well under a minute, and is committed with its outputs stripped.

The kernel is the test interpreter's own (ipykernel); the notebook's working directory is a fresh
temporary directory, and ``NT_REPO`` points at the checkout so a notebook can find ``configs/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")   # in the [test] extra: never skipped under `make test`
from nbclient import NotebookClient  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BUDGET_S = 60.0


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                f"{path.name}: commit notebooks with outputs stripped (python notebooks/strip.py)"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("NT_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("NT_REPO", str(REPO))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=int(3 * BUDGET_S), kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()                              # raises CellExecutionError on any failing cell
    wall = time.perf_counter() - t0
    assert wall < 2 * BUDGET_S, f"{path.name} took {wall:.0f} s on small sizes"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
