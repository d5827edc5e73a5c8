"""``hdnnp compare``: several potentials on several subsets of a data set (thesis §5.2)."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser, labelled_paths

_DESCRIPTION = (
    "Predict each potential on the data and compare them on each subset (structures "
    "whose stored info matches KEY=VALUE, e.g. augmentation=none and augmentation=scale "
    "for the MD and the scaled structures of a bundled set B): a table of energy-per-"
    "atom (meV/atom) and force-component (eV/Å) MAE, RMSE and Pearson r, parity plots "
    "per potential with one colour per subset, squared-error histograms normalised per "
    "set (so that subsets of different size compare), the reference energy "
    "distributions, metrics.json and report.html in the output directory.")

_EXAMPLES = """\
  hdnnp compare A=runs/graphene-A/model.json B=runs/graphene-B/model.json \\
      --data bundled:graphene-B --subset augmentation=none --subset augmentation=scale
  hdnnp compare runs/tio2/model.json --data test.extxyz -o compare/tio2
  hdnnp compare A=a.json B=b.json --data set.db --subset "hot:temperature_K>=750"
"""


def register(sub) -> None:
    p = command_parser(sub, "compare", help="compare potentials on subsets of a data set",
                       description=textwrap.fill(_DESCRIPTION, 88), examples=_EXAMPLES)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="potential files or n2p2 directories, each optionally LABEL=PATH")
    p.add_argument("--data", nargs="+", required=True, metavar="SOURCE",
                   help="labelled structures: files, databases, bundled:NAME")
    p.add_argument("--subset", action="append", default=[], metavar="[LABEL:]CONDITION",
                   help="a subset of the structures by a condition on an info key, as in "
                        "'hdnnp data select --where' (KEY=VALUE, KEY>=NUMBER ...; "
                        "repeatable); default: all structures")
    p.add_argument("-o", "--output", default="compare", metavar="DIR",
                   help="output directory (default compare/)")
    p.add_argument("--device", help="torch device (default: cuda if present)")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from hdnnp.analysis.compare import compare_models
    from hdnnp.data import load_datasets
    from hdnnp.potential import load_potential

    models = {}
    for label, path in labelled_paths(args.models):
        model = load_potential(path)
        if args.device:
            model = model.to(args.device)
        models[label] = model
    data = load_datasets(args.data, require_energies=True)
    metrics = compare_models(models, data, args.subset, args.output,
                             progress=sys.stderr.isatty())
    head = f"{'model':<14}{'subset':<24}{'N':>6}{'E MAE':>10}{'E RMSE':>10}{'E r':>9}" \
           f"{'F RMSE':>9}{'F r':>9}"
    print(head)
    print("-" * len(head))

    def fmt(v, spec):
        return format(v, spec) if isinstance(v, float) else "—".rjust(int(spec.split(".")[0]))

    for label, per in metrics.items():
        for sub, m in per.items():
            print(f"{label[:13]:<14}{sub[:23]:<24}{m['n_structures']:>6d}"
                  f"{fmt(m.get('energy_mae_meV_per_atom'), '10.3f')}"
                  f"{fmt(m.get('energy_rmse_meV_per_atom'), '10.3f')}"
                  f"{fmt(m.get('energy_pearson_r'), '9.4f')}"
                  f"{fmt(m.get('force_rmse_eV_per_A'), '9.4f')}"
                  f"{fmt(m.get('force_pearson_r'), '9.4f')}")
    print("energies: meV/atom, forces: eV/Å")
    print(f"report: {args.output}/report.html")
    return 0
