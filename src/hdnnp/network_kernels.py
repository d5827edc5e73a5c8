r"""The atomic networks of a potential as one compiled, parallel kernel (inference, CPU).

Used by :meth:`hdnnp.model.NeuralNetworkPotential.forward` between the descriptor's two
passes of each block: the atomic energies :math:`E_a = s\,y_L + t` of the block's atoms
and their feature gradients :math:`\partial E_a/\partial G_{af}`, for every committee
member or for the members' mean.

Why not PyTorch here: the networks are small (n2p2's water potential: 27/30 inputs,
2×25 tanh) and a force call evaluates them once per block of a few hundred atoms.
Measured on 8640-atom water (38 blocks, one thread), forward + autograd backward cost
0.016 s for all atoms at once but 0.060 s block by block — ~1.2 ms of operator dispatch
and graph bookkeeping per block — and that time is serial: it was the largest part of
the ~0.18 s of an 8640-atom call that did not speed up with a second thread
(``docs/benchmarks.md``, thread scaling).  This kernel has no per-call overhead beyond
packing the weights once per call and runs over atoms in parallel; each atom is
computed on its own, so the results are the same to the last bit for any thread count.
Training keeps the PyTorch networks (it needs gradients with respect to the weights).

The layer algebra is the forward pass of :class:`hdnnp.model.AtomicNetwork`,

.. math:: \mathbf x_0 = (\mathbf G - \boldsymbol\mu)\odot\boldsymbol\sigma,\quad
          \mathbf z_l = W_l\mathbf x_{l-1} + \mathbf b_l,\quad \mathbf x_l = f_l(\mathbf z_l),
          \quad E = s\,x_L + t,

and its reverse-mode derivative
:math:`\boldsymbol\delta_L = s\,f_L'(\mathbf z_L)`,
:math:`\boldsymbol\delta_{l} = (W_{l+1}^\top\boldsymbol\delta_{l+1})\odot f_l'(\mathbf z_l)`,
:math:`\partial E/\partial\mathbf G = (W_1^\top\boldsymbol\delta_1)\odot\boldsymbol\sigma`,
with the activations of :mod:`hdnnp.activations` and their analytic slopes (energies in
eV, features in their own units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np
import torch

from hdnnp.descriptors import kernels as dk

#: activation codes of the kernel (the order of :data:`hdnnp.activations.ACTIVATIONS`)
ACTIVATION_CODES = {name: code for code, name in enumerate(
    ("linear", "tanh", "sigmoid", "mtanh", "twist", "softplus", "relu", "gaussian", "cos",
     "revlogistic", "exp", "harmonic"))}

_MTANH_A, _MTANH_B = 1.7159, 2.0 / 3.0
_SOFTPLUS_LIMIT = 35.0  # n2p2's EXP_LIMIT (see hdnnp.activations)
_CHUNK = 16
#: parts of a block per thread in the fused force kernel (dynamic hand-out evens out a
#: core that is busy with something else)
PARTS_PER_THREAD = 8


@nb.njit(cache=True, inline="always")
def _activate(code: int, z: float) -> tuple[float, float]:
    """(f(z), f'(z)) of activation ``code``."""
    if code == 0:
        return z, 1.0
    if code == 1:
        t = math.tanh(z)
        return t, 1.0 - t * t
    if code == 2:
        s = 1.0 / (1.0 + math.exp(-z)) if z >= -700.0 else 0.0
        return s, s * (1.0 - s)
    if code == 3 or code == 4:
        t = math.tanh(_MTANH_B * z)
        f, d = _MTANH_A * t, _MTANH_A * _MTANH_B * (1.0 - t * t)
        if code == 4:
            return f + 0.1 * z, d + 0.1
        return f, d
    if code == 5:
        if z > _SOFTPLUS_LIMIT:
            return z, 1.0
        if z < -_SOFTPLUS_LIMIT:
            return 0.0, 0.0
        e = math.exp(z)
        return math.log1p(e), e / (1.0 + e)
    if code == 6:
        return (z, 1.0) if z > 0.0 else (0.0, 0.0)
    if code == 7:
        e = math.exp(-0.5 * z * z)
        return e, -z * e
    if code == 8:
        return math.cos(z), -math.sin(z)
    if code == 9:
        s = 1.0 / (1.0 + math.exp(-z)) if z >= -700.0 else 0.0
        return 1.0 - s, -s * (1.0 - s)
    if code == 10:
        e = math.exp(-z)
        return e, -e
    return z * z, 2.0 * z


@nb.njit(cache=True)
def _atom_network(g_row, s, params, layers, nets, per_member, want_grad, x, slope, up, down,
                  energies, a, gradients):
    """Atom ``a`` (element ``s``, features ``g_row``): every member's energy into
    ``energies[k, a]`` and, with ``want_grad``, ∂E/∂G added to ``gradients[k or 0, a]``.

    ``nets[s, k]`` = (first layer row, layer count, input count, offset of μ, offset of σ,
    offset of (s, t)) in ``params``; ``layers[l]`` = (offset of W, offset of b, inputs,
    outputs, activation code); W is stored row-major [outputs, inputs].  ``x``, ``slope``
    [layers (+1), width] and ``up``, ``down`` [width] are scratch.
    """
    K = nets.shape[1]
    for k in range(K):
        first, count, n_in = nets[s, k, 0], nets[s, k, 1], nets[s, k, 2]
        mu, sigma, st = nets[s, k, 3], nets[s, k, 4], nets[s, k, 5]
        for f in range(n_in):
            x[0, f] = (g_row[f] - params[mu + f]) * params[sigma + f]
        for li in range(count):
            w, b = layers[first + li, 0], layers[first + li, 1]
            n_i, n_o = layers[first + li, 2], layers[first + li, 3]
            code = layers[first + li, 4]
            for o in range(n_o):
                z = params[b + o]
                row = w + o * n_i
                for i in range(n_i):
                    z += params[row + i] * x[li, i]
                x[li + 1, o], slope[li, o] = _activate(code, z)
        energies[k, a] = x[count, 0] * params[st] + params[st + 1]
        if not want_grad:
            continue
        # reverse pass: up = dE/dx_l, from the output down to the inputs
        up[0] = params[st] / K if not per_member else params[st]
        for li in range(count - 1, -1, -1):
            w = layers[first + li, 0]
            n_i, n_o = layers[first + li, 2], layers[first + li, 3]
            for i in range(n_i):
                down[i] = 0.0
            for o in range(n_o):
                d = up[o] * slope[li, o]
                row = w + o * n_i
                for i in range(n_i):
                    down[i] += params[row + i] * d
            for i in range(n_i):
                up[i] = down[i]
        kg = k if per_member else 0
        for f in range(n_in):
            gradients[kg, a, f] += up[f] * params[sigma + f]


@nb.njit(cache=True)
def _max_layers(nets):
    m = 0
    for s in range(nets.shape[0]):
        for k in range(nets.shape[1]):
            m = max(m, nets[s, k, 1])
    return m


@nb.njit(cache=True, parallel=True)
def _networks(g, species, params, layers, nets, per_member, want_grad, width, energies,
              gradients):
    """Energies [K, n] and feature gradients [Kg, n, F] (Kg = K per member, else 1: the
    gradient of the members' mean, zeroed by the caller) of atoms with features ``g``."""
    n = g.shape[0]
    depth = _max_layers(nets)
    for chunk in nb.prange((n + _CHUNK - 1) // _CHUNK):
        x, slope = np.empty((depth + 1, width)), np.empty((depth, width))
        up, down = np.empty(width), np.empty(width)
        for a in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            _atom_network(g[a], species[a], params, layers, nets, per_member, want_grad, x,
                          slope, up, down, energies, a, gradients)


@nb.njit(cache=True, fastmath=dk._FM, parallel=True)
def _fused_forces(plan, centre_species, r, inv_r, u, fc, dfc, ex, cw, dcw, sp_off, tstart, rows,
                  n_groups, params, layers, nets, width, bounds, g, energies, de_dg, grad):
    """Features, networks and pair gradient of one block, centre by centre.

    For each centre: pass 1 of the descriptor kernels (:func:`hdnnp.descriptors.kernels.
    features`) into a triplet store of that centre alone, the networks
    (:func:`_atom_network`, gradient of the members' mean), then pass 2
    (:func:`~hdnnp.descriptors.kernels.pair_gradient`) while the centre's triplets are
    still in the core's cache.  The two-pass path streams a block's whole store (tens of
    MB, beyond the last-level cache) out to memory and back, which is what limited its
    scaling to two threads.  ``g`` [n, F] and ``de_dg`` [1, n, F] zeroed by the caller,
    ``energies`` [K, n], ``grad`` flat [3 P] overwritten.
    """
    n = centre_species.shape[0]
    ns = plan.n_species
    no_f = np.zeros(0)
    no_i = np.zeros(0, dtype=np.int64)
    depth = _max_layers(nets)
    # scratch per part, allocated once per call: allocating it per work item (as the
    # two-pass kernels do) made every item malloc and page-fault a few hundred kB.  The
    # parts are contiguous runs of centres of about equal triplet counts (``bounds``),
    # PARTS_PER_THREAD per thread, handed out as threads free up (the caller sets
    # Numba's parallel chunk size to 1).
    cap, m = 1, 1
    for i in range(n):
        cap = max(cap, tstart[i + 1] - tstart[i])
        m = max(m, sp_off[i, ns] - sp_off[i, 0])
    nt = bounds.shape[0] - 1
    bufs, works = np.empty((nt, 5, plan.max_local)), np.empty((nt, 4 + 2 * plan.max_lz, cap))
    lsts = np.empty((nt, m), dtype=np.int64)
    tidxs, tvals = np.empty((nt, 2, cap), dtype=np.int32), np.empty((nt, rows, cap))
    countss = np.empty((nt, max(1, n_groups)), dtype=np.int64)
    coefs = np.empty((nt, plan.max_local))
    xs, slopes = np.empty((nt, depth + 1, width)), np.empty((nt, depth, width))
    ups, downs = np.empty((nt, width)), np.empty((nt, width))
    for t in nb.prange(nt):
        buf, work, lst, tidx, tval = bufs[t], works[t], lsts[t], tidxs[t], tvals[t]
        counts, coef, x, slope, up, down = countss[t], coefs[t], xs[t], slopes[t], ups[t], downs[t]
        for i in range(bounds[t], bounds[t + 1]):
            c = centre_species[i]
            dk.centre_features(plan, i, c, sp_off, r, u, fc, dfc, ex, cw, tidx, tval, 0, counts,
                               lst, g[i], buf, work, no_f, no_i)
            _atom_network(g[i], c, params, layers, nets, False, True, x, slope, up, down,
                          energies, i, de_dg)
            dk.centre_gradient(plan, i, c, sp_off, r, inv_r, u, fc, dfc, cw, dcw, tidx, tval, 0,
                               counts, de_dg[0, i], grad, coef, buf, work, no_f, no_i)


@dataclass
class PackedNetworks:
    """Every element's networks (all committee members) as flat float64 tables."""

    params: np.ndarray
    layers: np.ndarray
    nets: np.ndarray
    width: int
    members: int

    def __call__(self, g: torch.Tensor, species: torch.Tensor, want_grad: bool,
                 per_member: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(energies [K, n], gradients [K or 1, n, F] or None) of features ``g`` [n, F]
        (float64, CPU) of atoms of element indices ``species``."""
        gn = np.ascontiguousarray(g.detach().numpy())
        n, F = gn.shape
        energies = np.empty((self.members, n))
        grads = np.zeros((self.members if per_member else 1, n, F) if want_grad else (1, 0, F))
        _networks(gn, np.ascontiguousarray(species.numpy()), self.params, self.layers,
                  self.nets, per_member, want_grad, self.width, energies, grads)
        return torch.from_numpy(energies), torch.from_numpy(grads) if want_grad else None

    def block_forces(self, block) -> tuple[torch.Tensor, torch.Tensor]:
        """(members' energies [K, n], ∂E/∂d_p [P, 3] of the members' mean) of a
        :class:`~hdnnp.descriptors.engine.KernelBlock` made without its first pass
        (``first_pass=False``), centre by centre (:func:`_fused_forces`); sets the block's
        ``features``."""
        n, F = block.sp_off.shape[0], block.n_features
        g = np.zeros((n, F))
        energies = np.empty((self.members, n))
        de_dg = np.zeros((1, n, F))
        grad = np.empty(3 * block.r.shape[0])
        # parts cut where the triplet capacity (the work) is split evenly
        parts = max(1, min(PARTS_PER_THREAD * nb.get_num_threads(), n))
        work = block.tstart + np.arange(n + 1)
        bounds = np.searchsorted(work, np.linspace(0, work[-1], parts + 1)).astype(np.int64)
        bounds[0], bounds[-1] = 0, n
        before = nb.set_parallel_chunksize(1)  # parts handed out one by one, as threads free
        try:
            _fused_forces(block.plan, block.centre_species, block.r, block.inv_r, block.u,
                          block.fc, block.dfc, block.ex, block.cw, block.dcw, block.sp_off,
                          block.tstart, block.store_rows, block.n_groups, self.params,
                          self.layers, self.nets, self.width, bounds, g, energies, de_dg, grad)
        finally:
            nb.set_parallel_chunksize(before)
        block.features = torch.from_numpy(g)
        return torch.from_numpy(energies), torch.from_numpy(grad.reshape(-1, 3))


def pack_networks(networks: list[list]) -> PackedNetworks | None:
    """Pack ``networks[s][k]`` (element s, member k; :class:`hdnnp.model.AtomicNetwork`)
    for the kernel, or None where one of them is not float64 on the CPU or uses an
    activation the kernel does not know (the caller then uses PyTorch)."""
    chunks: list[np.ndarray] = []
    layer_rows: list[tuple[int, ...]] = []
    S, K = len(networks), len(networks[0])
    nets = np.zeros((S, K, 6), dtype=np.int64)
    size = width = 0

    def put(t: torch.Tensor) -> int:
        nonlocal size
        a = t.detach().reshape(-1).numpy()
        chunks.append(a)
        size += a.size
        return size - a.size

    for s, members in enumerate(networks):
        for k, net in enumerate(members):
            if any(p.dtype != torch.float64 or p.device.type != "cpu"
                   for p in (*net.parameters(), *net.buffers())):
                return None
            codes = [ACTIVATION_CODES.get(a) for a in net.activation_names]
            if None in codes:
                return None
            mu, sigma = put(net.input_shift), put(net.input_scale)
            st = put(torch.stack([net.output_scale, net.output_shift]))
            nets[s, k] = (len(layer_rows), len(net.layers), net.n_inputs, mu, sigma, st)
            for layer, code in zip(net.layers, codes):
                w, b = put(layer.weight), put(layer.bias)
                layer_rows.append((w, b, layer.in_features, layer.out_features, code))
                width = max(width, layer.in_features, layer.out_features)
    params = np.concatenate(chunks) if chunks else np.zeros(0)
    return PackedNetworks(params=params, layers=np.array(layer_rows, dtype=np.int64),
                          nets=nets, width=width, members=K)


_WARM = False


def warm_up(model) -> None:
    """Load the compiled kernels of a force call once per process (from Numba's on-disk
    cache), through the model's real path on three atoms, so that the first energy call
    does not pay for it (as :func:`hdnnp.descriptors.engine._warm_up_kernels` does for
    the descriptor alone)."""
    global _WARM
    if _WARM or model.descriptor.layout.max_cutoff <= 0.0:
        return
    _WARM = True
    from hdnnp.descriptors.engine import warm_up_batch

    model(warm_up_batch(model.descriptor), forces=True)
