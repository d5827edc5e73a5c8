"""Training configuration: a YAML/TOML/JSON file or command-line flags, one validated schema.

Example (YAML)::

    data:
      train: [../shared/data/aenet-TiO2/TiO2-xsf.tar.gz]
      reference_energies: {O: -432.503149303, Ti: -1604.604515075}
      max_energy_above_min: 1.0     # eV/atom: drop very high-energy structures
      n_structures: 1000            # draw 1000 with data.seed
      validation_fraction: 0.1      # best model and early stopping
      test_fraction: 0.1            # evaluated once, at the end
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
      force_weight: 0.1
      batch_size: 16
      stages:                       # a chain: each stage starts from the best model so far
        - {optimizer: adam, epochs: 300, learning_rate: 0.002, learning_rate_final: 1.0e-5}
        - {optimizer: lm, epochs: 20}
    output: runs/tio2

Every key, with its type, range, default and meaning, is a field of the models below;
``hdnnp train --help-config`` prints them (the schema is the documentation).  Unknown
keys are an error with a "did you mean" hint.  Every error is one line
``{file or 'command line'}[, line N]: {dotted.key}: {message}``, raised as
:class:`~hdnnp.errors.HdnnpError` (:class:`~hdnnp.errors.InputFileError` for files), so
that a wrong value is refused before minutes of set-up rather than after.

Why pydantic (v2): it is well kept and typed, declares types, ranges (``ge``/``gt``/``lt``)
and enumerations (``Literal``) next to the field's documentation, refuses NaN/inf
(``allow_inf_nan=False``) and unknown keys (``extra="forbid"``), and reports each error
with its location (``("training", "epochs")``), which becomes the dotted key and, for
YAML, the line.  Its lax mode converts numeric strings ("1e-3": PyYAML reads YAML 1.1,
where ``1e-3`` is not a float) to numbers, which is the result a user expects.
Alternatives considered: attrs + cattrs (typed classes and structuring, but ranges and
error locations by hand; cattrs' nested "exception groups" are not one line), jsonschema
(validates but does not build typed objects or convert "1e-3"; a second description of
the same classes), marshmallow (schemas separate from the classes, untyped attributes).
Where pydantic's lax mode is too lax we are strict: ``true``/``false`` are not numbers.

Numbers: lengths Å, energies eV, times s.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hdnnp.errors import HdnnpError, InputFileError

#: Upper bound of counts (epochs, batch size, threads, ...): a C ``int``.
MAX_COUNT = 2**31 - 1
#: Bounds of the network (the potential file loader refuses larger ones).
MAX_LAYERS = 100
MAX_WIDTH = 10_000
MAX_COMMITTEE = 1000
#: Seeds: numpy's generators need non-negative seeds, torch's fit 64 bits.
MAX_SEED = 2**63 - 1 - MAX_COMMITTEE
#: Descriptor sizes (refused before anything is allocated).
MAX_CHEBYSHEV_ORDER = 1000
MAX_DEFAULT_SIZE = 1000
MAX_FUNCTIONS = 100_000
MAX_DESCRIPTOR_ITEMS = 1_000_000

ACTIVATION_HELP = ("linear, tanh, sigmoid, mtanh, twist, softplus, relu, gaussian, cos, "
                   "revlogistic, exp, harmonic, or n2p2's letters")


# ------------------------------------------------------------------ value checks
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 4, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 50, 40, 50


def _short(value) -> str:
    """A short repr for messages (bounded work even for huge shared YAML structures)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # e.g. an integer of more digits than int -> str allows
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _no_bool(value):
    """``true``/``false`` are not numbers (pydantic's lax mode would take them as 1/0)."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_number", "expected a number, got {value}",
                                  {"value": str(value).lower()})
    return value


def _pathlike(value):
    """Path objects (Python callers) as strings."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _str_list(value):
    """A single file name is a list of one."""
    value = _pathlike(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [_pathlike(v) for v in value]
    return value


def _hidden(value):
    """Hidden-layer widths: a list of integers (a bare integer is one layer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        raise PydanticCustomError("hidden_str", "expected a list of layer widths such as "
                                  "[20, 20], got the string {value}", {"value": _short(value)})
    return value


def _output(value):
    value = _pathlike(value)
    if value is None:
        raise PydanticCustomError("output_null", "must be a run directory, not null")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _section(value):
    """An empty section (``training:`` with nothing under it) means all defaults."""
    return {} if value is None else value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]
Count = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=MAX_COUNT)]
Seed = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_SEED)]
def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


NonEmptyStr = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]
FileList = Annotated[list[NonEmptyStr], BeforeValidator(_str_list)]
Width = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=MAX_WIDTH)]


def _subkey_error(key: str, message: str) -> PydanticCustomError:
    """An error about ``key`` inside the field being validated (``descriptor.<key>``)."""
    return PydanticCustomError("hdnnp_subkey", "{key}: {message}",
                               {"key": key, "message": message})


def _hint(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def _check_element(symbol) -> str:
    from ase.data import chemical_symbols

    if not isinstance(symbol, str) or symbol not in chemical_symbols:
        close = difflib.get_close_matches(str(symbol), chemical_symbols, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PydanticCustomError("element", "{value} is not a chemical element symbol{hint}",
                                  {"value": _short(symbol), "hint": hint})
    return symbol


Element = Annotated[str, BeforeValidator(_check_element)]


# ------------------------------------------------------------------ sections
class _Section(BaseModel):
    """Common behaviour: unknown keys refused, assignments validated (a wrong value assigned
    raises a one-line :class:`HdnnpError`).  Validate user data with
    :meth:`TrainConfig.from_dict`; no ``__init__`` override here: pydantic would call it for
    nested sections, and the error of a section must reach ``from_dict`` whole."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    #: the section's name in the file ("" for the top level)
    section: ClassVar[str] = ""

    def __setattr__(self, name, value):
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise HdnnpError(_format_errors(exc, "configuration", self.section)[0]) from None


class DataConfig(_Section):
    section: ClassVar[str] = "data"

    train: FileList = Field(default_factory=list, description=(
        "structure files/directories/archives, or bundled:NAME for a bundled data set"))
    test: FileList = Field(default_factory=list, description=(
        "optional separate test files (otherwise test_fraction of train is held out)"))
    validation: FileList = Field(default_factory=list, description=(
        "optional separate validation files (otherwise validation_fraction of train is held "
        "out); the validation set chooses the best model and stops early, the test set is "
        "evaluated once at the end"))
    format: NonEmptyStr | None = Field(None, description="file format (null: guess from the "
                                       "name)")
    length_unit: NonEmptyStr | None = Field(None, description=(
        "length unit of n2p2 input.data files without an input.nn beside them (e.g. bohr); "
        "other formats are read in Å"))
    energy_unit: NonEmptyStr | None = Field(None, description=(
        "energy unit of n2p2 input.data files without an input.nn beside them (e.g. "
        "hartree); other formats are read in eV"))
    reference_energies: dict[Element, Float] | None = Field(None, description=(
        "isolated-atom energies (eV) per element symbol; null: those stored with the data "
        "set"))
    max_energy_per_atom: Float | None = Field(None, description=(
        "drop structures whose cohesive energy per atom exceeds this (eV/atom)"))
    max_energy_above_min: Annotated[Float, Field(ge=0)] | None = Field(None, description=(
        "drop structures more than this above the lowest cohesive energy per atom "
        "(eV/atom)"))
    where: list[NonEmptyStr] = Field(default_factory=list, description=(
        "keep the structures whose info satisfies every condition, KEY=VALUE or "
        "KEY<OP>VALUE with OP one of =, !=, <, <=, >, >= (e.g. [augmentation=none, "
        "temperature_K<=500])"))
    snapshot_interval: Count | None = Field(None, description=(
        "keep every this-many-th MD snapshot of each trajectory (ordered by md_step; "
        "thesis 3.4.3: the time between snapshots); null: all"))
    snapshots_per_trajectory: Count | None = Field(None, description=(
        "keep the first this many (after snapshot_interval) snapshots of each MD "
        "trajectory; null: all"))
    augmented_fraction: Annotated[Float, Field(ge=0, le=1)] | None = Field(None, description=(
        "with n_structures: this fraction of the drawn structures augmented (augmentation "
        "other than none), the rest MD snapshots (thesis fig. 4.10); null: drawn at random"))
    n_structures: Count | None = Field(None, description=(
        "draw this many structures (after filtering) with seed; null: all"))
    validation_fraction: Float = Field(0.1, ge=0, lt=1, description=(
        "fraction of the data held out as the validation set (best model, early stopping), "
        "in [0, 1); 0: the training loss chooses"))
    test_fraction: Float = Field(0.1, ge=0, lt=1, description=(
        "fraction of the data held out as the test set (evaluated once, at the end), in "
        "[0, 1)"))
    seed: Seed = Field(1, description="seed of sampling and the train/validation/test split")

    @model_validator(mode="after")
    def _fractions(self):
        if self.augmented_fraction is not None and self.n_structures is None:
            raise _subkey_error("augmented_fraction", "needs data.n_structures (the size of "
                                "the mixture)")
        from hdnnp.data import parse_where

        for condition in self.where:
            try:
                parse_where(condition)
            except HdnnpError as exc:
                raise _subkey_error("where", str(exc)) from None
        held = (0 if self.test else self.test_fraction) + (
            0 if self.validation else self.validation_fraction)
        if held >= 1:
            raise _subkey_error("validation_fraction", f"validation_fraction + test_fraction "
                                f"= {held:g} leaves no training data (must be < 1)")
        return self

    @field_validator("length_unit", "energy_unit")
    @classmethod
    def _unit(cls, value, info):
        if value is not None:
            from hdnnp.units import energy_factor, length_factor

            factor = length_factor if info.field_name == "length_unit" else energy_factor
            try:
                factor(value)
            except HdnnpError as exc:
                raise ValueError(str(exc)) from None
        return value


class NetworkConfig(_Section):
    section: ClassVar[str] = "network"

    hidden: Annotated[list[Width], BeforeValidator(_hidden), Field(max_length=MAX_LAYERS)] = \
        Field(default_factory=lambda: [15, 15], description=(
            f"hidden-layer widths (each 1-{MAX_WIDTH}), e.g. [15, 15]; [] is a linear model"))
    activation: str | list[str] = Field("tanh", description=(
        "one activation for all hidden layers or one per layer: " + ACTIVATION_HELP))

    @field_validator("activation", mode="plain")
    @classmethod
    def _activation(cls, value):
        from hdnnp.activations import canonical_activation

        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list | tuple):
            raise PydanticCustomError("activation_type", "expected a name or a list of names "
                                      "(" + ACTIVATION_HELP + ")")
        for k, name in enumerate(names):
            where = "" if isinstance(value, str) else f"[{k}]"
            if not isinstance(name, str):
                raise _subkey_error(where, f"expected an activation name, got {_short(name)}")
            try:
                canonical_activation(name)
            except HdnnpError as exc:
                raise _subkey_error(where, str(exc)) from None
        return value if isinstance(value, str) else list(value)

    @model_validator(mode="after")
    def _layers_match(self):
        if not isinstance(self.activation, str) and len(self.activation) != len(self.hidden):
            raise _subkey_error("activation", f"{len(self.hidden)} hidden layer(s) need as "
                                f"many activations, got {len(self.activation)}")
        return self


