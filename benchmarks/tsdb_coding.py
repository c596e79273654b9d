"""Benchmark (a): erasure-coding throughput of zflow's RLNC against ISA-L (pyeclib) and zfec.

Same random data, same (k, n), same run. Throughput is original data bytes / wall time (best of
``--repeat``). Decode is the worst case for a systematic code: the first n-k DATA fragments are
lost, so n-k of the k outputs must be computed from coded fragments.

Rows:
* ``zflow``          - the backend this machine picks (GFNI, else AVX2, else portable numba)
* ``zflow-avx2``     - split nibble tables with ``vpshufb`` (x86 without GFNI)
* ``zflow-numba``    - the portable numba kernel (64-bit packed doubling; ARM, old x86)
* ``zflow-numpy``    - the numpy table-lookup fallback (no numba), on a smaller input;
  together these are the "before/after" of the kernel work
* ``isa-l (pyeclib)`` - ``ECDriver(ec_type="isa_l_rs_vand")``, Reed-Solomon in ISA-L's assembly
* ``zfec``           - Reed-Solomon in C (Rizzo's fec)
* ``isa-l kernel`` vs ``zflow kernel`` - the bare kernels, ISA-L's ``ec_encode_data`` through
  ctypes (the libisal inside pyeclib's wheel) against zflow's region matmul, both into
  preallocated buffers; decode = inverting and rebuilding only the lost data fragments

Each API is used as it is meant to be: bytes in -> fragments out, fragments in -> bytes out
(pyeclib adds its fragment headers; zflow's numbers exclude its fragment container, whose CRC
pass is measured separately as ``zflow pack+crc``).

    python benchmarks/tsdb_coding.py            # 8 and 64 MiB objects, 5 repeats
    python benchmarks/tsdb_coding.py --quick    # 4 MiB, 3 repeats

The benchmark re-runs itself with glibc told to keep freed memory (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``): by default every multi-MB output buffer is mmapped, freed and
page-faulted again on the next call, and which library pays for that depends on what ran just
before it (pyeclib drops from ~4 to ~0.8 GB/s when interleaved with anything else). With the
memory kept, all of them measure coding, not page faults. ``--page-faults`` keeps the default
allocator behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zflow.tsdb.coding import fragments, gf256, rlnc
from zflow.tsdb.coding import kernels as gfkernels

GB = 1e9


class Timer:
    """Best-of-N timing, interleaved: every repeat runs every case, round-robin, so a burst of
    load from other processes on a shared machine hits all systems alike. Each timed call follows
    an untimed one of the same case: pyeclib is 3x slower right after another library freed
    large buffers (allocator/page-fault state), which would be unfair to it."""

    def __init__(self) -> None:
        self.cases: dict[str, tuple[Callable[[], Any], int]] = {}
        self.best: dict[str, float] = {}

    def add(self, name: str, fn: Callable[[], Any], nbytes: int) -> None:
        fn()  # warm-up (numba compile / cache load, page faults of the inputs)
        self.cases[name] = (fn, nbytes)
        self.best[name] = float("inf")

    def run(self, repeat: int) -> dict[str, float]:
        for _ in range(repeat):
            for name, (fn, _n) in self.cases.items():
                fn()  # untimed: the allocator and caches settle into this case's own state
                t0 = time.perf_counter()
                fn()
                self.best[name] = min(self.best[name], time.perf_counter() - t0)
        return {name: self.cases[name][1] / t / GB for name, t in self.best.items()}


def add_zflow(timer: Timer, tag: str, data: bytes, k: int, n: int, backend: str | None = None) -> None:
    params = rlnc.CodingParams(k, n, seed=1)
    arr = np.frombuffer(data, dtype=np.uint8).reshape(k, -1)
    coded = pinned(lambda: rlnc.encode(arr, params), backend)()
    m = n - k
    avail = {j: arr[j] for j in range(m, k)}
    avail.update({k + i: coded[i] for i in range(m)})
    decoded = pinned(lambda: rlnc.decode(avail, params), backend)()
    assert decoded.tobytes() == data, f"{tag} decode mismatch"
    timer.add(f"{tag}/enc", pinned(lambda: rlnc.encode(arr, params), backend), len(data))
    timer.add(f"{tag}/dec", pinned(lambda: rlnc.decode(avail, params), backend), len(data))


def add_pack(timer: Timer, data: bytes, k: int, n: int) -> None:
    params = rlnc.CodingParams(k, n, seed=1)
    arr = np.frombuffer(data, dtype=np.uint8).reshape(k, -1)
    timer.add("zflow pack+crc/enc", lambda: fragments.make_fragments(arr, params), len(data))


def add_isal(timer: Timer, data: bytes, k: int, n: int) -> str | None:
    try:
        from pyeclib.ec_iface import ECDriver

        drv = ECDriver(k=k, m=n - k, ec_type="isa_l_rs_vand")
    except Exception as exc:  # not installed, or liberasurecode without ISA-L
        return f"unavailable ({type(exc).__name__}: {exc})"
    frags = drv.encode(data)
    survivors = frags[n - k:]  # fragments 0..m-1 (data) lost
    assert drv.decode(survivors) == data, "pyeclib decode mismatch"
    timer.add("isa-l (pyeclib)/enc", lambda: drv.encode(data), len(data))
    timer.add("isa-l (pyeclib)/dec", lambda: drv.decode(survivors), len(data))
    return None


def _isal_lib() -> Any:
    """ISA-L itself, as bundled in pyeclib's wheel (``pyeclib.libs/libisal*``), via ctypes."""
    import ctypes
    import glob

    import pyeclib

    found = glob.glob(os.path.join(os.path.dirname(pyeclib.__file__), "..", "pyeclib.libs", "libisal*"))
    return ctypes.CDLL(found[0]) if found else ctypes.CDLL("libisal.so.2")


