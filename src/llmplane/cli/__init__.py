"""The ``llmplane`` command line: ``up``, ``keys``, ``spend``, ``dev``."""
