"""The cavity recursion for every construction of W^l, task metrics included (docs/cavity.md,
"The follow-up's constructions").

``bounds.cavity`` follows a tagged circuit through ``cis2`` weights, where a neuron receives
``sum_u w_u r_u`` over the circuits u that use it. The follow-up's constructions
(``kernel.constructions``) add three things that it leaves out, and that decide what their networks
do past layer 1, because their circuits share a mean weight ``w_bar``:

1. **Pushes and a field.** Every construction writes, into neuron k of block i at layer l,

       pre_k = sum_{u uses k} B_u p_u  -  F  +  b,          p_u = (1/S) e_u^T A^{l-1}

   (p_u the mean of u's S neurons at layer l-1, per block) with ``B_u`` = ``(1 + cS) w_u``
   (``ris-uncapped``), ``w_u + cS w_bar`` (``ris-split``), ``w_u + kappa w_bar``
   (``ris-capped``), and a field F common to all neurons of a block,
   ``F = sum_m g_m A_m`` over the block's neurons m with ``g_m = c sum_{u uses m} w_u``,
   ``c load_m w_bar`` or ``(kappa / S) w_bar``. F removes the mean cross-talk that w_bar would
   otherwise add up over circuits.
2. **Who shares the previous layer.** A circuit u that shares neuron k with the tagged circuit t
   may also share one of t's neurons at layer l-1 (and one of each other active circuit's).
   Then B_u carries *that* neuron's value, and F's part from t's own neurons cancels it on
   average, but only if the two are drawn together. The pools of inactive circuits keep only
   circuits that met no active one, and the meetings are drawn explicitly: of the K inactive
   sharers, hypergeometrically many met v (v met O_v circuits, its design row, the same O_v as
   in v's part of F), each holding one of v's neuron values (the pools keep a circuit's S
   neuron values) in place of one of its own.
3. **The cap.** ``ris-capped`` counts each previous-layer neuron at most once per row of C: a
   neuron of t (or of an active sharer of k) reached again through another sharer, a neuron of
   another active circuit reached twice, and a background neuron shared by two sharers (their
   number counted on design rows drawn for the sharers, less those on active circuits'
   offsets, which are the double meetings above) each lose the ``w_bar`` part of one copy. The
   uncapped constructions keep both copies, which then carry the same value.

Active sharers are at most the z - 1 (z) other active circuits, in distinct slots: the plain
recursion draws every slot independently, which on rotation circuits (whose signal has a nonzero
mean) adds a coherent second active neighbour that does not exist (+11% at layer 1, z = 2).

The read-out is the construction's (``u_t`` with the block sum of ``bounds.cavity``, or plain),
and the family's task (``kernel.circuits``: ``on`` and ``x`` for rotation circuits) is read from
it, so the prediction covers MSE_x, MSE_on, the inactive E|x_hat|^2 and E on_hat^2, the raw
|eps|^2 and the fraction of neurons on, at every layer.

Regime (``REGIME``): overlaps <= 1 (not the ``random`` variant), z S^2 d/D <= ``A1_LIMIT``. The
sample-level fluctuation of F (one value per block and sample, shared by all neurons) is replaced
by its mean and an independent Gaussian per neuron. Measured accuracy: docs/rotations.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bounds.cavity import A1_LIMIT
from kernel.circuits import family_of, sample_inputs
from kernel.patterns import offset_loads

REGIME = f"overlaps <= 1, z S^2 d/D <= {A1_LIMIT}"
#: the tolerance its lines claim in that regime (measured: docs/rotations.md)
TOL = 0.2
#: trajectories per class and replica: the recursion is NumPy (not compiled) and its
#: Monte Carlo std error is 1-4% of MSE_x there (3 replicas); more costs time, not accuracy
SAMPLES = 8000


@dataclass(frozen=True)
class ConstructionLayer:
    """The recursion's prediction at one layer: raw mean squares |r - a|^2 (active) and |r|^2
    (inactive) with Monte Carlo std errors, the family's task metrics
    (``task[cls][q]`` = active E|q - q_hat|^2 or inactive E|q_hat|^2, empty without a task) and
    the fraction of neurons on."""

    layer: int
    active: float
    inactive: float
    active_se: float
    inactive_se: float
    task: dict[str, dict[str, float]]
    task_se: dict[str, dict[str, float]]
    frac_on: float


@dataclass
class _Pool:
    """M trajectories of one class at layer l-1: circuit ids, the S neurons of the circuit per
    block (M, S, d), the read-out r (M, d) and the truth a (M, d; zeros if inactive)."""

    ids: np.ndarray
    neurons: np.ndarray
    read: np.ndarray
    truth: np.ndarray
    loads: np.ndarray  # (M, S) circuits on each of the S neurons

    @property
    def plain(self) -> np.ndarray:
        return self.neurons.mean(axis=1)


@dataclass(frozen=True)
class _Layer:
    """What one layer l of a construction applies: the push matrices B (T, d, d); the field's
    part from a circuit u's own neurons, ``f_u = alpha S w_u p_u + (beta0 S + beta1 O_u) w_bar
    p_u`` (O_u the circuits u shares a neuron with at layer l-1); per noise neuron
    ``g_noise`` (d, d) (times E[load A] if ``load_weighted``, else E[A]); the cap's w_bar weight
    (d, d) or None; and whether sharers of the previous layer are drawn (layers >= 2)."""

    B: np.ndarray
    w: np.ndarray
    wbar: np.ndarray
    alpha: float
    beta0: float
    beta1: float
    g_noise: np.ndarray
    load_weighted: bool
    cap: np.ndarray | None
    overlaps: bool


def _layer_terms(con: Any, weights: np.ndarray, layer: int, S: int) -> _Layer:
    """The construction's terms at ``layer`` (``con`` a ``kernel.constructions.Construction``);
    layer 1 (W^1 = I) is the same for all: pushes w_u, no field."""
    w = weights[layer - 1]
    d = w.shape[1]
    zero = np.zeros((d, d))
    if layer == 1 or con.name == "cis2":
        return _Layer(w, w, zero, 0.0, 0.0, 0.0, zero, False, None, layer > 1)
    wbar = con.wbar[layer - 1]
    c = con.c
    if con.name == "ris-uncapped":  # g_m = c sum_{u uses m} w_u
        return _Layer((1 + c * S) * w, w, wbar, c, 0.0, c, c * wbar, True, None, True)
    if con.name == "ris-split":  # g_m = c load_m w_bar
        return _Layer(w + c * S * wbar, w, wbar, 0.0, c, c, c * wbar, True, None, True)
    kap = con.kappa[layer - 1]  # g_m = (kappa / S) w_bar
    return _Layer(w + kap * wbar, w, wbar, 0.0, kap / S, 0.0, kap / S * wbar, False,
                  (1 + kap) / S * wbar, True)


def outside(net: Any, z: int) -> list[str]:
    """Why ``net`` with z active circuits is outside ``REGIME`` (empty: inside); the same
    regime as ``bounds.cavity``'s recursion."""
    why = []
    a1 = z * net.S * net.S * net.d / net.D  # as bounds.predict computes it
    if a1 > A1_LIMIT:
        why.append(f"A1: z S^2 d/D = {a1:.3g} > {A1_LIMIT}")
    if net.config.variant == "random":
        why.append("variant 'random' has overlaps > 1")
    return why


