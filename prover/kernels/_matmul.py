"""Fast CPU matrix products, bit-equal to `protocol.semantics.reference_mm` / `reference_bmm`.

Every output element follows the canonical order: acc = +0.0, then acc = fma(a[i,k], b[k,j], acc)
(one rounding) for k = 0 … K-1, NaN canonicalised. Speed comes from doing many such independent running sums at
once, never from reordering one:

- A register tile of ROWS x (VECTORS * WIDTH) accumulators (6 x 64 with 16-lane vectors on CPUs with
  AVX-512, 6 x 16 with 8 lanes otherwise), written directly as LLVM vector IR through numba
  intrinsics, because numba would keep a small local array in memory. Per k, the tile loads one row
  of B's panel, broadcasts one element of A per row, and does one `llvm.fma` on each accumulator
  (IEEE fusedMultiplyAdd: exact product and sum, one rounding; one instruction on CPUs with FMA).
- The whole k range runs inside one tile call, so each accumulator sees k strictly in order.
- A is read in place with any strides (the tile broadcasts single elements). B is packed into
  contiguous k-major panels when that pays (large B, or a transposed B, which is packed by 16x16
  in-register transposes). Columns left over after the main panels go through zero-padded narrow
  panels; a last partial row tile is recomputed as the tile of the last ROWS rows (or from a
  zero-padded copy of A when M < ROWS) and only its new rows are kept.
- No k-blocking: with the whole depth in one call there is no partial sum to reload, and a B panel
  (K x 64 floats) streams from L2 fast enough on the CPUs measured.
- Work is split over (batch, row chunk, column chunk) tasks; every task computes whole elements, so
  the split, the thread count and the batch size cannot change any element.

Tensors are handled by address: the Python wrappers in `prover.kernels` pass data pointers and
element strides, which keeps the per-call overhead near a microsecond.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from protocol.semantics.floats import CANONICAL_NAN_BITS
from prover.kernels import _host

_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


WIDTH = _host.WIDTH
"""Float32 lanes per vector register."""
ROWS = 6
"""Rows of A per register tile."""
VECTORS = 4 if WIDTH == 16 else 2
"""Vectors per tile row in the main tile (so its width is VECTORS * WIDTH columns)."""
PANEL = VECTORS * WIDTH
"""Columns of B per main panel."""
NARROW = WIDTH
"""Columns of B per narrow panel, used for the columns left over after the main panels."""
PARALLEL_MIN_FLOPS = 2.0e6
"""Products below this many flops (2*M*N*K per batch, summed) run on the calling thread only."""
PACK_MIN_ROW_TILES = 8
"""Pack a unit-stride B into panels only when at least this many row tiles reuse each panel …"""
PACK_MIN_BYTES = 512 * 1024
"""… and B holds at least this many bytes (smaller ones stay cache-resident read in place)."""
ROWS_PER_CHUNK = 16 * ROWS
"""Target rows of one task's chunk of A (kept in L2 while the task walks its panels)."""
ROW_BLOCK = 64
"""Rows of A per task when a k-strided A is copied into row order (`plan_row_packing`)."""

_CACHE = _host.CACHE


def _vector_pointer(builder: ir.IRBuilder, base: ir.Value, offset: ir.Value, vec: ir.VectorType) -> ir.Value:
    return builder.bitcast(builder.gep(base, [offset], source_etype=_F32), vec.as_pointer())


