r"""Atom-centred symmetry functions: Behler's G1–G5 and every n2p2/RuNNer short-range type
as one family.

Sources: J. Behler, J. Chem. Phys. 134, 074106 (2011), eqs. 4–9 (ænet's ``Behler2011``
conventions: N. Artrith and A. Urban, Comput. Mater. Sci. 114, 135 (2016); thesis
eqs. 2.70–2.74); n2p2 (A. Singraber, J. Behler, C. Dellago, J. Chem. Theory Comput. 15,
1827 (2019), n2p2 documentation "Symmetry functions"); polynomial functions: M. P.
Bircher, A. Singraber, C. Dellago, Mach. Learn.: Sci. Technol. 2, 035026 (2021).  Lengths
in Å, :math:`\eta` in Å⁻², :math:`\kappa` in Å⁻¹, angles in degrees, values dimensionless;
:math:`f_c` is the cutoff function of the descriptor's ``cutoff_type`` with inner cutoff
:math:`\alpha r_c` (:mod:`hdnnp.descriptors.cutoffs`).  Sums run over neighbours j
(radial) or unordered neighbour pairs {j, k} (angular).

Gaussian types (element-resolved):

.. math::

    G^{2}_i &= \sum_{j} e^{-\eta (r_{ij} - r_s)^2} f_c(r_{ij}) \\
    G^{3}_i &= 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta
               e^{-\eta [(r_{ij}-r_s)^2 + (r_{ik}-r_s)^2 + (r_{jk}-r_s)^2]}
               f_c(r_{ij}) f_c(r_{ik}) f_c(r_{jk}) \\
    G^{9}_i &= 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta
               e^{-\eta [(r_{ij}-r_s)^2 + (r_{ik}-r_s)^2]} f_c(r_{ij}) f_c(r_{ik})

(3 "narrow", 9 "wide"; :math:`(1 + \lambda\cos\theta)^\zeta := 0` where
:math:`1 + \lambda\cos\theta \le 0`).  Behler's G1 is type 2 with η = r_s = 0, G2 is type
2, G4 and G5 are types 3 and 9 with :math:`r_s = 0` (ænet sums k > j with
:math:`2^{-\zeta}` and doubles: the same :math:`2^{1-\zeta}` per unordered pair); Behler's
:math:`G^3_i = \sum_j \cos(\kappa r_{ij}) f_c(r_{ij})` has no n2p2 number and is type
``"G3"`` here.  Weighted types sum over all neighbours with atomic numbers as weights:
:math:`G^{12}_i = \sum_j Z_j e^{-\eta (r_{ij} - r_s)^2} f_c(r_{ij})`, :math:`G^{13}` =
:math:`G^3` with :math:`Z_j Z_k`.

Polynomial ("compact") types use :math:`C(x; x_l, x_r) = g(|x - c|/w)` for
:math:`|x - c| < w` and 0 otherwise (centre :math:`c = (x_l + x_r)/2`, half width
:math:`w = (x_r - x_l)/2`), the core g of ``subtype`` p1–p4 (the polynomials of cutoff
types 5–8) or e (:math:`e^{1 - 1/(1 - x^2)}`), suffix ``a`` ("asymmetric", radial parts
only) replacing x by (2 − x)x:

.. math::

    G^{20}_i &= \sum_j C(r_{ij}; r_l, r_c), \qquad G^{23}_i = \sum_j Z_j C(r_{ij}; r_l, r_c)\\
    G^{21}_i &= \sum_{j<k} C(r_{ij}) C(r_{ik}) C(r_{jk}) C(\theta_{ijk}; \theta_l, \theta_r),
    \qquad G^{22}_i = \sum_{j<k} C(r_{ij}) C(r_{ik}) C(\theta_{ijk}; \theta_l, \theta_r)

and 24, 25 are 21, 22 over all neighbour pairs with :math:`Z_j Z_k`.  Triplets with
:math:`|\cos\theta| = 1` contribute 0 (as in n2p2).

A function is a dict, e.g. ``{"type": 2, "center": "H", "neighbours": ["O"], "eta": 0.5,
"rs": 0.0, "rc": 6.0}`` or in Behler's names ``{"type": "G4", "center": "Ti",
"neighbours": ["O", "O"], "rc": 6.5, "eta": 0.01, "lambda": 1, "zeta": 2}``; parameters by
the names in :data:`SF_PARAMETERS` / :data:`BEHLER_PARAMETERS`.  Features of each centre
element follow the order of the list.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from ase.data import atomic_numbers

from hdnnp.descriptors.cutoffs import N2P2_CUTOFF_TYPES, CutoffFunction
from hdnnp.descriptors.engine import Descriptor
from hdnnp.descriptors.plan import AngularTerm, RadialTerm
from hdnnp.errors import HdnnpError

#: Parameters of each type (n2p2 numbers in the order of an n2p2 ``symfunction_short``
#: line after the element symbols; ``"G3"`` is Behler's cosine radial function).
SF_PARAMETERS: dict[int | str, tuple[str, ...]] = {
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
    "G3": ("kappa", "rc"),
}
#: Number of neighbour elements a function of each type names.
SF_NEIGHBOURS: dict[int | str, int] = {2: 1, 3: 2, 9: 2, 12: 0, 13: 0, 20: 1, 21: 2, 22: 2,
                                       23: 0, 24: 0, 25: 0, "G3": 1}
#: Optional parameters and their defaults.
SF_OPTIONAL: dict[int | str, dict[str, float]] = {3: {"rs": 0.0}, 9: {"rs": 0.0}}
#: Behler's names: (family type, parameters in the order they are stored, fixed values).
BEHLER_TYPES: dict[str, tuple[int | str, tuple[str, ...], dict[str, float]]] = {
    "G1": (2, ("rc",), {"eta": 0.0, "rs": 0.0}),
    "G2": (2, ("rc", "eta", "rs"), {}),
    "G3": ("G3", ("rc", "kappa"), {}),
    "G4": (3, ("rc", "eta", "lambda", "zeta"), {"rs": 0.0}),
    "G5": (9, ("rc", "eta", "lambda", "zeta"), {"rs": 0.0}),
}
BEHLER_PARAMETERS = {name: params for name, (_, params, _) in BEHLER_TYPES.items()}
RADIAL_SF_TYPES = (2, 12, 20, 23, "G3")
ANGULAR_SF_TYPES = (3, 9, 13, 21, 22, 24, 25)
WEIGHTED_SF_TYPES = (12, 13, 23, 24, 25)
COMPACT_SF_TYPES = (20, 21, 22, 23, 24, 25)
NARROW_SF_TYPES = (3, 13, 21, 24)
#: Parameters with the dimension of a length (Å inside, file units outside); ``eta`` has
#: the dimension length⁻², ``kappa`` length⁻¹.
LENGTH_PARAMETERS = ("rs", "rl", "rc")
COMPACT_SUBTYPES = ("p1", "p2", "p3", "p4", "p1a", "p2a", "p3a", "p4a", "e")


def _type_key(value, where: str) -> int | str:
    """The family type of a spec's ``type`` entry: an n2p2 number or a Behler name."""
    if isinstance(value, str) and value.strip().upper() in BEHLER_TYPES:
        return value.strip().upper()
    try:
        kind = int(value)
    except (TypeError, ValueError):
        raise HdnnpError(f"{where}unknown symmetry function type {value!r} (known: "
                         f"{', '.join(BEHLER_TYPES)} and n2p2 types "
                         f"{', '.join(str(t) for t in SF_PARAMETERS if isinstance(t, int))})"
                         ) from None
    if kind != value and not (isinstance(value, str) and value.strip() == str(kind)):
        raise HdnnpError(f"{where}symmetry function type must be an integer or G1-G5, got "
                         f"{value!r}")
    if kind not in SF_PARAMETERS:
        raise HdnnpError(f"{where}unsupported n2p2 symmetry function type {kind} (supported: "
                         f"{', '.join(str(t) for t in SF_PARAMETERS if isinstance(t, int))})")
    return kind


