"""The training stage: learn source separation from datasets rendered by `msaug`.

Datasets are read through the `manifests` package; nothing here imports `augment`.
"""
