r"""The descriptor engine shared by all atomic-environment descriptors.

A descriptor maps the environment of every atom *i* to a feature vector
:math:`\mathbf G_i`.  All descriptors here are sums of two kinds of terms over the
neighbour list of a :class:`~hdnnp.neighbours.StructureBatch`:

* **radial terms** over pairs :math:`p = (i, j)`: :math:`\phi(r_{ij})`;
* **angular terms** over triplets, i.e. unordered pairs of list entries
  :math:`(p, q) = ((i, j), (i, k))` that share their centre atom:
  :math:`\psi(r_{ij}, r_{ik}, r_{jk}, \cos\theta_{ijk})`.

Terms come in *groups*: one group per centre element and neighbour element (or
element pair), evaluating many functions of the same kind at once as a
``[pairs, functions]`` tensor.  Everything is vectorised over pairs and triplets;
the only Python loops run over groups.

Besides the values, the engine provides the **pair Jacobian**
:math:`\partial \mathbf G_{i(p)} / \partial \mathbf d_p` for every pair vector
:math:`\mathbf d_p = \mathbf r_j - \mathbf r_i` (see :class:`PairJacobian`).  With it,
forces and stress need only the network's :math:`\partial E/\partial \mathbf G`:

.. math::

    \frac{\partial E}{\partial \mathbf d_p} = \sum_f
        \frac{\partial E}{\partial G_{i(p) f}} \frac{\partial G_{i(p) f}}{\partial \mathbf d_p},
    \qquad
    \mathbf F_a = \sum_{p: i(p) = a} \frac{\partial E}{\partial \mathbf d_p}
                - \sum_{p: j(p) = a} \frac{\partial E}{\partial \mathbf d_p},

so force training computes the Jacobian once per data set and contracts it every
epoch instead of differentiating the descriptor twice per step.  Radial terms have
Jacobians :math:`\phi'(r)\,\hat{\mathbf d}_p` and are stored as scalars; angular terms
as full 3-vectors.  The Jacobian is obtained by forward-mode automatic
differentiation (``torch.func.jvp``) of the per-pair / per-triplet term functions,
which is exact and needs no hand-written derivative per function type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch.func import jvp

from hdnnp.neighbours import StructureBatch, segments, triplet_pairs

RadialFunction = Callable[[torch.Tensor], torch.Tensor]
AngularFunction = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]


class PairGeometry:
    """Pair vectors of a batch with the derived quantities descriptors need.

    ``vectors`` may require gradients (forces by autograd); triplet index lists are
    built without gradients and cached per cutoff.
    """

    def __init__(self, batch: StructureBatch, vectors: torch.Tensor):
        self.batch = batch
        self.vectors = vectors
        self.distances = torch.linalg.vector_norm(vectors, dim=-1)
        self.centers = batch.centers
        self.neighbours = batch.neighbours
        self.center_species = batch.species[batch.centers]
        self.neighbour_species = batch.species[batch.neighbours]
        self.n_atoms = batch.n_total_atoms
        #: per-geometry cache for index lists (descriptors may store their own entries)
        self.cache: dict = {}

    @property
    def n_pairs(self) -> int:
        return int(self.vectors.shape[0])

    def pair_subsets(self, cutoff: float) -> dict:
        """Pair indices (in list order) shorter than ``cutoff`` for every centre element c
        and neighbour element x: keys ``(c, x)``, and ``(c, None)`` for all neighbours."""
        key = ("pairs", float(cutoff))
        if key not in self.cache:
            with torch.no_grad():
                inside = self.distances.detach() < cutoff
                n_species = int(self.batch.species.max()) + 1 if self.n_atoms else 0
                subsets = {}
                for c in range(n_species):
                    is_c = inside & (self.center_species == c)
                    subsets[c, None] = torch.nonzero(is_c).squeeze(1)
                    for x in range(n_species):
                        subsets[c, x] = torch.nonzero(
                            is_c & (self.neighbour_species == x)).squeeze(1)
            self.cache[key] = subsets
        return self.cache[key]

    def triplets(self, center: int, neighbours: tuple[int, int] | None, cutoff: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair-index lists (a, b) of the triplets (i; j, k) with centre element
        ``center``, neighbour elements ``neighbours`` (unordered; ``None``: any) and both
        legs shorter than ``cutoff``; every unordered pair of list entries once.

        The triplets of each element combination are enumerated directly from the pairs
        of that combination (vectorised index arithmetic, no Python loop over atoms).
        """
        subsets = self.pair_subsets(cutoff)
        empty = torch.zeros(0, dtype=torch.long, device=self.vectors.device)
        if (center, None) not in subsets:
            return empty, empty
        with torch.no_grad():
            if neighbours is None or neighbours[0] == neighbours[1]:
                pairs = subsets[center, None if neighbours is None else neighbours[0]]
                ia, ib = triplet_pairs(self.centers[pairs], self.n_atoms)
                return pairs[ia], pairs[ib]
            px, py = subsets[center, neighbours[0]], subsets[center, neighbours[1]]
            if px.numel() == 0 or py.numel() == 0:
                return empty, empty
            cx = self.centers[px]
            count_y = torch.bincount(self.centers[py], minlength=self.n_atoms)
            start_y = torch.cumsum(count_y, 0) - count_y
            ia, local = segments(count_y[cx])
            return px[ia], py[start_y[cx][ia] + local]


