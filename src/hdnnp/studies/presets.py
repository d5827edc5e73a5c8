"""The thesis's convergence studies as ready-made specifications (``hdnnp study --preset``).

Each preset varies one thing on the bundled graphene set A (GFN1-xTB, NVT MD at
300–1000 K; ``DATA.md``) with a short default training (:func:`graphene_base`: 200
structures split 160/20/20, Chebyshev 6.0 Å/8 + 4.0 Å/4, 10-10 tanh, L-BFGS 60 epochs),
so that a study of 4–6 settings runs in minutes per run on one core; ``--set`` and
``--epochs`` make it as long as a production study should be.  Thesis sections:

================  ===========================================================  =========
preset            varied                                                       thesis
================  ===========================================================  =========
cutoff            descriptor cutoff 3–7 Å                                      §3.4.1
n-functions       number of descriptor functions (radial and angular orders)  §3.4.2
eta-range         Behler G2/G4 with the largest η 1–8 Å⁻² (30 G2 functions)    §4.1.2
n-radial          number of radial functions 1–8, no angular ones              §4.1.2
train-size        training structures 40–400                                   §3.4.5
optimizer-seed    Adam, L-BFGS, Levenberg–Marquardt, Kalman × 3 seeds          §3.4.4
activation        linear, tanh, sigmoid, softplus                              §4.1.2
capacity          hidden layers 2 … 20-20                                      §4.1.2
interval          time between MD snapshots 273, 546, 1092 fs (graphene: 124)   §3.4.3
augmentation      0, 25, 50, 100 % of 200 structures scaled (sets A and B)     fig. 4.10
================  ===========================================================  =========

The H2-dimer toy model of §4.1.2 is its own preset (``h2-toy``, :mod:`hdnnp.studies.h2`):
its data are made, not bundled.  ``interval`` takes every 1st, 2nd, 4th snapshot of each
bundled trajectory (sampled every 273 fs, as the thesis's) and the same number of those
per trajectory (what every 4th leaves of the shortest: 31 for graphene-A), so every run
has the same number of structures and only the time between them changes.
``augmentation`` mixes set B's scaled structures with set A's MD snapshots (``--data``
names set A; its ``-B`` twin is taken beside it).
"""

from __future__ import annotations

import copy

from hdnnp.errors import HdnnpError
from hdnnp.studies.spec import StudySpec

__all__ = ["PRESETS", "graphene_base", "preset_spec"]


def graphene_base(epochs: int = 60, data: str = "bundled:graphene-A") -> dict:
    """The short training the presets start from (a configuration dict); ``data``: the
    data set (another bundled set A for the other materials)."""
    return {
        "data": {"train": [data], "n_structures": 200,
                 "validation_fraction": 0.1, "test_fraction": 0.1, "seed": 1},
        "descriptor": {"kind": "chebyshev", "radial_rc": 6.0, "radial_order": 8,
                       "angular_rc": 4.0, "angular_order": 4},
        "network": {"hidden": [10, 10], "activation": "tanh"},
        # L-BFGS as the thesis's studies (§3.4, §4.2: "optimized with the l-BFGS
        # optimizer"); converges much further in a short study than Adam
        "training": {"optimizer": "lbfgs", "epochs": epochs, "force_weight": 0.1,
                     "eval_train_every": 10},
        "figures": False,
    }


def _behler_g2_g4(eta_max: float, n_g2: int = 30, cutoff: float = 6.5,
                  element: str = "C") -> dict:
    """30 G2 (η log-spaced from 0.003214 Å⁻² to ``eta_max``, r_s = 0; the thesis's ænet
    default range starts at 0.003214) and 4 G4 (η = 0.005 Å⁻², ζ = 1, 4, λ = ±1)."""
    import numpy as np

    etas = np.geomspace(0.003214, eta_max, n_g2)
    funcs = [{"type": "G2", "center": element, "neighbours": [element], "eta": float(e),
              "rs": 0.0, "rc": cutoff} for e in etas]
    funcs += [{"type": "G4", "center": element, "neighbours": [element, element],
               "eta": 0.005, "zeta": z, "lambda": lam, "rc": cutoff}
              for z in (1.0, 4.0) for lam in (-1.0, 1.0)]
    return {"kind": "behler", "elements": [element], "functions": funcs}


def _spec(name: str, vary: dict, epochs: int, seeds, data: str, labels=None, names=None,
          base_changes=None) -> StudySpec:
    base = graphene_base(epochs, data)
    for section, values in (base_changes or {}).items():
        if isinstance(values, dict) and section != "descriptor":
            base[section].update(values)
        else:
            base[section] = copy.deepcopy(values)
    return StudySpec(name=name, base=base, vary=vary, seeds=seeds, labels=labels or {},
                     names=names or {})