def normalise_function(spec: dict, elements: Sequence[str], where: str = "") -> dict:
    """Check one symmetry-function entry (Behler names or n2p2 numbers) and return it in
    canonical form: the same vocabulary, parameters as floats in a fixed order."""
    if not isinstance(spec, dict):
        raise HdnnpError(f"{where}a symmetry function must be a mapping, got {spec!r}")
    kind = _type_key(spec.get("type"), where)
    behler = isinstance(kind, str) and kind in BEHLER_TYPES
    family = BEHLER_TYPES[kind][0] if behler else kind
    center = spec.get("center")
    if center not in elements:
        raise HdnnpError(f"{where}centre element {center!r} is not one of {list(elements)}")
    neigh = spec.get("neighbours", spec.get("neighbors", []))
    if isinstance(neigh, str):
        neigh = [neigh]
    neigh = list(neigh or [])
    need = SF_NEIGHBOURS[family]
    if len(neigh) != need:
        label = kind if behler else f"type {kind}"
        raise HdnnpError(f"{where}{label} needs {need} neighbour element(s), got {neigh!r}")
    for e in neigh:
        if e not in elements:
            raise HdnnpError(f"{where}neighbour element {e!r} is not one of {list(elements)}")
    out: dict = {"type": kind, "center": center, "neighbours": neigh}
    names = BEHLER_TYPES[kind][1] if behler else SF_PARAMETERS[kind]
    optional = {"rs": 0.0} if kind == "G2" else SF_OPTIONAL.get(kind, {})
    for name in names:
        if name not in spec:
            if name in optional:
                out[name] = optional[name]
                continue
            label = kind if behler else f"type {kind}"
            raise HdnnpError(f"{where}{label} needs parameter {name!r}")
        if name == "subtype":
            out[name] = str(spec[name])
            continue
        try:
            out[name] = float(spec[name])
        except (TypeError, ValueError):
            raise HdnnpError(f"{where}parameter {name!r} must be a number, got "
                             f"{spec[name]!r}") from None
        if not math.isfinite(out[name]):
            raise HdnnpError(f"{where}parameter {name!r} must be finite, got {spec[name]!r}")
    _check_values(canonical_function(out), where)
    return out


