"""What a study is: a base training configuration, the parameters varied, the seeds.

A study (thesis ch. 3–4: error against cutoff, number of functions, training-set size,
optimizer × seed, ...) is the set of training runs

    base configuration + fixed overrides (``set``) + one combination of the varied values
    (``vary``; every combination with ``combine: grid``, element-wise with ``zip``)
    × each seed of ``seeds`` (``training.seed``; the data split stays that of the base)

A varied or set key is a configuration key of ``hdnnp train --help-config``, written
``section.key`` (``training.optimizer``, ``data.n_structures``, ``descriptor.radial_rc``)
or as the bare key when only one section has it (``optimizer``, ``hidden``,
``n_structures``), or one of the aliases of :data:`ALIASES` (``cutoff``: the descriptor's
cutoff radius whatever its kind).  Values on the command line are YAML scalars
(``4.5``, ``adam``, ``null``); ``10-10`` is the list ``[10, 10]`` (hidden layers).

Every run's configuration is validated before the first run starts, so that a typo in
the last value of a sweep fails at once with the offending key and value, not after
hours of training.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hdnnp.errors import HdnnpError, InputFileError

__all__ = ["ALIASES", "Run", "StudySpec", "expand_runs", "load_study", "parse_value",
           "resolve_key"]

#: Names that stand for a setting of the descriptor whatever its kind:
#: ``cutoff`` sets ``cutoff`` of a default/Behler set and both cutoffs of a Chebyshev
#: descriptor, the angular one never above its base value (the angular cutoff of
#: ænet-style descriptors is the shorter one).
ALIASES = ("cutoff",)

_HIDDEN_RE = re.compile(r"^\d+(-\d+)+$")


def parse_value(text: str):
    """A value given on the command line: a YAML scalar or list; ``10-10`` → ``[10, 10]``."""
    import yaml

    text = text.strip()
    if _HIDDEN_RE.match(text):
        return [int(v) for v in text.split("-")]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


class StudySpec(BaseModel):
    """A study file (YAML/JSON) or the same from ``hdnnp study`` flags."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("study", description="title of the report")
    base: str | dict[str, Any] = Field(..., description=(
        "training configuration the runs start from: a config file, or the config inline"))
    vary: dict[str, list[Any]] = Field(..., description=(
        "varied keys and their values, e.g. {cutoff: [4, 5, 6]}"))
    combine: Literal["grid", "zip"] = Field("grid", description=(
        "grid: every combination of the varied values; zip: the i-th value of each key"))
    seeds: list[int] = Field([1], description="training.seed of the repetitions")
    set: dict[str, Any] = Field({}, description="fixed overrides applied to every run")
    metric: str = Field("energy_mae_meV_per_atom", description=(
        "error that ranks the settings: a metrics key without split prefix; the "
        "validation split chooses, the test split is reported beside it"))
    target: float | None = Field(5.0, description=(
        "target line of the figures, in the metric's unit (thesis: 5 meV/atom)"))
    labels: dict[str, str] = Field({}, description="axis labels of the varied keys")
    names: dict[str, list[str]] = Field({}, description=(
        "display names of the values of a varied key (one per value), for values that "
        "are whole sections such as a descriptor or a list of stages"))

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value):
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("seeds must be a positive count or a list of seeds")
            return list(range(1, value + 1))
        return value

    @field_validator("vary")
    @classmethod
    def _vary(cls, value):
        if not value:
            raise ValueError("vary at least one key")
        for key, values in value.items():
            if not values:
                raise ValueError(f"vary.{key}: no values")
        return value

    def model_post_init(self, _context) -> None:
        for key, names in self.names.items():
            if key not in self.vary or len(names) != len(self.vary[key]):
                raise HdnnpError(f"study names.{key}: one name per value of vary.{key}")


def _sections() -> dict[str, set[str]]:
    from hdnnp.training.config import SECTIONS, TrainConfig

    out = {name: set(cls.model_fields) for name, cls in SECTIONS.items()}
    out[""] = {k for k in TrainConfig.model_fields if k not in SECTIONS}
    return out


def resolve_key(key: str) -> str:
    """The full ``section.key`` of ``key`` (or the alias itself); error naming the key."""
    if key in ALIASES:
        return key
    sections = _sections()
    if "." in key:
        section, name = key.split(".", 1)
        if section == "descriptor" and name:
            return key
        if section in sections and section and name in sections[section]:
            return key
        raise HdnnpError(f"study key {key!r}: no such configuration key (see hdnnp train "
                         "--help-config)")
    owners = [s for s, names in sections.items() if key in names and s]
    if len(owners) == 1:
        return f"{owners[0]}.{key}"
    if len(owners) > 1:
        raise HdnnpError(f"study key {key!r} is ambiguous: write one of "
                         f"{', '.join(f'{s}.{key}' for s in owners)}")
    if key in sections[""]:
        return key
    raise HdnnpError(f"study key {key!r}: no such configuration key (see hdnnp train "
                     "--help-config; 'cutoff' is the descriptor's cutoff)")


