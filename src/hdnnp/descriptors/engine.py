r"""The descriptor engine shared by all atomic-environment descriptors.

A descriptor maps the environment of every atom *i* to a feature vector
:math:`\mathbf G_i`; every descriptor here is a sum of radial terms over pairs
:math:`p = (i, j)` and angular terms over triplets :math:`(i; j, k)`, listed once as a
:class:`~hdnnp.descriptors.plan.TermPlan` (registered as buffers, so ``state_dict`` and
``.to()`` carry the parameters).  The engine evaluates a batch in **blocks** of centre atoms
(:meth:`Descriptor.evaluate`), each in two passes without automatic differentiation
through the descriptor:

1. the features :math:`\mathbf G` of the block's centres;
2. given :math:`c_{if} = \partial E/\partial G_{if}` from the networks, the pair gradient

   .. math:: \frac{\partial E}{\partial \mathbf d_p} = \sum_f c_{i(p) f}
       \frac{\partial G_{i(p) f}}{\partial \mathbf d_p}, \qquad
       \mathbf d_p = \mathbf x_j - \mathbf x_i + \mathbf S_p \mathbf h,

   from which forces :math:`\mathbf F_a = \sum_{p: i(p)=a} \partial E/\partial\mathbf d_p
   - \sum_{p: j(p)=a} \partial E/\partial\mathbf d_p`, the strain derivative
   :math:`\partial E/\partial\varepsilon = \sum_p (\partial E/\partial\mathbf d_p)\otimes
   \mathbf d_p` and per-atom virials follow (:func:`accumulate_pair_gradient`).

On the CPU both passes are compiled kernels (:mod:`hdnnp.descriptors.kernels`); on a GPU
the block is evaluated by the tensor path (:mod:`hdnnp.descriptors.tensor`, the same
plan as vectorised torch code, differentiated by autograd), which is also the independent
oracle of the kernels in the tests.  A block holds at most ~10⁶ stored triplets, so memory
grows linearly with the number of atoms.  For energy + forces on the CPU the potential
runs both passes and its networks in one kernel, centre by centre, on blocks made with
``first_pass=False`` (:mod:`hdnnp.network_kernels`); these keep only the pair caches.

For training, :meth:`Descriptor.features_and_jacobian` returns the features and a
:class:`PairJacobian` with only the function derivatives each pair can have: per centre
element c and neighbour element s, the radial columns of (c, s) as scalars
:math:`\partial G/\partial r_p` (the vector is that times :math:`\hat{\mathbf d}_p`) and
the angular columns of (c, s) as 3-vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from hdnnp.descriptors.block import DescriptorBlock
from hdnnp.descriptors.plan import AngularTerm, PlanLayout, RadialTerm, TermPlan, build_plan
from hdnnp.neighbours import StructureBatch

#: Triplet-store slots of one block (each ≈ 8 B + 8 B × (4 + Gaussians per group)).
BLOCK_TRIPLETS = 1 << 20
#: The same for blocks made without their first pass (``first_pass=False``): they keep no
#: triplet store, only pair caches (~100 B per pair), so they may be larger; fewer blocks
#: means less fixed cost per block (measured on 8640-atom water, two threads: 2^22 slots
#: 0.81–0.87 s per call, 2^20 0.90–0.95 s).
BLOCK_TRIPLETS_WITHOUT_STORE = 1 << 22
_PLAN_PREFIX = "plan_"


def pair_offsets(centres: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """CSR offsets [N + 1] of a pair list sorted by centre atom."""
    counts = torch.bincount(centres, minlength=n_atoms)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def centre_blocks(offsets: np.ndarray, budget: float, max_groups: int) -> list[tuple[int, int]]:
    """Contiguous centre ranges [i0, i1) whose triplet estimate (m(m-1)/2 per centre and
    element-pair group) stays within ``budget`` (at least one centre each)."""
    m = np.diff(offsets).astype(np.float64)
    est = np.cumsum(m * (m - 1.0) * 0.5 * max(1, max_groups) + 1.0)
    blocks, start, base = [], 0, 0.0
    n = len(m)
    while start < n:
        stop = int(np.searchsorted(est, base + budget, side="right"))
        stop = min(max(stop, start + 1), n)
        blocks.append((start, stop))
        base = est[stop - 1]
        start = stop
    return blocks


@dataclass
class JacobianBucket:
    """Pair Jacobian of one (centre element, neighbour element) combination.

    ``radial[q, k]`` is ∂G_{centre, radial_columns[k]}/∂r for radial row q (its vector is
    that times ``unit[q]``); ``vector[q, k, :]`` is the full ∂G_{centre,
    vector_columns[k]}/∂d for vector row q.  ``*_pairs`` index the batch's pair list,
    ``*_centres``/``*_neighbours`` its atoms.
    """

    radial_columns: torch.Tensor
    radial_pairs: torch.Tensor
    radial_centres: torch.Tensor
    radial_neighbours: torch.Tensor
    radial: torch.Tensor
    unit: torch.Tensor
    vector_columns: torch.Tensor
    vector_pairs: torch.Tensor
    vector_centres: torch.Tensor
    vector_neighbours: torch.Tensor
    vector: torch.Tensor
    #: (centre element, neighbour element) indices
    elements: tuple[int, int] = (-1, -1)

    def pair_vectors(self, de_dg: torch.Tensor):
        """(∂E/∂d of the radial rows [Qr, 3], of the vector rows [Qv, 3]) from ∂E/∂G,
        contracted in the Jacobian's storage precision."""
        dtype = de_dg.dtype
        rad = vec = None
        if self.radial_columns.numel() and self.radial_centres.numel():
            g = de_dg[:, self.radial_columns][self.radial_centres].to(self.radial.dtype)
            s = (g * self.radial).sum(-1)
            rad = (s.unsqueeze(-1) * self.unit).to(dtype)
        if self.vector_columns.numel() and self.vector_centres.numel():
            g = de_dg[:, self.vector_columns][self.vector_centres].to(self.vector.dtype)
            vec = torch.einsum("pf,pfc->pc", g, self.vector).to(dtype)
        return rad, vec

    def pair_vectors_columns(self, de_dg: torch.Tensor):
        """:meth:`pair_vectors` for K columns at once: ``de_dg`` [N, F, K] → ([Qr, 3, K],
        [Qv, 3, K]) (the parameter derivatives of ∂E/∂G in Levenberg–Marquardt)."""
        rad = vec = None
        if self.radial_columns.numel() and self.radial_centres.numel():
            g = de_dg[:, self.radial_columns][self.radial_centres]
            s = torch.einsum("qfk,qf->qk", g, self.radial.to(g.dtype))
            rad = s.unsqueeze(1) * self.unit.to(g.dtype).unsqueeze(-1)
        if self.vector_columns.numel() and self.vector_centres.numel():
            g = de_dg[:, self.vector_columns][self.vector_centres]
            vec = torch.einsum("qfk,qfc->qck", g, self.vector.to(g.dtype)).contiguous()
        return rad, vec

    def transpose_forces(self, v: torch.Tensor, out: torch.Tensor) -> None:
        r"""Add :math:`L^\top v` of this bucket to ``out`` [N, F, M], where
        :math:`L: \partial E/\partial G \mapsto \mathbf F` is the (linear) force map and
        ``v`` [N, 3, M] are M force-space vectors:

        .. math:: u_{if} = \sum_{p:\,i(p)=i} \frac{\partial G_{if}}{\partial\mathbf d_p}
            \cdot(\mathbf v_i - \mathbf v_{j(p)}),

        so that :math:`\sum_{if} u_{if}\, c_{if} = \sum_a \mathbf v_a\cdot\mathbf F_a(c)`.
        """
        if self.radial_columns.numel() and self.radial_centres.numel():
            dv = v[self.radial_centres] - v[self.radial_neighbours]  # [Q, 3, M]
            proj = torch.einsum("qc,qcm->qm", self.unit.to(v.dtype), dv)
            contrib = self.radial.to(v.dtype).unsqueeze(-1) * proj.unsqueeze(1)  # [Q, K, M]
            part = v.new_zeros(out.shape[0], contrib.shape[1], contrib.shape[2])
            out[:, self.radial_columns] += part.index_add(0, self.radial_centres, contrib)
        if self.vector_columns.numel() and self.vector_centres.numel():
            dv = v[self.vector_centres] - v[self.vector_neighbours]
            contrib = torch.einsum("qkc,qcm->qkm", self.vector.to(v.dtype), dv)
            part = v.new_zeros(out.shape[0], contrib.shape[1], contrib.shape[2])
            out[:, self.vector_columns] += part.index_add(0, self.vector_centres, contrib)

    def to(self, device=None, dtype=None) -> JacobianBucket:
        def conv(t):
            if not isinstance(t, torch.Tensor):
                return t
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

        return JacobianBucket(**{f.name: conv(getattr(self, f.name)) for f in fields(self)})


