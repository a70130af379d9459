"""Fast CPU row reductions, bit-equal to `protocol.semantics.reductions`.

rowsum performs exactly the reference's halving tree, as LLVM vector IR (numba intrinsics): with
P = 2**ceil(log2 n) and h = P/2, level h pairs row[i] with row[i + h] (masked loads supply the +0.0
padding), levels h >= WIDTH combine whole vectors i and i + h, and the last levels (h < WIDTH)
combine lanes of one register. Rows of up to 64 vectors stay in registers throughout; longer rows go
through a scratch buffer in passes that each do up to four levels at once (reading 16 streams, which
is still exactly the tree's order), until 16 vectors are left. A few very long rows are split across
threads pass by pass (`reduce_long_rows`).

rowmax does not need the tree: max2 is commutative and associative, so any order gives the same
result. It maps each float to an integer key whose signed order is max2's order on non-NaN values
(+0.0 above -0.0), takes the integer maximum (a reduction LLVM vectorises without reassociating
floats) and tracks NaN separately. rowargmax scans for the first NaN or the first element equal to
the maximum. Work is split by rows or, for a long row, into disjoint pieces of one tree level, so
thread count and row blocking cannot change any operation.

`reduce_serial(op, x, row_stride, rows, n, out)` / `reduce_parallel(...)`: x and out are byte
addresses; rows of x are contiguous (unit column stride); out receives float32 bit patterns for
OP_SUM / OP_MAX and int64 for OP_ARGMAX.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.extending import intrinsic

from protocol.semantics.floats import CANONICAL_NAN_BITS
from prover.kernels import _host

OP_SUM, OP_MAX, OP_ARGMAX = range(3)
ROWS_PER_TASK = 64
"""Rows per parallel task."""
PARALLEL_MIN_ELEMENTS = 1 << 16
"""Inputs with fewer elements run on the calling thread."""
REGISTER_VECTORS = 16
"""A tree level with at most this many vectors is finished in registers."""

WIDTH = _host.WIDTH
_CACHE = _host.CACHE
_NAN_BITS = np.int32(CANONICAL_NAN_BITS)
_MAGNITUDE = np.int32(0x7FFFFFFF)
_KEY_MIN = np.int32(-(2**31))

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


@intrinsic
def _f32_pointer(typingctx, address):
    """The float32 pointer at a byte address (for `numba.carray`)."""
    sig = types.CPointer(types.float32)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _F32.as_pointer())

    return sig, codegen


@intrinsic
def _i32_pointer(typingctx, address):
    """The int32 pointer at a byte address (float results are written as bit patterns)."""
    sig = types.CPointer(types.int32)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _I32.as_pointer())

    return sig, codegen


@intrinsic
def _i64_pointer(typingctx, address):
    """The int64 pointer at a byte address."""
    sig = types.CPointer(types.int64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _I64.as_pointer())

    return sig, codegen


class _TreeIR:
    """LLVM IR pieces of the rowsum halving tree for one vector width."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.vec = ir.VectorType(_F32, width)
        self.ivec = ir.VectorType(_I32, width)
        self.mvec = ir.VectorType(ir.IntType(1), width)
        self.padding = ir.Constant(self.vec, [0.0] * width)  # the reference pads with +0.0
        self.lanes = ir.Constant(self.ivec, list(range(width)))
        self.pointer = _F32.as_pointer()

    def vector_at(self, builder: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
        return builder.bitcast(builder.gep(base, [index], source_etype=_F32), self.vec.as_pointer())

    def load(self, builder: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
        return builder.load(self.vector_at(builder, base, index), align=4, typ=self.vec)

    def load_padded(self, builder: ir.IRBuilder, row: ir.Value, n: ir.Value, index: ir.Value) -> ir.Value:
        """row[index + l] for lanes l with index + l < n, +0.0 for the others (a masked load)."""
        name = f"llvm.masked.load.v{self.width}f32.p0"
        masked_load = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(self.vec, [self.pointer, _I32, self.mvec, self.vec]), name=name)
        valid = builder.sub(n, index)
        valid = builder.select(builder.icmp_signed("<", valid, ir.Constant(_I64, 0)), ir.Constant(_I64, 0), valid)
        valid = builder.select(builder.icmp_signed(">", valid, ir.Constant(_I64, self.width)),
                               ir.Constant(_I64, self.width), valid)
        count = builder.trunc(valid, _I32)
        undef = ir.Constant(self.ivec, ir.Undefined)
        splat = builder.shuffle_vector(builder.insert_element(undef, count, ir.Constant(_I32, 0)), undef,
                                       ir.Constant(self.ivec, [0] * self.width))
        mask = builder.icmp_signed("<", self.lanes, splat)
        address = builder.gep(row, [index], source_etype=_F32)
        return builder.call(masked_load, [address, ir.Constant(_I32, 4), mask, self.padding])

    @staticmethod
    def vector_tree(builder: ir.IRBuilder, vectors: list[ir.Value]) -> ir.Value:
        """Levels that combine whole vectors: v[i] = v[i] + v[i + t], t = len/2, …, 1."""
        while len(vectors) > 1:
            t = len(vectors) // 2
            vectors = [builder.fadd(vectors[i], vectors[i + t]) for i in range(t)]
        return vectors[0]

    def lane_tree(self, builder: ir.IRBuilder, v: ir.Value, start: int) -> ir.Value:
        """Levels s = start, start/2, …, 1 within one register: lane i += lane i + s."""
        step = start
        while step >= 1:
            shift = [i + step if i + step < self.width else i for i in range(self.width)]
            v = builder.fadd(v, builder.shuffle_vector(v, v, ir.Constant(self.ivec, shift)))
            step //= 2
        return builder.extract_element(v, ir.Constant(_I32, 0))

    def emit_pass(self, builder: ir.IRBuilder, source: ir.Value, padded_from: ir.Value | None,
                  streams: int, q: ir.Value, start: ir.Value, stop: ir.Value, dst: ir.Value) -> None:
        """dst[i] = vector_tree(source[i + j*q] for j < streams), i = start, start + width, … < stop.

        Those are `log2(streams)` consecutive tree levels at once. With `padded_from` = n, elements
        at or beyond n read as +0.0 (only streams j >= streams/2 can reach them: q*streams/2 < n);
        the iterations whose every element lies below n run a loop without masks first.
        Leaves the builder in the block after the loops; start < stop, all multiples of the width.
        """
        if padded_from is None:
            self._emit_pass_loop(builder, source, None, streams, q, start, stop, dst)
            return
        w = ir.Constant(_I64, self.width)
        # i + (streams-1)*q + width <= n  ⇔  i < n - (streams-1)*q - width + 1, rounded to the width
        reach = builder.sub(padded_from, builder.mul(q, ir.Constant(_I64, streams - 1)))
        bound = builder.mul(builder.sdiv(builder.sub(reach, ir.Constant(_I64, self.width - 1)), w), w)
        bound = builder.select(builder.icmp_signed("<", bound, start), start, bound)
        bound = builder.select(builder.icmp_signed(">", bound, stop), stop, bound)
        self._emit_pass_loop(builder, source, None, streams, q, start, bound, dst)
        self._emit_pass_loop(builder, source, padded_from, streams, q, bound, stop, dst)

    def _emit_pass_loop(self, builder: ir.IRBuilder, source: ir.Value, padded_from: ir.Value | None,
                        streams: int, q: ir.Value, start: ir.Value, stop: ir.Value, dst: ir.Value) -> None:
        entry = builder.block
        loop = builder.append_basic_block("tree_pass_loop")
        after = builder.append_basic_block("tree_pass_done")
        builder.cbranch(builder.icmp_signed("<", start, stop), loop, after)
        builder.position_at_end(loop)
        i = builder.phi(_I64)
        i.add_incoming(start, entry)
        loaded = []
        for j in range(streams):
            index = builder.add(i, builder.mul(q, ir.Constant(_I64, j)))
            if padded_from is not None and j >= streams // 2:
                loaded.append(self.load_padded(builder, source, padded_from, index))
            else:
                loaded.append(self.load(builder, source, index))
        builder.store(self.vector_tree(builder, loaded), self.vector_at(builder, dst, i), align=4)
        i_next = builder.add(i, ir.Constant(_I64, self.width))
        i.add_incoming(i_next, loop)
        builder.cbranch(builder.icmp_signed("<", i_next, stop), loop, after)
        builder.position_at_end(after)


def _make_sum_tree(width: int):
    """An intrinsic tree(row, n, half, buf) -> float32: the reference rowsum's halving tree.

    row: byte address of n >= 2 contiguous float32; half = P/2 with P = 2**ceil(log2 n); buf: byte
    address of at least `half` float32 of scratch (used only when half > REGISTER_VECTORS * width).
    """
    emit = _TreeIR(width)

    @intrinsic
    def tree(typingctx, row, n, half, buf):
        sig = types.float32(types.int64, types.int64, types.int64, types.int64)

        def codegen(context, builder, signature, args):
            row_v, n_v, half_v, buf_v = args
            row_p = builder.inttoptr(row_v, emit.pointer)
            buf_p = builder.inttoptr(buf_v, emit.pointer)
            zero = ir.Constant(_I64, 0)
            done = builder.append_basic_block("tree_done")
            results: list[tuple[ir.Value, ir.Block]] = []

            narrow = {h: builder.append_basic_block(f"tree_half_{h}") for h in (1, 2, 4, 8, 16, 32) if h < width}
            wide = builder.append_basic_block("tree_wide")
            in_registers = {k: builder.append_basic_block(f"tree_{k}") for k in (1, 2, 4, 8, 16, 32)}
            switch = builder.switch(half_v, wide)
            for h, block in narrow.items():
                switch.add_case(ir.Constant(_I64, h), block)
            for k, block in in_registers.items():
                switch.add_case(ir.Constant(_I64, k * width), block)

            # n <= width: the padded row fits one register; levels half, …, 1 on its lanes
            for h, block in narrow.items():
                builder.position_at_end(block)
                results.append((emit.lane_tree(builder, emit.load_padded(builder, row_p, n_v, zero), h),
                                builder.block))
                builder.branch(done)

            # half = k * width, k <= 16: everything in registers
            for k, block in in_registers.items():
                builder.position_at_end(block)
                level = []
                for i in range(k):
                    index = ir.Constant(_I64, i * width)
                    second = emit.load_padded(builder, row_p, n_v, builder.add(half_v, index))
                    level.append(builder.fadd(emit.load(builder, row_p, index), second))
                results.append((emit.lane_tree(builder, emit.vector_tree(builder, level), width // 2), builder.block))
                builder.branch(done)

            # longer rows: passes of up to 4 levels at once (S = 2 … 16 streams) write buf until 16
            # vectors are left; the first pass reads the row with its padding, the others buf
            builder.position_at_end(wide)
            limit = ir.Constant(_I64, REGISTER_VECTORS * width)
            passes = builder.append_basic_block("tree_passes")
            finish = builder.append_basic_block("tree_finish")
            padded = builder.add(half_v, half_v)
            builder.branch(passes)
            builder.position_at_end(passes)
            count = builder.phi(_I64)  # length of the current level: P, then what buf holds
            source = builder.phi(_I64)  # 0: the row, 1: buf
            count.add_incoming(padded, wide)
            source.add_incoming(zero, wide)
            ratio = builder.udiv(count, limit)
            streams = builder.select(builder.icmp_unsigned(">", ratio, ir.Constant(_I64, 16)),
                                     ir.Constant(_I64, 16), ratio)
            kind = builder.add(builder.mul(source, ir.Constant(_I64, 100)), streams)
            after = builder.append_basic_block("tree_pass_next")
            pass_switch = builder.switch(kind, finish)
            ends = []
            for from_row in (True, False):
                for streams_c in (2, 4, 8, 16):
                    block = builder.append_basic_block(f"tree_pass_{'row' if from_row else 'buf'}_{streams_c}")
                    pass_switch.add_case(ir.Constant(_I64, (0 if from_row else 100) + streams_c), block)
                    builder.position_at_end(block)
                    q = builder.udiv(count, ir.Constant(_I64, streams_c))
                    emit.emit_pass(builder, row_p if from_row else buf_p, n_v if from_row else None, streams_c,
                                   q, zero, q, buf_p)
                    ends.append((q, builder.block))
                    builder.branch(after)
            builder.position_at_end(after)
            next_count = builder.phi(_I64)
            for q, block in ends:
                next_count.add_incoming(q, block)
            count.add_incoming(next_count, after)
            source.add_incoming(ir.Constant(_I64, 1), after)
            builder.cbranch(builder.icmp_signed(">", next_count, limit), passes, finish)

            builder.position_at_end(finish)
            last = [emit.load(builder, buf_p, ir.Constant(_I64, v * width)) for v in range(REGISTER_VECTORS)]
            results.append((emit.lane_tree(builder, emit.vector_tree(builder, last), width // 2), builder.block))
            builder.branch(done)

            builder.position_at_end(done)
            result = builder.phi(_F32)
            for value, block in results:
                result.add_incoming(value, block)
            return result

        return sig, codegen

    return tree


def _make_pass(width: int, padded: bool):
    """An intrinsic tree_pass(source, n, q, start, stop, dst): four tree levels at once (16 streams
    q apart, `_TreeIR.emit_pass`) for dst[start … stop), start and stop multiples of the width, so
    that threads can share one long row. `padded`: source is the row itself, read as +0.0 from n on
    (the first pass); otherwise source is a full level of length 16*q (n unused)."""
    emit = _TreeIR(width)

    @intrinsic
    def tree_pass(typingctx, source, n, q, start, stop, dst):
        sig = types.void(*([types.int64] * 6))

        def codegen(context, builder, signature, args):
            source_v, n_v, q_v, start_v, stop_v, dst_v = args
            source_p = builder.inttoptr(source_v, emit.pointer)
            dst_p = builder.inttoptr(dst_v, emit.pointer)
            body = builder.append_basic_block("pass")
            done = builder.append_basic_block("pass_done")
            builder.cbranch(builder.icmp_signed("<", start_v, stop_v), body, done)
            builder.position_at_end(body)
            emit.emit_pass(builder, source_p, n_v if padded else None, 16, q_v, start_v, stop_v, dst_p)
            builder.branch(done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return sig, codegen

    return tree_pass


_sum_tree = _make_sum_tree(WIDTH)
_row_pass = _make_pass(WIDTH, padded=True)
_level_pass = _make_pass(WIDTH, padded=False)


@njit(inline="always")
def _key(v):
    """An int32 whose signed order is max2's order on non-NaN floats (-0.0 just below +0.0)."""
    b = np.float32(v).view(np.int32)
    return np.int32(b ^ ((b >> 31) & _MAGNITUDE))


@njit(inline="always")
def _max_key(row):
    """(largest key, whether the row holds a NaN); loops from 0 so they vectorise."""
    best = _KEY_MIN
    nan = False
    for i in range(row.shape[0]):
        k = _key(row[i])
        best = k if k > best else best
    for i in range(row.shape[0]):
        nan |= row[i] != row[i]
    return best, nan


@njit(cache=_CACHE, error_model="numpy")
def _reduce_rows(op, x, row_stride, n, out, first, last):
    """Reduce rows first … last-1 of the [rows, n] float32 at address x into out."""
    half = 1
    while 2 * half < n:
        half *= 2
    buf = np.empty(max(half, WIDTH), np.float32)
    if op == OP_SUM:
        bits = carray(_i32_pointer(out), last)
        for r in range(first, last):
            address = x + 4 * r * row_stride
            if n == 0:
                value = np.float32(0.0)
            elif n == 1:
                value = carray(_f32_pointer(address), 1)[0]
            else:
                value = _sum_tree(address, n, half, buf.ctypes.data)
            bits[r] = _NAN_BITS if value != value else np.float32(value).view(np.int32)
    elif op == OP_MAX:
        bits = carray(_i32_pointer(out), last)
        for r in range(first, last):
            best, nan = _max_key(carray(_f32_pointer(x + 4 * r * row_stride), n))
            bits[r] = _NAN_BITS if nan else np.int32(best ^ ((best >> 31) & _MAGNITUDE))
    else:
        index = carray(_i64_pointer(out), last)
        for r in range(first, last):
            row = carray(_f32_pointer(x + 4 * r * row_stride), n)
            best, nan = _max_key(row)
            maximum = np.int32(best ^ ((best >> 31) & _MAGNITUDE)).view(np.float32)
            found = 0
            for i in range(n):
                if (row[i] != row[i]) if nan else (row[i] == maximum):  # == makes -0.0 and +0.0 equal
                    found = i
                    break
            index[r] = found


@njit(cache=_CACHE, error_model="numpy")
def reduce_serial(op, x, row_stride, rows, n, out):
    """All rows on the calling thread."""
    _reduce_rows(op, x, row_stride, n, out, 0, rows)


@njit(cache=_CACHE, parallel=True, error_model="numpy")
def reduce_parallel(op, x, row_stride, rows, n, out):
    """Blocks of ROWS_PER_TASK rows on numba's threads."""
    tasks = (rows + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for t in prange(tasks):
        _reduce_rows(op, x, row_stride, n, out, t * ROWS_PER_TASK, min(rows, (t + 1) * ROWS_PER_TASK))


LONG_ROW = 1 << 16
"""Rows at least this long, when there are few of them, are each split across threads."""
LONG_ROW_CHUNKS = 16
"""Pieces each pass over a long row is split into."""
SERIAL_TAIL = 16 * REGISTER_VECTORS * 16
"""Levels at most this long finish on one thread (one more pass and the registers)."""


@njit(cache=_CACHE, parallel=True, error_model="numpy")
def reduce_long_rows(op, x, row_stride, rows, n, out):
    """OP_SUM or OP_MAX of a few rows with n >= LONG_ROW, each row's work shared by the threads.

    Sum: passes of four tree levels (16 streams), each split into pieces across threads, write buf
    (in place after the first: a piece writes only below q and reads its own slots there), until at
    most SERIAL_TAIL values are left; their tree is `_sum_tree`. The same operations as `_sum_tree`
    on the whole row. Max: the maximum of the pieces' maxima (max2 is associative and commutative).
    """
    half = 1
    while 2 * half < n:
        half *= 2
    q = 2 * half // 16
    piece = (n + LONG_ROW_CHUNKS - 1) // LONG_ROW_CHUNKS
    buf = np.empty(q, np.float32)
    scratch = np.empty(max(SERIAL_TAIL, WIDTH), np.float32)
    keys = np.empty(LONG_ROW_CHUNKS, np.int32)
    nans = np.zeros(LONG_ROW_CHUNKS, np.bool_)
    bits = carray(_i32_pointer(out), rows)
    for r in range(rows):
        address = x + 4 * r * row_stride
        if op == OP_SUM:
            step = q // LONG_ROW_CHUNKS  # q >= 4096 is a power of two: step is a multiple of WIDTH
            for c in prange(LONG_ROW_CHUNKS):
                _row_pass(address, n, q, c * step, (c + 1) * step, buf.ctypes.data)
            count = q
            while count > SERIAL_TAIL:
                count //= 16
                step = count // LONG_ROW_CHUNKS
                for c in prange(LONG_ROW_CHUNKS):
                    _level_pass(buf.ctypes.data, 0, count, c * step, (c + 1) * step, buf.ctypes.data)
            value = _sum_tree(buf.ctypes.data, count, count // 2, scratch.ctypes.data)
            bits[r] = _NAN_BITS if value != value else np.float32(value).view(np.int32)
        else:
            row = carray(_f32_pointer(address), n)
            for c in prange(LONG_ROW_CHUNKS):
                start = min(n, c * piece)
                keys[c], nans[c] = _max_key(row[start : min(n, start + piece)])
            best = _KEY_MIN
            nan = False
            for c in range(LONG_ROW_CHUNKS):
                best = keys[c] if keys[c] > best else best
                nan |= nans[c]
            bits[r] = _NAN_BITS if nan else np.int32(best ^ ((best >> 31) & _MAGNITUDE))
