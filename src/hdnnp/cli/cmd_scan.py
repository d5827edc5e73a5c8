"""``hdnnp scan``: cohesive energy per atom against a scaling factor (thesis fig. 5.2)."""

from __future__ import annotations

import json
import re
import textwrap

from hdnnp.cli import command_parser

_DESCRIPTION = (
    "Scale a structure's cell and coordinates by 1+f for each scaling factor "
    "f, predict the cohesive energy per atom (E - sum_Z N_Z E_ref_Z)/N with "
    "the potential (E_ref: the potential's isolated-atom energies) and, with "
    "--reference, with the reference method; plot both against f with the "
    "maximum and mean cohesive energy per atom of the training data (--data) "
    "as horizontal lines.  The structure should be relaxed first.")


def register(sub) -> None:
    p = command_parser(
        sub, "scan", help="energy vs scaling factor (extrapolation test)",
        description=textwrap.fill(_DESCRIPTION, 88),
        examples="  hdnnp scan model.json graphene.xyz\n"
                 "  hdnnp scan model.json graphene.xyz --factors -0.1:0.1:41 --reference gfn1 "
                 "--data train.xyz\n"
                 "  hdnnp scan model.json rutile.xsf --factors -0.1,-0.05,0,0.05,0.1 "
                 "--json scan.json -o rutile-scan.png\n"
                 "  hdnnp scan runs/tio2/model.json anatase.xsf --train-max -8.1 "
                 "--train-mean -8.9")
    p.add_argument("model", metavar="MODEL", help="potential file or n2p2 potential directory")
    p.add_argument("structure", metavar="STRUCTURE",
                   help="structure file (any format hdnnp reads)")
    p.add_argument("--index", type=int, default=0,
                   help="which structure of the file (default 0, the first; -1: the last)")
    p.add_argument("--factors", default="-0.1:0.1:21", metavar="SPEC",
                   help="START:STOP:NUM (inclusive) or a comma-separated list "
                        "(default -0.1:0.1:21)")
    p.add_argument("--reference", default="none", metavar="METHOD",
                   help="reference method for the true energies: gfn1 (tblite GFN1-xTB), "
                        "gfn2, ipea1, an ASE calculator name, or none (default)")
    p.add_argument("--reference-atoms", choices=("model", "own"), default="model",
                   help="isolated-atom energies for the reference method's cohesive energies: "
                        "the potential's (default; right when it was trained on this "
                        "method's data) or the method's own, computed here")
    p.add_argument("--data", nargs="+", metavar="FILE",
                   help="labelled training data: draw its maximum and mean cohesive energy "
                        "per atom (with the potential's isolated-atom energies)")
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


def _reference_calculator(method: str, symbols, own_atoms: bool):
    """Calculator, display name and (with ``own_atoms``) isolated-atom energies."""
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
    settings = ReferenceSettings(method=method)
    check_elements(symbols, settings)
    atoms_e = isolated_atom_energies(sorted(set(symbols)), settings) if own_atoms else None
    return make_calculator(settings), settings.method, atoms_e


def run(args) -> int:
    import sys
    import warnings
    from pathlib import Path

    import numpy as np

    from hdnnp.analysis.scan import energy_per_atom_stats, parse_factors, scaling_scan
    from hdnnp.calculator import Calculator
    from hdnnp.errors import HdnnpError
    from hdnnp.fileio import atomic_write_text
    from hdnnp.io import read_structures

    factors = parse_factors(args.factors)
    structures = read_structures(args.structure)
    if not structures:
        raise HdnnpError(f"{args.structure}: no structures")
    try:
        atoms = structures[args.index]
    except IndexError:
        raise HdnnpError(f"{args.structure}: no structure {args.index} (the file holds "
                         f"{len(structures)})") from None
    calc = Calculator(args.model, device=args.device, extrapolation="ignore")
    missing = sorted(set(atoms.get_chemical_symbols()) - set(calc.model.elements))
    if missing:
        raise HdnnpError(f"{args.structure}: element(s) {', '.join(missing)} not in the "
                         f"potential ({', '.join(calc.model.elements)})")
    ref_energies = calc.model.reference_energy_dict()
    ref_calc, ref_label, ref_atoms = None, "reference", None
    if args.reference.strip().lower() != "none":
        ref_calc, ref_label, ref_atoms = _reference_calculator(
            args.reference, atoms.get_chemical_symbols(), args.reference_atoms == "own")

    train_max, train_mean = args.train_max, args.train_mean
    if args.data:
        stats = energy_per_atom_stats(read_structures(args.data), ref_energies)
        train_max = stats["max"] if train_max is None else train_max
        train_mean = stats["mean"] if train_mean is None else train_mean

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = scaling_scan(calc, atoms, factors, reference_calculator=ref_calc,
                              reference_energies=ref_energies, progress=sys.stderr.isatty(),
                              reference_method_atom_energies=ref_atoms)
    for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught):
        print(f"hdnnp: warning: {message}", file=sys.stderr)

    kind = result.energy_kind
    print(f"structure: {args.structure} [{args.index}] {result.formula}, {result.n_atoms} "
          f"atoms; {kind} energy per atom (eV/atom)")
    head = f"{'factor':>8}  {'HDNNP':>12}"
    if result.reference_energy_per_atom is not None:
        head += f"  {ref_label:>12}  {'error (meV/atom)':>16}"
    if result.extrapolation is not None:
        head += f"  {'extrapolating':>13}"
    print(head)
    for k, f in enumerate(result.factors):
        line = f"{f:8.4f}  {result.energy_per_atom[k]:12.6f}"
        if result.reference_energy_per_atom is not None:
            r = result.reference_energy_per_atom[k]
            line += f"  {r:12.6f}  {1000 * (result.energy_per_atom[k] - r):16.2f}"
        if result.extrapolation is not None:
            line += f"  {int(result.extrapolation[k]):>13d}"
        print(line)
    print(f"minimum (HDNNP) at f = {result.minimum('model'):g}")
    if result.reference_energy_per_atom is not None and \
            np.isfinite(result.reference_energy_per_atom).any():
        print(f"minimum ({ref_label}) at f = {result.minimum('reference'):g}")
    if train_max is not None or train_mean is not None:
        print(f"training set: max {train_max}, mean {train_mean} eV/atom")

    if args.json:
        doc = result.to_dict()
        doc.update({"model": str(args.model), "structure": str(args.structure),
                    "index": args.index, "reference_method": ref_label if ref_calc else None,
                    "reference_method_atom_energies_eV": ref_atoms,
                    "training_max": train_max, "training_mean": train_mean})
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
        print(f"scan: {args.json}")
    if args.output and args.output.lower() != "none":
        result.plot(Path(args.output), training_max=train_max, training_mean=train_mean,
                    reference_label=ref_label)
        print(f"figure: {args.output}")
    return 0