def add_kernels(timer: Timer, data: bytes, k: int, n: int) -> str | None:
    """Kernel against kernel: ISA-L's ``ec_encode_data`` (Cauchy RS) and zflow's region matmul,
    both writing into preallocated buffers; decode rebuilds only the n-k lost data fragments."""
    import ctypes

    try:
        lib = _isal_lib()
    except (ImportError, OSError) as exc:
        return f"unavailable ({exc})"
    m = n - k
    arr = np.frombuffer(data, dtype=np.uint8).reshape(k, -1)
    size = arr.shape[1]
    ptrs = ctypes.c_void_p * k
    gen = np.zeros(n * k, dtype=np.uint8)
    lib.gf_gen_cauchy1_matrix(gen.ctypes.data_as(ctypes.c_void_p), n, k)
    tables = np.zeros(k * m * 32, dtype=np.uint8)
    coding = np.empty((m, size), dtype=np.uint8)
    src = ptrs(*[arr[j].ctypes.data for j in range(k)])
    dst = (ctypes.c_void_p * m)(*[coding[i].ctypes.data for i in range(m)])

    keep = [arr, coding, tables]  # ctypes pointers below do not keep their buffers alive

    def isal_encode() -> None:
        assert keep
        lib.ec_init_tables(k, m, gen[k * k:].ctypes.data_as(ctypes.c_void_p),
                           tables.ctypes.data_as(ctypes.c_void_p))
        lib.ec_encode_data(size, k, m, tables.ctypes.data_as(ctypes.c_void_p), src, dst)

    isal_encode()
    survivors = list(range(m, n))  # data 0..m-1 lost
    stacked = np.vstack([arr, coding])
    sub = gen.reshape(n, k)[survivors].copy()
    inv = np.zeros(k * k, dtype=np.uint8)
    rebuilt = np.empty((m, size), dtype=np.uint8)
    sptrs = ptrs(*[stacked[i].ctypes.data for i in survivors])
    rptrs = (ctypes.c_void_p * m)(*[rebuilt[i].ctypes.data for i in range(m)])
    dtables = np.zeros(k * m * 32, dtype=np.uint8)

    keep += [stacked, rebuilt, dtables, inv, sub]

    def isal_decode() -> None:
        work = sub.copy()  # gf_invert_matrix destroys its input
        lib.gf_invert_matrix(work.ctypes.data_as(ctypes.c_void_p), inv.ctypes.data_as(ctypes.c_void_p), k)
        lib.ec_init_tables(k, m, inv.ctypes.data_as(ctypes.c_void_p), dtables.ctypes.data_as(ctypes.c_void_p))
        lib.ec_encode_data(size, k, m, dtables.ctypes.data_as(ctypes.c_void_p), sptrs, rptrs)

    isal_decode()
    assert rebuilt.tobytes() == arr[:m].tobytes(), "ISA-L kernel decode mismatch"
    timer.add("isa-l kernel/enc", isal_encode, len(data))
    timer.add("isa-l kernel/dec", isal_decode, len(data))

    params = rlnc.CodingParams(k, n, seed=1)
    zcoded = np.empty((m, size), dtype=np.uint8)
    zout = [zcoded[i] for i in range(m)]
    gf256.matmul_region(params.coefficients(), arr, out=zout)
    avail = {j: arr[j] for j in range(m, k)}
    avail.update({k + i: zcoded[i] for i in range(m)})
    zrebuilt = np.empty((m, size), dtype=np.uint8)
    zr = [zrebuilt[i] for i in range(m)]

    def zflow_decode() -> None:  # what a degraded read does: plan (cached), then one matmul
        plan = rlnc._plan(tuple(sorted(avail)), params, None, k)
        gf256.matmul_region(plan.inv[list(range(m))], [avail[i] for i in plan.basis], out=zr)

    zflow_decode()
    assert zrebuilt.tobytes() == arr[:m].tobytes(), "zflow kernel decode mismatch"
    timer.add("zflow kernel/enc", lambda: gf256.matmul_region(params.coefficients(), arr, out=zout), len(data))
    timer.add("zflow kernel/dec", zflow_decode, len(data))
    return None


