r"""n2p2/RuNNer potential directories as hdnnp models, and hdnnp models as n2p2 potentials.

A potential directory holds ``input.nn`` (:mod:`hdnnp.n2p2.settings`), ``scaling.data``
and one ``weights.ZZZ.data`` per element (:mod:`hdnnp.n2p2.files`).  n2p2 computes the
energy of atom *i* of element *e* as (``Mode::calculateAtomicNeuralNetworks``,
``Mode::physicalEnergy``, ``Mode::addEnergyOffset``; file units)

.. math::

    E_i = \frac{\mathrm{NN}_e(\mathbf y_i)}{c_E} + \bar E + E^{\mathrm{atom}}_e,
    \qquad y_{if} = S_\mathrm{min} + s_f\,(G_{if} - g_f),

with ``conv_energy`` :math:`c_E` and ``mean_energy`` :math:`\bar E` (``nnp-norm``; 1 and 0
without normalisation), ``atom_energy`` :math:`E^{\mathrm{atom}}_e` and the scaling of
``scaling.data`` (n2p2 ``SymFnc::scale``):

==================================  =========================================  =========
keywords                            :math:`s_f`                                :math:`g_f`
==================================  =========================================  =========
(none)                              1 (and :math:`S_\mathrm{min} = 0`)         0
``scale_symmetry_functions``        :math:`(S_\max - S_\min)/(G_\max - G_\min)`  G_min
``center_symmetry_functions``       1 (and :math:`S_\mathrm{min} = 0`)         mean
both                                :math:`(S_\max - S_\min)/(G_\max - G_\min)`  mean
``scale_symmetry_functions_sigma``  :math:`(S_\max - S_\min)/\sigma`             mean
==================================  =========================================  =========

(:math:`S_\min, S_\max` = ``scale_min_short``, ``scale_max_short``, defaults 0 and 1).
Every mode is the affine map :math:`y = (G - \mu)\,s` with :math:`\mu = g - S_\min/s`,
stored as the network's ``input_shift`` and ``input_scale``; the energy map is the
network's ``output_scale`` :math:`= u_E / c_E` and ``output_shift`` :math:`= u_E \bar E`
with the energy unit :math:`u_E` in eV, and :math:`E^{\mathrm{atom}}` become the model's
reference energies.  ``conv_length`` only rescales n2p2's internal lengths and leaves the
symmetry functions unchanged, so the symmetry-function parameters are converted from the
file's length unit to Å directly.  ``normalize_nodes`` (pre-activations divided by the
number of inputs of the layer) is folded into the weights and biases.  The output layer is
linear, as in n2p2.  An atom's symmetry function outside [``sf_min``, ``sf_max``] of
``scaling.data`` is an extrapolation warning (n2p2 ``Element::updateSymmetryFunctionStatistics``):
the bounds become the networks' ``feature_min`` / ``feature_max``.

Units: n2p2 files carry none.  They are taken from the arguments, else from the header
comments ``# Length unit : Bohr`` / ``# Energy unit : Ha`` of ``input.nn`` (the n2p2
examples' convention, written by :func:`export_n2p2_potential`); without either, loading
fails rather than guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers

from hdnnp._version import __version__
from hdnnp.activations import N2P2_ACTIVATIONS
from hdnnp.descriptors.symmetry import (
    SF_NEIGHBOURS,
    SF_OPTIONAL,
    SF_PARAMETERS,
    SymmetryFunctions,
    convert_function_units,
    normalise_function,
)
from hdnnp.errors import HdnnpError, InputFileError, PotentialFileError
from hdnnp.fileio import atomic_write_text
from hdnnp.fortran import parse_count, parse_float
from hdnnp.model import AtomicNetwork, NeuralNetworkPotential
from hdnnp.n2p2.files import (
    connections_to_layers,
    n_connections,
    read_scaling_data,
    read_weights,
    write_scaling_data,
    write_weights,
)
from hdnnp.n2p2.settings import N2P2Settings, read_input_nn
from hdnnp.units import energy_factor, length_factor
from hdnnp.validation import (
    MAX_FEATURES,
    MAX_LAYERS,
    MAX_NEURONS,
    MAX_VALUE,
    symmetry_function_problem,
)

WEIGHTS_FILE = "weights.{z:03d}.data"
_LETTER_OF = {v: k for k, v in N2P2_ACTIVATIONS.items()}


def _unit_factor(unit, kind: str) -> tuple[float, str]:
    if isinstance(unit, int | float):
        return float(unit), f"{float(unit)!r} {'Å' if kind == 'length' else 'eV'}"
    return (length_factor(unit) if kind == "length" else energy_factor(unit)), str(unit)


def parse_symfunction_line(value: str, line: int, settings: N2P2Settings,
                           elements: Sequence[str]) -> dict:
    """One ``symfunction_short`` value string -> function spec in the file's units."""
    path = settings.path
    f = value.split()
    if len(f) < 2:
        raise InputFileError(path, "symfunction_short: expected '<element> <type> ...'", line)
    center = f[0]
    try:
        kind = int(f[1])
    except ValueError:
        raise InputFileError(path, f"symfunction_short: type {f[1]!r} is not an integer",
                             line) from None
    if kind not in SF_PARAMETERS:
        raise InputFileError(path, f"symfunction_short: unsupported symmetry function type "
                             f"{kind} (supported: "
                             f"{', '.join(str(t) for t in SF_PARAMETERS if isinstance(t, int))})",
                             line)
    n_nb = SF_NEIGHBOURS[kind]
    names = SF_PARAMETERS[kind]
    n_opt = len(SF_OPTIONAL.get(kind, {}))
    n_min, n_max = 2 + n_nb + len(names) - n_opt, 2 + n_nb + len(names)
    if not n_min <= len(f) <= n_max:
        want = " ".join(["<element>", str(kind)] + [f"<neighbour{k + 1}>" for k in range(n_nb)]
                        + [f"<{n}>" for n in names])
        raise InputFileError(path, f"symfunction_short type {kind}: expected '{want}' "
                             f"({n_min}{'' if n_min == n_max else f'-{n_max}'} fields), got "
                             f"{len(f)} fields", line)
    for e in [center, *f[2:2 + n_nb]]:
        if e not in elements:
            raise InputFileError(path, f"symfunction_short: element {e!r} is not one of the "
                                 f"elements {' '.join(elements)}", line)
    spec: dict = {"type": kind, "center": center, "neighbours": f[2:2 + n_nb]}
    for name, text in zip(names, f[2 + n_nb:]):
        spec[name] = text if name == "subtype" else parse_float(
            text, path, line, f"symfunction_short {name}", bound=MAX_VALUE)
    try:
        return normalise_function(spec, elements)
    except HdnnpError as exc:
        raise InputFileError(path, f"symfunction_short: {exc}", line) from None