class OptimConfig(_Section):
    section: ClassVar[str] = "training"

    optimizer: Literal["adam", "lbfgs", "sgd", "lm", "kalman"] = Field("adam", description=(
        "adam (mini-batch), lbfgs (full batch), sgd (online/mini-batch gradient descent with "
        "momentum; batch_size 1 is ænet's online_sd with learning_rate = gamma, momentum = "
        "alpha), lm (Levenberg-Marquardt, one iteration per epoch), kalman (n2p2's "
        "element-decoupled extended Kalman filter)"))
    epochs: Int = Field(200, ge=0, le=MAX_COUNT, description=(
        "epochs of the optimizer (at least 1, or 0 with refine_epochs >= 1)"))
    # The defaults (Adam 5e-3 -> 1e-5 over the epochs, 16 structures per step) reach
    # 0.2-0.3 meV/atom on the bundled sets A in 200 epochs; a constant 1e-3 stopped at
    # 1.5-3.3 meV/atom, still improving (docs/benchmarks.md, bundled materials).
    batch_size: Count = Field(16, description="structures per mini-batch (adam, sgd)")
    learning_rate: Float = Field(5e-3, ge=0, description=(
        "learning rate (adam, sgd; the first of the cosine schedule); 0 keeps the weights "
        "(evaluation only)"))
    learning_rate_final: Annotated[Float, Field(ge=0)] | None = Field(1e-5, description=(
        "final learning rate of the cosine schedule (adam, sgd); null: constant rate"))
    momentum: Float = Field(0.9, ge=0, lt=1, description="momentum of sgd, in [0, 1)")
    weight_decay: Float = Field(0.0, ge=0, description="L2 weight decay (adam, sgd)")
    energy_weight: Float = Field(1.0, ge=0, description=(
        "loss = energy_weight * <(dE/N)^2> + force_weight * <dF_component^2> (eV, Å)"))
    force_weight: Float = Field(0.1, ge=0, description=(
        "weight of the force term of the loss (0: energies only)"))
    force_fraction: Float = Field(1.0, ge=0, le=1, description=(
        "fraction of training structures whose forces enter the loss (0: energies only)"))
    early_stopping_patience: Count | None = Field(None, description=(
        "end the stage when the validation loss has not improved for this many epochs "
        "(null: never)"))
    refine_epochs: Int = Field(0, ge=0, le=MAX_COUNT, description=(
        "after epochs of the main optimiser, refine the best model so far with this many "
        "full-batch L-BFGS epochs (short for stages [optimizer, lbfgs])"))
    stages: list[StageConfig] = Field(default_factory=list, description=(
        "a chain of optimizers, e.g. [{optimizer: adam, epochs: 300}, {optimizer: lm, "
        "epochs: 20}]: each stage starts from the best model so far and may set its own "
        "optimizer settings (learning_rate, learning_rate_final, batch_size, momentum, "
        "weight_decay, early_stopping_patience, lbfgs_*, lm_*, kalman_*); "
        "empty: one stage of optimizer for epochs (then refine_epochs of lbfgs)"))
    lbfgs_history: Count = Field(50, description="L-BFGS history size")
    lbfgs_iterations_per_epoch: Count = Field(1, description="L-BFGS iterations per epoch")
    lm_mu: Float = Field(1e-2, gt=0, description=(
        "Levenberg-Marquardt: initial damping mu of (J^T J + mu diag(J^T J)) step = -J^T r"))
    lm_mu_increase: Float = Field(10.0, gt=1, description=(
        "Levenberg-Marquardt: factor on mu after a step that does not lower the loss"))
    lm_mu_decrease: Float = Field(0.1, gt=0, lt=1, description=(
        "Levenberg-Marquardt: factor on mu after a step that lowers the loss"))
    lm_force_rows: Literal["auto", "components", "structure"] = Field("auto", description=(
        "Levenberg-Marquardt force residuals: one per force component (exact Gauss-Newton), "
        "one per structure (|dF_s|, for large sets), or auto (components up to 20,000 "
        "components per iteration)"))
    lm_subset: Count | None = Field(None, description=(
        "Levenberg-Marquardt: structures per iteration, drawn afresh each epoch (null: all); "
        "with forces on a large set, a subset small enough for exact component rows "
        "converges far better than one row per structure (docs/benchmarks.md)"))
    lm_block_atoms: Count = Field(512, description=(
        "Levenberg-Marquardt: atoms per Jacobian block (bounds memory: block_atoms x features "
        "x weights of one element)"))
    kalman_type: Literal["standard", "fading_memory"] = Field("standard", description=(
        "Kalman filter type (n2p2 kalman_type 0 = standard, 1 = fading memory)"))
    kalman_epsilon: Float = Field(1e-2, gt=0, description=(
        "Kalman filter: initial error covariance P = I / epsilon"))
    kalman_q0: Float = Field(1e-2, ge=0, description="Kalman filter: initial process noise q0")
    kalman_qtau: Float = Field(2.302, ge=0, description=(
        "Kalman filter: decay of q per epoch, q = max(q0 exp(-t qtau), qmin) (2.302: one "
        "order of magnitude per epoch)"))
    kalman_qmin: Float = Field(1e-6, ge=0, description="Kalman filter: smallest process noise")
    kalman_eta: Float = Field(1e-2, gt=0, description=(
        "standard Kalman filter: initial learning rate eta0 (measurement noise R = I/eta)"))
    kalman_etatau: Float = Field(2.302, ge=0, description=(
        "standard Kalman filter: growth of eta per epoch, eta = min(eta0 exp(t etatau), "
        "etamax)"))
    kalman_etamax: Float = Field(1.0, gt=0, description="standard Kalman filter: largest eta")
    kalman_lambda_short: Float = Field(0.96, gt=0, le=1, description=(
        "fading-memory Kalman filter: initial forgetting factor lambda"))
    kalman_nue_short: Float = Field(0.9987, gt=0, le=1, description=(
        "fading-memory Kalman filter: lambda <- nu lambda + 1 - nu per update"))
    kalman_streams: Count = Field(1, description=(
        "Kalman filter: structures whose observations form one update (multi-stream)"))
    kalman_force_fraction: Float = Field(0.02, gt=0, le=1, description=(
        "Kalman filter: fraction of each structure's force components observed per epoch "
        "(at least one; n2p2 short_force_fraction)"))
    init_model: str | None = Field(None, description=(
        "start from the weights and normalisation of this potential file (same elements and "
        "descriptor), e.g. to refine an Adam fit with L-BFGS"))
    seed: Seed = Field(1, description="seed of weight initialisation and mini-batch order")
    dtype: Literal["float64", "float32"] = Field("float64", description=(
        "precision of the network and the descriptors"))
    jacobian_dtype: Literal["float64", "float32"] = Field("float32", description=(
        "storage precision of the pair Jacobians"))
    device: NonEmptyStr = Field("auto", description="auto (CUDA if available), cpu, cuda, "
                                "cuda:1, ...")
    threads: Count | None = Field(None, description="torch CPU threads (null: torch's default)")
    max_time_s: Annotated[Float, Field(gt=0)] | None = Field(None, description=(
        "stop training once the run (set-up included) has lasted this long (s); the best "
        "model is kept and the final evaluation follows"))
    eval_train_every: Count = Field(1, description=(
        "evaluate the exact training-set metrics every this many epochs (others: running)"))
    committee: Int = Field(1, ge=1, le=MAX_COMMITTEE, description=(
        "train a committee of this many members (weight/mini-batch seeds seed, seed + 1, "
        "...; same data split) saved as one potential whose energy is their mean and whose "
        "spread estimates the uncertainty"))
    jobs: Count = Field(1, description=(
        "committee members trained at once, each in its own process (with threads threads "
        "each, 1 when unset); max_time_s applies to each member"))

    @field_validator("init_model", mode="before")
    @classmethod
    def _init_model(cls, value):
        return _pathlike(value)

    @model_validator(mode="after")
    def _consistent(self):
        if self.stages:
            # optimizer and epochs become the chain's first optimizer and total epochs (as
            # written back to config.json); values given that say otherwise are refused
            total = sum(st.epochs for st in self.stages)
            if self.refine_epochs:
                raise _subkey_error("refine_epochs", "cannot be combined with stages (add an "
                                    "lbfgs stage instead)")
            for key, value in (("optimizer", self.stages[0].optimizer), ("epochs", total)):
                if key in self.model_fields_set and getattr(self, key) != value:
                    raise _subkey_error(key, f"is {getattr(self, key)!r} but the stages say "
                                        f"{value!r}; give stages or {key}, not both")
                self.__dict__[key] = value
        if self.epochs + self.refine_epochs < 1:
            raise _subkey_error("epochs", f"a run needs at least one epoch (epochs = "
                                f"{self.epochs}, refine_epochs = {self.refine_epochs})")
        if self.energy_weight + self.force_weight <= 0:
            raise _subkey_error("force_weight", "energy_weight + force_weight must be > 0 "
                                "(both are 0: nothing to fit)")
        return self


    def stage_plan(self) -> list[OptimConfig]:
        """The run's stages in order, each as complete settings whose ``optimizer`` and
        ``epochs`` are the stage's (``stages``, or ``optimizer`` for ``epochs`` followed by
        ``refine_epochs`` of L-BFGS)."""
        base = self.model_dump(exclude={"stages"})
        if self.stages:
            plan = [{**base, **{k: v for k, v in st.model_dump().items() if v is not None}}
                    for st in self.stages]
        else:
            plan = [{**base}] if self.epochs else []
            if self.refine_epochs:
                plan.append({**base, "optimizer": "lbfgs", "epochs": self.refine_epochs})
        return [OptimConfig.model_validate({**d, "refine_epochs": 0}) for d in plan]


