"""Package data: the FFmpeg patches (installed as cpgd_bench.vvc_patches; read through cpgd_bench.resources)."""
