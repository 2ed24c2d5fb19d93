"""Wrappers that run the authors' own networks of the paper's Table I from local checkouts (see ``adapter``)."""
