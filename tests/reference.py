"""Slow, obviously correct NumPy oracles. Never used by the library itself."""

from __future__ import annotations

import numpy as np


def is_prime(p: int) -> bool:
    return p >= 2 and all(p % q for q in range(2, p))


def prime_steps(n: int, S: int) -> list[int]:
    """The steps of the prime-step algorithm (docs/construction.md) in fill order, written
    straight from the text (the oracle of ``kernel.patterns.allowed_steps``)."""
    steps = []
    for k in range(1, n):
        if k * (S - 1) >= n:
            break
        if any(k % p == 0 for p in range(2, S) if is_prime(p)):
            continue
        steps.append(k)
        if not is_prime(S):
            m = k * S
            while m * (S - 1) < n:
                steps.append(m)
                m *= S
    return steps


def prime_step_design(n: int, S: int) -> list[list[int]]:
    """All progressions of the prime-step algorithm (docs/construction.md), in fill order,
    written straight from the text."""
    out = []
    for k in prime_steps(n, S):
        for r in range(k):
            start = r
            while start + (S - 1) * k < n:
                out.append([start + q * k for q in range(S)])
                start += S * k
    return out


def forward_explicit(net, active: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """Read-outs (B, L+1, T, d) of every circuit by explicit E_t, U_t and W^l matrices.

    A^0 = sum_active E_t^1 w_t^1 a_t^0; A^1 = ReLU(A^0 + B^1); A^l = ReLU(W^l A^{l-1} + B^l) with
    W^l = sum_t E_t^l w_t^l U_t^{l-1}; read-out U_t^l A^l. Layer 0 holds the inputs of the active
    circuits (0 for inactive ones).
    """
    T, L = net.T, net.L
    w = net.circuits.weights
    E = [[net.embed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    U = [[net.unembed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    W = [None, None] + [
        sum(E[layer - 1][t] @ w[layer - 1, t] @ U[layer - 2][t] for t in range(T))
        for layer in range(2, L + 1)
    ]
    return explicit_pass(net, E[0], W, U, active, inputs)


def explicit_pass(net, E1: list, W: list, U: list, active: np.ndarray,
                  inputs: np.ndarray) -> np.ndarray:
    """Read-outs (B, L+1, T, d) from explicit matrices: the layer-1 embeddings ``E1[t]``, the
    layer weights ``W[l]`` (l >= 2) and the read-outs ``U[l-1][t]``; A^0 = sum_active E_t^1 w_t^1
    a_t^0, W^1 = I, the shared bias on every layer, layer 0 the active circuits' inputs."""
    T, L, d, D = net.T, net.L, net.d, net.D
    w = net.circuits.weights
    bias = [np.kron(net.circuits.bias[layer], np.ones(net.n)) for layer in range(L)]
    B = active.shape[0]
    out = np.zeros((B, L + 1, T, d))
    for b in range(B):
        A0 = np.zeros(D)
        for j, t in enumerate(active[b]):
            out[b, 0, t] = inputs[b, j]
            A0 += E1[t] @ (w[0, t] @ inputs[b, j])
        A = np.maximum(A0 + bias[0], 0.0)
        for layer in range(1, L + 1):
            if layer >= 2:
                A = np.maximum(W[layer] @ A + bias[layer - 1], 0.0)
            for t in range(T):
                out[b, layer, t] = U[layer - 1][t] @ A
    return out


def decompose_explicit(net, active: np.ndarray, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The three error terms (docs/error-terms.md) of every circuit, (B, L+1, T, d) each,
    straight from the definitions.

    eps_t^l = U_t^l A^l - a_t^l (a = 0 for inactive t); overlap = sum_{u != t, u active}
    U_t^l E_u^l h_u^l; propagation = sum_u U_t^l E_u^l w_u^l eps_u^{l-1} (l >= 2, over all T
    circuits, with this oracle's own eps of layer l-1); relu = eps - overlap - propagation.
    """
    from kernel.circuits import run_small

    T, L, d = net.T, net.L, net.d
    w = net.circuits.weights
    h, a = run_small(net.circuits, active, inputs)  # (B, L+1, z, d)
    read = forward_explicit(net, active, inputs)  # (B, L+1, T, d)
    E = [[net.embed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    U = [[net.unembed_matrix(t, layer) for t in range(T)] for layer in range(1, L + 1)]
    B = active.shape[0]
    out = {k: np.zeros((B, L + 1, T, d)) for k in ("total", "overlap", "propagation", "relu")}
    for b in range(B):
        truth_a = np.zeros((L + 1, T, d))
        truth_h = np.zeros((L + 1, T, d))
        for j, t in enumerate(active[b]):
            truth_a[:, t] = a[b, :, j]
            truth_h[:, t] = h[b, :, j]
        out["total"][b] = read[b] - truth_a
        out["total"][b, 0] = 0.0
        for layer in range(1, L + 1):
            for t in range(T):
                ovl = np.zeros(d)
                for u in active[b]:
                    if u != t:
                        ovl += U[layer - 1][t] @ E[layer - 1][u] @ truth_h[layer, u]
                prop = np.zeros(d)
                if layer >= 2:
                    for u in range(T):
                        prop += U[layer - 1][t] @ E[layer - 1][u] @ (
                            w[layer - 1, u] @ out["total"][b, layer - 1, u])
                out["overlap"][b, layer, t] = ovl
                out["propagation"][b, layer, t] = prop
                out["relu"][b, layer, t] = out["total"][b, layer, t] - ovl - prop
    return out


def layer1_bound_vectorised(net, active: np.ndarray, h1: np.ndarray) -> np.ndarray:
    """(B, T, d) layer-1 bound (docs/error-terms.md)
    sum_{u active, u != t} (o_tu/S + c(S - o_tu)) |h_u^1[i]|, from the dense incidence matrix of
    the layer-1 patterns."""
    inc = np.zeros((net.T, net.n))
    np.put_along_axis(inc, net.offsets[0].astype(np.int64), 1.0, axis=1)
    o = (inc @ inc.T)[:, active].transpose(1, 0, 2)  # (B, T, z)
    g = o / net.S + abs(net.read_c) * (net.S - o)
    B, z = active.shape
    g[np.arange(B)[:, None], active, np.arange(z)[None, :]] = 0.0  # u != t
    return np.einsum("btz,bzd->btd", g, np.abs(h1))


# ----------------------------------------------------------------------------- decomposition
# The NumPy instrumented forward pass that ``kernel.decompose`` ran before it was compiled: the
# oracle of ``kernel._jit_decompose``. Per layer it keeps X^l = sum_{u active} E_u h_u^l,
# P^l = W^l A^{l-1} (P^1 = X^1) and A^l = ReLU(P^l + B^l), in the block-major flat layout of
# docs/construction.md (neuron (i, k) at i*n + k), and reads out eps = U_t A - a_t,
# overlap = U_t X - h_t, propagation = U_t (P - X), relu = eps - overlap - propagation for all
# circuits at once.


def _flat_index(net, layer: int) -> np.ndarray:
    """(T, d, S) flat neuron indices i*n + k of every circuit's pattern at ``layer`` (1-based)."""
    return np.arange(net.d)[None, :, None] * net.n + net.offsets[layer - 1][:, None, :]


def _readout(net, V: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """U_t V for all t and every row of V (b, D): returns (b, T, d)."""
    r = V[:, idx].sum(axis=-1) * (1.0 / net.S + net.read_c)
    if net.read_c:
        r -= net.read_c * V.reshape(V.shape[0], net.d, net.n).sum(axis=-1)[:, None, :]
    return r


def _scatter(net, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """sum_t E_t y_t for rows y (b, T', d) with indices idx (T', d, S): returns (b, D)."""
    b = y.shape[0]
    D = net.D
    flat = (np.arange(b)[:, None, None, None] * D + idx[None]).ravel()
    vals = np.broadcast_to(y[..., None], (b, *idx.shape)).ravel()
    return np.bincount(flat, weights=vals, minlength=b * D).reshape(b, D)


def _scatter_active(net, hl: np.ndarray, act: np.ndarray, il: np.ndarray) -> np.ndarray:
    """sum_{u active} E_u^l h_u^l per sample: hl (b, z, d), act (b, z) -> (b, D)."""
    b = act.shape[0]
    sub = il[act]  # (b, z, d, S)
    flat = (np.arange(b)[:, None, None, None] * net.D + sub).ravel()
    vals = np.broadcast_to(hl[..., None], sub.shape).ravel()
    return np.bincount(flat, weights=vals, minlength=b * net.D).reshape(b, net.D)


def decompose_numpy(net, batch, *, chunk: int | None = None):
    """``kernel.decompose.Decomposition`` of a batch by the NumPy instrumented forward pass
    (chunks of ``chunk`` samples; memory O(chunk * T * d * S))."""
    from kernel.circuits import run_small
    from kernel.decompose import TERMS, Decomposition

    B, z, d, L, T = batch.size, batch.z, net.d, net.L, net.T
    if chunk is None:
        chunk = max(1, int(2e7 // (T * d * net.S)))
    h, a = run_small(net.circuits, batch.active, batch.inputs)
    weights = net.circuits.weights
    bias = np.repeat(net.circuits.bias, net.n, axis=1)  # (L, D)
    idx = [None] + [_flat_index(net, layer) for layer in range(1, L + 1)]

    act_total = np.zeros((B, L + 1, z, d))
    act_terms = {k: np.zeros((B, L + 1, z, d)) for k in TERMS}
    in_sq = np.zeros((B, L + 1))
    in_terms = {k: np.zeros((B, L + 1)) for k in TERMS}
    in_max = np.zeros((B, L + 1))
    in_sum = np.zeros((B, L + 1, d))
    frac_on = np.zeros((B, L + 1))

    for lo in range(0, B, chunk):
        sl = slice(lo, min(B, lo + chunk))
        act = batch.active[sl]
        b = act.shape[0]
        rows = np.arange(b)[:, None]
        inactive = np.ones((b, T), dtype=bool)
        inactive[rows, act] = False
        A_prev = None
        for layer in range(1, L + 1):
            il = idx[layer]
            # X^l: the active circuits' ideal pre-activations, embedded
            X = _scatter_active(net, h[sl, layer], act, il)
            if layer == 1:
                P = X
                frac_on[sl, 0] = (X > 0).mean(axis=1)
            elif net.config.construction != "cis2":  # the follow-up's W^l, literally
                from tests.reference_constructions import literal_layer

                P = A_prev @ literal_layer(
                    net.config.construction, weights[layer - 1], net.offsets[layer - 1],
                    net.offsets[layer - 2], net.n, kappa_scale=net.config.kappa_scale).T
            else:
                r = _readout(net, A_prev, idx[layer - 1])  # (b, T, d)
                y = np.einsum("tij,btj->bti", weights[layer - 1], r)
                P = _scatter(net, y, il)
            A = np.maximum(P + bias[layer - 1], 0.0)
            frac_on[sl, layer] = (A > 0).mean(axis=1)
            rA = _readout(net, A, il)
            rX = _readout(net, X, il)
            rPX = _readout(net, P - X, il) if layer > 1 else np.zeros_like(rA)
            truth_a = np.zeros_like(rA)
            truth_h = np.zeros_like(rA)
            truth_a[rows, act] = a[sl, layer]
            truth_h[rows, act] = h[sl, layer]
            eps = rA - truth_a
            terms = {"overlap": rX - truth_h, "propagation": rPX}
            terms["relu"] = eps - terms["overlap"] - terms["propagation"]
            act_total[sl, layer] = eps[rows, act]
            mask = inactive[..., None]
            in_sq[sl, layer] = ((eps**2).sum(-1) * inactive).sum(-1)
            in_max[sl, layer] = np.where(mask, np.abs(eps), 0.0).max(axis=(1, 2))
            in_sum[sl, layer] = (eps * mask).sum(axis=1)
            for k in TERMS:
                act_terms[k][sl, layer] = terms[k][rows, act]
                in_terms[k][sl, layer] = ((terms[k] ** 2).sum(-1) * inactive).sum(-1)
            A_prev = A
    return Decomposition(h, a, act_total, act_terms, in_sq, in_terms, in_max, in_sum, frac_on,
                         T - z)


# ----------------------------------------------------------------------------- cavity recursion
# The NumPy cavity recursion that ``bounds.cavity`` ran before its inner loops were compiled: the
# oracle of ``kernel._jit_cavity``. Same random draws in the same order, so the same seed gives
# the same numbers to rounding.


def cavity_recursion_numpy(weights, bias, inputs, design, n, z, *, read_c=0.0, samples=40000,
                           seed=0, chunk=8000):
    """``bounds.cavity.cavity_recursion`` in NumPy (see there for the recursion)."""
    from bounds.cavity import TERMS, LayerPrediction, _first_active, _layer1_strata, distinct_slots
    from kernel.patterns import offset_loads

    def _read(vals, S, c, block):
        return (1.0 / S + c) * vals.sum(axis=1) - c * block

    L, T, d, _ = weights.shape
    S = design.shape[1]
    rng = np.random.default_rng(seed)
    loads = offset_loads(design, n)
    M = max(int(samples), 2 * S * int(loads.max(initial=1)))
    # pools: circuit ids, truth a (active only), error eps
    ca = rng.integers(0, T, M)
    a_act = inputs[ca].copy()
    e_act = np.zeros((M, d))
    ci = rng.integers(0, T, M)
    e_in = np.zeros((M, d))
    out = [LayerPrediction(0, dict.fromkeys(("mse", *TERMS), 0.0),
                           dict.fromkeys(("mse", *TERMS), 0.0), 0.0, 0.0, 0.0)]
    p_other_active = (z - 1) / (T - 1) if T > 1 else 0.0
    p_other_for_inactive = z / (T - 1) if T > 1 else 0.0
    strata = (_layer1_strata(loads, design, p_other_for_inactive)
              if read_c == 0 and np.all(bias[0] <= 0) and 0 < p_other_for_inactive < 1 else None)
    p_err = 1.0
    for layer in range(1, L + 1):
        w = weights[layer - 1]
        b = bias[layer - 1]
        # pushed vectors of the pools: signal part h and error part w eps
        h_act = np.einsum("mij,mj->mi", w[ca], a_act)
        y_act = np.einsum("mij,mj->mi", w[ca], e_act)
        a_new = np.maximum(h_act + b, 0.0)
        y_in = np.einsum("mij,mj->mi", w[ci], e_in)  # inactive trajectories: own pushed error
        tag_in = y_in
        if p_err < 1.0:  # stratified pool: zero error (row M) with probability 1 - p_err
            tag_in = y_in * (rng.random(M) < p_err)[:, None]
            y_in = np.vstack([y_in, np.zeros((1, d))])
        # noise-only neuron mean (for the corrected block sum) and on-probability
        noise_on, noise_mean = _cavity_noise_neuron(rng, loads, y_in, b, min(M, 20000), p_err)
        results = {}
        for cls, tag_h, tag_y, p_act in (
            ("active", h_act, y_act, p_other_active),
            ("inactive", np.zeros((M, d)), tag_in, p_other_for_inactive),
        ):
            given = strata if layer == 1 and cls == "inactive" else None
            weight = 1.0 if given is None else given[2]
            eps_tot = np.zeros((M, d))
            terms = {k: np.zeros((M, d)) for k in TERMS}
            for lo in range(0, M, chunk):
                sl = slice(lo, min(M, lo + chunk))
                m = sl.stop - sl.start
                rows = rng.integers(0, T, m) if given is None else rng.choice(T, m, p=given[1])
                others = loads[design[rows]] - 1  # (m, S)
                mmax = int(others.max()) if others.size else 0
                slot = np.arange(mmax)[None, None, :] < others[:, :, None]  # (m, S, mmax)
                uu = rng.random(slot.shape)
                ia = rng.integers(0, M, slot.shape)
                ii = rng.integers(0, M, slot.shape)
                if given is not None:  # given at least one active sharer
                    _first_active(rng, uu, slot, given[0][rows], p_act)
                is_act = (uu < p_act) & slot
                is_in = slot & ~is_act
                if p_err < 1.0:
                    zero = rng.random(slot.shape) >= p_err
                    ii[zero] = M
                    is_in &= ~zero
                distinct_slots(rng, ia, is_act, M)  # a circuit's sharers: distinct trajectories
                distinct_slots(rng, ii, is_in, M)
                X_o = np.where(is_act[..., None], h_act[ia], 0.0)  # (m, S, mmax, d)
                Y_o = np.where(is_act[..., None], y_act[ia], 0.0) + np.where(
                    is_in[..., None], y_in[ii], 0.0)
                X = tag_h[sl][:, None, :] + X_o.sum(axis=2)  # (m, S, d)
                P = X + tag_y[sl][:, None, :] + Y_o.sum(axis=2)
                A = np.maximum(P + b, 0.0)
                if read_c:
                    n_act = is_act.sum(axis=(1, 2))  # other active circuits met at these neurons
                    extra = z - (cls == "active") - n_act  # other active circuits elsewhere
                    # active circuits met here: their other S-1 neurons carry their read-out
                    met = (np.where(is_act[..., None], a_new[ia] + e_act[ia], 0.0)).sum(axis=(1, 2))
                    far = rng.integers(0, M, (m, max(1, z)))
                    use = (np.arange(far.shape[1]) < extra[:, None])[..., None]
                    far_vals = (a_new[far] + e_act[far]) * use
                    rest = n - S * z
                    blockA = (A.sum(axis=1) + (S - 1) * met + S * far_vals.sum(axis=1)
                              + rest * noise_mean)
                    h_far = h_act[far] * (np.arange(far.shape[1]) < extra[:, None])[..., None]
                    blockX = X.sum(axis=1) + (S - 1) * X_o.sum(axis=(1, 2)) + S * h_far.sum(axis=1)
                    mean_y = p_err * y_in[:M].mean(axis=0)
                    blockP = (P.sum(axis=1) + (S - 1) * (X_o + Y_o).sum(axis=(1, 2))
                              + S * h_far.sum(axis=1) + S * (T - z) * mean_y)
                else:
                    blockA = blockX = blockP = np.zeros((m, d))
                rA = _read(A, S, read_c, blockA)
                rX = _read(X, S, read_c, blockX)
                rP = _read(P, S, read_c, blockP)
                truth_a = a_new[sl] if cls == "active" else 0.0
                truth_h = tag_h[sl]
                eps_tot[sl] = rA - truth_a
                terms["overlap"][sl] = rX - truth_h
                terms["propagation"][sl] = rP - rX
            terms["relu"] = eps_tot - terms["overlap"] - terms["propagation"]
            sq = (eps_tot**2).sum(-1)
            results[cls] = (
                {"mse": weight * float(sq.mean()),
                 **{k: weight * float((v**2).sum(-1).mean()) for k, v in terms.items()}},
                weight * float(sq.std(ddof=1) / np.sqrt(M)),
                eps_tot,
            )
            if cls == "inactive":
                p_err = weight
        e_act = results["active"][2]
        a_act = a_new
        e_in = results["inactive"][2]
        out.append(LayerPrediction(layer, results["active"][0], results["inactive"][0],
                                   results["active"][1], results["inactive"][1], noise_on))
    return out


def _cavity_noise_neuron(rng, loads, y_in, b, m, p_err):
    """On-probability and mean activation (d,) of a neuron used by no active circuit (with
    p_err < 1 the last row of y_in is the stratified pool's zero error)."""
    from bounds.cavity import distinct_slots

    M = y_in.shape[0] - (p_err < 1.0)
    ld = loads[rng.integers(0, loads.size, m)]
    mmax = int(ld.max()) if ld.size else 0
    slot = np.arange(mmax)[None, :] < ld[:, None]
    ii = rng.integers(0, M, slot.shape)
    if p_err < 1.0:
        zero = rng.random(slot.shape) >= p_err
        ii[zero] = M
        slot = slot & ~zero
    distinct_slots(rng, ii, slot, M)
    P = (np.where(slot[..., None], y_in[ii], 0.0)).sum(axis=1)  # (m, d)
    A = np.maximum(P + b, 0.0)
    return float((A > 0).mean()), A.mean(axis=0)
