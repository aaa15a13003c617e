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

Arrays are numba arrays (reference counted, so never freed while an operation can reach
them), C-contiguous, indexed flat: ``i`` is the flat index of the first element, and a vector
of ``lanes`` elements needs ``0 <= i`` and ``i + lanes <= a.size``. The rules are the same
compiled and not (tests/test_simd.py runs every misuse both ways):

- a store into a read-only array is refused (compiled: at typing; without the JIT: TypeError);
- a vector's lanes are float64 or float32 and match the array's dtype; two vectors of an
  operation have the same width and dtype, a scalar operand the vectors' dtype (compiled: a
  typing error naming the operation; without the JIT: TypeError);
- an index outside the array raises IndexError without the JIT, and compiled when numba's
  bounds checking is on (``NUMBA_BOUNDSCHECK=1``: the check is emitted only then, so the
  normal build pays nothing, as with numba's own indexing); a negative constant index is a
  typing error. Indices never wrap around.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, overload, register_model

_I32 = ir.IntType(32)
_FLOATS = (types.float64, types.float32)
_NP_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))

# ----------------------------------------------------------------------------- definitions


def _flat(op, a, i, lanes, *, write=False, dtypes=_NP_FLOATS):
    """a as a flat view after the checks the compiled ``op`` makes (see the module docstring)."""
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a.dtype not in dtypes:
        raise TypeError(f"{op}: needs a C-contiguous array of {', '.join(map(str, dtypes))}")
    if write and not a.flags.writeable:
        raise TypeError(f"{op}: the array is read-only")
    if not 0 <= i <= a.size - lanes:
        raise IndexError(f"{op}: index {i} with {lanes} lanes is out of bounds for size {a.size}")
    return a.reshape(-1)


def _vec(op, *xs):
    """The common dtype of vectors xs (tuples of float64 / float32 lanes) of one width."""
    kinds = {(len(x), np.asarray(x[0]).dtype if len(x) else None) for x in xs}
    if len(kinds) != 1 or next(iter(kinds))[1] not in _NP_FLOATS:
        raise TypeError(f"{op}: vectors of one width and one float dtype needed, got {kinds}")
    return next(iter(kinds))[1]


def _scalar(op, c, dtype):
    if np.asarray(c).dtype != dtype:
        raise TypeError(f"{op}: the scalar must have the vector's dtype {dtype}")


def _python_load(lanes, doc):
    def load(a, i):
        f = _flat(f"load{lanes}", a, i, lanes)
        return tuple(f[i + k] for k in range(lanes))

    load.__name__ = load.__qualname__ = f"load{lanes}"
    load.__doc__ = doc
    return load


load1 = _python_load(1, "(a[i],): one lane, for the columns left over after the full vectors.")
load4 = _python_load(4, "(a[i], ..., a[i+3]).")
load8 = _python_load(8, "(a[i], ..., a[i+7]).")
load16 = _python_load(16, "(a[i], ..., a[i+15]).")


def store(a, i, x):
    """a[i + k] = x[k] for every lane k."""
    f = _flat("store", a, i, len(x), write=True)
    if _vec("store", x) != a.dtype:
        raise TypeError("store: the vector's dtype differs from the array's")
    for k in range(len(x)):
        f[i + k] = x[k]


def add_into(a, i, x):
    """a[i + k] += x[k] for every lane k."""
    f = _flat("add_into", a, i, len(x), write=True)
    if _vec("add_into", x) != a.dtype:
        raise TypeError("add_into: the vector's dtype differs from the array's")
    for k in range(len(x)):
        f[i + k] += x[k]


def _python_binary(name, op, doc):
    def binary(x, y):
        _vec(name, x, y)
        return tuple(op(p, q) for p, q in zip(x, y))

    binary.__name__ = binary.__qualname__ = name
    binary.__doc__ = doc
    return binary


vadd = _python_binary("vadd", operator.add, "Lane-wise x + y.")
vsub = _python_binary("vsub", operator.sub, "Lane-wise x - y.")
vmul = _python_binary("vmul", operator.mul, "Lane-wise x * y.")


def vscale(x, c):
    """Lane-wise c * x."""
    _scalar("vscale", c, _vec("vscale", x))
    return tuple(c * p for p in x)


