"""Training: one module per CPGD-Net stage, each with ``train(config, store, out, resume, device, max_steps) -> Path``.

``cpgd-bench train --stage NAME`` imports ``cpgd_bench.train.<NAME>`` and calls its ``train``; configs
live in ``manifests/train/*.yaml``. The same command runs multi-GPU under ``torchrun --no-python``.
"""

STAGES = ("cpfp", "cpc")
