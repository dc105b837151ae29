"""Run every benchmark, print a table, write bench/results.json (`make bench`)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from . import classify, overhead

RESULTS = Path(__file__).resolve().parent / "results.json"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def main() -> int:
    results: dict[str, Any] = {}
    print("overhead: µs per successful call (best of 7)", flush=True)
    results["overhead"] = overhead.run()
    for mode, row in results["overhead"].items():
        cells = "  ".join(f"{name} {value:7.2f}" for name, value in row.items())
        added = row["asr_resilience"] - row["bare"]
        print(f"  {mode:5}  {cells}   added by asr_resilience: {added:.2f}")
    results["classify"] = classify.run()
    print(f"classify: {results['classify']['decisions_per_second']:,} code-only decisions/s")
    results["machine"] = machine()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