def triplet_geometry(
    d_ij: torch.Tensor, d_ik: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(r_ij, r_ik, r_jk, cos θ_ijk) from the two pair vectors of a triplet."""
    r_ij = torch.linalg.vector_norm(d_ij, dim=-1)
    r_ik = torch.linalg.vector_norm(d_ik, dim=-1)
    r_jk = torch.linalg.vector_norm(d_ik - d_ij, dim=-1)
    cos = (d_ij * d_ik).sum(-1) / (r_ij * r_ik)
    return r_ij, r_ik, r_jk, cos


def triplet_jacobian(fn: AngularFunction, d_ij: torch.Tensor, d_ik: torch.Tensor):
    r"""Values ``[T, K]`` of an angular term and its derivatives with respect to the two
    pair vectors, ``[T, K, 3]`` each.

    The four partial derivatives of ``fn`` with respect to its scalar arguments
    :math:`(r_{ij}, r_{ik}, r_{jk}, \cos\theta)` come from forward-mode automatic
    differentiation (one ``jvp`` per argument, unit tangents); the geometry derivatives
    are analytic:

    .. math::

        \frac{\partial r_{ij}}{\partial \mathbf d_{ij}} = \hat{\mathbf u}_{ij},\quad
        \frac{\partial r_{jk}}{\partial \mathbf d_{ij}} = -\hat{\mathbf u}_{jk},\quad
        \frac{\partial \cos\theta}{\partial \mathbf d_{ij}} =
            \frac{\hat{\mathbf u}_{ik} - \cos\theta\,\hat{\mathbf u}_{ij}}{r_{ij}}

    (and the same with j ↔ k, :math:`\partial r_{jk}/\partial \mathbf d_{ik} =
    +\hat{\mathbf u}_{jk}`).
    """
    r_ij, r_ik, r_jk, cos = triplet_geometry(d_ij, d_ik)
    args = (r_ij, r_ik, r_jk, cos)
    vals = fn(*args)
    ones, zeros = torch.ones_like(r_ij), torch.zeros_like(r_ij)
    partial = []
    for k in range(4):
        tangents = tuple(ones if m == k else zeros for m in range(4))
        partial.append(jvp(fn, args, tangents)[1].unsqueeze(-1))  # [T, K, 1]
    u_ij = (d_ij / r_ij.unsqueeze(-1)).unsqueeze(1)
    u_ik = (d_ik / r_ik.unsqueeze(-1)).unsqueeze(1)
    u_jk = ((d_ik - d_ij) / r_jk.unsqueeze(-1)).unsqueeze(1)
    c = cos.view(-1, 1, 1)
    dcos_j = (u_ik - c * u_ij) / r_ij.view(-1, 1, 1)
    dcos_k = (u_ij - c * u_ik) / r_ik.view(-1, 1, 1)
    dj = partial[0] * u_ij - partial[2] * u_jk + partial[3] * dcos_j
    dk = partial[1] * u_ik + partial[2] * u_jk + partial[3] * dcos_k
    return vals, dj, dk


@dataclass
class GroupOutput:
    """Where a group's function values go: feature ``columns`` of the centre atom,
    multiplied by a per-neighbour-species ``weights`` vector (radial) or matrix
    (angular, indexed [species_j, species_k]); ``None`` means weight 1."""

    columns: torch.Tensor
    weights: torch.Tensor | None = None


@dataclass
class RadialGroup:
    """Radial terms for one centre element.

    ``neighbour`` selects the neighbour element (``None``: all neighbours, usually with
    per-species ``weights`` in the outputs).  ``fn(r)`` returns ``[P, K]`` values and
    must vanish for r ≥ ``cutoff``.
    """

    center: int
    neighbour: int | None
    cutoff: float
    fn: RadialFunction
    outputs: list[GroupOutput]


@dataclass
class AngularGroup:
    """Angular terms for one centre element over triplets (i; j, k), each unordered
    pair of list entries once.

    ``neighbours`` is the unordered element pair of j and k (``None``: all triplets,
    usually with a weight matrix).  ``fn(r_ij, r_ik, r_jk, cos)`` returns ``[T, K]``;
    it must be symmetric under j ↔ k and vanish when r_ij or r_ik ≥ ``cutoff``.
    """

    center: int
    neighbours: tuple[int, int] | None
    cutoff: float
    fn: AngularFunction
    outputs: list[GroupOutput]


@dataclass
class PairJacobian:
    r"""Pair Jacobian :math:`\partial G_{i(p) f} / \partial \mathbf d_p` of a batch.

    ``radial[p, c]`` holds :math:`\partial G / \partial r_p` for feature
    ``radial_columns[c]`` (its vector is that times :math:`\hat{\mathbf d}_p`);
    ``vector[v, c, :]`` holds the full derivative for pair ``vector_pairs[v]`` and
    feature ``vector_columns[c]``.
    """

    radial_columns: torch.Tensor
    radial: torch.Tensor
    unit_vectors: torch.Tensor
    vector_columns: torch.Tensor
    vector_pairs: torch.Tensor
    vector: torch.Tensor
    centers: torch.Tensor
    neighbours: torch.Tensor

    def pair_gradient(self, de_dg: torch.Tensor) -> torch.Tensor:
        r"""∂E/∂d_p ([P, 3]) from ∂E/∂G ([N, F]).

        The contraction runs in the Jacobian's storage precision (float32 halves memory
        traffic in force training); the result is returned in ``de_dg``'s dtype.
        """
        dtype = de_dg.dtype
        jd = self.radial.dtype if self.radial.numel() else self.vector.dtype
        out = torch.zeros(self.centers.shape[0], 3, dtype=dtype, device=de_dg.device)
        if self.radial_columns.numel():
            g = de_dg[:, self.radial_columns].to(jd)[self.centers]
            s = (g * self.radial).sum(-1)
            out = out + (s.unsqueeze(-1) * self.unit_vectors).to(dtype)
        if self.vector_columns.numel() and self.vector_pairs.numel():
            gv = de_dg[:, self.vector_columns].to(jd)[self.centers[self.vector_pairs]]
            out = out.index_add(
                0, self.vector_pairs, torch.einsum("pf,pfc->pc", gv, self.vector).to(dtype))
        return out

    def to(self, device=None, dtype=None) -> PairJacobian:
        def conv(t):
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

        return PairJacobian(**{k: conv(v) for k, v in self.__dict__.items()})


def forces_from_pair_gradient(
    de_dd: torch.Tensor, centers: torch.Tensor, neighbours: torch.Tensor, n_atoms: int
) -> torch.Tensor:
    """Forces F = -∂E/∂x from ∂E/∂d_p, with d_p = x_j - x_i + shift ([N, 3])."""
    f = torch.zeros(n_atoms, 3, dtype=de_dd.dtype, device=de_dd.device)
    f = f.index_add(0, centers, de_dd)
    return f.index_add(0, neighbours, -de_dd)


def virial_from_pair_gradient(
    de_dd: torch.Tensor, vectors: torch.Tensor, pair_structure: torch.Tensor, n_structures: int
) -> torch.Tensor:
    r"""Strain derivative :math:`\partial E/\partial\varepsilon_{ab} = \sum_p
    (\partial E/\partial d_{p,a})\, d_{p,b}` per structure ([B, 3, 3], eV)."""
    w = torch.zeros(n_structures, 3, 3, dtype=de_dd.dtype, device=de_dd.device)
    return w.index_add(0, pair_structure, de_dd.unsqueeze(-1) * vectors.unsqueeze(-2))


def _positions(index: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Inverse of an index list: out[index[k]] = k, -1 elsewhere."""
    n = size if size is not None else (int(index.max()) + 1 if index.numel() else 0)
    out = torch.full((max(n, 1),), -1, dtype=torch.long, device=index.device)
    out[index] = torch.arange(index.numel(), device=index.device)
    return out


