"""Optional sampling profiles (py-spy) of the processes a benchmark runs, for explaining a missed target."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional


class Profiler:
    """`py-spy record` attached to a pid until `detach`; does nothing when no output folder was asked for."""

    def __init__(self, folder: Optional[Path]):
        self.folder = folder
        self.running: dict[str, subprocess.Popen] = {}
        self.written: list[str] = []
        # The venv's own py-spy first: `make bench` runs .venv/bin/python without the venv on PATH.
        venv_copy = Path(sys.executable).parent / "py-spy"
        self.py_spy = str(venv_copy) if venv_copy.exists() else shutil.which("py-spy")
        if folder is not None:
            if self.py_spy is None:
                raise SystemExit("bench: --profile needs py-spy: .venv/bin/pip install 'py-spy~=0.4.3'")
            folder.mkdir(parents=True, exist_ok=True)

    def attach(self, label: str, pid: int) -> None:
        if self.folder is None:
            return
        # Collapsed stacks ("raw") are plain text: they can be grepped and summed without a browser.
        out = self.folder / f"{label}.txt"
        self.running[label] = subprocess.Popen(
            [self.py_spy, "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "--output", str(out),
             "--idle", "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.written.append(str(out))

    def detach(self, label: str) -> None:
        proc = self.running.pop(label, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