def _check_values(f: dict, where: str) -> None:
    if not f["rc"] > 0:
        raise HdnnpError(f"{where}rc must be positive, got {f['rc']}")
    t = f["type"]
    if t in COMPACT_SF_TYPES:
        if f["subtype"] not in COMPACT_SUBTYPES:
            raise HdnnpError(f"{where}unknown compact function subtype {f['subtype']!r} "
                             f"(known: {', '.join(COMPACT_SUBTYPES)})")
        if not f["rl"] < f["rc"]:
            raise HdnnpError(f"{where}rl must be smaller than rc")
        if "angle_left" in f:
            left, right = f["angle_left"], f["angle_right"]
            centre = 0.5 * (left + right)
            if not left < right:
                raise HdnnpError(f"{where}angle_left must be smaller than angle_right")
            if (left < 0.0 and centre != 0.0) or (right > 180.0 and centre != 180.0):
                raise HdnnpError(f"{where}an angular interval outside [0, 180] degrees must be "
                                 "centred on 0 or 180 degrees")
            if right - left > 360.0:
                raise HdnnpError(f"{where}angular interval wider than 360 degrees")
    elif "eta" in f and not f["eta"] >= 0:
        raise HdnnpError(f"{where}eta must be non-negative, got {f['eta']}")
    if "lambda" in f and f["lambda"] not in (-1.0, 1.0):
        raise HdnnpError(f"{where}lambda must be +1 or -1, got {f['lambda']}")
    if "zeta" in f and not f["zeta"] > 0:
        raise HdnnpError(f"{where}zeta must be positive, got {f['zeta']}")


def canonical_function(f: dict) -> dict:
    """A normalised function in the family's own terms: Behler's G1, G2, G4, G5 become n2p2
    types 2, 2, 3, 9 (G3 stays ``"G3"``); parameters in :data:`SF_PARAMETERS` order."""
    kind = f["type"]
    if isinstance(kind, str) and kind in BEHLER_TYPES:
        family, _, fixed = BEHLER_TYPES[kind]
        out = {"type": family, "center": f["center"], "neighbours": list(f["neighbours"])}
        values = {**f, **fixed}
        for name in SF_PARAMETERS[family]:
            out[name] = values[name] if name in values else SF_OPTIONAL[family][name]
        return out
    return {"type": kind, "center": f["center"], "neighbours": list(f["neighbours"]),
            **{name: f[name] for name in SF_PARAMETERS[kind]}}