@dataclass
class _JacobianAccumulator:
    n_pairs: int
    radial_columns: torch.Tensor
    vector_columns: torch.Tensor
    vector_pairs: torch.Tensor
    dtype: torch.dtype
    device: torch.device
    radial: torch.Tensor = field(init=False)
    vector: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.radial = torch.zeros(
            self.n_pairs, self.radial_columns.numel(), dtype=self.dtype, device=self.device
        )
        self.vector = torch.zeros(
            self.vector_pairs.numel(), self.vector_columns.numel(), 3,
            dtype=self.dtype, device=self.device,
        )
        self._rpos = _positions(self.radial_columns)
        self._vpos = _positions(self.vector_columns)
        self._pair_pos = _positions(self.vector_pairs, self.n_pairs)

    def add_radial(self, pairs: torch.Tensor, columns: torch.Tensor, d: torch.Tensor) -> None:
        # each pair appears once per group, so a plain indexed add is exact
        self.radial[pairs.unsqueeze(1), self._rpos[columns].unsqueeze(0)] += d.to(self.dtype)

    def add_vector(self, pairs: torch.Tensor, columns: torch.Tensor, d: torch.Tensor) -> None:
        rows = self._pair_pos[pairs]
        tmp = torch.zeros(self.vector.shape[0], columns.numel(), 3, dtype=self.dtype,
                          device=self.device)
        tmp.index_add_(0, rows, d.to(self.dtype))
        self.vector[:, self._vpos[columns]] += tmp

    def result(self, geom: PairGeometry) -> PairJacobian:
        unit = (geom.vectors / geom.distances.unsqueeze(-1)).detach()
        return PairJacobian(
            radial_columns=self.radial_columns, radial=self.radial,
            unit_vectors=unit.to(self.dtype), vector_columns=self.vector_columns,
            vector_pairs=self.vector_pairs, vector=self.vector, centers=geom.centers,
            neighbours=geom.neighbours,
        )


