"""The entry of training: :func:`train` chooses a single run or a committee, new or resumed.

``hdnnp train`` and the Python API both come here.  A resumed run takes its own
``config.json``; it may be extended (:func:`hdnnp.training.config.extended_config`):
more epochs for its last stage, or new stages appended to its chain.  A committee's
members are extended alike, and its potential and evaluation are made again.
"""

from __future__ import annotations

import json
from pathlib import Path

from hdnnp.errors import HdnnpError
from hdnnp.training.committee import train_committee
from hdnnp.training.config import TrainConfig, extended_config
from hdnnp.training.trainer import Trainer


def resumed_config(run_dir: str | Path, epochs: int | None = None,
                   stages: list[dict] | None = None) -> TrainConfig:
    """The configuration of the run in ``run_dir`` (its ``config.json``), extended by
    ``epochs`` (of the last stage) or ``stages`` when given."""
    run_dir = Path(run_dir)
    saved = run_dir / "config.json"
    if not saved.is_file():
        raise HdnnpError(f"{run_dir}: no training run to resume (no config.json)")
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HdnnpError(f"{saved}: not a JSON configuration ({exc})") from None
    cfg = TrainConfig.from_dict(data, str(saved))
    cfg.output = str(run_dir)  # where it is now, not where it was started
    if epochs is not None or stages:
        cfg = extended_config(cfg, epochs, stages)
    return cfg


def train(cfg: TrainConfig | dict, resume: bool = False, progress: bool = True, log=print,
          epochs: int | None = None, stages: list[dict] | None = None) -> dict:
    """Train (or, with ``resume``, continue) the run configured by ``cfg``; returns the
    final metrics (also in ``metrics.json``).

    With ``resume`` only ``cfg.output`` is used: the run's own configuration is read from
    it, extended by ``epochs`` (the last stage's epochs in all) or ``stages`` (appended).
    """
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    extend = epochs is not None or bool(stages)
    if resume:
        cfg = resumed_config(cfg.output, epochs, stages)
    elif extend:
        raise HdnnpError("epochs/stages extend a resumed run; for a new run set them in the "
                         "configuration")
    if cfg.training.committee > 1:
        return train_committee(cfg, resume=resume, progress=progress, log=log,
                               extend=extend)
    return Trainer(cfg, resume=resume, progress=progress, log=log, extending=extend).run()
