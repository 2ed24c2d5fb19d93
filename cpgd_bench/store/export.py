"""Export a store to one HDF5 file with the same layout (``/<split>/<sequence>/<array>``).

Nested attributes (dicts, lists of strings) that HDF5 cannot hold natively are stored as JSON
strings; the root carries ``attrs_json_keys`` naming them so readers can decode them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.reader import open_store
from cpgd_bench.store.schema import FRAMES_PER_SHARD


def _set_attrs(obj: h5py.Group | h5py.Dataset, attrs: dict[str, Any]) -> None:
    json_keys = []
    for key, value in attrs.items():
        if isinstance(value, (str, int, float, bool)):
            obj.attrs[key] = value
        else:
            obj.attrs[key] = json.dumps(value)
            json_keys.append(key)
    if json_keys:
        obj.attrs["attrs_json_keys"] = json.dumps(json_keys)


def export_h5(store_path: str | Path, out: str | Path, progress: bool = False) -> Path:
    """Write every sequence of the store to the HDF5 file ``out`` (gzip-compressed, chunked per frame);
    ``progress``: a bar of sequences on stderr when it is a terminal."""
    store = open_store(store_path)
    out = Path(out)
    if out.exists():
        raise StoreError(f"{out} exists; delete it or choose another --out file")
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = [(split, seq) for split in store.splits() for seq in store.sequences(split)]
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with h5py.File(tmp, "w") as h5:
            _set_attrs(h5, store.attrs)
            for split, seq in tqdm(keys, desc="export", unit="seq", disable=None if progress else True):
                group = store.group(split, seq)
                h5_group = h5.require_group(f"{split}/{seq}")
                _set_attrs(h5_group, dict(group.attrs))
                for name, array in group.arrays():
                    chunks = (1, *array.shape[1:]) if array.ndim > 1 else None
                    dset = h5_group.create_dataset(
                        name, shape=array.shape, dtype=array.dtype, chunks=chunks, compression="gzip",
                        compression_opts=4, shuffle=array.dtype.itemsize > 1,
                    )  # fmt: skip
                    _set_attrs(dset, dict(array.attrs))
                    step = FRAMES_PER_SHARD if array.ndim > 1 else max(1, array.shape[0])
                    for start in range(0, max(1, array.shape[0]), step):
                        dset[start : start + step] = np.asarray(array[start : start + step])
        tmp.rename(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