class Descriptor(torch.nn.Module):
    """Base class: a set of radial and angular term groups with a per-element feature layout.

    Subclasses fill ``self.radial_groups`` / ``self.angular_groups`` (or override
    :meth:`extra_features` for terms that are not plain pair/triplet sums) and
    ``self.feature_names`` (one list per element).  Features of element *e* occupy
    columns ``0 .. n_features(e) - 1``; a batch's feature matrix is ``[N, F_max]``
    with zero padding.
    """

    #: Name under which the descriptor is stored in potential files.
    kind: str = "descriptor"

    def __init__(self, elements: Sequence[str]):
        super().__init__()
        self.elements: tuple[str, ...] = tuple(elements)
        self.radial_groups: list[RadialGroup] = []
        self.angular_groups: list[AngularGroup] = []
        self.feature_names: dict[str, list[str]] = {e: [] for e in self.elements}

    # ------------------------------------------------------------------ layout
    def n_features(self, element: str) -> int:
        return len(self.feature_names[element])

    @property
    def max_features(self) -> int:
        return max((self.n_features(e) for e in self.elements), default=0)

    @property
    def cutoff(self) -> float:
        """Largest cutoff of any term (Å): the neighbour-list cutoff."""
        cuts = [g.cutoff for g in self.radial_groups] + [g.cutoff for g in self.angular_groups]
        cuts += self.extra_cutoffs()
        return max(cuts) if cuts else 0.0

    @property
    def angular_cutoff(self) -> float:
        cuts = [g.cutoff for g in self.angular_groups] + self.extra_angular_cutoffs()
        return max(cuts) if cuts else 0.0

    def extra_cutoffs(self) -> list[float]:
        return []

    def extra_angular_cutoffs(self) -> list[float]:
        return []

    def radial_columns(self) -> torch.Tensor:
        cols = sorted({int(c) for g in self.radial_groups for o in g.outputs for c in o.columns})
        return torch.tensor(cols, dtype=torch.long)

    def vector_columns(self) -> torch.Tensor:
        cols = {int(c) for g in self.angular_groups for o in g.outputs for c in o.columns}
        cols |= set(self.extra_vector_columns())
        return torch.tensor(sorted(cols), dtype=torch.long)

    def extra_vector_columns(self) -> list[int]:
        return []

    # ------------------------------------------------------------- evaluation
    def forward(self, batch: StructureBatch, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Feature matrix ``[N, F_max]`` (differentiable with respect to ``vectors``)."""
        if vectors is None:
            vectors = batch.pair_vectors()
        geom = PairGeometry(batch, vectors)
        return self.features(geom)

    def features(self, geom: PairGeometry) -> torch.Tensor:
        dtype, device = geom.vectors.dtype, geom.vectors.device
        g = torch.zeros(geom.n_atoms, self.max_features, dtype=dtype, device=device)
        for rows, cols, vals in self._radial_contributions(geom):
            g = g.index_put((rows.unsqueeze(1), cols.to(device).unsqueeze(0)), vals,
                            accumulate=True)
        for rows, cols, vals in self._angular_contributions(geom):
            g = g.index_put((rows.unsqueeze(1), cols.to(device).unsqueeze(0)), vals,
                            accumulate=True)
        return g + self.extra_features(geom)

    def extra_features(self, geom: PairGeometry) -> torch.Tensor | float:
        """Features that are not plain radial/angular group sums (subclass hook)."""
        return 0.0

    def extra_jacobian(self, geom: PairGeometry, acc: _JacobianAccumulator) -> torch.Tensor | float:
        """Values and Jacobian of :meth:`extra_features` (subclass hook)."""
        return 0.0

    def _radial_selection(self, geom: PairGeometry, group: RadialGroup) -> torch.Tensor:
        mask = (geom.center_species == group.center) & (geom.distances < group.cutoff)
        if group.neighbour is not None:
            mask &= geom.neighbour_species == group.neighbour
        return torch.nonzero(mask).squeeze(1)

    def angular_selection(self, geom: PairGeometry, group: AngularGroup):
        """Pair-index lists (a, b) of the triplets of ``group`` (descriptors may override
        this, e.g. to drop triplets whose terms vanish)."""
        return geom.triplets(group.center, group.neighbours, group.cutoff)

    def _radial_contributions(self, geom: PairGeometry):
        """(rows, columns, values) of every radial group output."""
        out = []
        for group in self.radial_groups:
            pairs = self._radial_selection(geom, group)
            if pairs.numel() == 0:
                continue
            vals = group.fn(geom.distances[pairs])
            spec = geom.neighbour_species[pairs]
            for o in group.outputs:
                w = o.weights.to(vals)[spec].unsqueeze(-1) if o.weights is not None else 1.0
                out.append((geom.centers[pairs], o.columns, vals * w))
        return out

    def _angular_contributions(self, geom: PairGeometry):
        """(rows, columns, values) of every angular group output."""
        out = []
        for group in self.angular_groups:
            a, b = self.angular_selection(geom, group)
            if a.numel() == 0:
                continue
            vals = group.fn(*triplet_geometry(geom.vectors[a], geom.vectors[b]))
            sa, sb = geom.neighbour_species[a], geom.neighbour_species[b]
            for o in group.outputs:
                w = o.weights.to(vals)[sa, sb].unsqueeze(-1) if o.weights is not None else 1.0
                out.append((geom.centers[a], o.columns, vals * w))
        return out

    @torch.no_grad()
    def features_and_jacobian(
        self, batch: StructureBatch, jacobian_dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, PairJacobian]:
        """Features ``[N, F_max]`` and the :class:`PairJacobian` of a batch.

        ``jacobian_dtype`` (e.g. ``torch.float32``) sets the storage precision of the
        Jacobian; values are computed in the batch's precision.
        """
        vectors = batch.pair_vectors()
        geom = PairGeometry(batch, vectors)
        dtype, device = vectors.dtype, vectors.device
        jdtype = jacobian_dtype or dtype
        vcols = self.vector_columns().to(device)
        vector_pairs = (torch.nonzero(geom.distances < self.angular_cutoff).squeeze(1)
                        if vcols.numel() else torch.zeros(0, dtype=torch.long, device=device))
        acc = _JacobianAccumulator(geom.n_pairs, self.radial_columns().to(device), vcols,
                                   vector_pairs, jdtype, device)
        g = torch.zeros(geom.n_atoms, self.max_features, dtype=dtype, device=device)

        for group in self.radial_groups:
            pairs = self._radial_selection(geom, group)
            if pairs.numel() == 0:
                continue
            r = geom.distances[pairs]
            vals, dvals = jvp(group.fn, (r,), (torch.ones_like(r),))
            spec = geom.neighbour_species[pairs]
            rows = geom.centers[pairs]
            for o in group.outputs:
                w = o.weights.to(vals)[spec].unsqueeze(-1) if o.weights is not None else 1.0
                cols = o.columns.to(device)
                g.index_put_((rows.unsqueeze(1), cols.unsqueeze(0)), vals * w, accumulate=True)
                acc.add_radial(pairs, cols, dvals * w)

        for group in self.angular_groups:
            a, b = self.angular_selection(geom, group)
            if a.numel() == 0:
                continue
            vals, dj, dk = triplet_jacobian(group.fn, vectors[a], vectors[b])
            sa, sb = geom.neighbour_species[a], geom.neighbour_species[b]
            rows = geom.centers[a]
            for o in group.outputs:
                w = o.weights.to(vals)[sa, sb].unsqueeze(-1) if o.weights is not None else None
                v = vals * w if w is not None else vals
                cols = o.columns.to(device)
                g.index_put_((rows.unsqueeze(1), cols.unsqueeze(0)), v, accumulate=True)
                wj = dj * w.unsqueeze(-1) if w is not None else dj
                wk = dk * w.unsqueeze(-1) if w is not None else dk
                acc.add_vector(a, cols, wj)
                acc.add_vector(b, cols, wk)

        g = g + self.extra_jacobian(geom, acc)
        return g, acc.result(geom)

    # ---------------------------------------------------------- serialisation
    def to_config(self) -> dict:
        raise NotImplementedError

    def describe(self) -> str:
        lines = [f"{self.kind} descriptor, cutoff {self.cutoff:.3f} Å"]
        for e in self.elements:
            lines.append(f"  {e}: {self.n_features(e)} features")
        return "\n".join(lines)