def function_name(f: dict) -> str:
    """The feature name of a function: its family type, elements and parameters, e.g.
    ``sf2[H-O](eta=0.5,rs=0,rc=6)``; Behler and n2p2 spellings of one function share it."""
    f = canonical_function(f)
    params = ",".join(f"{p}={f[p]:g}" if p != "subtype" else str(f[p])
                      for p in SF_PARAMETERS[f["type"]])
    neigh = "-".join(f["neighbours"]) if f["neighbours"] else "*"
    return f"sf{f['type']}[{f['center']}-{neigh}]({params})"


def convert_function_units(spec: dict, length: float) -> dict:
    """A copy of ``spec`` with lengths multiplied by ``length`` (η divided by its square, κ
    by it), e.g. ``hdnnp.units.BOHR`` for a Bohr file read into Å."""
    out = dict(spec)
    out["neighbours"] = list(spec.get("neighbours", []))
    for name in LENGTH_PARAMETERS:
        if name in out:
            out[name] = float(out[name]) * length
    if "eta" in out:
        out["eta"] = float(out["eta"]) / (length * length)
    if "kappa" in out:
        out["kappa"] = float(out["kappa"]) / length
    return out


def function_terms(f: dict, col: int, index: dict[str, int], cutoff_kind: str,
                   cutoff_alpha: float, z: np.ndarray | None):
    """The engine term of one normalised function whose feature column is ``col``."""
    f = canonical_function(f)
    t = f["type"]
    c = index[f["center"]]
    nb = sorted(index[e] for e in f["neighbours"])
    weighted = t in WEIGHTED_SF_TYPES
    cut = None if t in COMPACT_SF_TYPES else CutoffFunction(cutoff_kind, f["rc"], cutoff_alpha)
    if t in RADIAL_SF_TYPES:
        s = None if weighted else nb[0]
        w = z if weighted else None
        if t in (2, 12):
            return RadialTerm(c, s, "gauss", f["eta"], f["rs"], col, cutoff=cut, weights=w)
        if t == "G3":
            return RadialTerm(c, s, "cos", f["kappa"], 0.0, col, cutoff=cut)
        return RadialTerm(c, s, "compact", f["rl"], f["rc"], col, subtype=f["subtype"],
                          weights=w)
    pair = None if weighted else (nb[0], nb[1])
    w = np.outer(z, z) if weighted else None
    narrow = t in NARROW_SF_TYPES
    if t in (3, 9, 13):
        return AngularTerm(c, pair, "gauss", narrow, cut, eta=f["eta"], rs=f["rs"],
                           lam=f["lambda"], zeta=f["zeta"], col=col, weights=w)
    return AngularTerm(c, pair, "compact", narrow, rl=f["rl"], rc=f["rc"],
                       angle_left=math.radians(f["angle_left"]),
                       angle_right=math.radians(f["angle_right"]), subtype=f["subtype"],
                       col=col, weights=w)


def cutoff_type_number(cutoff_type: int | str) -> int:
    """n2p2 cutoff type number from a number or a name (:data:`N2P2_CUTOFF_TYPES`)."""
    if isinstance(cutoff_type, str) and not cutoff_type.strip().isdigit():
        names = {v: k for k, v in N2P2_CUTOFF_TYPES.items()}
        if cutoff_type not in names:
            raise HdnnpError(f"unknown cutoff type {cutoff_type!r} (known: "
                             f"{', '.join(names)} or 0-8)")
        return names[cutoff_type]
    number = int(cutoff_type)
    if number not in N2P2_CUTOFF_TYPES:
        raise HdnnpError(f"unknown n2p2 cutoff type {number} (known: 0-8)")
    return number


