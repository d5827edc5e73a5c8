"""Runs the kernel-technology spike: every candidate as its own process, interleaved over
``--rounds`` rounds, and writes the medians to bench/results/engine-spike.json.

Usage::

    python bench/spike/run_spike.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CANDIDATES = {
    "numba (FMA contraction), 1 thread": ["numba_kernel.py", "1"],
    "numba (FMA contraction), 2 threads": ["numba_kernel.py", "2"],
    "C++/OpenMP g++ -O3 -march=native, 1 thread": ["cpp_kernel.py", "1"],
    "C++/OpenMP g++ -O3 -march=native, 2 threads": ["cpp_kernel.py", "2"],
    "warp (CPU device), 1 thread": ["warp_kernel.py"],
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", type=Path,
                    default=HERE.parents[0] / "results" / "engine-spike.json")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict]] = {k: [] for k in CANDIDATES}
    for _ in range(args.rounds):
        for name, cmd in CANDIDATES.items():
            env = dict(os.environ, OMP_NUM_THREADS=cmd[1] if len(cmd) > 1 else "1")
            out = subprocess.run([sys.executable, *cmd], cwd=HERE, env=env, text=True,
                                 capture_output=True, check=True).stdout.strip().splitlines()[-1]
            m = re.search(r": ([\d.]+) us/atom \(first call (\d+)\).*error ([\d.e+-]+),.*"
                          r"error ([\d.e+-]+) eV", out)
            runs[name].append({"us_per_atom": float(m[1]), "first_call_us_per_atom": float(m[2]),
                               "feature_rel_error": float(m[3]), "force_error": float(m[4])})
            print(name, runs[name][-1], flush=True)
    result = {name: {"median_us_per_atom": statistics.median(r["us_per_atom"] for r in rs),
                     "runs": rs} for name, rs in runs.items()}
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, r in result.items():
        print(f"{name}: {r['median_us_per_atom']:.1f} us/atom")


if __name__ == "__main__":
    main()
