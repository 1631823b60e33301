"""Tests for vaecore.data: loaders, validation errors, splits and minibatch iteration."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vaecore.data import datasets as data
from vaecore.data.datasets import (
    DATASETS,
    Dataset,
    epoch_permutation,
    iterate_minibatches,
    load_dataset,
)
from vaecore.data.formats import idx as idx_format
from vaecore.data.formats.idx import read_idx

FASHION_CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist",
    Path("/work/shared/data/fashion-mnist"),
]
FASHION_DIR = next((p for p in FASHION_CANDIDATES if p.is_dir()), None)


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True, magic: int | None = None) -> Path:
    """Write uint8 images (N, H, W) or labels (N,) as an IDX file."""
    if magic is None:
        magic = 2051 if array.ndim == 3 else 2049
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_idx_set(
    folder: Path, n_train: int = 100, n_test: int = 20, *, gz: bool = True, prefix: str = ""
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{prefix}{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 6, 5)), gz=gz
        )
        write_idx(folder / f"{prefix}{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 7, gz=gz)
    return folder


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist")


def test_mnist_shapes_values_labels(mnist: Dataset) -> None:
    assert mnist.name == "mnist"
    assert mnist.shape == (1, 28, 28)
    assert [len(mnist.split(s)[0]) for s in ("train", "val", "test")] == [50000, 10000, 10000]
    for split in ("train", "val", "test"):
        x, y = mnist.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 28, 28) and y.shape == (len(x),)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert set(y.unique().tolist()) == set(range(10))
    x = mnist.x_test
    assert torch.equal(x, torch.round(x * 255) / 255)
    assert mnist.num_classes == 10


def test_mnist_val_is_last_10000_of_training_file(mnist: Dataset) -> None:
    raw = read_idx(data.MNIST_DIR / "train-images-idx3-ubyte.gz")
    labels = read_idx(data.MNIST_DIR / "train-labels-idx1-ubyte.gz")
    assert raw.shape == (60000, 28, 28)
    assert torch.equal(mnist.x_val[:, 0] * 255, torch.from_numpy(raw[50000:].astype(np.float32)))
    assert torch.equal(mnist.y_val, torch.from_numpy(labels[50000:].astype(np.int64)))
    assert torch.equal(mnist.y_train[:5], torch.from_numpy(labels[:5].astype(np.int64)))


def test_mnist_limit_and_decode_cache(mnist: Dataset) -> None:
    hits = idx_format.decode_idx_cached.cache_info().hits
    small = load_dataset("mnist", limit=100)
    assert idx_format.decode_idx_cached.cache_info().hits >= hits + 4
    assert len(small.x_train) == 100 and len(small.y_train) == 100
    assert len(small.x_val) == 10000 and len(small.x_test) == 10000
    assert torch.equal(small.x_train, mnist.x_train[:100])
    small.x_train.fill_(0.5)  # a float copy: neither the dataset nor the decode cache changes
    assert torch.equal(load_dataset("mnist", limit=100).x_train, mnist.x_train[:100])
    assert small.images["train"].dtype == torch.uint8 and small.images["train"].nbytes == 100 * 784


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit(limit: object) -> None:
    with pytest.raises(ValueError, match="limit"):
        load_dataset("digits", limit=limit)


def test_mnist_md5_mismatch(tmp_path: Path) -> None:
    for f in data.MNIST_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as info:
        load_dataset("mnist", data_dir=str(tmp_path))
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "md5" in message
    assert "ec29112dd5afa0611ce80d1b7f02629c" in message
    assert idx_format.file_md5(target) in message


def test_mnist_from_uncompressed_copy_is_md5_checked(tmp_path: Path) -> None:
    for f in data.MNIST_DIR.iterdir():
        (tmp_path / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    ds = load_dataset("mnist", data_dir=str(tmp_path), limit=10)
    assert ds.shape == (1, 28, 28) and len(ds.x_test) == 10000
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10000, dtype=np.uint8), gz=False)
    with pytest.raises(ValueError, match="md5 mismatch"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_missing_folder_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", data_dir=str(missing))
    assert str(missing) in str(info.value) and "--data-dir" in str(info.value)
    folder = write_idx_set(tmp_path / "partial")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("idx", data_dir=str(folder))


def test_dataset_needing_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path)
    for name in ("fashion-mnist", "idx", "array"):
        with pytest.raises(FileNotFoundError, match="--data-dir"):
            load_dataset(name)


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("cifar-1000")
    for name in ("mnist", "fashion-mnist", "digits", "idx"):
        assert name in str(info.value)
    assert set(DATASETS) >= {"mnist", "fashion-mnist", "digits", "idx"}
    assert all(isinstance(v, str) and "\n" not in v for v in DATASETS.values())


def test_read_idx_round_trip(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, (7, 4, 3)).astype(np.uint8)
    for gz in (True, False):
        out = read_idx(write_idx(tmp_path / f"img{gz}", images, gz=gz))
        assert out.dtype == np.uint8 and np.array_equal(out, images)
    labels = np.arange(7, dtype=np.uint8)
    assert np.array_equal(read_idx(write_idx(tmp_path / "lab", labels)), labels)


def test_read_idx_header_validation(tmp_path: Path) -> None:
    images = np.zeros((5, 4, 4), dtype=np.uint8)
    bad_magic = write_idx(tmp_path / "bad-magic", images, magic=1234)
    with pytest.raises(ValueError, match=r"bad-magic.*magic number 1234"):
        read_idx(bad_magic)
    good = write_idx(tmp_path / "good", images, gz=False).read_bytes()
    (tmp_path / "truncated").write_bytes(good[:-3])
    with pytest.raises(ValueError, match=r"truncated.*truncated"):
        read_idx(tmp_path / "truncated")
    (tmp_path / "trailing").write_bytes(good + b"\0")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(tmp_path / "trailing")
    (tmp_path / "short").write_bytes(good[:5])
    with pytest.raises(ValueError, match="too short"):
        read_idx(tmp_path / "short")
    (tmp_path / "badgz").write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(ValueError, match="badgz"):
        read_idx(tmp_path / "badgz")


def test_idx_sizes_are_bounded_before_reading(tmp_path: Path) -> None:
    import struct

    from vaecore.data.formats.idx import MAX_IDX_BYTES

    huge = struct.pack(">iiii", 2051, 2**31 - 1, 2**31 - 1, 2**31 - 1)  # 2^93 bytes: past int64 too
    (tmp_path / "forged.gz").write_bytes(gzip.compress(huge))
    with pytest.raises(ValueError, match=r"claims \(2147483647, 2147483647, 2147483647\).*over the 8 GiB limit"):
        read_idx(tmp_path / "forged.gz")
    rows = MAX_IDX_BYTES // (28 * 28) + 1
    (tmp_path / "forged").write_bytes(struct.pack(">iiii", 2051, rows, 28, 28))
    with pytest.raises(ValueError, match="over the 8 GiB limit"):
        read_idx(tmp_path / "forged")
    bomb = gzip.compress(struct.pack(">iiii", 2051, 10, 4, 4) + bytes(160 + 64 * 2**20))  # 64 MiB more than claimed
    (tmp_path / "bomb.gz").write_bytes(bomb)
    with pytest.raises(ValueError, match=r"has trailing bytes: header says \(10, 4, 4\) -> 176 bytes, file has 177 "
                                         "or more"):
        read_idx(tmp_path / "bomb.gz")


def test_idx_folder_small_set_splits(tmp_path: Path) -> None:
    folder = write_idx_set(tmp_path / "set", n_train=100, n_test=20, gz=False)
    ds = load_dataset("idx", data_dir=str(folder))
    assert ds.shape == (1, 6, 5)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (90, 10, 20)
    assert torch.equal(ds.y_val, torch.arange(90, 100) % 7)
    assert ds.num_classes == 7
    assert len(load_dataset("idx", data_dir=str(folder), limit=15).x_train) == 15


def test_idx_folder_with_prefixed_names(tmp_path: Path) -> None:
    folder = write_idx_set(tmp_path / "emnist", n_train=30, n_test=10, prefix="emnist-letters-")
    assert len(load_dataset("idx", data_dir=str(folder)).x_test) == 10


def test_idx_folder_swapped_files(tmp_path: Path) -> None:
    folder = write_idx_set(tmp_path / "set", n_train=30, n_test=10)
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    tmp = folder / "swap"
    images.rename(tmp)
    labels.rename(images)
    tmp.rename(labels)
    with pytest.raises(ValueError, match="expected IDX images"):
        load_dataset("idx", data_dir=str(folder))


def _image_array(layout: str, dtype: str, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Random images in `layout` and the (N, C, H, W) float32 array they should load as."""
    c = 3 if "3" in layout else 1
    rng = np.random.default_rng(2)
    k = rng.integers(0, 256, (n, c, 6, 5)).astype(np.uint8)
    expected = k.astype(np.float32) / np.float32(255)
    stored = {"NHW": k[:, 0], "NHWC1": k.transpose(0, 2, 3, 1), "NHWC3": k.transpose(0, 2, 3, 1)}.get(
        layout, k
    )
    if dtype == "float32":
        stored = stored.astype(np.float32) / np.float32(255)
    return stored, expected


