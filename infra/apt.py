"""Install Debian packages when a command is missing (root or sudo), without starting their services."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

POLICY = Path("/usr/sbin/policy-rc.d")


def _sudo() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise SystemExit("[stack] installing Debian packages needs root or sudo")


def ensure(commands: list[str], packages: list[str], log: Callable[[str], None]) -> None:
    """Install ``packages`` unless every command in ``commands`` is already available."""
    if all(shutil.which(c) or Path("/usr/sbin", c).exists() for c in commands):
        return
    log(f"installing Debian packages {' '.join(packages)} (once)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sudo = _sudo()
    # policy-rc.d = 101 keeps the packages' post-install scripts from starting system services:
    # the project runs its own servers on its own ports and data directories.
    created = False
    if not POLICY.exists():
        subprocess.run(
            [*sudo, "sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY} && chmod +x {POLICY}"],
            check=True,
        )
        created = True
    try:
        cmd = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    finally:
        if created:
            subprocess.run([*sudo, "rm", "-f", str(POLICY)], check=False)
