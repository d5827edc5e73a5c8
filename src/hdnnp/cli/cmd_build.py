"""``hdnnp build``: structures of the thesis materials from published lattice parameters."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser


def register(sub) -> None:
    p = command_parser(
        sub, "build", help="build a thesis material (optionally relaxed)",
        description=textwrap.fill(
            "Build graphene, hBN, diamond, cBN, alpha-quartz, the 2D silica bilayer, "
                    "TiO2 rutile/anatase/brookite or the H2 dimer from published lattice "
                    "parameters (sources in 'hdnnp build --list' and "
                    "hdnnp.reference_data.structures), as a "
                    "supercell of any size.  Sheets have a fixed 20 A cell height.  With "
                    "--relax the positions and cell (in-plane for sheets) are relaxed with a "
                    "reference method, a force field or any ASE calculator.", 88),
        examples="  hdnnp build --list\n"
                 "  hdnnp build graphene --repeat 6 6 1 -o graphene.xyz\n"
                 "  hdnnp build graphene --repeat 6 6 1 --relax GFN1-xTB -o graphene.xyz\n"
                 "  hdnnp build quartz --repeat 2 2 3 -o quartz-108.xyz\n"
                 "  hdnnp build silica-bilayer --repeat 3 3 1 --relax tersoff-sio -o sio2.xyz\n"
                 "  hdnnp build h2 --distance 0.9 -o h2.xyz")
    p.add_argument("material", nargs="?", help="material name (see --list)")
    p.add_argument("--list", action="store_true", help="list materials and their sources")
    p.add_argument("--repeat", nargs=3, type=int, default=[1, 1, 1], metavar=("N1", "N2", "N3"),
                   help="supercell repeats (sheets ignore N3)")
    p.add_argument("--distance", type=float, help="H2 bond length (Å)")
    p.add_argument("--relax", metavar="CALC",
                   help="relax with GFN1-xTB/GFN2-xTB, a force field name, 'ase:NAME' or "
                        "'hdnnp:MODEL'")
    p.add_argument("--fmax", type=float, default=0.01, help="relaxation force limit (eV/Å)")
    p.add_argument("--fixed-cell", action="store_true", help="relax positions only")
    p.add_argument("-o", "--output", help="output file (extxyz by default)")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdnnp.errors import HdnnpError
    from hdnnp.reference_data import structures

    if args.list:
        for name, fn in structures.BUILDERS.items():
            at = structures.build(name)
            doc = (fn.__doc__ or "").strip().splitlines()[0]
            print(f"{name:15s} {at.get_chemical_formula():8s} {len(at):3d} atoms/cell  {doc}")
        return 0
    if not args.material:
        raise HdnnpError("give a material name (hdnnp build --list shows them)")
    kwargs = {"distance": args.distance} if args.distance is not None else {}
    atoms = structures.build(args.material, tuple(args.repeat), **kwargs)
    if args.relax:
        from hdnnp.reference_data.sampling import resolve_sampler

        smp = resolve_sampler(args.relax, atoms)
        if smp.forcefield is not None:
            from hdnnp.reference_data.forcefields import ForceFieldCalculator

            calc = ForceFieldCalculator(smp.forcefield)
        else:
            calc = smp.make_calculator()
        atoms = structures.relax(atoms, calc, fmax=args.fmax, cell=not args.fixed_cell)
        atoms.info["relaxed_with"] = smp.name
    summary = f"{atoms.info['material']}: {atoms.get_chemical_formula()}, {len(atoms)} atoms"
    if atoms.info.get("dimensionality") == 3:
        summary += f", {structures.density(atoms):.4f} g/cm³"
    nn = structures.nearest_neighbour_distances(atoms, 3.0)
    if nn:
        summary += ", nearest neighbours " + ", ".join(
            f"{a}–{b} {d:.4f} Å" for (a, b), d in sorted(nn.items()))
    print(summary)
    if args.output:
        from hdnnp.data import save_dataset

        save_dataset(args.output, [atoms])
        print(f"wrote {args.output}")
    return 0
