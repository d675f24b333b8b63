"""Generators of the embedded synthetic suite, written in the real dataset layouts.

Each dataset reader's ``write_synthetic`` calls into this package; the generated files are
then read back through the same readers as real data, so the default run takes the code path
real users take.
"""