def add_zfec(timer: Timer, data: bytes, k: int, n: int) -> str | None:
    try:
        import zfec
    except ImportError as exc:
        return f"unavailable ({exc})"
    size = len(data) // k
    blocks = tuple(data[i * size:(i + 1) * size] for i in range(k))
    enc, dec = zfec.Encoder(k, n), zfec.Decoder(k, n)
    wanted = tuple(range(k, n))
    coded = enc.encode(blocks, wanted)
    m = n - k
    have = tuple(coded) + blocks[m:]  # zfec wants a primary block j at position j
    nums = tuple(range(k, n)) + tuple(range(m, k))
    out = dec.decode(have, nums)
    assert b"".join(bytes(x) for x in out) == data, "zfec decode mismatch"
    timer.add("zfec/enc", lambda: enc.encode(blocks, wanted), len(data))
    timer.add("zfec/dec", lambda: dec.decode(have, nums), len(data))
    return None


def pinned(fn: Callable[[], Any], backend: str | None) -> Callable[[], Any]:
    """``fn`` with the region kernels forced to ``backend`` while it runs."""
    if backend is None:
        return fn

    def run() -> Any:
        with gfkernels.forced(backend):
            return fn()

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 MiB objects, 3 repeats")
    ap.add_argument("--mib", type=int, action="append", default=None,
                    help="object size in MiB, repeatable (default 8 and 64; quick 4)")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--page-faults", action="store_true",
                    help="keep glibc's default (fresh, page-faulting) buffers for every call")
    args = ap.parse_args(argv)
    if not args.page_faults and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 30), MALLOC_TRIM_THRESHOLD_=str(1 << 32))
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    sizes = args.mib or ([4] if args.quick else [8, 64])
    repeat = args.repeat or (3 if args.quick else 5)

    rng = np.random.default_rng(42)
    print(f"# zflow RLNC vs ISA-L (pyeclib) vs zfec - objects of {sizes} MiB, best of {repeat}")
    alloc = "default allocator" if args.page_faults else "freed memory kept (MALLOC_*_THRESHOLD_)"
    print(f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
          f"zflow kernel backend: {gfkernels.backend()}, {alloc}", flush=True)
    results: dict[str, Any] = {"repeat": repeat, "backend": gfkernels.backend(), "cases": {}}
    for mib, (k, n) in ((m, c) for m in sizes for c in ((10, 14), (4, 6))):
        size = (mib << 20) // (k * 64) * (k * 64)
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        small = data[: max(k * 64, size // 16 // (k * 64) * (k * 64))]
        timer = Timer()
        add_zflow(timer, "zflow", data, k, n)
        others = [b for b in gfkernels.available_backends() if b != results["backend"]]
        for b in others:
            add_zflow(timer, f"zflow-{b}", small if b == "numpy" else data, k, n, backend=b)
        missing = {name: why for name, why in (("isa-l (pyeclib)", add_isal(timer, data, k, n)),
                                               ("zfec", add_zfec(timer, data, k, n)),
                                               ("isa-l kernel", add_kernels(timer, data, k, n))) if why}
        add_pack(timer, data, k, n)
        gbps = timer.run(repeat)
        rows: dict[str, Any] = {}
        for case, val in gbps.items():
            name, op = case.rsplit("/", 1)
            rows.setdefault(name, {})[op] = val
        print(f"\n{mib} MiB, (k, n) = ({k}, {n})  encode GB/s   decode GB/s (lose {n - k} data fragments)")
        for name, val in rows.items():
            dec = f"{val['dec']:>10.2f}" if "dec" in val else "     (container: encode + header + CRC32 per 64 KiB)"
            print(f"  {name:<18} {val['enc']:>10.2f}   {dec}")
        for name, why in missing.items():
            print(f"  {name:<18} {why}")
        pairs = [("zflow", base) for base in ("isa-l (pyeclib)", "zfec", *(f"zflow-{b}" for b in others))]
        pairs.append(("zflow kernel", "isa-l kernel"))
        for top, base in pairs:
            z, b = rows.get(top), rows.get(base)
            if z and b:
                print(f"  ratio {top} / {base:<16} encode {z['enc'] / b['enc']:6.2f}x   "
                      f"decode {z['dec'] / b['dec']:6.2f}x")
        results["cases"][f"{mib}MiB,{k},{n}"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
