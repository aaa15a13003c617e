"""4-wide vector operations for the d = 4 passes that work on one sample, one circuit's 4
adjacent neurons at a time (the single-sample forward pass, the compiled decomposition).

numba turns LLVM's SLP vectoriser off, so four scalar additions written side by side stay four
scalar instructions. Each operation here is a plain Python function on 4-tuples (what runs
under ``NUMBA_DISABLE_JIT``, and the definition of the arithmetic) with a numba overload that
emits LLVM vector instructions on ``<4 x double>`` or ``<4 x float>`` (one per load, store,
addition or scaling; the 4x4 product is four products and three additions of columns). Compiled or
not, lane i performs the same IEEE operations in the same order as the Python version: no
reassociation, no fused multiply-add (no fast-math flags are set), so results are identical to
the scalar passes bit for bit (tested in tests/test_simd.py and tests/test_engines.py).

Arrays are 1-D and C-contiguous, ``i`` is the flat index of the first of the 4 elements; no
bounds are checked (as in numba's own indexing). Values are 4-tuples of the array's dtype.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

_I32 = ir.IntType(32)


def load4(a, i):
    """(a[i], a[i+1], a[i+2], a[i+3])."""
    return (a[i], a[i + 1], a[i + 2], a[i + 3])


def add4(x, y):
    """Lane-wise x + y."""
    return (x[0] + y[0], x[1] + y[1], x[2] + y[2], x[3] + y[3])


def sub4(x, y):
    """Lane-wise x - y."""
    return (x[0] - y[0], x[1] - y[1], x[2] - y[2], x[3] - y[3])


def scale4(x, c):
    """Lane-wise c * x."""
    return (c * x[0], c * x[1], c * x[2], c * x[3])


def add_into4(a, i, x):
    """a[i + k] += x[k] for k = 0..3."""
    for k in range(4):
        a[i + k] += x[k]


def store4(a, i, x):
    """a[i + k] = x[k] for k = 0..3."""
    for k in range(4):
        a[i + k] = x[k]


def matvec4(w, i, x):
    """y with y[r] = ((w[i+4r]*x[0] + w[i+4r+1]*x[1]) + w[i+4r+2]*x[2]) + w[i+4r+3]*x[3]: the
    row-major 4x4 matrix starting at w[i] times x, each row summed in index order."""
    return tuple(
        w[i + 4 * r] * x[0] + w[i + 4 * r + 1] * x[1] + w[i + 4 * r + 2] * x[2]
        + w[i + 4 * r + 3] * x[3]
        for r in range(4)
    )


# ----------------------------------------------------------------------------- LLVM side


def _is_float_vector_array(arr) -> bool:
    return (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
            and arr.dtype in (types.float64, types.float32))


def _is_quad(x, dtype) -> bool:
    return isinstance(x, types.UniTuple) and x.count == 4 and x.dtype == dtype


def _to_vector(builder, quad, vt):
    v = ir.Constant(vt, ir.Undefined)
    for k in range(4):
        v = builder.insert_element(v, builder.extract_value(quad, k), ir.Constant(_I32, k))
    return v


def _to_quad(context, builder, v, quad_type):
    q = ir.Constant(context.get_value_type(quad_type), ir.Undefined)
    for k in range(4):
        q = builder.insert_value(q, builder.extract_element(v, ir.Constant(_I32, k)), k)
    return q


def _vector_ptr(context, builder, arr_type, arr, i):
    """Pointer to the 4 elements a[i:i+4] as one vector, and the vector type."""
    data = context.make_array(arr_type)(context, builder, arr).data
    vt = ir.VectorType(context.get_value_type(arr_type.dtype), 4)
    return builder.bitcast(builder.gep(data, [i]), vt.as_pointer()), vt


def _aligned(instr, dtype):
    instr.align = dtype.bitwidth // 8  # element alignment: a[i] need not start a vector
    return instr


@intrinsic
def _load4_ir(typingctx, a, i):
    if not (_is_float_vector_array(a) and isinstance(i, types.Integer)):
        return None
    quad = types.UniTuple(a.dtype, 4)

    def codegen(context, builder, sig, args):
        ptr, _ = _vector_ptr(context, builder, a, args[0], args[1])
        return _to_quad(context, builder, _aligned(builder.load(ptr), a.dtype), quad)

    return quad(a, i), codegen


def _binary_ir(op):
    @intrinsic
    def _ir(typingctx, x, y):
        if not (isinstance(x, types.UniTuple) and _is_quad(y, x.dtype)
                and x.dtype in (types.float64, types.float32)):
            return None

        def codegen(context, builder, sig, args):
            vt = ir.VectorType(context.get_value_type(x.dtype), 4)
            v = getattr(builder, op)(_to_vector(builder, args[0], vt),
                                     _to_vector(builder, args[1], vt))
            return _to_quad(context, builder, v, x)

        return x(x, y), codegen

    return _ir


_add4_ir = _binary_ir("fadd")
_sub4_ir = _binary_ir("fsub")


@intrinsic
def _scale4_ir(typingctx, x, c):
    if not (isinstance(x, types.UniTuple) and x.count == 4 and c == x.dtype
            and c in (types.float64, types.float32)):
        return None

    def codegen(context, builder, sig, args):
        vt = ir.VectorType(context.get_value_type(c), 4)
        v = builder.fmul(_splat(builder, args[1], vt), _to_vector(builder, args[0], vt))
        return _to_quad(context, builder, v, x)

    return x(x, c), codegen


def _splat(builder, scalar, vt):
    v = ir.Constant(vt, ir.Undefined)
    for k in range(4):
        v = builder.insert_element(v, scalar, ir.Constant(_I32, k))
    return v


@intrinsic
def _add_into4_ir(typingctx, a, i, x):
    if not (_is_float_vector_array(a) and isinstance(i, types.Integer) and _is_quad(x, a.dtype)):
        return None

    def codegen(context, builder, sig, args):
        ptr, vt = _vector_ptr(context, builder, a, args[0], args[1])
        old = _aligned(builder.load(ptr), a.dtype)
        _aligned(builder.store(builder.fadd(old, _to_vector(builder, args[2], vt)), ptr),
                 a.dtype)
        return context.get_dummy_value()

    return types.void(a, i, x), codegen


@intrinsic
def _store4_ir(typingctx, a, i, x):
    if not (_is_float_vector_array(a) and isinstance(i, types.Integer) and _is_quad(x, a.dtype)):
        return None

    def codegen(context, builder, sig, args):
        ptr, vt = _vector_ptr(context, builder, a, args[0], args[1])
        _aligned(builder.store(_to_vector(builder, args[2], vt), ptr), a.dtype)
        return context.get_dummy_value()

    return types.void(a, i, x), codegen


@intrinsic
def _matvec4_ir(typingctx, w, i, x):
    if not (_is_float_vector_array(w) and isinstance(i, types.Integer) and _is_quad(x, w.dtype)):
        return None

    def codegen(context, builder, sig, args):
        # rows r of the matrix as 4 vectors; column k gathered by a shuffle of the rows, so the
        # product is sum_k column_k * x[k], added in k order (lane r = row r, as in matvec4)
        data = context.make_array(w)(context, builder, args[0]).data
        et = context.get_value_type(w.dtype)
        vt = ir.VectorType(et, 4)
        rows = []
        for r in range(4):
            at = builder.add(args[1], ir.Constant(args[1].type, 4 * r))
            ptr = builder.bitcast(builder.gep(data, [at]), vt.as_pointer())
            rows.append(_aligned(builder.load(ptr), w.dtype))
        lo = builder.shuffle_vector(rows[0], rows[1], ir.Constant(ir.VectorType(_I32, 4),
                                                                  [0, 4, 1, 5]))
        hi = builder.shuffle_vector(rows[2], rows[3], ir.Constant(ir.VectorType(_I32, 4),
                                                                  [0, 4, 1, 5]))
        lo2 = builder.shuffle_vector(rows[0], rows[1], ir.Constant(ir.VectorType(_I32, 4),
                                                                   [2, 6, 3, 7]))
        hi2 = builder.shuffle_vector(rows[2], rows[3], ir.Constant(ir.VectorType(_I32, 4),
                                                                   [2, 6, 3, 7]))
        cols = [builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, 4), m))
                for a, b, m in ((lo, hi, [0, 1, 4, 5]), (lo, hi, [2, 3, 6, 7]),
                                (lo2, hi2, [0, 1, 4, 5]), (lo2, hi2, [2, 3, 6, 7]))]
        y = None
        for k in range(4):
            term = builder.fmul(cols[k], _splat(builder, builder.extract_value(args[2], k), vt))
            y = term if y is None else builder.fadd(y, term)
        return _to_quad(context, builder, y, x)

    return x(w, i, x), codegen


@overload(load4)
def _load4_jit(a, i):
    return lambda a, i: _load4_ir(a, i)


@overload(add4)
def _add4_jit(x, y):
    return lambda x, y: _add4_ir(x, y)


@overload(sub4)
def _sub4_jit(x, y):
    return lambda x, y: _sub4_ir(x, y)


@overload(scale4)
def _scale4_jit(x, c):
    return lambda x, c: _scale4_ir(x, c)


@overload(add_into4)
def _add_into4_jit(a, i, x):
    return lambda a, i, x: _add_into4_ir(a, i, x)


@overload(store4)
def _store4_jit(a, i, x):
    return lambda a, i, x: _store4_ir(a, i, x)


@overload(matvec4)
def _matvec4_jit(w, i, x):
    return lambda w, i, x: _matvec4_ir(w, i, x)
