"""The dataset contract shared by the render stage (`augment`) and the trainer (`train`).

A rendered dataset is a folder that travels: audio files in the MUSDB18-HQ layout, two Parquet
tables (`manifest/items/`, `manifest/stems/`, a folder of part files each) and `dataset.json`.
This package owns their schema, writing and reading, and imports neither `augment` nor `train`,
nor knows any effect by name: the render stage declares its effects' columns.
"""

from manifests.checksum import CHECKSUM_ALGO, file_checksum
from manifests.dataset import Dataset
from manifests.errors import ManifestError
from manifests.records import ROLES, ItemRecord, StemRecord
from manifests.schema import SCHEMA_VERSION, STEM_NAMES
from manifests.writer import DatasetWriter

__all__ = [
    "CHECKSUM_ALGO",
    "ROLES",
    "SCHEMA_VERSION",
    "STEM_NAMES",
    "Dataset",
    "DatasetWriter",
    "ItemRecord",
    "ManifestError",
    "StemRecord",
    "file_checksum",
]
