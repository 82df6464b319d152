"""Frozen copies of earlier runtime code, the references that exactness tests compare with."""
