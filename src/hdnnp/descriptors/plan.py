r"""Term plans: every descriptor as flat tables of radial records and angular groups.

A descriptor lists its terms as :class:`RadialTerm` and :class:`AngularTerm` objects (one
per feature, or per Chebyshev series); :func:`build_plan` sorts them into the tables of a
:class:`TermPlan` that both evaluators read — the compiled kernels
(:mod:`hdnnp.descriptors.kernels`) and the tensor path (:mod:`hdnnp.descriptors.tensor`).

Radial records (per centre element c and neighbour element s, in CSR order ``rad_off``):

==========  =================================================  ======================
kind        value at distance r (Å)                            parameters (q0, q1)
==========  =================================================  ======================
gauss       :math:`e^{-\eta (r - r_s)^2} f_c(r)`               η (Å⁻²), r_s (Å)
cos         :math:`\cos(\kappa r) f_c(r)`                      κ (Å⁻¹), —
compact     :math:`C(r; r_l, r_c)`                             r_l, r_c (Å)
cheb        :math:`T_n(2r/r_c - 1) f_c(r)`, n = 0 … N          r_c (Å), —
==========  =================================================  ======================

each multiplied by a per-neighbour-element weight (1, the atomic number Z for n2p2's
weighted types, ænet's type spin); a record may write a second, differently weighted copy
(``col2``, ``weight2``: ænet's species-weighted Chebyshev features).

Angular groups (per centre element and unordered neighbour element pair (lo, hi)): one
group shares its cutoff function and support; its terms are

* gauss (n2p2 3, 9, 13; Behler G4, G5): :math:`2^{1-\zeta}(1 + \lambda\cos\theta)^\zeta
  e^{-\eta[(r_{ij}-r_s)^2 + (r_{ik}-r_s)^2 (+ (r_{jk}-r_s)^2)]} f_c f_c (f_c)` — the
  group lists its distinct η and distinct (λ, ζ) once, every term indexes them;
* compact (n2p2 21, 22, 24, 25): :math:`C(r_{ij}) C(r_{ik}) (C(r_{jk})) C(\theta;
  \theta_l, \theta_r)` — distinct radial windows and angular windows, terms sorted by
  radial window;
* cheb (ænet): :math:`T_n(\cos\theta) f_c(r_{ij}) f_c(r_{ik})`, n = 0 … N, plain and
  species-weighted (weight :math:`s_j s_k`).

"Narrow" groups contain :math:`r_{jk}` and vanish unless :math:`r_{jk} < r_c`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from hdnnp.descriptors.cutoffs import N2P2_CUTOFF_TYPES, CutoffFunction

RADIAL_KINDS = {"gauss": 0, "cos": 1, "compact": 2, "cheb": 3}
ANGULAR_KINDS = {"gauss": 0, "compact": 1, "cheb": 2}
_CUTOFF_CODES = {name: code for code, name in N2P2_CUTOFF_TYPES.items()}


def compact_subtype_code(subtype: str, angular: bool = False) -> int:
    """Kernel code of a compact-function subtype: p1-p4 → 1-4, e → 5, +10 asymmetric
    (angular parts ignore the asymmetry, as n2p2 does)."""
    asym = subtype.endswith("a") and not angular
    base = subtype[:-1] if subtype.endswith("a") else subtype
    code = 5 if base == "e" else int(base[1])
    return code + (10 if asym else 0)


@dataclass
class RadialTerm:
    """One radial record (see the module docstring); ``neighbour=None`` sums over all
    neighbours with ``weights[s]`` per element (and ``weights2`` for ``col2``)."""

    center: int
    neighbour: int | None
    kind: str
    q0: float
    q1: float = 0.0
    col: int = 0
    ncol: int = 1
    cutoff: CutoffFunction | None = None
    subtype: str = ""
    weights: np.ndarray | None = None
    col2: int = -1
    weights2: np.ndarray | None = None

    @property
    def support(self) -> float:
        return self.q1 if self.kind == "compact" else self.cutoff.rc


@dataclass
class AngularTerm:
    """One angular function (or a Chebyshev series) of the triplets (i; j, k) with centre
    element ``center`` and neighbour elements ``neighbours`` (unordered; ``None``: all,
    with ``weights[s_j, s_k]``)."""

    center: int
    neighbours: tuple[int, int] | None
    kind: str
    narrow: bool = False
    cutoff: CutoffFunction | None = None
    eta: float = 0.0
    rs: float = 0.0
    lam: float = 1.0
    zeta: float = 1.0
    rl: float = 0.0
    rc: float = 0.0
    angle_left: float = 0.0  # radians
    angle_right: float = 0.0
    subtype: str = ""
    order: int = 0
    col: int = 0
    weights: np.ndarray | None = None
    col2: int = -1
    weights2: np.ndarray | None = None


class TermPlan(NamedTuple):
    """Flat tables of a descriptor's terms (field meanings in ``kernels.py``)."""

    n_species: int
    n_features: int
    max_local: int
    max_lz: int
    cut_kind: np.ndarray
    cut_rc: np.ndarray
    cut_alpha: np.ndarray
    rad_off: np.ndarray
    rad_int: np.ndarray
    rad_flt: np.ndarray
    ang_off: np.ndarray
    grp_int: np.ndarray
    grp_flt: np.ndarray
    eta_off: np.ndarray
    eta_tab: np.ndarray
    rwin_off: np.ndarray
    rwin_flt: np.ndarray
    rwin_int: np.ndarray
    awin_flt: np.ndarray
    awin_int: np.ndarray
    lz_tab: np.ndarray
    term_int: np.ndarray
    term_flt: np.ndarray
    rcol_pos: np.ndarray
    vcol_pos: np.ndarray


