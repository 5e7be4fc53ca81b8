"""Run every benchmark, one after the other (each also runs alone: python -m benchmarks.bench_X).

    python -m benchmarks.run_all [--quick] [--only pii,toxicity]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small samples (minutes, not tens of minutes)")
    ap.add_argument("--only", default="", help="comma-separated names: " + ", ".join(available()))
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== bench_{name} ===", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"] + (["--quick"] if args.quick else [])
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"=== bench_{name}: exit {rc} in {time.perf_counter() - t0:.0f} s ===", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
