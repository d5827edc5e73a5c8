"""``hdnnp scan``: cohesive energy per atom against a scaling factor (thesis fig. 5.2)."""

from __future__ import annotations

import json
import re
import textwrap

from hdnnp.cli import command_parser, labelled_paths

_DESCRIPTION = (
    "Scale a structure's cell and coordinates by 1+f for each scaling factor "
    "f, predict the cohesive energy per atom (E - sum_Z N_Z E_ref_Z)/N with "
    "one or several potentials (E_ref: the first potential's isolated-atom energies; "
    "name them LABEL=PATH) and, with --reference, with the reference method; plot all "
    "against f (against the bond length for a dimer) with the maximum and mean "
    "cohesive energy per atom of the training data (--data: any source 'hdnnp train' "
    "reads, bundled sets included) as horizontal lines, and the slope dE/df in a second "
    "panel. With --data from a bundled set or a labelling database, --reference uses "
    "the settings the data were labelled with (e.g. the electronic temperature); "
    "'--reference data' takes the method from there too. The structure should be "
    "relaxed first.")


def register(sub) -> None:
    p = command_parser(
        sub, "scan", help="energy vs scaling factor (extrapolation test)",
        description=textwrap.fill(_DESCRIPTION, 88),
        examples="  hdnnp scan model.json graphene.xyz\n"
                 "  hdnnp scan A=runs/gA/model.json B=runs/gB/model.json graphene.xyz "
                 "--data bundled:graphene-A --reference data\n"
                 "  hdnnp scan runs/h2/model.json h2.xyz --factors -0.3:1.5:37\n"
                 "  hdnnp scan model.json graphene.xyz --factors -0.1:0.1:41 --reference gfn1 "
                 "--data train.xyz\n"
                 "  hdnnp scan model.json rutile.xsf --factors -0.1,-0.05,0,0.05,0.1 "
                 "--json scan.json -o rutile-scan.png\n"
                 "  hdnnp scan runs/tio2/model.json anatase.xsf --train-max -8.1 "
                 "--train-mean -8.9")
    p.add_argument("paths", nargs="+", metavar="MODEL [MODEL ...] STRUCTURE",
                   help="potential files or n2p2 directories (each optionally LABEL=PATH), "
                        "then the structure file (any format hdnnp reads)")
    p.add_argument("--index", type=int, default=0,
                   help="which structure of the file (default 0, the first; -1: the last)")
    p.add_argument("--factors", default="-0.1:0.1:21", metavar="SPEC",
                   help="START:STOP:NUM (inclusive) or a comma-separated list "
                        "(default -0.1:0.1:21)")
    p.add_argument("--reference", default="none", metavar="METHOD",
                   help="reference method for the true energies: gfn1 (tblite GFN1-xTB), "
                        "gfn2, ipea1, an ASE calculator name, data (the method --data was "
                        "labelled with), or none (default)")
    p.add_argument("--electronic-temperature", type=float, metavar="K",
                   help="tblite electronic temperature of the reference (default: that of "
                        "--data's labels where recorded, else 300 K)")
    p.add_argument("--reference-atoms", choices=("model", "own"), default="model",
                   help="isolated-atom energies for the reference method's cohesive energies: "
                        "the potential's (default; right when it was trained on this "
                        "method's data) or the method's own, computed here")
    p.add_argument("--data", nargs="+", metavar="SOURCE",
                   help="labelled training data (files, databases, bundled:NAME): draw its "
                        "maximum and mean cohesive energy per atom (with the first "
                        "potential's isolated-atom energies)")
    p.add_argument("--no-slope", action="store_true", help="no dE/df panel")
    p.add_argument("--train-max", type=float, metavar="EV",
                   help="maximum cohesive energy per atom of the training set (eV/atom)")
    p.add_argument("--train-mean", type=float, metavar="EV",
                   help="mean cohesive energy per atom of the training set (eV/atom)")
    p.add_argument("-o", "--output", default="scan.png", metavar="FIG",
                   help="figure file (default scan.png; 'none' for no figure)")
    p.add_argument("--json", metavar="FILE", help="also write the scan as JSON")
    p.add_argument("--device", help="torch device for the potential (default: cuda if present)")
    # Accept "--factors -0.1:0.1:21": Python < 3.13 takes a leading "-0" for an option
    # unless it is a plain number; 3.13 treats any "-<digit>" as an argument, as here.
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\.?\d")
    p.set_defaults(func=run)


