"""Training of potentials.

Modules, in the order data flows: ``config`` (the schema), ``datasets`` (loading,
selection, the train/validation/test split), ``featureset`` (stored descriptors and
Jacobians), ``losses``, ``jacobian`` and ``second_order`` (Levenberg-Marquardt, Kalman
filter), ``evaluation`` (metrics, predictions, report), ``trainer`` (one potential, a
chain of optimizer stages), ``committee`` (several), ``run`` (:func:`train`, the entry).
"""

from __future__ import annotations

from hdnnp.training.config import TrainConfig, load_config
from hdnnp.training.datasets import prepare_splits
from hdnnp.training.featureset import FeatureSet, TrainingBatch
from hdnnp.training.run import train
from hdnnp.training.trainer import Trainer, fit_normalisation

__all__ = ["FeatureSet", "TrainConfig", "Trainer", "TrainingBatch", "fit_normalisation",
           "load_config", "prepare_splits", "train"]
