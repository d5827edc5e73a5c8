r"""n2p2/RuNNer atom-centred symmetry functions on the shared descriptor engine.

Every symmetry function (SF) type that n2p2 supports for short-range (2G) potentials is
implemented with the definitions of the n2p2 documentation (A. Singraber, J. Behler,
C. Dellago, J. Chem. Theory Comput. 15, 1827 (2019); n2p2 documentation "Symmetry
functions"; polynomial SFs: M. P. Bircher, A. Singraber, C. Dellago, Mach. Learn.: Sci.
Technol. 2, 035026 (2021), arXiv:2010.14414).  Lengths in Å, :math:`\eta` in Å⁻²,
angles in degrees, all SF values dimensionless.  :math:`f_c` is the n2p2 cutoff function
selected by ``cutoff_type`` (with inner cutoff :math:`\alpha r_c`, see
:mod:`hdnnp.descriptors.cutoffs`), the same for all functions of a potential.  Sums run
over neighbours :math:`j` (radial) or unordered neighbour pairs :math:`\{j, k\}`
(angular, n2p2's :math:`\sum_{j \ne i} \sum_{k > j}`).

Exponential (Gaussian) types, element-resolved (neighbour elements given):

.. math::

    G^{2}_i &= \sum_{j} e^{-\eta (r_{ij} - r_s)^2} f_c(r_{ij}) \\
    G^{3}_i &= 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta
               e^{-\eta [(r_{ij}-r_s)^2 + (r_{ik}-r_s)^2 + (r_{jk}-r_s)^2]}
               f_c(r_{ij}) f_c(r_{ik}) f_c(r_{jk}) \\
    G^{9}_i &= 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta
               e^{-\eta [(r_{ij}-r_s)^2 + (r_{ik}-r_s)^2]} f_c(r_{ij}) f_c(r_{ik})

(type 3 "narrow", type 9 "wide"; :math:`r_s` is optional for 3 and 9, default 0;
:math:`(1 + \lambda\cos\theta)^\zeta` is taken as 0 where :math:`1 + \lambda\cos\theta
\le 0`).  Element-weighted versions sum over all neighbours with the atomic numbers
:math:`Z` as weights: :math:`G^{12}_i = \sum_j Z_j\, e^{-\eta (r_{ij} - r_s)^2}
f_c(r_{ij})` and :math:`G^{13}_i` = :math:`G^3_i` with an extra factor :math:`Z_j Z_k`.

Polynomial ("compact") types use a function :math:`C(x; x_l, x_r)` with compact support
:math:`(x_l, x_r)`, centre :math:`c = (x_l + x_r)/2`, half width :math:`w = (x_r - x_l)/2`:

.. math::

    C(x; x_l, x_r) = \begin{cases} g\!\left(\frac{|x - c|}{w}\right) & |x - c| < w \\
                     0 & \text{otherwise} \end{cases}

with the core :math:`g` selected by ``subtype``: ``p1``–``p4`` are the polynomials of the
cutoff types 5–8, ``e`` is :math:`g(x) = e^{1 - 1/(1 - x^2)}`, and a suffix ``a``
("asymmetric", radial parts only) replaces :math:`x` by :math:`(2 - x)x`.  Then

.. math::

    G^{20}_i &= \sum_j C(r_{ij}; r_l, r_c) \qquad
    G^{23}_i = \sum_j Z_j\, C(r_{ij}; r_l, r_c) \\
    G^{21}_i &= \sum_{j<k} C(r_{ij}) C(r_{ik}) C(r_{jk})\, C(\theta_{ijk}; \theta_l, \theta_r)
    \qquad
    G^{22}_i = \sum_{j<k} C(r_{ij}) C(r_{ik})\, C(\theta_{ijk}; \theta_l, \theta_r)

and :math:`G^{24}`, :math:`G^{25}` are :math:`G^{21}`, :math:`G^{22}` over all neighbour
pairs with weight :math:`Z_j Z_k`.  :math:`r_l < 0` (e.g. :math:`r_l = -r_c`) centres the
radial function on :math:`r = 0`; an angular interval may extend below 0° or above 180°
only when centred on 0° or 180°.  Triplets with :math:`|\cos\theta| = 1` contribute 0
(as in n2p2).

Each function is given as a dict, e.g. ``{"type": 2, "center": "H", "neighbours": ["O"],
"eta": 0.5, "rs": 0.0, "rc": 6.0}`` (parameters by the names in :data:`SF_PARAMETERS`).
Features of each centre element are ordered as the functions are listed; n2p2 itself
orders them by :func:`n2p2_sort_key`, which the n2p2 reader and writer apply.

The engine (:mod:`hdnnp.descriptors.base`) sums the terms and differentiates them
exactly by automatic differentiation.  Functions of one centre element, neighbour
element(s), kind and cutoff form one group, evaluated as a ``[pairs, functions]`` or
``[triplets, functions]`` tensor; within a group the cutoff products, the distinct
Gaussians and the distinct angular factors are computed once and shared.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from ase.data import atomic_numbers

from hdnnp.descriptors import register_descriptor
from hdnnp.descriptors.base import (
    AngularGroup,
    Descriptor,
    GroupOutput,
    PairGeometry,
    RadialGroup,
)
from hdnnp.descriptors.cutoffs import N2P2_CUTOFF_TYPES, CutoffFunction, _poly
from hdnnp.errors import HdnnpError

#: Parameters of each n2p2 symmetry-function type, in the order of an n2p2
#: ``symfunction_short`` line after the element symbols.
SF_PARAMETERS: dict[int, tuple[str, ...]] = {
    2: ("eta", "rs", "rc"),
    3: ("eta", "lambda", "zeta", "rc", "rs"),
    9: ("eta", "lambda", "zeta", "rc", "rs"),
    12: ("eta", "rs", "rc"),
    13: ("eta", "rs", "lambda", "zeta", "rc"),
    20: ("rl", "rc", "subtype"),
    21: ("rl", "rc", "angle_left", "angle_right", "subtype"),
    22: ("rl", "rc", "angle_left", "angle_right", "subtype"),
    23: ("rl", "rc", "subtype"),
    24: ("rl", "rc", "angle_left", "angle_right", "subtype"),
    25: ("rl", "rc", "angle_left", "angle_right", "subtype"),
}
#: Number of neighbour elements named on a ``symfunction_short`` line of each type.
SF_NEIGHBOURS: dict[int, int] = {2: 1, 3: 2, 9: 2, 12: 0, 13: 0, 20: 1, 21: 2, 22: 2,
                                 23: 0, 24: 0, 25: 0}
#: Optional trailing parameters and their defaults.
SF_OPTIONAL: dict[int, dict[str, float]] = {3: {"rs": 0.0}, 9: {"rs": 0.0}}
RADIAL_SF_TYPES = (2, 12, 20, 23)
ANGULAR_SF_TYPES = (3, 9, 13, 21, 22, 24, 25)
WEIGHTED_SF_TYPES = (12, 13, 23, 24, 25)
COMPACT_SF_TYPES = (20, 21, 22, 23, 24, 25)
#: Parameters with the dimension of a length (Å inside, file units outside); ``eta``
#: has the dimension length⁻².
LENGTH_PARAMETERS = ("rs", "rl", "rc")
COMPACT_SUBTYPES = ("p1", "p2", "p3", "p4", "p1a", "p2a", "p3a", "p4a", "e")


def _num(x) -> float:
    return float(x)


def normalise_n2p2_function(spec: dict, elements: Sequence[str], where: str = "") -> dict:
    """Check one n2p2 symmetry-function entry and return it in canonical form."""
    try:
        kind = int(spec.get("type"))
    except (TypeError, ValueError):
        raise HdnnpError(f"{where}symmetry function type must be an integer, got "
                         f"{spec.get('type')!r}") from None
    if kind not in SF_PARAMETERS:
        raise HdnnpError(f"{where}unsupported n2p2 symmetry function type {kind} "
                         f"(supported: {', '.join(map(str, SF_PARAMETERS))})")
    center = spec.get("center")
    if center not in elements:
        raise HdnnpError(f"{where}centre element {center!r} is not one of {list(elements)}")
    neigh = spec.get("neighbours", spec.get("neighbors", []))
    if isinstance(neigh, str):
        neigh = [neigh]
    neigh = list(neigh or [])
    if len(neigh) != SF_NEIGHBOURS[kind]:
        raise HdnnpError(f"{where}type {kind} needs {SF_NEIGHBOURS[kind]} neighbour "
                         f"element(s), got {neigh!r}")
    for e in neigh:
        if e not in elements:
            raise HdnnpError(f"{where}neighbour element {e!r} is not one of {list(elements)}")
    out: dict = {"type": kind, "center": center, "neighbours": neigh}
    for name in SF_PARAMETERS[kind]:
        if name not in spec:
            if name in SF_OPTIONAL.get(kind, {}):
                out[name] = SF_OPTIONAL[kind][name]
                continue
            raise HdnnpError(f"{where}type {kind} needs parameter {name!r}")
        out[name] = str(spec[name]) if name == "subtype" else _num(spec[name])
    if not out["rc"] > 0:
        raise HdnnpError(f"{where}rc must be positive, got {out['rc']}")
    if kind in COMPACT_SF_TYPES:
        if out["subtype"] not in COMPACT_SUBTYPES:
            raise HdnnpError(f"{where}unknown compact function subtype {out['subtype']!r} "
                             f"(known: {', '.join(COMPACT_SUBTYPES)})")
        if not out["rl"] < out["rc"]:
            raise HdnnpError(f"{where}rl must be smaller than rc")
        if "angle_left" in out:
            left, right = out["angle_left"], out["angle_right"]
            center_angle = 0.5 * (left + right)
            if not left < right:
                raise HdnnpError(f"{where}angle_left must be smaller than angle_right")
            if (left < 0.0 and center_angle != 0.0) or (right > 180.0 and center_angle != 180.0):
                raise HdnnpError(f"{where}an angular interval outside [0, 180] degrees must be "
                                 "centred on 0 or 180 degrees")
            if right - left > 360.0:
                raise HdnnpError(f"{where}angular interval wider than 360 degrees")
    else:
        if not out["eta"] >= 0:
            raise HdnnpError(f"{where}eta must be non-negative, got {out['eta']}")
    if "zeta" in out and not out["zeta"] > 0:
        raise HdnnpError(f"{where}zeta must be positive, got {out['zeta']}")
    return out


def convert_function_units(spec: dict, length: float) -> dict:
    """A copy of ``spec`` with lengths multiplied by ``length`` (and η divided by its square).

    ``length`` converts the spec's length unit to the target unit (``hdnnp.units.BOHR`` for
    a Bohr file read into Å; ``1 / BOHR`` to write Å values in Bohr).
    """
    out = dict(spec)
    out["neighbours"] = list(spec.get("neighbours", []))
    for name in LENGTH_PARAMETERS:
        if name in out:
            out[name] = float(out[name]) * length
    if "eta" in out:
        out["eta"] = float(out["eta"]) / (length * length)
    return out


def n2p2_sort_key(spec: dict, element_index: dict[str, int]) -> tuple:
    """The key by which n2p2 orders the symmetry functions of one element.

    n2p2 sorts the functions of each element (``Element::sortSymmetryFunctions``) with the
    comparison operators of its SF classes: type first, then for the Gaussian types
    r_c, η, r_s, (ζ, λ,) neighbour element indices (elements indexed by increasing atomic
    number), for the compact types the subtype, neighbour indices, r_c, r_l and the angles.
    The cutoff type and α are common to all functions and do not change the order.  The
    network inputs and the lines of ``scaling.data`` follow this order.
    """
    t = int(spec["type"])
    nb = sorted(element_index[e] for e in spec.get("neighbours", []))
    if t in (2,):
        return (t, spec["rc"], spec["eta"], spec["rs"], *nb)
    if t in (3, 9):
        return (t, spec["rc"], spec["eta"], spec["rs"], spec["zeta"], spec["lambda"], *nb)
    if t == 12:
        return (t, spec["rc"], spec["eta"], spec["rs"])
    if t == 13:
        return (t, spec["rc"], spec["eta"], spec["rs"], spec["zeta"], spec["lambda"])
    if t == 20:
        return (t, spec["subtype"], *nb, spec["rc"], spec["rl"])
    if t in (21, 22):
        return (t, spec["subtype"], *nb, spec["rc"], spec["rl"], spec["angle_left"],
                spec["angle_right"])
    if t == 23:
        return (t, spec["subtype"], spec["rc"], spec["rl"])
    return (t, spec["subtype"], spec["rc"], spec["rl"], spec["angle_left"], spec["angle_right"])


def elements_by_atomic_number(elements: Sequence[str]) -> list[str]:
    """Elements in n2p2's order (increasing atomic number)."""
    try:
        return sorted(elements, key=lambda e: atomic_numbers[e])
    except KeyError as exc:
        raise HdnnpError(f"unknown chemical element {exc.args[0]!r}") from None


