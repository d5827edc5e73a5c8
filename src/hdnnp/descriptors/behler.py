r"""Behler–Parrinello atom-centred symmetry functions G1–G5 in ænet's conventions.

Source: J. Behler, J. Chem. Phys. 134, 074106 (2011), eqs. 4–9, as implemented in
ænet (N. Artrith and A. Urban, Comput. Mater. Sci. 114, 135 (2016); ``symmfunc.f90``,
basis type ``Behler2011``); thesis eqs. 2.70–2.74.  Lengths in Å, :math:`\eta` in
Å⁻², :math:`\kappa` in Å⁻¹, all functions dimensionless.

Radial functions, summed over neighbours *j* of element *B* within :math:`R_c`:

.. math::

    G^1_i = \sum_j f_c(R_{ij}), \qquad
    G^2_i = \sum_j e^{-\eta (R_{ij} - R_s)^2} f_c(R_{ij}), \qquad
    G^3_i = \sum_j \cos(\kappa R_{ij}) f_c(R_{ij}).

Angular functions, summed over unordered neighbour pairs :math:`\{j, k\}` with
elements :math:`\{B, C\}` (ænet sums ``k > j`` and doubles :math:`2^{-\zeta}(\ldots)`;
the net prefactor per pair is :math:`2^{1-\zeta}`):

.. math::

    G^4_i = 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta\,
            e^{-\eta (R_{ij}^2 + R_{ik}^2 + R_{jk}^2)}\,
            f_c(R_{ij}) f_c(R_{ik}) f_c(R_{jk}),

    G^5_i = 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta\,
            e^{-\eta (R_{ij}^2 + R_{ik}^2)}\, f_c(R_{ij}) f_c(R_{ik}).

:math:`f_c` is the cosine cutoff (eq. 2.71) unless another
:class:`~hdnnp.descriptors.cutoffs.CutoffFunction` kind is chosen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from hdnnp.descriptors.base import AngularGroup, Descriptor, GroupOutput, RadialGroup
from hdnnp.descriptors.cutoffs import CutoffFunction
from hdnnp.errors import HdnnpError

RADIAL_TYPES = ("G1", "G2", "G3")
ANGULAR_TYPES = ("G4", "G5")
_PARAMS = {
    "G1": ("rc",),
    "G2": ("rc", "eta", "rs"),
    "G3": ("rc", "kappa"),
    "G4": ("rc", "eta", "lambda", "zeta"),
    "G5": ("rc", "eta", "lambda", "zeta"),
}


def _radial_fn(kind: str, cutoff: CutoffFunction, params: np.ndarray):
    p = params  # [K, n_params] in the order of _PARAMS[kind][1:]

    def fn(r: torch.Tensor) -> torch.Tensor:
        rr = r.unsqueeze(-1)
        fc = cutoff(r).unsqueeze(-1)
        if kind == "G1":
            return fc.expand(-1, p.shape[0]) * 1.0
        if kind == "G2":
            eta = torch.as_tensor(p[:, 0], dtype=r.dtype, device=r.device)
            rs = torch.as_tensor(p[:, 1], dtype=r.dtype, device=r.device)
            return torch.exp(-eta * (rr - rs) ** 2) * fc
        kappa = torch.as_tensor(p[:, 0], dtype=r.dtype, device=r.device)
        return torch.cos(kappa * rr) * fc

    return fn


def _angular_fn(kind: str, cutoff: CutoffFunction, params: np.ndarray):
    p = params  # columns eta, lambda, zeta

    def fn(r_ij, r_ik, r_jk, cos):
        t = dict(dtype=r_ij.dtype, device=r_ij.device)
        eta = torch.as_tensor(p[:, 0], **t)
        lam = torch.as_tensor(p[:, 1], **t)
        zeta = torch.as_tensor(p[:, 2], **t)
        base = (1.0 + lam * cos.unsqueeze(-1)).clamp_min(0.0)
        ang = torch.exp2(1.0 - zeta) * base**zeta
        fc = (cutoff(r_ij) * cutoff(r_ik)).unsqueeze(-1)
        r2 = (r_ij**2 + r_ik**2).unsqueeze(-1)
        if kind == "G4":
            r2 = r2 + (r_jk**2).unsqueeze(-1)
            fc = fc * cutoff(r_jk).unsqueeze(-1)
        return ang * torch.exp(-eta * r2) * fc

    return fn


def normalise_function_spec(spec: dict, elements: Sequence[str], where: str = "") -> dict:
    """Check one symmetry-function entry and return it in canonical form."""
    kind = str(spec.get("type", "")).upper()
    if kind not in _PARAMS:
        raise HdnnpError(f"{where}unknown symmetry function type {spec.get('type')!r} "
                         f"(known: {', '.join(_PARAMS)})")
    center = spec.get("center")
    if center not in elements:
        raise HdnnpError(f"{where}centre element {center!r} is not one of {list(elements)}")
    neigh = spec.get("neighbours", spec.get("neighbors"))
    if isinstance(neigh, str):
        neigh = [neigh]
    need = 1 if kind in RADIAL_TYPES else 2
    if not isinstance(neigh, list | tuple) or len(neigh) != need:
        raise HdnnpError(f"{where}{kind} needs {need} neighbour element(s), got {neigh!r}")
    for e in neigh:
        if e not in elements:
            raise HdnnpError(f"{where}neighbour element {e!r} is not one of {list(elements)}")
    out = {"type": kind, "center": center, "neighbours": list(neigh)}
    for name in _PARAMS[kind]:
        if name == "rs" and name not in spec:
            out[name] = 0.0
            continue
        if name not in spec:
            raise HdnnpError(f"{where}{kind} needs parameter {name!r}")
        out[name] = float(spec[name])
    if kind in ANGULAR_TYPES:
        if out["lambda"] not in (-1.0, 1.0):
            raise HdnnpError(f"{where}lambda must be +1 or -1, got {out['lambda']}")
        if out["zeta"] < 1.0:
            raise HdnnpError(f"{where}zeta must be >= 1, got {out['zeta']}")
    if out["rc"] <= 0:
        raise HdnnpError(f"{where}rc must be positive")
    return out


class BehlerParrinello(Descriptor):
    """Element-resolved Behler–Parrinello symmetry functions (ænet ``Behler2011``).

    ``functions`` is a list of entries such as ``{"type": "G2", "center": "Ti",
    "neighbours": ["O"], "rc": 6.5, "eta": 0.5, "rs": 0.0}`` (angular types take two
    neighbour elements and ``eta``, ``lambda``, ``zeta``).  Features of each centre
    element are ordered as the entries appear.

    Example::

        >>> d = BehlerParrinello(["C"], [
        ...     {"type": "G2", "center": "C", "neighbours": ["C"], "rc": 5.0, "eta": 1.0},
        ...     {"type": "G5", "center": "C", "neighbours": ["C", "C"], "rc": 5.0,
        ...      "eta": 0.01, "lambda": 1, "zeta": 2}])
        >>> d.n_features("C")
        2
    """

    kind = "behler"

    def __init__(self, elements: Sequence[str], functions: Sequence[dict],
                 cutoff_function: str = "cos", cutoff_alpha: float = 0.0):
        super().__init__(elements)
        self.cutoff_kind = cutoff_function
        self.cutoff_alpha = float(cutoff_alpha)
        self.functions = [normalise_function_spec(f, self.elements, f"symmetry function {k}: ")
                          for k, f in enumerate(functions)]
        idx = {e: k for k, e in enumerate(self.elements)}
        grouped: dict[tuple, list[tuple[int, list[float]]]] = defaultdict(list)
        for f in self.functions:
            col = len(self.feature_names[f["center"]])
            self.feature_names[f["center"]].append(self._name(f))
            key_neigh = tuple(sorted(idx[e] for e in f["neighbours"]))
            grouped[(f["type"], idx[f["center"]], key_neigh, f["rc"])].append(
                (col, [f[p] for p in _PARAMS[f["type"]][1:]]))
        for (kind, center, neigh, rc), items in grouped.items():
            cutoff = CutoffFunction(self.cutoff_kind, rc, self.cutoff_alpha)
            params = np.array([p for _, p in items], dtype=np.float64).reshape(len(items), -1)
            cols = torch.tensor([c for c, _ in items], dtype=torch.long)
            if kind in RADIAL_TYPES:
                self.radial_groups.append(RadialGroup(
                    center=center, neighbour=neigh[0], cutoff=rc,
                    fn=_radial_fn(kind, cutoff, params), outputs=[GroupOutput(cols)]))
            else:
                self.angular_groups.append(AngularGroup(
                    center=center, neighbours=(neigh[0], neigh[1]), cutoff=rc,
                    fn=_angular_fn(kind, cutoff, params), outputs=[GroupOutput(cols)]))

    @staticmethod
    def _name(f: dict) -> str:
        params = ",".join(f"{p}={f[p]:g}" for p in _PARAMS[f["type"]])
        return f"{f['type']}[{f['center']}-{'-'.join(f['neighbours'])}]({params})"

    def to_config(self) -> dict:
        return {"kind": self.kind, "elements": list(self.elements),
                "cutoff_function": self.cutoff_kind, "cutoff_alpha": self.cutoff_alpha,
                "functions": [dict(f) for f in self.functions]}

    @classmethod
    def from_config(cls, cfg: dict) -> BehlerParrinello:
        return cls(cfg["elements"], cfg["functions"], cfg.get("cutoff_function", "cos"),
                   cfg.get("cutoff_alpha", 0.0))


def default_behler_functions(
    elements: Sequence[str], cutoff: float, n_radial: int = 8, n_angular: int = 4,
    r_min: float = 0.8, angular_type: str = "G5",
) -> list[dict]:
    r"""A generic symmetry-function set for users who give only a cutoff and a size.

    Radial: ``n_radial`` G2 functions per element pair, Gaussians centred on an even grid
    :math:`R_s \in [r_\mathrm{min}, R_c)` with width equal to the grid spacing
    (:math:`\eta = 1/(2\Delta^2)`), the "shifted" scheme of Imbalzano et al.,
    J. Chem. Phys. 148, 241730 (2018).
    Angular: ``n_angular`` functions per element triple, :math:`\lambda=\pm1` crossed
    with :math:`\zeta \in \{1, 2, 4, 16, \dots\}`, and a broad Gaussian
    :math:`\eta = 1/(2 (R_c/2)^2)`.
    """
    if n_radial < 1:
        raise HdnnpError("n_radial must be at least 1")
    spacing = (cutoff - r_min) / max(n_radial, 1)
    eta_r = 1.0 / (2.0 * spacing**2)
    shifts = [r_min + k * spacing for k in range(n_radial)]
    zetas = [1.0, 2.0, 4.0, 16.0, 8.0, 32.0]
    ang_params = []
    for k in range(n_angular):
        zeta = zetas[(k // 2) % len(zetas)]
        lam = 1.0 if k % 2 == 0 else -1.0
        ang_params.append((lam, zeta))
    eta_a = 1.0 / (2.0 * (cutoff / 2.0) ** 2)
    funcs: list[dict] = []
    for c in elements:
        for b in elements:
            for rs in shifts:
                funcs.append({"type": "G2", "center": c, "neighbours": [b], "rc": cutoff,
                              "eta": eta_r, "rs": rs})
        for ib, b in enumerate(elements):
            for cc in elements[ib:]:
                for lam, zeta in ang_params:
                    funcs.append({"type": angular_type, "center": c, "neighbours": [b, cc],
                                  "rc": cutoff, "eta": eta_a, "lambda": lam, "zeta": zeta})
    return funcs