@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NCHW1", "NCHW3"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_npz_layouts(tmp_path: Path, layout: str, dtype: str) -> None:
    stored, expected = _image_array(layout, dtype)
    labels = np.arange(len(stored)) % 4
    path = tmp_path / "set.npz"
    np.savez(path, x_train=stored[:30], y_train=labels[:30], x_test=stored[30:], y_test=labels[30:])
    ds = load_dataset(str(path))
    assert ds.shape == expected.shape[1:]
    assert ds.x_train.dtype == torch.float32
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (27, 3, 10)
    assert np.allclose(ds.x_test.numpy(), expected[30:], atol=1e-7)
    assert np.allclose(ds.x_val.numpy(), expected[27:30], atol=1e-7)
    assert torch.equal(ds.y_test, torch.from_numpy(labels[30:]))


@pytest.mark.parametrize("layout", ["NHW", "NHWC3", "NCHW1"])
def test_npy_single_array_holds_out_by_seed(tmp_path: Path, layout: str) -> None:
    stored, expected = _image_array(layout, "uint8", n=50)
    path = tmp_path / "images.npy"
    np.save(path, stored)
    ds = load_dataset(str(path), seed=3)
    assert ds.y_train is None and ds.num_classes is None
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (41, 4, 5)
    everything = torch.cat([ds.x_train, ds.x_val, ds.x_test]).flatten(1)
    assert np.allclose(np.sort(everything.numpy(), axis=0), np.sort(expected.reshape(50, -1), axis=0))
    assert torch.equal(load_dataset(str(path), seed=3).x_test, ds.x_test)
    assert not torch.equal(load_dataset(str(path), seed=4).x_test, ds.x_test)
    via_array = load_dataset("array", data_dir=str(path), seed=3)
    assert torch.equal(via_array.x_test, ds.x_test)


