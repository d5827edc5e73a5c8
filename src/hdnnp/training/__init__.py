"""Training of potentials: configuration, stored descriptors/Jacobians, the trainer."""

from __future__ import annotations

from hdnnp.training.config import TrainConfig, load_config
from hdnnp.training.featureset import FeatureSet, TrainingBatch
from hdnnp.training.trainer import Trainer, fit_normalisation, prepare_data


def train(cfg: TrainConfig | dict, resume: bool = False, progress: bool = True) -> dict:
    """Train a potential from a configuration (object or dict); returns final metrics."""
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    return Trainer(cfg, resume=resume, progress=progress).run()


__all__ = ["FeatureSet", "TrainConfig", "Trainer", "TrainingBatch", "fit_normalisation",
           "load_config", "prepare_data", "train"]
