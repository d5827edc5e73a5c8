"""Benchmark: the shared n2p2 water potential (H2O_RPBE-D3) in hdnnp.

* accuracy: energies and forces of the 20 configurations of ``input.data`` against n2p2's
  own ``nnp-predict`` results (``reference.json``), and the 1080-atom energy against
  n2p2's -2.7564547347815904E+04 Ha;
* speed: energy + forces of the 1080-atom configuration on 1 and 2 torch threads, neighbour
  list excluded (built once), median wall time of repeated calls after a warm-up call
  (and, for one thread, the process's CPU time, which a busy shared machine does not
  inflate); compared with n2p2's ``nnp-predict``, about 306 µs per atom on one core.

Writes ``bench/results/n2p2-h2o.json``.  Usage::

    python bench/n2p2_h2o.py [--repeats 5] [--data ../shared/data/n2p2/H2O_RPBE-D3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hdnnp.fileio import atomic_write_text
from hdnnp.n2p2 import load_n2p2_potential
from hdnnp.n2p2.data import read_input_data
from hdnnp.neighbours import build_batch
from hdnnp.units import BOHR, HARTREE

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "n2p2" / "H2O_RPBE-D3"
N2P2_US_PER_ATOM = 306.0
E_1080_HARTREE = -2.7564547347815904e04


def accuracy(model, data: Path) -> dict:
    ref = json.loads((data / "reference.json").read_text())
    e_err, f_err = [], []
    for atoms, r in zip(read_input_data(data / "input.data", input_nn=data), ref):
        out = model(build_batch([atoms], model.elements, model.cutoff), forces=True)
        e_err.append(abs(float(out["energy"][0].detach()) - r["energy_nnp"] * HARTREE)
                     / len(atoms))
        f_ref = np.asarray(r["forces_nnp"]) * (HARTREE / BOHR)
        f_err.append(float(np.abs(out["forces"].detach().numpy() - f_ref).max()))
    return {"max_energy_error_eV_per_atom": max(e_err), "max_force_error_eV_per_A": max(f_err),
            "configurations": len(ref)}


def timing(model, batch, threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    n = batch.n_total_atoms
    times, cpu = [], []
    for _ in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model(batch, forces=True)
        out["forces"].sum().item()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    steady = times[1:]
    return {"us_per_atom": statistics.median(steady) / n * 1e6,
            "us_per_atom_min": min(steady) / n * 1e6,
            # CPU time of this process: what the call costs on an otherwise idle core
            "cpu_us_per_atom": statistics.median(cpu[1:]) / n * 1e6,
            "first_call_us_per_atom": times[0] / n * 1e6,
            "energy_hartree": float(out["energy"][0].detach()) / HARTREE}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "n2p2-h2o.json")
    args = ap.parse_args(argv)
    if not (args.data / "input.nn").exists():
        raise SystemExit(f"n2p2 water potential not found at {args.data}")
    torch.set_num_threads(1)
    model = load_n2p2_potential(args.data)
    acc = accuracy(model, args.data)
    (large,) = read_input_data(args.data / "large-1080.data", input_nn=args.data)
    batch = build_batch([large], model.elements, model.cutoff)  # neighbour list: not timed
    load_before = os.getloadavg()
    t1 = timing(model, batch, 1, args.repeats)
    t2 = timing(model, batch, 2, args.repeats)
    load_after = os.getloadavg()
    e1080 = t1["energy_hartree"]
    result = {
        **{k: acc[k] for k in ("max_energy_error_eV_per_atom", "max_force_error_eV_per_A")},
        "us_per_atom_1thread": t1["us_per_atom"],
        "us_per_atom_2threads": t2["us_per_atom"],
        "ratio_to_n2p2_1thread": t1["us_per_atom"] / N2P2_US_PER_ATOM,
        "n2p2_us_per_atom_1core": N2P2_US_PER_ATOM,
        "us_per_atom_1thread_min": t1["us_per_atom_min"],
        "cpu_us_per_atom_1thread": t1["cpu_us_per_atom"],
        "us_per_atom_2threads_min": t2["us_per_atom_min"],
        "first_call_us_per_atom_1thread": t1["first_call_us_per_atom"],
        "energy_1080_hartree": e1080,
        "energy_1080_relative_error": abs(e1080 - E_1080_HARTREE) / abs(E_1080_HARTREE),
        "configurations": acc["configurations"],
        "atoms_timed": batch.n_total_atoms,
        "pairs": int(batch.centers.numel()),
        "repeats": args.repeats,
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k}: {v}")
    return result


if __name__ == "__main__":
    main()
