r"""The training loss of a batch of structures.

.. math:: \mathcal L = w_E\,\Big\langle\Big(\frac{E_s - E^\mathrm{ref}_s}{N_s}\Big)^2
    \Big\rangle_s + w_F\,\big\langle (F_{ac} - F^\mathrm{ref}_{ac})^2\big\rangle_{ac}

(eV, Å; ``energy_weight`` :math:`w_E`, ``force_weight`` :math:`w_F`), averaged over the
structures and the force components that take part.  The metrics of a run are those of
:mod:`hdnnp.training.evaluation`.
"""

from __future__ import annotations

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


def batch_loss(model: NeuralNetworkPotential, tb: TrainingBatch, energy_weight: float,
               force_weight: float, accumulator=None) -> torch.Tensor:
    """The loss of the module docstring for one batch (differentiable in the weights);
    ``accumulator`` (an :class:`~hdnnp.training.evaluation.ErrorAccumulator`) collects the
    batch's predictions as well."""
    energy, forces = batch_predictions(model, tb, force_weight > 0, create_graph=True)
    de = (energy - tb.energy) / tb.n_atoms
    loss = energy_weight * (de * de).mean()
    if forces is not None:
        df = forces[tb.force_atoms] - tb.forces[tb.force_atoms].to(forces.dtype)
        loss = loss + force_weight * (df * df).mean()
    if accumulator is not None:
        accumulator.add(energy, forces, tb)
    return loss
