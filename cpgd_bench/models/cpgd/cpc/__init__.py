"""CPGD-Net stage 2, CPC (coding-prior control of SD 2.1): configs, CPControlNet, attention, sampler and weights."""