@pytest.mark.parametrize("keys", [("x", "y"), ("images", "labels"), ("only", None)])
def test_npz_key_conventions(tmp_path: Path, keys: tuple[str, str | None]) -> None:
    images = np.random.default_rng(0).random((30, 4, 4)).astype(np.float64)
    labels = np.arange(30) % 3
    arrays = {keys[0]: images} if keys[1] is None else {keys[0]: images, keys[1]: labels}
    np.savez(tmp_path / "set.npz", **arrays)
    ds = load_dataset("set.npz", data_dir=str(tmp_path))
    assert ds.shape == (1, 4, 4) and len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 30
    assert ds.x_train.dtype == torch.float32
    assert (ds.y_train is None) == (keys[1] is None)
    if keys[1] is not None:
        assert ds.num_classes == 3


def test_npz_explicit_val_split_and_limit(tmp_path: Path) -> None:
    x = np.zeros((10, 3, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", x_train=x, x_val=x[:4], x_test=x[:2])
    ds = load_dataset(str(tmp_path / "s.npz"), limit=6)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (6, 4, 2)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.full((5, 4, 4), 1.5, dtype=np.float32)}, r"\[0, 1\]"),
        ({"x": np.full((5, 4, 4), -0.1)}, r"\[0, 1\]"),
        ({"x": np.full((5, 4, 4), np.nan, dtype=np.float32)}, "NaN"),
        ({"x": np.zeros((2, 5, 1, 4, 4))}, "5-D"),
        ({"x": np.zeros((5, 16))}, "2-D"),
        ({"x": np.full((5, 4, 4), "a")}, "dtype"),
        ({"x": np.zeros((5, 4, 4), dtype=np.complex64)}, "dtype"),
        ({"x": np.full((5, 4, 4), 300, dtype=np.int32)}, "0..255"),
        ({"x": np.zeros((5, 7, 4, 5))}, "channel"),
        ({"x": np.zeros((5, 4, 4)), "y": np.zeros(4, dtype=np.int64)}, "4 labels for 5 images"),
        ({"x": np.zeros((5, 4, 4)), "y": np.full(5, 0.5)}, "whole numbers"),
        ({"x": np.zeros((5, 4, 4)), "y": np.full(5, -1)}, ">= 0"),
        ({"a": np.zeros((5, 4, 4)), "b": np.zeros(5)}, "cannot find the images"),
        ({"x_train": np.zeros((5, 4, 4)), "x_test": np.zeros((2, 4, 5))}, "different image shapes"),
        (
            {"x_train": np.zeros((5, 4, 4)), "y_train": np.zeros(5, int), "x_test": np.zeros((2, 4, 4))},
            "every",
        ),
    ],
)
def test_bad_arrays(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value)


