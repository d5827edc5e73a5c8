r"""ænet's potential files (``*.nn``): Fortran unformatted binary and the ``.nn.ascii`` text form.

One file per element holds three parts, written one after the other by ænet's
``train.x`` (``train.f90``: ``save_Network``, ``save_Setup``, ``save_TrnSet_info``;
read back by ``potential.f90``: ``load_NNPot``):

1. the network (``ext/feedforward.f90``): ``nlayers``, ``nnodes_max``, ``Wsize``,
   ``nvalues``, ``nnodes(nlayers)``, the activation codes ``f_a(2:nlayers)`` (0 linear,
   1 tanh, 2 sigmoid, 3 mtanh, 4 twist), the offsets ``iw(nlayers)``, ``iv(nlayers)``
   and the weights ``W(Wsize)``: per layer the column-major ``nnodes(l+1) ×
   (nnodes(l)+1)`` matrix whose last column is the bias;
2. the fingerprint set-up (``sfsetup.f90``): ``description`` (1024 characters),
   ``atomtype`` (2), ``nenv``, ``envtypes(nenv)`` (2 each), ``Rc_min``, ``Rc_max``,
   ``sftype`` (100), ``nsf``, ``nsfparam``, ``sf(nsf)``, ``sfparam(nsfparam, nsf)``,
   ``sfenv(2, nsf)``, ``neval``, ``sfval_min/max/avg/cov(nsf)`` (``cov`` is the mean of
   the squares);
3. the training-set information (``trainset.f90``): ``file`` (1024), ``normalized``
   (logical), ``scale``, ``shift``, ``nTypes``, ``typeName(nTypes)`` (2 each),
   ``E_atom(nTypes)``, ``nAtomsTot``, ``nStrucs``, and ``E_min, E_max, E_av`` in one
   record.

The binary form is gfortran's sequential unformatted layout: every ``write`` is one
record framed by its byte length as a 4-byte integer before and after; integers and
logicals are 4 bytes, reals 8, characters their declared length padded with blanks
(little-endian; big-endian files are recognised by their first marker).

The ascii form is what ænet's ``save_*_ASCII`` routines (and aenet-PyTorch, which writes
``*.nn.ascii``) produce: scalars one per line, strings one per line, arrays as numbers
separated by blanks (ænet: four per line, ``ES24.17``; aenet-PyTorch: one line per array).
The reader takes either layout; the writer follows ænet's (four per line, ``ES24.17``:
18 significant digits, so every double survives the text form bit for bit), which
aenet-PyTorch's converter ``nnASCII2bin.x`` (list-directed reads) also takes.  ``sfenv``
is written with both rows, as aenet-PyTorch does; ænet's ``save_Setup_ASCII`` writes
``nenv`` rows, and for one species the reader rebuilds the second row as ``generate.x``
sets it (the neighbour species of angular Behler functions).

Everything is checked before it is allocated; a damaged file is a one-line
:class:`~hdnnp.errors.PotentialFileError` naming the file (and the item, or the line of
a text file).
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdnnp.errors import PotentialFileError
from hdnnp.fileio import atomic_write_bytes, atomic_write_text
from hdnnp.fortran import fortran_float

PATHLEN = 1024   # ænet aeio.f90
TYPELEN = 2
DESCLEN = 1024   # sfsetup.f90: description
SFTYPELEN = 100  # sfsetup.f90: sftype
NENV_MAX = 2
#: refuse sizes beyond these before allocating (far beyond any ænet potential)
MAX_ITEMS = 50_000_000
MAX_LAYERS = 1000
MAX_TYPES = 1000

#: ænet activation codes (``ff_activate``) and hdnnp's names
ACTIVATION_CODES = {0: "linear", 1: "tanh", 2: "sigmoid", 3: "mtanh", 4: "twist"}
ACTIVATION_NUMBERS = {v: k for k, v in ACTIVATION_CODES.items()}


@dataclass
class NNNetwork:
    """``Network`` of ``feedforward.f90``."""

    nnodes: list[int]
    f_a: list[int]            # activation codes of layers 2..nlayers
    W: np.ndarray             # float64 [Wsize]
    iw: list[int] = field(default_factory=list)
    iv: list[int] = field(default_factory=list)
    nnodes_max: int = 0
    nvalues: int = 0

    def __post_init__(self):
        n = self.nnodes
        if not self.iw:
            self.iw = [0]
            for a, b in itertools.pairwise(n):
                self.iw.append(self.iw[-1] + (a + 1) * b)
        if not self.iv:
            self.iv = [0]
            for a in n[:-1]:
                self.iv.append(self.iv[-1] + a + 1)
        if not self.nnodes_max:
            self.nnodes_max = max(n)
        if not self.nvalues:
            self.nvalues = sum(a + 1 for a in n[:-1]) + n[-1]

    @property
    def nlayers(self) -> int:
        return len(self.nnodes)

    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(weight [out, in], bias [out])`` of every layer (ænet's column-major blocks)."""
        out = []
        for k in range(self.nlayers - 1):
            n1, n2 = self.nnodes[k], self.nnodes[k + 1]
            block = self.W[self.iw[k]:self.iw[k + 1]].reshape((n2, n1 + 1), order="F")
            out.append((block[:, :n1].copy(), block[:, n1].copy()))
        return out

    @classmethod
    def from_layers(cls, layers, f_a: list[int]) -> NNNetwork:
        nnodes = [int(layers[0][0].shape[1])] + [int(w.shape[0]) for w, _ in layers]
        blocks = [np.concatenate([w, b.reshape(-1, 1)], axis=1).reshape(-1, order="F")
                  for w, b in layers]
        return cls(nnodes, list(f_a), np.concatenate(blocks).astype(np.float64))