#: optimizer settings a stage of a chain may set for itself (the others are the run's)
STAGE_KEYS = ("learning_rate", "learning_rate_final", "batch_size", "momentum",
              "weight_decay", "early_stopping_patience", "lbfgs_history",
              "lbfgs_iterations_per_epoch", "lm_mu", "lm_mu_increase", "lm_mu_decrease",
              "lm_force_rows", "lm_subset", "lm_block_atoms", "kalman_type", "kalman_epsilon",
              "kalman_q0", "kalman_qtau", "kalman_qmin", "kalman_eta", "kalman_etatau",
              "kalman_etamax", "kalman_lambda_short", "kalman_nue_short", "kalman_streams",
              "kalman_force_fraction")


def _stage_field(key: str):
    info = OptimConfig.model_fields[key]
    metadata = tuple(info.metadata)
    tp = Annotated[(info.annotation, *metadata)] if metadata else info.annotation
    return (tp | None, Field(None, description=f"{info.description} (null: the run's)"))


#: one stage of a chain: its optimizer, its epochs and any of the STAGE_KEYS
StageConfig = create_model(
    "StageConfig", __base__=_Section,
    optimizer=(OptimConfig.model_fields["optimizer"].annotation, Field(
        description="optimizer of the stage (as training.optimizer)")),
    epochs=(Count, Field(description="epochs of the stage (at most; early stopping may end "
                         "it sooner)")),
    **{key: _stage_field(key) for key in STAGE_KEYS})
