"""``hdnnp label``: resumable reference labelling into an ASE database."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser


def register(sub) -> None:
    p = command_parser(
        sub, "label", help="label structures with the reference method (resumable)",
        description=textwrap.fill(
            "Compute reference energies and forces (tblite GFN1-xTB by default; "
                    "GFN2-xTB or any ASE calculator) for every input structure and write "
                    "each result to an ASE database as it finishes (SQLite file, or a "
                    "postgresql:// URL).  Re-running the same command after an interruption "
                    "(even kill -9) labels only what is missing; every structure is labelled "
                    "exactly once.  Failed SCFs are recorded with their error and counted.  "
                    "Isolated-atom energies (same method and settings) are stored with the "
                    "job as reference energies.  Several processes may label into one "
                    "database at once: they cooperate (each skips what another has stored; "
                    "the database refuses a structure twice).  Exit status: 0 when every "
                    "structure is labelled, 1 when some are recorded as failed (see "
                    "--retry-failed), 2 on an error.", 88),
        examples="  hdnnp label md.xyz -o labels.db\n"
                 "  hdnnp label md.xyz -o labels.db --workers 2\n"
                 "  hdnnp label md.xyz -o labels.db --method GFN2-xTB "
                 "--electronic-temperature 500\n"
                 "  hdnnp label md.xyz -o labels.db --retry-failed\n"
                 "  hdnnp label md.xyz -o labels.db --export labelled.extxyz.xz\n"
                 "  hdnnp label md.xyz -o postgresql://user:pw@host/hdnnp --workers 16\n"
                 "  hdnnp label md.xyz -o labels.db --scheduler tcp://10.0.0.1:8786\n"
                 "  hdnnp label md.xyz -o labels.db --method dftb "
                 "--calculator-kwargs '{\"Hamiltonian_SCC\": \"Yes\"}'")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="structure files")
    p.add_argument("-o", "--output", required=True, help="database (.db) or postgresql:// URL")
    p.add_argument("--method", default="GFN1-xTB",
                   help="GFN1-xTB (default), GFN2-xTB, IPEA1-xTB, an ASE calculator name or "
                        "module:Class")
    p.add_argument("--electronic-temperature", type=float, default=300.0, metavar="K")
    p.add_argument("--accuracy", type=float, default=1.0, help="tblite accuracy")
    p.add_argument("--max-iterations", type=int, default=300, help="SCF iteration limit")
    p.add_argument("--mixer-damping", type=float, default=0.4)
    p.add_argument("--calculator-kwargs", default="{}", metavar="JSON",
                   help="keyword arguments of a non-tblite ASE calculator")
    p.add_argument("--workers", type=int, default=1, help="worker processes (1 thread each)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler")
    p.add_argument("--retry-failed", action="store_true", help="retry failed structures")
    p.add_argument("--export", metavar="FILE",
                   help="also write the labelled structures (extxyz[.xz], n2p2 …)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import sys

    from hdnnp.cli.cmd_data import read_inputs
    from hdnnp.errors import HdnnpError
    from hdnnp.reference_data.calculators import ReferenceSettings
    from hdnnp.reference_data.labelling import label, load_labelled

    try:
        kwargs = json.loads(args.calculator_kwargs)
    except json.JSONDecodeError as exc:
        raise HdnnpError(f"--calculator-kwargs is not valid JSON ({exc})") from None
    settings = ReferenceSettings(method=args.method,
                                 electronic_temperature=args.electronic_temperature,
                                 accuracy=args.accuracy, max_iterations=args.max_iterations,
                                 mixer_damping=args.mixer_damping, calculator_kwargs=kwargs)
    structs = read_inputs(args.inputs).structures
    for a in structs:
        a.calc = None
    summary = label(structs, args.output, settings, workers=args.workers,
                    scheduler=args.scheduler, retry_failed=args.retry_failed,
                    progress=not args.quiet, source=" ".join(args.inputs))
    print(summary)
    if args.export:
        from hdnnp.data import save_dataset

        ds = load_labelled(args.output)
        save_dataset(args.export, ds.structures, reference_energies=ds.reference_energies)
        print(f"wrote {len(ds)} labelled structures to {args.export}")
    if summary.failed_total:
        print(f"hdnnp: {summary.failed_total} structure(s) failed to label; retry them with "
              "--retry-failed", file=sys.stderr)
        return 1
    return 0