def _add_pair_forces(f: torch.Tensor, b: JacobianBucket, rad, vec) -> torch.Tensor:
    """``f`` plus the forces of one bucket's pair terms ∂E/∂d_p: +∂E/∂d_p on the centre,
    −∂E/∂d_p on the neighbour (d_p = x_j − x_i + S_p h)."""
    if rad is not None:
        f = f.index_add(0, b.radial_centres, rad).index_add(0, b.radial_neighbours, -rad)
    if vec is not None:
        f = f.index_add(0, b.vector_centres, vec).index_add(0, b.vector_neighbours, -vec)
    return f


@dataclass
class PairJacobian:
    r"""Pair Jacobian :math:`\partial G_{i(p)f}/\partial\mathbf d_p` of a batch, one
    :class:`JacobianBucket` per (centre element, neighbour element)."""

    buckets: list[JacobianBucket]
    n_pairs: int

    def pair_gradient(self, de_dg: torch.Tensor) -> torch.Tensor:
        """∂E/∂d_p ([P, 3]) from ∂E/∂G ([N, F])."""
        out = torch.zeros(self.n_pairs, 3, dtype=de_dg.dtype, device=de_dg.device)
        for b in self.buckets:
            rad, vec = b.pair_vectors(de_dg)
            if rad is not None:
                out = out.index_add(0, b.radial_pairs, rad)
            if vec is not None:
                out = out.index_add(0, b.vector_pairs, vec)
        return out

    def forces(self, de_dg: torch.Tensor, n_atoms: int) -> torch.Tensor:
        """Forces −∂E/∂x ([N, 3]) from ∂E/∂G, without a per-pair intermediate."""
        f = torch.zeros(n_atoms, 3, dtype=de_dg.dtype, device=de_dg.device)
        for b in self.buckets:
            f = _add_pair_forces(f, b, *b.pair_vectors(de_dg))
        return f

    def forces_columns(self, de_dg: torch.Tensor, n_atoms: int) -> torch.Tensor:
        """:meth:`forces` of K columns at once: ``de_dg`` [N, F, K] → [N, 3, K]."""
        f = torch.zeros(n_atoms, 3, de_dg.shape[-1], dtype=de_dg.dtype, device=de_dg.device)
        for b in self.buckets:
            f = _add_pair_forces(f, b, *b.pair_vectors_columns(de_dg))
        return f

    def transpose_forces(self, v: torch.Tensor, n_features: int) -> torch.Tensor:
        """The transpose of the force map, [N, F, M], for force-space vectors ``v``
        [N, 3, M] (see :meth:`JacobianBucket.transpose_forces`)."""
        out = v.new_zeros(v.shape[0], n_features, v.shape[-1])
        for b in self.buckets:
            b.transpose_forces(v, out)
        return out

    def to(self, device=None, dtype=None) -> PairJacobian:
        return PairJacobian([b.to(device, dtype) for b in self.buckets], self.n_pairs)

    def memory_bytes(self) -> int:
        return sum(getattr(b, f.name).numel() * getattr(b, f.name).element_size()
                   for b in self.buckets for f in fields(b)
                   if isinstance(getattr(b, f.name), torch.Tensor))