StageConfig.section = "training.stages"
OptimConfig.model_rebuild()


def extended_config(cfg: TrainConfig, last_stage_epochs: int | None = None,
                    new_stages: list[dict] | None = None) -> TrainConfig:
    """The configuration of a run continued with more epochs or more stages.

    ``last_stage_epochs``: the last stage runs this many epochs in all (a run of one
    optimizer: its ``epochs``); ``new_stages``: stages appended to the chain (each a dict
    ``{optimizer, epochs, ...}`` as in ``training.stages``).  Errors are one line
    naming the key.
    """
    if last_stage_epochs is not None and new_stages:
        raise HdnnpError("give more epochs for the last stage or new stages, not both")
    d = cfg.to_dict()
    t = d["training"]
    oc = cfg.training
    if not new_stages and not oc.stages:  # keep the run's own form
        t["refine_epochs" if oc.refine_epochs else "epochs"] = last_stage_epochs
        return _validate(d, "--epochs")
    base = oc.model_dump(exclude={"stages"})
    stages = []
    for st in oc.stage_plan():
        own = st.model_dump()
        stages.append({"optimizer": st.optimizer, "epochs": st.epochs,
                       **{k: own[k] for k in STAGE_KEYS if own[k] != base[k]}})
    if last_stage_epochs is not None:
        stages[-1]["epochs"] = last_stage_epochs
    stages.extend(dict(st) for st in new_stages or [])
    t.update(stages=stages, refine_epochs=0)
    for derived in ("optimizer", "epochs"):  # the chain's, from the stages
        t.pop(derived)
    return _validate(d, "--stage" if new_stages else "--epochs")


