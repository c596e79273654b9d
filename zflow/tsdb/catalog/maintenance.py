"""verify (chunk checksums of every fragment, checksums of every catalog replica) and repair
(rebuild lost or corrupted fragments and catalog replicas).

A lost fragment is regenerated with its original coefficient row from any k intact ones
(``combine_ranges``: one pass, no full decode), so the catalog's fragment map stays valid;
corrupted chunks are rebuilt chunk by chunk from the same ranges of k other fragments. A bad
catalog replica is rewritten from a good one, or, when every replica is bad, from the object
record its fragments carry (:func:`zflow.tsdb.catalog.records.read_record`); a rebuilt fragment gets its
record piece regenerated from k others like its payload. What cannot be repaired is
listed under ``failed`` (the CLI then exits 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage_backends.base import KeyNotFound, LocationUnavailable, StoreError
from storage_backends.fragment_format import (
    FragmentError,
    pack_fragment,
    unpack_fragment,
    verify_chunks,
)
from zflow.tsdb.catalog import records as cat

if TYPE_CHECKING:
    from zflow.tsdb.dataset import Dataset


def _fetch(ds: Dataset, loc: int, key: str) -> tuple[str, bytes | None]:
    try:
        return "ok", ds.stores[loc].get(key)
    except LocationUnavailable:
        return "unreachable", None
    except KeyNotFound:
        return "missing", None
    except Exception:
        return "missing", None


def verify(ds: Dataset) -> dict[str, Any]:
    """Chunk checksums of every fragment, checked by each location next to its data
    (``store.verify``): only verdicts cross the network, locations in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    out: dict[str, Any] = {"fragments": 0, "ok": 0, "missing": [], "corrupt": [], "unreachable": []}
    by_loc: dict[int, list[str]] = {}
    for m in ds.catalog.sorted_objects():
        for i, loc in enumerate(m.placement):
            by_loc.setdefault(loc, []).append(cat.fragment_key(ds.name, m.oid, i))

    def scrub(loc: int) -> list[tuple[str, str, Any]]:
        store, down = ds.stores[loc], False
        verdicts: list[tuple[str, str, Any]] = []
        for key in by_loc[loc]:
            where = f"{store.name}:{key}"
            if down:
                verdicts.append(("unreachable", where, None))
                continue
            try:
                bad = store.verify(key)
            except LocationUnavailable:
                down = True
                verdicts.append(("unreachable", where, None))
            except KeyNotFound:
                verdicts.append(("missing", where, None))
            except FragmentError as exc:
                verdicts.append(("corrupt", where, {"fragment": where, "error": str(exc)}))
            except (StoreError, OSError) as exc:
                verdicts.append(("corrupt", where, {"fragment": where, "error": str(exc)}))
            else:
                verdicts.append(("corrupt", where, {"fragment": where, "chunks": bad}) if bad
                                else ("ok", where, None))
        return verdicts

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(by_loc)))) as pool:
        results = list(pool.map(scrub, sorted(by_loc)))
        catalog = list(pool.map(lambda s: _catalog_states(ds, s), ds.stores))
    out.update(catalog_entries=0, catalog_corrupt=[], catalog_missing=[],
               objects_lost=[f"{oid}: {why}" for oid, why in sorted(ds.catalog.lost.items())])
    for states in catalog:
        for key, state in states.items():
            out["catalog_entries"] += 1
            if state != "ok":
                out[f"catalog_{state}"].append(key)
    for verdicts in results:
        for state, where, detail in verdicts:
            out["fragments"] += 1
            if state == "ok":
                out["ok"] += 1
            elif state == "corrupt":
                out["corrupt"].append(detail)
            else:
                out[state].append(where)
    return out


def _catalog_entries(ds: Dataset) -> dict[str, Any]:
    """Every catalog entry the dataset should have, as the loaded catalog holds it."""
    entries: dict[str, Any] = {cat.schema_key(ds.name): ds.catalog.header()}
    entries.update({cat.object_key(ds.name, m.oid): m.to_dict() for m in ds.catalog.objects.values()})
    return entries


