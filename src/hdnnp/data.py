r"""Loading and saving labelled data sets from any source (files, bundled sets, labelling
databases), with their reference energies.

The :class:`~hdnnp.dataset.Dataset` itself (structures with reference energies and forces,
splits, cohesive energies) lives in :mod:`hdnnp.dataset`, which the sources' own packages
(:mod:`hdnnp.bundled`, :mod:`hdnnp.reference_data.labelling`) import; this module
dispatches between them, so the imports flow one way.  Its names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ase import Atoms

from hdnnp.dataset import (
    TRAJECTORY_KEYS,
    Dataset,
    parse_where,
    sort_elements,
    structure_energy,
    structure_forces,
    where_matches,
)
from hdnnp.errors import HdnnpError

__all__ = ["TRAJECTORY_KEYS", "Dataset", "labelling_settings", "load_dataset", "load_datasets",
           "parse_where", "reference_energies_from_info", "save_dataset", "sort_elements",
           "structure_energy", "structure_forces", "where_matches"]


def load_dataset(spec: str | Path, format: str | None = None, **read_options) -> Dataset:
    """One data set from a file, directory, archive, labelling database or bundled set.

    ``spec`` may be ``bundled:NAME`` (or a bare bundled name that is not a path), an
    hdnnp labelling database (its isolated-atom energies become the reference
    energies), or anything :func:`hdnnp.io.read_structures` reads (``read_options``
    are passed to the reader, e.g. ``length_unit`` for n2p2 files).
    """
    from hdnnp.bundled import list_bundled_datasets, load_bundled_dataset

    text = str(spec)
    path = Path(text)
    is_url = text.startswith(("postgresql://", "postgres://"))
    if text.startswith("bundled:"):
        return load_bundled_dataset(text.split(":", 1)[1])
    if not path.exists() and text in list_bundled_datasets():
        return load_bundled_dataset(text)
    if not path.exists() and not is_url:
        raise HdnnpError(f"{text}: no such file, directory or bundled data set")
    if path.suffix == ".db" or is_url:
        from hdnnp.reference_data.labelling import is_labelling_database, load_labelled

        if is_labelling_database(text):
            return load_labelled(text)
    from hdnnp.io import read_structures

    ds = Dataset(read_structures(path, format, **read_options), require_energy=False,
                 validate=False)
    ds.reference_energies.update(reference_energies_from_info(ds.structures)
                                 or _db_reference_energies(text))
    for atoms in ds.structures:  # now held by the data set
        for key in [k for k in atoms.info if isinstance(k, str)
                    and k.startswith(REFERENCE_INFO_PREFIX)]:
            del atoms.info[key]
    return ds


def load_datasets(specs: Sequence[str | Path], format: str | None = None,
                  length_unit: str | float | None = None, energy_unit: str | float | None = None,
                  require_energies: bool = False) -> Dataset:
    """One data set from several sources (each as :func:`load_dataset` takes it), in
    order; the loader of ``hdnnp train`` and ``hdnnp data``.

    ``length_unit``/``energy_unit`` apply to n2p2 ``input.data`` files (other formats are
    in Å and eV); ``require_energies`` refuses structures without a reference energy.
    """
    from hdnnp.io import guess_format

    parts = []
    for spec in specs:
        kw = {}
        if not str(spec).startswith("bundled:") and (format or guess_format(spec)) == "n2p2":
            kw = {"length_unit": length_unit, "energy_unit": energy_unit}
        parts.append(load_dataset(spec, format, **kw))
    if not parts:
        raise HdnnpError("no data given")
    ds = parts[0]
    for other in parts[1:]:
        ds = ds + other
    if require_energies:
        ds.require_energies()
    return ds


def labelling_settings(spec: str | Path) -> dict | None:
    """The reference-method settings a data source was labelled with, where it records
    them: a bundled set's sidecar (``reference_settings``), an hdnnp labelling database's
    job metadata; None for plain structure files (they do not say).  The dict is that of
    :meth:`hdnnp.reference_data.calculators.ReferenceSettings.to_dict` (method,
    electronic temperature, accuracy ...), so a comparison with the reference method
    (``hdnnp scan --reference``) can use the very settings of the training labels."""
    from hdnnp.bundled import bundled_metadata, list_bundled_datasets

    text = str(spec)
    name = text.split(":", 1)[1] if text.startswith("bundled:") else text
    if text.startswith("bundled:") or (not Path(text).exists()
                                       and name in list_bundled_datasets()):
        return bundled_metadata(name).get("reference_settings")
    if text.endswith(".db") or text.startswith(("postgresql://", "postgres://")):
        from hdnnp.reference_data.labelling import is_labelling_database, job_metadata

        if is_labelling_database(text):
            return job_metadata(text).get("reference_settings")
    return None


# ------------------------------------------------------------------ selection by info


# ------------------------------------------------------------------ reference energies in files
#: ``info`` key prefix under which written structures carry the isolated-atom reference
#: energies (eV) of their data set: ``reference_energy_Ti=-1604.6`` in an extxyz comment
#: line.  XSF and n2p2 ``input.data`` have no place for them; ``.db`` files keep them in
#: the database's metadata under :data:`DB_METADATA_KEY`.
REFERENCE_INFO_PREFIX = "reference_energy_"
DB_METADATA_KEY = "hdnnp_reference_energies"


def reference_energies_from_info(structures) -> dict[str, float]:
    """Reference energies carried in ``info`` (:data:`REFERENCE_INFO_PREFIX`) by structures.

    Raises :class:`HdnnpError` if two structures disagree (mixed data sets).
    """
    import math

    out: dict[str, float] = {}
    for k, atoms in enumerate(structures):
        for key, value in atoms.info.items():
            if not (isinstance(key, str) and key.startswith(REFERENCE_INFO_PREFIX)):
                continue
            el = key[len(REFERENCE_INFO_PREFIX):]
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            name = atoms.info.get("source", f"structure {k}")
            if not math.isfinite(value):
                raise HdnnpError(f"{name}: {key} is not a finite energy")
            if el in out and out[el] != value:
                raise HdnnpError(f"{name}: {key} = {value} differs from {out[el]} of an "
                                 "earlier structure; give --reference-energies explicitly")
            out[el] = value
    return out


def _db_reference_energies(name: str) -> dict[str, float]:
    if not name.endswith(".db") or not Path(name).is_file():
        return {}
    try:
        from ase.db import connect

        meta = connect(name).metadata or {}
    except Exception:  # not an ASE database: its reader reports that
        return {}
    from hdnnp.validation import check_reference_energies

    ref = meta.get(DB_METADATA_KEY) or {}
    if not isinstance(ref, dict):
        raise HdnnpError(f"{name}: metadata {DB_METADATA_KEY} is not a mapping of elements "
                         "to energies")
    return check_reference_energies(ref, f"{name}: metadata {DB_METADATA_KEY}")


def save_dataset(path: str | Path, structures: Sequence[Atoms], format: str | None = None,
                 reference_energies: Mapping[str, float] | None = None) -> None:
    """Write structures atomically (see :func:`hdnnp.io.write_structures`), keeping the
    isolated-atom ``reference_energies`` (eV) where the format can hold them: as
    ``reference_energy_<El>`` in every structure's extxyz info, in a ``.db`` file's
    metadata.  XSF and n2p2 files cannot hold them (give them back with
    ``--reference-energies`` / the training config's ``data.reference_energies``).
    :func:`load_dataset` reads them back.
    """
    from hdnnp.io import guess_format, write_structures

    structures = list(structures)
    path = Path(path)
    fmt = format or ("xsf-dir" if path.suffix == "" else guess_format(path))
    ref = {str(k): float(v) for k, v in (reference_energies or {}).items()}
    if ref and fmt == "extxyz":
        copies = []
        for atoms in structures:
            a = atoms.copy()
            a.calc = atoms.calc
            a.info.update({f"{REFERENCE_INFO_PREFIX}{el}": e for el, e in ref.items()})
            copies.append(a)
        structures = copies
    write_structures(path, structures, format=format)
    if ref and fmt == "db":
        from ase.db import connect

        db = connect(str(path))
        db.metadata = {**(db.metadata or {}), DB_METADATA_KEY: ref}
