"""Running the CLI as a user whom file permissions bind: CI runs as root, and root reads everything.

As root, the command runs under ``setpriv`` with the capabilities that override file permissions
(DAC override, DAC read-search, owner override) dropped from its bounding set: it keeps uid 0, so
it can still run the Python installed under ``/root``, but a ``chmod 000`` folder is closed to it.
As any other user the command runs as it is. A missing ``setpriv`` fails the test, never skips it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DROPPED = "-dac_override,-dac_read_search,-fowner"
TIMEOUT_S = 180


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m core ARGS`` without the power to ignore file permissions; text output captured."""
    command = [sys.executable, "-m", "core", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's file-permission override"
        command = [setpriv, "--bounding-set", DROPPED, *command]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=TIMEOUT_S, check=False)


def permissions_bind() -> bool:
    """A check that the setup works: an unprivileged child cannot list a chmod 000 folder."""
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"dotmap-probe-{os.getpid()}"
    probe.mkdir()
    probe.chmod(0)
    try:
        code = "import os, sys\ntry:\n    os.listdir(sys.argv[1])\nexcept PermissionError:\n    sys.exit(3)\n"
        command = [sys.executable, "-c", code, str(probe)]
        if os.geteuid() == 0:
            command = ["setpriv", "--bounding-set", DROPPED, *command]
        return subprocess.run(command, check=False, timeout=TIMEOUT_S).returncode == 3
    finally:
        probe.chmod(0o700)
        probe.rmdir()
