"""cpgd-bench: coding-prior video restoration toolkit (VVC motion vectors and residuals)."""

__version__ = "0.1.0"
