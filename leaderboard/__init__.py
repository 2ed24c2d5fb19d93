"""The paper's reported rows (``reported.csv``), shipped in the package as ``cpgd_bench.leaderboard_data``."""