@dataclass
class NNSetup:
    """``Setup`` of ``sfsetup.f90`` (structural fingerprint basis)."""

    description: str
    atomtype: str
    envtypes: list[str]
    rc_min: float
    rc_max: float
    sftype: str
    sf: list[int]
    sfparam: np.ndarray       # [nsf, nsfparam]
    sfenv: np.ndarray         # [nsf, 2] (1-based local type indices, 0 = none)
    neval: int
    sfval_min: np.ndarray
    sfval_max: np.ndarray
    sfval_avg: np.ndarray
    sfval_cov: np.ndarray

    @property
    def nsf(self) -> int:
        return len(self.sf)

    @property
    def nsfparam(self) -> int:
        return int(self.sfparam.shape[1])


@dataclass
class NNTrainset:
    """Training-set information of ``trainset.f90`` (energy normalisation, atom energies)."""

    file: str
    normalized: bool
    scale: float
    shift: float
    types: list[str]
    e_atom: list[float]
    n_atoms: int
    n_structures: int
    e_min: float
    e_max: float
    e_avg: float


@dataclass
class NNFile:
    """One ænet potential file: network, fingerprint set-up and training-set info."""

    network: NNNetwork
    setup: NNSetup
    trainset: NNTrainset


# ------------------------------------------------------------------ binary reading

