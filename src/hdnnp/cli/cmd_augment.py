"""``hdnnp augment``: scaled, tilted, strained or rattled copies; data set A/B recipes."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser


def register(sub) -> None:
    p = command_parser(
        sub, "augment", help="augment structures (scale, tilt, strain, rattle; sets A/B)",
        description=textwrap.fill(
            "Make augmented copies of structures (thesis §4.2.2, §4.3.1, §5.2; "
                    "ænet's TiO2 recipe): scale lattice and coordinates by k random factors "
                    "from [-10 %, +10 %] per structure or by a fixed grid, volume-conserving "
                    "monoclinic tilt, uniaxial strain, random displacements.  Recipes: "
                    "'--recipe A' (MD snapshots only) and '--recipe B' (80 % scaled MD, 20 % "
                    "MD).  Sheets keep their cell height.  Several operations combine (their "
                    "outputs are concatenated); --keep-original adds the inputs.", 88),
        examples="  hdnnp augment md.xyz --scale-random 10 -o scaled.xyz\n"
                 "  hdnnp augment md.xyz --scale-grid -0.1 -0.05 0 0.05 0.1 -o grid.xyz\n"
                 "  hdnnp augment rutile.xyz --tilt 0.02 0.04 0.06 --uniaxial -0.05 0.05 "
                 "--axis 2 -o distorted.xyz\n"
                 "  hdnnp augment md.xyz --rattle 0.05 --copies 3 -o rattled.xyz\n"
                 "  hdnnp augment graphene-md.xyz --recipe A --n 400 --seed 1 -o set-A.xyz\n"
                 "  hdnnp augment graphene-md.xyz --recipe B --n 500 --seed 1 -o set-B.xyz")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="structure files")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--scale-random", type=int, metavar="K",
                   help="K factors per structure, uniform in --range")
    p.add_argument("--range", nargs=2, type=float, default=[-0.1, 0.1], metavar=("LOW", "HIGH"))
    p.add_argument("--scale-grid", nargs="+", type=float, metavar="S",
                   help="fixed scaling factors (thesis: -0.1 -0.05 0 0.05 0.1)")
    p.add_argument("--tilt", nargs="+", type=float, metavar="DELTA",
                   help="volume-conserving monoclinic shears")
    p.add_argument("--uniaxial", nargs="+", type=float, metavar="STRAIN",
                   help="uniaxial strains along --axis")
    p.add_argument("--axis", type=int, default=0, choices=[0, 1, 2])
    p.add_argument("--conserve-volume", action="store_true",
                   help="uniaxial strain at constant volume")
    p.add_argument("--rattle", type=float, metavar="SIGMA", help="Gaussian displacements (Å)")
    p.add_argument("--copies", type=int, default=1, help="rattled copies per structure")
    p.add_argument("--recipe", choices=["A", "B"], help="thesis data set A or B")
    p.add_argument("--n", type=int, help="number of structures for a recipe")
    p.add_argument("--augmented-fraction", type=float, default=0.8,
                   help="recipe B: fraction of scaled structures")
    p.add_argument("--k", type=int, default=10, help="recipe B: scaled copies per snapshot")
    p.add_argument("--keep-original", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from hdnnp.cli.cmd_data import read_inputs
    from hdnnp.data import save_dataset
    from hdnnp.errors import HdnnpError
    from hdnnp.reference_data import augment as aug

    structs = [a.copy() for a in read_inputs(args.inputs).structures]
    for a in structs:
        a.calc = None
    rng = np.random.default_rng(args.seed)
    out = []
    if args.recipe:
        if any([args.scale_random, args.scale_grid, args.tilt, args.uniaxial, args.rattle]):
            raise HdnnpError("--recipe cannot be combined with other operations")
        if args.recipe == "A":
            out = aug.dataset_a(structs, args.n, seed=rng)
        else:
            if args.n is None:
                raise HdnnpError("--recipe B needs --n")
            out = aug.dataset_b(structs, args.n, args.augmented_fraction, k=args.k,
                                low=args.range[0], high=args.range[1], seed=rng)
    else:
        if args.keep_original:
            out += structs
        if args.scale_random:
            out += aug.random_scalings(structs, args.scale_random, *args.range, seed=rng)
        if args.scale_grid:
            out += aug.grid_scalings(structs, args.scale_grid)
        if args.tilt:
            out += aug.tilts(structs, args.tilt)
        if args.uniaxial:
            out += aug.uniaxial_strains(structs, args.uniaxial, args.axis, args.conserve_volume)
        if args.rattle is not None:
            out += aug.rattles(structs, args.copies, args.rattle, seed=rng)
        if len(out) == (len(structs) if args.keep_original else 0):
            raise HdnnpError("no augmentation chosen (see hdnnp augment --help)")
    save_dataset(args.output, out)
    print(f"wrote {len(out)} structures (from {len(structs)}) to {args.output}")
    return 0
