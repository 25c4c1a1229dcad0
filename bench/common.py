"""What every benchmark shares: the result row, the table, the machine description."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.table import Table

from bench.registry import BENCHMARKS
from sandbox.web import free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Measurement:
    """One measured number, what it is held to, and whether it made it."""

    benchmark: str
    case: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None  # None: informational, no target
    detail: dict = field(default_factory=dict)

    def shown(self) -> str:
        if self.value >= 100:
            return f"{self.value:,.0f} {self.unit}"
        return f"{self.value:,.3g} {self.unit}"


def machine() -> str:
    """CPU model, cores, memory and Python: where a result came from."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores{memory}, " \
           f"Python {platform.python_version()}, {platform.system()} {platform.release()}"


def report(measurements: list[Measurement], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"closedloop benchmarks — {machine()}", title_justify="left")
    for column in ("benchmark", "case", "result", "target", ""):
        table.add_column(column, overflow="fold")
    for m in measurements:
        mark = "" if m.ok is None else ("[green]met[/green]" if m.ok else "[red]missed[/red]")
        table.add_row(m.benchmark, m.case, m.shown(), m.target, mark)
    console.print(table)


def save(name: str, measurements: list[Measurement]) -> Path:
    """Write results to bench/results/NAME.json (kept in git: the README quotes them)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                "measurements": [asdict(m) for m in measurements]}, indent=2) + "\n")
    return path


def peak_rss_mb_of(command: list[str], env: dict | None = None, cwd: str | None = None,
                   on_start: Callable[[subprocess.Popen], None] | None = None) -> tuple[float, int]:
    """Run ``command`` to completion; returns (its peak RSS in MB, exit status)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    process = subprocess.Popen(command, env=env, cwd=cwd)
    if on_start:
        on_start(process)
    status = process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:  # ru_maxrss is the max over all children so far; make sure it was this one
        print("warning: peak RSS not attributable (an earlier child used more)", file=sys.stderr)
    return after / 1024, status


def markdown() -> str:
    """Every saved result as one Markdown table, in the order of ``bench.registry.BENCHMARKS``,
    preceded by the machine they ran on (a column instead, when they ran on several)."""
    saved = [json.loads((RESULTS_DIR / f"{name}.json").read_text()) for name in BENCHMARKS
             if (RESULTS_DIR / f"{name}.json").exists()]
    machines = list(dict.fromkeys(result["machine"] for result in saved))
    several = len(machines) > 1
    lines = [f"Machine: {machines[0]}.", ""] if len(machines) == 1 else []
    lines += ["| benchmark | case | result | target | met | when |" + (" machine |" if several else ""),
              "|---|---|---|---|---|---|" + ("---|" if several else "")]
    for result in saved:
        for item in result["measurements"]:
            m = Measurement(**item)
            met = "" if m.ok is None else ("yes" if m.ok else "**no**")
            lines.append(f"| {m.benchmark} | {m.case} | {m.shown()} | {m.target} | {met} | {result['when']} |"
                         + (f" {result['machine']} |" if several else ""))
    return "\n".join(lines)


def closedloop_command() -> list[str]:
    """The installed ``closedloop`` entry point next to this interpreter, else ``-m sync.cli``."""
    script = Path(sys.executable).with_name("closedloop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync.cli"]


@contextlib.contextmanager
def postgres_server() -> Iterator[int]:
    """A private PostgreSQL cluster on a free loopback port (as tests/conftest.py starts one,
    minus its fsync=off shortcuts), removed afterwards. Yields the port."""
    bindir = next((Path(d) for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
                   if (d / "initdb").exists()), None)
    if bindir is None:
        found = shutil.which("initdb")
        if not found:
            raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
        bindir = Path(found).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # Not under the benchmark's own temp dir: the server runs as postgres and needs its own.
    root = Path(tempfile.mkdtemp(prefix="closedloop-bench-pg-"))
    data, sockets = root / "data", root / "sockets"
    for path in (data, sockets):
        path.mkdir()
    if os.geteuid() == 0:
        for path in (root, data, sockets):
            shutil.chown(path, "postgres")
        os.chmod(root, 0o755)
    port = free_port()
    try:
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8"], check=True, capture_output=True)
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=100"
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                        str(root / "server.log"), "-w", "start"], check=True, capture_output=True)
        try:
            yield port
        finally:
            subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