def _default_descriptor() -> dict[str, Any]:
    return {"kind": "chebyshev", "cutoff": 6.5, "size": 8}


class TrainConfig(_Section):
    section: ClassVar[str] = ""

    data: Annotated[DataConfig, BeforeValidator(_section)] = Field(
        default_factory=DataConfig, description="training and test data")
    descriptor: dict[str, Any] = Field(default_factory=_default_descriptor, description=(
        "descriptor: kind (chebyshev, behler, symmetry_functions, n2p2) plus its parameters "
        "(see hdnnp.descriptors), or {kind: chebyshev|behler, cutoff: Å, size: N} for a "
        "default set"))
    network: Annotated[NetworkConfig, BeforeValidator(_section)] = Field(
        default_factory=NetworkConfig, description="atomic neural networks")
    training: Annotated[OptimConfig, BeforeValidator(_section)] = Field(
        default_factory=OptimConfig, description="optimisation")
    output: Annotated[NonEmptyStr, BeforeValidator(_output)] = Field(
        "runs/hdnnp", description="run directory (log, checkpoints, model, report)")
    figures: bool = Field(True, description=(
        "draw the report figures at the end (metrics.json is always written)"))

    @field_validator("descriptor", mode="plain")
    @classmethod
    def _descriptor(cls, value):
        return check_descriptor(value)

    def to_dict(self) -> dict:
        """Plain dicts and lists (JSON-serialisable; ``from_dict`` reads it back)."""
        return self.model_dump(mode="python")

    @classmethod
    def from_dict(cls, d: dict, source: str = "configuration") -> TrainConfig:
        """Validate a configuration dict; errors are one line naming ``source`` and the key."""
        return _validate(d, str(source))