class SymmetryFunctions(Descriptor):
    """Element-resolved atom-centred symmetry functions (Behler G1–G5, n2p2 types 2, 3,
    9, 12, 13, 20–25) with one cutoff function for all Gaussian types.

    ``cutoff_type`` is n2p2's cutoff type number (0–8) or its name (default ``"cos"``,
    Behler's cosine cutoff; ``cutoff_function`` is another name for it) and
    ``cutoff_alpha`` the inner cutoff parameter α.

    Example::

        >>> d = SymmetryFunctions(["H", "O"], [
        ...     {"type": 2, "center": "O", "neighbours": ["H"], "eta": 0.5, "rs": 0.0,
        ...      "rc": 6.0},
        ...     {"type": "G5", "center": "O", "neighbours": ["H", "H"], "rc": 6.0,
        ...      "eta": 0.01, "lambda": -1, "zeta": 4}], cutoff_type=2)
        >>> d.n_features("O"), d.n_features("H")
        (2, 0)
    """

    kind = "symmetry_functions"

    def __init__(self, elements: Sequence[str], functions: Sequence[dict],
                 cutoff_type: int | str = "cos", cutoff_alpha: float = 0.0, *,
                 cutoff_function: str | None = None):
        super().__init__(elements)
        self.cutoff_type = cutoff_type_number(cutoff_function or cutoff_type)
        self.cutoff_alpha = float(cutoff_alpha)
        CutoffFunction(self.cutoff_kind, 1.0, self.cutoff_alpha)  # validates alpha
        self.functions = [normalise_function(f, self.elements, f"symmetry function {k}: ")
                          for k, f in enumerate(functions)]
        index = {e: k for k, e in enumerate(self.elements)}
        z = None
        if any(canonical_function(f)["type"] in WEIGHTED_SF_TYPES for f in self.functions):
            unknown = [e for e in self.elements if e not in atomic_numbers]
            if unknown:
                raise HdnnpError(f"element-weighted symmetry functions need chemical elements; "
                                 f"unknown: {unknown}")
            z = np.array([float(atomic_numbers[e]) for e in self.elements])
        terms = []
        for f in self.functions:
            names = self.feature_names[f["center"]]
            terms.append(function_terms(f, len(names), index, self.cutoff_kind,
                                        self.cutoff_alpha, z))
            names.append(function_name(f))
        self._set_terms([t for t in terms if isinstance(t, RadialTerm)],
                        [t for t in terms if isinstance(t, AngularTerm)])

    @property
    def cutoff_kind(self) -> str:
        """Name of the cutoff function (see :mod:`hdnnp.descriptors.cutoffs`)."""
        return N2P2_CUTOFF_TYPES[self.cutoff_type]

    def canonical_functions(self) -> list[dict]:
        """The functions in the family's own terms (see :func:`canonical_function`)."""
        return [canonical_function(f) for f in self.functions]

    def to_config(self) -> dict:
        return {"kind": self.kind, "elements": list(self.elements),
                "cutoff_type": self.cutoff_type, "cutoff_alpha": self.cutoff_alpha,
                "functions": [dict(f, neighbours=list(f["neighbours"])) for f in self.functions]}

    @classmethod
    def from_config(cls, cfg: dict) -> SymmetryFunctions:
        # "cutoff_function" is the key of files written before the family was unified
        ctype = cfg.get("cutoff_type", cfg.get("cutoff_function", "cos"))
        return cls(cfg["elements"], cfg["functions"], ctype, cfg.get("cutoff_alpha", 0.0))

    def describe(self) -> str:
        lines = [f"symmetry functions, cutoff type {self.cutoff_type} ({self.cutoff_kind}, "
                 f"alpha {self.cutoff_alpha:g}), cutoff {self.cutoff:.3f} Å"]
        for e in self.elements:
            counts: dict[str, int] = defaultdict(int)
            for f in self.functions:
                if f["center"] == e:
                    counts[str(f["type"])] += 1
            types = ", ".join(f"{n}× {t if t.startswith('G') else 'type ' + t}"
                              for t, n in sorted(counts.items()))
            lines.append(f"  {e}: {self.n_features(e)} features ({types or 'none'})")
        return "\n".join(lines)


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
