"""CPGD-Net stage 1, CPFP (coding-prior feature propagation): network, flow alignment, weight files, restorer."""
