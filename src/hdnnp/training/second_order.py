r"""Second-order optimizers on the residuals of :mod:`hdnnp.training.jacobian`:
Levenberg–Marquardt (as ænet's ``lm``) and the element-decoupled extended Kalman filter
(as n2p2's ``updater_type 1``).

Both work on the flat weight vector :math:`\mathbf w`
(:class:`~hdnnp.training.jacobian.WeightLayout`) and the residuals :math:`r_k` whose
squares sum to the training loss; each ``epoch`` call is one training epoch, and
``state_dict``/``load_state_dict`` carry everything a resumed run needs (tensors and
numbers only, for ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hdnnp.model import NeuralNetworkPotential
from hdnnp.training.evaluation import ErrorAccumulator
from hdnnp.training.featureset import FeatureSet
from hdnnp.training.jacobian import WeightLayout, batch_residuals
from hdnnp.training.losses import batch_predictions


def atom_blocks(fs: FeatureSet, indices: np.ndarray, max_atoms: int) -> list[np.ndarray]:
    """``indices`` split into consecutive groups of at most ``max_atoms`` atoms (at least
    one structure each)."""
    n_at = fs.n_atoms[torch.as_tensor(indices, dtype=torch.long)].cpu().numpy()
    blocks, start, count = [], 0, 0
    for k, n in enumerate(n_at):
        if k > start and count + n > max_atoms:
            blocks.append(indices[start:k])
            start, count = k, 0
        count += int(n)
    if start < len(indices):
        blocks.append(indices[start:])
    return blocks


@dataclass
class LossWeights:
    """Loss weights :math:`w_E`, :math:`w_F` (``energy_weight``, ``force_weight``) and
    whether forces take part."""

    energy: float
    force: float

    @property
    def use_forces(self) -> bool:
        return self.force > 0


class LevenbergMarquardt:
    r"""Levenberg–Marquardt on all residuals of the training set (or a seeded subset).

    One epoch is one iteration: with the Jacobian :math:`J` and residuals :math:`\mathbf r`
    at :math:`\mathbf w`, accumulated block by block as :math:`A = J^\top J`,
    :math:`\mathbf g = J^\top\mathbf r` (memory O(weights²), not O(residuals × weights)),
    the step solves

    .. math:: (A + \mu\,\mathrm{diag}(A))\,\boldsymbol\delta = -\mathbf g

    (Marquardt's scaling, *Marquardt 1963, J. SIAM 11, 431*); the step is taken if the
    loss decreases, and then :math:`\mu \leftarrow \max(\mu\cdot\mu_\downarrow,
    \mu_\min)`; otherwise :math:`\mu \leftarrow \mu\cdot\mu_\uparrow` and the system is
    solved again (at most ``max_tries`` times; the weights stay if none decreases the
    loss).  Force residuals are one row per component (``force_rows="components"``, the
    exact Gauss–Newton matrix) or one per structure (``"structure"``, for large sets; see
    :mod:`hdnnp.training.jacobian`).  ``subset`` structures per iteration (seeded by the
    trainer's generator) bound the cost on large sets.
    """

    kind = "lm"

    def __init__(self, model: NeuralNetworkPotential, weights: LossWeights, mu: float = 1e-2,
                 mu_increase: float = 10.0, mu_decrease: float = 0.1, mu_min: float = 1e-12,
                 max_tries: int = 10, force_rows: str = "auto", subset: int | None = None,
                 block_atoms: int = 512):
        self.model = model
        self.layout = WeightLayout.of(model)
        self.weights = weights
        self.mu = float(mu)
        self.mu_increase, self.mu_decrease, self.mu_min = mu_increase, mu_decrease, mu_min
        self.max_tries = max_tries
        self.force_rows = force_rows
        self.subset = subset
        self.block_atoms = block_atoms

    def state_dict(self) -> dict:
        return {"mu": self.mu}

    def load_state_dict(self, state: dict) -> None:
        self.mu = float(state["mu"])

    def _rows(self, fs: FeatureSet, idx: np.ndarray) -> str:
        if self.force_rows != "auto":
            return self.force_rows
        # exact rows while the Jacobian-times-force-map work stays moderate
        n_atoms = int(fs.n_atoms[torch.as_tensor(idx, dtype=torch.long)].sum())
        return "components" if 3 * n_atoms <= 20000 else "structure"

    def _scales(self, fs: FeatureSet, idx: np.ndarray) -> tuple[float, float]:
        t = torch.as_tensor(idx, dtype=torch.long, device=fs.n_atoms.device)
        n_struct = len(idx)
        n_comp = 3 * int(fs.n_atoms[t][fs.force_mask[t]].sum()) if self.weights.use_forces \
            else 0
        a_e = math.sqrt(self.weights.energy / max(n_struct, 1))
        a_f = math.sqrt(self.weights.force / n_comp) if n_comp else 0.0
        return a_e, a_f

    def _loss(self, fs: FeatureSet, blocks, a_e: float, a_f: float,
              acc: ErrorAccumulator | None = None) -> float:
        total = 0.0
        for b in blocks:
            tb = fs.batch(b)
            energy, forces = batch_predictions(self.model, tb, self.weights.use_forces,
                                               create_graph=False)
            de = (energy.detach().double() - tb.energy) / tb.n_atoms
            total += a_e**2 * float((de * de).sum())
            if forces is not None:
                df = forces.detach().double()[tb.force_atoms] - tb.forces[tb.force_atoms]
                total += a_f**2 * float((df * df).sum())
            if acc is not None:
                acc.add(energy.detach(), None if forces is None else forces.detach(), tb)
        return total

    def epoch(self, fs: FeatureSet, rng: np.random.Generator) -> tuple[float, dict]:
        """One LM iteration; returns the loss after it and the errors (metrics) of the
        weights it ends with."""
        n = len(fs)
        idx = (np.arange(n) if self.subset is None or self.subset >= n
               else np.sort(rng.choice(n, size=self.subset, replace=False)))
        blocks = atom_blocks(fs, idx, self.block_atoms)
        a_e, a_f = self._scales(fs, idx)
        rows = self._rows(fs, idx)
        p = self.layout.size
        dev = next(self.model.parameters()).device
        a = torch.zeros(p, p, dtype=torch.float64, device=dev)
        g = torch.zeros(p, dtype=torch.float64, device=dev)
        loss0 = 0.0
        for b in blocks:
            res = batch_residuals(self.model, fs.batch(b), self.layout, a_e, a_f, rows,
                                  with_forces=self.weights.use_forces)
            j = res.jacobian.detach()
            r = res.r.detach()
            a += j.T @ j
            g += j.T @ r
            loss0 += float(r @ r)
        w0 = self.layout.get(self.model)
        diag = torch.diagonal(a).clamp_min(1e-12 * float(torch.diagonal(a).max().clamp_min(1e-300)))
        for _ in range(self.max_tries):
            m = a + self.mu * torch.diag(diag)
            chol, info = torch.linalg.cholesky_ex(m)
            if int(info) == 0:
                step = torch.cholesky_solve(-g.unsqueeze(1), chol).squeeze(1)
                if bool(torch.isfinite(step).all()):
                    self.layout.set(self.model, w0 + step)
                    acc = ErrorAccumulator()  # the trial's errors are the epoch's if kept
                    loss1 = self._loss(fs, blocks, a_e, a_f, acc)
                    if math.isfinite(loss1) and loss1 < loss0:
                        self.mu = max(self.mu * self.mu_decrease, self.mu_min)
                        return loss1, acc.result()
            self.mu *= self.mu_increase
        self.layout.set(self.model, w0)  # no step lowered the loss: keep the weights
        acc = ErrorAccumulator()
        return self._loss(fs, blocks, a_e, a_f, acc), acc.result()


class KalmanFilter:
    r"""Element-decoupled extended Kalman filter (*Singraber et al., J. Chem. Theory Comput.
    15, 3075 (2019)*; n2p2's ``KalmanFilter``), parameters named as n2p2's ``kalman_*``.

    The weights of element e form one group with error covariance :math:`P_e`
    (initially :math:`P_e = I/\epsilon`).  One update uses the observations of
    ``streams`` structures (multi-stream): the energy per atom of each, scaled by
    :math:`\sqrt{w_E}`, and a random ``force_fraction`` of each structure's force
    components (at least one), scaled by :math:`\sqrt{w_F}`; with their errors
    :math:`\boldsymbol\xi` (reference − prediction) and derivatives :math:`H_e =
    \partial\mathbf y/\partial\mathbf w_e`:

    .. math::
        X_e = P_e H_e,\quad A = \sum_e H_e^\top X_e + R,\quad K_e = X_e A^{-1},\\
        \mathbf w_e \leftarrow \mathbf w_e + K_e\boldsymbol\xi,\quad
        P_e \leftarrow (P_e - K_e X_e^\top)/\lambda + q I,

    with :math:`R = I/\eta` and :math:`\lambda = 1` for ``kalman_type`` ``standard``
    (:math:`\eta` grows as :math:`\eta_0 e^{t\,\eta_\tau}` up to :math:`\eta_\max`), and
    :math:`R = \lambda I` for ``fading_memory`` (:math:`\lambda \leftarrow \nu\lambda + 1
    - \nu` per update).  The process noise :math:`q = \max(q_0 e^{-t\,q_\tau}, q_\min)`
    decays with the epoch count t (n2p2: "2.302 ⇒ one order of magnitude per epoch").
    """

    kind = "kalman"

    def __init__(self, model: NeuralNetworkPotential, weights: LossWeights,
                 kalman_type: str = "standard", epsilon: float = 1e-2, q0: float = 1e-2,
                 qtau: float = 2.302, qmin: float = 1e-6, eta: float = 1e-2,
                 etatau: float = 2.302, etamax: float = 1.0, lambda_: float = 0.96,
                 nu: float = 0.9987, streams: int = 1, force_fraction: float = 0.02):
        self.model = model
        self.layout = WeightLayout.of(model)
        self.weights = weights
        self.kalman_type = kalman_type
        self.q0, self.qtau, self.qmin = q0, qtau, qmin
        self.eta0, self.etatau, self.etamax = eta, etatau, etamax
        self.nu = nu
        self.streams = streams
        self.force_fraction = force_fraction
        dev = next(model.parameters()).device
        self.covariance = {e: torch.eye(s.stop - s.start, dtype=torch.float64, device=dev)
                           / epsilon for e, s in self.layout.slices.items()}
        self.lam = lambda_
        self.updates = 0
        self.epochs_done = 0.0

    def state_dict(self) -> dict:
        return {"covariance": dict(self.covariance), "lambda": self.lam,
                "updates": self.updates, "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict) -> None:
        self.covariance = {e: t.to(torch.float64) for e, t in state["covariance"].items()}
        self.lam = float(state["lambda"])
        self.updates = int(state["updates"])
        self.epochs_done = float(state["epochs_done"])

    @property
    def q(self) -> float:
        return max(self.q0 * math.exp(-self.epochs_done * self.qtau), self.qmin)

    @property
    def eta(self) -> float:
        return min(self.eta0 * math.exp(self.epochs_done * self.etatau), self.etamax)

    def _update(self, h: torch.Tensor, xi: torch.Tensor) -> None:
        """One decoupled update with derivatives ``h`` [M, P] and errors ``xi`` [M]."""
        m = xi.numel()
        xs = {}
        a = torch.zeros(m, m, dtype=torch.float64, device=h.device)
        for e, sl in self.layout.slices.items():
            he = h[:, sl].T  # [P_e, M]
            x = self.covariance[e] @ he
            xs[e] = (he, x)
            a += he.T @ x
        fading = self.kalman_type == "fading_memory"
        a += torch.eye(m, dtype=torch.float64, device=h.device) * (
            self.lam if fading else 1.0 / self.eta)
        a_inv = torch.linalg.inv(a)
        w = self.layout.get(self.model)
        q = self.q
        for e, sl in self.layout.slices.items():
            he, x = xs[e]
            k = x @ a_inv
            p = self.covariance[e] - k @ x.T
            if fading:
                p = p / self.lam
            p = 0.5 * (p + p.T)  # keep it symmetric against round-off
            p.diagonal().add_(q)
            self.covariance[e] = p
            w[sl] += k @ xi
        self.layout.set(self.model, w)
        if fading:
            self.lam = self.nu * self.lam + 1.0 - self.nu
        self.updates += 1

    def epoch(self, fs: FeatureSet, rng: np.random.Generator) -> tuple[float, dict]:
        """One pass over the training structures in random order; returns the mean loss
        of the observations before their updates and their errors (running metrics)."""
        n = len(fs)
        order = rng.permutation(n)
        n_updates = math.ceil(n / self.streams)
        se = math.sqrt(self.weights.energy)
        sf = math.sqrt(self.weights.force)
        e_sq = f_sq = 0.0
        n_e = n_f = 0
        for start in range(0, n, self.streams):
            idx = np.sort(order[start:start + self.streams])
            tb = fs.batch(idx)
            selected = None
            if self.weights.use_forces and tb.jacobian is not None and tb.force_atoms.numel():
                picks = []
                fa = tb.force_atoms.cpu().numpy()
                sidx = tb.structure_index.cpu().numpy()[fa]
                for s in np.unique(sidx):
                    comps = (fa[sidx == s][:, None] * 3 + np.arange(3)).reshape(-1)
                    k = max(1, round(self.force_fraction * comps.size))
                    picks.append(rng.choice(comps, size=k, replace=False))
                selected = torch.as_tensor(np.sort(np.concatenate(picks)),
                                           device=tb.features.device)
            res = batch_residuals(self.model, tb, self.layout, se, sf,
                                  "selected" if selected is not None else "components",
                                  with_forces=selected is not None, selected=selected)
            r = res.r.detach()
            ne = res.n_energy
            if se:
                e_sq += float(((r[:ne] / se) ** 2).sum())
                n_e += ne
            if r.numel() > ne and sf:
                f_sq += float(((r[ne:] / sf) ** 2).sum())
                n_f += r.numel() - ne
            self._update(res.jacobian.detach(), -r)
            self.epochs_done += 1.0 / n_updates
        self.epochs_done = round(self.epochs_done)
        metrics = {}
        if n_e:
            metrics["energy_rmse_meV_per_atom"] = 1000 * math.sqrt(e_sq / n_e)
        if n_f:
            metrics["force_rmse_eV_per_A"] = math.sqrt(f_sq / n_f)
        loss = self.weights.energy * e_sq / max(n_e, 1) + (
            self.weights.force * f_sq / n_f if n_f else 0.0)
        return loss, metrics
