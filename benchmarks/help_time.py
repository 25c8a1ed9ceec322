"""How long ``vmae --help`` takes (target: median <= 0.2 s, issue 26), and what it imports.

Runs ``vmae --help`` and each command's ``--help`` ``--runs`` times each (after one untimed
run that warms the file cache) and prints the median, min and max wall time. With
``--importtime`` it also runs ``python -X importtime`` on ``vmae --help`` and
``vmae classify --help`` and lists the slowest imports (cumulative and self time), and says
whether heavy libraries (torch, transformers, cv2, av, numpy, pandas, pydantic) were imported
at all: none of them is needed to print help.

Byte code is cached, as an installed package has it: the commands run with
``PYTHONPYCACHEPREFIX`` in a temporary folder (filled by the untimed run) and without
``PYTHONDONTWRITEBYTECODE``, which would compile every module vmae imports on every run
(+0.1-0.2 s of the old ``vmae --help``). ``--no-bytecode-cache`` keeps the caller's
environment as it is.

Usage::

    python benchmarks/help_time.py                  # 9 runs of each
    python benchmarks/help_time.py --runs 21 --importtime --top 15 --json help.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_info, machine_summary, median, vmae_command, write_json

HEAVY = (
    "torch",
    "transformers",
    "cv2",
    "av",
    "numpy",
    "pandas",
    "PIL",
    "huggingface_hub",
    "pydantic",
)
#: The help pages timed: `vmae` and each of its commands.
PAGES = (
    ["--help"],
    ["classify", "--help"],
    ["inspect", "--help"],
    ["summarize", "--help"],
    ["report", "--help"],
    ["labels", "--help"],
)
#: The pages whose imports ``--importtime`` lists.
IMPORT_PAGES = PAGES[:2]
#: The median ``vmae --help`` must stay within (issue 26, item 1), seconds.
TARGET_S = 0.2


def cached_bytecode_env(folder: str) -> dict[str, str]:
    """This environment with byte code written to and read from ``folder``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = folder
    return env


def time_command(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    subprocess.run(cmd, check=False, **quiet)
    times = []
    rc = 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, **quiet)
        times.append(time.perf_counter() - start)
        rc = rc or proc.returncode
    return {
        "cmd": " ".join(cmd),
        "runs": runs,
        "median_s": median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": [round(t, 4) for t in times],
        "exit_code": rc,
    }


def import_times(cmd: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Parse ``python -X importtime`` output of ``cmd`` (a console script or -m command)."""
    if cmd[0] == sys.executable:
        py_cmd = [sys.executable, "-X", "importtime", *cmd[1:]]
    else:
        py_cmd = [sys.executable, "-X", "importtime", cmd[0], *cmd[1:]]
    proc = subprocess.run(
        py_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        try:
            self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
            rows.append(
                {
                    "module": name.strip(),
                    "depth": (len(name) - len(name.lstrip())) // 2,
                    "self_s": int(self_us) / 1e6,
                    "cumulative_s": int(cumulative_us) / 1e6,
                }
            )
        except ValueError:
            continue
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per command (default 9)")
    parser.add_argument(
        "--target", type=float, default=TARGET_S, help=f"median target in s ({TARGET_S})"
    )
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    parser.add_argument("--top", type=int, default=12, help="imports listed (default 12)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run with the caller's environment (PYTHONDONTWRITEBYTECODE=1 compiles every run)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vmae-help-pyc-") as pyc:
        env = None if args.no_bytecode_cache else cached_bytecode_env(pyc)
        return measure(args, env)


def measure(args: argparse.Namespace, env: dict[str, str] | None) -> int:
    base = vmae_command()
    info = machine_info()
    print(f"machine: {machine_summary(info)}")
    print(f"byte code: {'as the environment has it' if env is None else 'cached'}")
    report: dict[str, Any] = {
        "machine": info,
        "load_before": os.getloadavg(),
        "bytecode_cached": env is not None,
        "commands": [],
    }
    worst = 0.0
    for extra in PAGES:
        r = time_command([*base, *extra], args.runs, env)
        report["commands"].append(r)
        worst = max(worst, r["median_s"])
        verdict = "PASS" if r["median_s"] <= args.target else "FAIL"
        print(
            f"vmae {' '.join(extra)}: median {r['median_s']:.3f} s (min {r['min_s']:.3f}, "
            f"max {r['max_s']:.3f}, {args.runs} runs, exit {r['exit_code']}) "
            f"target <= {args.target} s: {verdict}"
        )
    report["pass"] = worst <= args.target
    if args.importtime:
        report["imports"] = {}
        for extra in IMPORT_PAGES:
            name = f"vmae {' '.join(extra)}"
            rows = import_times([*base, *extra], env)
            top_level = {r["module"].split(".")[0] for r in rows}
            heavy = [m for m in HEAVY if m in top_level]
            report["imports"][name] = {"modules": rows, "heavy_imported": heavy}
            total = sum(r["self_s"] for r in rows)
            print(f"\n{name} imports {len(rows)} modules, {total:.3f} s of import time in all")
            print(f"heavy libraries imported: {', '.join(heavy) if heavy else 'none'}")
            print(f"slowest (cumulative), top {args.top}:")
            for r in sorted(rows, key=lambda r: -r["cumulative_s"])[: args.top]:
                print(f"  {r['cumulative_s']:8.3f} s  {'  ' * r['depth']}{r['module']}")
            print(f"slowest (self), top {args.top}:")
            for r in sorted(rows, key=lambda r: -r["self_s"])[: args.top]:
                print(f"  {r['self_s']:8.3f} s  {r['module']}")
    report["load_after"] = os.getloadavg()
    print(f"load average after: {report['load_after']}")
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
