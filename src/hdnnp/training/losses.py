r"""The training loss and the running error metrics of training batches.

.. math:: \mathcal L = w_E\,\Big\langle\Big(\frac{E_s - E^\mathrm{ref}_s}{N_s}\Big)^2
    \Big\rangle_s + w_F\,\big\langle (F_{ac} - F^\mathrm{ref}_{ac})^2\big\rangle_{ac}

(eV, Å; ``energy_weight`` :math:`w_E`, ``force_weight`` :math:`w_F`), averaged over the
structures and the force components that take part.  Metrics: MAE and RMSE of the energy
per atom (meV/atom) and of the force components (meV/Å).
"""

from __future__ import annotations

import math

import torch

from hdnnp.model import NeuralNetworkPotential
from hdnnp.training.featureset import TrainingBatch


def batch_predictions(model: NeuralNetworkPotential, tb: TrainingBatch, with_forces: bool,
                      create_graph: bool):
    """Total energies [B] (float64) and, if requested, forces [N, 3] of a training batch."""
    g = tb.features
    need_f = with_forces and tb.jacobian is not None and tb.force_atoms.numel() > 0
    if need_f:
        g = g.detach().requires_grad_(True)
    e_nn = model.atomic_energies(g, tb.species)
    energy = model._total(e_nn, tb.species, tb.structure_index, tb.n_structures)[0]
    forces = None
    if need_f:
        (de_dg,) = torch.autograd.grad(e_nn.sum(), g, create_graph=create_graph)
        forces = tb.jacobian.forces(de_dg, g.shape[0])
    return energy, forces


class ErrorAccumulator:
    """Running sums for MAE/RMSE of energy per atom (meV/atom) and forces (meV/Å)."""

    def __init__(self):
        self.e_abs = self.e_sq = self.f_abs = self.f_sq = 0.0
        self.n_e = self.n_f = 0

    def add(self, energy, forces, tb: TrainingBatch):
        de = ((energy.detach() - tb.energy) / tb.n_atoms).double()
        self.e_abs += float(de.abs().sum())
        self.e_sq += float((de * de).sum())
        self.n_e += de.numel()
        if forces is not None:
            df = (forces.detach()[tb.force_atoms] - tb.forces[tb.force_atoms]).double()
            self.f_abs += float(df.abs().sum())
            self.f_sq += float((df * df).sum())
            self.n_f += df.numel()

    def result(self) -> dict:
        out = {}
        if self.n_e:
            out["energy_mae_meV_per_atom"] = 1000 * self.e_abs / self.n_e
            out["energy_rmse_meV_per_atom"] = 1000 * math.sqrt(self.e_sq / self.n_e)
        if self.n_f:
            out["force_mae_meV_per_A"] = 1000 * self.f_abs / self.n_f
            out["force_rmse_meV_per_A"] = 1000 * math.sqrt(self.f_sq / self.n_f)
        return out


def loss_value(metrics: dict, cfg) -> float:
    """The training loss implied by a metrics dict (used for early stopping)."""
    loss = cfg.energy_weight * (metrics.get("energy_rmse_meV_per_atom", 0.0) / 1000) ** 2
    if "force_rmse_meV_per_A" in metrics:
        loss += cfg.force_weight * (metrics["force_rmse_meV_per_A"] / 1000) ** 2
    return loss
