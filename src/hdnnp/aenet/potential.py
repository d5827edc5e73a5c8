r"""ænet potentials as hdnnp models, and hdnnp models as ænet potentials.

ænet's ``predict.x`` (``aenet.f90``: ``aenet_atomic_energy``; ``sfsetup.f90``:
``stp_normalize``; ``potential.f90``: ``load_NNPot``) computes the energy of atom *i* of
species *t* as

.. math::

    E_i = \frac{y_t(\mathbf x_i)}{s_E} + b_E + E^{\mathrm{atom}}_t,
    \qquad x_{if} = \frac{G_{if} - \langle G_f\rangle}
                         {\sqrt{\langle G_f^2\rangle - \langle G_f\rangle^2}}

with the training set's energy ``scale`` :math:`s_E` and ``shift`` :math:`b_E`, the
atomic reference energy :math:`E^{\mathrm{atom}}_t` of the ``TYPES`` section of
``generate.in``, and the per-feature mean ``sfval_avg`` and mean square ``sfval_cov``
of the fingerprints in the training set (a feature whose spread is below 1e-10 gets
scale 0, as in ænet).  All of this maps onto an hdnnp network without approximation:
``input_shift`` = ``sfval_avg``, ``input_scale`` = the inverse spread (computed with
ænet's operations), ``output_scale`` = :math:`1/s_E`, ``output_shift`` = :math:`b_E`,
reference energies = :math:`E^{\mathrm{atom}}`; the weights are ænet's, the activations
ænet's codes (0 linear, 1 tanh, 2 sigmoid, 3 mtanh, 4 twist; :mod:`hdnnp.activations`).
ænet works in eV and Å, as hdnnp does: nothing is converted.

Descriptors:

* ``Chebyshev`` (``ext/sfbasis.f90``) → :class:`hdnnp.descriptors.Chebyshev` with the
  elements in the order of the files' ``ENV`` list (the order of ænet's type spins,
  :func:`hdnnp.descriptors.chebyshev.type_spins`), radial/angular cutoff and order from
  ``sfparam(1:4, 1)``.  Feature order (radial, angular, weighted radial, weighted angular)
  and definitions are the same.  ænet keeps the neighbour's type spin of the last pair
  inside the *radial* cutoff for the angular terms, so with an angular cutoff larger than
  the radial one the weighted angular features depend on the order of ænet's neighbour
  list; such set-ups are refused.
* ``Behler2011`` (``ext/symmfunc.f90``) → :class:`hdnnp.descriptors.SymmetryFunctions`
  with the cosine cutoff: G1 (``Rc``), G2 (``Rc, Rs, eta``), G3 (``Rc, kappa``), G4 and
  G5 (``Rc, lambda, zeta, eta``; ænet's :math:`2\sum_{j<k} [(1+\lambda\cos\theta)/2]^\zeta`
  is hdnnp's :math:`2^{1-\zeta}\sum_{j<k}(1+\lambda\cos\theta)^\zeta`).  ænet evaluates
  the functions not in the order of the set-up file but grouped (``sf_build_index``): for
  each neighbour species *b* in ``ENV`` order, first the radial functions with *b*
  (G1, G2, G3), then the angular functions with *b* and each species *c* at or after *b*
  (G4, G5); the network inputs and ``sfval_*`` follow that order, and so do the hdnnp
  functions made from a file.  (ænet indexes the centre species by its position in
  ``predict.in``'s ``TYPES`` when it sets the functions up and by its position in ``ENV``
  when it evaluates them: the two lists must agree, as they do in ænet's examples and in
  the files written here.)

Writing (:func:`export_aenet_potential`) is the inverse: the input standardisation is
folded into the first layer (:math:`W' = W\,\mathrm{diag}(\sigma^{-1})`,
:math:`b' = b - W'\mu`) and ``sfval_avg`` = 0, ``sfval_cov`` = 1 are written, so that
ænet's normalisation is the identity exactly; ``scale`` = 1/``output_scale``, ``shift``
= ``output_shift``.  Models whose descriptor ænet cannot evaluate are refused with a
one-line error naming what is not expressible (other descriptor kinds, cutoff functions
other than the cosine, n2p2 types other than G1–G5, a shifted G4/G5, custom type spins,
activations outside ænet's five, committees).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from hdnnp.aenet.nnfile import (
    ACTIVATION_CODES,
    ACTIVATION_NUMBERS,
    NNFile,
    NNNetwork,
    NNSetup,
    NNTrainset,
    read_nn,
    write_nn,
)
from hdnnp.errors import HdnnpError, PotentialFileError
from hdnnp.model import AtomicNetwork, NeuralNetworkPotential
from hdnnp.validation import (
    MAX_FEATURES,
    MAX_LAYERS,
    MAX_NEURONS,
    MAX_VALUE,
    check_cutoff,
    symmetry_function_problem,
)

#: suffixes of ænet potential files in a directory
NN_SUFFIXES = (".nn", ".nn.ascii", ".ann", ".ann.ascii")
#: ``RMIN`` written into exported files (Å): ænet sizes its neighbour arrays from it
DEFAULT_RC_MIN = 0.75


def is_aenet_path(path: str | Path) -> bool:
    """Whether ``path`` looks like an ænet potential: a ``*.nn`` file or a directory with
    ``*.nn`` files (and no n2p2 ``input.nn``)."""
    path = Path(path)
    if path.is_dir():
        try:
            return not (path / "input.nn").exists() and bool(_nn_files(path))
        except OSError:  # unreadable: let the loaders report it
            return False
    return path.name.endswith(NN_SUFFIXES) and path.name != "input.nn"  # n2p2's settings


def _nn_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.name.endswith(NN_SUFFIXES))


# -------------------------------------------------------------------------- reading

def _behler_spec(path: Path, stp: NNSetup, j: int) -> tuple[tuple, dict]:
    """(ænet's evaluation-order key, hdnnp function) of function ``j`` of a set-up."""
    g, p = stp.sf[j], stp.sfparam[j]
    env = stp.envtypes

    def species(k):
        t = int(stp.sfenv[j, k])
        if not 1 <= t <= len(env):
            raise PotentialFileError(path, f"function {j + 1} (G{g}) names environment "
                                     f"species {t} of {len(env)}")
        return t

    base = {"center": stp.atomtype, "rc": float(p[0])}
    if g in (1, 2, 3):
        t2 = species(0)
        spec = {**base, "type": f"G{g}", "neighbours": [env[t2 - 1]]}
        if g == 2:
            spec.update(rs=float(p[1]), eta=float(p[2]))
        elif g == 3:
            spec.update(kappa=float(p[1]))
        return (t2, 0, 0, g, j), spec
    if g in (4, 5):
        t2, t3 = species(0), species(1)
        lo, hi = min(t2, t3), max(t2, t3)
        spec = {**base, "type": f"G{g}", "neighbours": [env[lo - 1], env[hi - 1]],
                "lambda": float(p[1]), "zeta": float(p[2]), "eta": float(p[3])}
        return (lo, 1, hi, g, j), spec
    raise PotentialFileError(path, f"function {j + 1}: Behler2011 type G{g} is not one of "
                             "ænet's G1-G5")


def behler_order(path: Path, stp: NNSetup) -> list[tuple[int, dict]]:
    """The set-up's functions in ænet's evaluation order: (index in the file, function)."""
    keyed = [_behler_spec(path, stp, j) for j in range(stp.nsf)]
    order = sorted(range(stp.nsf), key=lambda j: keyed[j][0])
    return [(j, keyed[j][1]) for j in order]


def _descriptor(files: dict[str, tuple[Path, NNFile]]):
    from hdnnp.descriptors import Chebyshev, SymmetryFunctions

    first_el, (first_path, first) = next(iter(files.items()))
    env = list(first.setup.envtypes)
    kinds = {el: f.setup.sftype.strip().lower() for el, (_, f) in files.items()}
    for el, (path, f) in files.items():
        if list(f.setup.envtypes) != env:
            raise PotentialFileError(path, f"environment species {f.setup.envtypes} differ "
                                     f"from {env} of {first_path.name}: ænet's type order "
                                     "must be the same in every file")
        if kinds[el] != kinds[first_el]:
            raise PotentialFileError(path, f"basis {f.setup.sftype!r} differs from "
                                     f"{first.setup.sftype!r} of {first_path.name}")
    missing = [e for e in env if e not in files]
    if missing:
        raise PotentialFileError(first_path, f"no ænet potential file for {', '.join(missing)}"
                                 " (listed in ENV)")
    extra = [e for e in files if e not in env]
    if extra:
        path = files[extra[0]][0]
        raise PotentialFileError(path, f"species {extra[0]} is not in the environment "
                                 f"species {env}")
    kind = kinds[first_el]
    if kind == "chebyshev":
        params = None
        for path, f in files.values():
            p = tuple(float(x) for x in f.setup.sfparam[0, :4])
            if params is None:
                params = p
            elif p != params:
                raise PotentialFileError(path, f"Chebyshev parameters {p} differ from "
                                         f"{params} of {first_path.name}: one descriptor "
                                         "for all species is needed")
        r_rc, r_n, a_rc, a_n = params
        for v, what in ((r_rc, "radial_Rc"), (a_rc, "angular_Rc")):
            try:
                check_cutoff(v, what)
            except HdnnpError as exc:
                raise PotentialFileError(first_path, str(exc)) from None
        if not (r_n == int(r_n) and a_n == int(a_n) and 0 <= r_n <= MAX_FEATURES
                and 0 <= a_n <= MAX_FEATURES):
            raise PotentialFileError(first_path, f"Chebyshev orders {r_n}, {a_n} are not "
                                     f"whole numbers in 0…{MAX_FEATURES}")
        if len(env) > 1 and a_rc > r_rc:
            raise PotentialFileError(first_path, f"angular_Rc {a_rc} > radial_Rc {r_rc} with "
                                     "several species: ænet's weighted angular features "
                                     "then depend on its neighbour order (not reproducible)")
        return Chebyshev(env, r_rc, int(r_n), a_rc, int(a_n)), {}
    if kind == "behler2011":
        functions, order = [], {}
        for el, (path, f) in files.items():
            ordered = behler_order(path, f.setup)
            order[el] = [j for j, _ in ordered]
            for j, spec in ordered:
                problem = symmetry_function_problem(spec)
                if problem:
                    raise PotentialFileError(path, f"function {j + 1} (G{f.setup.sf[j]}): "
                                             f"{problem}")
                functions.append(spec)
        try:
            return SymmetryFunctions(env, functions, cutoff_type="cos"), order
        except HdnnpError as exc:
            raise PotentialFileError(first_path, f"Behler2011 set-up: {exc}") from None
    raise PotentialFileError(first_path, f"basis type {first.setup.sftype!r} is not one ænet "
                             "writes (Chebyshev, Behler2011)")


def _network(path: Path, f: NNFile, n_inputs: int) -> AtomicNetwork:
    net, stp, ts = f.network, f.setup, f.trainset
    if net.nnodes[0] != n_inputs:
        raise PotentialFileError(path, f"the network takes {net.nnodes[0]} inputs, the "
                                 f"{stp.sftype.strip()} set-up gives {n_inputs}")
    if net.nlayers - 2 > MAX_LAYERS or max(net.nnodes[1:]) > MAX_NEURONS:
        raise PotentialFileError(path, f"layer sizes {net.nnodes} beyond hdnnp's limits "
                                 f"({MAX_LAYERS} hidden layers of {MAX_NEURONS} neurons)")
    for what, values in (("weights", net.W), ("sfval_avg", stp.sfval_avg),
                         ("sfval_cov", stp.sfval_cov), ("sfval_min", stp.sfval_min),
                         ("sfval_max", stp.sfval_max),
                         ("energy scale and shift", np.array([ts.scale, ts.shift]))):
        if values.size and float(np.abs(values).max()) > MAX_VALUE:
            raise PotentialFileError(path, f"{what}: a value beyond {MAX_VALUE:g} (damaged?)")
    if not abs(ts.scale) >= 1.0 / MAX_VALUE:
        raise PotentialFileError(path, f"the energy scale {ts.scale:g} is (nearly) 0")
    names = [ACTIVATION_CODES[c] for c in net.f_a]
    model_net = AtomicNetwork(n_inputs, net.nnodes[1:-1], names[:-1], names[-1])
    model_net.double()
    # Behler2011: ænet's sfval_* are already in its evaluation order, which is ours
    with torch.no_grad():
        for layer, (w, b) in zip(model_net.layers, net.layers()):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
        avg = stp.sfval_avg
        spread = np.sqrt(stp.sfval_cov - avg * avg)   # ænet: sqrt(cov - shift*shift)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(spread <= 1e-10, 0.0, 1.0 / spread)
        if not np.isfinite(scale).all():   # cov < avg²: NaN spread, not a potential
            raise PotentialFileError(path, "sfval_cov is smaller than sfval_avg² for some "
                                     "function: damaged fingerprint statistics")
        model_net.input_shift.copy_(torch.from_numpy(avg))
        model_net.input_scale.copy_(torch.from_numpy(scale))
        model_net.output_scale.fill_(1.0 / ts.scale)
        model_net.output_shift.fill_(ts.shift)
        if stp.neval > 0:
            model_net.feature_min.copy_(torch.from_numpy(stp.sfval_min))
            model_net.feature_max.copy_(torch.from_numpy(stp.sfval_max))
    return model_net


def load_aenet_potential(source: str | Path | Mapping[str, str | Path]) -> NeuralNetworkPotential:
    """An ænet potential as an hdnnp model.

    ``source``: a directory holding one ``*.nn`` (or ``*.nn.ascii``) file per species, a
    single file (one species), or a mapping species → file (``{"Ti": "Ti.nn", ...}``).
    Binary and text files may be mixed.  Errors are one-line
    :class:`~hdnnp.errors.PotentialFileError` naming the file.
    """
    if isinstance(source, Mapping):
        paths = {str(k): Path(v) for k, v in source.items()}
    else:
        source = Path(source)
        if source.is_dir():
            found = _nn_files(source)
            if not found:
                raise PotentialFileError(source, "no ænet potential files (*.nn, *.nn.ascii) "
                                         "in this directory")
            paths = {str(p): p for p in found}
        else:
            paths = {str(source): source}
    files: dict[str, tuple[Path, NNFile]] = {}
    for label, path in paths.items():
        f = read_nn(path)
        el = f.setup.atomtype
        if isinstance(source, Mapping) and label != el:
            raise PotentialFileError(path, f"is the potential of {el}, given for {label}")
        if el in files:
            raise PotentialFileError(path, f"a second potential for {el} (the first: "
                                     f"{files[el][0]})")
        files[el] = (path, f)
    descriptor, _ = _descriptor(files)
    networks, ref = {}, {}
    for el, (path, f) in files.items():
        networks[el] = _network(path, f, descriptor.n_features(el))
        ref[el] = f.trainset.e_atom[f.trainset.types.index(el)]
        if not math.isfinite(ref[el]) or abs(ref[el]) > 1e15:
            raise PotentialFileError(path, f"atomic energy {ref[el]} of {el} is out of range")
    model = NeuralNetworkPotential(descriptor, networks=networks, reference_energies=ref)
    model.metadata = {"source": "aenet", "files": {el: str(p) for el, (p, _) in files.items()},
                      "rc_min": min(f.setup.rc_min for _, f in files.values())}
    return model


# -------------------------------------------------------------------------- writing

def _not_expressible(what: str) -> HdnnpError:
    return HdnnpError(f"not expressible in ænet: {what}")


def _behler_functions(model: NeuralNetworkPotential) -> dict[str, list[tuple]]:
    """Per centre element: (hdnnp feature index, ænet G, sfparam, sfenv) in ænet's
    evaluation order."""
    from hdnnp.descriptors.symmetry import canonical_function, function_name

    d = model.descriptor
    if d.cutoff_type != 1 or d.cutoff_alpha != 0.0:
        raise _not_expressible(f"cutoff type {d.cutoff_type} ({d.cutoff_kind}, alpha "
                               f"{d.cutoff_alpha:g}); ænet's Behler2011 uses the cosine cutoff "
                               "(type 1, alpha 0)")
    index = {e: k + 1 for k, e in enumerate(model.elements)}
    out: dict[str, list] = {e: [] for e in model.elements}
    col = dict.fromkeys(model.elements, 0)
    for f in d.functions:
        c = canonical_function(f)
        t, el = c["type"], c["center"]
        nb = sorted(index[e] for e in c["neighbours"])
        name = function_name(f)
        if t == 2:
            if c["eta"] == 0.0 and c["rs"] == 0.0:
                g, par = 1, [c["rc"], 0.0, 0.0, 0.0]
            else:
                g, par = 2, [c["rc"], c["rs"], c["eta"], 0.0]
            key, env = (nb[0], 0, 0, g), [nb[0], 0]
        elif t == "G3":
            g, par = 3, [c["rc"], c["kappa"], 0.0, 0.0]
            key, env = (nb[0], 0, 0, g), [nb[0], 0]
        elif t in (3, 9):
            if c["rs"] != 0.0:
                raise _not_expressible(f"{name}: ænet's G4/G5 have no shift rs")
            g = 4 if t == 3 else 5
            par = [c["rc"], c["lambda"], c["zeta"], c["eta"]]
            key, env = (nb[0], 1, nb[1], g), [nb[0], nb[1]]
        else:
            raise _not_expressible(f"{name}: ænet's Behler2011 has only G1-G5 (n2p2 types 2, "
                                   "3, 9 without shift, and G3)")
        out[el].append((key, col[el], g, par, env))
        col[el] += 1
    return {e: [(k, g, p, v) for _, k, g, p, v in sorted(rows, key=lambda r: (r[0], r[1]))]
            for e, rows in out.items()}


def model_to_aenet(model: NeuralNetworkPotential, rc_min: float | None = None
                   ) -> dict[str, NNFile]:
    """One ænet potential file per element of ``model`` (see the module docstring)."""
    from hdnnp.descriptors import Chebyshev, SymmetryFunctions
    from hdnnp.descriptors.chebyshev import type_spins

    if model.committee_size > 1:
        raise _not_expressible(f"a committee of {model.committee_size} members (export one "
                               "member: --member K)")
    d = model.descriptor
    elements = list(model.elements)
    bad = [e for e in elements if len(e) > 2]
    if bad:
        raise _not_expressible(f"species name {bad[0]!r} (ænet allows 2 characters)")
    if rc_min is None:
        rc_min = float(model.metadata.get("rc_min", DEFAULT_RC_MIN)) if isinstance(
            model.metadata, dict) else DEFAULT_RC_MIN
    behler = None
    if isinstance(d, Chebyshev):
        if [float(s) for s in d.spins] != type_spins(len(elements)):
            raise _not_expressible(f"Chebyshev type spins {d.spins} (ænet's are "
                                   f"{type_spins(len(elements))} for {len(elements)} species)")
        if len(elements) > 1 and d.angular_rc > d.radial_rc:
            raise _not_expressible(f"Chebyshev angular cutoff {d.angular_rc} > radial cutoff "
                                   f"{d.radial_rc} with several species (ænet then uses a stale"
                                   " type spin in the weighted angular terms)")
        sftype = "Chebyshev"
    elif isinstance(d, SymmetryFunctions):
        behler = _behler_functions(model)
        sftype = "Behler2011"
    else:
        raise _not_expressible(f"the {d.kind!r} descriptor (ænet has Chebyshev and "
                               "Behler2011 G1-G5)")
    ref = model.reference_energy_dict()
    files = {}
    for el in elements:
        net = model.networks[el]
        acts = []
        for a in net.activation_names:
            if a not in ACTIVATION_NUMBERS:
                raise _not_expressible(f"activation {a!r} of the {el} network (ænet has "
                                       f"{', '.join(ACTIVATION_NUMBERS)})")
            acts.append(ACTIVATION_NUMBERS[a])
        n_in = net.n_inputs
        if behler is not None:
            rows = behler[el]
            perm = [k for k, _, _, _ in rows]
            sf = [g for _, g, _, _ in rows]
            sfparam = np.array([p for _, _, p, _ in rows], dtype=np.float64).reshape(-1, 4)
            sfenv = np.array([v for _, _, _, v in rows], dtype=np.int64).reshape(-1, 2)
            rc_max = float(sfparam[:, 0].max()) if len(rows) else 0.0
        else:
            perm = list(range(n_in))
            sf = [0] * n_in
            sfparam = np.zeros((n_in, 4))
            sfparam[0] = [d.radial_rc, d.radial_order, d.angular_rc, d.angular_order]
            sfenv = np.zeros((n_in, 2), dtype=np.int64)
            rc_max = max(d.radial_rc, d.angular_rc)
        if n_in == 0:
            raise _not_expressible(f"the {el} network has no inputs")
        layers = []
        with torch.no_grad():
            for layer in net.layers:
                layers.append((layer.weight.detach().cpu().double().numpy().copy(),
                               layer.bias.detach().cpu().double().numpy().copy()))
            mu = net.input_shift.detach().cpu().double().numpy()
            s = net.input_scale.detach().cpu().double().numpy()
            out_scale = float(net.output_scale)
            out_shift = float(net.output_shift)
            fmin = net.feature_min.detach().cpu().double().numpy()
            fmax = net.feature_max.detach().cpu().double().numpy()
        w1, b1 = layers[0]
        w1 = w1 * s[None, :]
        b1 = b1 - w1 @ mu
        layers[0] = (w1[:, perm], b1)
        if out_scale == 0.0 or not math.isfinite(out_scale):
            raise _not_expressible(f"output scale {out_scale} of the {el} network")
        # the training range (hdnnp's extrapolation check) travels as sfval_min/max; ænet
        # marks statistics as present by neval > 0
        ranged = bool(np.isfinite(fmin).all() and np.isfinite(fmax).all())
        stats_min = np.where(np.isfinite(fmin), fmin, 0.0)[perm]
        stats_max = np.where(np.isfinite(fmax), fmax, 0.0)[perm]
        setup = NNSetup(description="hdnnp-export", atomtype=el,
                        envtypes=elements, rc_min=float(rc_min), rc_max=rc_max, sftype=sftype,
                        sf=sf, sfparam=sfparam, sfenv=sfenv, neval=int(ranged),
                        sfval_min=stats_min, sfval_max=stats_max,
                        sfval_avg=np.zeros(n_in), sfval_cov=np.ones(n_in))
        ts = NNTrainset(file="hdnnp", normalized=True, scale=1.0 / out_scale, shift=out_shift,
                        types=elements, e_atom=[ref[e] for e in elements], n_atoms=0,
                        n_structures=0, e_min=0.0, e_max=0.0, e_avg=0.0)
        files[el] = NNFile(NNNetwork.from_layers(layers, acts), setup, ts)
    return files


def export_aenet_potential(model: NeuralNetworkPotential, outdir: str | Path,
                           ascii: bool = False, overwrite: bool = False) -> dict[str, Path]:
    """Write ``model`` as ænet potential files ``OUTDIR/<El>.nn`` (``.nn.ascii`` with
    ``ascii``); returns element → path.  ``predict.x`` reads the binary files."""
    files = model_to_aenet(model)
    outdir = Path(outdir)
    suffix = ".nn.ascii" if ascii else ".nn"
    targets = {el: outdir / f"{el}{suffix}" for el in files}
    if outdir.exists() and not outdir.is_dir():
        raise HdnnpError(f"{outdir} exists and is not a directory")
    if not overwrite:
        present = [p.name for p in targets.values() if p.exists()]
        if present:
            raise HdnnpError(f"{outdir}: {', '.join(present)} exist(s); use --force to "
                             "replace")
    outdir.mkdir(parents=True, exist_ok=True)
    for el, f in files.items():
        write_nn(f, targets[el], ascii=ascii)
    return targets


def predict_in(model_or_files, structures=(), forces: bool = True) -> str:
    """A ``predict.in`` for ænet's ``predict.x`` (species in the files' ``ENV`` order)."""
    paths = dict(model_or_files)
    lines = ["TYPES", str(len(paths)), *paths, "", "NETWORKS"]
    lines += [f"  {el}  {p}" for el, p in paths.items()]
    if forces:
        lines += ["", "FORCES"]
    structures = list(structures)
    if structures:
        lines += ["", "FILES", str(len(structures)), *map(str, structures)]
    return "\n".join(lines) + "\n"
