"""TiO2 benchmark on ænet's public reference set (../shared/data/aenet-TiO2).

Chebyshev descriptor as ænet's example (radial Rc 8.0 Å, order 16; angular Rc 6.5 Å,
order 4), tanh networks per element, trained on energies and forces.  Seeded 80/10/10
train/validation/test split: the validation set chooses the best epoch (and ends
stages early), the test set is predicted once at the end.

Data selection, ``--selection``:

* ``aenet`` (default): ænet's own rule, ``MAXENERGY 1.0 eV`` of
  ``02-train/example-good-ann-fits/set003/train.in``: structures whose cohesive energy
  per atom (total minus the isolated-atom energies of ``generate.in``) exceeds 1.0 eV/atom
  are left out (ænet's ``trainset.f90``, ``ts_normalize``);
* ``relative``: more than ``--energy-cap`` eV/atom above the lowest cohesive energy (the
  rule of the runs before issue 11);

then ``--n-structures`` are drawn with a fixed seed (all when omitted).

Optimizers: ``--stage OPT:EPOCHS[:KEY=VALUE,...]`` (repeatable, a chain; each stage
starts from the best model so far), or ``--optimizer``/``--epochs``.  A single potential by
default (``--committee K`` trains K members, one per core with ``--jobs``).

Usage::

    python bench/tio2.py --n-structures 1000 --selection relative --hidden 15 15 \\
        --stage kalman:60 --threads 1 --jobs 1 --result bench/results/tio2-1000.json
    python bench/tio2.py --full --stage adam:300:learning_rate=5e-3,learning_rate_final=1e-5 \\
        --result bench/results/tio2-full.json

Writes a JSON file with ``test_energy_rmse_meV_per_atom``, ``test_force_rmse_eV_per_A``,
``wall_s``, ``n_train``, ``n_valid``, ``n_test``, ``optimizer_chain``, ``committee`` (plus
further metrics and the settings).
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
from hdnnp.potential import load_potential
from hdnnp.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "data" / "aenet-TiO2" / "TiO2-xsf.tar.gz"
REFERENCE_ENERGIES = {"O": -432.503149303, "Ti": -1604.604515075}  # ænet generate.in


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-structures", type=int, default=None)
    p.add_argument("--full", action="store_true",
                   help="every structure that the selection keeps (no --n-structures)")
    p.add_argument("--selection", choices=["aenet", "relative"], default="aenet",
                   help="aenet: cohesive energy <= 1.0 eV/atom (ænet MAXENERGY); relative: "
                   "<= --energy-cap above the lowest (default aenet)")
    p.add_argument("--energy-cap", type=float, default=1.0,
                   help="eV/atom: the bound of the selection (default 1.0)")
    p.add_argument("--stage", action="append", metavar="OPT:EPOCHS[:KEY=VALUE,...]",
                   help="a stage of an optimizer chain (repeatable; overrides --optimizer "
                   "and --epochs)")
    p.add_argument("--hidden", type=int, nargs="+", default=[15, 15])
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping patience on the validation loss (epochs)")
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
    p.add_argument("--max-time", type=float, default=None,
                   help="training of a member stops when it has lasted this long (s; default "
                   "none: the result must not depend on the machine's load)")
    p.add_argument("--committee", type=int, default=1,
                   help="committee members (default 1: a single potential)")
    p.add_argument("--jobs", type=int, default=2, help="members trained at once (default 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per member (default: 1 with --jobs > 1, else 2)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.full and args.n_structures is not None:
        p.error("--full takes every selected structure; leave out --n-structures")
    if not ARCHIVE.exists():
        raise SystemExit(f"shared data set not found: {ARCHIVE}")
    name = Path(args.result).stem
    run_dir = Path(args.run_dir or REPO / "bench" / "work" / name)
    shutil.rmtree(run_dir, ignore_errors=True)
    if args.threads is None:
        args.threads = 1 if args.jobs > 1 and args.committee > 1 else 2
    # the members set their own threads; this process evaluates the committee at the end
    torch.set_num_threads(args.threads if args.committee == 1 else os.cpu_count() or 1)
    from hdnnp.cli.cmd_train import parse_stages

    selection = ({"max_energy_per_atom": args.energy_cap} if args.selection == "aenet" else
                 {"max_energy_above_min": args.energy_cap})
    training = {"optimizer": args.optimizer, "epochs": args.epochs}
    if args.stage:
        training = {"stages": parse_stages(args.stage)}
    cfg = TrainConfig.from_dict({
        "data": {"train": [str(ARCHIVE)], "reference_energies": REFERENCE_ENERGIES,
                 **selection, "n_structures": args.n_structures,
                 "validation_fraction": 0.1, "test_fraction": 0.1, "seed": 1},
        "descriptor": {"kind": "chebyshev", "radial_rc": 8.0, "radial_order": 16,
                       "angular_rc": 6.5, "angular_order": 4},
        "network": {"hidden": args.hidden, "activation": "tanh"},
        "training": {**training, "early_stopping_patience": args.patience,
                     "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                     "learning_rate_final": args.learning_rate_final,
                     "force_weight": args.force_weight, "force_fraction": args.force_fraction,
                     "refine_epochs": args.refine_epochs, "weight_decay": args.weight_decay,
                     "seed": args.seed, "max_time_s": args.max_time, "threads": args.threads,
                     "eval_train_every": 10, "committee": args.committee, "jobs": args.jobs},
        "output": str(run_dir)})
    t0 = time.perf_counter()
    metrics = train(cfg, progress=False)
    provenance = load_potential(run_dir / "model.json").metadata.get("training", {})
    wall = time.perf_counter() - t0
    result = {
        "test_energy_rmse_meV_per_atom": metrics["test_energy_rmse_meV_per_atom"],
        "test_force_rmse_eV_per_A": metrics["test_force_rmse_eV_per_A"],
        "wall_s": round(wall, 1),
        "n_train": metrics["n_train"],
        "n_valid": metrics["n_validation"],
        "n_test": metrics["n_test"],
        "selection": {"rule": args.selection, "bound_eV_per_atom": args.energy_cap,
                      **provenance.get("data_selection", provenance.get(
                          "member_training", {}).get("data_selection", {}))},
        "optimizer_chain": metrics.get("optimizer_chain") or provenance.get(
            "member_training", {}).get("optimizer_chain"),
        "validation_energy_rmse_meV_per_atom": metrics.get(
            "validation_energy_rmse_meV_per_atom"),
        "validation_force_rmse_eV_per_A": metrics.get("validation_force_rmse_eV_per_A"),
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