def accumulate_pair_gradient(de_dd: torch.Tensor, pair_centres: torch.Tensor,
                             neighbours: torch.Tensor, forces: torch.Tensor,
                             vectors: torch.Tensor | None = None,
                             pair_structure: torch.Tensor | None = None,
                             virial: torch.Tensor | None = None,
                             atomic_virial: torch.Tensor | None = None) -> None:
    r"""Add the forces :math:`\mathbf F_i \mathrel{+}= \mathbf g_p`,
    :math:`\mathbf F_j \mathrel{-}= \mathbf g_p` of pair gradients
    :math:`\mathbf g_p = \partial E/\partial\mathbf d_p` (F = −∂E/∂x) in place, and
    optionally the per-structure strain derivative :math:`\sum_p \mathbf g_p\otimes\mathbf d_p`
    and the per-atom virial of each centre's atomic energy (eV).

    On the CPU one serial compiled loop (the same summation order for any thread count).
    """
    want_v = virial is not None
    if forces.device.type == "cpu" and forces.dtype == torch.float64 and de_dd.is_contiguous():
        from hdnnp.descriptors import kernels

        v = virial if want_v else torch.zeros(0, 3, 3, dtype=torch.float64)
        kernels.scatter_pair_gradient(
            de_dd.detach().numpy(), pair_centres.numpy(), neighbours.numpy(),
            (pair_structure if want_v else pair_centres).numpy(),
            (vectors if want_v else de_dd).detach().numpy(), forces.numpy(), v.numpy())
    else:
        forces.index_add_(0, pair_centres, de_dd)
        forces.index_add_(0, neighbours, -de_dd)
        if want_v:
            virial.index_add_(0, pair_structure, de_dd.unsqueeze(-1) * vectors.unsqueeze(-2))
    if atomic_virial is not None:
        atomic_virial.index_add_(0, pair_centres, de_dd.unsqueeze(-1) * vectors.unsqueeze(-2))