class _Records:
    def __init__(self, path: Path, data: bytes):
        self.path, self.data, self.pos, self.count = path, data, 0, 0
        head = data[:4]
        self.order = ">" if head == b"\x00\x00\x00\x04" else "<"

    def fail(self, msg: str) -> PotentialFileError:
        return PotentialFileError(self.path, f"not a valid ænet potential file: {msg}")

    def record(self, what: str) -> bytes:
        d, p = self.data, self.pos
        if p + 4 > len(d):
            raise self.fail(f"the file ends before {what} (record {self.count + 1}); "
                            "truncated?")
        (n,) = struct.unpack(self.order + "i", d[p:p + 4])
        if n < 0 or p + 8 + n > len(d):
            raise self.fail(f"record {self.count + 1} ({what}) is damaged or truncated "
                            f"(marker {n}, {len(d) - p - 4} bytes left)")
        (tail,) = struct.unpack(self.order + "i", d[p + 4 + n:p + 8 + n])
        if tail != n:
            raise self.fail(f"record {self.count + 1} ({what}): the record markers differ "
                            f"({n} and {tail})")
        self.pos = p + 8 + n
        self.count += 1
        return d[p + 4:p + 4 + n]

    def _sized(self, what: str, size: int, n: int | None) -> tuple[bytes, int]:
        rec = self.record(what)
        if n is None:
            if len(rec) % size:
                raise self.fail(f"{what}: a record of {len(rec)} bytes is not a whole number "
                                f"of {size}-byte items")
            n = len(rec) // size
        if len(rec) != size * n:
            raise self.fail(f"{what}: expected {n} item(s) ({size * n} bytes), the record "
                            f"holds {len(rec)} bytes")
        return rec, n

    def ints(self, what: str, n: int | None = None) -> list[int]:
        rec, n = self._sized(what, 4, n)
        return list(struct.unpack(f"{self.order}{n}i", rec))

    def int(self, what: str) -> int:
        return self.ints(what, 1)[0]

    def floats(self, what: str, n: int | None = None) -> np.ndarray:
        rec, n = self._sized(what, 8, n)
        return np.frombuffer(rec, dtype=np.dtype(self.order + "f8"), count=n).astype(np.float64)

    def float(self, what: str) -> float:
        return float(self.floats(what, 1)[0])

    def strings(self, what: str, length: int, n: int) -> list[str]:
        rec, n = self._sized(what, length, n)
        try:
            text = rec.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not ASCII text") from None
        return [text[k * length:(k + 1) * length].rstrip() for k in range(n)]

    def string(self, what: str, length: int) -> str:
        return self.strings(what, length, 1)[0]