def _reference_calculator(method: str, symbols, own_atoms: bool, recorded: dict | None,
                          electronic_temperature: float | None):
    """Calculator, display name and (with ``own_atoms``) isolated-atom energies.

    ``recorded``: the settings the training data were labelled with; they are used when
    the method is theirs (``method == "data"`` or the same method), so that the scan
    compares with the very reference the potential learned."""
    from hdnnp.errors import HdnnpError

    try:
        from hdnnp.reference_data.calculators import (
            ReferenceSettings,
            check_elements,
            isolated_atom_energies,
            make_calculator,
        )
    except ImportError as exc:
        raise HdnnpError(f"--reference {method}: the reference calculators "
                         f"(hdnnp.reference_data.calculators) are not available ({exc})") from None
    if method.strip().lower() == "data":
        if not recorded:
            raise HdnnpError("--reference data needs --data from a bundled set or a "
                             "labelling database (plain structure files do not record how "
                             "they were labelled)")
        method = recorded["method"]
    settings = ReferenceSettings(method=method)
    note = None
    if recorded and ReferenceSettings(method=recorded["method"]).method == settings.method:
        settings = ReferenceSettings.from_dict(recorded)
        note = "settings of the training labels"
    if electronic_temperature is not None:
        settings.electronic_temperature = electronic_temperature
        note = None
    if note and settings.is_tblite:
        print(f"reference: {settings.method}, electronic temperature "
              f"{settings.electronic_temperature:g} K ({note})")
    check_elements(symbols, settings)
    atoms_e = isolated_atom_energies(sorted(set(symbols)), settings) if own_atoms else None
    return make_calculator(settings), settings.method, atoms_e


def _dimer_length(atoms) -> float | None:
    """Bond length of a two-atom, non-periodic structure (the x axis of a dimer scan)."""
    import numpy as np

    if len(atoms) != 2 or atoms.pbc.any():
        return None
    return float(np.linalg.norm(atoms.positions[1] - atoms.positions[0]))