def _affine_scaling(mode: str, row, smin: float, smax: float, where: str) -> tuple[float, float]:
    """(shift μ, scale s) with n2p2's scaled value = (G - μ) s (module docstring table)."""
    if mode == "none":
        return 0.0, 1.0
    if mode == "center":
        return row.mean, 1.0
    if mode in ("scale", "scalecenter"):
        if not (math.isfinite(row.minimum) and math.isfinite(row.maximum)):
            raise PotentialFileError(where, f"sf_min {row.minimum!r} / sf_max {row.maximum!r}: "
                                     "scaling by the range needs finite bounds")
        span = row.maximum - row.minimum
        if span == 0.0:
            raise PotentialFileError(where, "sf_min == sf_max: this symmetry function cannot "
                                     "be scaled (n2p2 would divide by zero)")
        s = (smax - smin) / span
        g = row.minimum if mode == "scale" else row.mean
    else:  # sigma
        if row.sigma is None:
            raise PotentialFileError(where, "scale_symmetry_functions_sigma needs the sf_sigma "
                                     "column in scaling.data")
        if row.sigma == 0.0:
            raise PotentialFileError(where, "sf_sigma is 0: cannot scale by sigma")
        s = (smax - smin) / row.sigma
        g = row.mean
    if s == 0.0:
        raise PotentialFileError(where, "scale_min_short == scale_max_short: all scaled "
                                 "symmetry functions would be constant")
    shift = g - smin / s
    if not (math.isfinite(s) and abs(s) <= MAX_VALUE and math.isfinite(shift)
            and abs(shift) <= MAX_VALUE):
        raise PotentialFileError(where, f"the scaling of this symmetry function (factor {s:g}, "
                                 f"shift {shift:g}) is out of range (|x| ≤ {MAX_VALUE:g})")
    return shift, s


