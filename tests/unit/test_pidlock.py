"""One serve per state dir: the pid-file lock."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from callpilot.infra.pidlock import AlreadyRunning, PidLock


def test_second_holder_is_refused_with_the_first_pid_and_changes_nothing(tmp_path) -> None:
    path = tmp_path / "serve.pid"
    with PidLock(path):
        assert path.read_text() == f"{os.getpid()}\n"
        before = path.stat().st_mtime_ns
        # another process (flock locks belong to open files: a child is a fair stand-in)
        code = ("import sys; from callpilot.infra.pidlock import PidLock, AlreadyRunning\n"
                "try:\n    PidLock(sys.argv[1]).acquire()\nexcept AlreadyRunning as e:\n"
                "    print(e.pid); sys.exit(7)\n")
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, env=dict(os.environ))
        assert done.returncode == 7 and done.stdout.strip() == str(os.getpid()), done.stderr
        assert path.read_text() == f"{os.getpid()}\n" and path.stat().st_mtime_ns == before
        with pytest.raises(AlreadyRunning):
            PidLock(path).acquire()          # a second open file in this process too
    with PidLock(path):                      # released: the next one takes it
        pass


def test_a_dead_holder_never_blocks(tmp_path) -> None:
    path = tmp_path / "serve.pid"
    code = "import sys, os; from callpilot.infra.pidlock import PidLock; PidLock(sys.argv[1]).acquire(); os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=dict(os.environ))
    assert path.exists()                     # stale pid file left behind
    with PidLock(path):
        assert path.read_text() == f"{os.getpid()}\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
