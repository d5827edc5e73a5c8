"""TiO2 benchmark on ænet's public reference set (../shared/data/aenet-TiO2).

Chebyshev descriptor (radial Rc 8.0 Å, order 16; angular Rc 6.5 Å, order 4), 2×15 tanh
networks per element, trained on energies and forces; 90/10 train/test split.

By default a committee of two such potentials (training seeds 1 and 2, same split) is
trained, one member per CPU core in parallel, and the committee's mean is evaluated;
``--committee 1`` trains a single potential.  The result lists every member's own test
errors as well.

Data selection: structures more than 1 eV/atom above the lowest cohesive energy are
dropped first (ænet-style energy cap: the set contains heavily distorted structures up
to +30 eV/atom with forces up to 190 eV/Å), then ``--n-structures`` are drawn with a
fixed seed (all of them when omitted).

Usage::

    python bench/tio2.py --n-structures 1000 --result bench/results/tio2-1000.json
    python bench/tio2.py --force-fraction 0.25 --epochs 350 --max-time 3300 \\
        --result bench/results/tio2-full.json

Writes a JSON file with ``test_energy_rmse_meV_per_atom``, ``test_force_rmse_eV_per_A``,
``wall_s``, ``n_train``, ``n_test`` (plus further metrics and the settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from hdnnp.fileio import atomic_write_text
from hdnnp.training import TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "aenet-TiO2" / "TiO2-xsf.tar.gz"
REFERENCE_ENERGIES = {"O": -432.503149303, "Ti": -1604.604515075}  # ænet generate.in


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-structures", type=int, default=None)
    p.add_argument("--energy-cap", type=float, default=1.0,
                   help="eV/atom above the lowest cohesive energy (default 1.0)")
    p.add_argument("--result", required=True, help="result JSON path")
    p.add_argument("--run-dir", default=None, help="run directory (default bench/work/NAME)")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--epochs", type=int, default=950)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-3)
    p.add_argument("--learning-rate-final", type=float, default=1e-5)
    p.add_argument("--force-weight", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="L2 coefficient added to the gradient by Adam (default 0)")
    p.add_argument("--force-fraction", type=float, default=1.0)
    p.add_argument("--refine-epochs", type=int, default=0,
                   help="full-batch L-BFGS epochs after the Adam epochs")
    p.add_argument("--max-time", type=float, default=1650.0,
                   help="training of a member stops when it has lasted this long (s)")
    p.add_argument("--committee", type=int, default=2,
                   help="committee members (default 2; 1: a single potential)")
    p.add_argument("--jobs", type=int, default=2, help="members trained at once (default 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per member (default: 1 with --jobs > 1, else 2)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if not ARCHIVE.exists():
        raise SystemExit(f"shared data set not found: {ARCHIVE}")
    name = Path(args.result).stem
    run_dir = Path(args.run_dir or REPO / "bench" / "work" / name)
    shutil.rmtree(run_dir, ignore_errors=True)
    if args.threads is None:
        args.threads = 1 if args.jobs > 1 and args.committee > 1 else 2
    # the members set their own threads; this process evaluates the committee at the end
    torch.set_num_threads(args.threads if args.committee == 1 else os.cpu_count() or 1)
    cfg = TrainConfig.from_dict({
        "data": {"train": [str(ARCHIVE)], "reference_energies": REFERENCE_ENERGIES,
                 "max_energy_above_min": args.energy_cap, "n_structures": args.n_structures,
                 "test_fraction": 0.1, "seed": 1},
        "descriptor": {"kind": "chebyshev", "radial_rc": 8.0, "radial_order": 16,
                       "angular_rc": 6.5, "angular_order": 4},
        "network": {"hidden": [15, 15], "activation": "tanh"},
        "training": {"optimizer": args.optimizer, "epochs": args.epochs,
                     "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                     "learning_rate_final": args.learning_rate_final,
                     "force_weight": args.force_weight, "force_fraction": args.force_fraction,
                     "refine_epochs": args.refine_epochs, "weight_decay": args.weight_decay,
                     "seed": args.seed, "max_time_s": args.max_time, "threads": args.threads,
                     "eval_train_every": 10, "committee": args.committee, "jobs": args.jobs},
        "output": str(run_dir)})
    t0 = time.perf_counter()
    metrics = Trainer(cfg, progress=False).run()
    wall = time.perf_counter() - t0
    result = {
        "test_energy_rmse_meV_per_atom": metrics["test_energy_rmse_meV_per_atom"],
        "test_force_rmse_eV_per_A": metrics["test_force_rmse_eV_per_A"],
        "wall_s": round(wall, 1),
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
        "test_energy_mae_meV_per_atom": metrics["test_energy_mae_meV_per_atom"],
        "test_force_mae_eV_per_A": metrics["test_force_mae_eV_per_A"],
        "train_energy_rmse_meV_per_atom": metrics["train_energy_rmse_meV_per_atom"],
        "train_force_rmse_eV_per_A": metrics["train_force_rmse_eV_per_A"],
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics.get("best_epoch"),
        "committee": metrics.get("committee", 1),
        "members": metrics.get("members", []),
        "settings": {k: v for k, v in vars(args).items() if k not in ("result", "run_dir")},
        "machine": {"cpu_threads": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    atomic_write_text(args.result, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