@dataclass
class PlanLayout:
    """What the Python side needs besides the tables: per (centre, neighbour) element the
    reachable radial and angular columns, the angular support, and the pair-cache widths."""

    radial_columns: list[list[list[int]]]
    vector_columns: list[list[list[int]]]
    vector_cutoff: np.ndarray
    n_cutoffs: int
    n_etas: int
    n_windows: int
    max_group_etas: int
    groups_per_element: int
    max_groups_per_pair: int
    max_cutoff: float
    max_angular_cutoff: float
    extras: dict = field(default_factory=dict)


def _species_weights(term, n: int, second: bool = False):
    w = term.weights2 if second else term.weights
    return np.ones(n) if w is None else np.asarray(w, dtype=np.float64)


def build_plan(n_species: int, n_features: int, radial: list[RadialTerm],
               angular: list[AngularTerm]) -> tuple[TermPlan, PlanLayout]:
    """Tables of ``radial`` and ``angular`` terms for ``n_species`` elements and feature
    rows of width ``n_features``."""
    S = n_species
    cutoffs: dict[tuple, int] = {}

    def cut_index(cf: CutoffFunction | None) -> int:
        if cf is None:
            return -1
        key = (_CUTOFF_CODES[cf.kind], float(cf.rc), float(cf.alpha))
        return cutoffs.setdefault(key, len(cutoffs))

    # ------------------------------------------------------------ radial records
    rad_by: dict[tuple[int, int], list] = defaultdict(list)
    for t in radial:
        targets = range(S) if t.neighbour is None else [t.neighbour]
        for s in targets:
            w1 = _species_weights(t, S)[s] if t.neighbour is None else 1.0
            w2 = _species_weights(t, S, True)[s] if t.col2 >= 0 else 0.0
            if w1 == 0.0 and w2 == 0.0:
                continue
            arg = (compact_subtype_code(t.subtype) if t.kind == "compact"
                   else cut_index(t.cutoff))
            rad_by[t.center, s].append(
                ((RADIAL_KINDS[t.kind], arg, t.col, t.ncol, t.col2),
                 (t.q0, t.q1, w1, t.support, w2)))
    rad_int, rad_flt = [], []
    rad_off = np.zeros((S, S + 1), dtype=np.int64)
    rcols = [[set() for _ in range(S)] for _ in range(S)]
    for c in range(S):
        for s in range(S):
            rad_off[c, s] = len(rad_int)
            for ints, flts in rad_by[c, s]:
                rad_int.append(ints)
                rad_flt.append(flts)
                rcols[c][s].update(range(ints[2], ints[2] + ints[3]))
                if ints[4] >= 0:
                    rcols[c][s].update(range(ints[4], ints[4] + ints[3]))
        rad_off[c, S] = len(rad_int)

    # ------------------------------------------------------------ angular groups
    grouped: dict[tuple, list] = defaultdict(list)
    for t in angular:
        pairs = ([(lo, hi) for lo in range(S) for hi in range(lo, S)] if t.neighbours is None
                 else [tuple(sorted(t.neighbours))])
        for lo, hi in pairs:
            w1 = _species_weights(t, S)[lo, hi] if t.neighbours is None else 1.0
            w2 = _species_weights(t, S, True)[lo, hi] if t.col2 >= 0 else 0.0
            if w1 == 0.0 and w2 == 0.0:
                continue
            if t.kind == "gauss":
                key = (t.center, lo, hi, "gauss", t.narrow, cut_index(t.cutoff), t.rs)
            elif t.kind == "compact":
                key = (t.center, lo, hi, "compact", t.narrow)
            else:
                key = (t.center, lo, hi, "cheb", cut_index(t.cutoff), t.order, t.col, t.col2)
            grouped[key].append((t, w1, w2))

    eta_tab: list[list[tuple]] = [[] for _ in range(S)]
    rwin_tab: list[list[tuple]] = [[] for _ in range(S)]
    awin_flt, awin_int, lz_tab, term_int, term_flt = [], [], [], [], []
    groups: dict[tuple[int, int, int], list] = defaultdict(list)
    vcols = [[set() for _ in range(S)] for _ in range(S)]
    vcut = np.zeros((S, S))
    max_local = 2
    for key in sorted(grouped, key=lambda k: (k[0], k[1], k[2], str(k[3:]))):
        members = grouped[key]
        c, lo, hi, kind = key[:4]
        t0 = len(term_int)
        gi = [ANGULAR_KINDS[kind], 0, -1, 0, 0, 0, 0, t0, t0, -1, -1]
        gf = [0.0, 1.0, 0.0, 0.0]
        cols = set()
        if kind == "gauss":
            narrow, cut, rs = key[4], key[5], key[6]
            etas = sorted({t.eta for t, _, _ in members})
            lzs = sorted({(t.lam, t.zeta) for t, _, _ in members})
            gi[1], gi[2] = int(narrow), cut
            gi[3], gi[4] = len(eta_tab[c]), len(etas)
            gi[5], gi[6] = len(lz_tab), len(lzs)
            eta_tab[c].extend((e, rs) for e in etas)
            lz_tab.extend(lzs)
            for t, w1, _ in members:
                term_int.append((etas.index(t.eta), lzs.index((t.lam, t.zeta)), t.col, 0))
                term_flt.append(2.0 ** (1.0 - t.zeta) * w1)
                cols.add(t.col)
            gf[0], gf[2] = members[0][0].cutoff.rc, rs
            max_local = max(max_local, len(etas), len(lzs), len(members))
        elif kind == "compact":
            gi[1] = int(key[4])
            wins = sorted({(t.rl, t.rc, compact_subtype_code(t.subtype)) for t, _, _ in members})
            angs = sorted({(t.angle_left, t.angle_right, compact_subtype_code(t.subtype, True))
                           for t, _, _ in members})
            gi[3], gi[4] = len(rwin_tab[c]), len(wins)
            gi[5], gi[6] = len(awin_flt), len(angs)
            rwin_tab[c].extend(wins)
            awin_flt.extend((a, b) for a, b, _ in angs)
            awin_int.extend(code for _, _, code in angs)
            rows = sorted(((wins.index((t.rl, t.rc, compact_subtype_code(t.subtype))),
                            angs.index((t.angle_left, t.angle_right,
                                        compact_subtype_code(t.subtype, True))), t.col, w1)
                           for t, w1, _ in members))
            for k, (w, a, col, w1) in enumerate(rows):
                nxt = k + 1
                while nxt < len(rows) and rows[nxt][0] == w:
                    nxt += 1
                term_int.append((w, a, col, t0 + nxt))
                term_flt.append(w1)
                cols.add(col)
            gf[0] = max(w[1] for w in wins)
            max_local = max(max_local, len(angs), len(rows))
        else:
            t, w1, w2 = members[0]
            gi[2], gi[4] = key[4], t.order
            gi[9], gi[10] = t.col, t.col2
            gf[0], gf[1], gf[3] = t.cutoff.rc, w1, w2
            cols.update(range(t.col, t.col + t.order + 1))
            if t.col2 >= 0:
                cols.update(range(t.col2, t.col2 + t.order + 1))
            max_local = max(max_local, t.order + 1)
        gi[8] = len(term_int)
        groups[c, lo, hi].append((gi, gf))
        for s in {lo, hi}:
            vcols[c][s].update(cols)
            vcut[c, s] = max(vcut[c, s], gf[0])

    ang_off = np.zeros(S * S * S + 1, dtype=np.int64)
    grp_int, grp_flt = [], []
    per_element = np.zeros(S, dtype=np.int64)
    for c in range(S):
        for lo in range(S):
            for hi in range(S):
                k = (c * S + lo) * S + hi
                ang_off[k] = len(grp_int)
                if hi >= lo:
                    for gi, gf in groups.get((c, lo, hi), []):
                        grp_int.append(gi)
                        grp_flt.append(gf)
                        per_element[c] += 1
    ang_off[-1] = len(grp_int)

    def offsets(tabs):
        off = np.zeros(S + 1, dtype=np.int64)
        off[1:] = np.cumsum([len(t) for t in tabs])
        return off

    rwin_flat = [w for tab in rwin_tab for w in tab]
    for t in radial:
        max_local = max(max_local, t.ncol + 1)

    def positions(cols_by):
        pos = np.full((S * S, max(n_features, 1)), -1, dtype=np.int64)
        lists = [[sorted(cols_by[c][s]) for s in range(S)] for c in range(S)]
        for c in range(S):
            for s in range(S):
                for k, col in enumerate(lists[c][s]):
                    pos[c * S + s, col] = k
        return pos, lists

    rpos, rlists = positions(rcols)
    vpos, vlists = positions(vcols)
    cut_list = sorted(cutoffs, key=cutoffs.get)

    def arr(rows, width, dtype):
        return (np.asarray(rows, dtype=dtype).reshape(-1, width) if rows
                else np.zeros((0, width), dtype=dtype))

    plan = TermPlan(
        n_species=S, n_features=n_features, max_local=int(max_local + 1),
        max_lz=int(max((g[0][6] for gs in groups.values() for g in gs
                        if g[0][0] == ANGULAR_KINDS["gauss"]), default=0)),
        cut_kind=np.array([k[0] for k in cut_list], dtype=np.int64),
        cut_rc=np.array([k[1] for k in cut_list], dtype=np.float64),
        cut_alpha=np.array([k[2] for k in cut_list], dtype=np.float64),
        rad_off=rad_off, rad_int=arr(rad_int, 5, np.int64), rad_flt=arr(rad_flt, 5, np.float64),
        ang_off=ang_off, grp_int=arr(grp_int, 11, np.int64), grp_flt=arr(grp_flt, 4, np.float64),
        eta_off=offsets(eta_tab), eta_tab=arr([e for tab in eta_tab for e in tab], 2, np.float64),
        rwin_off=offsets(rwin_tab), rwin_flt=arr([w[:2] for w in rwin_flat], 2, np.float64),
        rwin_int=np.array([w[2] for w in rwin_flat], dtype=np.int64),
        awin_flt=arr(awin_flt, 2, np.float64), awin_int=np.array(awin_int, dtype=np.int64),
        lz_tab=arr([(lam, z, float(int(z)) if z == int(z) and 1 <= z <= 64 else 0.0)
                    for lam, z in lz_tab], 3, np.float64),
        term_int=arr(term_int, 4, np.int64),
        term_flt=np.array(term_flt, dtype=np.float64), rcol_pos=rpos, vcol_pos=vpos)
    supports = [t.support for t in radial] + [float(g[1][0]) for gs in groups.values()
                                              for g in gs]
    layout = PlanLayout(
        radial_columns=rlists, vector_columns=vlists, vector_cutoff=vcut,
        n_cutoffs=len(cut_list), n_etas=max((len(t) for t in eta_tab), default=0),
        n_windows=max((len(t) for t in rwin_tab), default=0),
        max_group_etas=max((g[0][4] for gs in groups.values() for g in gs
                            if g[0][0] == ANGULAR_KINDS["gauss"]), default=0),
        groups_per_element=int(per_element.max()) if S else 0,
        max_groups_per_pair=max((len(gs) for gs in groups.values()), default=0),
        max_cutoff=max(supports, default=0.0),
        max_angular_cutoff=float(vcut.max()) if vcut.size else 0.0)
    return plan, layout
