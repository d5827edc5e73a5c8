"""``hdnnp info``: describe a potential file or n2p2 potential directory."""

from __future__ import annotations

import json

from hdnnp.cli import command_parser


def register(sub) -> None:
    p = command_parser(
        sub, "info", help="describe a potential",
        description="Print the elements, descriptor, networks, reference energies and "
                    "training provenance of a potential (hdnnp file or n2p2 directory).",
        examples="  hdnnp info model.json\n  hdnnp info --json model.json\n"
                 "  hdnnp info path/to/n2p2-potential-dir/")
    p.add_argument("model", help="potential file (.json[.gz]) or n2p2 potential directory")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdnnp.potential import load_potential

    model = load_potential(args.model)
    info = {
        "elements": list(model.elements),
        "cutoff_angstrom": model.cutoff,
        "descriptor": model.descriptor.to_config() if args.json else model.descriptor.kind,
        "features": {e: model.descriptor.n_features(e) for e in model.elements},
        "networks": {e: {"architecture": [n.n_inputs, *n.hidden, 1],
                         "activations": n.activation_names,
                         "parameters": sum(p.numel() for p in n.parameters())}
                     for e, n in model.networks.items()},
        "reference_energies_eV": model.reference_energy_dict(),
        "metadata": model.metadata,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"potential: {args.model}")
    print(model.describe())
    training = model.metadata.get("training") or {}
    if training:
        print("training:")
        for k in ("data", "n_train", "n_test", "seed", "optimizer", "epochs", "best_epoch",
                  "test_energy_rmse_meV_per_atom", "test_force_rmse_eV_per_A", "wall_s"):
            if k in training:
                print(f"  {k}: {training[k]}")
    return 0
