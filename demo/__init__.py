"""Development-only code: the deterministic demo data set (``tierwise seed``, the tests, the benchmarks).

Not part of the runtime: the wheel and the Docker image leave it out, and Faker comes with the
``tierwise[demo]`` extra (which ``scripts/dev`` and the ``dev`` extra install). It may import the
runtime packages; none of them imports it (an import-linter contract).
"""