def load_n2p2_potential(path: str | Path, length_unit: str | float | None = None,
                        energy_unit: str | float | None = None,
                        weights_file: str = WEIGHTS_FILE) -> NeuralNetworkPotential:
    """Load an n2p2/RuNNer potential directory as a :class:`NeuralNetworkPotential`.

    ``length_unit`` / ``energy_unit`` name the files' units (``"bohr"``, ``"angstrom"``,
    ``"hartree"``, ``"eV"`` …, or factors to Å and eV); by default they come from the
    header comments of ``input.nn``.  ``weights_file`` is the weights-file name pattern
    (``{z}`` = atomic number).  The model works in eV and Å like every hdnnp model.

    Everything is checked before use, with the limits of :mod:`hdnnp.potential`, and a
    problem is a one-line :class:`~hdnnp.errors.InputFileError` naming the file and line
    (or :class:`~hdnnp.errors.PotentialFileError`): every number finite (NaN and inf,
    also ``1e400``, refused; of ``scaling.data`` only sf_min = -inf and sf_max = +inf, as
    hdnnp's exporter writes for unseen features, and only where the scaling mode does not
    divide by the range) and of magnitude ≤ ``MAX_VALUE``; symmetry-function parameters
    by the descriptor's checks (r_c > 0, η ≥ 0, ζ > 0, λ = ±1 …), and after conversion to
    Å every r_c within :func:`hdnnp.validation.check_cutoff` (≤ 30 Å), ζ ≤ ``MAX_ZETA``;
    at most ``MAX_LAYERS`` hidden layers of 1…``MAX_NEURONS`` nodes (whole numbers, checked
    before anything is allocated), at most ``MAX_FEATURES`` functions per element; the
    number of connection values as input.nn implies; ``conv_energy`` ≠ 0.
    """
    path = Path(path)
    if not path.is_dir():
        raise PotentialFileError(path, "not a directory (an n2p2 potential is a directory "
                                 "with input.nn, scaling.data and weights.ZZZ.data)")
    settings = read_input_nn(path / "input.nn")
    length_unit = length_unit if length_unit is not None else settings.length_unit
    energy_unit = energy_unit if energy_unit is not None else settings.energy_unit
    if length_unit is None or energy_unit is None:
        missing = " and ".join(n for n, u in (("length", length_unit), ("energy", energy_unit))
                               if u is None)
        raise PotentialFileError(
            path / "input.nn", f"the {missing} unit of this n2p2 potential is unknown: add "
            "header comments such as '# Length unit : Bohr' and '# Energy unit : Ha' to "
            "input.nn, or pass length_unit=/energy_unit= to hdnnp.n2p2.load_n2p2_potential")
    try:
        lf, length_name = _unit_factor(length_unit, "length")
        ef, energy_name = _unit_factor(energy_unit, "energy")
    except HdnnpError as exc:
        raise PotentialFileError(path / "input.nn", str(exc)) from None
    if not all(math.isfinite(x) and x > 0 for x in (lf, ef)):
        raise PotentialFileError(path / "input.nn", f"unit factors must be positive and "
                                 f"finite, got {lf!r} Å and {ef!r} eV")

    elements = settings.elements()
    cutoff_type, alpha = settings.cutoff()

    # symmetry functions in n2p2's order (sorted with the file's values, as n2p2 does)
    per_element: dict[str, list[dict]] = {e: [] for e in elements}
    lines_of: dict[str, list[int]] = {e: [] for e in elements}
    for value, line in settings.all("symfunction_short"):
        spec = parse_symfunction_line(value, line, settings, elements)
        per_element[spec["center"]].append(spec)
        lines_of[spec["center"]].append(line)
        if len(per_element[spec["center"]]) > MAX_FEATURES:
            raise InputFileError(settings.path, f"symfunction_short: more than {MAX_FEATURES} "
                                 f"symmetry functions for {spec['center']}", line)
    index = {e: k for k, e in enumerate(elements)}
    functions = []
    for e in elements:
        if not per_element[e]:
            raise settings.error(f"element {e} has no symmetry functions (symfunction_short)")
        order = sorted(range(len(per_element[e])),
                       key=lambda k, e=e: n2p2_sort_key(per_element[e][k], index))
        for k in order:
            # checked in Å: the cutoff bound of hdnnp.validation applies after conversion
            line = lines_of[e][k]
            try:
                spec = normalise_function(convert_function_units(per_element[e][k], lf),
                                          elements)
            except HdnnpError as exc:
                raise InputFileError(settings.path, f"symfunction_short in Å: {exc}",
                                     line) from None
            problem = symmetry_function_problem(spec)
            if problem:
                raise InputFileError(settings.path, f"symfunction_short ({length_name} → Å): "
                                     f"{problem}", line)
            functions.append(spec)
    try:
        descriptor = SymmetryFunctions(elements, functions, cutoff_type, alpha)
    except HdnnpError as exc:
        raise settings.error(f"symmetry functions: {exc}", key="symfunction_short") from None
    counts = [descriptor.n_features(e) for e in elements]

    # scaling
    mode = settings.scaling_mode()
    smin = settings.float_value("scale_min_short", 0.0)
    smax = settings.float_value("scale_max_short", 1.0)
    for key, x in (("scale_min_short", smin), ("scale_max_short", smax)):
        if abs(x) > MAX_VALUE:
            raise settings.error(f"{key} {x:g} is out of range (|x| ≤ {MAX_VALUE:g})", key=key)
    if mode in ("none", "center"):
        smin = 0.0
    scaling_path = path / "scaling.data"
    if scaling_path.is_file():
        scaling = read_scaling_data(scaling_path, counts)
    elif mode != "none":
        raise PotentialFileError(scaling_path, f"no such file (input.nn asks for symmetry "
                                 f"function scaling '{mode}')")
    else:
        scaling = None

    # networks
    n_hidden = settings.int_value("global_hidden_layers_short")
    if n_hidden is None:
        raise settings.error("required keyword 'global_hidden_layers_short' is missing")
    if not 0 <= n_hidden <= MAX_LAYERS:
        raise settings.error(f"global_hidden_layers_short {n_hidden} is out of range "
                             f"(0…{MAX_LAYERS})", key="global_hidden_layers_short")
    nodes_text = settings.require("global_nodes_short").split()
    acts_text = settings.require("global_activation_short").split()
    if len(nodes_text) < n_hidden:
        raise settings.error(f"global_nodes_short lists {len(nodes_text)} layer sizes for "
                             f"{n_hidden} hidden layers", key="global_nodes_short")
    if len(acts_text) < n_hidden:
        raise settings.error(f"global_activation_short lists {len(acts_text)} activations for "
                             f"{n_hidden} hidden layers", key="global_activation_short")
    line = settings.line("global_nodes_short")
    nodes = {e: [parse_count(x, settings.path, line, "global_nodes_short", 1, MAX_NEURONS)
                 for x in nodes_text[:n_hidden]] for e in elements}
    for value, line in settings.all("element_nodes_short"):
        # n2p2 (Mode::setupNeuralNetwork): "element_nodes_short <element> <n_1> … <n_H>"
        # sets hidden layers 1 … H−1 of that element; the last value is read but never
        # applied (its loop stops at H−1), so a last value other than the global width
        # would run a different network there than here: refused
        f = value.split()
        if len(f) != n_hidden + 1 or f[0] not in nodes:
            raise InputFileError(settings.path, "element_nodes_short: expected '<element> "
                                 f"<n_1> … <n_{n_hidden}>' ({n_hidden} hidden-layer sizes, "
                                 "as n2p2 reads it)", line)
        sizes = [parse_count(x, settings.path, line, "element_nodes_short nodes", 1,
                             MAX_NEURONS) for x in f[1:]]
        if sizes[-1] != nodes[f[0]][-1]:
            raise InputFileError(settings.path, f"element_nodes_short: n2p2 ignores the last "
                                 f"hidden layer's size ({sizes[-1]}) and uses the global "
                                 f"{nodes[f[0]][-1]}; write {nodes[f[0]][-1]} there", line)
        nodes[f[0]][:-1] = sizes[:-1]
    acts = []
    for a in acts_text[:n_hidden]:
        if a not in N2P2_ACTIVATIONS:
            raise settings.error(f"global_activation_short: unknown activation {a!r} (n2p2 "
                                 f"knows {' '.join(N2P2_ACTIVATIONS)})",
                                 key="global_activation_short")
        acts.append(N2P2_ACTIVATIONS[a])
    normalize_nodes = settings.has("normalize_nodes")
    # n2p2 applies these per-element overrides; ignoring them would run other networks
    for key in ("element_hidden_layers_short", "element_activation_short"):
        if settings.has(key):
            raise settings.error(f"{key}: per-element numbers of hidden layers and "
                                 "activations are not supported (use the global_* keywords)",
                                 key=key)

    normalise = [settings.has(k) for k in ("mean_energy", "conv_energy", "conv_length")]
    if any(normalise) and not all(normalise):
        raise settings.error("use all or none of mean_energy, conv_energy and conv_length",
                             key=next(k for k, h in zip(("mean_energy", "conv_energy",
                                                          "conv_length"), normalise) if h))
    mean_energy = settings.float_value("mean_energy", 0.0)
    conv_energy = settings.float_value("conv_energy", 1.0)
    conv_length = settings.float_value("conv_length", 1.0)
    if conv_energy == 0.0 or abs(ef / conv_energy) > MAX_VALUE:
        raise settings.error(f"conv_energy {conv_energy:g} is out of range (energies are "
                             "divided by it)", key="conv_energy")
    if abs(ef * mean_energy) > MAX_VALUE:
        raise settings.error(f"mean_energy {mean_energy:g} is out of range", key="mean_energy")
    if not conv_length > 0.0:
        raise settings.error(f"conv_length {conv_length:g} must be positive", key="conv_length")
    atom_energy = {e: 0.0 for e in elements}
    for value, line in settings.all("atom_energy"):
        f = value.split()
        if len(f) < 2 or f[0] not in atom_energy:
            raise InputFileError(settings.path, "atom_energy: expected '<element> <energy>' "
                                 f"with an element of {' '.join(elements)}", line)
        atom_energy[f[0]] = parse_float(f[1], settings.path, line, "atom_energy",
                                        bound=MAX_VALUE / max(ef, 1.0))

    networks = {}
    for ie, e in enumerate(elements):
        sizes = [counts[ie], *nodes[e], 1]
        wpath = path / weights_file.format(z=atomic_numbers[e])
        values = read_weights(wpath, n_connections(sizes))
        layers = connections_to_layers(values, sizes)
        net = AtomicNetwork(counts[ie], nodes[e], acts, output_activation="linear").double()
        with torch.no_grad():
            for layer, (w, b) in zip(net.layers, layers):
                if normalize_nodes:
                    w, b = w / w.shape[1], b / w.shape[1]
                layer.weight.copy_(torch.from_numpy(w))
                layer.bias.copy_(torch.from_numpy(b))
            if scaling is not None:
                rows = scaling[ie]
                shift, scale = zip(*(_affine_scaling(
                    mode, r, smin, smax, f"{scaling_path}, line {r.line}") for r in rows))
                net.input_shift.copy_(torch.tensor(shift, dtype=torch.float64))
                net.input_scale.copy_(torch.tensor(scale, dtype=torch.float64))
                net.feature_min.copy_(torch.tensor([r.minimum for r in rows],
                                                   dtype=torch.float64))
                net.feature_max.copy_(torch.tensor([r.maximum for r in rows],
                                                   dtype=torch.float64))
            net.output_scale.fill_(ef / conv_energy)
            net.output_shift.fill_(ef * mean_energy)
        networks[e] = net
    model = NeuralNetworkPotential(descriptor, networks=networks,
                                   reference_energies={e: ef * atom_energy[e] for e in elements})
    model.metadata = {
        "source": str(path),
        "format": "n2p2",
        "units": {"length": length_name, "energy": energy_name},
        "n2p2": {"scaling": mode, "scale_min_short": smin, "scale_max_short": smax,
                 "normalization": {"mean_energy": mean_energy, "conv_energy": conv_energy,
                                   "conv_length": conv_length}
                 if all(normalise) else None,
                 "atom_energy": atom_energy, "normalize_nodes": normalize_nodes,
                 "cutoff_type": cutoff_type, "cutoff_alpha": alpha},
        "training": {},
    }
    # n2p2 (Element::updateSymmetryFunctionStatistics) counts a value as extrapolating
    # when it lies more than 1000 machine epsilons outside [Gmin, Gmax]
    model.extrapolation_rtol = 0.0
    model.extrapolation_atol = 1000.0 * float(np.finfo(np.float64).eps)
    return model.double()


