"""The layout's import rules (pyproject ``[tool.importlinter]``) hold, and they bite.

The second test plants a forbidden import in a throwaway copy of the tree and checks that
``lint-imports`` names that very import: a contract that never fails would prove nothing.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("callpilot", "ivr", "acd", "outbound", "admin_web", "testkit")
LINT = Path(sys.executable).with_name("lint-imports")


def run_lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}, timeout=120)


def copy_tree(dst: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_contracts_kept_on_the_tree():
    result = run_lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("callpilot/infra/db/bad.py", "import acd.dispatcher\n", "domains over infrastructure"),
    ("acd/bad.py", "import ivr.runner\n", "domains independent"),
    ("acd/policy/bad.py", "import asyncio\n", "routing policy is pure"),
    ("outbound/bad.py", "import acd.dispatcher\n", "domains independent"),
    ("outbound/policy/bad.py", "import sqlalchemy\n", "outbound policy is pure"),
    ("admin_web/bad.py", "import callpilot.infra.asterisk.ari\n", "never drives Asterisk"),
    ("ivr/bad.py", "import testkit.sipua\n", "test tooling is never imported"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    tree = copy_tree(tmp_path)
    (tree / module).write_text(line)
    result = run_lint(tree)
    assert result.returncode != 0
    broken = [l for l in result.stdout.splitlines() if " BROKEN" in l]
    assert any(contract in l for l in broken), result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
