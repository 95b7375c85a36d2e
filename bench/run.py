"""Run every bench/bench_*.py and print one table of ratios.

Each script prints one JSON object per measurement on a line starting with ``RESULT ``:
``{"name": ..., "value": ..., "baseline": ..., "unit": ..., "ratio": ..., "target": "...", "ok": bool}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if not scripts:
        print("No benchmarks found in bench/.")
        return 0
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    for script in scripts:
        print(f"running {script.name} ...", flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            failed.append(f"{script.name} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        rows.extend(json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    print()
    header = f"{'measurement':<48} {'value':>12} {'baseline':>12} {'ratio':>8}  {'target':<28} ok"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['name']!s:<48} {row['value']!s:>12} {row['baseline']!s:>12} {row['ratio']!s:>8}  "
            f"{row['target']!s:<28} {'yes' if row['ok'] else 'NO'}"
        )
    for failure in failed:
        print(f"\nFAILED: {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
