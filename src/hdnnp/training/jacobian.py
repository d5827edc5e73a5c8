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

#: weight columns pushed through the force map at once (bounds the [pairs, F, k] work array)
FORCE_COLUMN_CHUNK = 64


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


def _activation_derivatives(act, z: torch.Tensor):
    """φ(z), φ'(z), φ''(z) of an elementwise activation, by autograd (any activation)."""
    zz = z.detach().requires_grad_(True)
    with torch.enable_grad():
        y = act(zz)
        (d1,) = torch.autograd.grad(y.sum(), zz, create_graph=True)
        if d1.requires_grad:
            (d2,) = torch.autograd.grad(d1.sum(), zz, allow_unused=True)
        else:
            d2 = None
    d2 = torch.zeros_like(z) if d2 is None else d2.detach()
    return y.detach(), d1.detach(), d2


def network_derivatives(net, g: torch.Tensor, force_terms: bool = True):
    r"""Per-atom derivatives of one element's :class:`~hdnnp.model.AtomicNetwork` at
    features ``g`` [n, F]: returns ``e`` [n] (atomic energies, eV), ``c`` [n, F]
    (:math:`\partial E_i/\partial\mathbf G_i`), ``de_dw`` [n, P] and ``dc_dw`` [n, F, P]
    (P: the network's weights in ``named_parameters`` order; None without
    ``force_terms``).

    Forward, with :math:`\mathbf x_0 = (\mathbf g - \mathbf s)\odot\boldsymbol\sigma`,
    :math:`\mathbf z_l = W_l\mathbf x_{l-1} + \mathbf b_l`,
    :math:`\mathbf x_l = \varphi_l(\mathbf z_l)` (l = 1…L, width 1 at L), the input
    tangents :math:`T_l = \partial\mathbf x_l/\partial\mathbf g = \varphi_l'\odot U_l`,
    :math:`U_l = W_l T_{l-1}`, :math:`T_0 = \mathrm{diag}\,\boldsymbol\sigma`;
    :math:`E = o\,x_L + b` and :math:`\mathbf c = o\,T_L`.  Backward: the energy
    adjoint :math:`\boldsymbol\tau_L = o`, :math:`\boldsymbol\tau_{l-1} = W_l^\top
    (\boldsymbol\tau_l\odot\varphi_l')` gives :math:`\partial E/\partial W_l =
    (\boldsymbol\tau_l\odot\varphi_l')\,\mathbf x_{l-1}^\top`; for :math:`c_f` the
    adjoint of :math:`T_l` is :math:`\boldsymbol\tau_l\mathbf e_f^\top` (the same
    :math:`\boldsymbol\tau`), so only :math:`\bar{\mathbf x}^f_l` (zero at L) is carried:

    .. math::
        \bar{\mathbf z}^f_l = \bar{\mathbf x}^f_l\odot\varphi_l'
            + \boldsymbol\tau_l\odot U_{l,:f}\odot\varphi_l'',\qquad
        \frac{\partial c_f}{\partial W_l} = \bar{\mathbf z}^f_l\,\mathbf x_{l-1}^\top
            + (\boldsymbol\tau_l\odot\varphi_l')\,T_{l-1,:f}^\top,\qquad
        \bar{\mathbf x}^f_{l-1} = W_l^\top\bar{\mathbf z}^f_l,

    and :math:`\partial/\partial\mathbf b_l` the :math:`\bar{\mathbf z}`.  Work and
    memory are those of the result, O(n F P).  Written out rather than taken from
    ``torch.func`` (``vmap`` of ``jacrev``, the tests' oracle), which runs one backward
    pass per output and is several times slower.
    """
    n, nf = g.shape
    dt = torch.float64
    layers = list(net.layers)
    scale = net.input_scale.to(dt)
    x = [((g.to(dt) - net.input_shift.to(dt)) * scale)]  # x_0 [n, F]
    ts, us, d1s, d2s = [None], [], [], []  # T_0 = diag(σ) is never formed
    for layer, act in zip(layers, net._acts):
        w = layer.weight.detach().to(dt)
        z = x[-1] @ w.T + layer.bias.detach().to(dt)
        y, d1, d2 = _activation_derivatives(act, z)
        # U_l [n, h, F] (U_1 = W_1 diag σ, the same for every atom)
        u = (w * scale).expand(n, -1, -1) if ts[-1] is None else torch.einsum(
            "ij,njf->nif", w, ts[-1])
        ts.append(d1.unsqueeze(-1) * u)
        us.append(u)
        d1s.append(d1)
        d2s.append(d2)
        x.append(y)
    o = net.output_scale.to(dt)
    e = x[-1][:, 0] * o + net.output_shift.to(dt)
    c = o * ts[-1][:, 0, :]
    tau = torch.full((n, 1), float(o), dtype=dt, device=g.device)
    xbar = torch.zeros(n, nf, 1, dtype=dt, device=g.device)  # x̄^f_L
    parts_e, parts_c = [], []
    for li in range(len(layers) - 1, -1, -1):
        w = layers[li].weight.detach().to(dt)
        d1, d2, u = d1s[li], d2s[li], us[li]
        td = tau * d1  # [n, h]
        parts_e.append((td.unsqueeze(-1) * x[li].unsqueeze(1)).reshape(n, -1))
        parts_e.append(td)
        if force_terms:
            xbar = _force_adjoint_step(li, w, td, tau, d1, d2, u, x, ts, xbar, scale,
                                       parts_c)
        tau = td @ w
    # parameters in named_parameters order: layers.0.weight, layers.0.bias, layers.1...
    order = [k for pair in reversed(range(len(layers))) for k in (2 * pair, 2 * pair + 1)]
    de_dw = torch.cat([parts_e[k] for k in order], -1)
    dc_dw = torch.cat([parts_c[k] for k in order], -1) if force_terms else None
    return e, c, de_dw, dc_dw


def _force_adjoint_step(li, w, td, tau, d1, d2, u, x, ts, xbar, scale, parts_c):
    """One layer of the c-adjoint recursion of :func:`network_derivatives`: appends
    ∂c/∂W_l and ∂c/∂b_l to ``parts_c``, returns x̄^f_{l-1}."""
    n, nf = xbar.shape[:2]
    zbar = xbar * d1.unsqueeze(1) + (tau * d2).unsqueeze(1) * u.transpose(1, 2)  # [n, F, h]
    wbar = zbar.unsqueeze(-1) * x[li].unsqueeze(1).unsqueeze(1)  # [n, F, h, i]
    if li == 0:  # T_0[:, f] = σ_f e_f
        idx = torch.arange(nf, device=xbar.device)
        wbar[:, idx, :, idx] += td.unsqueeze(0) * scale.view(-1, 1, 1)
    else:
        wbar += td.unsqueeze(1).unsqueeze(-1) * ts[li].permute(0, 2, 1).unsqueeze(2)
    parts_c.append(wbar.reshape(n, nf, -1))
    parts_c.append(zbar)
    return zbar @ w


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
        use_f = with_forces and tb.jacobian is not None and tb.force_atoms.numel() > 0
        e, ce, dew, dcw = network_derivatives(net, tb.features[idx, :f_el], use_f)
        e_atoms[idx] = e
        c[idx, :f_el] = ce
        de_dw[idx, layout.slices[el]] = dew
        if use_f:
            dc_dw[el] = (idx, dcw)
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
                for start in range(0, dcw.shape[-1], FORCE_COLUMN_CHUNK):  # bounded blocks
                    cols = torch.zeros(n, nf, min(FORCE_COLUMN_CHUNK, dcw.shape[-1] - start),
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
