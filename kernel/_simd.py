"""Short vector operations for the passes: the 4 adjacent neurons of one sample (d = 4), or
8 / 16 adjacent samples (columns) of one neuron (a 512-bit vector of float64 / float32).

numba turns LLVM's SLP vectoriser off, so scalar operations written side by side stay scalar
instructions, and its loop vectoriser keeps accumulators in memory (a load and a store per
step). Each operation here is a plain Python function on tuples (what runs under
``NUMBA_DISABLE_JIT``, and the definition of the arithmetic) with a numba overload that emits
LLVM vector instructions on a ``Vector`` type held in registers (``<N x double>`` or
``<N x float>``): one per load, store, addition, multiplication, comparison; the 4x4 product
is four products and three additions of columns. Compiled or not, lane k performs the same
IEEE operations in the same order as the Python version: no reassociation, no fused
multiply-add (no fast-math flags are set), so results equal scalar code's bit for bit
(tests/test_simd.py).

Arrays are 1-D and C-contiguous, or raw pointers from ``pointer`` (which inlined helpers take
without reference counting); ``i`` is the flat index of the first element, and no bounds are
checked (as in numba's own indexing). Vectors have 1, 4, 8 or 16 lanes of the array's dtype;
operations on two vectors need the same length and dtype.
"""

from __future__ import annotations

import inspect
from typing import Any

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, overload, register_model

_I32 = ir.IntType(32)
_FLOATS = (types.float64, types.float32)

# ----------------------------------------------------------------------------- definitions


def pointer(a):
    """The elements of a C-contiguous array in flat order: compiled, a raw pointer to its data
    (held in a register, without the reference counting an array costs at every call of an
    inlined helper); not compiled, a flat view. Valid while ``a`` is alive."""
    if not a.flags.c_contiguous:  # reshape would copy, and writes would be lost
        raise TypeError("pointer needs a C-contiguous array (compiled code refuses others too)")
    return a.reshape(-1)


def load1(a, i):
    """(a[i],): one lane, for the columns left over after the full vectors."""
    return (a[i],)


def load4(a, i):
    """(a[i], ..., a[i+3])."""
    return (a[i], a[i + 1], a[i + 2], a[i + 3])


def load8(a, i):
    """(a[i], ..., a[i+7])."""
    return tuple(a[i + k] for k in range(8))


def load16(a, i):
    """(a[i], ..., a[i+15])."""
    return tuple(a[i + k] for k in range(16))


def store(a, i, x):
    """a[i + k] = x[k] for every lane k."""
    for k in range(len(x)):
        a[i + k] = x[k]


def add_into(a, i, x):
    """a[i + k] += x[k] for every lane k."""
    for k in range(len(x)):
        a[i + k] += x[k]


def vadd(x, y):
    """Lane-wise x + y."""
    return tuple(p + q for p, q in zip(x, y))


def vsub(x, y):
    """Lane-wise x - y."""
    return tuple(p - q for p, q in zip(x, y))


def vmul(x, y):
    """Lane-wise x * y."""
    return tuple(p * q for p, q in zip(x, y))


def vscale(x, c):
    """Lane-wise c * x."""
    return tuple(c * p for p in x)


def vmax_abs(m, x):
    """Lane-wise |x| if |x| > m else m (a running maximum of absolute values)."""
    return tuple(abs(p) if abs(p) > q else q for q, p in zip(m, x))


def lane(x, k):
    """Lane k of x."""
    return x[k]


def count_above(n, i, x, c):
    """n[i + k] += 1 for every lane k with x[k] > c (n: an int64 array)."""
    for k in range(len(x)):
        if x[k] > c:
            n[i + k] += 1


def to_float64(x):
    """The lanes converted to float64."""
    return tuple(float(p) for p in x)


def matvec4(w, i, x):
    """y with y[r] = ((w[i+4r]*x[0] + w[i+4r+1]*x[1]) + w[i+4r+2]*x[2]) + w[i+4r+3]*x[3]: the
    row-major 4x4 matrix starting at w[i] times x, each row summed in index order."""
    return tuple(
        w[i + 4 * r] * x[0] + w[i + 4 * r + 1] * x[1] + w[i + 4 * r + 2] * x[2]
        + w[i + 4 * r + 3] * x[3]
        for r in range(4)
    )


# ----------------------------------------------------------------------------- LLVM side


