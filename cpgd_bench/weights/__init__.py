"""Bundled model weights (small demo weights only), each with a JSON record of how it was made."""