def regime(net: Any, z: int) -> tuple[bool, str]:
    """(in regime, the stated regime and why it fails) of the lines ``cis check`` judges."""
    why = outside(net, z)
    return not why, REGIME + ("" if not why else " -- outside: " + "; ".join(why))


def memoized(net: Any, z: int, samples: int, seed: int) -> list[ConstructionLayer]:
    """``construction_cavity`` with at most ``SAMPLES`` trajectories (``samples`` is the
    ``cis check`` cavity's, which runs to 40000), computed once per network object and seed:
    ``bounds.predict`` (the raw lines) and ``cis.compare`` (the task lines) both read it."""
    m = min(samples, SAMPLES)
    return net.memo(("construction_cavity", z, m, seed),
                    lambda: construction_cavity(net, z, samples=m, seed=seed))


def construction_cavity(net: Any, z: int, *, samples: int = SAMPLES, seed: int = 0,
                        noise_samples: int = 20000) -> list[ConstructionLayer]:
    """Predict layers 0..L of ``net`` (any construction; ``kernel.network.Network``) with z
    active circuits per sample. ``samples``: trajectories per class (M); ``noise_samples``:
    neurons drawn for the noise-neuron statistics; ``seed``: the Monte Carlo seed (a seed fixes
    the numbers). Reads the small circuits, the realised design and the construction's
    constants; never runs the large network."""
    rng = np.random.default_rng(seed)
    c = net.circuits
    con = net.construction
    L, T, d, _ = c.weights.shape
    S, n, M = net.S, net.n, int(samples)
    design = net.design
    loads = offset_loads(design, n)
    fam = family_of(c)
    ids = rng.integers(0, T, M)
    a0 = sample_inputs(c, ids[:, None], rng)[:, 0]
    ones = np.ones((M, S), dtype=np.int64)
    act = _Pool(ids, np.repeat(a0[:, None, :], S, axis=1), a0, a0, ones)
    ina = _Pool(rng.integers(0, T, M), np.zeros((M, S, d)), np.zeros((M, d)), np.zeros((M, d)),
                ones)
    background = np.arange(M)  # inactive trajectories that met no active circuit
    # a noise neuron at l-1: the mean of A and the covariances of A and of load * A
    noise: tuple[np.ndarray, ...] = (np.zeros(d), np.zeros((d, d)), np.zeros((d, d)))
    out = [_layer0(fam, d)]
    for layer in range(1, L + 1):
        terms = _layer_terms(con, c.weights, layer, S)
        b = c.bias[layer - 1]
        a_new = np.maximum(np.einsum("mij,mj->mi", c.weights[layer - 1][act.ids], act.truth)
                           + b, 0.0)
        ctx = _Context(rng, terms, b, act, ina, background, noise, S, n, z, T, loads,
                       design, net.read_c, a_new)
        noise_on, noise_new = ctx.noise_neurons(noise_samples)
        act_new, act_nact = ctx.tagged(True, a_new, noise_new[0])
        ina_new, ina_nact = ctx.tagged(False, np.zeros((M, d)), noise_new[0])
        act, ina, noise = act_new, ina_new, noise_new
        background = np.flatnonzero(ina_nact == 0)
        if background.size == 0:
            background = np.arange(M)
        on_act = float((act.neurons > 0).mean())
        out.append(_summary(layer, fam, act, ina,
                            (z * S * on_act + max(n - z * S, 0) * noise_on) / n))
    return out