def batch_pair_vectors(batch: StructureBatch) -> torch.Tensor:
    """The pair vectors of a batch (:meth:`StructureBatch.pair_vectors`, [P, 3] Å, not
    differentiable); on the CPU in float64 by a parallel kernel (the tensor version is
    serial and was ~5 % of an 8640-atom water call on two threads)."""
    pos = batch.positions
    if pos.device.type != "cpu" or pos.dtype != torch.float64 or pos.requires_grad:
        return batch.pair_vectors().detach()
    from hdnnp.descriptors import kernels

    out = np.empty((batch.centers.shape[0], 3))
    kernels.pair_vectors(pos.detach().numpy(), batch.cells.detach().numpy(),
                         batch.structure_index.numpy(), batch.centers.numpy(),
                         batch.neighbours.numpy(), batch.cell_shifts.detach().to(
                             torch.float64).numpy(), out)
    return torch.from_numpy(out)


_KERNELS_WARM = False


def warm_up_batch(descriptor: Descriptor) -> StructureBatch:
    """Three atoms of the first element, each within the cutoff of the others: the
    structure on which the compiled kernels are loaded once per process."""
    f64, i64 = dict(dtype=torch.float64), dict(dtype=torch.int64)
    r = 0.5 * descriptor.layout.max_cutoff
    return StructureBatch(
        positions=torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0], [0.0, r, 0.0]], **f64),
        cells=torch.zeros(1, 3, 3, **f64), species=torch.zeros(3, **i64),
        structure_index=torch.zeros(3, **i64), n_atoms=torch.tensor([3], **i64),
        centers=torch.tensor([0, 0, 1, 1, 2, 2], **i64),
        neighbours=torch.tensor([1, 2, 0, 2, 0, 1], **i64), cell_shifts=torch.zeros(6, 3, **f64))


def _warm_up_kernels(descriptor: Descriptor) -> None:
    """Load the compiled kernels once per process, when the first descriptor is built.

    Numba compiles each kernel once into its on-disk cache (``cache=True``), but every new
    process still pays ~0.3–0.7 s to load and link the cached machine code on the first call
    of each kernel.  Paying it here, on a dimer through the real path (features, pair
    gradient, force scatter), moves that one-time cost from the first energy call to the
    set-up (reading a potential), as n2p2 does its set-up before the first prediction.
    """
    global _KERNELS_WARM
    if _KERNELS_WARM or descriptor.layout.max_cutoff <= 0.0:
        return
    _KERNELS_WARM = True
    f64 = dict(dtype=torch.float64)
    batch = warm_up_batch(descriptor)
    forces = torch.zeros(3, 3, **f64)
    batch_pair_vectors(batch)
    for block in descriptor.evaluate(batch):
        de_dd = block.pair_gradient(torch.ones_like(block.features)).contiguous()
        accumulate_pair_gradient(de_dd, batch.centers[block.pairs], batch.neighbours[block.pairs],
                                 forces, batch.pair_vectors()[block.pairs],
                                 batch.structure_index[batch.centers[block.pairs]],
                                 torch.zeros(1, 3, 3, **f64))


