"""The ``hdnnp`` command line.

Every sub-command lives in a module ``hdnnp/cli/cmd_<name>.py`` that defines
``register(subparsers)``; modules are discovered automatically, so adding a command
means adding one file.  User errors (:class:`~hdnnp.errors.HdnnpError`) are printed
as one line ``hdnnp: error: ...`` with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from hdnnp import __version__
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except HdnnpError as exc:
        print(f"hdnnp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hdnnp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
