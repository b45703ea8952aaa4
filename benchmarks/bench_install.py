"""What workbench costs before it does anything: the pytest session, ``import workbench``, the
base install.

* **pytest session overhead**: ``pytest --co -q`` of an empty project with plugin autoload off
  and the plugin under test given with ``-p``, against the same command with no plugin (the
  difference is what the plugin adds; target <= 50 ms). The peer is pytest-recording (vcrpy's
  plugin), measured the same way when it is installed.
* **import time**: ``import workbench`` in a fresh interpreter (target <= 150 ms), against
  ``import vcr``; and ``workbench.record`` on first use (what recording really loads).
* **base install**: a fresh venv, ``pip install .`` with no extra; its packages and megabytes
  beyond the bare venv (needs the package registry; skipped, saying so, when pip cannot reach it).

Each timing is the median of fresh processes. ``--quick``: fewer rounds, and no install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Row, fmt, median

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _seconds(args: list[str], rounds: int, cwd: str | None = None) -> float:
    times = []
    for _ in range(rounds):
        begun = time.perf_counter()
        done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True)
        if done.returncode not in (0, 5):  # 5: pytest collected no test, as in an empty project
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-300:]}")
        times.append(time.perf_counter() - begun)
    return median(times)


def _importable(module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", code], env=_env()).returncode == 0


def _session_rows(rounds: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-install-") as folder:
        base = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
        bare = _seconds(base, rounds, folder)
        ours = _seconds([*base, "-p", "workbench.pytest_plugin"], rounds, folder) - bare
        peer = (
            _seconds([*base, "-p", "pytest_recording.plugin"], rounds, folder) - bare
            if _importable("pytest_recording")
            else None
        )
    return [
        Row(
            "install",
            "pytest --co of an empty project: added by the plugin",
            fmt(ours * 1000, 1, " ms"),
            "pytest-recording " + (fmt(peer * 1000, 1, " ms") if peer is not None else "absent"),
            f"{ours / peer:.2f}x" if peer and peer > 0.001 else "-",
            "<= 50 ms",
            ours <= 0.050,
        ),
        Row(
            "install",
            "pytest --co of an empty project, no plugin",
            fmt(bare, 3, " s"),
            "-",
            "-",
            "-",
            None,
        ),
    ]


def _import_rows(rounds: int) -> list[Row]:
    python = [sys.executable, "-c"]
    empty = _seconds([*python, "pass"], rounds)
    ours = _seconds([*python, "import workbench"], rounds) - empty
    record = _seconds([*python, "import workbench; workbench.record"], rounds) - empty
    peer = _seconds([*python, "import vcr"], rounds) - empty if _importable("vcr") else None
    return [
        Row(
            "install",
            "import workbench",
            fmt(ours * 1000, 1, " ms"),
            "import vcr " + (fmt(peer * 1000, 1, " ms") if peer is not None else "absent"),
            f"{ours / peer:.2f}x" if peer else "-",
            "<= 150 ms",
            ours <= 0.150,
        ),
        Row(
            "install",
            "import workbench; workbench.record (first use)",
            fmt(record * 1000, 1, " ms"),
            "-",
            "-",
            "-",
            None,
        ),
    ]


def _install_rows() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-venv-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        before = _packages(pip), _megabytes(venv)
        done = subprocess.run(
            [*pip, "install", "--quiet", str(ROOT)], capture_output=True, text=True
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1][:80]
            return [Row("install", "base install", f"not measured: {reason}", "-", "-", "-", None)]
        packages = _packages(pip) - before[0]
        size = _megabytes(venv) - before[1]
    return [
        Row(
            "install",
            "base install (pip install ., no extra): packages",
            str(len(packages)),
            "-",
            "-",
            "-",
            None,
        ),
        Row("install", "base install: size", fmt(size, 1, " MB"), "-", "-", "-", None),
    ]


def _packages(pip: list[str]) -> set[str]:
    listed = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True)
    return {line.split("==")[0].lower() for line in listed.stdout.splitlines() if line}


def _megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main(quick: bool = False) -> list[Row]:
    rounds = 3 if quick else 9
    rows = _session_rows(rounds) + _import_rows(rounds)
    if not quick:
        rows += _install_rows()
    return rows


if __name__ == "__main__":
    from _common import print_rows

    print_rows(main("--quick" in sys.argv))
