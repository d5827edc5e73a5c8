"""``hdnnp report``: metrics and figures of a training run."""

from __future__ import annotations

import json
import textwrap

from hdnnp.cli import command_parser

_DESCRIPTION = (
    "Read a training-run directory (predictions.npz, log.jsonl, model.json), "
    "write metrics.json and the figures loss.png, energy_parity.png, "
    "force_parity.png, energy_error_hist.png, force_error_hist.png into "
    "RUN_DIR/report/, and print the metrics of each split the run has (train, "
    "validation, test; energy per atom in meV/atom, force components in eV/Å, "
    "Pearson r).")


def register(sub) -> None:
    p = command_parser(
        sub, "report", help="metrics and figures of a training run",
        description=textwrap.fill(_DESCRIPTION, 88),
        examples="  hdnnp report runs/tio2\n"
                 "  hdnnp report runs/tio2 -o figures/tio2\n"
                 "  hdnnp report runs/tio2 --json > metrics.json")
    p.add_argument("run_dir", metavar="RUN_DIR", help="training-run directory")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="directory for metrics.json and the figures (default RUN_DIR/report)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from hdnnp.analysis.report import format_metrics_table, write_report

    out = Path(args.output) if args.output else Path(args.run_dir) / "report"
    metrics = write_report(args.run_dir, out)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"training run: {args.run_dir}")
    print(format_metrics_table(metrics))
    files = sorted(p.name for p in out.iterdir() if p.suffix in (".json", ".png"))
    print(f"report: {out}/ ({', '.join(files)})")
    return 0