class Vector(types.Type):
    """numba type of a vector: ``count`` lanes of ``dtype``, one LLVM vector value. (A tuple
    would be an LLVM array: carried around a loop, it is split into scalars and rebuilt.)"""

    def __init__(self, dtype, count):
        self.dtype = dtype
        self.count = count
        super().__init__(name=f"Vector({dtype}, {count})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.count))


def _is_array(a, dtypes=_FLOATS) -> bool:
    """A 1-D C-contiguous array or a raw pointer, of one of ``dtypes``."""
    if isinstance(a, types.CPointer):
        return a.dtype in dtypes
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in dtypes


def _data(context, builder, a_type, a):
    """Pointer to the first element of an array or raw pointer."""
    if isinstance(a_type, types.CPointer):
        return a
    return context.make_array(a_type)(context, builder, a).data


def _is_vector(x, dtype=None) -> bool:
    return isinstance(x, Vector) and (dtype is None or x.dtype == dtype)


def _splat(builder, scalar, vt):
    v = ir.Constant(vt, ir.Undefined)
    for k in range(vt.count):
        v = builder.insert_element(v, scalar, ir.Constant(_I32, k))
    return v


def _vector_ptr(context, builder, arr_type, arr, i, count):
    """Pointer to a[i:i+count] as one vector."""
    data = _data(context, builder, arr_type, arr)
    vt = ir.VectorType(context.get_value_type(arr_type.dtype), count)
    return builder.bitcast(builder.gep(data, [i]), vt.as_pointer())


def _aligned(instr, dtype):
    instr.align = dtype.bitwidth // 8  # element alignment: a[i] need not start a vector
    return instr


def _load_ir(count):
    @intrinsic
    def _ir(typingctx, a, i):
        if not (_is_array(a) and isinstance(i, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _vector_ptr(context, builder, a, args[0], args[1], count)
            return _aligned(builder.load(ptr), a.dtype)

        return Vector(a.dtype, count)(a, i), codegen

    return _ir


_load1_ir = _load_ir(1)
_load4_ir = _load_ir(4)
_load8_ir = _load_ir(8)
_load16_ir = _load_ir(16)


def _store_ir(accumulate):
    @intrinsic
    def _ir(typingctx, a, i, x):
        if not (_is_array(a) and isinstance(i, types.Integer) and _is_vector(x, a.dtype)):
            return None

        def codegen(context, builder, sig, args):
            ptr = _vector_ptr(context, builder, a, args[0], args[1], x.count)
            v = args[2]
            if accumulate:
                v = builder.fadd(_aligned(builder.load(ptr), a.dtype), v)
            _aligned(builder.store(v, ptr), a.dtype)
            return context.get_dummy_value()

        return types.void(a, i, x), codegen

    return _ir


_store_plain_ir = _store_ir(False)
_add_into_ir = _store_ir(True)


def _binary_ir(op):
    @intrinsic
    def _ir(typingctx, x, y):
        if not (_is_vector(x) and y == x):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, op)(args[0], args[1])

        return x(x, y), codegen

    return _ir


_vadd_ir = _binary_ir("fadd")
_vsub_ir = _binary_ir("fsub")
_vmul_ir = _binary_ir("fmul")


def _vscale_typing(typingctx, x, c):
    if not (_is_vector(x) and c == x.dtype):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(_splat(builder, args[1], args[0].type), args[0])

    return x(x, c), codegen


_vscale_ir: Any = intrinsic(_vscale_typing)


def _vmax_abs_typing(typingctx, m, x):
    if not (_is_vector(m) and x == m):
        return None

    def codegen(context, builder, sig, args):
        vt = args[0].type
        name = f"llvm.fabs.v{m.count}f{m.dtype.bitwidth}"
        fabs = builder.module.declare_intrinsic(name, (), ir.FunctionType(vt, [vt]))
        a = builder.call(fabs, [args[1]])
        return builder.select(builder.fcmp_ordered(">", a, args[0]), a, args[0])

    return m(m, x), codegen


_vmax_abs_ir: Any = intrinsic(_vmax_abs_typing)


def _pointer_typing(typingctx, a):
    if not (isinstance(a, types.Array) and a.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        return context.make_array(a)(context, builder, args[0]).data

    return types.CPointer(a.dtype)(a), codegen


_pointer_ir: Any = intrinsic(_pointer_typing)


def _lane_typing(typingctx, x, k):
    if not (_is_vector(x) and isinstance(k, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])

    return x.dtype(x, k), codegen


_lane_ir: Any = intrinsic(_lane_typing)


def _count_above_typing(typingctx, n, i, x, c):
    if not (_is_array(n, (types.int64,)) and isinstance(i, types.Integer) and _is_vector(x)
            and c == x.dtype):
        return None

    def codegen(context, builder, sig, args):
        nt = ir.VectorType(ir.IntType(64), x.count)
        data = _data(context, builder, n, args[0])
        ptr = builder.bitcast(builder.gep(data, [args[1]]), nt.as_pointer())
        above = builder.fcmp_ordered(">", args[2], _splat(builder, args[3], args[2].type))
        old = _aligned(builder.load(ptr), types.int64)
        _aligned(builder.store(builder.add(old, builder.zext(above, nt)), ptr), types.int64)
        return context.get_dummy_value()

    return types.void(n, i, x, c), codegen


_count_above_ir: Any = intrinsic(_count_above_typing)


def _to_float64_typing(typingctx, x):
    if not _is_vector(x):
        return None
    out = Vector(types.float64, x.count)

    def codegen(context, builder, sig, args):
        if x.dtype == types.float64:
            return args[0]
        return builder.fpext(args[0], ir.VectorType(ir.DoubleType(), x.count))

    return out(x), codegen


_to_float64_ir: Any = intrinsic(_to_float64_typing)


def _matvec4_typing(typingctx, w, i, x):
    if not (_is_array(w) and isinstance(i, types.Integer) and _is_vector(x, w.dtype)
            and x.count == 4):
        return None

    def codegen(context, builder, sig, args):
        # rows r of the matrix as 4 vectors; column k gathered by shuffles of the rows, so the
        # product is sum_k column_k * x[k], added in k order (lane r = row r, as in matvec4)
        rows = []
        for r in range(4):
            at = builder.add(args[1], ir.Constant(args[1].type, 4 * r))
            rows.append(_aligned(builder.load(_vector_ptr(context, builder, w, args[0], at, 4)),
                                 w.dtype))

        def mask(*lanes):
            return ir.Constant(ir.VectorType(_I32, 4), list(lanes))

        lo = builder.shuffle_vector(rows[0], rows[1], mask(0, 4, 1, 5))  # r0c0 r1c0 r0c1 r1c1
        hi = builder.shuffle_vector(rows[2], rows[3], mask(0, 4, 1, 5))
        lo2 = builder.shuffle_vector(rows[0], rows[1], mask(2, 6, 3, 7))  # columns 2 and 3
        hi2 = builder.shuffle_vector(rows[2], rows[3], mask(2, 6, 3, 7))
        cols = [builder.shuffle_vector(a, b, mask(*m))
                for a, b, m in ((lo, hi, (0, 1, 4, 5)), (lo, hi, (2, 3, 6, 7)),
                                (lo2, hi2, (0, 1, 4, 5)), (lo2, hi2, (2, 3, 6, 7)))]
        y = None
        for k in range(4):
            xk = builder.extract_element(args[2], ir.Constant(_I32, k))
            term = builder.fmul(cols[k], _splat(builder, xk, rows[0].type))
            y = term if y is None else builder.fadd(y, term)
        return y

    return x(w, i, x), codegen


_matvec4_ir: Any = intrinsic(_matvec4_typing)


# ----------------------------------------------------------------------------- overloads


def _jit(python_function, impl):
    """Register ``impl`` (calling an intrinsic) as the compiled version of ``python_function``
    (numba checks that the typing function has the implementation's parameters)."""

    def typer(*args):
        return impl

    typer.__signature__ = inspect.signature(impl)  # type: ignore[attr-defined]
    overload(python_function)(typer)


_jit(pointer, lambda a: _pointer_ir(a))
_jit(load1, lambda a, i: _load1_ir(a, i))
_jit(load4, lambda a, i: _load4_ir(a, i))
_jit(load8, lambda a, i: _load8_ir(a, i))
_jit(load16, lambda a, i: _load16_ir(a, i))
_jit(store, lambda a, i, x: _store_plain_ir(a, i, x))
_jit(add_into, lambda a, i, x: _add_into_ir(a, i, x))
_jit(vadd, lambda x, y: _vadd_ir(x, y))
_jit(vsub, lambda x, y: _vsub_ir(x, y))
_jit(vmul, lambda x, y: _vmul_ir(x, y))
_jit(vscale, lambda x, c: _vscale_ir(x, c))
_jit(vmax_abs, lambda m, x: _vmax_abs_ir(m, x))
_jit(lane, lambda x, k: _lane_ir(x, k))
_jit(count_above, lambda n, i, x, c: _count_above_ir(n, i, x, c))
_jit(to_float64, lambda x: _to_float64_ir(x))
_jit(matvec4, lambda w, i, x: _matvec4_ir(w, i, x))
