"""Set-up that shows where it is: scripts/step.sh around every `make run`/`make test` step."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEP = ROOT / "scripts" / "step.sh"


def step(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(STEP), "Asterisk root filesystem", "make asterisk-install",
                           *command], capture_output=True, text=True, timeout=60)


def test_a_step_prints_its_name_then_its_time() -> None:
    done = step("sh", "-c", "echo working")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "==> Asterisk root filesystem" and lines[1] == "working"
    assert re.fullmatch(r"ok  Asterisk root filesystem \(\d+\.\d s\)", lines[2])


def test_a_failed_step_says_which_and_how_to_retry_and_keeps_the_exit_code() -> None:
    done = step("sh", "-c", "exit 7")
    assert done.returncode == 7
    assert re.fullmatch(r"!!  Asterisk root filesystem failed after \d+\.\d s \(exit 7\); "
                        r"retry with: make asterisk-install\n", done.stderr)


def test_make_wraps_every_set_up_step() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("deps:", "$(STAMP): pyproject.toml", "asterisk-install: venv", "lint: venv"):
        body = makefile.split(target, 1)[1].split("\n\n", 1)[0]
        assert "$(STEP)" in body, target
    assert "pip install -q" not in makefile              # never silent for minutes
    run = (ROOT / "scripts" / "run.sh").read_text()
    assert run.count("$STEP ") == 3
