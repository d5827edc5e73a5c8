r"""Residuals of the training loss and their Jacobian with respect to the weights.

The training loss (see :mod:`hdnnp.training.trainer`) is a sum of squares

.. math:: \mathcal L = \frac{w_E}{S}\sum_s\Big(\frac{E_s - E^\mathrm{ref}_s}{N_s}\Big)^2
    + \frac{w_F}{C}\sum_{a,c}\big(F_{ac} - F^\mathrm{ref}_{ac}\big)^2 = \sum_k r_k^2

over the S training structures and the C force components that take part, with residuals
:math:`r = a_E\,\Delta E_s/N_s` (:math:`a_E = \sqrt{w_E/S}`) and
:math:`r = a_F\,\Delta F_{ac}` (:math:`a_F = \sqrt{w_F/C}`).  Second-order optimizers
(Levenberg–Marquardt, Kalman filter) need the rows :math:`\partial r_k/\partial\mathbf w`.

With :math:`E = \sum_i E_i(\mathbf G_i; \mathbf w_{Z_i})` and stored descriptors, the
weights enter only through the atomic networks, so everything follows from the per-atom
derivatives of the small networks, computed with ``torch.func`` (``vmap`` of ``jacrev``
over the atoms of one element):

* energy rows: :math:`\partial E_s/\partial\mathbf w = \sum_{i\in s}\partial E_i/\partial\mathbf w`;
* force rows: the forces are a linear map :math:`\mathbf F = L(\mathbf c)` of
  :math:`c_{if} = \partial E_i/\partial G_{if}` (the stored pair Jacobian,
  :class:`~hdnnp.descriptors.engine.PairJacobian`), hence
  :math:`\partial\mathbf F/\partial w_p = L(\partial\mathbf c/\partial w_p)`, and a
  projection :math:`\mathbf v\cdot\mathbf F` of the forces has the row
  :math:`\sum_{if} (L^\top\mathbf v)_{if}\,\partial c_{if}/\partial\mathbf w`.

Two force-row layouts: ``"components"`` (one row per force component: the exact
Gauss–Newton matrix, cost ∝ pairs × weights per structure) and ``"structure"`` (one row
per structure, :math:`r_s = a_F\lVert\Delta\mathbf F_s\rVert`, whose squares sum to the
same loss; its row is the projection on :math:`\Delta\mathbf F_s/\lVert\Delta\mathbf
F_s\rVert`, cheap for large sets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hdnnp.model import NeuralNetworkPotential
from hdnnp.training.featureset import TrainingBatch


@dataclass
class WeightLayout:
    """The model's network weights as one flat vector: element by element, each network's
    parameters in ``named_parameters`` order."""

    elements: tuple[str, ...]
    slices: dict[str, slice]
    size: int

    @classmethod
    def of(cls, model: NeuralNetworkPotential) -> WeightLayout:
        slices, start = {}, 0
        for e in model.elements:
            n = sum(p.numel() for p in model.networks[e].parameters())
            slices[e] = slice(start, start + n)
            start += n
        return cls(tuple(model.elements), slices, start)

    def get(self, model: NeuralNetworkPotential) -> torch.Tensor:
        """The flat weight vector (float64, a copy)."""
        return torch.cat([p.detach().reshape(-1).double() for e in self.elements
                          for p in model.networks[e].parameters()])

    def set(self, model: NeuralNetworkPotential, w: torch.Tensor) -> None:
        """Write the flat vector ``w`` into the model's parameters."""
        k = 0
        with torch.no_grad():
            for e in self.elements:
                for p in model.networks[e].parameters():
                    p.copy_(w[k:k + p.numel()].reshape(p.shape).to(p.dtype))
                    k += p.numel()


def network_derivatives(net: torch.nn.Module, g: torch.Tensor):
    """Per-atom derivatives of one element's network at features ``g`` [n, F]:

    returns ``e`` [n] (atomic energies, eV), ``c`` [n, F] (∂E_i/∂G_i), ``de_dw`` [n, P]
    and ``dc_dw`` [n, F, P] (P: the network's weights in ``named_parameters`` order).
    """
    from torch.func import functional_call, grad, jacrev, vmap

    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())

    def energy(p, x):
        return functional_call(net, (p, buffers), (x.unsqueeze(0),)).squeeze(0)

    def energy_and_gradient(p, x):
        return torch.cat([energy(p, x).reshape(1), grad(energy, argnums=1)(p, x)])

    values = vmap(energy_and_gradient, in_dims=(None, 0))(params, g)
    jac = vmap(jacrev(energy_and_gradient, argnums=0), in_dims=(None, 0))(params, g)
    flat = torch.cat([jac[k].reshape(g.shape[0], g.shape[1] + 1, -1) for k in params], -1)
    return values[:, 0], values[:, 1:], flat[:, 0], flat[:, 1:]


@dataclass
class Residuals:
    """Residuals ``r`` [R] and their Jacobian ``jacobian`` [R, P] (float64) of one batch,
    energy rows first."""

    r: torch.Tensor
    jacobian: torch.Tensor
    n_energy: int