def _make_tile(width: int, rows: int, vectors: int):
    """A numba intrinsic computing one rows x (vectors*width) tile of C over the full depth.

    tile(a, a_row_stride, a_k_stride, b, b_k_stride, c, c_row_stride, depth): addresses are byte
    addresses of float32 data, strides count elements. For i < rows, j < vectors*width:
        acc = +0.0; for k in 0 … depth-1: acc = fma(A[i,k], B[k,j], acc)
        C[i,j] = acc, or the canonical NaN if acc is a NaN
    with A[i,k] at a + 4*(i*a_row_stride + k*a_k_stride), B[k,j] at b + 4*(k*b_k_stride + j),
    C[i,j] at c + 4*(i*c_row_stride + j).
    """
    vec = ir.VectorType(_F32, width)
    splat_mask = ir.Constant(ir.VectorType(_I32, width), [0] * width)

    @intrinsic
    def tile(typingctx, a, a_row_stride, a_k_stride, b, b_k_stride, c, c_row_stride, depth):
        sig = types.void(*([types.int64] * 8))

        def codegen(context, builder, signature, args):
            a_addr, a_rs, a_ks, b_addr, b_ks, c_addr, c_rs, depth_v = args
            pointer = _F32.as_pointer()
            a_ptr = builder.inttoptr(a_addr, pointer)
            b_ptr = builder.inttoptr(b_addr, pointer)
            c_ptr = builder.inttoptr(c_addr, pointer)

            def const(value: int) -> ir.Constant:
                return ir.Constant(_I64, value)

            a_rows = [builder.gep(a_ptr, [builder.mul(a_rs, const(i))], source_etype=_F32) for i in range(rows)]
            zero = ir.Constant(vec, [0.0] * width)
            undef = ir.Constant(vec, ir.Undefined)
            entry = builder.block
            body = builder.append_basic_block("tile_k")
            done = builder.append_basic_block("tile_done")
            builder.cbranch(builder.icmp_signed(">", depth_v, const(0)), body, done)

            builder.position_at_end(body)
            k = builder.phi(_I64)
            acc = [[builder.phi(vec) for _ in range(vectors)] for _ in range(rows)]
            k.add_incoming(const(0), entry)
            for row in acc:
                for phi in row:
                    phi.add_incoming(zero, entry)
            b_row = builder.gep(b_ptr, [builder.mul(k, b_ks)], source_etype=_F32)
            b_vec = [
                builder.load(_vector_pointer(builder, b_row, const(width * v), vec), align=4, typ=vec)
                for v in range(vectors)
            ]
            a_offset = builder.mul(k, a_ks)
            name = f"llvm.fma.v{width}f32"
            fma = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), name=name)
            updated = []
            for i in range(rows):
                a_val = builder.load(builder.gep(a_rows[i], [a_offset], source_etype=_F32), align=4, typ=_F32)
                a_vec = builder.shuffle_vector(builder.insert_element(undef, a_val, ir.Constant(_I32, 0)), undef, splat_mask)
                # the canonical step: a fused multiply-add, one rounding
                updated.append([builder.call(fma, [a_vec, b_vec[v], acc[i][v]]) for v in range(vectors)])
            k_next = builder.add(k, const(1))
            k.add_incoming(k_next, body)
            for i in range(rows):
                for v in range(vectors):
                    acc[i][v].add_incoming(updated[i][v], body)
            builder.cbranch(builder.icmp_signed("<", k_next, depth_v), body, done)

            builder.position_at_end(done)
            results = []
            for i in range(rows):
                for v in range(vectors):
                    phi = builder.phi(vec)
                    phi.add_incoming(zero, entry)
                    phi.add_incoming(updated[i][v], body)
                    results.append((i, v, phi))
            # NaN → the canonical NaN, selected on the bit patterns: LLVM regards all NaNs as
            # interchangeable and could fold a float select "NaN if v is NaN else v" into v
            ivec = ir.VectorType(_I32, width)
            nan_bits = ir.Constant(ivec, [CANONICAL_NAN_BITS] * width)
            for i, v, value in results:
                is_nan = builder.fcmp_unordered("uno", value, value)
                canonical = builder.select(is_nan, nan_bits, builder.bitcast(value, ivec))
                offset = builder.add(builder.mul(c_rs, const(i)), const(width * v))
                target = builder.bitcast(builder.gep(c_ptr, [offset], source_etype=_F32), ivec.as_pointer())
                builder.store(canonical, target, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _make_copy(width: int, vectors: int):
    """copy(dst, src): copy vectors*width float32 from byte address src to byte address dst."""
    vec = ir.VectorType(_F32, width)

    @intrinsic
    def copy(typingctx, dst, src):
        sig = types.void(types.int64, types.int64)

        def codegen(context, builder, signature, args):
            pointer = _F32.as_pointer()
            dst_ptr = builder.inttoptr(args[0], pointer)
            src_ptr = builder.inttoptr(args[1], pointer)
            for v in range(vectors):
                offset = ir.Constant(_I64, width * v)
                value = builder.load(_vector_pointer(builder, src_ptr, offset, vec), align=4, typ=vec)
                builder.store(value, _vector_pointer(builder, dst_ptr, offset, vec), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return copy


def _make_transpose(width: int):
    """transpose(dst, dst_stride, src, src_stride): dst[r*dst_stride + c] = src[c*src_stride + r].

    One width x width block, r, c < width; strides in elements. Loads `width` rows, swaps
    off-diagonal blocks of halving size in registers (log2(width) shuffle stages), stores.
    """
    vec = ir.VectorType(_F32, width)

    @intrinsic
    def transpose(typingctx, dst, dst_stride, src, src_stride):
        sig = types.void(*([types.int64] * 4))

        def codegen(context, builder, signature, args):
            pointer = _F32.as_pointer()
            dst_ptr = builder.inttoptr(args[0], pointer)
            src_ptr = builder.inttoptr(args[2], pointer)
            lines = []
            for r in range(width):
                offset = builder.mul(args[3], ir.Constant(_I64, r))
                lines.append(builder.load(_vector_pointer(builder, src_ptr, offset, vec), align=4, typ=vec))
            half = width // 2
            while half >= 1:
                low_mask = [p if p & half == 0 else width + p - half for p in range(width)]
                high_mask = [p + half if p & half == 0 else width + p for p in range(width)]
                for r in range(width):
                    if r & half == 0:
                        x, y = lines[r], lines[r + half]
                        lines[r] = builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(_I32, width), low_mask))
                        lines[r + half] = builder.shuffle_vector(
                            x, y, ir.Constant(ir.VectorType(_I32, width), high_mask)
                        )
                half //= 2
            for r in range(width):
                offset = builder.mul(args[1], ir.Constant(_I64, r))
                builder.store(lines[r], _vector_pointer(builder, dst_ptr, offset, vec), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return transpose


@intrinsic
def _load(typingctx, address):
    """The float32 at a byte address."""
    sig = types.float32(types.int64)

    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], _F32.as_pointer()), align=4, typ=_F32)

    return sig, codegen