SECTIONS: dict[str, type[_Section]] = {"data": DataConfig, "network": NetworkConfig,
                                       "training": OptimConfig}


# ------------------------------------------------------------------ descriptor
_DEFAULT_KEYS = ("kind", "cutoff", "size")
_CHEBYSHEV_KEYS = ("kind", "elements", "radial_rc", "radial_order", "angular_rc",
                   "angular_order", "spins")
#: "cutoff_function" is the key of files written before the family was unified
_SF_KEYS = ("kind", "elements", "functions", "cutoff_type", "cutoff_alpha", "cutoff_function")


def _number(d: dict, key: str, default=None, positive=True) -> float:
    value = d.get(key, default)
    if value is None:
        raise _subkey_error(key, "missing (a number is needed)")
    if isinstance(value, bool):
        raise _subkey_error(key, f"expected a number, got {str(value).lower()}")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _subkey_error(key, f"expected a number, got {_short(value)}") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise _subkey_error(key, f"must be a {'positive ' if positive else ''}finite number, "
                            f"got {_short(value)}")
    return x


def _integer(d: dict, key: str, lo: int, hi: int, default=None) -> int:
    value = d.get(key, default)
    if value is None:
        raise _subkey_error(key, "missing (an integer is needed)")
    number = value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,30}\s*", value):
        number = int(value)
    elif isinstance(value, float) and math.isfinite(value) and value == int(value):
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise _subkey_error(key, f"expected an integer, got {_short(value)}")
    if not lo <= number <= hi:
        raise _subkey_error(key, f"must be in [{lo}, {hi}], got {number}")
    return number


def _elements(d: dict) -> list[str] | None:
    if d.get("elements") is None:
        return None
    els = d["elements"]
    if isinstance(els, str) or not isinstance(els, list | tuple) or not els:
        raise _subkey_error("elements", f"expected a list of element symbols, got {_short(els)}")
    for k, e in enumerate(els):
        try:
            _check_element(e)
        except PydanticCustomError as exc:
            raise _subkey_error(f"elements[{k}]", exc.message()) from None
    if len(set(els)) != len(els):
        raise _subkey_error("elements", f"repeated element in {list(els)}")
    return list(els)


def _too_big(value, limit: int) -> bool:
    """Whether a nested dict/list has more than ``limit`` values, shared ones (YAML aliases)
    counted each time: what copying or writing it would cost."""
    stack, count = [value], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def check_descriptor(value) -> dict[str, Any]:
    """Check a descriptor configuration by building it (with placeholder elements where it
    names none); returns it with its numbers as numbers.  Errors name ``descriptor.<key>``."""
    from hdnnp.descriptors import DESCRIPTOR_KINDS

    if not isinstance(value, dict):
        raise PydanticCustomError("descriptor_type", "expected a mapping with a 'kind' (e.g. "
                                  "{example}), got {value}",
                                  {"value": f"{_short(value)}",
                                   "example": "{kind: chebyshev, cutoff: 6.5, size: 8}"})
    for key in value:
        if not isinstance(key, str):
            raise _subkey_error(str(key), "keys must be strings")
    if _too_big(value, MAX_DESCRIPTOR_ITEMS):
        raise PydanticCustomError("descriptor_size", f"more than {MAX_DESCRIPTOR_ITEMS} values "
                                  "(YAML aliases expanded)")
    kinds = list(DESCRIPTOR_KINDS)
    if "kind" not in value:
        raise _subkey_error("kind", f"missing (one of {', '.join(kinds)})")
    kind = value["kind"]
    if not isinstance(kind, str) or kind not in DESCRIPTOR_KINDS:
        raise _subkey_error("kind", f"unknown descriptor kind {_short(kind)}"
                            + _hint(str(kind), kinds))
    if set(value) <= set(_DEFAULT_KEYS):
        if kind not in ("chebyshev", "behler"):
            raise _subkey_error("kind", f"{kind!r} needs its parameters (functions); only "
                                "chebyshev and behler have defaults from cutoff and size")
        out = {"kind": kind, "cutoff": _number(value, "cutoff", 6.5),
               "size": _integer(value, "size", 1, MAX_DEFAULT_SIZE, 8)}
        from hdnnp.descriptors import default_descriptor
        try:
            default_descriptor(kind, ["H"], out["cutoff"], out["size"])
        except Exception as exc:  # the builder's own checks, whatever they raise
            raise _subkey_error("cutoff", _one_line(exc)) from None
        return out
    cls = DESCRIPTOR_KINDS[kind]
    known = _CHEBYSHEV_KEYS if cls.kind == "chebyshev" else _SF_KEYS
    for key in value:
        if key not in known:
            raise _subkey_error(key, f"unknown key for a {kind} descriptor" + _hint(key, known))
    out = dict(value)
    elements = _elements(value)
    if cls.kind == "chebyshev":
        for key in ("radial_rc", "angular_rc"):
            out[key] = _number(value, key)
        for key in ("radial_order", "angular_order"):
            out[key] = _integer(value, key, 0, MAX_CHEBYSHEV_ORDER)
        spins = value.get("spins")
        if spins is not None:
            if not isinstance(spins, list | tuple):
                raise _subkey_error("spins", f"expected a list of numbers, got {_short(spins)}")
            out["spins"] = [_number({"spins": s}, "spins", positive=False) for s in spins]
        placeholder = elements or [f"X{k}" for k in range(len(spins) if spins else 1)]
        build, where = dict(out, elements=placeholder), "spins"
    else:
        funcs = value.get("functions")
        if not isinstance(funcs, list | tuple) or not funcs:
            raise _subkey_error("functions", f"expected a non-empty list of symmetry "
                                f"functions, got {_short(funcs)}")
        if len(funcs) > MAX_FUNCTIONS:
            raise _subkey_error("functions", f"{len(funcs)} functions (at most {MAX_FUNCTIONS})")
        if "cutoff_alpha" in value:
            out["cutoff_alpha"] = _number(value, "cutoff_alpha", positive=False)
        if elements is None:  # the elements the functions name
            named: list[str] = []
            for f in funcs:
                if isinstance(f, dict):
                    neigh = f.get("neighbours", f.get("neighbors", []))
                    neigh = [neigh] if isinstance(neigh, str) else neigh
                    for e in [f.get("center"), *(neigh if isinstance(neigh, list) else [])]:
                        if isinstance(e, str) and e not in named:
                            named.append(e)
            elements = named or ["H"]
        build, where = dict(out, elements=elements), "functions"
    try:
        cls.from_config(build)
    except Exception as exc:  # the builder's own checks, whatever they raise
        raise _subkey_error(where, _one_line(exc)) from None
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _subkey_error(where, f"not plain data ({_one_line(exc)})") from None
    return out