# ------------------------------------------------------------------------ export
def n2p2_functions(descriptor) -> tuple[list[dict], int, float]:
    """(function specs in Å with n2p2 type numbers, cutoff type, α) of an n2p2-expressible
    descriptor: symmetry functions of n2p2's types (Behler's G1, G2, G4, G5 are n2p2 types
    2, 2, 3, 9 with r_s = 0; see :mod:`hdnnp.descriptors.symmetry`)."""
    if not isinstance(descriptor, SymmetryFunctions):
        raise HdnnpError(f"a {descriptor.kind!r} descriptor cannot be written as n2p2 symmetry "
                         "functions (n2p2-expressible: symmetry functions of n2p2's types and "
                         "Behler's G1/G2/G4/G5)")
    out = descriptor.canonical_functions()
    for k, f in enumerate(out):
        if f["type"] not in SF_PARAMETERS or isinstance(f["type"], str):
            raise HdnnpError(f"symmetry function {k} is Behler's cosine G3, which n2p2 does "
                             "not have (n2p2-expressible: G1, G2, G4, G5 and n2p2's types)")
    return out, descriptor.cutoff_type, descriptor.cutoff_alpha


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


def _fmt(x) -> str:
    return x if isinstance(x, str) else repr(float(x))


def format_symfunction(spec: dict) -> str:
    """The ``symfunction_short`` line of a spec (values as given, shortest round-trip)."""
    fields = [spec["center"], str(spec["type"]), *spec["neighbours"]]
    fields += [_fmt(spec[n]) for n in SF_PARAMETERS[spec["type"]]]
    return "symfunction_short " + " ".join(fields)


