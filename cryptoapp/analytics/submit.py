"""Runs the Spark jobs with spark-submit: `python -m cryptoapp.analytics.submit --in DIR --out DIR [--days N]`.

The one place that spells the spark-submit command line (`make analytics`, the benchmark and the tests
all use it). It adds to what the user set, never replaces it:
- SPARK_MASTER (default local[*]) becomes --master; SPARK_SUBMIT_ARGS (shell words) is passed through
  as it is, after ours, so a user's --conf wins (e.g. "--deploy-mode cluster --conf spark.executor.memory=8g").
- SPARK_SUBMIT picks the spark-submit to run (default: the one pyspark installed beside this Python);
  SPARK_HOME and PYSPARK_PYTHON default to this pyspark and this Python when unset.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptoapp.analytics.export import PRICES_DIR

JOBS = Path(__file__).resolve().parent / "jobs"
# The entry script and the sibling modules it imports (shipped with --py-files for cluster deploy mode).
ENTRY = JOBS / "run_all.py"
MODULES = (JOBS / "common.py", JOBS / "daily.py", JOBS / "correlation.py")
DEFAULT_MASTER = "local[*]"
DEFAULT_DAYS = 90


def _relative(path: Path) -> str:
    """The path as the user would type it from the checkout (shorter in the printed command line)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def command(source: str, results: str, days: int = DEFAULT_DAYS,
            environ: Mapping[str, str] = os.environ) -> list[str]:
    """The spark-submit argv for run_all.py over the export root `source`, writing to `results`."""
    spark_submit = environ.get("SPARK_SUBMIT") or str(Path(sys.executable).parent / "spark-submit")
    return [spark_submit, "--master", environ.get("SPARK_MASTER") or DEFAULT_MASTER,
            "--name", "cryptoapp-analytics",
            "--conf", "spark.log.level=WARN",  # the jobs' own lines, not Spark's INFO chatter
            "--py-files", ",".join(_relative(m) for m in MODULES),
            *shlex.split(environ.get("SPARK_SUBMIT_ARGS") or ""),
            _relative(ENTRY), "--in", str(source), "--out", str(results), "--days", str(days)]


def environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for spark-submit: SPARK_HOME (pip's pyspark) and PYSPARK_PYTHON (this Python) unless set."""
    env = dict(environ)
    if not env.get("SPARK_HOME"):
        import pyspark  # only here: asking where pyspark lives costs an import the rest does not need

        env["SPARK_HOME"] = str(Path(pyspark.__file__).resolve().parent)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    if (env.get("SPARK_MASTER") or DEFAULT_MASTER).startswith("local"):
        # A local run needs no network address; without this Spark warns that the host name is a loopback one.
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def java_problem(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why Spark cannot start here (no Java, or one older than 17), in one line; None when Java will do."""
    home = environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    fix = "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
    if not java or not Path(java).exists():
        return f"no Java found (JAVA_HOME unset and no java on PATH): {fix}"
    try:
        banner = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{java} -version failed ({exc}): {fix}"
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    major = int(match.group(1)) if match else 0
    major = int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8
    if major and major < 17:
        return f"{java} is Java {major}; pyspark 4 needs 17 or newer: {fix}"
    return None


def run(source: str, results: str, days: int = DEFAULT_DAYS, environ: Mapping[str, str] = os.environ,
        capture: bool = False) -> subprocess.CompletedProcess:
    """Runs the jobs; the completed process (output captured when asked)."""
    return subprocess.run(command(source, results, days, environ), env=environment(environ),
                          capture_output=capture, text=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--in", dest="source", required=True, help="the export root (cryptoapp export parquet --out)")
    args.add_argument("--out", required=True, help="the results folder (overwritten)")
    args.add_argument("--days", type=int, default=DEFAULT_DAYS, help="correlation span in days")
    parsed = args.parse_args(argv)
    if "://" not in parsed.source and not (Path(parsed.source) / PRICES_DIR).is_dir():
        # Checked here for a local folder: Spark would start, print a Java stack trace, then say the same.
        print(f"analytics: no exported ticks under {Path(parsed.source) / PRICES_DIR}: run `cryptoapp export parquet "
              f"--out {parsed.source}` (make analytics does) once the worker has stored prices (make run)",
              file=sys.stderr)
        return 1
    problem = java_problem()
    if problem:
        print(f"analytics: {problem}", file=sys.stderr)
        return 1
    argv_ = command(parsed.source, parsed.out, parsed.days)
    print("+ " + shlex.join(argv_), file=sys.stderr, flush=True)
    try:
        return run(parsed.source, parsed.out, parsed.days).returncode
    except FileNotFoundError:
        print(f"analytics: {argv_[0]} not found: run `make install` (pyspark comes from requirements.txt), "
              "or set SPARK_SUBMIT to your Spark's bin/spark-submit", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