def vmax_abs(m, x):
    """Lane-wise |x| if |x| > m else m (a running maximum of absolute values)."""
    _vec("vmax_abs", m, x)
    return tuple(abs(p) if abs(p) > q else q for q, p in zip(m, x))


def lane(x, k):
    """Lane k of x."""
    _vec("lane", x)
    if not 0 <= k < len(x):
        raise IndexError(f"lane: lane {k} is out of bounds for {len(x)} lanes")
    return x[k]


def count_above(n, i, x, c):
    """n[i + k] += 1 for every lane k with x[k] > c (n: an int64 array)."""
    _scalar("count_above", c, _vec("count_above", x))
    f = _flat("count_above", n, i, len(x), write=True, dtypes=(np.dtype(np.int64),))
    for k in range(len(x)):
        if x[k] > c:
            f[i + k] += 1


def to_float64(x):
    """The lanes converted to float64."""
    _vec("to_float64", x)
    return tuple(np.float64(p) for p in x)


def matvec4(w, i, x):
    """y with y[r] = ((w[i+4r]*x[0] + w[i+4r+1]*x[1]) + w[i+4r+2]*x[2]) + w[i+4r+3]*x[3]: the
    row-major 4x4 matrix starting at w[i] times x, each row summed in index order."""
    f = _flat("matvec4", w, i, 16)
    if _vec("matvec4", x) != w.dtype or len(x) != 4:
        raise TypeError("matvec4: needs a 4-lane vector of the matrix's dtype")
    return tuple(
        f[i + 4 * r] * x[0] + f[i + 4 * r + 1] * x[1] + f[i + 4 * r + 2] * x[2]
        + f[i + 4 * r + 3] * x[3]
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


def _refuse(op, why):
    raise TypingError(f"kernel._simd.{op}: {why}")


def _check_array(op, a, i, *, write=False, dtypes=_FLOATS):
    """Typing-time checks of an array operand and its index (see the module docstring)."""
    if not (isinstance(a, types.Array) and a.layout == "C" and a.dtype in dtypes):
        _refuse(op, f"needs a C-contiguous array of {'/'.join(map(str, dtypes))}, got {a}")
    if write and not a.mutable:
        _refuse(op, f"refuses to write into a read-only array ({a})")
    if not isinstance(i, types.Integer):
        _refuse(op, f"the index must be an integer, got {i}")


def _check_vector(op, x, dtype=None, count=None):
    if not isinstance(x, Vector):
        _refuse(op, f"needs a vector (from a load), got {x}")
    if dtype is not None and x.dtype != dtype:
        _refuse(op, f"the vector's dtype {x.dtype} differs from {dtype}")
    if count is not None and x.count != count:
        _refuse(op, f"needs {count} lanes, got {x.count}")


def _splat(builder, scalar, vt):
    v = ir.Constant(vt, ir.Undefined)
    for k in range(vt.count):
        v = builder.insert_element(v, scalar, ir.Constant(_I32, k))
    return v


def _check_bounds(context, builder, i, count, size, constant, op):
    """Raise IndexError unless 0 <= i and i + count <= size: under bounds checking; for a
    constant index, its sign always (folded away unless negative)."""
    if not (context.enable_boundscheck or constant):
        return
    bad = builder.icmp_signed("<", i, ir.Constant(i.type, 0))
    if context.enable_boundscheck:
        end = builder.add(i, ir.Constant(i.type, count))
        bad = builder.or_(bad, builder.icmp_signed(">", end, size))
    with cgutils.if_unlikely(builder, bad):
        context.call_conv.return_user_exc(
            builder, IndexError, (f"kernel._simd.{op}: index out of bounds",))


def _vector_ptr(context, builder, a_type, i_type, a, i, count, op, dtype=None):
    """Pointer to a[i:i+count] as one vector; under bounds checking (``NUMBA_BOUNDSCHECK=1`` or
    ``boundscheck=True``) first raises IndexError unless 0 <= i and i + count <= a.size."""
    arr = context.make_array(a_type)(context, builder, a)
    i = context.cast(builder, i, i_type, types.intp)
    _check_bounds(context, builder, i, count, arr.nitems, isinstance(i_type, types.Literal), op)
    element = context.get_value_type(dtype or a_type.dtype)
    return builder.bitcast(builder.gep(arr.data, [i]), ir.VectorType(element, count).as_pointer())


def _aligned(instr, dtype):
    instr.align = dtype.bitwidth // 8  # element alignment: a[i] need not start a vector
    return instr


def _load_ir(count):
    op = f"load{count}"

    @intrinsic(prefer_literal=True)
    def _ir(typingctx, a, i):
        _check_array(op, a, i)

        def codegen(context, builder, sig, args):
            ptr = _vector_ptr(context, builder, a, i, args[0], args[1], count, op)
            return _aligned(builder.load(ptr), a.dtype)

        return Vector(a.dtype, count)(a, i), codegen

    return _ir


_load1_ir = _load_ir(1)
_load4_ir = _load_ir(4)
_load8_ir = _load_ir(8)
_load16_ir = _load_ir(16)


def _store_ir(accumulate):
    op = "add_into" if accumulate else "store"

    @intrinsic(prefer_literal=True)
    def _ir(typingctx, a, i, x):
        _check_array(op, a, i, write=True)
        _check_vector(op, x, a.dtype)

        def codegen(context, builder, sig, args):
            ptr = _vector_ptr(context, builder, a, i, args[0], args[1], x.count, op)
            v = args[2]
            if accumulate:
                v = builder.fadd(_aligned(builder.load(ptr), a.dtype), v)
            _aligned(builder.store(v, ptr), a.dtype)
            return context.get_dummy_value()

        return types.void(a, i, x), codegen

    return _ir


_store_plain_ir = _store_ir(False)
_add_into_ir = _store_ir(True)


def _binary_ir(op, instr):
    @intrinsic
    def _ir(typingctx, x, y):
        _check_vector(op, x)
        _check_vector(op, y, x.dtype, x.count)

        def codegen(context, builder, sig, args):
            return getattr(builder, instr)(args[0], args[1])

        return x(x, y), codegen

    return _ir


_vadd_ir = _binary_ir("vadd", "fadd")
_vsub_ir = _binary_ir("vsub", "fsub")
_vmul_ir = _binary_ir("vmul", "fmul")


def _check_scalar(op, c, dtype):
    if c != dtype:
        _refuse(op, f"the scalar must have the vector's dtype {dtype}, got {c}")


def _vscale_typing(typingctx, x, c):
    _check_vector("vscale", x)
    _check_scalar("vscale", c, x.dtype)

    def codegen(context, builder, sig, args):
        return builder.fmul(_splat(builder, args[1], args[0].type), args[0])

    return x(x, c), codegen


_vscale_ir: Any = intrinsic(_vscale_typing)


def _vmax_abs_typing(typingctx, m, x):
    _check_vector("vmax_abs", m)
    _check_vector("vmax_abs", x, m.dtype, m.count)

    def codegen(context, builder, sig, args):
        vt = args[0].type
        name = f"llvm.fabs.v{m.count}f{m.dtype.bitwidth}"
        fabs = builder.module.declare_intrinsic(name, (), ir.FunctionType(vt, [vt]))
        a = builder.call(fabs, [args[1]])
        return builder.select(builder.fcmp_ordered(">", a, args[0]), a, args[0])

    return m(m, x), codegen


_vmax_abs_ir: Any = intrinsic(_vmax_abs_typing)


def _lane_typing(typingctx, x, k):
    _check_vector("lane", x)
    if not isinstance(k, types.Integer):
        _refuse("lane", f"the lane must be an integer, got {k}")

    def codegen(context, builder, sig, args):
        at = context.cast(builder, args[1], k, types.intp)
        lanes = ir.Constant(at.type, x.count)
        if context.enable_boundscheck or isinstance(k, types.Literal):
            bad = builder.or_(builder.icmp_signed("<", at, ir.Constant(at.type, 0)),
                              builder.icmp_signed(">=", at, lanes))
            with cgutils.if_unlikely(builder, bad):
                context.call_conv.return_user_exc(
                    builder, IndexError, ("kernel._simd.lane: lane out of bounds",))
        return builder.extract_element(args[0], at)

    return x.dtype(x, k), codegen


_lane_ir: Any = intrinsic(prefer_literal=True)(_lane_typing)


def _count_above_typing(typingctx, n, i, x, c):
    _check_array("count_above", n, i, write=True, dtypes=(types.int64,))
    _check_vector("count_above", x)
    _check_scalar("count_above", c, x.dtype)

    def codegen(context, builder, sig, args):
        nt = ir.VectorType(ir.IntType(64), x.count)
        ptr = _vector_ptr(context, builder, n, i, args[0], args[1], x.count, "count_above")
        above = builder.fcmp_ordered(">", args[2], _splat(builder, args[3], args[2].type))
        old = _aligned(builder.load(ptr), types.int64)
        _aligned(builder.store(builder.add(old, builder.zext(above, nt)), ptr), types.int64)
        return context.get_dummy_value()

    return types.void(n, i, x, c), codegen


_count_above_ir: Any = intrinsic(prefer_literal=True)(_count_above_typing)


def _to_float64_typing(typingctx, x):
    _check_vector("to_float64", x)
    out = Vector(types.float64, x.count)

    def codegen(context, builder, sig, args):
        if x.dtype == types.float64:
            return args[0]
        return builder.fpext(args[0], ir.VectorType(ir.DoubleType(), x.count))

    return out(x), codegen


_to_float64_ir: Any = intrinsic(_to_float64_typing)


def _matvec4_typing(typingctx, w, i, x):
    _check_array("matvec4", w, i)
    _check_vector("matvec4", x, w.dtype, 4)

    def codegen(context, builder, sig, args):
        # the 16 entries as one checked span, then rows r of the matrix as 4 vectors; column k
        # gathered by shuffles of the rows, so the product is sum_k column_k * x[k], added in k
        # order (lane r = row r, as in matvec4)
        span = _vector_ptr(context, builder, w, i, args[0], args[1], 16, "matvec4")
        base = builder.bitcast(span, context.get_value_type(w.dtype).as_pointer())
        vt = ir.VectorType(context.get_value_type(w.dtype), 4)
        rows = [_aligned(builder.load(builder.bitcast(
                    builder.gep(base, [ir.Constant(ir.IntType(64), 4 * r)]), vt.as_pointer())),
                    w.dtype) for r in range(4)]

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


_matvec4_ir: Any = intrinsic(prefer_literal=True)(_matvec4_typing)


# ----------------------------------------------------------------------------- overloads


def _jit(python_function, ir_function):
    """Register a call of the intrinsic ``ir_function`` as the compiled version of
    ``python_function`` (same parameters). A constant integer argument that is negative, or a
    constant lane outside the vector, is passed on as that constant (a literal), so that the
    intrinsic emits a raise of IndexError whatever the bounds checking (``_check_bounds``), as
    the Python definition raises."""
    params = list(inspect.signature(python_function).parameters)

    def implementation(constants):
        args = [str(constants.get(k, p)) for k, p in enumerate(params)]
        ns = {"ir_function": ir_function}
        exec(f"def impl({', '.join(params)}):\n    return ir_function({', '.join(args)})", ns)
        return ns["impl"]

    plain = implementation({})

    def typer(*args):
        constants = {k: a.literal_value for k, a in enumerate(args)
                     if isinstance(a, types.IntegerLiteral) and a.literal_value < 0}
        if python_function is lane and isinstance(args[0], Vector):
            k = args[1]
            if isinstance(k, types.IntegerLiteral) and k.literal_value >= args[0].count:
                constants[1] = k.literal_value
        return implementation(constants) if constants else plain

    typer.__signature__ = inspect.signature(python_function)  # type: ignore[attr-defined]
    overload(python_function, prefer_literal=True)(typer)


for _op, _ir in [(load1, _load1_ir), (load4, _load4_ir), (load8, _load8_ir),
                 (load16, _load16_ir), (store, _store_plain_ir), (add_into, _add_into_ir),
                 (vadd, _vadd_ir), (vsub, _vsub_ir), (vmul, _vmul_ir), (vscale, _vscale_ir),
                 (vmax_abs, _vmax_abs_ir), (lane, _lane_ir), (count_above, _count_above_ir),
                 (to_float64, _to_float64_ir), (matvec4, _matvec4_ir)]:
    _jit(_op, _ir)
