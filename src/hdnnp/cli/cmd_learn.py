"""``hdnnp learn``: the resumable active-learning loop (explore → score → select → label →
retrain)."""

from __future__ import annotations

import textwrap

from hdnnp.cli import command_parser


def register(sub) -> None:
    p = command_parser(
        sub, "learn", help="active learning: explore with a committee, label, retrain",
        description=textwrap.fill(
            "Grow a training set where the potential is uncertain (thesis §6.1-6.2, "
            "DP-GEN's trust levels).  Every iteration trains a committee (each member "
            "warm-started from its predecessor), runs NVT MD with it at the configured "
            "temperatures from scaled seed structures, scores every snapshot (maximum "
            "per-atom force deviation of the members in eV/Å, energy spread per atom in "
            "eV/atom, n2p2 extrapolation count; stored in the snapshots' info), selects "
            "the snapshots whose score lies in the window [lower, upper] (below: accurate; "
            "above: unphysical), at most N and de-duplicated by descriptor distance, and "
            "labels them with the reference (as hdnnp label: workers, dask scheduler).  "
            "It stops when the accurate fraction reaches stop.accurate_fraction (0.99), "
            "when the label budget is spent or after stop.max_iterations.  One directory "
            "per iteration (RUN/iter-000, ...); rerunning the same command after an "
            "interruption (even kill -9) continues where it stopped, without losing or "
            "repeating labels or iterations.  Settings: a YAML/JSON file (see "
            "docs/active_learning.md, examples/learn-graphene.yaml); flags override it.", 88),
        examples="  hdnnp learn examples/learn-graphene.yaml\n"
                 "  hdnnp learn learn.yaml -o runs/learn --label-budget 200 --workers 2\n"
                 "  hdnnp learn learn.yaml --scheduler tcp://10.0.0.1:8786\n"
                 "  hdnnp learn learn.yaml            # again after a crash: continues\n"
                 "  hdnnp data select runs/learn/iter-002/explored.extxyz "
                 "--where 'max_force_dev>0.3' -o uncertain.extxyz")
    p.add_argument("config", help="settings file (YAML or JSON)")
    p.add_argument("-o", "--output", help="run directory (overrides the file's output)")
    p.add_argument("--label-budget", type=int, metavar="N", help="labels the loop may make")
    p.add_argument("--max-iterations", type=int, metavar="N")
    p.add_argument("--accurate-fraction", type=float, metavar="F",
                   help="stop when this fraction of snapshots is accurate (default 0.99)")
    p.add_argument("--max-per-iteration", type=int, metavar="N",
                   help="candidates labelled per iteration")
    p.add_argument("--workers", type=int, help="labelling processes (1 thread each)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask.distributed scheduler")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads of this process (training, MD)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from hdnnp.active_learning import learn, load_learn_config
    from hdnnp.errors import HdnnpError

    if args.threads is not None:
        if args.threads < 1:
            raise HdnnpError("--threads must be ≥ 1")
        import torch

        torch.set_num_threads(args.threads)
    cfg = load_learn_config(args.config).with_overrides(**{
        "output": args.output, "stop.label_budget": args.label_budget,
        "stop.max_iterations": args.max_iterations,
        "stop.accurate_fraction": args.accurate_fraction,
        "select.max_per_iteration": args.max_per_iteration, "label.workers": args.workers,
        "label.scheduler": args.scheduler})
    summary = learn(cfg, progress=not args.quiet, log=None if args.quiet else print)
    print(json.dumps({k: summary[k] for k in ("status", "iterations", "labels_used",
                                              "final_model")}, indent=1))
    return 0
