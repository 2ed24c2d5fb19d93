"""CPGD-Net: stage 1 (`cpfp/`), stage 2 (`cpc/`) and the two-stage restorer (`pipeline.py`)."""