def _count(reader, value: int, what: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise reader.fail(f"{what} = {value} is out of range ({low}…{high})")
    return value


def _read_binary(path: Path, data: bytes) -> NNFile:
    r = _Records(path, data)
    nlayers = _count(r, r.int("nlayers"), "nlayers", 2, MAX_LAYERS)
    nnodes_max = r.int("nnodes_max")
    wsize = _count(r, r.int("Wsize"), "Wsize", 1, MAX_ITEMS)
    nvalues = r.int("nvalues")
    nnodes = r.ints("nnodes", nlayers)
    f_a = r.ints("activation codes", nlayers - 1)
    iw = r.ints("iw", nlayers)
    iv = r.ints("iv", nlayers)
    w = r.floats("weights", wsize)
    net = NNNetwork(nnodes, f_a, w, iw, iv, nnodes_max, nvalues)
    description = r.string("description", DESCLEN)
    atomtype = r.string("atom type", TYPELEN)
    nenv = _count(r, r.int("nenv"), "nenv", 1, MAX_TYPES)
    envtypes = r.strings("environment types", TYPELEN, nenv)
    rc_min, rc_max = r.float("Rc_min"), r.float("Rc_max")
    sftype = r.string("basis type", SFTYPELEN)
    nsf = _count(r, r.int("nsf"), "nsf", 1, MAX_ITEMS)
    nsfparam = _count(r, r.int("nsfparam"), "nsfparam", 1, 64)
    sf = r.ints("function types", nsf)
    sfparam = r.floats("function parameters", nsf * nsfparam).reshape(nsf, nsfparam)
    sfenv = np.array(r.ints("function species", NENV_MAX * nsf)).reshape(nsf, NENV_MAX)
    neval = r.int("neval")
    stats = [r.floats(f"sfval_{k}", nsf) for k in ("min", "max", "avg", "cov")]
    setup = NNSetup(description, atomtype, envtypes, rc_min, rc_max, sftype, sf, sfparam,
                    sfenv, neval, *stats)
    tsfile = r.string("training set file name", PATHLEN)
    rec = r.record("normalized")
    if len(rec) != 4:
        raise r.fail(f"normalized: expected a 4-byte logical, the record holds {len(rec)} "
                     "bytes")
    normalized = struct.unpack(r.order + "i", rec)[0] != 0
    scale, shift = r.float("energy scale"), r.float("energy shift")
    ntypes = _count(r, r.int("nTypes"), "nTypes", 1, MAX_TYPES)
    types = r.strings("species", TYPELEN, ntypes)
    e_atom = [float(x) for x in r.floats("atomic energies", ntypes)]
    n_atoms, n_struc = r.int("nAtomsTot"), r.int("nStrucs")
    e_min, e_max, e_avg = (float(x) for x in r.floats("E_min, E_max, E_av", 3))
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes after the last record")
    ts = NNTrainset(tsfile, normalized, scale, shift, types, e_atom, n_atoms, n_struc,
                    e_min, e_max, e_avg)
    return NNFile(net, setup, ts)


# ------------------------------------------------------------------- text reading



class _Lines:
    def __init__(self, path: Path, text: str):
        self.path, self.lines, self.k = path, text.splitlines(), 0

    def fail(self, msg: str, line: int | None = None) -> PotentialFileError:
        line = self.k if line is None else line
        return PotentialFileError(self.path, f"line {line}: {msg}")

    def line(self, what: str) -> str:
        if self.k >= len(self.lines):
            raise PotentialFileError(self.path, f"the file ends before {what} (after line "
                                     f"{self.k}); truncated?")
        self.k += 1
        return self.lines[self.k - 1]

    def tokens(self, what: str, n: int, alternatives: tuple[int, ...] = ()) -> list[str]:
        """Whole lines until at least ``n`` tokens; exactly ``n`` (or an alternative)."""
        out: list[str] = []
        first = self.k + 1
        while len(out) < n:
            out += self.line(what).split()
        if len(out) != n and len(out) not in alternatives:
            raise self.fail(f"{what}: expected {n} value(s) from line {first}, got {len(out)}")
        return out

    def continues_with_ints(self, n: int, more: int) -> bool:
        """Whether the next whole lines hold ``n`` integers, then ``more`` integers, and
        then a line with one integer (the layout with ``more`` extra values)."""
        k, count = self.k, 0
        while count < n + more and k < len(self.lines):
            toks = self.lines[k].split()
            if not all(t.lstrip("+-").isdigit() for t in toks):
                return False
            count += len(toks)
            k += 1
        if count != n + more or k >= len(self.lines):
            return False
        nxt = self.lines[k].split()
        return len(nxt) == 1 and nxt[0].lstrip("+-").isdigit()

    def ints(self, what: str, n: int, alternatives: tuple[int, ...] = ()) -> list[int]:
        out = []
        for t in self.tokens(what, n, alternatives):
            try:
                out.append(int(t))
            except ValueError:
                raise self.fail(f"{what}: {t[:30]!r} is not an integer") from None
        return out

    def int(self, what: str) -> int:
        return self.ints(what, 1)[0]

    def floats(self, what: str, n: int) -> np.ndarray:
        toks = self.tokens(what, n)
        out = np.empty(n)
        for k, t in enumerate(toks):
            try:
                out[k] = fortran_float(t, exponent_letter_optional=True)
            except ValueError:
                raise self.fail(f"{what}: {t[:30]!r} is not a number") from None
        return out

    def float(self, what: str) -> float:
        return float(self.floats(what, 1)[0])

    def logical(self, what: str) -> bool:
        tok = self.tokens(what, 1)[0].lower().lstrip(".")
        if tok[:1] in ("t", "f"):
            return tok[0] == "t"
        raise self.fail(f"{what}: {tok[:30]!r} is not a logical (T or F)")


def _read_text(path: Path, text: str) -> NNFile:
    r = _Lines(path, text)

    def count(v, what, low, high):
        if not low <= v <= high:
            raise r.fail(f"{what} = {v} is out of range ({low}…{high})")
        return v

    nlayers = count(r.int("nlayers"), "nlayers", 2, MAX_LAYERS)
    nnodes_max = r.int("nnodes_max")
    wsize = count(r.int("Wsize"), "Wsize", 1, MAX_ITEMS)
    nvalues = r.int("nvalues")
    nnodes = r.ints("nnodes", nlayers)
    f_a = r.ints("activation codes", nlayers - 1)
    iw, iv = r.ints("iw", nlayers), r.ints("iv", nlayers)
    w = r.floats("weights", wsize)
    net = NNNetwork(nnodes, f_a, w, iw, iv, nnodes_max, nvalues)
    description = r.line("description").rstrip()
    atomtype = r.line("atom type").strip()
    nenv = count(r.int("nenv"), "nenv", 1, MAX_TYPES)
    envtypes = r.tokens("environment types", nenv)
    rc_min, rc_max = r.float("Rc_min"), r.float("Rc_max")
    sftype = r.line("basis type").strip()
    nsf = count(r.int("nsf"), "nsf", 1, MAX_ITEMS)
    nsfparam = count(r.int("nsfparam"), "nsfparam", 1, 64)
    sf = r.ints("function types", nsf)
    sfparam = r.floats("function parameters", nsf * nsfparam).reshape(nsf, nsfparam)
    rows = min(nenv, NENV_MAX)
    if rows < NENV_MAX and r.continues_with_ints(nsf * rows, nsf * (NENV_MAX - rows)):
        rows = NENV_MAX  # hdnnp's and aenet-PyTorch's form: both rows for one species
    env = r.ints("function species", rows * nsf, alternatives=(NENV_MAX * nsf,))
    if len(env) == NENV_MAX * nsf:
        sfenv = np.array(env).reshape(nsf, NENV_MAX)
    else:  # ænet's text form: nenv (= 1) rows; rebuild the second as generate.x sets it
        sfenv = np.zeros((nsf, NENV_MAX), dtype=np.int64)
        sfenv[:, 0] = env
        if sftype.lower() == "behler2011":
            sfenv[:, 1] = [e if t in (4, 5) else 0 for e, t in zip(env, sf)]
    neval = r.int("neval")
    stats = [r.floats(f"sfval_{k}", nsf) for k in ("min", "max", "avg", "cov")]
    setup = NNSetup(description, atomtype, list(envtypes), rc_min, rc_max, sftype, sf,
                    sfparam, sfenv, neval, *stats)
    tsfile = r.line("training set file name").strip()
    normalized = r.logical("normalized")
    scale, shift = r.float("energy scale"), r.float("energy shift")
    ntypes = count(r.int("nTypes"), "nTypes", 1, MAX_TYPES)
    types = r.tokens("species", ntypes)
    e_atom = [float(x) for x in r.floats("atomic energies", ntypes)]
    n_atoms, n_struc = r.int("nAtomsTot"), r.int("nStrucs")
    e_min, e_max, e_avg = (float(x) for x in r.floats("E_min, E_max, E_av", 3))
    rest = [k + 1 for k in range(r.k, len(r.lines)) if r.lines[k].strip()]
    if rest:
        raise r.fail("text after the training-set information", rest[0])
    ts = NNTrainset(tsfile, normalized, scale, shift, list(types), e_atom, n_atoms, n_struc,
                    e_min, e_max, e_avg)
    return NNFile(net, setup, ts)


def _check(path: Path, f: NNFile) -> NNFile:
    """Consistency of the parts (sizes that chain, codes, finite numbers)."""
    def fail(msg):
        return PotentialFileError(path, f"not a valid ænet potential file: {msg}")

    net, stp, ts = f.network, f.setup, f.trainset
    if any(n < 1 for n in net.nnodes):
        raise fail(f"layer sizes {net.nnodes} must be positive")
    expect = NNNetwork(list(net.nnodes), list(net.f_a), net.W)
    if (expect.iw, expect.iv) != (list(net.iw), list(net.iv)) or len(net.W) != expect.iw[-1]:
        raise fail(f"the weight offsets do not match the layer sizes {net.nnodes}")
    bad = [c for c in net.f_a if c not in ACTIVATION_CODES]
    if bad:
        raise fail(f"unknown activation code {bad[0]} (ænet's are 0-4)")
    if net.nnodes[-1] != 1:
        raise fail(f"the output layer has {net.nnodes[-1]} nodes, not 1")
    if net.nnodes[0] != stp.nsf:
        raise fail(f"the network takes {net.nnodes[0]} inputs but the set-up has "
                   f"{stp.nsf} functions")
    if not np.isfinite(net.W).all():
        raise fail("non-finite weights")
    for name in ("sfparam", "sfval_min", "sfval_max", "sfval_avg", "sfval_cov"):
        if not np.isfinite(getattr(stp, name)).all():
            raise fail(f"non-finite {name}")
    for name in ("rc_min", "rc_max", "scale", "shift"):
        v = getattr(stp if name.startswith("rc") else ts, name)
        if not math.isfinite(v):
            raise fail(f"non-finite {name}")
    if not all(math.isfinite(e) for e in ts.e_atom):
        raise fail("non-finite atomic energies")
    if stp.atomtype not in ts.types:
        raise fail(f"species {stp.atomtype!r} is not among the training set's {ts.types}")
    if len(set(stp.envtypes)) != len(stp.envtypes):
        raise fail(f"repeated environment species {stp.envtypes}")
    return f


def read_nn(path: str | Path) -> NNFile:
    """Read an ænet potential file, binary or ascii (recognised by its first bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PotentialFileError(path, "no such file") from None
    except IsADirectoryError:
        raise PotentialFileError(path, "is a directory, not an ænet potential file") from None
    except OSError as exc:
        raise PotentialFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if data[:4] in (b"\x04\x00\x00\x00", b"\x00\x00\x00\x04"):
        return _check(path, _read_binary(path, data))
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise PotentialFileError(path, "neither an ænet binary potential (no Fortran record "
                                 "marker) nor ascii text") from None
    if "\x00" in text:
        raise PotentialFileError(path, "not an ænet potential file (NUL bytes in text)")
    return _check(path, _read_text(path, text))


# ---------------------------------------------------------------------------- writing

def _pad(text: str, length: int, what: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > length:
        raise ValueError(f"{what} is longer than {length} characters")
    return raw.ljust(length, b" ")


def to_binary(f: NNFile) -> bytes:
    """The file as ænet's ``train.x`` writes it (gfortran, little-endian)."""
    out = bytearray()

    def rec(payload: bytes):
        n = struct.pack("<i", len(payload))
        out.extend(n + payload + n)

    def ints(vals):
        rec(struct.pack(f"<{len(vals)}i", *[int(v) for v in vals]))

    def floats(vals):
        rec(np.asarray(vals, dtype="<f8").tobytes())

    net, stp, ts = f.network, f.setup, f.trainset
    for v in (net.nlayers, net.nnodes_max, net.iw[-1], net.nvalues):
        ints([v])
    ints(net.nnodes)
    ints(net.f_a)
    ints(net.iw)
    ints(net.iv)
    floats(net.W)
    rec(_pad(stp.description, DESCLEN, "description"))
    rec(_pad(stp.atomtype, TYPELEN, "atom type"))
    ints([len(stp.envtypes)])
    rec(b"".join(_pad(e, TYPELEN, "species") for e in stp.envtypes))
    floats([stp.rc_min])
    floats([stp.rc_max])
    rec(_pad(stp.sftype, SFTYPELEN, "basis type"))
    ints([stp.nsf])
    ints([stp.nsfparam])
    ints(stp.sf)
    floats(np.asarray(stp.sfparam).reshape(-1))
    ints(np.asarray(stp.sfenv).reshape(-1))
    ints([stp.neval])
    for v in (stp.sfval_min, stp.sfval_max, stp.sfval_avg, stp.sfval_cov):
        floats(v)
    rec(_pad(ts.file, PATHLEN, "training set file name"))
    ints([1 if ts.normalized else 0])
    floats([ts.scale])
    floats([ts.shift])
    ints([len(ts.types)])
    rec(b"".join(_pad(e, TYPELEN, "species") for e in ts.types))
    floats(ts.e_atom)
    ints([ts.n_atoms])
    ints([ts.n_structures])
    floats([ts.e_min, ts.e_max, ts.e_avg])
    return bytes(out)


def _rows(values, fmt, per_line: int = 4) -> list[str]:
    vals = list(values)
    return ["".join(fmt(v) for v in vals[k:k + per_line]) for k in range(0, len(vals),
                                                                         per_line)]


def _es(x: float) -> str:
    return f" {float(x):24.17E}"


def _i17(x: int) -> str:
    return f" {int(x):17d}"


def _scalar(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return " T" if x else " F"
    if isinstance(x, (int, np.integer)):
        return f" {int(x):11d}"
    return f"  {float(x)!r}"


def to_text(f: NNFile) -> str:
    """The file in ænet's text form (``save_Network_ASCII``, ``save_Setup_ASCII``,
    ``save_TrnSet_info_ASCII``)."""
    net, stp, ts = f.network, f.setup, f.trainset
    lines = [_scalar(v) for v in (net.nlayers, net.nnodes_max, net.iw[-1], net.nvalues)]
    for arr in (net.nnodes, net.f_a, net.iw, net.iv):
        lines += _rows(arr, _i17)
    lines += _rows(net.W, _es)
    lines += [stp.description.rstrip(), stp.atomtype.ljust(TYPELEN), _scalar(len(stp.envtypes))]
    lines += [e.ljust(TYPELEN) for e in stp.envtypes]
    lines += [_scalar(float(stp.rc_min)), _scalar(float(stp.rc_max)),
              stp.sftype.ljust(SFTYPELEN), _scalar(stp.nsf), _scalar(stp.nsfparam)]
    lines += _rows(stp.sf, _i17)
    lines += _rows(np.asarray(stp.sfparam).reshape(-1), _es)
    # both rows always, as aenet-PyTorch writes them and its nnASCII2bin reads them
    # (list-directed: 2 × nsf values); ænet's own save_Setup_ASCII writes nenv rows
    lines += _rows(np.asarray(stp.sfenv).reshape(-1), _i17)
    lines.append(_scalar(stp.neval))
    for v in (stp.sfval_min, stp.sfval_max, stp.sfval_avg, stp.sfval_cov):
        lines += _rows(v, _es)
    lines += [ts.file.rstrip(), _scalar(bool(ts.normalized)), _scalar(float(ts.scale)),
              _scalar(float(ts.shift)), _scalar(len(ts.types))]
    lines += [e.ljust(TYPELEN) for e in ts.types]
    lines += _rows(ts.e_atom, _es)
    lines += [_scalar(ts.n_atoms), _scalar(ts.n_structures),
              "".join(_scalar(float(x)) for x in (ts.e_min, ts.e_max, ts.e_avg))]
    return "\n".join(lines) + "\n"


def write_nn(f: NNFile, path: str | Path, ascii: bool = False) -> Path:
    """Write ``f`` atomically, binary (as ``train.x``) or in the text form."""
    path = Path(path)
    if ascii:
        atomic_write_text(path, to_text(f))
    else:
        atomic_write_bytes(path, to_binary(f))
    return path