def _layer0(fam: Any, d: int) -> ConstructionLayer:
    zero: dict[str, dict[str, float]] = {"active": {}, "inactive": {}}
    if fam is not None and fam.task is not None:
        for q in fam.task(np.zeros((1, d))):
            zero["active"][q] = zero["inactive"][q] = 0.0
    return ConstructionLayer(0, 0.0, 0.0, 0.0, 0.0, zero,
                             {k: dict(v) for k, v in zero.items()}, 0.0)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def _summary(layer: int, fam: Any, act: _Pool, ina: _Pool, frac_on: float
             ) -> ConstructionLayer:
    am, ase = _mean_se(((act.read - act.truth) ** 2).sum(-1))
    im, ise = _mean_se((ina.read**2).sum(-1))
    task: dict[str, dict[str, float]] = {"active": {}, "inactive": {}}
    task_se: dict[str, dict[str, float]] = {"active": {}, "inactive": {}}
    if fam is not None and fam.task is not None:
        truth, est, est_in = fam.task(act.truth), fam.task(act.read), fam.task(ina.read)
        for q in truth:
            task["active"][q], task_se["active"][q] = _mean_se(
                ((truth[q] - est[q]) ** 2).sum(-1))
            task["inactive"][q], task_se["inactive"][q] = _mean_se((est_in[q] ** 2).sum(-1))
    return ConstructionLayer(layer, am, im, ase, ise, task, task_se, frac_on)