def _catalog_states(ds: Dataset, store: Any) -> dict[str, str]:
    """``location:key`` -> ok / corrupt / missing / unreachable for every entry the dataset
    should have (lost objects included: their replicas are corrupt or missing by definition)."""
    keys = [*_catalog_entries(ds), *(cat.object_key(ds.name, oid) for oid in ds.catalog.lost)]
    try:
        have = set(store.list(f"{ds.name}/catalog/"))
    except (StoreError, OSError):
        return {}  # unreachable: the fragment scrub reports the location
    out = {}
    for key in keys:
        state = "missing"
        if key in have:
            try:
                state = "ok" if cat.unpack_entry(store.get(key)) is not None else "corrupt"
            except (StoreError, OSError):
                state = "corrupt"
        out[f"{store.name}:{key}"] = state
    return out


def repair(ds: Dataset, only: list[str] | None = None) -> dict[str, Any]:
    """Rebuild what is broken on the ``only`` locations (default: all). ``skipped``: broken on a
    location not asked for; ``failed``: broken and not repairable now (why in each line)."""
    from zflow.tsdb.coding.fragments import code_record, combine_record, repair_chunks
    from zflow.tsdb.coding.rlnc import CodingParams, combine_ranges

    c = ds.schema.coding
    params = CodingParams(c.k, c.n, c.seed)
    names = [s.name for s in ds.stores]
    targets = {i for i, n in enumerate(names) if only is None or n in only}
    report: dict[str, Any] = {"rebuilt": [], "chunks_repaired": [], "catalog_entries": 0,
                              "skipped": [], "failed": []}

    def put(loc: int, key: str, blob: bytes) -> bool:
        try:
            ds.stores[loc].put(key, blob)
            return True
        except (StoreError, OSError) as exc:
            report["failed"].append(f"{names[loc]}:{key} (write refused: {exc})")
            return False

    for m in ds.catalog.sorted_objects():
        blobs: dict[int, bytes] = {}
        broken: dict[int, str] = {}
        for i, loc in enumerate(m.placement):
            state, data = _fetch(ds, loc, cat.fragment_key(ds.name, m.oid, i))
            if state == "ok" and data is not None:
                try:
                    bad = verify_chunks(data)
                    blobs[i] = data
                    if bad:
                        broken[i] = "corrupt"
                except FragmentError:
                    broken[i] = "unreadable"
            else:
                broken[i] = state
        # corrupted chunks first: a repaired fragment then counts as intact for rebuilding others
        for i, state in sorted(broken.items(), key=lambda x: x[1] != "corrupt"):
            loc = m.placement[i]
            key = cat.fragment_key(ds.name, m.oid, i)
            where = f"{names[loc]}:{key}"
            if loc not in targets:
                report["skipped"].append(f"{where} ({state})")
                continue
            if state == "unreachable":
                report["failed"].append(f"{where} (location unreachable)")
                continue
            if state == "corrupt":
                try:
                    fixed = repair_chunks(blobs[i], {j: b for j, b in blobs.items() if j != i})
                except FragmentError as exc:
                    report["failed"].append(f"{where} ({exc})")
                    continue
                if put(loc, key, fixed):
                    report["chunks_repaired"].append(where)
                    blobs[i] = fixed
                    del broken[i]
                continue
            good = {j: unpack_fragment(b) for j, b in blobs.items() if j not in broken}
            if len(good) < c.k:
                report["failed"].append(f"{where} ({state}; only {len(good)} intact fragments, need k={c.k})")
                continue
            chosen = dict(list(good.items())[: c.k])
            payload = combine_ranges({j: f.payload for j, f in chosen.items()}, params.row(i),
                                     rows={j: f.row for j, f in chosen.items()})
            piece = combine_record(good, params.row(i)) or code_record(m.record(), params)[i]
            blob = pack_fragment(i, payload, params.row(i), n=c.n, seed=c.seed,
                                 chunk_size=ds.schema.chunk_size, record=piece)
            if put(loc, key, blob):
                report["rebuilt"].append(where)
    # catalog replicas: rewritten from the loaded catalog (a good replica or a fragment's record)
    entries = _catalog_entries(ds)
    for oid, why in sorted(ds.catalog.lost.items()):
        report["failed"].append(f"catalog entry of object {oid} ({why})")
    for i in sorted(targets):
        s = ds.stores[i]
        try:
            have = set(s.list(f"{ds.name}/catalog/"))
        except (StoreError, OSError) as exc:
            report["failed"].append(f"{s.name}: catalog replicas not checked (location unreachable: {exc})")
            continue
        for key, value in entries.items():
            ok = key in have
            if ok:
                try:
                    ok = cat.unpack_entry(s.get(key)) is not None
                except (StoreError, OSError):
                    ok = False
            if not ok and put(i, key, cat.pack_entry(value)):
                report["catalog_entries"] += 1
    return report
