"""``hdnnp predict``: energies and forces of structures, with metrics against references."""

from __future__ import annotations

import json

import numpy as np

from hdnnp.cli import command_parser

EXAMPLES = """\
  hdnnp predict runs/tio2/model.json runs/tio2/test.extxyz
  hdnnp predict model.json structures/ --json metrics.json -o predicted.extxyz
  hdnnp predict runs/graphene-A/model.json bundled:graphene-B --figures figs/graphene-B
  hdnnp predict path/to/n2p2-potential/ input.data --format n2p2
  # an ænet potential: a directory of *.nn files, or the files per species
  hdnnp predict aenet-potential/ structures.tar.gz
  hdnnp predict --aenet Ti=Ti.nn O=O.nn structure0001.xsf structure0002.xsf
"""


def register(sub) -> None:
    p = command_parser(sub, "predict", help="predict energies and forces",
                       description="Predict energies (eV), forces (eV/Å) and optionally stress "
                       "for structures; prints errors against the reference values stored with "
                       "the structures and the number of extrapolating descriptor values.",
                       examples=EXAMPLES)
    p.add_argument("model", nargs="?", help="hdnnp potential file, n2p2 potential directory or "
                   "directory of ænet *.nn files (with --aenet: the first structure file)")
    p.add_argument("data", nargs="*", help="structure files, directories, archives, "
                   "labelling databases or bundled:NAME (every source 'hdnnp train' reads)")
    p.add_argument("--aenet", nargs="+", metavar="EL=FILE",
                   help="an ænet potential given as one *.nn (or *.nn.ascii) file per "
                   "species, e.g. --aenet Ti=Ti.nn O=O.nn; every positional argument is "
                   "then a structure file")
    p.add_argument("--format", help="structure file format (default: from the name)")
    p.add_argument("--length-unit", help="length unit of n2p2 input.data files (default: from "
                   "an input.nn beside the file, else Å)")
    p.add_argument("--energy-unit", help="energy unit of n2p2 input.data files")
    p.add_argument("-o", "--output", help="write structures with predicted energy/forces "
                   "(extxyz)")
    p.add_argument("--json", help="write metrics and per-structure energies as JSON")
    p.add_argument("--figures", metavar="DIR", help="write parity plots (energy per atom, "
                   "force components; MAE, RMSE and Pearson r in the panel) and squared-"
                   "error histograms into DIR")
    p.add_argument("--stress", action="store_true", help="also compute stress (3D-periodic)")
    p.add_argument("--no-forces", action="store_true", help="energies only")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--batch-atoms", type=int, default=2000, help="atoms per evaluation batch")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from hdnnp.data import load_datasets
    from hdnnp.errors import HdnnpError
    from hdnnp.potential import load_potential
    from hdnnp.predict import predict_structures, prediction_metrics

    if args.aenet:
        from hdnnp.aenet.potential import load_aenet_potential

        files, data = {}, [x for x in (args.model, *args.data) if x is not None]
        for item in args.aenet:
            el, sep, path = item.partition("=")
            if not sep:  # --aenet takes every word: those without '=' are structure files
                data.append(item)
                continue
            if not el.strip() or not path.strip():
                raise HdnnpError(f"--aenet {item!r}: expected SPECIES=FILE, e.g. Ti=Ti.nn")
            files[el.strip()] = path.strip()
        if not files:
            raise HdnnpError("--aenet: no SPECIES=FILE given, e.g. --aenet Ti=Ti.nn O=O.nn")
        if not data:
            raise HdnnpError("no structure files given")
        model = load_aenet_potential(files)
    else:
        if args.model is None or not args.data:
            raise HdnnpError("no structure files given (hdnnp predict MODEL DATA ...)")
        model = load_potential(args.model)
        data = args.data
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device=device, dtype=getattr(torch, args.dtype)).eval()
    dataset = load_datasets(data, args.format, length_unit=args.length_unit,
                            energy_unit=args.energy_unit)
    structures = list(dataset.structures)
    pred = predict_structures(model, structures, forces=not args.no_forces,
                              stress=args.stress, batch_atoms=args.batch_atoms,
                              progress=not args.quiet)
    metrics = prediction_metrics(pred)
    n_ex = int((pred["extrapolation_warnings"] > 0).sum())
    metrics["structures"] = len(structures)
    metrics["extrapolating_structures"] = n_ex
    metrics["extrapolation_warnings"] = int(pred["extrapolation_warnings"].sum())
    print(f"{len(structures)} structures, {int(pred['n_atoms'].sum())} atoms")
    for k, v in metrics.items():
        if isinstance(v, float):
            print(f"  {k}: {v:.6g}")
    if "energy_std" in pred and len(structures):
        std = pred["energy_std"] / pred["n_atoms"]
        print(f"  committee of {model.committee_size}: energy spread mean "
              f"{1000 * std.mean():.3g}, max {1000 * std.max():.3g} meV/atom")
    print(f"  extrapolation: {n_ex} of {len(structures)} structures have descriptor values "
          f"outside the training range ({metrics['extrapolation_warnings']} values)")
    if args.figures:
        _figures(args.figures, pred, dataset.reference_sum(
            dict(dataset.reference_energies) or model.reference_energy_dict()))
        print(f"  figures: {args.figures}/")
    if args.output:
        from ase.calculators.singlepoint import SinglePointCalculator

        from hdnnp.io import write_structures

        out, start = [], 0
        for k, a in enumerate(structures):
            b = a.copy()
            n = len(a)
            res = {"energy": float(pred["energy"][k])}
            if "forces" in pred:
                res["forces"] = pred["forces"][start:start + n]
            if "stress" in pred:
                from ase.stress import full_3x3_to_voigt_6_stress

                res["stress"] = full_3x3_to_voigt_6_stress(pred["stress"][k])
            b.calc = SinglePointCalculator(b, **res)
            b.info["extrapolation_warnings"] = int(pred["extrapolation_warnings"][k])
            if "energy_std" in pred:
                b.info["energy_std"] = float(pred["energy_std"][k])
            out.append(b)
            start += n
        write_structures(args.output, out, format="extxyz")
    if args.json:
        from hdnnp.fileio import atomic_write_text

        doc = {"metrics": metrics, "energy_eV": pred["energy"].tolist(),
               "energy_ref_eV": [None if np.isnan(x) else x for x in pred["energy_ref"]],
               "n_atoms": pred["n_atoms"].tolist(),
               "extrapolation_warnings": pred["extrapolation_warnings"].tolist(),
               "names": [str(a.info.get("source", k)) for k, a in enumerate(structures)]}
        if "energy_std" in pred:
            doc["energy_std_eV"] = pred["energy_std"].tolist()
        atomic_write_text(args.json, json.dumps(doc, indent=1))
    return 0