@intrinsic
def _store(typingctx, address, value):
    """Store a float32 at a byte address."""
    sig = types.void(types.int64, types.float32)

    def codegen(context, builder, signature, args):
        builder.store(args[1], builder.inttoptr(args[0], _F32.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


_tile_main = _make_tile(WIDTH, ROWS, VECTORS)
_tile_narrow = _make_tile(WIDTH, ROWS, 1)
_copy_panel_row = _make_copy(WIDTH, VECTORS)
_transpose_block = _make_transpose(WIDTH)


# ---- the plan of one product -------------------------------------------------------------------
# Shapes: batch x [M,K] @ [K,N]. A element (t,i,k) at a + 4*(t*sat + i*sam + k*sak); likewise B with
# (sbt, sbk, sbn); C is a fresh contiguous [batch, M, N] at c. Columns are covered by `full` main
# panels of PANEL columns then `narrow` panels of NARROW columns (the last one maybe partial); rows by
# ceil(M/ROWS) row tiles (the last one maybe partial: it is computed as the tile of the last ROWS rows,
# or from a zero-padded copy of A when M < ROWS). Packed B of one batch: the packed main panels
# ([K][PANEL] each, only when pack_full), then the narrow panels ([K][NARROW] each, always).


@njit(cache=_CACHE)
def _count_panels(n: int) -> tuple[int, int]:
    full = n // PANEL
    narrow = (n - full * PANEL + NARROW - 1) // NARROW
    return full, narrow


@njit(cache=_CACHE)
def _packed_width(n: int, pack_full: bool) -> int:
    full, narrow = _count_panels(n)
    return (full * PANEL if pack_full else 0) + narrow * NARROW


@njit(cache=_CACHE)
def _pack_job(job, a, sat, sam, sak, b, sbt, sbk, sbn, m, depth, n, pack_full, a_tail, b_packed):
    """Pack job `job`: per batch, first A zero-padded to ROWS rows (only if M < ROWS), then B's
    packed panels (the main ones if pack_full, then the narrow ones)."""
    full, narrow = _count_panels(n)
    jobs_a = 1 if m < ROWS else 0
    jobs_b = (full if pack_full else 0) + narrow
    t = job // (jobs_a + jobs_b)
    j = job - t * (jobs_a + jobs_b)
    if j < jobs_a:
        # fewer rows than one tile: A zero-padded to ROWS rows, row-major [ROWS][K]
        dst = a_tail.ctypes.data + 4 * (t * ROWS * depth)
        for r in range(ROWS):
            for k in range(depth):
                value = np.float32(0.0)
                if r < m:
                    value = _load(a + 4 * (t * sat + r * sam + k * sak))
                _store(dst + 4 * (r * depth + k), value)
        return
    j -= jobs_a
    base = b_packed.ctypes.data + 4 * (t * depth * _packed_width(n, pack_full))
    src_batch = b + 4 * t * sbt
    if pack_full and j < full:
        dst = base + 4 * (j * depth * PANEL)
        col = j * PANEL
        if sbn == 1:
            for k in range(depth):
                _copy_panel_row(dst + 4 * (k * PANEL), src_batch + 4 * (k * sbk + col))
        elif sbk == 1:
            k0 = 0
            while k0 + WIDTH <= depth:
                for v in range(VECTORS):
                    _transpose_block(dst + 4 * (k0 * PANEL + v * WIDTH), PANEL,
                                     src_batch + 4 * ((col + v * WIDTH) * sbn + k0), sbn)
                k0 += WIDTH
            for k in range(k0, depth):
                for c in range(PANEL):
                    _store(dst + 4 * (k * PANEL + c), _load(src_batch + 4 * ((col + c) * sbn + k)))
        else:
            for k in range(depth):
                for c in range(PANEL):
                    _store(dst + 4 * (k * PANEL + c), _load(src_batch + 4 * (k * sbk + (col + c) * sbn)))
        return
    if pack_full:
        j -= full
    dst = base + 4 * ((full * PANEL if pack_full else 0) * depth + j * depth * NARROW)
    col = full * PANEL + j * NARROW
    width = min(NARROW, n - col)
    for k in range(depth):
        for c in range(NARROW):
            value = np.float32(0.0)
            if c < width:
                value = _load(src_batch + 4 * (k * sbk + (col + c) * sbn))
            _store(dst + 4 * (k * NARROW + c), value)


@njit(cache=_CACHE)
def _compute_job(job, chunks_m, chunks_n, a, sat, sam, sak, b, sbt, sbk, sbn, c, m, depth, n,
                 pack_full, a_tail, b_packed):
    """Compute job `job` = (batch, row chunk, column chunk): every element of its tiles, fully."""
    per_batch = chunks_m * chunks_n
    t = job // per_batch
    rest = job - t * per_batch
    cm = rest // chunks_n
    cn = rest - cm * chunks_n
    full, narrow = _count_panels(n)
    row_tiles = (m + ROWS - 1) // ROWS
    panels = full + narrow
    r0 = cm * row_tiles // chunks_m
    r1 = (cm + 1) * row_tiles // chunks_m
    p0 = cn * panels // chunks_n
    p1 = (cn + 1) * panels // chunks_n
    packed = b_packed.ctypes.data + 4 * (t * depth * _packed_width(n, pack_full))
    c_batch = c + 4 * (t * m * n)
    scratch = np.empty(ROWS * PANEL, np.float32)
    scratch_addr = scratch.ctypes.data
    for p in range(p0, p1):
        is_main = p < full
        if is_main:
            col = p * PANEL
            cols = PANEL
            if pack_full:
                b_addr = packed + 4 * (p * depth * PANEL)
                b_ks = PANEL
            else:
                b_addr = b + 4 * (t * sbt + col)
                b_ks = sbk
        else:
            q = p - full
            col = full * PANEL + q * NARROW
            cols = min(NARROW, n - col)
            b_addr = packed + 4 * (((full * PANEL) if pack_full else 0) * depth + q * depth * NARROW)
            b_ks = NARROW
        for r in range(r0, r1):
            row = r * ROWS
            rows = min(ROWS, m - row)
            skip = 0
            a_rs = sam
            a_ks = sak
            if rows == ROWS:
                a_addr = a + 4 * (t * sat + row * sam)
            elif m >= ROWS:
                # the last, partial row tile: recompute the tile ending at row m (each element's
                # value does not depend on its neighbours) and keep only its new rows
                a_addr = a + 4 * (t * sat + (m - ROWS) * sam)
                skip = ROWS - rows
            else:
                a_addr = a_tail.ctypes.data + 4 * (t * ROWS * depth)
                a_rs = depth
                a_ks = 1
            direct = rows == ROWS and (cols == PANEL if is_main else cols == NARROW)
            if direct:
                dst = c_batch + 4 * (row * n + col)
                dst_rs = n
            else:
                dst = scratch_addr
                dst_rs = PANEL
            if is_main:
                _tile_main(a_addr, a_rs, a_ks, b_addr, b_ks, dst, dst_rs, depth)
            else:
                _tile_narrow(a_addr, a_rs, a_ks, b_addr, b_ks, dst, dst_rs, depth)
            if not direct:
                for i in range(rows):
                    for j in range(cols):
                        _store(c_batch + 4 * ((row + i) * n + col + j), scratch[(skip + i) * PANEL + j])
    # keep the workspaces alive until every raw address into them has been used
    return a_tail.shape[0] + b_packed.shape[0]


@njit(cache=_CACHE)
def _workspaces(batch, m, depth, n, pack_full):
    tail = batch * ROWS * depth if m < ROWS else 1
    packed = batch * depth * _packed_width(n, pack_full)
    return np.empty(tail, np.float32), np.empty(max(1, packed), np.float32)


@njit(cache=_CACHE)
def _pack_job_count(batch, m, n, pack_full):
    full, narrow = _count_panels(n)
    return batch * ((1 if m < ROWS else 0) + (full if pack_full else 0) + narrow)


@njit(cache=_CACHE)
def gemm_serial(batch, m, depth, n, a, sat, sam, sak, b, sbt, sbk, sbn, c, pack_full):
    """C = A @ B on the calling thread (plan and addresses in the comment block above)."""
    a_tail, b_packed = _workspaces(batch, m, depth, n, pack_full)
    for job in range(_pack_job_count(batch, m, n, pack_full)):
        _pack_job(job, a, sat, sam, sak, b, sbt, sbk, sbn, m, depth, n, pack_full, a_tail, b_packed)
    for job in range(batch):
        _compute_job(job, 1, 1, a, sat, sam, sak, b, sbt, sbk, sbn, c, m, depth, n, pack_full, a_tail, b_packed)


@njit(cache=_CACHE)
def _pack_rows(task, blocks, a, sat, sam, sak, m, depth, rows):
    """Task `task` = (batch, block of ROW_BLOCK rows): copy those rows of A into row order at address
    `rows` ([batch][M][K] float32, contiguous): by WIDTH x WIDTH in-register transposes where A's rows are
    unit-strided (a transposed matrix), element by element elsewhere. Exact data movement."""
    t = task // blocks
    r0 = (task - t * blocks) * ROW_BLOCK
    r1 = min(m, r0 + ROW_BLOCK)
    stride = row_stride(depth)
    src = a + 4 * t * sat
    dst = rows + 4 * (t * m * stride)
    i = r0
    if sam == 1:
        while i + WIDTH <= r1:
            k = 0
            while k + WIDTH <= depth:
                _transpose_block(dst + 4 * (i * stride + k), stride, src + 4 * (i + k * sak), sak)
                k += WIDTH
            for kk in range(k, depth):
                for r in range(WIDTH):
                    _store(dst + 4 * ((i + r) * stride + kk), _load(src + 4 * (i + r + kk * sak)))
            i += WIDTH
    for row in range(i, r1):
        for k in range(depth):
            _store(dst + 4 * (row * stride + k), _load(src + 4 * (row * sam + k * sak)))


@njit(cache=_CACHE)
def row_stride(depth):
    """Floats between two rows of the row-ordered copy of A: the depth, padded by one cache line when
    rows would otherwise start a multiple of 4 KiB apart (and so fall into the same cache sets)."""
    return depth + 16 if depth % 1024 == 0 else depth


@njit(cache=_CACHE, parallel=True)
def gemm_parallel(batch, m, depth, n, a, sat, sam, sak, b, sbt, sbk, sbn, c, pack_full,
                  chunks_m, chunks_n, rows):
    """C = A @ B on numba's threads: parallel packing, then batch x chunks_m x chunks_n tasks. With `rows`
    the address of a [batch][M][K] float32 buffer (0: none), A is first copied there in row order and the
    tiles read the copy (`plan_row_packing`)."""
    a_tail, b_packed = _workspaces(batch, m, depth, n, pack_full)
    blocks = (m + ROW_BLOCK - 1) // ROW_BLOCK if rows != 0 else 0
    for task in prange(batch * blocks):
        _pack_rows(task, blocks, a, sat, sam, sak, m, depth, rows)
    # the operand the tiles read: the row-ordered copy, or A in place
    a_addr = rows if rows != 0 else a
    at = m * row_stride(depth) if rows != 0 else sat
    am = row_stride(depth) if rows != 0 else sam
    ak = 1 if rows != 0 else sak
    for job in prange(_pack_job_count(batch, m, n, pack_full)):
        _pack_job(job, a_addr, at, am, ak, b, sbt, sbk, sbn, m, depth, n, pack_full, a_tail, b_packed)
    for job in prange(batch * chunks_m * chunks_n):
        _compute_job(job, chunks_m, chunks_n, a_addr, at, am, ak, b, sbt, sbk, sbn, c, m, depth, n,
                     pack_full, a_tail, b_packed)


def plan_row_packing(m: int, n: int, sak: int) -> bool:
    """Whether A is copied into row order before a parallel product: when it is read k-strided (a
    transposed A, as in a weight gradient x.T @ g) and several panels of B reuse it. Read in place, each
    k of a row tile is another cache line and page, M floats apart (at M = 1024 they all map to the same
    cache sets); in row order a tile reads each row's k range sequentially."""
    return sak != 1 and n > PANEL and m >= ROWS


def plan_packing(batch: int, m: int, depth: int, n: int, sbn: int) -> bool:
    """Whether B's main panels are packed: always for a non-unit column stride, else when it pays."""
    if sbn != 1:
        return True
    row_tiles = -(-m // ROWS)
    return row_tiles >= PACK_MIN_ROW_TILES and depth * n * 4 >= PACK_MIN_BYTES


def plan_chunks(batch: int, m: int, n: int, threads: int) -> tuple[int, int]:
    """(chunks_m, chunks_n): a split of each batch's tiles into about 2 tasks per thread or more."""
    row_tiles = -(-m // ROWS)
    full = n // PANEL
    panels = full + -(-(n - full * PANEL) // NARROW)
    if batch >= 2 * threads:
        return 1, 1
    want = -(-2 * threads // batch)
    chunks_m = max(1, min(row_tiles, -(-m // ROWS_PER_CHUNK)))
    if chunks_m >= want:
        chunks_m = -(-chunks_m // threads) * threads  # a multiple of the thread count balances
        return min(chunks_m, row_tiles), 1
    chunks_n = max(1, min(panels, -(-want // chunks_m)))
    return chunks_m, chunks_n
