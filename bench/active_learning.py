"""Active learning on graphene (issue 12): ``hdnnp learn`` against random labelling.

Writes ``bench/results/active-learning.json``.  Everything is resumable: rerun the same
command after an interruption and it continues (the loop, the labelling databases and the
trainings keep what they finished).

Set-up (all labels GFN1-xTB via tblite at 3000 K electronic temperature, the settings of
the bundled graphene sets, DATA.md):

* **fixed test set**, never used by the loop: 40 MD snapshots of the bundled set
  ``graphene-A`` (Tersoff MD, 300–1000 K) and 40 scaled structures of ``graphene-B``
  with |s| ≤ 0.08; errors reported on each part and on both;
* **initial labels**: 10 other MD snapshots of ``graphene-A`` and 10 other scaled
  structures of ``graphene-B`` (20 labelled structures);
* **loop validation set** (reports only): 10 + 10 more, disjoint from both;
* **exploration**: the ideal 6×6 sheet (72 atoms, ``hdnnp.reference_data.structures``,
  lattice constant of the relaxed bundled cell) scaled by s ∈ {−0.08, −0.04, 0, 0.04,
  0.08}, Langevin NVT at 300, 700, 1100, 1500 K with the committee, 0.5 fs steps,
  3 snapshots per run after 20 fs;
* **loop**: committee of 2 (Chebyshev radial 6.0 Å/8, angular 4.0 Å/4, 2×10 tanh,
  Kalman filter, 30 epochs per iteration, each member warm-started), trust window
  max_force_dev ∈ [0.1, 1.0] eV/Å, snapshots with a C–C distance < 1.1 Å failed, ≤ 20
  labels per iteration, label budget 120; every training leaves out labels more than
  1 eV/atom above the lowest (``data.max_energy_above_min``);
* **baseline**: the same number of structures drawn at random from the pool of all
  snapshots the loop explored (and twice as many), labelled alike, added to the same 20
  initial labels; a committee trained from scratch with the same settings for 40 epochs.
  For a like-for-like comparison the loop's labels are also retrained from scratch the
  same way (``loop_cold``); ``label_ratio_vs_random`` compares those.

``--optimizer``, ``--hidden``, ``--loop-epochs`` and ``--baseline-epochs`` change the
training of the loop and the baselines alike (defaults as above); ``--result`` names the
result file.

Usage: ``OMP_NUM_THREADS=1 python bench/active_learning.py --threads 1 [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REF = {"method": "GFN1-xTB", "electronic_temperature": 3000.0, "accuracy": 1.0,
       "max_iterations": 300, "mixer_damping": 0.4}
LOOP_EPOCHS, BASELINE_EPOCHS = 30, 40
DESCRIPTOR = {"kind": "chebyshev", "radial_rc": 6.0, "radial_order": 8, "angular_rc": 4.0,
              "angular_order": 4}


def _split_bundled(work: Path) -> dict:
    """Test, initial and validation files from the bundled sets (made once)."""
    from hdnnp.bundled import load_bundled_dataset
    from hdnnp.data import save_dataset

    names = {k: work / f"{k}.extxyz" for k in ("test-md", "test-scaled", "initial",
                                               "validation")}
    if all(p.exists() for p in names.values()):
        return names
    a = load_bundled_dataset("graphene-A")
    b = load_bundled_dataset("graphene-B")
    ref = a.reference_energies
    rng = np.random.default_rng(12)
    ia = rng.permutation(len(a))
    scaled = [k for k in range(len(b)) if b[k].info.get("augmentation") == "scale"
              and abs(float(b[k].info["scale_factor"])) <= 0.08]
    ib = rng.permutation(scaled)
    save_dataset(names["test-md"], [a[k] for k in ia[:40]], reference_energies=ref)
    save_dataset(names["test-scaled"], [b[k] for k in ib[:40]], reference_energies=ref)
    save_dataset(names["initial"], [a[k] for k in ia[40:50]] + [b[k] for k in ib[40:50]],
                 reference_energies=ref)
    save_dataset(names["validation"], [a[k] for k in ia[50:60]] + [b[k] for k in ib[50:60]],
                 reference_energies=ref)
    return names


def _seed(work: Path) -> Path:
    from hdnnp.bundled import load_bundled_dataset
    from hdnnp.io import write_structures
    from hdnnp.reference_data.structures import graphene

    path = work / "seed.extxyz"
    if not path.exists():
        cell = load_bundled_dataset("graphene-A")[0].cell
        a = float(np.linalg.norm(cell[0])) / 6.0
        write_structures(path, [graphene((6, 6, 1), a=a)])
    return path


#: training settings of the loop and the baselines (``--optimizer``, ``--hidden``)
TRAINING = {"optimizer": "kalman", "hidden": [10, 10]}


def _train_section(epochs: int, committee: int = 2) -> dict:
    return {"descriptor": DESCRIPTOR, "network": {"hidden": list(TRAINING["hidden"])},
            # labels more than 1 eV/atom above the lowest are not graphene (a collapsed
            # snapshot of an early committee's MD): left out of every training alike
            "data": {"validation_fraction": 0.1, "seed": 1, "max_energy_above_min": 1.0},
            "training": {"optimizer": TRAINING["optimizer"], "epochs": epochs,
                         "committee": committee, "threads": 1, "seed": 1, "force_weight": 0.1}}


def _train_committee(files: list[str], out: Path, epochs: int) -> Path:
    """A committee of 2 trained from scratch on ``files`` (skipped when done)."""
    from hdnnp.training import train

    model = out / "model.json"
    metrics = out / "metrics.json"
    if model.exists() and metrics.exists():
        return model
    cfg = _train_section(epochs)
    cfg["data"] = {**cfg["data"], "train": files, "test_fraction": 0.0}
    cfg["output"] = str(out)
    cfg["figures"] = False
    train(cfg, resume=(out / "config.json").exists(), progress=False, log=None)
    return model


def _errors(model_path: Path, test: dict) -> dict:
    from hdnnp.active_learning.loop import evaluate
    from hdnnp.data import load_dataset
    from hdnnp.potential import load_potential

    model = load_potential(model_path)
    out = {}
    both_e, both_f, n_e, n_f = 0.0, 0.0, 0, 0
    for part, path in test.items():
        ds = load_dataset(path)
        r = evaluate(model, ds)
        out[part] = r
        n = r["n_structures"]
        both_e += r["energy_mae_meV_per_atom"] * n
        both_f += r["force_rmse_eV_per_A"] ** 2 * n
        n_e += n
        n_f += n
    out["energy_mae_meV_per_atom"] = both_e / n_e
    out["force_rmse_eV_per_A"] = math.sqrt(both_f / n_f)
    out["energy_mae_max_part_meV_per_atom"] = max(out[p]["energy_mae_meV_per_atom"]
                                                  for p in test)
    return out


def _ratio(n_loop: int, e_loop: float, curve: list[tuple[int, float]]) -> dict:
    """Labels the loop needed / labels random labelling needs for the loop's test error
    (log-log interpolation of the random learning curve between measured sizes)."""
    curve = sorted(curve)
    for (n0, e0), (n1, e1) in itertools.pairwise(curve):
        if e0 >= e_loop >= e1:
            t = (math.log(e_loop) - math.log(e0)) / (math.log(e1) - math.log(e0)) \
                if e1 != e0 else 0.0
            n_star = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
            return {"value": n_loop / n_star, "bound": "interpolated",
                    "random_labels_needed": n_star}
    if curve[0][1] <= e_loop:
        return {"value": n_loop / curve[0][0], "bound": "lower bound (random reaches the "
                "loop's error with its fewest labels measured)",
                "random_labels_needed": f"<= {curve[0][0]}"}
    return {"value": n_loop / curve[-1][0], "bound": "upper bound (random does not reach "
            "the loop's error with its most labels measured)",
            "random_labels_needed": f"> {curve[-1][0]}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(REPO / "runs" / "bench-active-learning"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--label-budget", type=int, default=120)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--optimizer", default="kalman",
                    help="optimizer of the loop and the baselines (default kalman; adam uses "
                         "hdnnp's cosine default 5e-3 -> 1e-5)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[10, 10])
    ap.add_argument("--loop-epochs", type=int, default=LOOP_EPOCHS,
                    help=f"epochs per loop iteration (default {LOOP_EPOCHS})")
    ap.add_argument("--baseline-epochs", type=int, default=BASELINE_EPOCHS,
                    help=f"epochs of the from-scratch trainings (default {BASELINE_EPOCHS})")
    ap.add_argument("--result", default=str(REPO / "bench" / "results" /
                                            "active-learning.json"))
    ap.add_argument("--smoke", action="store_true",
                    help="a minutes-long check of the script (2 MD runs, few labels); its "
                         "numbers mean nothing and go to the work directory only")
    args = ap.parse_args()
    TRAINING.update(optimizer=args.optimizer, hidden=args.hidden)
    import torch

    torch.set_num_threads(args.threads)
    from hdnnp.active_learning import learn
    from hdnnp.active_learning.config import validate_learn_config
    from hdnnp.data import load_dataset
    from hdnnp.fileio import atomic_write_text
    from hdnnp.io import read_structures
    from hdnnp.reference_data.calculators import ReferenceSettings
    from hdnnp.reference_data.labelling import label

    t0 = time.perf_counter()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    files = _split_bundled(work)
    seed = _seed(work)
    test = {"md": files["test-md"], "scaled": files["test-scaled"]}
    progress = not args.quiet and sys.stderr.isatty()
    log = print
    cfg = validate_learn_config({
        "seeds": [str(seed)], "initial": [str(files["initial"])],
        "validation": [str(files["validation"])],
        "explore": {"temperatures": [300, 1500] if args.smoke else [300, 700, 1100, 1500],
                    "scalings": [0.04] if args.smoke else [-0.08, -0.04, 0.0, 0.04, 0.08],
                    "timestep_fs": 0.5,
                    "equilibration_steps": 40, "interval_steps": 20, "snapshots": 3,
                    "seed": 1},
        "select": {"score": "max_force_dev", "lower": 0.1, "upper": 1.0,
                   "max_per_iteration": 20, "min_pair_distance": 1.1},
        "label": {**REF, "workers": 1},
        "train": _train_section(args.loop_epochs),
        "stop": {"accurate_fraction": 0.99, "label_budget": args.label_budget,
                 "max_iterations": 8},
        "output": str(work / "loop")}, "bench")
    t_loop = time.perf_counter()
    summary = learn(cfg, progress=progress, log=log)
    loop_wall = time.perf_counter() - t_loop
    n_init = summary["n_initial"]
    n_new = summary["labels_used"]
    final = Path(summary["final_model"])
    loop_err = _errors(final, test)
    log(f"loop: {summary['iterations']} iterations, {n_new} labels; test {loop_err}")

    # the loop's labels, retrained from scratch like the baseline
    last = int(summary["iterations"]) - 1
    al_data = work / "loop" / f"iter-{last:03d}" / "train-data.extxyz"
    cold = _train_committee([str(al_data)], work / "loop-cold", epochs=args.baseline_epochs)
    cold_err = _errors(cold, test)
    log(f"loop labels, cold start: test {cold_err}")

    # random baseline from the explored pool
    pool = []
    for j in range(last + 1):
        pool.extend(read_structures(work / "loop" / f"iter-{j:03d}" / "explored.extxyz"))
    rng = np.random.default_rng(7)
    order = rng.permutation(len(pool))
    sizes = [n for n in (n_new, 2 * n_new) if 0 < n <= len(pool)]
    todo = [pool[k] for k in order[:max(sizes, default=0)]]
    for a in todo:
        a.calc = None
        a.info.pop("source", None)
    db = work / "random" / "labels.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    settings = ReferenceSettings(**REF)
    if todo:
        label(todo, db, settings, workers=1, progress=progress,
              source="random from explored pool")
    from hdnnp.data import save_dataset
    from hdnnp.reference_data.labelling import load_labelled

    labelled = load_labelled(db) if todo else []
    initial = load_dataset(files["initial"])
    baseline = []
    for n in sizes:
        chosen = [a for a in labelled if int(a.info["index"]) < n]
        path = work / "random" / f"train-{n}.extxyz"
        if not path.exists():
            save_dataset(path, list(initial.structures) + chosen,
                         reference_energies=initial.reference_energies)
        model = _train_committee([str(path)], work / "random" / f"committee-{n}",
                                 epochs=args.baseline_epochs)
        err = _errors(model, test)
        baseline.append({"labels_used": n_init + n, "labels_ok": len(chosen),
                         "test": err})
        log(f"random {n}: test {err}")
    curve = [(b["labels_used"], b["test"]["energy_mae_meV_per_atom"]) for b in baseline]
    none = {"value": None, "bound": "no random baseline (the loop made no labels)"}
    ratio = _ratio(n_init + n_new, cold_err["energy_mae_meV_per_atom"], curve) if curve \
        else none
    ratio_warm = _ratio(n_init + n_new, loop_err["energy_mae_meV_per_atom"], curve) \
        if curve else none
    same = baseline[0]["test"] if baseline else None
    result = {
        "labels_used": n_init + n_new, "labels_initial": n_init, "labels_loop": n_new,
        "iterations": summary["iterations"], "stop": summary["status"],
        "final_test_energy_mae_meV_per_atom": loop_err["energy_mae_meV_per_atom"],
        "final_test_force_rmse_eV_per_A": loop_err["force_rmse_eV_per_A"],
        "final_test_energy_mae_md_meV_per_atom": loop_err["md"]["energy_mae_meV_per_atom"],
        "final_test_energy_mae_scaled_meV_per_atom":
            loop_err["scaled"]["energy_mae_meV_per_atom"],
        "loop_cold_test_energy_mae_meV_per_atom": cold_err["energy_mae_meV_per_atom"],
        "loop_cold_test_force_rmse_eV_per_A": cold_err["force_rmse_eV_per_A"],
        "random_labels_used": n_init + n_new if same else None,
        "random_test_energy_mae_meV_per_atom": same["energy_mae_meV_per_atom"] if same
        else None,
        "random_test_force_rmse_eV_per_A": same["force_rmse_eV_per_A"] if same else None,
        "label_ratio_vs_random": ratio["value"], "label_ratio_kind": ratio["bound"],
        "label_ratio_vs_random_warm_loop": ratio_warm["value"],
        "label_ratio_warm_kind": ratio_warm["bound"],
        "target_met": bool(loop_err["energy_mae_max_part_meV_per_atom"] <= 1.0
                           and ratio["value"] is not None and ratio["value"] <= 0.5),
        "loop_test": loop_err, "loop_cold_test": cold_err, "random": baseline,
        "pool_size": len(pool), "history": summary["history"],
        "loop_wall_s": round(loop_wall, 1), "wall_s": round(time.perf_counter() - t0, 1),
        "settings": {"reference": REF, "descriptor": DESCRIPTOR, "network": args.hidden,
                     "optimizer": args.optimizer, "loop_epochs_per_iteration": args.loop_epochs,
                     "baseline_epochs": args.baseline_epochs, "committee": 2,
                     "explore": cfg.explore.model_dump(), "select": cfg.select.model_dump(),
                     "test_set": "40 graphene-A MD + 40 graphene-B scaled (|s| <= 0.08)"},
        "command": "OMP_NUM_THREADS=1 python bench/active_learning.py " + " ".join(sys.argv[1:])}
    out = (work / "smoke-result.json") if args.smoke else Path(args.result)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict | list)},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
