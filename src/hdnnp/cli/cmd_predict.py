"""``hdnnp predict``: energies and forces of structures, with metrics against references."""

from __future__ import annotations

import json

import numpy as np

from hdnnp.cli import command_parser

EXAMPLES = """\
  hdnnp predict runs/tio2/model.json runs/tio2/test.extxyz
  hdnnp predict model.json structures/ --json metrics.json -o predicted.extxyz
  hdnnp predict path/to/n2p2-potential/ input.data --format n2p2
"""


def register(sub) -> None:
    p = command_parser(sub, "predict", help="predict energies and forces",
                       description="Predict energies (eV), forces (eV/Å) and optionally stress "
                       "for structures; prints errors against the reference values stored with "
                       "the structures and the number of extrapolating descriptor values.",
                       examples=EXAMPLES)
    p.add_argument("model", help="hdnnp potential file or n2p2 potential directory")
    p.add_argument("data", nargs="+", help="structure files, directories or archives")
    p.add_argument("--format", help="structure file format (default: from the name)")
    p.add_argument("--length-unit", help="length unit of n2p2 input.data files (default: from "
                   "an input.nn beside the file, else Å)")
    p.add_argument("--energy-unit", help="energy unit of n2p2 input.data files")
    p.add_argument("-o", "--output", help="write structures with predicted energy/forces "
                   "(extxyz)")
    p.add_argument("--json", help="write metrics and per-structure energies as JSON")
    p.add_argument("--stress", action="store_true", help="also compute stress (3D-periodic)")
    p.add_argument("--no-forces", action="store_true", help="energies only")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--batch-atoms", type=int, default=2000, help="atoms per evaluation batch")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from hdnnp.io import guess_format, read_structures
    from hdnnp.potential import load_potential
    from hdnnp.predict import predict_structures, prediction_metrics

    model = load_potential(args.model)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device=device, dtype=getattr(torch, args.dtype)).eval()
    structures = []
    for path in args.data:
        kw = {}
        if (args.format or guess_format(path)) == "n2p2":
            kw = {"length_unit": args.length_unit, "energy_unit": args.energy_unit}
        structures += read_structures(path, args.format, **kw)
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