#: n2p2 types whose symmetry-function groups reuse the r_jk factor between members
#: (see :func:`separate_compact_groups`).
_RJK_REUSING_TYPES = (21, 24)


def separate_compact_groups(functions: list[dict]) -> list[dict]:
    """Give type-21/24 functions that differ only in subtype distinct r_l (by one ulp).

    n2p2 evaluates the type-21 (and 24) functions of one centre element and neighbour
    pair as a group (``SymGrpCompAngn::calculate``, ``SymGrpCompAngnWeighted``) and
    recomputes the factor :math:`C(r_{jk}; r_l, r_c)` for a member only when its r_l or
    r_c differs from the previous member's (``calculateComp``), not when its subtype does:
    a member with the same r_l and r_c but another subtype gets the previous member's
    :math:`C(r_{jk})`, a wrong value and wrong forces (n2p2 61daa0d, found by
    ``tests/test_n2p2_nnp_predict.py``).  Lowering such a member's r_l by one unit in the
    last place (relative change ~1e-16, far below every tolerance) makes n2p2 compute it
    on its own.  Specs are in the file's units; the others are returned unchanged.
    """
    used: dict[tuple, dict[float, str]] = {}   # (type, centre, pair, r_c) -> {r_l: subtype}
    moved: dict[tuple, float] = {}
    out = []
    for f in functions:
        if f["type"] not in _RJK_REUSING_TYPES:
            out.append(f)
            continue
        group = (f["type"], f["center"], tuple(sorted(f["neighbours"])), f["rc"])
        key = (*group, f["rl"], f["subtype"])
        if key not in moved:
            taken = used.setdefault(group, {})
            rl = f["rl"]
            while taken.get(rl, f["subtype"]) != f["subtype"]:
                rl = math.nextafter(rl, -math.inf)
            taken[rl] = f["subtype"]
            moved[key] = rl
        out.append(f if moved[key] == f["rl"] else {**f, "rl": moved[key]})
    return out