def test_array_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match="junk.npy"):
        load_dataset(str(tmp_path / "junk.npy"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        load_dataset(str(tmp_path / "objects.npy"))


def test_digits() -> None:
    ds = load_dataset("digits")
    assert ds.shape == (1, 8, 8)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1197, 300, 300)
    assert float(ds.x_train.max()) == 1.0 and float(ds.x_train.min()) == 0.0
    assert torch.equal(ds.x_train, torch.round(ds.x_train * 16) / 16)
    assert ds.num_classes == 10
    assert torch.equal(load_dataset("digits").x_test, ds.x_test)
    assert not torch.equal(load_dataset("digits", seed=1).x_test, ds.x_test)
    assert len(load_dataset("digits", limit=50).x_train) == 50


@pytest.mark.skipif(FASHION_DIR is None, reason="no local Fashion-MNIST copy (../shared/data/fashion-mnist)")
def test_fashion_mnist_from_shared_folder() -> None:
    ds = load_dataset("fashion-mnist", data_dir=str(FASHION_DIR), limit=500)
    assert ds.name == "fashion-mnist" and ds.shape == (1, 28, 28)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (500, 10000, 10000)
    assert ds.num_classes == 10
    assert torch.equal(torch.bincount(ds.y_test), torch.full((10,), 1000))


def test_dataset_container() -> None:
    x, y = torch.rand(6, 1, 4, 4), torch.arange(6)
    ds = Dataset("toy", x, y, x[:2], y[:2], x[:3], y[:3])
    assert ds.shape == (1, 4, 4) and ds.num_classes == 6
    assert ds.split("val")[0].shape[0] == 2
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        ds.split("validation")
    moved = ds.to("cpu")
    assert moved is not ds and moved.name == "toy" and torch.equal(moved.x_test, ds.x_test)
    assert "toy" in repr(ds) and "train=6" in repr(ds)
    unlabelled = Dataset("u", x, None, x, None, x, None)
    assert unlabelled.num_classes is None and unlabelled.split("test")[1] is None
    with pytest.raises(ValueError, match="x_val"):
        Dataset("bad", x, y, torch.rand(2, 1, 5, 4), None, x, y)
    with pytest.raises(ValueError, match="y_test"):
        Dataset("bad", x, y, x, y, x, y[:2])


def test_epoch_permutation_is_deterministic() -> None:
    p = epoch_permutation(1000, seed=7, epoch=3)
    assert p.dtype == torch.int64 and torch.equal(p.sort().values, torch.arange(1000))
    assert torch.equal(p, epoch_permutation(1000, seed=7, epoch=3))
    assert not torch.equal(p, epoch_permutation(1000, seed=7, epoch=4))
    assert not torch.equal(p, epoch_permutation(1000, seed=8, epoch=3))


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n", [0, 1, 32, 100])
def test_iterate_minibatches_covers_each_index_once(shuffle: bool, n: int) -> None:
    x = torch.zeros(n, 1, 2, 2)
    batches = list(iterate_minibatches(x, 32, shuffle=shuffle, generator=torch.Generator().manual_seed(0)))
    assert all(len(b) <= 32 and b.device == x.device and b.dtype == torch.int64 for b in batches)
    seen = torch.cat(batches) if batches else torch.empty(0, dtype=torch.int64)
    assert torch.equal(seen.sort().values, torch.arange(n))
    if not shuffle:
        assert torch.equal(seen, torch.arange(n))


def test_iterate_minibatches_options() -> None:
    x = torch.zeros(100, 1, 2, 2)
    dropped = list(iterate_minibatches(x, 32, shuffle=True, drop_last=True))
    assert [len(b) for b in dropped] == [32, 32, 32]
    a = torch.cat(list(iterate_minibatches(x, 10, shuffle=True, generator=torch.Generator().manual_seed(5))))
    b = torch.cat(list(iterate_minibatches(x, 10, shuffle=True, generator=torch.Generator().manual_seed(5))))
    assert torch.equal(a, b) and not torch.equal(a, torch.arange(100))
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_minibatches(x, 0, shuffle=False))


