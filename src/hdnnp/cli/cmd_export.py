"""``hdnnp export``: write a potential in another program's format (n2p2 / LAMMPS, ænet)."""

from __future__ import annotations

import math

from hdnnp.cli import command_parser

EXAMPLES = """\
  hdnnp export runs/water/model.json nnp-water/ --format n2p2
  hdnnp export model.json nnp/ --format n2p2 --length-unit bohr --energy-unit hartree
  hdnnp export path/to/n2p2-potential/ nnp-angstrom/ --format n2p2 --force
  # one member of a committee potential (members count from 1)
  hdnnp export runs/tio2/model.json nnp-member1/ --member 1
  # ænet: one Fortran binary <El>.nn per species for predict.x / aenet-LAMMPS
  hdnnp export runs/tio2/model.json aenet-tio2/ --format aenet
  # the text form (<El>.nn.ascii, as aenet-PyTorch writes it)
  hdnnp export runs/tio2/model.json aenet-tio2/ --format aenet --aenet-ascii
"""


def register(sub) -> None:
    p = command_parser(
        sub, "export", help="write a potential for n2p2 / LAMMPS pair_style hdnnp or ænet",
        description="Write an hdnnp potential (or an n2p2 or ænet potential) as an n2p2 "
                    "potential directory: input.nn, scaling.data and weights.ZZZ.data. "
                    "n2p2's tools and LAMMPS 'pair_style hdnnp' (package ML-HDNNP) read it. "
                    "The descriptor must be n2p2-expressible (the 'n2p2' descriptor, or "
                    "'behler' G1/G2/G4/G5). Prints the LAMMPS input lines that use it. "
                    "With --format aenet: one ænet potential file <El>.nn per species "
                    "(Fortran binary, as ænet's train.x writes it; --aenet-ascii or "
                    "--format aenet-ascii: the .nn.ascii text form) for descriptors ænet "
                    "can evaluate (Chebyshev; Behler G1-G5 with the cosine cutoff); prints "
                    "a predict.in for ænet's predict.x.",
        examples=EXAMPLES)
    p.add_argument("model", help="hdnnp potential file or n2p2 potential directory")
    p.add_argument("outdir", help="output directory (created)")
    p.add_argument("--format", default=None, choices=["n2p2", "aenet", "aenet-ascii"],
                   help="output format (default: n2p2; aenet with --aenet-ascii)")
    p.add_argument("--aenet-ascii", action="store_true",
                   help="ænet's text form <El>.nn.ascii (the same as --format aenet-ascii)")
    p.add_argument("--length-unit", default="angstrom",
                   help="length unit of the written files (default: angstrom)")
    p.add_argument("--energy-unit", default="eV",
                   help="energy unit of the written files (default: eV)")
    p.add_argument("--member", type=int, metavar="K",
                   help="export member K (1, 2, ...) of a committee potential")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty directory, replacing the n2p2 / ænet files")
    p.set_defaults(func=run)


def lammps_snippet(model, outdir: str, length_unit: str, energy_unit: str) -> str:
    """LAMMPS input (``units metal``: Å, eV) for an exported potential directory."""
    from ase.data import atomic_numbers

    from hdnnp.units import energy_factor, length_factor

    elements = sorted(model.elements, key=lambda e: atomic_numbers[e])
    cflength = 1.0 / length_factor(length_unit)
    cfenergy = 1.0 / energy_factor(energy_unit)
    # n2p2 refuses a pair cutoff below its largest symmetry-function cutoff: round up
    cutoff = math.ceil(model.cutoff * 1e4 - 1e-9) / 1e4
    return (f"units metal\n"
            f"pair_style hdnnp {cutoff:g} dir \"{outdir}\" showew no showewsum 100 "
            f"resetew yes maxew 1000 cflength {cflength:.10g} cfenergy {cfenergy:.10g}\n"
            f"pair_coeff * * {' '.join(elements)}   # LAMMPS atom types 1..{len(elements)}")


def run(args) -> int:
    from hdnnp.n2p2 import export_n2p2_potential
    from hdnnp.potential import load_potential

    model = load_potential(args.model)
    if args.member is not None:
        model = model.member(args.member - 1)
    if args.format is None:
        args.format = "aenet" if args.aenet_ascii else "n2p2"
    if args.format in ("aenet", "aenet-ascii") or args.aenet_ascii:
        return _run_aenet(args, model)
    out = export_n2p2_potential(model, args.outdir, length_unit=args.length_unit,
                                energy_unit=args.energy_unit, overwrite=args.force)
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    print(f"wrote n2p2 potential {out}/: {', '.join(files)}")
    print("LAMMPS (package ML-HDNNP):")
    print("  " + lammps_snippet(model, str(out), args.length_unit,
                                args.energy_unit).replace("\n", "\n  "))
    return 0


def _run_aenet(args, model) -> int:
    from hdnnp.aenet.potential import export_aenet_potential, predict_in
    from hdnnp.errors import HdnnpError

    if args.format == "n2p2":
        raise HdnnpError("--aenet-ascii writes ænet files: use it without --format n2p2")
    if args.length_unit.lower() not in ("angstrom", "a", "å") or args.energy_unit != "eV":
        raise HdnnpError("ænet files are in eV and Å: --length-unit/--energy-unit do not apply")
    ascii_form = args.aenet_ascii or args.format == "aenet-ascii"
    paths = export_aenet_potential(model, args.outdir, ascii=ascii_form, overwrite=args.force)
    print(f"wrote ænet potential {args.outdir}/: {', '.join(p.name for p in paths.values())}")
    if ascii_form:
        print("(text form: ænet's predict.x reads the binary files, --format aenet)")
    print("predict.in for ænet's predict.x (species in this order):")
    print("  " + predict_in({e: str(p) for e, p in paths.items()}).rstrip().replace(
        "\n", "\n  "))
    return 0