class TripletStore:
    """The triplet store and pair caches of a sequence of blocks, allocated once and reused.

    A block's store is ~10⁶ slots × (8 B + 8 B × rows), tens of MB, and its pair caches a
    few MB: allocated afresh for every block they are returned to the system and faulted
    in again, which cost ~15 % of an 8640-atom water call (0.28 s of page faults for 38
    blocks).  Blocks of one :meth:`Descriptor.evaluate` are used one after another, so
    they share one store; a block whose store was handed on can no longer compute its
    pair gradient (it says so).
    """

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}
        self._owner: KernelBlock | None = None

    def claim(self, owner: KernelBlock) -> None:
        """Hand the store to ``owner``, releasing the block that held it."""
        if self._owner is not None and self._owner is not owner:
            self._owner.release()
        self._owner = owner

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        """A C-contiguous view of ``shape`` at the front of the reused buffer ``name``
        (the kernels are compiled for contiguous arrays); contents undefined."""
        size = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(max(size, 1), dtype=dtype)
        return buf[:size].reshape(shape)

    def take(self, owner: KernelBlock, slots: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(tidx [2, slots], tval [rows, slots]) for ``owner``."""
        self.claim(owner)
        return self.array("tidx", (2, slots), np.int32), self.array("tval", (rows, slots))


class KernelBlock(DescriptorBlock):
    """A block evaluated by the compiled kernels (CPU)."""

    def __init__(self, descriptor: Descriptor, batch: StructureBatch, vectors: np.ndarray,
                 offsets: np.ndarray, i0: int, i1: int, jacobian: bool = False,
                 store: TripletStore | None = None,
                 neighbour_species: np.ndarray | None = None, first_pass: bool = True):
        """``first_pass=False``: only the pair caches and the triplet capacities, for a
        caller that runs the passes itself (:meth:`hdnnp.network_kernels.PackedNetworks.
        block_forces`); such a block has no features until then and no pair gradient."""
        from hdnnp.descriptors import kernels

        plan, layout = descriptor.plan, descriptor.layout
        p0, p1 = int(offsets[i0]), int(offsets[i1])
        self.centres, self.pairs = slice(i0, i1), slice(p0, p1)
        self.plan = plan
        store = store or TripletStore()
        store.claim(self)
        species = batch.species.numpy()
        self.centre_species = np.ascontiguousarray(species[i0:i1])
        if neighbour_species is None:  # the neighbours' element indices, pair by pair
            neighbour_species = species[batch.neighbours.numpy()]
        self._nspec = np.ascontiguousarray(neighbour_species[p0:p1])
        vec = np.ascontiguousarray(vectors[p0:p1])
        off = np.ascontiguousarray(offsets[i0:i1 + 1] - p0)
        n, p = i1 - i0, p1 - p0
        S = plan.n_species
        a = store.array
        self.r, self.inv_r, self.u = a("r", (p,)), a("inv_r", (p,)), a("u", (p, 3))
        self.fc, self.dfc = a("fc", (p, layout.n_cutoffs)), a("dfc", (p, layout.n_cutoffs))
        self.ex = a("ex", (p, layout.n_etas))
        self.cw, self.dcw = a("cw", (p, layout.n_windows)), a("dcw", (p, layout.n_windows))
        self.sp_off = np.empty((n, S + 1), dtype=np.int64)
        capacity = np.empty(n, dtype=np.int64)
        kernels.pair_cache(plan, self.centre_species, off, vec, self._nspec, self.r, self.inv_r,
                           self.u, self.fc, self.dfc, self.ex, self.cw, self.dcw, self.sp_off,
                           capacity)
        self.tstart = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(capacity, out=self.tstart[1:])
        self.store_rows = 4 + layout.max_group_etas
        self.n_groups = max(1, layout.groups_per_element)
        self.n_features = plan.n_features
        if not first_pass:
            self.tidx = self.tval = self.features = None
            return
        slots = int(self.tstart[-1])
        self.tidx, self.tval = store.take(self, slots, self.store_rows)
        self.tcount = np.zeros((n, self.n_groups), dtype=np.int64)
        g = np.zeros((n, plan.n_features))
        if jacobian:
            self.jacobian = self._jacobian(descriptor, g)
        else:
            kernels.features(plan, self.centre_species, self.r, self.u, self.fc, self.dfc, self.ex,
                             self.cw, self.dcw, self.sp_off, self.tstart, self.tidx, self.tval,
                             self.tcount, g)
        self.features = torch.from_numpy(g)

    def pair_gradient(self, de_dg: torch.Tensor) -> torch.Tensor:
        from hdnnp.descriptors import kernels

        if self.tval is None:
            raise RuntimeError("this descriptor block has no triplet store: it was released "
                               "(its store went to a later block of the same evaluate(); use "
                               "each block before taking the next) or made without its first "
                               "pass")
        c = np.ascontiguousarray(de_dg.detach().to(torch.float64).numpy())
        grad = np.empty(3 * self.r.shape[0])
        kernels.pair_gradient(self.plan, self.centre_species, self.r, self.inv_r, self.u, self.fc,
                              self.dfc, self.ex, self.cw, self.dcw, self.sp_off, self.tstart,
                              self.tidx, self.tval, self.tcount, c, grad)
        return torch.from_numpy(grad.reshape(-1, 3))

    def release(self) -> None:
        """Free the triplet store and pair caches."""
        for name in ("tidx", "tval", "r", "inv_r", "u", "ex", "cw", "dcw", "fc", "dfc"):
            setattr(self, name, None)

    def _jacobian(self, descriptor: Descriptor, g: np.ndarray):
        """(radial rows, vector rows) of the block: per pair, the derivative of every
        column its (centre, neighbour) element pair reaches."""
        from hdnnp.descriptors import kernels

        layout, plan = descriptor.layout, self.plan
        S = plan.n_species
        cpair = np.repeat(self.centre_species, np.diff(self.sp_off[:, [0, S]], axis=1).ravel()
                          ) if self.r.size else np.zeros(0, dtype=np.int64)
        key = cpair * S + self._nspec
        n_r = np.array([len(layout.radial_columns[c][s]) for c in range(S) for s in range(S)],
                       dtype=np.int64)
        n_v = np.array([len(layout.vector_columns[c][s]) for c in range(S) for s in range(S)],
                       dtype=np.int64)
        rcut = layout.extras["radial_cutoff"].ravel()
        vcut = layout.vector_cutoff.ravel()
        has_r = (n_r[key] > 0) & (self.r < rcut[key])
        has_v = (n_v[key] > 0) & (self.r < vcut[key])
        lr = np.where(has_r, n_r[key], 0)
        lv = np.where(has_v, 3 * n_v[key], 0)
        jr_off = np.concatenate([[0], np.cumsum(lr)[:-1]]) if lr.size else lr
        jv_off = np.where(has_v, np.concatenate([[0], np.cumsum(lv)[:-1]]) if lv.size else lv,
                          -1)
        jr = np.zeros(int(lr.sum()))
        jv = np.zeros(int(lv.sum()))
        kernels.jacobian(plan, self.centre_species, self._nspec, self.r, self.inv_r, self.u,
                         self.fc, self.dfc, self.ex, self.cw, self.dcw, self.sp_off, self.tstart,
                         self.tidx, self.tval, g, jr, jr_off, jv, jv_off)
        return dict(key=key, has_r=has_r, has_v=has_v, jr=jr, jr_off=jr_off, jv=jv,
                    jv_off=jv_off, n_r=n_r, n_v=n_v)


class Descriptor(torch.nn.Module):
    """Base class: per-element feature layout and the term plan of a descriptor.

    Subclasses fill ``self.feature_names`` (one list per element) and call
    :meth:`_set_terms` with their radial and angular terms.  Features of element *e*
    occupy columns ``0 .. n_features(e) - 1``; a batch's feature matrix is ``[N, F_max]``
    with zero padding.
    """

    #: Name under which the descriptor is stored in potential files.
    kind: str = "descriptor"

    def __init__(self, elements: Sequence[str]):
        super().__init__()
        self.elements: tuple[str, ...] = tuple(elements)
        self.feature_names: dict[str, list[str]] = {e: [] for e in self.elements}
        self._plan_cache: tuple | None = None

    # ------------------------------------------------------------------ layout
    def _set_terms(self, radial: list[RadialTerm], angular: list[AngularTerm]) -> None:
        plan, layout = build_plan(len(self.elements), self.max_features, radial, angular)
        S = len(self.elements)
        rcut = np.zeros((S, S))
        for t in radial:
            for s in range(S) if t.neighbour is None else [t.neighbour]:
                rcut[t.center, s] = max(rcut[t.center, s], t.support)
        layout.extras["radial_cutoff"] = rcut
        self.layout: PlanLayout = layout
        self._plan_scalars = (plan.n_species, plan.n_features, plan.max_local, plan.max_lz)
        for name, value in plan._asdict().items():
            if isinstance(value, np.ndarray):
                self.register_buffer(_PLAN_PREFIX + name, torch.from_numpy(value.copy()))
        self._plan_cache = None
        _warm_up_kernels(self)

    def _apply(self, fn, recurse=True):
        # device moves apply to the plan; its parameters stay float64 (and integer tables)
        out = super()._apply(fn, recurse)
        for name, buf in list(out._buffers.items()):
            if name.startswith(_PLAN_PREFIX) and buf is not None and buf.is_floating_point():
                out._buffers[name] = buf.to(torch.float64)
        out._plan_cache = None
        return out

    @property
    def plan(self) -> TermPlan:
        """The term plan as NumPy arrays (CPU copies of the buffers) for the kernels."""
        if self._plan_cache is None:
            arrays = {name[len(_PLAN_PREFIX):]: buf.detach().cpu().numpy()
                      for name, buf in self._buffers.items() if name.startswith(_PLAN_PREFIX)}
            n_species, n_features, max_local, max_lz = self._plan_scalars
            self._plan_cache = TermPlan(n_species=n_species, n_features=n_features,
                                        max_local=max_local, max_lz=max_lz, **arrays)
        return self._plan_cache

    def plan_tensors(self) -> dict[str, torch.Tensor]:
        """The plan's tables as the registered buffers (on the module's device)."""
        return {name[len(_PLAN_PREFIX):]: buf for name, buf in self._buffers.items()
                if name.startswith(_PLAN_PREFIX)}

    def n_features(self, element: str) -> int:
        return len(self.feature_names[element])

    @property
    def max_features(self) -> int:
        return max((self.n_features(e) for e in self.elements), default=0)

    @property
    def cutoff(self) -> float:
        """Largest support of any term (Å): the neighbour-list cutoff."""
        return self.layout.max_cutoff

    @property
    def angular_cutoff(self) -> float:
        return self.layout.max_angular_cutoff

    # ------------------------------------------------------------- evaluation
    def uses_kernels(self, device: torch.device) -> bool:
        return device.type == "cpu"

    def evaluate(self, batch: StructureBatch, vectors: torch.Tensor | None = None,
                 budget: float | None = None, first_pass: bool = True
                 ) -> Iterator[DescriptorBlock]:
        """The blocks of a batch (centre atoms in order, pairs sorted by centre), each with
        its features and pair gradient; compiled kernels on the CPU, the tensor path
        elsewhere.  The kernel blocks share one triplet store (:class:`TripletStore`): use
        each block's pair gradient before taking the next block.  ``first_pass=False``
        (CPU kernels only) gives blocks with their pair caches only (see
        :class:`KernelBlock`)."""
        if budget is None:
            budget = BLOCK_TRIPLETS if first_pass else BLOCK_TRIPLETS_WITHOUT_STORE
        if vectors is None:
            vectors = batch.pair_vectors()
        vectors = vectors.detach()
        offsets = pair_offsets(batch.centers, batch.n_total_atoms).cpu().numpy()
        kernels_ok = self.uses_kernels(vectors.device)
        store = TripletStore()
        vec64 = vectors.to(torch.float64).numpy() if kernels_ok else None
        nspec = batch.species.numpy()[batch.neighbours.numpy()] if kernels_ok else None
        for i0, i1 in centre_blocks(offsets, budget, self.layout.max_groups_per_pair):
            if kernels_ok:
                yield KernelBlock(self, batch, vec64, offsets, i0, i1, store=store,
                                  neighbour_species=nspec, first_pass=first_pass)
            else:
                from hdnnp.descriptors.tensor import TensorBlock

                yield TensorBlock(self, batch, vectors, offsets, i0, i1)

    def forward(self, batch: StructureBatch, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Feature matrix ``[N, F_max]``; differentiable with respect to ``vectors`` when
        they require gradients (tensor path), otherwise from the kernels on the CPU."""
        if vectors is not None and vectors.requires_grad:
            from hdnnp.descriptors.tensor import tensor_features

            return tensor_features(self, batch, vectors)
        dtype = batch.positions.dtype
        g = torch.zeros(batch.n_total_atoms, self.max_features, dtype=dtype,
                        device=batch.positions.device)
        for block in self.evaluate(batch, vectors):
            g[block.centres] = block.features.to(dtype=dtype, device=g.device)
        return g

    @torch.no_grad()
    def features_and_jacobian(self, batch: StructureBatch,
                              jacobian_dtype: torch.dtype | None = None
                              ) -> tuple[torch.Tensor, PairJacobian]:
        """Features ``[N, F_max]`` and the :class:`PairJacobian` of a batch (computed on
        the CPU; ``jacobian_dtype``, e.g. ``torch.float32``, sets its storage precision)."""
        device = batch.positions.device
        dtype = batch.positions.dtype
        jdtype = jacobian_dtype or dtype
        cpu = batch.to(device="cpu", dtype=torch.float64)
        vectors = cpu.pair_vectors().numpy()
        offsets = pair_offsets(cpu.centers, cpu.n_total_atoms).numpy()
        S = len(self.elements)
        parts = {k: [] for k in ("key", "has_r", "has_v", "jr", "jv", "lr", "lv")}
        g = torch.zeros(cpu.n_total_atoms, self.max_features, dtype=torch.float64)
        store = TripletStore()
        nspec = cpu.species.numpy()[cpu.neighbours.numpy()]
        for i0, i1 in centre_blocks(offsets, BLOCK_TRIPLETS, self.layout.max_groups_per_pair):
            blk = KernelBlock(self, cpu, vectors, offsets, i0, i1, jacobian=True, store=store,
                              neighbour_species=nspec)
            g[i0:i1] = blk.features
            j = blk.jacobian
            for k in ("key", "has_r", "has_v", "jr", "jv"):
                parts[k].append(j[k])
            blk.release()
        key = np.concatenate(parts["key"]) if parts["key"] else np.zeros(0, dtype=np.int64)
        has_r = np.concatenate(parts["has_r"]) if parts["has_r"] else np.zeros(0, dtype=bool)
        has_v = np.concatenate(parts["has_v"]) if parts["has_v"] else np.zeros(0, dtype=bool)
        jr = np.concatenate(parts["jr"]) if parts["jr"] else np.zeros(0)
        jv = np.concatenate(parts["jv"]) if parts["jv"] else np.zeros(0)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True) if len(vectors) else \
            np.zeros((0, 3))
        centres = cpu.centers.numpy()
        neigh = cpu.neighbours.numpy()
        # rows are stored pair by pair in pair order: bucket b's rows are those of its pairs
        n_r = np.array([len(self.layout.radial_columns[c][s]) for c in range(S)
                        for s in range(S)], dtype=np.int64)
        n_v = np.array([len(self.layout.vector_columns[c][s]) for c in range(S)
                        for s in range(S)], dtype=np.int64)
        lr = np.where(has_r, n_r[key], 0)
        lv = np.where(has_v, 3 * n_v[key], 0)
        r_start = np.concatenate([[0], np.cumsum(lr)])[:-1]
        v_start = np.concatenate([[0], np.cumsum(lv)])[:-1]
        buckets = []

        def t(x, dt=None):
            return torch.as_tensor(np.ascontiguousarray(x), dtype=dt, device=device)

        for b in range(S * S):
            c, s = divmod(b, S)
            rp = np.flatnonzero(has_r & (key == b))
            vp = np.flatnonzero(has_v & (key == b))
            if rp.size == 0 and vp.size == 0:
                continue
            nr, nv = int(n_r[b]), int(n_v[b])
            ridx = (r_start[rp, None] + np.arange(nr)).ravel() if rp.size else \
                np.zeros(0, dtype=np.int64)
            vidx = (v_start[vp, None] + np.arange(3 * nv)).ravel() if vp.size else \
                np.zeros(0, dtype=np.int64)
            buckets.append(JacobianBucket(
                radial_columns=t(self.layout.radial_columns[c][s], torch.long),
                radial_pairs=t(rp, torch.long), radial_centres=t(centres[rp], torch.long),
                radial_neighbours=t(neigh[rp], torch.long),
                radial=t(jr[ridx].reshape(rp.size, nr), jdtype), unit=t(unit[rp], jdtype),
                vector_columns=t(self.layout.vector_columns[c][s], torch.long),
                vector_pairs=t(vp, torch.long), vector_centres=t(centres[vp], torch.long),
                vector_neighbours=t(neigh[vp], torch.long),
                vector=t(jv[vidx].reshape(vp.size, nv, 3), jdtype), elements=(c, s)))
        return g.to(device=device, dtype=dtype), PairJacobian(buckets, int(centres.shape[0]))

    # ---------------------------------------------------------- serialisation
    def to_config(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        lines = [f"{self.kind} descriptor, cutoff {self.cutoff:.3f} Å"]
        for e in self.elements:
            lines.append(f"  {e}: {self.n_features(e)} features")
        return "\n".join(lines)
