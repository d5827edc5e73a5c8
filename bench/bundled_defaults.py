"""Each bundled material's set A trained with the project's default settings (issue 13).

For every bundled ``*-A`` data set (or the names given) runs, one after another::

    hdnnp train bundled:NAME --threads 1 -o runs/defaults/NAME

(the defaults: 80/10/10 split with seed 1, the default Chebyshev descriptor and network,
Adam 5e-3 → 1e-5 over 200 epochs, the validation set choosing the epoch, the test set
predicted once) and merges the test energy MAE / RMSE (meV/atom), force RMSE (eV/Å) and
Pearson r, the best epoch, the wall time and the peak resident memory of the training
process into ``bench/results/bundled-defaults.json``.  Requirement: test energy MAE
≤ 1 meV/atom on every set A.  Sets already in the file are skipped unless ``--force``,
so an interrupted benchmark continues where it stopped.

Usage::

    OMP_NUM_THREADS=1 python bench/bundled_defaults.py            # every bundled set A
    OMP_NUM_THREADS=1 python bench/bundled_defaults.py hbn-A cbn-A --force
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "bundled-defaults.json"
REQUIRED_MAE = 1.0


def train_one(name: str) -> dict:
    run = REPO / "runs" / "defaults" / name
    cmd = [sys.executable, "-m", "hdnnp", "train", f"bundled:{name}", "--threads", "1",
           "-o", str(run), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # a wrapper process per run, so that its children's ru_maxrss (KiB on Linux) is this
    # run's peak and not the largest of all runs so far
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True, env=env, cwd=REPO,
                         stdout=subprocess.PIPE, text=True).stdout
    wall = time.perf_counter() - t0
    peak_kib = int(out.split()[-1])
    metrics = json.loads((run / "metrics.json").read_text())
    mae = metrics["test_energy_mae_meV_per_atom"]
    return {
        "command": f"hdnnp train bundled:{name} --threads 1 -o runs/defaults/{name}",
        "test_energy_mae_meV_per_atom": mae,
        "test_energy_rmse_meV_per_atom": metrics["test_energy_rmse_meV_per_atom"],
        "test_force_rmse_eV_per_A": metrics["test_force_rmse_eV_per_A"],
        "test_force_pearson_r": metrics["test_force_pearson_r"],
        "best_epoch": metrics.get("best_epoch"),
        "epochs_run": metrics.get("epochs_run"),
        "n_train": metrics.get("n_train"), "n_test": metrics.get("n_test"),
        "wall_s": round(wall, 1),
        "peak_rss_MiB": round(peak_kib / 1024, 1),
        "required_mae_meV_per_atom": REQUIRED_MAE,
        "met": bool(mae <= REQUIRED_MAE),
    }


def main() -> int:
    from hdnnp.bundled import list_bundled_datasets
    from hdnnp.fileio import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="bundled data sets (default: every *-A set)")
    p.add_argument("--force", action="store_true", help="train sets already in the file")
    args = p.parse_args()
    names = args.names or sorted(n for n in list_bundled_datasets() if n.endswith("-A"))
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name in names:
        if name in results and not args.force:
            print(f"{name}: in {OUT.name} already (--force to train again)")
            continue
        print(f"{name}: training with the defaults ...", flush=True)
        results[name] = train_one(name)
        results = dict(sorted(results.items()))
        atomic_write_text(OUT, json.dumps(results, indent=2) + "\n")
        r = results[name]
        print(f"{name}: test MAE {r['test_energy_mae_meV_per_atom']:.3f} meV/atom, force "
              f"RMSE {r['test_force_rmse_eV_per_A']:.3f} eV/Å, {r['wall_s']:.0f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