def run(args) -> int:
    import sys
    import warnings
    from pathlib import Path

    import numpy as np

    from hdnnp.analysis.scan import energy_per_atom_stats, parse_factors, scaling_scan
    from hdnnp.calculator import Calculator
    from hdnnp.data import labelling_settings, load_datasets
    from hdnnp.errors import HdnnpError
    from hdnnp.fileio import atomic_write_text
    from hdnnp.io import read_structures

    if len(args.paths) < 2:
        raise HdnnpError("give at least one MODEL and the STRUCTURE (the last argument)")
    *model_args, structure = args.paths
    models = labelled_paths(model_args)
    factors = parse_factors(args.factors)
    structures = read_structures(structure)
    if not structures:
        raise HdnnpError(f"{structure}: no structures")
    try:
        atoms = structures[args.index]
    except IndexError:
        raise HdnnpError(f"{structure}: no structure {args.index} (the file holds "
                         f"{len(structures)})") from None
    calcs = {}
    for label, path in models:
        calc = Calculator(path, device=args.device, extrapolation="ignore")
        missing = sorted(set(atoms.get_chemical_symbols()) - set(calc.model.elements))
        if missing:
            raise HdnnpError(f"{structure}: element(s) {', '.join(missing)} not in the "
                             f"potential {path} ({', '.join(calc.model.elements)})")
        calcs[label] = calc
    first = next(iter(calcs.values()))
    ref_energies = first.model.reference_energy_dict()

    recorded = None
    train_max, train_mean = args.train_max, args.train_mean
    if args.data:
        data = load_datasets(args.data)
        stats = energy_per_atom_stats(data.structures, ref_energies)
        train_max = stats["max"] if train_max is None else train_max
        train_mean = stats["mean"] if train_mean is None else train_mean
        found = [labelling_settings(d) for d in args.data]
        recorded = found[0] if found and all(f == found[0] for f in found) else None
    ref_calc, ref_label, ref_atoms = None, "reference", None
    if args.reference.strip().lower() != "none":
        ref_calc, ref_label, ref_atoms = _reference_calculator(
            args.reference, atoms.get_chemical_symbols(), args.reference_atoms == "own",
            recorded, args.electronic_temperature)

    results = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k, (label, calc) in enumerate(calcs.items()):
            results[label] = scaling_scan(
                calc, atoms, factors, reference_calculator=ref_calc if k == 0 else None,
                reference_energies=ref_energies, progress=sys.stderr.isatty(),
                reference_method_atom_energies=ref_atoms)
    for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught):
        print(f"hdnnp: warning: {message}", file=sys.stderr)
    result = next(iter(results.values()))
    reference = result.reference_energy_per_atom
    d0 = _dimer_length(atoms)

    kind = result.energy_kind
    print(f"structure: {structure} [{args.index}] {result.formula}, {result.n_atoms} "
          f"atoms; {kind} energy per atom (eV/atom)")
    head = f"{'factor':>8}" + (f"  {'d (Å)':>8}" if d0 is not None else "")
    head += "".join(f"  {label[:12]:>12}" for label in results)
    if reference is not None:
        head += f"  {ref_label[:12]:>12}  {'error (meV/atom)':>16}"
    if result.extrapolation is not None:
        head += f"  {'extrapolating':>13}"
    print(head)
    for k, f in enumerate(result.factors):
        line = f"{f:8.4f}" + (f"  {d0 * (1 + f):8.4f}" if d0 is not None else "")
        line += "".join(f"  {r.energy_per_atom[k]:12.6f}" for r in results.values())
        if reference is not None:
            error = 1000 * (result.energy_per_atom[k] - reference[k])
            line += f"  {reference[k]:12.6f}  {error:16.2f}"
        if result.extrapolation is not None:
            line += f"  {int(result.extrapolation[k]):>13d}"
        print(line)
    for label, r in results.items():
        print(f"minimum ({label}) at f = {r.minimum('model'):g}")
    if reference is not None and np.isfinite(reference).any():
        print(f"minimum ({ref_label}) at f = {result.minimum('reference'):g}")
    if train_max is not None or train_mean is not None:
        print(f"training set: max {train_max}, mean {train_mean} eV/atom")

    if args.json:
        doc = result.to_dict()
        doc.update({"model": str(models[0][1]), "structure": str(structure),
                    "index": args.index, "reference_method": ref_label if ref_calc else None,
                    "reference_method_atom_energies_eV": ref_atoms,
                    "reference_settings_from_data": recorded,
                    "training_max": train_max, "training_mean": train_mean,
                    "bond_length_A": None if d0 is None else
                    [d0 * (1 + float(f)) for f in result.factors],
                    "models": {label: {"path": str(path), **results[label].to_dict()}
                               for label, path in models}})
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
        print(f"scan: {args.json}")
    if args.output and args.output.lower() != "none":
        from hdnnp.analysis.plots import plot_scaling_scan

        plot_scaling_scan(
            result.factors, {label: r.energy_per_atom for label, r in results.items()},
            Path(args.output), reference_energy_per_atom=reference,
            training_max=train_max, training_mean=train_mean, reference_label=ref_label,
            ylabel=f"{kind} energy per atom (eV/atom)", title=result.formula,
            x=None if d0 is None else d0 * (1 + result.factors),
            xlabel="bond length (Å)" if d0 is not None else
            "scaling factor f (lengths × (1 + f))",
            derivative=not args.no_slope and len(result.factors) > 1)
        print(f"figure: {args.output}")
    return 0
