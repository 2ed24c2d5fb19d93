"""cpgd-bench: coding-prior video restoration toolkit (VVC motion vectors and residuals)."""

import logging


class _DropOptionalKernelNotice(logging.Filter):
    """Drop bitsandbytes' warning that its optional CPU kernel package is absent (pulled in through pyiqa and
    diffusers, never used here): users read "Failed to load ..." as an error of ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_DropOptionalKernelNotice())

__version__ = "0.1.0"