def _apply(config: dict, key: str, value) -> None:
    """Set ``key`` (resolved) to ``value`` in the configuration dict ``config``."""
    if key == "cutoff":
        desc = config.setdefault("descriptor", {})
        if desc.get("kind", "chebyshev") == "chebyshev" and "radial_rc" in desc:
            desc["radial_rc"] = value
            if "angular_rc" in desc and desc.get("angular_order", 1):
                desc["angular_rc"] = min(desc["angular_rc"], value)
        else:
            desc["cutoff"] = value
        return
    if "." not in key:
        config[key] = value
        return
    section, name = key.split(".", 1)
    target = config.setdefault(section, {})
    target[name] = value
    if key == "training.stages" and value:
        # a chain sets the optimizer and the epochs (their sum) itself
        target.pop("optimizer", None)
        target.pop("epochs", None)
        target["refine_epochs"] = 0


class Run:
    """One training run of a study: its varied values, seed and full configuration."""

    def __init__(self, values: dict[str, Any], seed: int, config: dict,
                 shown: dict[str, str] | None = None):
        self.values = values
        self.seed = seed
        self.config = config
        #: display text of each varied value
        self.shown = shown or {k: _text(v) for k, v in values.items()}

    @property
    def setting(self) -> str:
        """The varied values as text (the row of the report): ``cutoff=4.5 optimizer=lm``."""
        return " ".join(f"{k.split('.')[-1]}={self.shown[k]}" for k in self.values)

    @property
    def name(self) -> str:
        """Directory name: the setting and seed, with only safe characters."""
        raw = "_".join(f"{k.split('.')[-1]}-{self.shown[k]}" for k in self.values)
        raw = re.sub(r"[^A-Za-z0-9.=+-]+", "_", raw).strip("_")
        return f"{raw}_seed-{self.seed}"


def _text(value) -> str:
    if isinstance(value, list):
        return "-".join(str(v) for v in value) or "linear"
    return str(value)


def _base_config(spec: StudySpec, base_dir: Path | None) -> dict:
    from hdnnp.training.config import TrainConfig, load_config

    if isinstance(spec.base, dict):
        return TrainConfig.from_dict(copy.deepcopy(spec.base), "study base").to_dict()
    path = Path(spec.base)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    return load_config(path).to_dict()


def expand_runs(spec: StudySpec, base_dir: Path | None = None) -> list[Run]:
    """Every run of the study, each configuration validated (error names key and value)."""
    from hdnnp.training.config import TrainConfig

    base = _base_config(spec, base_dir)
    fixed = {resolve_key(k): v for k, v in spec.set.items()}
    keys = [resolve_key(k) for k in spec.vary]
    lists = [list(enumerate(v)) for v in spec.vary.values()]
    names = [spec.names.get(k) for k in spec.vary]
    if spec.combine == "zip":
        if len({len(v) for v in lists}) != 1:
            raise HdnnpError("combine: zip needs the same number of values for every "
                             "varied key")
        combos = list(zip(*lists))
    else:
        combos = list(itertools.product(*lists))
    runs = []
    for combo in combos:
        values = {k: v for k, (_, v) in zip(keys, combo)}
        shown_of = {k: (nm[i] if nm else _text(v))
                    for k, (i, v), nm in zip(keys, combo, names)}
        for seed in spec.seeds:
            config = copy.deepcopy(base)
            for k, v in fixed.items():
                _apply(config, k, v)
            for k, v in values.items():
                _apply(config, k, v)
            _apply(config, "training.seed", seed)
            shown = ", ".join(f"{k}={t}" for k, t in shown_of.items())
            cfg = TrainConfig.from_dict(config, f"study run {shown}, seed {seed}")
            runs.append(Run(values, seed, cfg.to_dict(), shown_of))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise HdnnpError("two runs of the study have the same setting: repeated values "
                         "in vary?")
    return runs


def load_study(path: str | Path) -> StudySpec:
    """A study file (YAML or JSON); errors name the file and key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise HdnnpError(f"{path}: no such study file")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputFileError(path, f"cannot read the study ({exc.__class__.__name__})",
                             mark.line + 1 if mark is not None else None) from None
    if not isinstance(data, dict):
        raise InputFileError(path, "a study file is a mapping (name, base, vary, seeds ...)")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "study"
        raise InputFileError(path, f"{where}: {err['msg']}") from None
