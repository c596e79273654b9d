"""verify (chunk checksums of every fragment) and repair (rebuild lost or corrupted fragments
and catalog replicas).

A lost fragment is regenerated with its original coefficient row from any k intact ones
(``combine_ranges``: one pass, no full decode), so the catalog's fragment map stays valid;
corrupted chunks are rebuilt chunk by chunk from the same ranges of k other fragments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zflow.tsdb import catalog as cat

if TYPE_CHECKING:
    from zflow.tsdb.store import Dataset


def _fetch(ds: Dataset, loc: int, key: str) -> tuple[str, bytes | None]:
    from storage_backends.base import KeyNotFound, LocationUnavailable

    try:
        return "ok", ds.stores[loc].get(key)
    except LocationUnavailable:
        return "unreachable", None
    except KeyNotFound:
        return "missing", None
    except Exception:
        return "missing", None


def verify(ds: Dataset) -> dict[str, Any]:
    from zflow.tsdb.fragments import FragmentError, verify_chunks

    out: dict[str, Any] = {"fragments": 0, "ok": 0, "missing": [], "corrupt": [], "unreachable": []}
    for m in ds.catalog.sorted_objects():
        for i, loc in enumerate(m.placement):
            out["fragments"] += 1
            key = cat.fragment_key(ds.name, m.oid, i)
            state, data = _fetch(ds, loc, key)
            where = f"{ds.stores[loc].name}:{key}"
            if state != "ok":
                out[state].append(where)
                continue
            try:
                bad = verify_chunks(data)
            except FragmentError as exc:
                out["corrupt"].append({"fragment": where, "error": str(exc)})
                continue
            if bad:
                out["corrupt"].append({"fragment": where, "chunks": bad})
            else:
                out["ok"] += 1
    return out


def repair(ds: Dataset, only: list[str] | None = None) -> dict[str, Any]:
    from zflow.tsdb.fragments import (
        FragmentError,
        pack_fragment,
        repair_chunks,
        unpack_fragment,
        verify_chunks,
    )
    from zflow.tsdb.rlnc import CodingParams, combine_ranges

    c = ds.schema.coding
    params = CodingParams(c.k, c.n, c.seed)
    names = [s.name for s in ds.stores]
    targets = {i for i, n in enumerate(names) if only is None or n in only}
    report: dict[str, Any] = {"rebuilt": [], "chunks_repaired": [], "catalog_entries": 0, "skipped": []}
    for m in ds.catalog.sorted_objects():
        blobs: dict[int, bytes] = {}
        broken: dict[int, str] = {}
        for i, loc in enumerate(m.placement):
            state, data = _fetch(ds, loc, cat.fragment_key(ds.name, m.oid, i))
            if state == "ok":
                try:
                    bad = verify_chunks(data)
                    blobs[i] = data
                    if bad:
                        broken[i] = "corrupt"
                except FragmentError:
                    broken[i] = "missing"
            else:
                broken[i] = state
        for i, state in broken.items():
            loc = m.placement[i]
            key = cat.fragment_key(ds.name, m.oid, i)
            if loc not in targets or state == "unreachable":
                report["skipped"].append(f"{names[loc]}:{key} ({state})")
                continue
            if state == "corrupt":
                fixed = repair_chunks(blobs[i], {j: b for j, b in blobs.items() if j != i})
                ds.stores[loc].put(key, fixed)
                report["chunks_repaired"].append(f"{names[loc]}:{key}")
                continue
            good = {j: unpack_fragment(b) for j, b in blobs.items() if j not in broken}
            if len(good) < c.k:
                report["skipped"].append(f"{names[loc]}:{key} (only {len(good)} intact fragments, need {c.k})")
                continue
            chosen = dict(list(good.items())[: c.k])
            payload = combine_ranges({j: f.payload for j, f in chosen.items()}, params.row(i),
                                     rows={j: f.row for j, f in chosen.items()})
            blob = pack_fragment(i, payload, params.row(i), n=c.n, seed=c.seed, chunk_size=ds.schema.chunk_size)
            ds.stores[loc].put(key, blob)
            report["rebuilt"].append(f"{names[loc]}:{key}")
    # catalog replicas
    from storage_backends.base import StoreError

    entries = {cat.schema_key(ds.name): ds.catalog.header()}
    entries.update({cat.object_key(ds.name, m.oid): m.to_dict() for m in ds.catalog.objects.values()})
    for i in sorted(targets):
        s = ds.stores[i]
        try:
            have = set(s.list(f"{ds.name}/catalog/"))
        except (StoreError, OSError):
            continue
        for key, value in entries.items():
            ok = key in have
            if ok:
                try:
                    ok = cat.unpack_entry(s.get(key)) is not None
                except (StoreError, OSError):
                    ok = False
            if not ok:
                s.put(key, cat.pack_entry(value))
                report["catalog_entries"] += 1
    return report