# ------------------------------------------------------------------ errors
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:300]


def _render_key(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker of an error in a mapping's key
            continue
        else:
            text = str(part)
            if not re.fullmatch(r"[\w+\-:/]{1,60}", text):
                text = _short(part)  # a key with spaces, newlines, dots, ...: quoted
            out += ("." if out else "") + text
    return out or "(top level)"


def _section_names(loc) -> list[str]:
    if not loc:
        return list(TrainConfig.model_fields)
    if len(loc) == 1 and loc[0] in SECTIONS:
        return list(SECTIONS[loc[0]].model_fields)
    if tuple(loc[:2]) == ("training", "stages") and len(loc) == 3:
        return list(StageConfig.model_fields)
    return []




_RANGE_MESSAGES = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "finite_number": "must be a finite number",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "has more than {max_length} items",
    "string_too_short": "must not be empty",
}


def _error_parts(exc: ValidationError, prefix: str = ""):
    """(loc, message) per error, the location split into keys and indices."""
    for e in exc.errors(include_url=False):
        loc = ([prefix] if prefix else []) + list(e["loc"])
        kind, msg, ctx = e["type"], e["msg"], e.get("ctx") or {}
        if kind == "hdnnp_subkey":
            key = str(ctx.get("key", ""))
            msg = str(ctx.get("message", msg))
            for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
                loc.append(int(part[1:-1]) if part.startswith("[") else part)
        elif kind == "extra_forbidden":
            names = _section_names(loc[:-1])
            msg = "unknown key" + (_hint(loc[-1], names) if names else "")
        elif kind == "invalid_key":
            msg = f"keys must be strings, got {_short(e.get('input'))}"
        elif kind == "missing":
            msg = "required key missing"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            msg = f"expected a mapping of keys, got {_short(e.get('input'))}"
        elif kind in ("bool_number", "hidden_str", "output_null", "element", "literal_error",
                      "descriptor_type", "activation_type", "descriptor_size"):
            pass
        elif kind in _RANGE_MESSAGES:
            msg = f"{_RANGE_MESSAGES[kind].format(**ctx)} (got {_short(e.get('input'))})"
        elif kind == "value_error":
            msg = str(msg).removeprefix("Value error, ")
        elif "input" in e:
            msg = f"{msg} (got {_short(e['input'])})"
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            msg = f"key {msg}"
        yield loc, " ".join(msg.split())