class _Context:
    """One layer's draws: the pools at l-1, the construction's terms and the design."""

    def __init__(self, rng: np.random.Generator, terms: _Layer, b: np.ndarray, act: _Pool,
                 ina: _Pool, background: np.ndarray, noise: tuple[np.ndarray, ...],
                 S: int, n: int, z: int, T: int, loads: np.ndarray,
                 design: np.ndarray, read_c: float, a_new: np.ndarray) -> None:
        self.rng, self.t, self.b = rng, terms, b
        self.act, self.ina, self.bg = act, ina, background
        self.S, self.n, self.z, self.T = S, n, z, T
        self.loads, self.design, self.read_c = loads, design, read_c
        self.M = act.ids.size
        self.y_act = np.einsum("mij,mj->mi", terms.B[act.ids], act.plain)
        self.y_in = np.einsum("mij,mj->mi", terms.B[ina.ids], ina.plain)
        # per circuit of the design: how many others it shares a neuron with; each trajectory
        # draws its row at layer l-1 (the per-layer shuffle), used by its field part and by the
        # number of sharers that met it, so that the two cancel as they do in the network
        self.overlaps_of = (loads[design] - 1).sum(axis=1)
        self.met_act = self.overlaps_of[rng.integers(0, T, self.M)]
        self.met_in = self.overlaps_of[rng.integers(0, T, self.M)]
        self.f_act = self._own_field(act, self.met_act)
        self.f_in = self._own_field(ina, self.met_in)
        self.noise_field = self._noise_field_mean()
        # F's part from the noise neurons beyond a neuron's sharers: a Gaussian per neuron
        # (``_field_noise``) of the covariance of one noise neuron's term times their number
        _, cov_a, cov_load_a = noise
        cov = terms.g_noise @ (cov_load_a if terms.load_weighted else cov_a) @ terms.g_noise.T
        vals, vecs = np.linalg.eigh(cov)
        self.field_root = vecs * np.sqrt(np.maximum(vals, 0.0))[None, :]
        # a background sharer's own neurons are part of F too: their fluctuation cancels that
        # part of the sharer's push (in the network both are the same neurons)
        self.y_bg = self.y_in.copy()
        if terms.overlaps:
            self.y_bg -= self.f_in - self.f_in[background].mean(axis=0)
        self.a_new = a_new  # the active pool's truth at layer l

    def _noise_field_mean(self) -> np.ndarray:
        """F's mean part from one noise neuron (d,), from the background pool, the one the
        sharers come from (estimated apart, the two large means do not cancel as they do in the
        network, and the remainder drives the noise from layer 3 on). The circuits that met no
        active one stand for T - z - z O/S circuits (O the mean circuits met)."""
        t, S, ina, bg = self.t, self.S, self.ina, self.bg
        if not t.overlaps:
            return np.zeros(self.b.shape)
        n_bg = self.T - self.z - self.z * self.overlaps_of.mean() / S
        if t.load_weighted:  # sum_m load_m A_m = S sum_u p_u over the circuits u
            per = S * (t.alpha * np.einsum("mij,mj->mi", t.w[ina.ids[bg]], ina.plain[bg])
                       + t.beta0 * ina.plain[bg] @ t.wbar.T)
        else:  # sum_m A_m = sum_u sum_{m in e_u} A_m / load_m
            per = (ina.neurons[bg] / ina.loads[bg][..., None]).sum(axis=1) @ t.g_noise.T
        return per.mean(axis=0) * n_bg / max(self.n - self.z * S, 1)

    def _own_field(self, pool: _Pool, met: np.ndarray) -> np.ndarray:
        """F's part from the pool's circuits' own neurons, ``met`` (m,) the circuits each met."""
        t, S = self.t, self.S
        p = pool.plain
        f = (t.beta0 * S + t.beta1 * met)[:, None] * (p @ t.wbar.T)
        if t.alpha:
            f += t.alpha * S * np.einsum("mij,mj->mi", t.w[pool.ids], p)
        return f

    def _field_noise(self, count: np.ndarray) -> np.ndarray:
        """Draws of the fluctuation of F from ``count`` (m,) independent noise neurons."""
        count = np.broadcast_to(np.asarray(count), (np.size(count),))
        g = self.rng.standard_normal((count.size, self.field_root.shape[1])) @ self.field_root.T
        return g * np.sqrt(np.maximum(count, 0))[:, None]

    # ------------------------------------------------------------------ shared pieces

    def _sharers(self, others: np.ndarray, z_other: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Slots (m, S, J) of the tagged circuits' sharers: used, active (at most z_other per
        row, distinct slots, each other active circuit present with probability K/(T - 1)),
        active pool index and background inactive pool index."""
        rng, M = self.rng, others.shape[0]
        J = max(int(others.max(initial=0)), 1)
        used = np.arange(J)[None, None, :] < others[:, :, None]
        K = used.sum(axis=(1, 2))
        n_act = rng.binomial(z_other, np.minimum(K / max(self.T - 1, 1), 1.0))
        keys = np.where(used, rng.random(used.shape), 2.0).reshape(M, -1)
        rank = np.argsort(np.argsort(keys, axis=1), axis=1).reshape(used.shape)
        is_act = used & (rank < n_act[:, None, None])
        ia = rng.integers(0, self.M, used.shape)
        ii = self.bg[rng.integers(0, self.bg.size, used.shape)]
        return used, is_act, ia, ii

    def _overlap_terms(self, inactive: np.ndarray, ii: np.ndarray, v_neurons: np.ndarray,
                       v_valid: np.ndarray, met_v: np.ndarray, inside: np.ndarray
                       ) -> np.ndarray:
        """Pre-activation change (m, S, d) from inactive sharers (``inactive`` (m, S, J), pool
        rows ``ii``) that met, at layer l-1, the active circuits V (``v_neurons`` (m, V, S, d),
        ``v_valid`` (m, V)) or each other. ``inside`` (m, S, V): v's neurons are already in the
        row of C of the tagged neuron (the cap then drops the w_bar part of every copy)."""
        rng, S, t = self.rng, self.S, self.t
        m, Q, J = inactive.shape  # Q rows of slots: the tagged circuit's S neurons, or 1
        V = v_valid.shape[1]
        B_u = t.B[self.ina.ids[ii]]  # (m, S, J, d, d)
        own = rng.integers(0, S, inactive.shape)  # the sharer's neuron that is replaced
        own_val = self.ina.neurons[ii, own]  # (m, S, J, d)
        # v met met_v[v] circuits at layer l-1 (its design row: the same number sets v's part of
        # F, so that the two cancel as they do in the network); the K inactive sharers are a
        # random K of the T - 1 others, so H_v of them met v (hypergeometric), distinct sharers
        K = inactive.sum(axis=(1, 2))
        H = rng.hypergeometric(np.maximum(met_v, 0), np.maximum(self.T - 1 - met_v, 0),
                               np.broadcast_to(np.minimum(K, self.T - 1)[:, None], (m, V)))
        H = np.where(v_valid, H, 0)
        keys = np.where(inactive[..., None], rng.random((m, Q, J, V)), 2.0)
        keys = np.moveaxis(keys, 3, 1).reshape(m, V, -1)
        rank = np.argsort(np.argsort(keys, axis=2), axis=2)
        hit = np.moveaxis((rank < H[..., None]).reshape(m, V, Q, J), 1, 3) & inactive[..., None]
        which = rng.integers(0, S, hit.shape)
        rows = np.arange(m)[:, None, None, None]
        vval = v_neurons[rows, np.arange(V)[None, None, None, :], which]  # (m, S, J, V, d)
        delta = (hit[..., None] * (vval - own_val[:, :, :, None, :])).sum(axis=3)
        # two sharers of the same neuron that share a neuron at l-1: the second holds the
        # first's value. Their number is counted on design rows drawn for the sharers (the
        # repeats among their S offsets), not drawn as Binomial(pairs, p): three circuits on
        # one neuron are 2 repeats, not 3 pairs, and the cap is that sensitive (with 20% more
        # pairs removed, the layer-5 prediction of ris-capped halves)
        n_pairs = self._repeats(inactive)
        # repeats on an active circuit's offsets are the double meetings already counted above
        # (``hit``): keep those on the other offsets only
        free = np.maximum(1.0 - S * v_valid.sum(axis=1) / self.n, 0.0)
        n_pairs = rng.binomial(n_pairs, free[:, None])
        k_in = inactive.sum(axis=2)
        P = max(int(n_pairs.max(initial=0)), 1)
        j1 = (rng.random((m, Q, P)) * np.maximum(k_in, 1)[..., None]).astype(np.int64)
        step = 1 + (rng.random((m, Q, P)) * np.maximum(k_in - 1, 1)[..., None]).astype(np.int64)
        j2 = (j1 + step) % np.maximum(k_in, 1)[..., None]
        live = np.arange(P)[None, None, :] < n_pairs[..., None]
        # inactive slots come first in no particular order: map rank -> slot
        order = np.argsort(~inactive, axis=2, kind="stable")
        s1 = np.take_along_axis(order, j1, axis=2)
        s2 = np.take_along_axis(order, j2, axis=2)
        r2 = np.arange(m)[:, None, None]
        q2 = np.arange(Q)[None, :, None]
        first_val = self.ina.neurons[ii[r2, q2, s1], rng.integers(0, S, s1.shape)]
        second_own = rng.integers(0, S, s2.shape)
        second_val = self.ina.neurons[ii[r2, q2, s2], second_own]
        pair_delta = live[..., None] * (first_val - second_val)  # (m, S, P, d)
        change = np.einsum("mqjab,mqjb->mqa", B_u, delta) / S
        change += np.einsum("mqpab,mqpb->mqa", B_u[r2, q2, s2], pair_delta) / S
        if t.cap is not None:
            # copies the cap removes: of v's neurons inside the row, or hit before by another
            # sharer; and the first neuron of every overlapping pair
            onehot = np.zeros((m, Q, V, S))
            mi, qi, ji, vi = np.nonzero(hit)
            np.add.at(onehot, (mi, qi, vi, which[mi, qi, ji, vi]), 1.0)
            excess = np.where(inside[..., None], onehot, np.maximum(onehot - 1.0, 0.0))
            removed = np.einsum("mqvs,mvsd->mqd", excess, v_neurons)
            removed += (live[..., None] * first_val).sum(axis=2)
            change -= removed @ t.cap.T
        return change

    def _repeats(self, inactive: np.ndarray) -> np.ndarray:
        """(m, Q): offsets repeated among the design rows at l-1 of the ``inactive`` sharers
        of each neuron (routes minus distinct offsets), rows drawn uniformly."""
        m, Q, J = inactive.shape
        offsets = self.design[self.rng.integers(0, self.T, (m, Q, J))]  # (m, Q, J, S)
        unused = -1 - np.arange(J * self.S).reshape(J, self.S)  # distinct, never repeated
        flat = np.sort(np.where(inactive[..., None], offsets, unused).reshape(m, Q, -1), axis=2)
        return ((flat[..., 1:] == flat[..., :-1]) & (flat[..., 1:] >= 0)).sum(axis=2)

    # ------------------------------------------------------------------ neurons

    def noise_neurons(self, count: int) -> tuple[float, tuple[np.ndarray, ...]]:
        """Neurons no active circuit uses at layer l: P(on), and (mean A, cov A, cov load A)."""
        rng, M, z, S = self.rng, self.M, self.z, self.S
        ld = self.loads[rng.integers(0, self.n, count)]
        J = max(int(ld.max(initial=0)), 1)
        used = np.arange(J)[None, :] < ld[:, None]
        ii = self.bg[rng.integers(0, self.bg.size, used.shape)]
        pre = (self.y_bg[ii] * used[..., None]).sum(axis=1) + self.b
        fa = rng.integers(0, M, (count, max(z, 1)))[:, :z]
        if self.t.overlaps:
            v_neurons = self.act.neurons[fa]
            v_valid = np.ones(fa.shape, dtype=bool)
            # one "neuron" with every sharer: reuse the per-neuron code with S = 1 slot row
            change = self._overlap_terms(used[:, None, :], ii[:, None, :], v_neurons, v_valid,
                                         self.met_act[fa],
                                         np.zeros((count, 1, fa.shape[1]), dtype=bool))
            pre += change[:, 0]
            free = self.n - z * S - S * ld
            pre -= (self.f_act[fa].sum(axis=1) + (self.n - z * S) * self.noise_field
                    + self._field_noise(free))
        A = np.maximum(pre, 0.0)
        return float((A > 0).mean()), (A.mean(axis=0), np.cov(A.T), np.cov((ld[:, None] * A).T))

    def tagged(self, is_active: bool, truth: np.ndarray, noise_mean: np.ndarray
               ) -> tuple[_Pool, np.ndarray]:
        """The tagged class at layer l: its new pool and the number of active sharers met."""
        rng, M, S, z = self.rng, self.M, self.S, self.z
        pool = self.act if is_active else self.ina
        y_tag = self.y_act if is_active else self.y_in
        f_tag = self.f_act if is_active else self.f_in
        z_other = z - 1 if is_active else z
        rows = rng.integers(0, self.T, M)
        others = self.loads[self.design[rows]] - 1
        used, is_act, ia, ii = self._sharers(others, z_other)
        inactive = used & ~is_act
        pre = (y_tag[:, None, :] + (self.y_act[ia] * is_act[..., None]).sum(axis=2)
               + (self.y_bg[ii] * inactive[..., None]).sum(axis=2) + self.b)
        n_act = is_act.sum(axis=(1, 2))
        # the active circuits of the sample: v = 0 the tagged one, then those met, then others
        V = 1 + max(z_other, int(n_act.max(initial=0)))
        v_idx = np.full((M, V), -1)
        v_q = np.full((M, V), -1)
        mi, qi, ji = np.nonzero(is_act)
        slot_rank = np.cumsum(is_act.reshape(M, -1), axis=1).reshape(is_act.shape) - 1
        v_idx[mi, 1 + slot_rank[mi, qi, ji]] = ia[mi, qi, ji]
        v_q[mi, 1 + slot_rank[mi, qi, ji]] = qi
        far = rng.integers(0, M, (M, V))
        fill = (v_idx < 0) & (np.arange(V)[None, :] >= 1) & (np.arange(V)[None, :] <= z_other)
        v_idx[fill] = far[fill]
        v_valid = v_idx >= 0
        v_valid[:, 0] = True
        v_neurons = self.act.neurons[np.maximum(v_idx, 0)]
        v_neurons[:, 0] = pool.neurons
        if self.t.overlaps:
            inside = np.zeros((M, S, V), dtype=bool)
            inside[:, :, 0] = True
            has_q = v_q >= 0
            rr, vv = np.nonzero(has_q)
            inside[rr, v_q[rr, vv], vv] = True
            met_v = self.met_act[np.maximum(v_idx, 0)]
            met_v[:, 0] = self.met_act if is_active else self.met_in
            pre += self._overlap_terms(inactive, ii, v_neurons, v_valid, met_v, inside)
            f_other = (self.f_act[np.maximum(v_idx[:, 1:], 0)] * v_valid[:, 1:, None]).sum(1)
            rest = self.n - z * S - (0 if is_active else S)
            # the fluctuation of F's noise-neuron part beyond the sharers' own neurons: for each
            # neuron k its own draw (F is one number per block, but the sharers of different
            # neurons of t cover different neurons, and with the mean cancelled the shared part
            # cancels too: the covariance between two neurons' background noise is ~0)
            free = rest - S * inactive.sum(axis=2)
            pre -= (f_tag + f_other + rest * self.noise_field)[:, None, :]
            pre -= self._field_noise(free.ravel()).reshape(M, S, -1)
        A = np.maximum(pre, 0.0)
        read = self._read(A, v_idx, v_valid, z_other, noise_mean)
        return _Pool(pool.ids, A, read, truth, others + 1), n_act

    def _read(self, A: np.ndarray, v_idx: np.ndarray, v_valid: np.ndarray, z_other: int,
              noise_mean: np.ndarray) -> np.ndarray:
        """The construction's read-out of the tagged circuits: plain, or u_t with the block sum
        of the tagged neurons, the other active circuits' neurons (their new truth plus their
        error at l-1) and the noise neurons."""
        S, c = self.S, self.read_c
        sA = A.sum(axis=1)
        if not c:
            return sA / S
        others = v_idx[:, 1 : 1 + z_other]
        ok = v_valid[:, 1 : 1 + z_other, None]
        act = self.act
        est = act.neurons.mean(axis=1) - act.truth  # error at l-1
        other_sum = ((est[np.maximum(others, 0)] + self.a_new[np.maximum(others, 0)]) * ok
                     ).sum(axis=1)
        block = sA + S * other_sum + max(self.n - S * self.z, 0) * noise_mean
        return (1.0 / S + c) * sA - c * block
