"""`pack` / `unpack`: deterministic webdataset shards that restore the folder byte for byte."""

from __future__ import annotations

import json

import pytest
import webdataset as wds
from factory import make_dataset

from manifests import Dataset, ManifestError
from manifests.card import write_card
from manifests.listing import SHARDS_INDEX
from manifests.merge import merge
from manifests.pack import pack, parse_size, plan_shards, unpack
from manifests.schema import STEM_NAMES
from manifests.subset import write_selection
from manifests.verify import verify

SAMPLE_BYTES = 5 * (512 + 32256) + 512 + 4096  # five 1 s wavs at 8 kHz and the json, in tar blocks


@pytest.fixture
def dataset(tmp_path):
    root = make_dataset(tmp_path / "ds", n_items=5)
    write_card(root)
    return root


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_pack_then_unpack_restores_identical_bytes(dataset, tmp_path):
    shards = pack(dataset, tmp_path / "shards", shard_size=2 * SAMPLE_BYTES)
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    index = json.loads((tmp_path / "shards" / SHARDS_INDEX).read_text())
    assert [len(s["items"]) for s in index["shards"]] == [2, 2, 1]
    written = unpack(tmp_path / "shards", tmp_path / "restored")
    assert written.n_items == 5 and written.copied == 25
    assert _tree(tmp_path / "restored") == _tree(dataset)


def test_same_dataset_packs_to_the_same_bytes(dataset, tmp_path):
    pack(dataset, tmp_path / "one", shard_size=2 * SAMPLE_BYTES)
    pack(dataset, tmp_path / "two", shard_size=2 * SAMPLE_BYTES)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_webdataset_reads_one_sample_per_item(dataset, tmp_path):
    shards = pack(dataset, tmp_path / "shards", shard_size=2 * SAMPLE_BYTES)
    source = Dataset.open(dataset)
    samples = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    assert [s["__key__"] for s in samples] == source.items["item_id"].tolist()
    first = samples[0]
    assert set(first) >= {"json", "mixture.wav", *(f"{stem}.wav" for stem in STEM_NAMES)}
    assert first["vocals.wav"] == (dataset / "train/0000000/vocals.wav").read_bytes()
    rows = json.loads(first["json"])
    item, stems = source.item("0000000")
    assert rows["item"] == item.to_dict()
    assert rows["stems"] == {name: record.to_dict() for name, record in stems.items()}


def test_verify_checks_shards_against_the_manifest(dataset, tmp_path):
    root = tmp_path / "shards"
    shards = pack(dataset, root, shard_size=2 * SAMPLE_BYTES)
    assert verify(root).ok and verify(root, quick=True).ok
    assert verify(root).form == "shards" and verify(root).files == 30
    data = bytearray(shards[1].read_bytes())
    offset = data.index(b"0000002.vocals.wav") + 512 + 1000  # inside that member's samples
    data[offset] ^= 0x01
    shards[1].write_bytes(bytes(data))
    (problem,) = verify(root).problems
    assert (problem.kind, problem.path) == ("altered", "shard-000001.tar:0000002.vocals.wav")
    assert verify(root, quick=True).ok
    with pytest.raises(ManifestError, match="damaged"):
        unpack(root, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    shards[2].unlink()
    kinds = {(p.kind, p.path) for p in verify(root, quick=True).problems}
    assert kinds == {("missing", "shard-000002.tar")}


def test_tools_that_need_files_refuse_a_shard_folder(dataset, tmp_path):
    root = tmp_path / "shards"
    pack(dataset, root)
    with pytest.raises(ManifestError, match="packed dataset"):
        pack(root, tmp_path / "again")
    with pytest.raises(ManifestError, match="run `msaug unpack` on it first"):
        write_selection(Dataset.open(root).select(None), tmp_path / "sub")
    with pytest.raises(ManifestError, match="packed dataset"):
        merge([dataset, root], tmp_path / "merged")


def test_plan_cuts_before_the_sample_that_overfills():
    assert plan_shards([3, 3, 3, 10, 1], 6) == [range(0, 2), range(2, 3), range(3, 4), range(4, 5)]
    assert plan_shards([], 6) == []


@pytest.mark.parametrize(
    ("text", "size"),
    [("1GB", 10**9), ("500MB", 5 * 10**8), ("1.5 gb", 15 * 10**8), ("2KiB", 2048), ("4096", 4096)],
)
def test_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1XB", "GB", "-1MB", "0.1B"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)