def preset_spec(name: str, epochs: int | None = None, seeds=None,
                directory=None, data: str | None = None) -> StudySpec:
    """The specification of preset ``name`` (``epochs``/``seeds`` override its defaults;
    ``directory``: the study directory, where ``h2-toy`` keeps its data in ``data/``;
    ``data``: the training data instead of ``bundled:graphene-A``)."""
    if name not in PRESETS:
        raise HdnnpError(f"unknown study preset {name!r} (one of {', '.join(PRESETS)})")
    if name == "h2-toy":
        from pathlib import Path

        from hdnnp.studies.h2 import h2_toy_spec

        return h2_toy_spec(epochs, seeds, Path(directory or ".") / "data")
    return PRESETS[name](epochs, seeds, data or "bundled:graphene-A")


def _cutoff(epochs, seeds, data):
    return _spec("cutoff", {"cutoff": [3.0, 4.0, 5.0, 6.0, 7.0]}, epochs or 60, seeds or 1, data,
                 labels={"cutoff": "cutoff radius (Å)"})


def _n_functions(epochs, seeds, data):
    radial = [2, 4, 8, 12, 16]
    angular = [1, 2, 4, 6, 8]
    n = [r + 1 + a + 1 for r, a in zip(radial, angular)]
    return _spec("number of functions",
                 {"descriptor": [{"kind": "chebyshev", "radial_rc": 6.0, "radial_order": r,
                                  "angular_rc": 4.0, "angular_order": a}
                                 for r, a in zip(radial, angular)]},
                 epochs or 60, seeds or 1, data, labels={"descriptor": "functions per atom"},
                 names={"descriptor": [str(k) for k in n]})


def _eta_range(epochs, seeds, data):
    maxima = [1.0, 2.75, 4.75, 8.0]
    return _spec("eta range", {"descriptor": [_behler_g2_g4(m) for m in maxima]},
                 epochs or 60, seeds or 1, data, labels={"descriptor": "largest G2 η (Å⁻²)"},
                 names={"descriptor": [f"{m:g}" for m in maxima]})


def _n_radial(epochs, seeds, data):
    orders = [0, 1, 2, 3, 7]
    return _spec("number of radial functions",
                 {"descriptor": [{"kind": "chebyshev", "radial_rc": 6.0, "radial_order": o,
                                  "angular_rc": 4.0, "angular_order": 0} for o in orders]},
                 epochs or 60, seeds or 1, data, labels={"descriptor": "radial functions"},
                 names={"descriptor": [str(o + 1) for o in orders]})


def _train_size(epochs, seeds, data):
    # n_structures is drawn before the 80/10/10 split: 50 → 40 training structures
    return _spec("training-set size", {"n_structures": [50, 100, 200, 350, 500]},
                 epochs or 60, seeds or 1, data, labels={"n_structures": "structures (80 % train)"})


def _optimizer_seed(epochs, seeds, data):
    e = epochs or 60
    stages = [[{"optimizer": "adam", "epochs": e}],
              [{"optimizer": "lbfgs", "epochs": e}],
              [{"optimizer": "lm", "epochs": max(5, e // 4), "lm_subset": 40}],
              [{"optimizer": "kalman", "epochs": max(2, e // 10)}]]
    return _spec("optimizer × seed", {"training.stages": stages}, e, seeds or 3, data,
                 labels={"training.stages": "optimizer"},
                 names={"training.stages": ["adam", "lbfgs", "lm", "kalman"]})


def _activation(epochs, seeds, data):
    return _spec("activation", {"activation": ["linear", "tanh", "sigmoid", "softplus"]},
                 epochs or 60, seeds or 1, data)


def _capacity(epochs, seeds, data):
    return _spec("network capacity", {"hidden": [[2], [5], [10], [10, 10], [20, 20]]},
                 epochs or 60, seeds or 1, data, labels={"hidden": "hidden layers"})


def _interval(epochs, seeds, data):
    from hdnnp.data import load_datasets

    intervals = [1, 2, 4]
    # the same number of snapshots per trajectory for every interval: as many as the
    # largest interval leaves of the shortest trajectory (graphene-A: 125 // 4 = 31)
    shortest = min(len(t) for t in load_datasets([data]).trajectories().values())
    return _spec("time between snapshots", {"snapshot_interval": intervals},
                 epochs or 60, seeds or 1, data,
                 labels={"snapshot_interval": "snapshot interval (× the data's own)"},
                 base_changes={"data": {"n_structures": None, "snapshots_per_trajectory":
                                        max(1, shortest // intervals[-1])}})


def _augmentation(epochs, seeds, data):
    twin = data[:-2] + "-B" if data.endswith("-A") else data
    return _spec("augmented fraction", {"augmented_fraction": [0.0, 0.25, 0.5, 1.0]},
                 epochs or 60, seeds or 1, data,
                 labels={"augmented_fraction": "fraction of the data scaled"},
                 base_changes={"data": {"train": sorted({data, twin}),
                                        "n_structures": 200}})


def _h2_toy(epochs, seeds, data):  # built by preset_spec, which knows the study directory
    raise NotImplementedError


PRESETS = {"cutoff": _cutoff, "n-functions": _n_functions, "eta-range": _eta_range,
           "n-radial": _n_radial, "train-size": _train_size,
           "optimizer-seed": _optimizer_seed, "activation": _activation,
           "capacity": _capacity, "interval": _interval, "augmentation": _augmentation,
           "h2-toy": _h2_toy}
