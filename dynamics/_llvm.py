"""Small LLVM helpers for the kernels: float <-> int bit casts and stack scratch rows.

``fbits`` reads a float's IEEE bit pattern as a signed int. For values >= 0
that order is the float order, and NaN / inf sit above every finite value, so
an integer ``max`` over ``fbits(abs(x))`` is a NaN-propagating maximum that
vectorises into plain ``vpmaxsd`` (a float ``max`` with a select becomes masked
stores, slow on AMD, and drops NaN). ``stack_buffer`` gives ``TB`` scalars on
the stack: LLVM knows a non-escaping ``alloca`` aliases no array argument, so
the loops that accumulate into it need no run-time alias checks.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


@intrinsic
def fbits(typingctx, x):
    """The IEEE bit pattern of a float as a signed int of the same width."""
    if not isinstance(x, types.Float):
        return None
    sig = (types.int32 if x.bitwidth == 32 else types.int64)(x)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(x.bitwidth))

    return sig, codegen


@intrinsic
def bitsf(typingctx, i):
    """The float whose IEEE bit pattern is the signed int ``i`` (inverse of :func:`fbits`)."""
    if not isinstance(i, types.Integer) or i.bitwidth not in (32, 64):
        return None
    sig = (types.float32 if i.bitwidth == 32 else types.float64)(i)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType() if i.bitwidth == 32 else ir.DoubleType())

    return sig, codegen


def izeros(n, like):
    """Zeros of the signed int type as wide as ``like``'s float dtype."""
    raise NotImplementedError  # pragma: no cover - only called compiled


@overload(izeros)
def _izeros(n, like):
    it = np.int32 if like.dtype.bitwidth == 32 else np.int64

    def impl(n, like):
        return np.zeros(n, dtype=it)

    return impl


TB = 64  # largest batch whose scratch rows go on the stack


@intrinsic
def stack_buffer(typingctx, like):
    """A pointer to ``TB`` scalars of ``like``'s type on the stack (an ``alloca``)."""
    if not isinstance(like, (types.Float, types.Integer)):
        return None
    sig = types.CPointer(like)(like)

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(like),
                                   size=context.get_constant(types.intp, TB))

    return sig, codegen
