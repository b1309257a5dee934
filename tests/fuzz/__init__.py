"""Fuzzing the loaders: seed files and mutations (:mod:`tests.fuzz.seeds`), an atheris harness."""