def _figures(directory, pred, shift) -> None:
    """Parity plots and squared-error histograms of one prediction (cohesive energies
    per atom: ``shift`` is Σ_Z N_Z E_ref_Z of each structure, eV)."""
    from pathlib import Path

    from hdnnp.analysis.plots import plot_error_histogram, plot_parity
    from hdnnp.errors import HdnnpError

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    n = pred["n_atoms"]
    ok = ~np.isnan(pred["energy_ref"])
    if not ok.any():
        raise HdnnpError("--figures: the structures carry no reference energies to compare")
    ref = (pred["energy_ref"][ok] - shift[ok]) / n[ok]
    got = (pred["energy"][ok] - shift[ok]) / n[ok]
    plot_parity(ref, got, out / "energy_parity.png", quantity="energy")
    plot_error_histogram(ref, got, out / "energy_error_hist.png", quantity="energy")
    if "forces" in pred and (~np.isnan(pred["forces_ref"])).any():
        fok = ~np.isnan(pred["forces_ref"]).any(1)
        plot_parity(pred["forces_ref"][fok], pred["forces"][fok], out / "force_parity.png",
                    quantity="force")
        plot_error_histogram(pred["forces_ref"][fok], pred["forces"][fok],
                             out / "force_error_hist.png", quantity="force")
