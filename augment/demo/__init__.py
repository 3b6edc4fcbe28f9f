"""The embedded demo dataset: procedurally composed songs in the MUSDB18 layouts.

MUSDB18 cannot be downloaded here, so this writes a stand-in with the same folders, stems and
file formats, and music a separation model can learn from: shared tempo and harmony across
stems, stable instrument timbres, a sung melody and sections where stems rest.
"""

from augment.demo.writer import FORMATS, write_demo_dataset

__all__ = ["FORMATS", "write_demo_dataset"]
