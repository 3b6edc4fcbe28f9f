"""The render stage: read MUSDB18-style sources, draw and apply effect chains, write datasets.

Datasets are written through the `manifests` package, which owns their on-disk contract.
"""