def _format_errors(exc: ValidationError, source: str, prefix: str = "",
                   locate=None) -> tuple[str, int | None]:
    """One line for all errors of ``exc`` (the first five), and the first one's line."""
    parts, first_line = [], None
    errors = [(loc, msg, locate(loc) if locate else None)
              for loc, msg in _error_parts(exc, prefix)]
    errors.sort(key=lambda e: (e[2] is None, e[2] or 0))  # in the order of the file
    for k, (loc, msg, line) in enumerate(errors[:5]):
        if k == 0:
            first_line = line
            parts.append(f"{_render_key(loc)}: {msg}")
        else:
            at = f" (line {line})" if line is not None else ""
            parts.append(f"{_render_key(loc)}{at}: {msg}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    text = "; ".join(parts)
    return (f"{source}: {text}" if source else text), first_line


def _validate(d, source: str, path: Path | None = None, locate=None) -> TrainConfig:
    if not isinstance(d, dict):
        msg = f"expected a mapping of sections at the top level, got {type(d).__name__}"
        if path is not None:
            raise InputFileError(path, msg)
        raise HdnnpError(f"{source}: {msg}")
    try:
        return TrainConfig.model_validate(d)
    except ValidationError as exc:
        if path is not None:
            msg, line = _format_errors(exc, "", locate=locate)
            raise InputFileError(path, msg, line) from None
        raise HdnnpError(_format_errors(exc, source)[0]) from None
    except RecursionError:
        raise HdnnpError(f"{source}: nested too deeply") from None


# ------------------------------------------------------------------ files
def _yaml_locator(root):
    """loc -> line (1-based) of that key in a composed YAML document, or None."""
    import yaml

    def locate(loc):
        node, line = root, None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = [(k, v) for k, v in node.value
                         if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
                if not match:
                    break
                key, node = match[-1]
                line = key.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    return locate


def _yaml_duplicates(node, path: Path, where: str = "", visited: set | None = None) -> None:
    """PyYAML keeps the last of repeated keys silently: refuse them."""
    import yaml

    visited = set() if visited is None else visited
    if id(node) in visited:  # an alias: its node was checked already (and "billion
        return               # laughs" documents must not be walked exponentially)
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name != "<<":
                if name in seen:
                    raise InputFileError(path, f"{where}{name}: repeated key",
                                         key.start_mark.line + 1)
                seen.add(name)
            _yaml_duplicates(value, path, f"{where}{name}." if name is not None else where,
                             visited)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _yaml_duplicates(item, path, where, visited)


def _json_pairs(pairs):
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"repeated key {k!r}")
    return dict(pairs)


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML (.yaml/.yml, and any other suffix), TOML (.toml) or JSON configuration.

    Unreadable, empty or malformed files and invalid values raise
    :class:`~hdnnp.errors.InputFileError` naming the file (and the line where known).
    """
    path = Path(path)
    if not path.exists():
        raise HdnnpError(f"{path}: no such configuration file")
    if path.is_dir():
        raise InputFileError(path, "is a directory, not a configuration file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputFileError(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                             f"{exc.start})", line) from None
    if not text.strip():
        raise InputFileError(path, "empty configuration file")
    suffix = path.suffix.lower()
    locate = None
    try:
        if suffix == ".toml":
            import tomllib

            d = tomllib.loads(text)
        elif suffix == ".json":
            d = json.loads(text, object_pairs_hook=_json_pairs)
        else:
            import yaml

            root = yaml.compose(text, Loader=yaml.SafeLoader)
            if root is not None:
                _yaml_duplicates(root, path)
                locate = _yaml_locator(root)
            d = yaml.safe_load(text)
    except InputFileError:
        raise
    except Exception as exc:  # parsers raise their own error types (and RecursionError)
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else getattr(exc, "lineno", None)
        if line is None:
            found = re.search(r"line (\d+)", str(exc))
            line = int(found.group(1)) if found else None
        problem = getattr(exc, "problem", None)  # PyYAML: what is wrong ("context": where)
        first = problem if isinstance(problem, str) and problem.strip() else \
            (str(exc).strip().splitlines() or [""])[0]
        raise InputFileError(path, f"cannot parse configuration ({exc.__class__.__name__}"
                             f"{': ' + first[:200] if first else ''})", line) from None
    if d is None:
        raise InputFileError(path, "no settings (the file has only comments)")
    return _validate(d, str(path), path, locate)


# ------------------------------------------------------------------ documentation
def _type_text(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        inner = [_type_text(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or null" if type(None) in args else "")
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_text(a) for a in args)}]"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "section"
    return getattr(tp, "__name__", str(tp))


def _range_text(info) -> str:
    bounds = []
    metadata = list(info.metadata)
    union = typing.get_origin(info.annotation) in (typing.Union, types.UnionType)
    for a in typing.get_args(info.annotation) if union else ():
        # constraints on the non-null member of "X | None"
        if typing.get_origin(a) is Annotated:
            for m in typing.get_args(a)[1:]:
                metadata.extend(getattr(m, "metadata", [m]))
    for m in metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"),
                          ("min_length", "length >="), ("max_length", "length <=")):
            v = getattr(m, attr, None)
            if v is not None and not (attr == "le" and v in (MAX_COUNT, MAX_SEED)):
                bounds.append(f"{sym} {v}")
    return f" ({', '.join(bounds)})" if bounds else ""


def _default_text(info) -> str:
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    return json.dumps(value, ensure_ascii=False)


def describe_schema() -> str:
    """Every configuration key, one per line grouped by section: type, default, meaning."""
    lines = ["Configuration keys (YAML, TOML or JSON; 'hdnnp train --config FILE'):", ""]
    top = TrainConfig.model_fields
    lines.append("top level:")
    for name, info in top.items():
        if name in SECTIONS:
            continue
        lines.append(f"  {name}: {_type_text(info.annotation)}{_range_text(info)} = "
                     f"{_default_text(info)}  -- {info.description}")
    for section, model in SECTIONS.items():
        lines += ["", f"{section}: {top[section].description}"]
        for name, info in model.model_fields.items():
            lines.append(f"  {section}.{name}: {_type_text(info.annotation)}"
                         f"{_range_text(info)} = {_default_text(info)}  -- {info.description}")
    return "\n".join(lines)
