"""``hdnnp data``: summarise, plot, export, merge, select and split data sets.

Inputs everywhere may be structure files (extxyz, XSF, archives, n2p2 ``input.data``),
labelling databases (``.db``: labelled rows with the job's reference energies) or the
name of a bundled data set (``hdnnp data list``).  :func:`read_inputs` is shared by the
other data-pipeline commands; they write with :func:`hdnnp.data.save_dataset`.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

from hdnnp.cli import command_parser
from hdnnp.errors import HdnnpError


# ------------------------------------------------------------------ shared helpers
def read_inputs(inputs: Sequence[str], reference_energies: dict | None = None):
    """Read files, labelling databases or bundled names into one ``Dataset``.

    Reference energies come from the input (a labelling database's job, a bundled set,
    the ``reference_energy_<El>`` entries that :func:`hdnnp.data.save_dataset` writes
    into extxyz files, a ``.db`` file's metadata); ``reference_energies`` overrides them.
    """
    from hdnnp.data import load_datasets

    if not inputs:
        raise HdnnpError("no input given")
    total = load_datasets(inputs)
    if reference_energies:
        total.reference_energies.update(reference_energies)
    return total


def dataset_summary(ds) -> dict:
    """``Dataset.summary()`` plus the range R = max − min of E_coh/atom (thesis eq. 4.4)."""
    s = ds.summary()
    e = s["energy_per_atom"]
    if e["min"] is not None:
        e["range"] = e["max"] - e["min"]
    return s


# ------------------------------------------------------------------ command
def register(sub) -> None:
    p = command_parser(
        sub, "data", help="summarise, plot, export, merge, select or split data sets",
        description=textwrap.fill(
            "Work with labelled data sets.  INPUT is a structure file (extxyz, "
                    "XSF, archive of XSF, n2p2 input.data), a labelling database (.db) or "
                    "the name of a bundled data set (see 'hdnnp data list').  Energies per "
                    "atom are cohesive energies E_coh/N = (E - sum_Z N_Z E_Z)/N (thesis eq. "
                    "4.3) when reference energies are known, else total energies.", 88),
        examples="  hdnnp data list\n"
                 "  hdnnp data summary graphene-A graphene-B --plot energies.png\n"
                 "  hdnnp data summary labels.db --json\n"
                 "  hdnnp data summary graphene-B --by temperature_K --by augmentation\n"
                 "  hdnnp data export graphene-A -o graphene-A.extxyz\n"
                 "  hdnnp data export labels.db -o input.data --format n2p2\n"
                 "  hdnnp data export labels.db -o xsf/ --format xsf\n"
                 "  hdnnp data merge a.db b.db -o merged.extxyz\n"
                 "  hdnnp data select graphene-B --max-energy 0.5 --relative -o low.extxyz\n"
                 "  hdnnp data select graphene-A --n 100 --seed 1 -o small.extxyz\n"
                 "  hdnnp data split graphene-A --test-fraction 0.15 -o train.xyz test.xyz")
    ops = p.add_subparsers(dest="data_command", metavar="ACTION")

    q = ops.add_parser("list", help="list the bundled data sets")
    q.set_defaults(func=run_list)

    q = ops.add_parser("summary", help="counts, energy-per-atom spread, histogram")
    q.add_argument("inputs", nargs="+", metavar="INPUT")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--plot", metavar="PNG", help="write a histogram of energies per atom")
    q.add_argument("--by", action="append", default=[], metavar="KEY",
                   help="also tabulate per value of a stored key, e.g. --by temperature_K "
                        "--by augmentation (thesis tables 3.1-3.2; repeatable)")
    q.set_defaults(func=run_summary)

    q = ops.add_parser("export", help="convert to extxyz, XSF or n2p2 input.data")
    q.add_argument("inputs", nargs="+", metavar="INPUT")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--format", choices=["extxyz", "xsf", "n2p2", "db"],
                   help="output format (default: from the file name)")
    q.set_defaults(func=run_export)

    q = ops.add_parser("merge", help="concatenate data sets")
    q.add_argument("inputs", nargs="+", metavar="INPUT")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--format", choices=["extxyz", "xsf", "n2p2", "db"])
    q.set_defaults(func=run_export)

    q = ops.add_parser("select", help="select structures by energy, property or at random")
    q.add_argument("inputs", nargs="+", metavar="INPUT")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--format", choices=["extxyz", "xsf", "n2p2", "db"])
    q.add_argument("--max-energy", type=float, metavar="EV",
                   help="keep E/atom ≤ EV (eV/atom; ænet's MAXENERGY)")
    q.add_argument("--relative", action="store_true",
                   help="--max-energy is relative to the lowest E/atom")
    q.add_argument("--where", action="append", default=[], metavar="KEY<OP>VALUE",
                   help="keep structures whose info[KEY] compares with VALUE; OP is = (or ==), "
                        "!=, <, <=, > or >= (numbers compare as numbers; <, <=, >, >= need "
                        "numbers); repeatable, all must hold; structures without KEY are "
                        "dropped; e.g. temperature_K=300, augmentation=none, "
                        "'max_force_dev>0.1', 'scale_factor>=-0.05'")
    q.add_argument("--n", type=int, help="then draw N structures at random")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=run_select)

    q = ops.add_parser("split", help="random train/test split")
    q.add_argument("inputs", nargs="+", metavar="INPUT")
    q.add_argument("-o", "--output", nargs=2, required=True, metavar=("TRAIN", "TEST"))
    q.add_argument("--test-fraction", type=float, default=0.1)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--format", choices=["extxyz", "xsf", "n2p2", "db"])
    q.set_defaults(func=run_split)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def run_list(args) -> int:
    from hdnnp.bundled import bundled_metadata, list_bundled_datasets

    names = list_bundled_datasets()
    if not names:
        print("no bundled data sets installed")
        return 0
    for n in names:
        m = bundled_metadata(n)
        e = m.get("energy_per_atom", {})
        print(f"{n:16s} {m.get('structures', '?'):>5} structures  {m.get('method', '?'):9s} "
              f"E_coh/atom {e.get('min', float('nan')):.4f} … {e.get('max', float('nan')):.4f}"
              f" eV  {m.get('description', '')}")
    return 0


def _plot(path: str, data: dict) -> None:
    import numpy as np

    try:
        from hdnnp.analysis.plots import plot_energy_distribution
    except ImportError:  # pragma: no cover - analysis module not installed
        plot_energy_distribution = None
    if plot_energy_distribution is not None:
        plot_energy_distribution(data, path, xlabel="energy per atom (eV/atom)")
        return
    import matplotlib  # pragma: no cover

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hdnnp.fileio import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in data.items():
        ax.hist(np.asarray(values), bins=60, alpha=0.6, label=label)
    ax.set_xlabel("energy per atom (eV/atom)")
    ax.set_ylabel("structures")
    ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=150)
    plt.close(fig)


def run_summary(args) -> int:
    results = {}
    plot_data = {}
    for name in args.inputs:
        ds = read_inputs([name])
        results[name] = dataset_summary(ds)
        for key in args.by:
            results[name].setdefault("by", {})[key] = ds.summary_by(key)
        e = ds.cohesive_energies()
        plot_data[name] = e[e == e]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, s in results.items():
            e = s["energy_per_atom"]
            print(f"{name}:")
            print(f"  structures: {s['structures']}  atoms: {s['atoms']}  atoms/structure: "
                  f"{s['atoms_per_structure'][0]}–{s['atoms_per_structure'][1]}  with forces: "
                  f"{s['with_forces']}")
            print(f"  elements: {', '.join(f'{k} {v}' for k, v in s['elements'].items())}")
            if s["reference_energies"]:
                print("  reference energies (eV): " + ", ".join(
                    f"{k} {v:.6f}" for k, v in s["reference_energies"].items()))
            if e["min"] is not None:
                print(f"  {e['kind']} energy per atom (eV/atom): min {e['min']:.5f}  max "
                      f"{e['max']:.5f}  range {e['range']:.5f}  mean {e['mean']:.5f}  std "
                      f"{e['std']:.5f}")
            for key, groups in s.get("by", {}).items():
                print(f"  by {key}:")
                print(f"    {'value':>12} {'N':>5} {'min':>10} {'max':>10} {'mean':>10} "
                      f"{'std':>8} {'F rms':>7} {'F max':>7}")
                for value, g in groups.items():
                    ge = g["energy_per_atom"]
                    rms, fmax = g["force_rms_eV_per_A"], g["force_max_eV_per_A"]
                    print(f"    {value[:12]:>12} {g['structures']:>5d} {ge['min']:10.5f} "
                          f"{ge['max']:10.5f} {ge['mean']:10.5f} {ge['std']:8.5f} "
                          + (f"{rms:7.3f} {fmax:7.2f}" if rms is not None else "      —       —"))
                print("    (energies per atom in eV/atom, forces in eV/Å)")
    if args.plot:
        _plot(args.plot, plot_data)
        if not args.json:
            print(f"histogram: {args.plot}")
    return 0


def run_export(args) -> int:
    from hdnnp.data import save_dataset

    ds = read_inputs(args.inputs)
    save_dataset(args.output, ds.structures, args.format, ds.reference_energies)
    print(f"wrote {len(ds)} structures to {args.output}")
    return 0


def run_select(args) -> int:
    import numpy as np

    from hdnnp.data import parse_where, save_dataset, where_matches

    ds = read_inputs(args.inputs)
    keep = np.ones(len(ds), dtype=bool)
    if args.max_energy is not None:
        e = ds.cohesive_energies()
        bound = args.max_energy + (np.nanmin(e) if args.relative else 0.0)
        keep &= e <= bound
    for cond in args.where:
        key, op, value = parse_where(cond)
        keep &= np.array([where_matches(a.info, key, op, value) for a in ds], dtype=bool)
    sel = ds.subset(np.flatnonzero(keep))
    if args.n is not None:
        sel = sel.sample(args.n, seed=args.seed)
    save_dataset(args.output, sel.structures, args.format, ds.reference_energies)
    print(f"selected {len(sel)} of {len(ds)} structures -> {args.output}")
    return 0


def run_split(args) -> int:
    from hdnnp.data import save_dataset

    ds = read_inputs(args.inputs)
    train, test = ds.split(args.test_fraction, seed=args.seed)
    save_dataset(args.output[0], train.structures, args.format, ds.reference_energies)
    save_dataset(args.output[1], test.structures, args.format, ds.reference_energies)
    print(f"train: {len(train)} -> {args.output[0]}; test: {len(test)} -> {args.output[1]}")
    return 0