def batch_residuals(model: NeuralNetworkPotential, tb: TrainingBatch, layout: WeightLayout,
                    energy_scale: float, force_scale: float, force_rows: str = "components",
                    with_forces: bool = True,
                    selected: torch.Tensor | None = None) -> Residuals:
    """Residuals and Jacobian rows of a training batch (module docstring), with
    ``energy_scale`` = :math:`a_E`, ``force_scale`` = :math:`a_F`.

    ``force_rows``: ``"components"``, ``"structure"`` or ``"selected"``: only the force
    components ``selected`` (indices into the batch's flattened [N·3] forces), by
    projection on unit vectors (cheap for a few, as a Kalman update uses them).  Forces
    enter only for the batch's ``force_atoms`` (``"selected"``: as given) and only with
    ``with_forces`` and a pair Jacobian.
    """
    dev = tb.features.device
    n, nf = tb.features.shape
    e_atoms = torch.zeros(n, dtype=torch.float64, device=dev)
    c = torch.zeros(n, nf, dtype=torch.float64, device=dev)
    de_dw = torch.zeros(n, layout.size, dtype=torch.float64, device=dev)
    dc_dw: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for k, el in enumerate(model.elements):
        idx = torch.nonzero(tb.species == k).squeeze(1)
        if idx.numel() == 0:
            continue
        net = model.networks[el]
        f_el = net.n_inputs
        e, ce, dew, dcw = network_derivatives(net, tb.features[idx, :f_el])
        e_atoms[idx] = e.double()
        c[idx, :f_el] = ce.double()
        de_dw[idx, layout.slices[el]] = dew.double()
        dc_dw[el] = (idx, dcw.double())
    b = tb.n_structures
    energy = torch.zeros(b, dtype=torch.float64, device=dev).index_add(
        0, tb.structure_index, e_atoms + model.reference_energies.to(dev)[tb.species])
    n_at = tb.n_atoms.double()
    r_e = energy_scale * (energy - tb.energy) / n_at
    j_e = torch.zeros(b, layout.size, dtype=torch.float64, device=dev).index_add(
        0, tb.structure_index, de_dw) * (energy_scale / n_at).unsqueeze(1)
    rows, res = [j_e], [r_e]
    fa = tb.force_atoms
    if with_forces and tb.jacobian is not None and fa.numel() > 0:
        jac = tb.jacobian.to(dtype=torch.float64)
        forces = jac.forces(c, n)
        df = forces - tb.forces.to(torch.float64)
        mask = torch.zeros(n, dtype=torch.bool, device=dev)
        mask[fa] = True
        if force_rows == "components":
            rows_f = torch.zeros(n, 3, layout.size, dtype=torch.float64, device=dev)
            for el, (idx, dcw) in dc_dw.items():
                sl = layout.slices[el]
                for start in range(0, dcw.shape[-1], 64):  # bounded [N, F, 64] blocks
                    cols = torch.zeros(n, nf, min(64, dcw.shape[-1] - start),
                                       dtype=torch.float64, device=dev)
                    cols[idx, : dcw.shape[1]] = dcw[..., start:start + cols.shape[-1]]
                    rows_f[:, :, sl.start + start: sl.start + start + cols.shape[-1]] = \
                        jac.forces_columns(cols, n)
            rows.append(force_scale * rows_f[fa].reshape(-1, layout.size))
            res.append(force_scale * df[fa].reshape(-1))
        elif force_rows == "structure":
            dfm = torch.where(mask.unsqueeze(1), df, torch.zeros_like(df))
            norm2 = torch.zeros(b, dtype=torch.float64, device=dev).index_add(
                0, tb.structure_index, (dfm * dfm).sum(1))
            norm = norm2.sqrt()
            has = torch.zeros(b, dtype=torch.bool, device=dev)
            has[tb.structure_index[fa]] = True
            safe = torch.where(norm > 0, norm, torch.ones_like(norm))
            v = dfm / safe[tb.structure_index].unsqueeze(1)
            u = jac.transpose_forces(v.unsqueeze(-1), nf)[..., 0]  # [N, F]
            j_f = torch.zeros(b, layout.size, dtype=torch.float64, device=dev)
            for el, (idx, dcw) in dc_dw.items():
                per_atom = torch.einsum("if,ifp->ip", u[idx, : dcw.shape[1]], dcw)
                j_f[:, layout.slices[el]] += torch.zeros(
                    b, per_atom.shape[1], dtype=torch.float64, device=dev).index_add(
                    0, tb.structure_index[idx], per_atom)
            rows.append(force_scale * j_f[has])
            res.append(force_scale * norm[has])
        elif force_rows == "selected":
            m = selected.numel()
            v = torch.zeros(n * 3, m, dtype=torch.float64, device=dev)
            v[selected, torch.arange(m, device=dev)] = 1.0
            u = jac.transpose_forces(v.reshape(n, 3, m), nf)  # [N, F, M]
            j_f = torch.zeros(m, layout.size, dtype=torch.float64, device=dev)
            for el, (idx, dcw) in dc_dw.items():
                j_f[:, layout.slices[el]] = torch.einsum("ifm,ifp->mp",
                                                         u[idx, : dcw.shape[1]], dcw)
            rows.append(force_scale * j_f)
            res.append(force_scale * df.reshape(-1)[selected])
        else:
            raise ValueError(f"unknown force_rows {force_rows!r}")
    return Residuals(torch.cat(res), torch.cat(rows), int(b))
