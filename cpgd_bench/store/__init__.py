"""Coding-prior store: Zarr v3 groups ``<split>/<sequence>`` of frames, MVs and residuals.

Public API: :func:`open_store` (reader), :class:`StoreWriter` (atomic, resumable writer),
:func:`verify_store`, :func:`store_info`, :func:`export_h5`; the schema lives in
:mod:`cpgd_bench.store.schema`. The store knows nothing of codecs: the dataset build pipeline (sources ->
codec -> store) is :mod:`cpgd_bench.build`, one layer up.
"""

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.export import export_h5
from cpgd_bench.store.info import format_info, store_info
from cpgd_bench.store.reader import CodingPriorStore, open_store
from cpgd_bench.store.schema import ARRAYS, FORMAT_VERSION
from cpgd_bench.store.verify import VerifyReport, verify_store
from cpgd_bench.store.writer import StoreWriter

__all__ = [
    "ARRAYS",
    "FORMAT_VERSION",
    "CodingPriorStore",
    "StoreError",
    "StoreWriter",
    "VerifyReport",
    "export_h5",
    "format_info",
    "open_store",
    "store_info",
    "verify_store",
]