def _fake_hub_repo(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("datasets--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for name, payload in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(payload)
    return snapshot


def test_hub_dataset_from_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    idx = write_idx_set(tmp_path / "idx-src", n_train=40, n_test=10)
    _fake_hub_repo(cache, "someone/tiny-idx", {f"raw/{p.name}": p.read_bytes() for p in idx.iterdir()})
    ds = load_dataset("hf://someone/tiny-idx")
    assert ds.name == "hf://someone/tiny-idx"
    assert ds.shape == (1, 6, 5) and (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (36, 4, 10)

    np.savez(tmp_path / "arr.npz", x=np.zeros((20, 3, 4, 4), dtype=np.uint8), y=np.arange(20) % 2)
    _fake_hub_repo(cache, "someone/tiny-npz", {"data/arr.npz": (tmp_path / "arr.npz").read_bytes()})
    ds = load_dataset("hf://someone/tiny-npz", limit=5)
    assert ds.shape == (3, 4, 4) and len(ds.x_train) == 5 and ds.num_classes == 2
    assert load_dataset("hf://someone/tiny-npz/data").shape == (3, 4, 4)


def test_hub_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="could not reach the Hugging Face Hub.*--data-dir"):
        load_dataset("hf://someone/not-cached")
    with pytest.raises(ValueError, match="hf://owner/name"):
        load_dataset("hf://just-one-part")
    local = write_idx_set(tmp_path / "local", n_train=20, n_test=5)
    assert len(load_dataset("hf://someone/not-cached", data_dir=str(local)).x_test) == 5
