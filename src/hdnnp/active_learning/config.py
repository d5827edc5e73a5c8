"""Settings of ``hdnnp learn``: a YAML/JSON file (and command-line overrides), one schema.

Example (YAML; see ``examples/learn-graphene.yaml``)::

    seeds: [graphene.xyz]          # structures the MD starts from
    initial: [initial.extxyz]      # labelled structures of the first committee
    validation: [validation.extxyz]  # fixed labelled set: errors in every report
    explore:
      temperatures: [300, 700, 1100, 1500]   # K
      scalings: [-0.08, 0.0, 0.08]           # lattice scaling factors (1 + s)
      timestep_fs: 0.5
      equilibration_steps: 60
      interval_steps: 30
      snapshots: 4                           # kept per (seed, scaling, temperature) run
    select:
      score: max_force_dev         # eV/Å
      lower: 0.15                  # below: accurate
      upper: 1.0                   # above: unphysical / failed
      max_per_iteration: 20
    label:
      method: GFN1-xTB
      electronic_temperature: 3000
      workers: 1
    train:                         # an `hdnnp train` configuration without data.train/output
      descriptor: {kind: chebyshev, radial_rc: 6.0, radial_order: 8, angular_rc: 4.0,
                   angular_order: 4}
      network: {hidden: [10, 10]}
      training: {optimizer: kalman, epochs: 10, committee: 2, threads: 1}
    stop: {accurate_fraction: 0.99, label_budget: 200, max_iterations: 8}
    output: runs/learn

Units: temperatures K, times fs, force deviations eV/Å, energy spreads eV/atom.
Unknown keys are an error; every error is one line naming the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hdnnp.errors import HdnnpError, InputFileError

SCORES = ("max_force_dev", "energy_spread_per_atom", "extrapolation_count")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ExploreSettings(_Section):
    temperatures: list[float] = Field(default_factory=lambda: [300.0, 700.0, 1100.0, 1500.0],
                                      min_length=1, description="MD temperatures (K)")
    scalings: list[float] = Field(default_factory=lambda: [0.0], min_length=1, description=(
        "scale factors s of the seed structures (lattice vectors and coordinates by 1 + s; "
        "sheets keep their height), hdnnp.reference_data.augment.scale"))
    timestep_fs: float = Field(0.5, gt=0, description="MD time step (fs)")
    equilibration_steps: int = Field(60, ge=0, description="steps discarded per run")
    interval_steps: int = Field(30, ge=1, description="steps between kept snapshots")
    snapshots: int = Field(4, ge=1, description="snapshots kept per run")
    thermostat: Literal["langevin", "nose-hoover"] = "langevin"
    damping_fs: float = Field(100.0, gt=0, description="thermostat damping time (fs)")
    seed: int = Field(1, ge=0, description="seed of the velocities and the Langevin noise")

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v):
        if min(v) <= 0:
            raise ValueError("temperatures must be > 0 K")
        return v

    @field_validator("scalings")
    @classmethod
    def _scalings(cls, v):
        if min(v) <= -1:
            raise ValueError("scale factors must be > -1")
        return v


class SelectSettings(_Section):
    score: Literal["max_force_dev", "energy_spread_per_atom", "extrapolation_count"] = Field(
        "max_force_dev", description="the score of the trust window")
    lower: float = Field(0.15, ge=0, description=(
        "lower trust level: snapshots scoring below are accurate (not labelled)"))
    upper: float = Field(1.0, gt=0, description=(
        "upper trust level: snapshots scoring above are failed/unphysical (not labelled)"))
    max_per_iteration: int = Field(20, ge=1, description="candidates labelled per iteration")
    min_pair_distance: float = Field(0.0, ge=0, description=(
        "snapshots with two atoms closer than this (Å) are failed whatever their score"))
    min_distance: float = Field(0.0, ge=0, description=(
        "candidates closer than this (descriptor distance, features scaled to the training "
        "range) to a chosen or training structure are duplicates"))


class LabelSettings(_Section):
    method: str = "GFN1-xTB"
    electronic_temperature: float = Field(300.0, ge=0, description="tblite Fermi smearing (K)")
    accuracy: float = Field(1.0, gt=0)
    max_iterations: int = Field(300, ge=1)
    mixer_damping: float = Field(0.4, gt=0)
    charge: float = 0.0
    calculator_kwargs: dict[str, Any] = Field(default_factory=dict)
    workers: int = Field(1, ge=1, description="labelling processes (1 thread each)")
    scheduler: str | None = Field(None, description="dask.distributed scheduler address")
    in_process: bool = Field(False, description="label in this process (no workers)")

    def reference_settings(self):
        from hdnnp.reference_data.calculators import ReferenceSettings

        return ReferenceSettings(method=self.method,
                                 electronic_temperature=self.electronic_temperature,
                                 accuracy=self.accuracy, max_iterations=self.max_iterations,
                                 mixer_damping=self.mixer_damping, charge=self.charge,
                                 calculator_kwargs=dict(self.calculator_kwargs))


class StopSettings(_Section):
    accurate_fraction: float = Field(0.99, gt=0, le=1, description=(
        "stop when this fraction of the explored snapshots is accurate"))
    label_budget: int = Field(500, ge=0, description="labels the loop may make in all")
    max_iterations: int = Field(10, ge=1, description="iterations at most")


class LearnConfig(_Section):
    seeds: list[str] = Field(min_length=1, description="structure files the MD starts from")
    initial: list[str] = Field(min_length=1, description=(
        "labelled structures (files, labelling databases, bundled:NAME) of the first "
        "committee"))
    validation: list[str] = Field(default_factory=list, description=(
        "fixed labelled validation set: its errors are in every iteration's report"))
    explore: ExploreSettings = Field(default_factory=ExploreSettings)
    select: SelectSettings = Field(default_factory=SelectSettings)
    label: LabelSettings = Field(default_factory=LabelSettings)
    train: dict[str, Any] = Field(default_factory=dict, description=(
        "an hdnnp train configuration without data.train and output; training.committee "
        "(≥ 2) is the committee size; every member starts from its predecessor"))
    warm_start: bool = Field(True, description=(
        "start each member from the same member of the previous iteration (init_model)"))
    stop: StopSettings = Field(default_factory=StopSettings)
    output: str = Field("runs/learn", min_length=1, description="run directory")
    figures: bool = Field(True, description="draw each iteration's spread histogram")

    @field_validator("train")
    @classmethod
    def _train(cls, v):
        data = dict(v.get("data") or {})
        for key in ("train", "test"):
            if key in data:
                raise ValueError(f"data.{key} is set by hdnnp learn (the labels so far, the "
                                 "validation set)")
        if "output" in v:
            raise ValueError("output is set by hdnnp learn")
        committee = int((v.get("training") or {}).get("committee", 2))
        if committee < 2:
            raise ValueError("training.committee must be ≥ 2 (the committee spread is the "
                             "score)")
        train_config({**v, "data": data}, ["x.extxyz"], [], "x", source="train")
        return v

    @property
    def committee(self) -> int:
        return int((self.train.get("training") or {}).get("committee", 2))

    def with_overrides(self, **kw) -> LearnConfig:
        """A copy with dotted keys set (``{"stop.label_budget": 100}``)."""
        d = self.model_dump(mode="python")
        for dotted, value in kw.items():
            if value is None:
                continue
            node = d
            *parents, last = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
        return validate_learn_config(d, "command line")


def train_config(train: dict, files: list[str], test: list[str], output: str,
                 init_model: str | None = None, seed_offset: int = 0, source: str = "train"):
    """The :class:`hdnnp.training.config.TrainConfig` of one committee member."""
    from hdnnp.training.config import TrainConfig

    d = json.loads(json.dumps(train))
    data = dict(d.get("data") or {})
    data["train"] = list(files)
    data["test"] = list(test)
    if not test:
        data.setdefault("test_fraction", 0.0)
    d["data"] = data
    t = dict(d.get("training") or {})
    t["seed"] = int(t.get("seed", 1)) + seed_offset
    t["committee"] = 1
    t.pop("jobs", None)
    if init_model:
        t["init_model"] = init_model
    d["training"] = t
    d["output"] = output
    d.setdefault("figures", False)
    try:
        return TrainConfig.from_dict(d, source)
    except HdnnpError as exc:
        raise HdnnpError(f"train: {exc}") from None


def _format(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: {loc}: {msg}"


def validate_learn_config(d: dict, source: str = "configuration") -> LearnConfig:
    if not isinstance(d, dict):
        raise HdnnpError(f"{source}: expected a mapping of settings")
    try:
        return LearnConfig.model_validate(d)
    except ValidationError as exc:
        raise HdnnpError(_format(exc, source)) from None


def load_learn_config(path: str | Path) -> LearnConfig:
    """Read a YAML (or ``.json``) configuration.  Paths in it are relative to the current
    directory, as in ``hdnnp train`` configurations."""
    path = Path(path)
    if not path.is_file():
        raise HdnnpError(f"{path}: no such configuration file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read ({exc})") from None
    try:
        if path.suffix.lower() == ".json":
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text)
    except (json.JSONDecodeError, Exception) as exc:  # yaml.YAMLError and friends
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputFileError(path, f"not valid YAML/JSON ({str(exc).splitlines()[0]})",
                             None if line is None else line + 1) from None
    if d is None:
        raise InputFileError(path, "empty configuration file")
    try:
        return validate_learn_config(d, str(path))
    except HdnnpError as exc:
        raise InputFileError(path, str(exc).removeprefix(f"{path}: ")) from None
