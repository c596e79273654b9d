"""Fetching sub-column rows by byte range, one multi-range request per fragment per phase.

A phase collects ``(object, sub-column, rows)`` requests, turns rows into stream byte spans,
drops bytes already fetched, coalesces spans (see below), maps them through the layout's segments
to fragment offsets, groups them by location and issues one ``get_ranges`` per fragment key,
locations in parallel. When a location is down (or a fragment is missing) the same byte ranges
are fetched from any k live fragments of the object and decoded for just those ranges.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

import numpy as np

from storage_backends.base import CorruptFragment, KeyNotFound, LocationUnavailable, gather
from storage_backends.fragment_format import PAYLOAD_OFFSET, chunk_crcs
from zflow.errors import RuntimeFailure
from zflow.tsdb.catalog.records import ObjectMeta, fragment_key
from zflow.tsdb.layout import bitpack
from zflow.tsdb.layout.object_layout import SubColumn

if TYPE_CHECKING:
    from zflow.tsdb.dataset import Dataset

# Coalescing policy per location. Remote (HTTP, Zenoh): merge two ranges when the gap costs
# fewer wire bytes than another range would, about 30 (16 in the compact response, ~14 in the
# request). Local directory: a range costs no wire bytes but ~1 us of CPU, so merge the smallest
# gaps first within a byte budget of LOCAL_BUDGET x the bytes needed (efficiency stays >= 0.95
# while 10^5-range plans shrink severalfold).
REMOTE_GAP = 30
LOCAL_BUDGET = 0.05


class Fetcher:
    def __init__(self, ds: Dataset, gap: int | None = None, verify: bool = False, checked: bool = True):
        self.ds = ds
        self.verify = verify  # end to end: whole chunks + CRCs cross the wire, checked here
        self.checked = checked and not verify  # the location checks CRCs before serving
        self._lock = threading.Lock()
        self.corrupt_chunks = 0
        self.why: dict[str, str] = {}  # fragment key -> why it could not be read (for errors)
        self.gap = gap
        self.down: set[int] = set(ds.down)
        self.bufs: dict[tuple[str, str], np.ndarray] = {}
        self.have: dict[tuple[str, str], np.ndarray] = {}
        self.touched: set[tuple[str, str]] = set()  # sub-columns with some bytes fetched
        names = [s.name for s in ds.stores]
        self.per_loc = {n: {"bytes": 0, "requests": 0, "ranges": 0} for n in names}
        self.needed = 0
        self.value_bytes = 0.0
        self.degraded_ranges = 0
        self.phases = 0

    def gap_for(self, loc: int) -> int | None:
        """A fixed coalescing gap in bytes, or None for the local byte-budget policy."""
        if self.gap is not None:
            return self.gap
        store = self.ds.stores[loc]
        gap = getattr(store, "range_overhead", None)
        if gap is None:
            return None if type(store).__name__ == "LocalDirStore" else REMOTE_GAP
        return int(gap)

    @staticmethod
    def _budget_gap(s: np.ndarray, r: np.ndarray) -> int:
        """Largest gap such that merging every gap up to it adds <= LOCAL_BUDGET of the bytes."""
        gaps = s[1:] - r[:-1]
        gaps = np.sort(gaps[gaps > 0])
        if len(gaps) == 0:
            return 0
        needed = int((r[-1] - s[0]) - gaps.sum())
        k = int(np.searchsorted(np.cumsum(gaps), LOCAL_BUDGET * needed, side="right"))
        return int(gaps[k - 1]) if k else 0

    # ---- buffers -----------------------------------------------------------------------------
    def _buf(self, meta: ObjectMeta, sub: str) -> tuple[np.ndarray, np.ndarray]:
        key = (meta.oid, sub)
        if key not in self.bufs:
            size = meta.layout.subcolumns[sub].stream_size
            self.bufs[key] = np.zeros(size + 16, dtype=np.uint8)
            self.have[key] = np.zeros(size + 1, dtype=bool)
        return self.bufs[key], self.have[key]

    def values(self, meta: ObjectMeta, sub: str, rows: np.ndarray) -> np.ndarray:
        sc = meta.layout.subcolumns[sub]
        if sc.bits == 0:
            return np.zeros(len(rows), dtype=np.uint64)
        buf, _ = self._buf(meta, sub)
        return bitpack.unpack_rows(buf, rows, sc.bits)

    def stream(self, meta: ObjectMeta, sub: str) -> tuple[np.ndarray, int]:
        """The (padded, sparse) packed stream of a sub-column and its bit width."""
        return self._buf(meta, sub)[0], meta.layout.subcolumns[sub].bits

    def lookup(self, meta: ObjectMeta, sub: str, r0: int, n: int, table: np.ndarray) -> np.ndarray:
        """``table[value]`` of the rows ``[r0, r0 + n)`` (unpacked and looked up in one pass)."""
        sc = meta.layout.subcolumns[sub]
        if sc.bits == 0:
            return np.full(n, table[0], dtype=table.dtype)
        from zflow.tsdb.query.rowstates import lookup_run

        return lookup_run(self._buf(meta, sub)[0], r0, n, sc.bits, table)

    @staticmethod
    def _missing(have: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Per value: is any byte of ``[start, end)`` not yet fetched? A value spans at most 9
        bytes, so this looks at those bytes only (not a prefix sum over the whole stream)."""
        span = int((ends - starts).max(initial=0))
        if span > 9 or len(starts) * span > len(have):
            cs = np.concatenate([[0], np.cumsum(have[:-1], dtype=np.int64)])
            return (cs[ends] - cs[starts]) != (ends - starts)
        ok = np.ones(len(starts), dtype=bool)
        last = ends - 1
        for j in range(span):
            ok &= have[np.minimum(starts + j, last)]
        return ~ok

    # ---- one phase -----------------------------------------------------------------------------
    def fetch(self, items: list[tuple[ObjectMeta, str, np.ndarray]]) -> None:
        plan: dict[tuple[str, int], list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
        metas: dict[str, ObjectMeta] = {}
        for meta, sub, rows in items:
            sc = meta.layout.subcolumns[sub]
            b = sc.bits
            if b == 0 or len(rows) == 0:
                continue
            metas[meta.oid] = meta
            _, have = self._buf(meta, sub)
            rows = np.asarray(rows, dtype=np.int64)
            if (meta.oid, sub) not in self.touched and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
                self._plan_run(plan, meta, sc, sub, int(rows[0]), int(rows[-1]) + 1)
                continue
            starts = rows * b // 8
            ends = ((rows + 1) * b + 7) // 8
            if (meta.oid, sub) in self.touched:
                new = self._missing(have, starts, ends)
                if not new.any():
                    continue
            else:
                new = np.ones(len(rows), dtype=bool)
            self.value_bytes += int(new.sum()) * b / 8
            starts, ends = starts[new], ends[new]
            reach = np.maximum.accumulate(ends)
            # bytes needed: the distinct bytes holding the needed values (storage is byte-addressed)
            tight = np.nonzero(starts[1:] - reach[:-1] > 0)[0] + 1
            t_first = np.concatenate([[0], tight])
            t_last = np.concatenate([tight - 1, [len(starts) - 1]])
            self.needed += int((reach[t_last] - starts[t_first]).sum())
            rows = rows[new]
            frag_size = meta.layout.frag_size
            for row0, nrows, off in sc.segments:  # a row's bytes never leave its segment
                lo, hi = np.searchsorted(rows, [row0, row0 + nrows])
                if lo == hi:
                    continue
                s, r = starts[lo:hi], np.maximum.accumulate(ends[lo:hi])
                frag = off // frag_size
                gap = self.gap_for(meta.placement[frag])
                if gap is None:
                    gap = self._budget_gap(s, r)
                brk = np.nonzero(s[1:] - r[:-1] > gap)[0] + 1
                gs = s[np.concatenate([[0], brk])]
                ge = r[np.concatenate([brk - 1, [len(s) - 1]])]
                foff = off % frag_size + (gs - row0 * b // 8)
                plan[(meta.oid, frag)].append((sub, foff, ge - gs, gs))
        if plan:
            self.phases += 1
            requests = {}
            for key, chunks in plan.items():
                requests[key] = (np.concatenate([c[1] for c in chunks]), np.concatenate([c[2] for c in chunks]))
            got = self._execute(requests, metas)
            for key, chunks in plan.items():
                data = got[key]
                meta = metas[key[0]]
                pos = 0
                for sub, _, ln, sp in chunks:  # scatter each sub-column's ranges, vectorised
                    total = int(ln.sum())
                    buf, have = self._buf(meta, sub)
                    if len(ln) == 1:
                        buf[sp[0] : sp[0] + total] = data[pos : pos + total]
                        have[sp[0] : sp[0] + total] = True
                    else:
                        idx = np.repeat(sp - np.concatenate([[0], np.cumsum(ln)[:-1]]), ln) + np.arange(total)
                        buf[idx] = data[pos : pos + total]
                        have[idx] = True
                    self.touched.add((meta.oid, sub))
                    pos += total

    def _plan_run(self, plan: dict, meta: ObjectMeta, sc: SubColumn, sub: str, r0: int, r1: int) -> None:
        """Fast path for a contiguous row run: one byte range per segment, no per-row work."""
        b = sc.bits
        self.value_bytes += (r1 - r0) * b / 8
        s0, s1 = bitpack.byte_span(r0, r1, b)
        self.needed += s1 - s0
        frag_size = meta.layout.frag_size
        for row0, nrows, off in sc.segments:
            a, e = max(r0, row0), min(r1, row0 + nrows)
            if a >= e:
                continue
            g0, g1 = bitpack.byte_span(a, e, b)
            base = row0 * b // 8
            plan[(meta.oid, off // frag_size)].append(
                (sub, np.array([off % frag_size + g0 - base]), np.array([g1 - g0]), np.array([g0])))

    def fetch_whole(self, metas: list[ObjectMeta]) -> dict[tuple[str, int], np.ndarray]:
        """The naive plan: every data fragment's whole payload."""
        plan = {(m.oid, f): (np.zeros(1, dtype=np.int64), np.array([m.layout.frag_size]))
                for m in metas for f in range(m.layout.k)}
        self.phases += 1
        return self._execute(plan, {m.oid: m for m in metas})

    # ---- requests ----------------------------------------------------------------------------
    def _remote(self, locs: Iterable[int]) -> bool:
        return any(type(self.ds.stores[loc]).__name__ != "LocalDirStore" for loc in locs)

    def _execute(self, plan: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
                 metas: dict[str, ObjectMeta]) -> dict[tuple[str, int], np.ndarray]:
        """Every fragment's ranges, concatenated: one request per fragment, locations in
        parallel; fragments that cannot be read are decoded from k others (in parallel too)."""
        by_loc: dict[int, list[tuple[str, int]]] = defaultdict(list)
        lost: list[tuple[str, int]] = []
        for oid, frag in plan:
            loc = metas[oid].placement[frag]
            (lost if loc in self.down else by_loc[loc]).append((oid, frag))
        out: dict[tuple[str, int], np.ndarray] = {}

        def work(loc: int) -> list[tuple[str, int]]:
            failed = []
            for oid, frag in by_loc[loc]:
                key = fragment_key(self.ds.schema.name, oid, frag)
                got = self._try(loc, key, plan[(oid, frag)], metas[oid].layout.frag_size)
                if got is None:
                    failed.append((oid, frag))  # down, missing or corrupt: decode around it
                else:
                    out[(oid, frag)] = got
            return failed

        if len(by_loc) > 1 and self._remote(by_loc):  # overlap round trips; local preads need no threads
            with ThreadPoolExecutor(max_workers=min(8, len(by_loc))) as pool:
                for failed in pool.map(work, list(by_loc)):
                    lost += failed
        else:
            for loc in by_loc:
                lost += work(loc)
        if len(lost) > 1 and self._remote(range(len(self.ds.stores))):
            with ThreadPoolExecutor(max_workers=min(4, len(lost))) as pool:
                decoded = pool.map(lambda x: self._degraded(metas[x[0]], x[1], plan[x]), lost)
                out.update(zip(lost, decoded, strict=True))
        else:
            for oid, frag in lost:
                out[(oid, frag)] = self._degraded(metas[oid], frag, plan[(oid, frag)])
        return out

    def _try(self, loc: int, key: str, ranges: tuple[np.ndarray, np.ndarray], length: int) -> np.ndarray | None:
        """The ranges of one fragment, or None when it cannot be read (location marked down
        when unreachable, corrupt chunks counted)."""
        if loc in self.down:
            self.why[key] = f"{self.ds.stores[loc].name} is down"
            return None
        try:
            if self.verify:
                return self._get_verified(loc, key, ranges, length)
            return self._get(loc, key, ranges)
        except LocationUnavailable:
            self.down.add(loc)
            self.why[key] = f"{self.ds.stores[loc].name} is down"
        except CorruptFragment as exc:
            with self._lock:
                self.corrupt_chunks += max(1, len(exc.bad_chunks))
            self.why[key] = (f"chunk(s) {exc.bad_chunks} corrupt" if exc.bad_chunks
                             else "not a readable fragment")
        except KeyNotFound:
            self.why[key] = f"missing at {self.ds.stores[loc].name}"
        except Exception as exc:  # unreadable for another reason: decode around it, say why if it matters
            self.why[key] = f"{type(exc).__name__}: {exc}"
        return None

    def _account(self, name: str, ranges: int, nbytes: int) -> None:
        with self._lock:
            acc = self.per_loc[name]
            acc["requests"] += 1
            acc["ranges"] += ranges
            acc["bytes"] += nbytes

    def _get(self, loc: int, key: str, ranges: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        store = self.ds.stores[loc]
        starts = ranges[0] + PAYLOAD_OFFSET
        data, _offsets = store.get_ranges_concat(key, starts, starts + ranges[1], verify=self.checked)
        self._account(store.name, len(ranges[1]), int(ranges[1].sum()))
        return data

    def _get_verified(self, loc: int, key: str, ranges: tuple[np.ndarray, np.ndarray], length: int) -> np.ndarray:
        """Read whole checksum chunks around the ranges plus their CRCs from the trailer, in the
        same request, and check them here (end to end: trusts neither the location nor the
        wire); a chunk that fails its CRC makes the fragment count as lost (decoded from k
        others)."""

        chunk = self.ds.schema.chunk_size
        fo, ln = ranges
        c0 = np.sort(fo // chunk)
        c1 = np.sort((fo + ln - 1) // chunk + 1)
        # merge chunk intervals (sorted starts, running max of ends)
        reach = np.maximum.accumulate(c1)
        brk = np.nonzero(c0[1:] > reach[:-1])[0] + 1
        a = c0[np.concatenate([[0], brk])]
        b = reach[np.concatenate([brk - 1, [len(c0) - 1]])]
        p0, p1 = a * chunk, np.minimum(b * chunk, length)
        t0 = PAYLOAD_OFFSET + length + 4 * a
        starts = np.concatenate([p0 + PAYLOAD_OFFSET, t0])
        ends = np.concatenate([p1 + PAYLOAD_OFFSET, t0 + 4 * (b - a)])
        store = self.ds.stores[loc]
        data, off = store.get_ranges_concat(key, starts, ends)
        self._account(store.name, len(starts), int((ends - starts).sum()))
        n = len(a)
        bad = []
        for i in range(n):
            got = chunk_crcs(data[off[i]:off[i + 1]], chunk)
            want = np.frombuffer(data[off[n + i]:off[n + i + 1]].tobytes(), dtype="<u4")
            bad += (int(a[i]) + np.nonzero(got != want)[0]).tolist()
        if bad:
            raise CorruptFragment(f"{store.name}: {key}: {len(bad)} corrupted chunk(s)", bad)
        idx = np.searchsorted(p0, fo, side="right") - 1
        return gather(data, off[idx] + fo - p0[idx], ln)

    def _degraded(self, meta: ObjectMeta, frag: int, ranges: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The same ranges from k live fragments (asked in parallel when remote), decoded for
        just those ranges."""
        from zflow.tsdb.coding.rlnc import CodingParams, decode_ranges

        c = self.ds.schema.coding
        params = CodingParams(c.k, c.n, c.seed)
        with self._lock:
            self.degraded_ranges += len(ranges[1])
        cands = [j for j in range(c.n) if j != frag and meta.placement[j] not in self.down]
        length = meta.layout.frag_size
        avail: dict[int, np.ndarray] = {}

        def one(j: int) -> tuple[int, np.ndarray | None]:
            key = fragment_key(self.ds.schema.name, meta.oid, j)
            return j, self._try(meta.placement[j], key, ranges, length)

        if not self._remote(meta.placement[j] for j in cands):
            for j in cands:  # local preads: sequential is cheapest
                if len(avail) == c.k:
                    break
                _, got = one(j)
                if got is not None:
                    avail[j] = got
        else:  # k requests at once; each failure is replaced by the next candidate
            todo = iter(cands)
            with ThreadPoolExecutor(max_workers=c.k) as pool:
                pending: set = set()
                while True:
                    while len(pending) < c.k - len(avail):
                        nxt = next(todo, None)
                        if nxt is None:
                            break
                        pending.add(pool.submit(one, nxt))
                    if not pending or len(avail) >= c.k:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        j, got = fut.result()
                        if got is not None:
                            avail[j] = got
        if len(avail) < c.k:
            name = self.ds.schema.name
            whys = "; ".join(f"fragment {j}: {self.why.get(fragment_key(name, meta.oid, j), 'not tried')}"
                             for j in range(c.n) if j not in avail)
            raise RuntimeFailure(
                f"object {meta.oid}: cannot read the ranges of fragment {frag}: only {len(avail)} of the "
                f"k={c.k} fragments needed to decode them are readable ({whys}); "
                "`zflow tsdb verify` lists the damage, `zflow tsdb repair` rebuilds what it can")
        return decode_ranges(avail, params, want=[frag])[frag]

    def fetched(self) -> int:
        return sum(v["bytes"] for v in self.per_loc.values())

    def report(self) -> dict:
        return {
            "bytes_needed": self.needed,
            "value_bytes": round(self.value_bytes),
            "bytes_fetched": sum(v["bytes"] for v in self.per_loc.values()),
            "ranges": sum(v["ranges"] for v in self.per_loc.values()),
            "requests": sum(v["requests"] for v in self.per_loc.values()),
            "phases": self.phases,
            "per_location": self.per_loc,
            "degraded_ranges": self.degraded_ranges,
            "corrupt_chunks": self.corrupt_chunks,
            "locations_down": sorted(self.ds.stores[i].name for i in self.down),
        }
