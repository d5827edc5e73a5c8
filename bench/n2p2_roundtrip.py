"""Benchmark: hdnnp → n2p2 export, checked by n2p2's own ``nnp-predict``.

For each model (seeded random weights, input scaling from the structures' own descriptor
statistics, as in ``tests/test_n2p2_nnp_predict.py`` whose builders it uses):

* ``behler-TiO2``: Behler G1/G2/G4/G5, cosine cutoff, files in Å/eV, 48-atom periodic
  triclinic rutile cells (rattled 0.12 Å, strained ±3 %);
* ``n2p2-H2O``: n2p2 types 2, 3, 9, 12, 13 and 20–25 (all compact subtypes), poly2 cutoff
  with α = 0.1, per-element output scales, files in Bohr/Hartree, 12-atom water clusters
  without cell (rattled);

export with :func:`hdnnp.n2p2.export_n2p2_potential`, run ``nnp-predict`` on each of N
structures and compare with :func:`hdnnp.predict.predict_structures`.  Writes
``bench/results/n2p2-roundtrip.json`` with max |ΔE|/atom (eV) and max |ΔF| (eV/Å, over
all components).  n2p2 comes from ``tests/peer_tools.py`` (built from
``../shared/tools/n2p2`` on first use).  Usage::

    python bench/n2p2_roundtrip.py [--structures 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_n2p2_nnp_predict as T  # noqa: E402
from hdnnp.descriptors import SymmetryFunctions  # noqa: E402
from hdnnp.fileio import atomic_write_text  # noqa: E402
from hdnnp.n2p2 import export_n2p2_potential  # noqa: E402


def strained_tio2(seed: int):
    atoms = T.tio2(seed=seed)
    rng = np.random.default_rng(seed)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.03, 0.03, (3, 3))),
                   scale_atoms=True)
    return atoms


MODELS = {
    "behler-TiO2": dict(make=strained_tio2, functions=T.behler_functions, cutoff=(1, 0.0),
                        activations=("t", "s"), units=("angstrom", "eV"), common=True),
    "n2p2-H2O": dict(make=T.water_cluster,
                     functions=lambda el: T.gaussian_functions(el) + T.compact_functions(el),
                     cutoff=(6, 0.1), activations=("p", "t"), units=("bohr", "hartree"),
                     common=False),
}


def run_model(name: str, spec: dict, n: int, work: Path) -> dict:
    make = spec["make"]
    structures = [make(seed=100 + k) for k in range(n)]
    elements = sorted(set(structures[0].get_chemical_symbols()))
    descriptor = SymmetryFunctions(elements, spec["functions"](elements),
                                   cutoff_type=spec["cutoff"][0], cutoff_alpha=spec["cutoff"][1])
    model = T.scaled_random_model(descriptor, [make(seed=s) for s in range(2, 8)],
                                  spec["activations"], common=spec["common"])
    export_n2p2_potential(model, work / name / "nnp", *spec["units"])
    de, df, t_n2p2 = [], [], 0.0
    for k, atoms in enumerate(structures):
        if atoms.pbc.any() and T.plane_spacing(atoms) <= model.cutoff:
            raise SystemExit(f"{name}: structure {k} sees its own periodic image")
        e_h, f_h = T.hdnnp_prediction(model, atoms)
        t0 = time.perf_counter()
        e_n, f_n, _ = T.nnp_predict(work / name / "nnp", atoms, *spec["units"],
                                    work / name / f"run{k}")
        t_n2p2 += time.perf_counter() - t0
        de.append(abs(e_n - e_h) / len(atoms))
        df.append(float(np.abs(f_n - f_h).max()))
    return {"max_energy_error_eV_per_atom": max(de), "max_force_error_eV_per_A": max(df),
            "structures": n, "atoms_per_structure": len(structures[0]),
            "symmetry_functions": {e: descriptor.n_features(e) for e in elements},
            "cutoff_type": spec["cutoff"][0], "file_units": list(spec["units"]),
            "nnp_predict_s_per_structure": t_n2p2 / n}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--structures", type=int, default=20)
    ap.add_argument("--output", type=Path,
                    default=ROOT / "bench" / "results" / "n2p2-roundtrip.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        T.peer_bin("n2p2")
    except pytest.skip.Exception as exc:
        raise SystemExit(f"n2p2 unavailable: {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        models = {name: run_model(name, spec, args.structures, Path(tmp))
                  for name, spec in MODELS.items()}
    result = {
        "max_energy_error_eV_per_atom": max(m["max_energy_error_eV_per_atom"]
                                            for m in models.values()),
        "max_force_error_eV_per_A": max(m["max_force_error_eV_per_A"] for m in models.values()),
        "tolerance_energy_eV_per_atom": T.E_TOL,
        "tolerance_force_eV_per_A": T.F_TOL,
        "models": models,
        "n2p2": "CompPhysVienna/n2p2 61daa0d (../shared/tools/n2p2), nnp-predict",
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("max")}, indent=2))
    return result


if __name__ == "__main__":
    main()
