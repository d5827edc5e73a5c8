"""``hdnnp sample``: NVT molecular dynamics snapshots for reference data."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser


def register(sub) -> None:
    p = command_parser(
        sub, "sample", help="NVT MD snapshots at several temperatures",
        description=textwrap.fill(
            "Run NVT molecular dynamics of a structure at each temperature and keep "
                    "one snapshot per interval after discarding the equilibration (thesis "
                    "§3.1: 300, 500, 750, 1000 K, 0.273 fs steps, one snapshot every 273 fs). "
                    "The sampler may differ from the reference method (thesis §6.1): a "
                    "classical force field run natively in LAMMPS (default: the material's "
                    "force field), the reference itself (GFN1-xTB), any ASE calculator "
                    "('ase:NAME') or a trained potential ('hdnnp:model.json').  "
                    "--compress samples at high pressure in a fixed compressed cell (thesis "
                    "§5.1.1: 0.045).", 88),
        examples="  hdnnp sample graphene.xyz --snapshots 125 -o graphene-md.xyz\n"
                 "  hdnnp sample graphene --repeat 6 6 1 --sampler lcbop -o md.xyz\n"
                 "  hdnnp sample silica-bilayer --repeat 3 3 1 --compress 0.045 -o hp.xyz\n"
                 "  hdnnp sample rutile --repeat 2 2 3 --sampler matsui-akaogi "
                 "--temperatures 300 1000 -o rutile-md.xyz\n"
                 "  hdnnp sample graphene.xyz --sampler hdnnp:model.json --snapshots 20 "
                 "-o new.xyz\n"
                 "  hdnnp sample h2 --sampler GFN1-xTB --temperatures 300 --snapshots 5 "
                 "--interval 10 -o h2-md.xyz\n"
                 "  hdnnp sample --list-samplers")
    p.add_argument("structure", nargs="?",
                   help="structure file (first structure is used) or material name")
    p.add_argument("--list-samplers", action="store_true", help="list the force fields")
    p.add_argument("--repeat", nargs=3, type=int, default=[1, 1, 1], metavar=("N1", "N2", "N3"),
                   help="supercell when STRUCTURE is a material name")
    p.add_argument("--sampler", help="force field, GFN1-xTB, 'ase:NAME' or 'hdnnp:MODEL'")
    p.add_argument("--temperatures", nargs="+", type=float,
                   default=[300.0, 500.0, 750.0, 1000.0], metavar="K")
    p.add_argument("--snapshots", type=int, default=100, help="snapshots per temperature")
    p.add_argument("--timestep", type=float, default=0.273, help="time step (fs)")
    p.add_argument("--interval", type=float, default=273.0, help="snapshot interval (fs)")
    p.add_argument("--equilibration", type=float, default=1000.0,
                   help="discarded time per temperature (fs)")
    p.add_argument("--thermostat", choices=["langevin", "nose-hoover"], default="langevin")
    p.add_argument("--damping", type=float, default=100.0, help="thermostat time (fs)")
    p.add_argument("--compress", type=float, default=0.0,
                   help="high-pressure sampling: fixed cell compressed by this fraction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="output file (extxyz)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from hdnnp.errors import HdnnpError

    if args.list_samplers:
        from hdnnp.reference_data.forcefields import DEFAULT_FORCE_FIELD, FORCE_FIELDS

        for name, ff in FORCE_FIELDS.items():
            mats = [m for m, f in DEFAULT_FORCE_FIELD.items() if f == name]
            print(f"{name:15s} {'/'.join(ff.elements):9s} {ff.citation}"
                  + (f"  [default for {', '.join(mats)}]" if mats else ""))
        print("also: GFN1-xTB / GFN2-xTB (reference), ase:NAME, hdnnp:MODEL")
        return 0
    if not args.structure:
        raise HdnnpError("give a structure file or material name")
    if not args.output:
        raise HdnnpError("give an output file with -o")
    from hdnnp.reference_data.sampling import SamplingSettings, sample_nvt

    if Path(args.structure).exists():
        from hdnnp.io import read_structures

        atoms = read_structures(args.structure)[0]
    else:
        from hdnnp.reference_data.structures import build

        atoms = build(args.structure, tuple(args.repeat))
    settings = SamplingSettings(temperatures=args.temperatures, n_snapshots=args.snapshots,
                                timestep_fs=args.timestep, interval_fs=args.interval,
                                equilibration_fs=args.equilibration,
                                thermostat=args.thermostat, damping_fs=args.damping,
                                compress=args.compress, seed=args.seed)
    snaps = sample_nvt(atoms, args.sampler, settings, progress=not args.quiet)
    from hdnnp.data import save_dataset

    save_dataset(args.output, snaps)
    print(f"wrote {len(snaps)} snapshots ({len(settings.temperatures)} temperatures × "
          f"{settings.n_snapshots}, every {settings.interval_steps} steps of "
          f"{settings.timestep_fs} fs, sampler {snaps[0].info['sampler']}) to {args.output}")
    return 0
