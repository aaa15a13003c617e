"""Private numba loops of the circuit families (no validation; see ``kernel.circuits``)."""

from __future__ import annotations

import numpy as np

from kernel._numba import JIT, njit


@njit(**JIT)
def _orthonormal_q(x: np.ndarray) -> np.ndarray:
    """Q of the QR decomposition with positive diag(R) of every m x m matrix of x (N, m, m).

    Gram-Schmidt on the columns, each projection done twice ("twice is enough"), so Q is
    orthogonal to float64 rounding. For x with i.i.d. N(0, 1) entries Q is Haar distributed; it is
    the same matrix as LAPACK's ``Q * sign(diag(R))`` up to rounding (the QR with positive
    diagonal is unique).
    """
    N, m, _ = x.shape
    q = np.empty_like(x)
    v = np.empty(m)
    for b in range(N):
        for j in range(m):
            for i in range(m):
                v[i] = x[b, i, j]
            for _ in range(2):
                for p in range(j):
                    dot = 0.0
                    for i in range(m):
                        dot += q[b, i, p] * v[i]
                    for i in range(m):
                        v[i] -= dot * q[b, i, p]
            nrm = 0.0
            for i in range(m):
                nrm += v[i] * v[i]
            nrm = np.sqrt(nrm)
            for i in range(m):
                q[b, i, j] = v[i] / nrm
    return q
