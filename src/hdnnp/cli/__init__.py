"""The ``hdnnp`` command line.

Every sub-command lives in a module ``hdnnp/cli/cmd_<name>.py`` that defines
``register(subparsers)``; modules are discovered automatically, so adding a command
means adding one file.  User errors (:class:`~hdnnp.errors.HdnnpError`) are printed
as one line ``hdnnp: error: ...`` with exit status 2 and no traceback.

Exit statuses: 0 success; 1 nothing to do (help printed); 2 an error (argparse's own
usage errors are 2 as well); 130 interrupted by Ctrl-C (128 + SIGINT, the shell's
convention), with a one-line message that says where the work done so far is (e.g. the
best model of an interrupted training); 141 (128 + SIGPIPE) when the reader of our output
went away, as in ``hdnnp info model.json | head`` — quietly, without a traceback
(argparse's own ``--help`` and usage output ignores a closed pipe itself: exit 0).  A
command's ``run`` returns its status; a status that is not an integer counts as failure
(2), ``None`` as success.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from hdnnp._version import __version__
from hdnnp.errors import HdnnpError

DESCRIPTION = """\
hdnnp: high-dimensional neural network potentials (Behler-Parrinello) for materials.

Typical workflow:
  hdnnp build graphene --repeat 6 6 1 -o graphene.xyz     # structures
  hdnnp sample ... ; hdnnp augment ... ; hdnnp label ...   # reference data
  hdnnp train --config train.yaml                          # fit a potential
  hdnnp predict model.json test.xyz                        # use it
Run 'hdnnp COMMAND --help' for the options and examples of each command.
"""


def command_parser(subparsers, name: str, help: str, description: str, examples: str):
    """Add a sub-command whose --help shows ``description`` and ``examples``."""
    return subparsers.add_parser(
        name, help=help, description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)


def labelled_paths(paths: list[str]) -> list[tuple[str, str]]:
    """(label, path) of arguments written ``LABEL=PATH`` or as a bare path (then
    ``HDNNP`` for a single one, ``model 1``, ``model 2`` ... for several); labels must
    differ.  Used by the commands that compare several potentials (scan, compare)."""
    from hdnnp.errors import HdnnpError

    out = []
    for k, text in enumerate(paths):
        label, sep, path = text.partition("=")
        if sep and label and "/" not in label and not label.startswith("."):
            out.append((label, path))
        else:
            out.append(("HDNNP" if len(paths) == 1 else f"model {k + 1}", text))
    labels = [lab for lab, _ in out]
    if len(set(labels)) != len(labels):
        raise HdnnpError(f"two models have the same label ({', '.join(labels)})")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hdnnp", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hdnnp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = sys.modules[__name__]
    for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{mod.name}").register(sub)
    return parser


EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _exit_status(value) -> int:
    """A command's return value as an exit status (None: 0; not an integer: failure)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        return EXIT_ERROR
    return value


def _quiet_broken_pipe() -> int:
    """The reader of stdout has gone: stop writing there, quietly.

    Python's documented recipe (``signal`` module, "Note on SIGPIPE"): point stdout at
    ``/dev/null`` so that the interpreter's final flush does not raise again.
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass  # stdout is not a real file (tests): nothing to redirect
    return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return _exit_status(args.func(args))
    except HdnnpError as exc:
        print(f"hdnnp: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        # hdnnp.training.trainer.TrainingInterrupted says where the best model is
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"hdnnp: interrupted{': ' + detail if detail else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    try:
        try:
            return _run(argv)
        finally:
            # a closed pipe shows at the latest here (also after argparse's --help exit),
            # while we can still catch it
            sys.stdout.flush()
    except BrokenPipeError:
        return _quiet_broken_pipe()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