def _pad_layers(layers: list[tuple[np.ndarray, np.ndarray]], widths: Sequence[int]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The same network with hidden layer k widened to ``widths[k]`` by inert neurons.

    An added neuron has zero incoming weights and bias and zero outgoing weights: its
    activation f(0) is multiplied by 0, so the output is the same number exactly.  The
    exporter uses it because n2p2 cannot give elements different widths of the last hidden
    layer: ``element_nodes_short <element> <n_1> … <n_H>`` sets only layers 1 … H−1
    (``Mode::setupNeuralNetwork``, loop ``j < numLayers - 2``, n2p2 up to at least
    a41efb2), and it reads a weights file without checking the number of values.
    """
    out = []
    for k, (w, b) in enumerate(layers):
        n_out = widths[k] if k < len(widths) else w.shape[0]
        n_in = widths[k - 1] if k > 0 else w.shape[1]
        wp = np.zeros((n_out, n_in))
        wp[:w.shape[0], :w.shape[1]] = w
        bp = np.zeros(n_out)
        bp[:b.shape[0]] = b
        out.append((wp, bp))
    return out


def export_n2p2_potential(model: NeuralNetworkPotential, outdir: str | Path,
                          length_unit: str = "angstrom", energy_unit: str = "eV",
                          overwrite: bool = False) -> Path:
    """Write ``model`` as an n2p2 potential directory (for n2p2, RuNNer-style tools and
    LAMMPS ``pair_style hdnnp``).

    The descriptor must be n2p2-expressible (:func:`n2p2_functions`), the hidden
    activations n2p2's (l t s p r g c S e h, the same per layer for all elements) and the
    output layer linear.  Input standardisation is written as n2p2's sigma scaling
    (``scaling.data`` mean = ``input_shift``, sigma = 1/``input_scale``, min/max =
    ``feature_min``/``feature_max`` for extrapolation warnings); a common
    ``output_scale``/``output_shift`` as ``conv_energy``/``mean_energy``, otherwise folded
    into the output layer; reference energies as ``atom_energy``.  Feature columns are
    permuted into n2p2's sorted order.  Elements whose hidden layers are narrower than
    another element's are widened with inert neurons (:func:`_pad_layers`; exact), so that
    ``global_nodes_short`` alone defines the networks.  Files are in ``length_unit`` and
    ``energy_unit`` (stated in the header of ``input.nn``); reloading gives the same
    predictions up to rounding (~1e-15 relative), and n2p2's ``nnp-predict`` gives them to
    ~1e-13 (``tests/test_n2p2_nnp_predict.py``).
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise HdnnpError(f"{outdir} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise HdnnpError(f"{outdir} is not empty (use overwrite=True / --force to replace "
                         "its n2p2 files)")
    lf = length_factor(length_unit)
    ef = energy_factor(energy_unit)
    functions, ctype, alpha = n2p2_functions(model.descriptor)
    functions = separate_compact_groups(
        [normalise_function(convert_function_units(f, 1.0 / lf), model.elements)
         for f in functions])
    elements = sorted(model.elements, key=lambda e: atomic_numbers[e])
    index = {e: k for k, e in enumerate(elements)}

    if model.committee_size > 1:
        raise HdnnpError(f"the potential is a committee of {model.committee_size} members and "
                         "an n2p2 potential directory holds one: export each member "
                         "(hdnnp export --member K)")
    # networks: n2p2 has one set of activations for all elements and a linear output
    nets = {e: model.networks[e] for e in elements}
    n_hidden = {len(n.hidden) for n in nets.values()}
    if len(n_hidden) != 1:
        raise HdnnpError("n2p2 needs the same number of hidden layers for all elements")
    acts_by_layer = {tuple(n.activation_names[:-1]) for n in nets.values()}
    if len(acts_by_layer) != 1:
        raise HdnnpError("n2p2 needs the same activation per hidden layer for all elements, "
                         f"the model has {sorted(acts_by_layer)}")
    (acts,) = acts_by_layer
    letters = []
    for a in acts:
        if a not in _LETTER_OF:
            raise HdnnpError(f"activation {a!r} has no n2p2 equivalent (n2p2 has "
                             f"{', '.join(N2P2_ACTIVATIONS.values())})")
        letters.append(_LETTER_OF[a])
    for e, n in nets.items():
        if n.activation_names[-1] != "linear":
            raise HdnnpError(f"the output layer of element {e} uses {n.activation_names[-1]!r};"
                             " n2p2's output layer is linear")
    (n_hidden,) = n_hidden
    # one width per hidden layer for all elements (see _pad_layers: n2p2's
    # element_nodes_short cannot set the last hidden layer)
    global_nodes = [max(n.hidden[k] for n in nets.values()) for k in range(n_hidden)]

    # energies: E_file = NN_file / conv_energy + mean_energy + atom_energy
    scales = {e: float(n.output_scale) for e, n in nets.items()}
    shifts = {e: float(n.output_shift) for e, n in nets.items()}
    common = len(set(scales.values())) == 1 and len(set(shifts.values())) == 1
    if common and scales[elements[0]] != 0.0:
        conv_energy = ef / scales[elements[0]]
        mean_energy = shifts[elements[0]] / ef
    else:
        conv_energy, mean_energy = None, None

    # feature permutation into n2p2's order
    by_element: dict[str, list[tuple[int, dict]]] = {e: [] for e in elements}
    for f in functions:
        by_element[f["center"]].append((len(by_element[f["center"]]), f))
    perms: dict[str, list[int]] = {}
    for e in elements:
        items = by_element[e]
        if not items:
            raise HdnnpError(f"element {e} has no symmetry functions; n2p2 needs at least one")
        if len(items) != nets[e].n_inputs:
            raise HdnnpError(f"element {e}: {len(items)} symmetry functions but the network "
                             f"has {nets[e].n_inputs} inputs")
        perms[e] = [c for c, _ in sorted(items, key=lambda cf: n2p2_sort_key(cf[1], index))]

    outdir.mkdir(parents=True, exist_ok=True)
    units_text = {"angstrom": "Angstrom", "bohr": "Bohr", "ev": "eV", "hartree": "Ha",
                  "ha": "Ha"}
    lines = [
        "#" * 79,
        f"# n2p2 potential written by hdnnp {__version__}",
        f"# Length unit     : {units_text.get(length_unit.lower(), length_unit)}",
        f"# Energy unit     : {units_text.get(energy_unit.lower(), energy_unit)}",
        f"# Source          : {model.metadata.get('source', 'hdnnp model')}",
        "#" * 79,
        "",
    ]
    if conv_energy is not None:
        lines += ["# data set normalisation (output scale and shift of the hdnnp networks)",
                  f"mean_energy {mean_energy!r}", f"conv_energy {conv_energy!r}",
                  "conv_length 1.0", ""]
    lines += [f"number_of_elements {len(elements)}", f"elements {' '.join(elements)}"]
    ref = model.reference_energy_dict()
    lines += [f"atom_energy {e} {ref[e] / ef!r}" for e in elements]
    lines += [f"cutoff_type {ctype} {alpha!r}",
              "scale_symmetry_functions_sigma",
              "scale_min_short 0.0",
              "scale_max_short 1.0",
              f"global_hidden_layers_short {n_hidden}",
              f"global_nodes_short {' '.join(map(str, global_nodes))}",
              f"global_activation_short {' '.join(letters)} l", ""]
    for e in elements:
        lines.append(f"# symmetry functions of {e} (n2p2 order)")
        items = dict(by_element[e])
        lines += [format_symfunction(items[c]) for c in perms[e]]
    atomic_write_text(outdir / "input.nn", "\n".join(lines) + "\n")

    blocks = []
    for e in elements:
        net = nets[e]
        p = perms[e]
        shift = net.input_shift.detach().double().cpu().numpy()[p]
        scale = net.input_scale.detach().double().cpu().numpy()[p]
        lo = net.feature_min.detach().double().cpu().numpy()[p]
        hi = net.feature_max.detach().double().cpu().numpy()[p]
        with np.errstate(divide="ignore"):
            sigma = np.where(scale != 0.0, 1.0 / scale, math.inf)
        blocks.append(list(zip(lo.tolist(), hi.tolist(), shift.tolist(), sigma.tolist())))
    write_scaling_data(outdir / "scaling.data", blocks)

    for e in elements:
        net = nets[e]
        layers = [(layer.weight.detach().double().cpu().numpy().copy(),
                   layer.bias.detach().double().cpu().numpy().copy()) for layer in net.layers]
        layers[0] = (layers[0][0][:, perms[e]], layers[0][1])
        layers = _pad_layers(layers, global_nodes)
        if conv_energy is None:
            s, b = scales[e] / ef, shifts[e] / ef
            w_out, b_out = layers[-1]
            layers[-1] = (w_out * s, b_out * s + b)
        write_weights(outdir / WEIGHTS_FILE.format(z=atomic_numbers[e]), layers)
    return outdir


__all__ = ["export_n2p2_potential", "format_symfunction", "load_n2p2_potential",
           "n2p2_functions", "parse_symfunction_line"]
