"""Stage functions: each wires pure library code to files and MLflow.

The CLI calls these; ``dvc.yaml`` calls the CLI. Every output is written
atomically (:mod:`gliomics.io`).
"""