# --------------------------------------------------------------------------- functions
class _ParamCache:
    """Parameter arrays as tensors, converted once per dtype/device."""

    def __init__(self, **arrays: np.ndarray):
        self.arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        self._cache: dict = {}

    def get(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = {k: torch.as_tensor(v, dtype=like.dtype, device=like.device)
                                for k, v in self.arrays.items()}
        return self._cache[key]


def _core(subtype: str, x: torch.Tensor) -> torch.Tensor:
    """Core function g(x) of a compact function for 0 <= x < 1 (see module docstring):
    the polynomials of cutoff types 5-8 or e^{1 - 1/(1 - x^2)}."""
    if subtype.endswith("a"):
        x = (2.0 - x) * x
        subtype = subtype[:-1]
    if subtype.startswith("p"):
        return _poly(f"poly{subtype[1]}", x)
    return math.e * torch.exp(1.0 / (x * x - 1.0))  # "e", evaluated only for x < 1


def compact_function(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                     subtype: str) -> torch.Tensor:
    """C(x; left, right) (broadcasting), zero outside the open interval (left, right)."""
    center = 0.5 * (left + right)
    width = 0.5 * (right - left)
    a = (x - center).abs() / width
    inside = a < 1.0
    a_safe = torch.where(inside, a, torch.zeros_like(a))
    return torch.where(inside, _core(subtype, a_safe), torch.zeros_like(a))


def _radial_gaussian_fn(cutoff: CutoffFunction, eta: np.ndarray, rs: np.ndarray):
    params = _ParamCache(eta=eta, rs=rs)
    zero_shift = bool(np.all(rs == 0.0))

    def fn(r: torch.Tensor) -> torch.Tensor:
        p = params.get(r)
        fc = cutoff(r).unsqueeze(-1)
        rr = r.unsqueeze(-1)
        arg = rr * rr if zero_shift else (rr - p["rs"]) ** 2
        return torch.exp(-p["eta"] * arg) * fc

    return fn


def _radial_compact_fn(rl: np.ndarray, rc: np.ndarray, subtypes: list[str]):
    """Compact radial functions; returns (fn, order): fn's columns are items ``order``."""
    by_sub: dict[str, list[int]] = defaultdict(list)
    for k, sub in enumerate(subtypes):
        by_sub[sub].append(k)
    order = [k for ks in by_sub.values() for k in ks]
    parts = [(sub, _ParamCache(rl=rl[ks], rc=rc[ks])) for sub, ks in by_sub.items()]

    def fn(r: torch.Tensor) -> torch.Tensor:
        out = []
        for sub, params in parts:
            p = params.get(r)
            out.append(compact_function(r.unsqueeze(-1), p["rl"], p["rc"], sub))
        return out[0] if len(out) == 1 else torch.cat(out, -1)

    return fn, order


def _power(base: torch.Tensor, zeta: float) -> torch.Tensor:
    """base**zeta for base >= 0 (repeated multiplication for small integer zeta)."""
    if zeta == int(zeta) and 1 <= zeta <= 16:
        n = int(zeta)
        out, sq = None, base
        while n:
            if n & 1:
                out = sq if out is None else out * sq
            n >>= 1
            if n:
                sq = sq * sq
        return out
    pos = base > 0.0
    return torch.where(pos, torch.where(pos, base, torch.ones_like(base)) ** zeta,
                       torch.zeros_like(base))


def _angular_gaussian_fn(kind: int, cutoff: CutoffFunction, items: list[dict]):
    """Types 3, 9, 13; returns (fn, order): fn's columns are items ``order``.

    The cutoff product, the squared-distance sum and one angular factor per distinct
    (λ, ζ) are computed once per triplet and shared by all functions of the group.
    """
    narrow = kind in (3, 13)
    by_ang: dict[tuple[float, float], list[int]] = defaultdict(list)
    for k, f in enumerate(items):
        by_ang[(f["lambda"], f["zeta"])].append(k)
    order = [k for ks in by_ang.values() for k in ks]
    zero_shift = all(f["rs"] == 0.0 for f in items)
    parts = [(lam, zeta, _ParamCache(eta=[items[k]["eta"] for k in ks],
                                     rs=[items[k]["rs"] for k in ks]))
             for (lam, zeta), ks in by_ang.items()]

    def fn(r_ij, r_ik, r_jk, cos):
        fc = cutoff(r_ij) * cutoff(r_ik)
        if narrow:
            fc = fc * cutoff(r_jk)
        if zero_shift:
            s = r_ij * r_ij + r_ik * r_ik
            if narrow:
                s = s + r_jk * r_jk
            s = s.unsqueeze(-1)
        out = []
        for lam, zeta, params in parts:
            p = params.get(r_ij)
            if not zero_shift:
                s = (r_ij.unsqueeze(-1) - p["rs"]) ** 2 + (r_ik.unsqueeze(-1) - p["rs"]) ** 2
                if narrow:
                    s = s + (r_jk.unsqueeze(-1) - p["rs"]) ** 2
            # 2^(1-zeta) (1 + lambda cos)^zeta, zero where 1 + lambda cos <= 0
            w = _power((1.0 + lam * cos).clamp_min(0.0), zeta) * (2.0 ** (1.0 - zeta) * fc)
            out.append(torch.exp(-p["eta"] * s) * w.unsqueeze(-1))
        return out[0] if len(out) == 1 else torch.cat(out, -1)

    return fn, order


def _angular_compact_fn(kind: int, items: list[dict]):
    """Types 21, 22, 24, 25 (compact radial parts times a compact angular part); returns
    (fn, order): fn's columns are items ``order``."""
    narrow = kind in (21, 24)
    subtypes = [f["subtype"] for f in items]
    params = _ParamCache(
        rl=[f["rl"] for f in items], rc=[f["rc"] for f in items],
        tl=[math.radians(f["angle_left"]) for f in items],
        tr=[math.radians(f["angle_right"]) for f in items])
    by_sub: dict[str, list[int]] = defaultdict(list)
    for k, s in enumerate(subtypes):
        by_sub[s].append(k)
    order = [k for ks in by_sub.values() for k in ks]
    single = len(by_sub) == 1

    def fn(r_ij, r_ik, r_jk, cos):
        p = params.get(r_ij)
        valid = (cos > -1.0) & (cos < 1.0)
        theta = torch.acos(torch.where(valid, cos, torch.zeros_like(cos)))
        parts = []
        for sub, ks in by_sub.items():
            idx = slice(None) if single else torch.as_tensor(ks, device=r_ij.device)
            rl, rc = p["rl"][idx], p["rc"][idx]
            val = compact_function(r_ij.unsqueeze(-1), rl, rc, sub) * compact_function(
                r_ik.unsqueeze(-1), rl, rc, sub)
            if narrow:
                val = val * compact_function(r_jk.unsqueeze(-1), rl, rc, sub)
            ang_sub = sub[:-1] if sub.endswith("a") else sub  # asymmetry: radial parts only
            tl, tr = p["tl"][idx], p["tr"][idx]
            t = theta.unsqueeze(-1)
            in_range = (t >= tl) & (t <= tr)
            ang = compact_function(t, tl, tr, ang_sub)
            ang = torch.where(in_range, ang, torch.zeros_like(ang))
            parts.append(val * ang)
        out = parts[0] if single else torch.cat(parts, -1)
        return torch.where(valid.unsqueeze(-1), out, torch.zeros_like(out))

    return fn, order


@register_descriptor
class N2P2SymmetryFunctions(Descriptor):
    """Symmetry functions of n2p2/RuNNer (types 2, 3, 9, 12, 13, 20–25), lengths in Å.

    ``cutoff_type`` is n2p2's cutoff type number (0–8) or its name (see
    :data:`hdnnp.descriptors.cutoffs.N2P2_CUTOFF_TYPES`) and ``cutoff_alpha`` the inner
    cutoff parameter α; both apply to all Gaussian types (the compact types need no
    cutoff function).

    Example::

        >>> d = N2P2SymmetryFunctions(["H", "O"], [
        ...     {"type": 2, "center": "O", "neighbours": ["H"], "eta": 0.5, "rs": 0.0,
        ...      "rc": 6.0},
        ...     {"type": 3, "center": "O", "neighbours": ["H", "H"], "eta": 0.1,
        ...      "lambda": -1, "zeta": 4, "rc": 6.0}], cutoff_type=2)
        >>> d.n_features("O"), d.n_features("H")
        (2, 0)
    """

    kind = "n2p2"

    def __init__(self, elements: Sequence[str], functions: Sequence[dict],
                 cutoff_type: int | str = 1, cutoff_alpha: float = 0.0):
        super().__init__(elements)
        if isinstance(cutoff_type, str) and not cutoff_type.strip().isdigit():
            names = {v: k for k, v in N2P2_CUTOFF_TYPES.items()}
            if cutoff_type not in names:
                raise HdnnpError(f"unknown cutoff type {cutoff_type!r}")
            cutoff_type = names[cutoff_type]
        self.cutoff_type = int(cutoff_type)
        if self.cutoff_type not in N2P2_CUTOFF_TYPES:
            raise HdnnpError(f"unknown n2p2 cutoff type {self.cutoff_type} (known: 0-8)")
        self.cutoff_alpha = float(cutoff_alpha)
        self.functions = [normalise_n2p2_function(f, self.elements, f"symmetry function {k}: ")
                          for k, f in enumerate(functions)]
        unknown = [e for e in self.elements if e not in atomic_numbers]
        if unknown:
            raise HdnnpError(f"unknown chemical element(s) {unknown}")
        z = torch.tensor([float(atomic_numbers[e]) for e in self.elements], dtype=torch.float64)
        self._z_radial = z
        self._z_angular = z.unsqueeze(1) * z.unsqueeze(0)
        self._build_groups()

    # ------------------------------------------------------------------ groups
    def _build_groups(self) -> None:
        idx = {e: k for k, e in enumerate(self.elements)}
        grouped: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
        for f in self.functions:
            col = len(self.feature_names[f["center"]])
            self.feature_names[f["center"]].append(self.function_name(f))
            t = f["type"]
            neigh = tuple(sorted(idx[e] for e in f["neighbours"]))
            if t in COMPACT_SF_TYPES:
                # compact functions carry their own support; group by subtype family
                key = (t, idx[f["center"]], neigh, None)
            else:
                key = (t, idx[f["center"]], neigh, f["rc"])
            grouped[key].append((col, f))
        for (t, center, neigh, _), members in grouped.items():
            cols = [c for c, _ in members]
            items = [f for _, f in members]
            rc = max(f["rc"] for f in items)
            weighted = t in WEIGHTED_SF_TYPES
            if t in RADIAL_SF_TYPES:
                if t in (2, 12):
                    cutoff = CutoffFunction(N2P2_CUTOFF_TYPES[self.cutoff_type], rc,
                                            self.cutoff_alpha)
                    fn = _radial_gaussian_fn(cutoff, np.array([f["eta"] for f in items]),
                                             np.array([f["rs"] for f in items]))
                    order = list(range(len(items)))
                else:
                    fn, order = _radial_compact_fn(np.array([f["rl"] for f in items]),
                                                   np.array([f["rc"] for f in items]),
                                                   [f["subtype"] for f in items])
                out = GroupOutput(torch.tensor([cols[k] for k in order], dtype=torch.long),
                                  self._z_radial if weighted else None)
                self.radial_groups.append(RadialGroup(
                    center=center, neighbour=None if weighted else neigh[0], cutoff=rc,
                    fn=fn, outputs=[out]))
            else:
                if t in (3, 9, 13):
                    cutoff = CutoffFunction(N2P2_CUTOFF_TYPES[self.cutoff_type], rc,
                                            self.cutoff_alpha)
                    fn, order = _angular_gaussian_fn(t, cutoff, items)
                else:
                    fn, order = _angular_compact_fn(t, items)
                out = GroupOutput(torch.tensor([cols[k] for k in order], dtype=torch.long),
                                  self._z_angular if weighted else None)
                group = AngularGroup(
                    center=center, neighbours=None if weighted else (neigh[0], neigh[1]),
                    cutoff=rc, fn=fn, outputs=[out])
                # narrow types vanish unless r_jk < r_c: see angular_selection
                group.n2p2_narrow = t in (3, 13, 21, 24)
                self.angular_groups.append(group)

    # --------------------------------------------------------------- selection
    def angular_selection(self, geom: PairGeometry, group: AngularGroup):
        """Triplets (pair-index lists a, b) of ``group``: the triplets the engine's
        selection gives, minus those that contribute exactly zero to a narrow type
        (r_jk >= r_c, where f_c(r_jk) = 0 and C(r_jk) = 0 with zero derivative).
        """
        a, b = super().angular_selection(geom, group)
        if getattr(group, "n2p2_narrow", False) and a.numel():
            with torch.no_grad():
                # single precision halves the memory traffic; the relative margin (30x the
                # float32 error of r_jk^2) only keeps a few extra triplets whose terms are 0
                if "v32" not in geom.cache:
                    geom.cache["v32"] = geom.vectors.detach().float()
                v = geom.cache["v32"]
                d = torch.index_select(v, 0, b) - torch.index_select(v, 0, a)
                keep = torch.nonzero((d * d).sum(-1) < group.cutoff**2 * (1.0 + 1e-5)
                                     ).squeeze(1)
                a, b = a[keep], b[keep]
        return a, b

    @staticmethod
    def function_name(f: dict) -> str:
        params = ",".join(f"{p}={f[p]:g}" if p != "subtype" else f"{f[p]}"
                          for p in SF_PARAMETERS[f["type"]])
        neigh = "-".join(f["neighbours"]) if f["neighbours"] else "*"
        return f"n2p2-{f['type']}[{f['center']}-{neigh}]({params})"

    # ---------------------------------------------------------- serialisation
    def to_config(self) -> dict:
        return {"kind": self.kind, "elements": list(self.elements),
                "cutoff_type": self.cutoff_type, "cutoff_alpha": self.cutoff_alpha,
                "functions": [dict(f, neighbours=list(f["neighbours"])) for f in self.functions]}

    @classmethod
    def from_config(cls, cfg: dict) -> N2P2SymmetryFunctions:
        return cls(cfg["elements"], cfg["functions"], cfg.get("cutoff_type", 1),
                   cfg.get("cutoff_alpha", 0.0))

    def describe(self) -> str:
        name = N2P2_CUTOFF_TYPES[self.cutoff_type]
        lines = [f"n2p2 symmetry functions, cutoff type {self.cutoff_type} ({name}, "
                 f"alpha {self.cutoff_alpha:g}), cutoff {self.cutoff:.3f} Å"]
        for e in self.elements:
            counts: dict[int, int] = defaultdict(int)
            for f in self.functions:
                if f["center"] == e:
                    counts[f["type"]] += 1
            types = ", ".join(f"{n}× type {t}" for t, n in sorted(counts.items()))
            lines.append(f"  {e}: {self.n_features(e)} features ({types or 'none'})")
        return "\n".join(lines)


__all__ = [
    "ANGULAR_SF_TYPES",
    "COMPACT_SF_TYPES",
    "RADIAL_SF_TYPES",
    "SF_NEIGHBOURS",
    "SF_PARAMETERS",
    "WEIGHTED_SF_TYPES",
    "N2P2SymmetryFunctions",
    "compact_function",
    "convert_function_units",
    "elements_by_atomic_number",
    "n2p2_sort_key",
    "normalise_n2p2_function",
]
