"""Training configuration: a YAML/TOML file or command-line flags.

Example (YAML)::

    data:
      train: [../shared/data/aenet-TiO2/TiO2-xsf.tar.gz]
      reference_energies: {O: -432.503149303, Ti: -1604.604515075}
      max_energy_above_min: 1.0     # eV/atom: drop very high-energy structures
      n_structures: 1000            # draw 1000 with data.seed
      test_fraction: 0.1
      seed: 1
    descriptor:
      kind: chebyshev
      radial_rc: 8.0
      radial_order: 16
      angular_rc: 6.5
      angular_order: 4
    network:
      hidden: [15, 15]
      activation: tanh
    training:
      optimizer: adam
      epochs: 300
      batch_size: 16
      learning_rate: 0.002
      force_weight: 0.1
    output: runs/tio2

Every key is documented in the dataclasses below.  Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdnnp.errors import HdnnpError, InputFileError


@dataclass
class DataConfig:
    #: structure files/directories/archives, or ``bundled:NAME`` for a bundled data set
    train: list[str] = field(default_factory=list)
    #: optional separate test files (otherwise ``test_fraction`` of ``train`` is held out)
    test: list[str] = field(default_factory=list)
    #: file format (None: guess from the name)
    format: str | None = None
    #: units of n2p2 input.data files without an input.nn beside them (e.g. bohr,
    #: hartree); other formats are read in Å and eV
    length_unit: str | None = None
    energy_unit: str | None = None
    #: isolated-atom energies (eV) per element; default: those stored with the data set
    reference_energies: dict[str, float] | None = None
    #: drop structures whose cohesive energy per atom exceeds this (eV/atom)
    max_energy_per_atom: float | None = None
    #: drop structures more than this above the lowest cohesive energy per atom (eV/atom)
    max_energy_above_min: float | None = None
    #: draw this many structures (after filtering) with ``seed``
    n_structures: int | None = None
    test_fraction: float = 0.1
    #: seed of sampling and train/test split
    seed: int = 1


@dataclass
class NetworkConfig:
    hidden: list[int] = field(default_factory=lambda: [15, 15])
    #: one activation for all hidden layers or one per layer (linear, tanh, sigmoid,
    #: mtanh, twist, softplus, relu, ...)
    activation: str | list[str] = "tanh"


@dataclass
class OptimConfig:
    #: adam (mini-batch), lbfgs (full batch), sgd (online/mini-batch gradient descent
    #: with momentum)
    optimizer: str = "adam"
    epochs: int = 200
    #: structures per mini-batch (adam, sgd)
    batch_size: int = 32
    learning_rate: float = 1e-3
    #: final learning rate of the cosine schedule (adam, sgd); None: constant rate
    learning_rate_final: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    #: loss = energy_weight * <(ΔE/N)^2> + force_weight * <ΔF_component^2> (eV, Å)
    energy_weight: float = 1.0
    force_weight: float = 0.1
    #: fraction of training structures whose forces enter the loss (0: energies only)
    force_fraction: float = 1.0
    #: stop when the test loss has not improved for this many epochs (None: never)
    early_stopping_patience: int | None = None
    #: after ``epochs`` epochs of the main optimiser, refine the best model so far with
    #: this many full-batch L-BFGS epochs (e.g. Adam first, then L-BFGS)
    refine_epochs: int = 0
    #: L-BFGS history size and iterations per epoch
    lbfgs_history: int = 50
    lbfgs_iterations_per_epoch: int = 1
    #: start from the weights and normalisation of this potential file (same elements
    #: and descriptor), e.g. to refine an Adam fit with L-BFGS
    init_model: str | None = None
    #: seed of weight initialisation and mini-batch order
    seed: int = 1
    dtype: str = "float64"
    #: storage precision of the pair Jacobians
    jacobian_dtype: str = "float32"
    #: auto (CUDA if available), cpu, cuda, cuda:1, ...
    device: str = "auto"
    #: torch CPU threads (None: torch's default)
    threads: int | None = None
    #: stop training once the run (set-up included) has lasted this long (s); the best
    #: model is kept and the final evaluation follows
    max_time_s: float | None = None
    #: evaluate the exact training-set metrics every this many epochs (others: running)
    eval_train_every: int = 1
    #: train a committee of this many members (weight/mini-batch seeds ``seed``,
    #: ``seed + 1``, ...; same data split) saved as one potential whose energy is their
    #: mean and whose spread estimates the uncertainty
    committee: int = 1
    #: committee members trained at once, each in its own process (with ``threads``
    #: threads each, 1 when unset); ``max_time_s`` applies to each member
    jobs: int = 1


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    #: descriptor configuration (``kind`` plus its parameters; see hdnnp.descriptors) or
    #: ``{"kind": "chebyshev"|"behler", "cutoff": 6.0, "size": 8}`` for defaults
    descriptor: dict[str, Any] = field(default_factory=lambda: {
        "kind": "chebyshev", "cutoff": 6.5, "size": 8})
    network: NetworkConfig = field(default_factory=NetworkConfig)
    training: OptimConfig = field(default_factory=OptimConfig)
    #: run directory (log, checkpoints, model, report)
    output: str = "runs/hdnnp"
    #: draw the report figures at the end (metrics.json is always written)
    figures: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "configuration") -> TrainConfig:
        if not isinstance(d, dict):
            raise HdnnpError(f"{source}: expected a mapping at the top level")
        kwargs = {}
        sections = {"data": DataConfig, "network": NetworkConfig, "training": OptimConfig}
        for key, value in d.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value, f"{source}: [{key}]")
            elif key == "descriptor":
                if not isinstance(value, dict) or "kind" not in value:
                    raise HdnnpError(f"{source}: descriptor needs a 'kind'")
                kwargs[key] = dict(value)
            elif key == "output":
                kwargs[key] = str(value)
            elif key == "figures":
                kwargs[key] = bool(value)
            else:
                raise HdnnpError(f"{source}: unknown key {key!r} (known: data, descriptor, "
                                 "network, training, output, figures)")
        cfg = cls(**kwargs)
        for attr in ("train", "test"):
            v = getattr(cfg.data, attr)
            if isinstance(v, str):
                setattr(cfg.data, attr, [v])
        return cfg


def _build(cls, value, where: str):
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise HdnnpError(f"{where}: expected a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - names
    if unknown:
        raise HdnnpError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(names))})")
    return cls(**value)


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML (.yaml/.yml), TOML (.toml) or JSON configuration file."""
    path = Path(path)
    if not path.exists():
        raise HdnnpError(f"{path}: no such configuration file")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            d = tomllib.loads(text)
        elif suffix == ".json":
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text)
    except Exception as exc:  # parsers raise their own error types
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        line = line + 1 if line is not None else getattr(exc, "lineno", None)
        raise InputFileError(path, f"cannot parse configuration ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0]})", line) from None
    return TrainConfig.from_dict(d or {}, str(path))
