"""Dataset formats, each round-tripped from small files this test writes in that exact format: image folders
(PNG, JPEG, WebP, BMP; flat, class folders, split folders, file lists), CelebA's layout, the CIFAR binaries,
SVHN's .mat files, DeepMind's dSprites .npz and the procedural dSprites grid; the transforms; and every bad
input giving its one clear message without losing anything."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaecore
from vaecore.data import sprites
from vaecore.data.imagefiles import MAX_PIXELS


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAECORE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def load(name: str, folder: Path | str | None = None, **kw) -> vaecore.Dataset:
    return vaecore.load_dataset(name, None if folder is None else str(folder), progress=False, **kw)


def all_images(ds: vaecore.Dataset) -> torch.Tensor:
    return torch.cat([ds.images[s].take(slice(None)) for s in ("train", "val", "test")])


def rgb(value: int, h: int = 12, w: int = 10) -> np.ndarray:
    """An image that says which it is: a ramp over columns plus `value`."""
    ramp = (np.arange(w, dtype=np.uint8) * 7)[None, :, None]
    return (np.zeros((h, w, 3), np.uint8) + ramp + np.array([value, 2 * value % 256, 255 - value], np.uint8))


# image folders ---------------------------------------------------------------------------------------
def test_flat_folder_of_every_format_round_trips(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    written = {}
    for i, ext in enumerate(["png", "bmp", "webp", "png", "bmp", "png"]):
        arr = rgb(20 * i + 5)
        kwargs = {"lossless": True} if ext == "webp" else {}
        Image.fromarray(arr).save(root / f"img{i}.{ext}", **kwargs)
        written[i] = arr.transpose(2, 0, 1)
    flat = np.full((12, 10, 3), (90, 140, 200), np.uint8)
    Image.fromarray(flat).save(root / "photo.jpg", quality=95)
    ds = load("imagefolder", root)
    assert ds.shape == (3, 12, 10) and ds.classes is None and ds.y_train is None
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (5, 1, 1)
    got = all_images(ds)
    assert got.dtype == torch.uint8
    exact = [torch.from_numpy(a) for a in written.values()]
    matched = sum(any(torch.equal(g, e) for e in exact) for g in got)
    assert matched == 6  # PNG, BMP and lossless WebP exactly; the JPEG close to what was written
    jpeg = [g for g in got if not any(torch.equal(g, e) for e in exact)][0]
    assert (jpeg.float() - torch.from_numpy(flat.transpose(2, 0, 1)).float()).abs().max() <= 3
    assert torch.equal(ds.x_train, ds.images["train"].take(slice(None)).float() / 255)


def test_class_folders_label_by_sorted_folder_name(tmp_path: Path) -> None:
    root = tmp_path / "classes"
    for c, name in enumerate(["zebra", "ant", "moose"]):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rgb(60 * c + i)).save(root / name / f"{i}.png")
    ds = load("imagefolder", root)
    assert ds.classes == ["ant", "moose", "zebra"] and ds.num_classes == 3
    manifest = json.loads((Path(ds.info["cache"]) / "manifest.json").read_text())
    assert manifest["classes"] == ["ant", "moose", "zebra"]  # recorded with the labels it names
    assert load("imagefolder", root).classes == ds.classes  # and read back from the cache
    folder_of = {name: c for c, name in enumerate(["zebra", "ant", "moose"])}
    for split in ("train", "val", "test"):
        x, y = ds.images[split].take(slice(None)), ds.labels[split]
        for img, label in zip(x, y, strict=True):
            written_class = (int(img[0, 0, 0]) // 60)  # the value encodes the folder it was written in
            assert ds.classes[int(label)] == [n for n, c in folder_of.items() if c == written_class][0]


def test_split_folders_with_classes_and_a_missing_val(tmp_path: Path) -> None:
    root = tmp_path / "splits"
    for split, n in (("train", 10), ("test", 3)):
        for cls in ("b", "a"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rgb(i)).save(root / split / cls / f"{i}.png")
    ds = load("imagefolder", root, seed=3)
    assert ds.classes == ["a", "b"]
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (18, 2, 6)
    assert sorted(ds.y_test.tolist()) == [0, 0, 0, 1, 1, 1]
    assert ds.info["layout"] == "splits+classes"
    limited = load("imagefolder", root, seed=3, limit=4)
    assert limited.size("train") == 4 and limited.size("val") == 2


def test_train_val_test_folders_are_kept_as_given(tmp_path: Path) -> None:
    root = tmp_path / "given"
    for folder, n, base in (("train", 6, 0), ("valid", 2, 100), ("test", 3, 200)):  # "valid" is val
        (root / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rgb(base + i)).save(root / folder / f"{i}.png")
    (root / "notes.png").write_bytes(b"")  # outside the split folders: counted, not used
    ds = load("imagefolder", root)
    assert ds.info["layout"] == "splits" and ds.classes is None and ds.y_train is None
    for split, base, n in (("train", 0, 6), ("val", 100, 2), ("test", 200, 3)):
        assert sorted(int(img[0, 0, 0]) for img in ds.images[split].take(slice(None))) == list(range(base, base + n))
    assert ds.info["skipped_files"]["outside_split_folders"] == 1


def test_file_lists_with_and_without_classes(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    for i in range(6):
        Image.fromarray(rgb(i * 30)).save(tmp_path / "pics" / f"{i}.png")
    (tmp_path / "list.txt").write_text("# my pictures\n" + "".join(f"pics/{i}.png\t{'cat' if i % 2 else 'dog'}\n"
                                                                    for i in range(6)))
    ds = load("imagefolder", tmp_path / "list.txt")
    assert ds.classes == ["cat", "dog"] and ds.size("train") + ds.size("val") + ds.size("test") == 6
    for split in ("train", "val", "test"):
        for img, label in zip(ds.images[split].take(slice(None)), ds.labels[split], strict=True):
            assert ds.classes[int(label)] == ("cat" if (int(img[0, 0, 0]) // 30) % 2 else "dog")
    (tmp_path / "plain.csv").write_text("pics/0.png\npics/1.png\npics/2.png\nnotes.txt\n")
    assert load("imagefolder", tmp_path / "plain.csv").classes is None
    (tmp_path / "half.txt").write_text("pics/0.png\tcat\npics/1.png\n")
    with pytest.raises(ValueError, match="every listed image or for none"):
        load("imagefolder", tmp_path / "half.txt")


def test_image_size_channels_and_conversions_are_explicit_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    root.mkdir()
    Image.fromarray(rgb(10, 20, 16)).save(root / "rgb.png")
    Image.fromarray(np.dstack([rgb(30, 20, 16), np.full((20, 16), 128, np.uint8)])).save(root / "rgba.png")
    Image.fromarray(rgb(50, 20, 16)).convert("P").save(root / "palette.png")
    Image.fromarray(rgb(70, 10, 8)).save(root / "small.png")  # another size
    ds = load("imagefolder", root)
    assert ds.shape == (3, 20, 16)  # the most common size
    conv = ds.info["converted"]
    assert conv["RGBA→RGB (alpha dropped)"] == 1 and conv["P→RGB"] == 1 and conv["resized"] == 1
    grey = load("imagefolder", root, image_size=8, channels=1)
    assert grey.shape == (1, 8, 8) and grey.source["image_size"] == 8 and grey.source["channels"] == 1
    want = np.array(Image.fromarray(rgb(10, 20, 16)).convert("L").resize((8, 10), Image.Resampling.BILINEAR))
    want = want[1:9]  # resized to cover 8 x 8, then centre-cropped
    assert any(torch.equal(img[0], torch.from_numpy(want)) for img in all_images(grey))


def test_mixed_grey_and_colour_needs_channels(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    for i in range(3):
        Image.fromarray(rgb(i)).save(root / f"c{i}.png")
        Image.fromarray(np.full((12, 10), 40 * i, np.uint8)).save(root / f"g{i}.png")
    with pytest.raises(ValueError, match=r"mixes grey \(3 images, e\.g\. g0\.png.*colour \(3 images.*--channels 1"):
        load("imagefolder", root)
    ds = load("imagefolder", root, channels=3)
    assert ds.shape == (3, 12, 10)
    greys = [img for img in all_images(ds) if torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])]
    assert len(greys) == 3 and {int(g[0, 0, 0]) for g in greys} == {0, 40, 80}  # grey repeated to RGB


def test_16_bit_and_1_bit_grey_become_8_bit(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    Image.fromarray(np.full((6, 6), 0xABCD, np.uint16)).save(root / "a16.png")
    Image.fromarray(np.eye(6, dtype=bool)).save(root / "b1.png")
    Image.fromarray(np.full((6, 6), 7, np.uint8)).save(root / "c8.png")
    values = {int(img[0, 0, 0]) for img in all_images(load("imagefolder", root))}
    assert values == {0xAB, 255, 7}


# bad input ---------------------------------------------------------------------------------------------
def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (its pixel data is never reached)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_empty_and_imageless_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found .*the folder is empty"):
        load("imagefolder", tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images found .*1 other files skipped \(e\.g\. readme\.txt"):
        load("imagefolder", tmp_path / "docs")
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load("imagefolder")
    with pytest.raises(FileNotFoundError, match="not found"):
        load("imagefolder", tmp_path / "nowhere")


def test_bad_files_are_skipped_counted_and_named(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    for i in range(6):
        Image.fromarray(rgb(i)).save(root / f"ok{i}.png")
    (root / "notes.txt").write_text("not an image")
    (root / "fake.jpg").write_bytes(b"this is not a jpeg")
    noisy = np.random.default_rng(0).integers(0, 256, (12, 10, 3)).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    whole = (tmp_path / "noisy.png").read_bytes()
    (root / "truncated.png").write_bytes(whole[: len(whole) * 2 // 3])  # header intact, pixels cut
    _png_header_only(root / "bomb.png", 8_000, 6_000)  # over our limit, under Pillow's
    _png_header_only(root / "huge.png", 20_000, 20_000)  # over Pillow's too
    (root / "loop").symlink_to(root)  # a folder symlink back to itself
    (root / "dangling.png").symlink_to(root / "missing.png")
    ds = load("imagefolder", root)
    assert ds.size("train") + ds.size("val") + ds.size("test") == 6
    skipped = ds.info["skipped"]
    assert skipped["bad"] == 4
    reasons = dict((n, r) for n, r in skipped["examples"])
    assert reasons["bomb.png"] == f"decompression bomb: the header claims 8000x6000 pixels (limit {MAX_PIXELS:,})"
    assert reasons["huge.png"].startswith("decompression bomb")
    assert reasons["fake.jpg"].startswith("not a PNG/JPEG/WebP/BMP")
    assert reasons["truncated.png"].startswith("corrupt or truncated")
    files = ds.info["skipped_files"]
    assert files["non_image_files"] == 1 and files["unreadable"] == 2
    assert any("symlink loop" in u for u in files["unreadable_examples"])
    assert any("broken symlink" in u for u in files["unreadable_examples"])


def test_too_many_bad_images_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "worse"
    root.mkdir()
    for i in range(3):
        Image.fromarray(rgb(i)).save(root / f"ok{i}.png")
    for i in range(11):
        (root / f"broken{i:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    with pytest.raises(ValueError, match=r"11 of 14 image files cannot be used .*broken00\.png.* and 6 more"):
        load("imagefolder", root)


# CelebA --------------------------------------------------------------------------------------------------
def test_celeba_layout_partition_attributes_and_protocol(tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 8)]
    faces = {}
    for i, name in enumerate(names):
        face = np.zeros((218, 178, 3), np.uint8)
        face[39:179, 19:159] = 30 * i + 10  # the central 140 x 140 (offsets (218-140)//2, (178-140)//2)
        Image.fromarray(face).save(root / "img_align_celeba" / name, quality=100)
        faces[name] = 30 * i + 10
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, "0001122",
                                                                                          strict=True)))
    attrs = ["Smiling", "Young"]
    (root / "list_attr_celeba.txt").write_text(
        f"{len(names)}\n{' '.join(attrs)}\n" + "".join(f"{n} {1 if i % 2 else -1} {-1 if i < 3 else 1}\n"
                                                       for i, n in enumerate(names)))
    ds = load("celeba", root, image_size=16)
    assert ds.shape == (3, 16, 16) and (ds.size("train"), ds.size("val"), ds.size("test")) == (3, 2, 2)
    assert ds.info["protocol"] == "centre crop 140, resize to 16"
    train = ds.images["train"].take(slice(None))
    for k, name in enumerate(names[:3]):  # the crop removes the black border: each image is one flat colour
        assert abs(int(train[k].float().mean().round()) - faces[name]) <= 1
    assert ds.factors.names == ("Smiling", "Young") and ds.factors.sizes == (2, 2)
    assert ds.factor_classes("test").tolist() == [[1, 1], [0, 1]]
    assert ds.factor_values("val").tolist() == [[1.0, 1.0], [-1.0, 1.0]]
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing list_eval_partition.txt"):
        load("celeba", root)


# CIFAR ---------------------------------------------------------------------------------------------------
def _cifar_records(n: int, label_bytes: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10 if label_bytes == 1 else 20, (n, label_bytes)).astype(np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    return np.concatenate([labels, images.reshape(n, -1)], axis=1).tobytes(), images, labels


def test_cifar10_binary_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    images, labels = [], []
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        raw, x, y = _cifar_records(4, 1, i)
        (folder / name).write_bytes(raw)
        images.append(x)
        labels.append(y[:, 0])
    (folder / "batches.meta.txt").write_text("\n".join(f"class{k}" for k in range(10)) + "\n\n")
    ds = load("cifar10", tmp_path)  # the extracted archive's root is found too
    assert ds.shape == (3, 32, 32) and ds.classes == [f"class{k}" for k in range(10)]
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (18, 2, 4)  # validation: the last 10%
    train = np.concatenate(images[:5])
    assert torch.equal(ds.images["train"].take(slice(None)), torch.from_numpy(train[:18]))
    assert torch.equal(ds.images["val"].take(slice(None)), torch.from_numpy(train[18:]))
    assert ds.y_test.tolist() == labels[5].tolist()
    assert load("cifar10", folder, channels=1, image_size=16).shape == (1, 16, 16)


def test_cifar100_binary_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    raw, x, y = _cifar_records(10, 2, 0)
    (folder / "train.bin").write_bytes(raw)
    (folder / "test.bin").write_bytes(_cifar_records(3, 2, 1)[0])
    ds = load("cifar100", folder)
    assert ds.y_train.tolist() == y[:9, 1].tolist() and ds.y_val.tolist() == y[9:, 1].tolist()
    (folder / "test.bin").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="not a whole number of 3074-byte CIFAR records"):
        load("cifar100", folder)


def test_cifar_python_version_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(Trap()))
    for where in (folder, tmp_path):
        with pytest.raises(ValueError, match=r"python version \(pickled files\).*never unpickles.*"
                                             r"cifar-10-binary\.tar\.gz.*cifar-10-batches-bin"):
            load("cifar10", where)
    py100 = tmp_path / "c100" / "cifar-100-python"
    py100.mkdir(parents=True)
    for name in ["train", "test", "meta"]:
        (py100 / name).write_bytes(pickle.dumps(Trap()))
    with pytest.raises(ValueError, match=r"never unpickles.*cifar-100-binary\.tar\.gz.*cifar-100-binary folder"):
        load("cifar100", tmp_path / "c100")
    bin_folder = tmp_path / "cifar-10-batches-bin"
    bin_folder.mkdir()
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        (bin_folder / name).write_bytes(pickle.dumps(Trap()))
    with pytest.raises(ValueError, match="is a Python pickle"):
        load("cifar10", bin_folder)
    assert not marker.exists()


# SVHN ----------------------------------------------------------------------------------------------------
def test_svhn_mat_round_trip_and_label_10_is_0(tmp_path: Path) -> None:
    import scipy.io

    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 12), ("test", 3)):
        x = rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, 10 meaning the digit 0
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        data[split] = (x, y)
    ds = load("svhn", tmp_path)
    assert (ds.size("train"), ds.size("val"), ds.size("test")) == (11, 1, 3)
    x, y = data["train"]
    assert torch.equal(ds.images["train"].take([4])[0], torch.from_numpy(x[..., 4].transpose(2, 0, 1)))
    assert ds.y_train.tolist() == [v % 10 for v in y[:11, 0].tolist()] and 0 in ds.y_train.tolist()
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": rng.integers(0, 256, (28, 28, 5)).astype(np.uint8),
                                                   "y": np.ones((5, 1))})
    with pytest.raises(ValueError, match=r"X is uint8 of shape \(28, 28, 5\); expected X of shape \(32, 32, 3, N\)"):
        load("svhn", tmp_path)
    whole = (tmp_path / "train_32x32.mat").read_bytes()
    (tmp_path / "train_32x32.mat").write_bytes(whole[:len(whole) // 2])  # X's header intact, y cut off
    with pytest.raises(ValueError, match=r"found \['X'\] \(the file may be truncated"):
        load("svhn", tmp_path)
    (tmp_path / "train_32x32.mat").write_bytes(whole)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"expected the SVHN variables .* found \['images'\]"):
        load("svhn", tmp_path)


# dSprites ------------------------------------------------------------------------------------------------
def test_procedural_grid_is_the_published_one() -> None:
    assert sprites.SIZES == (1, 3, 6, 40, 32, 32) and sprites.n_images() == 737_280
    assert sprites.NAMES == ("color", "shape", "scale", "orientation", "posX", "posY")
    values = sprites.factor_values()
    assert [len(v) for v in values] == list(sprites.SIZES)
    np.testing.assert_array_equal(values[2], np.linspace(0.5, 1, 6))
    np.testing.assert_array_equal(values[3], np.linspace(0, 2 * np.pi, 40))
    np.testing.assert_array_equal(values[4], np.linspace(0, 1, 32))
    assert values[1].tolist() == [1.0, 2.0, 3.0] and values[0].tolist() == [1.0]
    rows = np.array([0, 1, 32, 1024, 40 * 1024, 6 * 40 * 1024, 737_279])
    assert sprites.grid_classes(rows).tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0],
                                                   [0, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 0],
                                                   [0, 2, 5, 39, 31, 31]]


def test_procedural_rendering_is_deterministic_and_follows_its_factors() -> None:
    def image(shape: int, scale: int, angle: int, x: int, y: int) -> np.ndarray:
        row = int(np.ravel_multi_index((0, shape, scale, angle, x, y), sprites.SIZES))
        return sprites.render(row, row + 1)[0, 0]

    a = image(2, 3, 7, 4, 9)
    assert set(np.unique(a)) == {0, 255} and np.array_equal(a, image(2, 3, 7, 4, 9))
    assert np.array_equal(np.roll(a, 1, axis=1), image(2, 3, 7, 5, 9))  # posX: one column right
    assert np.array_equal(np.roll(a, 1, axis=0), image(2, 3, 7, 4, 10))  # posY: one row down
    assert np.array_equal(image(0, 2, 0, 3, 3), image(0, 2, 39, 3, 3))  # orientation 0 and 2π
    areas = [int((image(s, k, 0, 10, 10) > 0).sum()) for s in range(3) for k in range(6)]
    for s in range(3):
        assert areas[6 * s:6 * s + 6] == sorted(areas[6 * s:6 * s + 6]) and areas[6 * s] < areas[6 * s + 5]
    assert len({image(s, 5, 3, 10, 10).tobytes() for s in range(3)}) == 3
    corner = image(0, 5, 0, 31, 31)
    assert corner[-1].any() is np.False_ or not corner[-1].any()  # stays inside the image


@pytest.fixture
def small_grid(monkeypatch: pytest.MonkeyPatch) -> tuple[int, ...]:
    sizes = (1, 3, 2, 2, 3, 2)
    monkeypatch.setattr(sprites, "SIZES", sizes)
    return sizes


def test_procedural_dataset_factors_and_splits(small_grid: tuple[int, ...]) -> None:
    ds = load("dsprites-procedural", seed=1)
    n = int(np.prod(small_grid))
    assert ds.shape == (1, 64, 64) and ds.size("train") + ds.size("val") + ds.size("test") == n
    assert ds.factors.names == sprites.NAMES and ds.factors.sizes == small_grid and ds.classes == list(sprites.SHAPES)
    seen = np.concatenate([ds.factors.index(ds.factor_classes(s).numpy()) for s in ("train", "val", "test")])
    assert sorted(seen.tolist()) == list(range(n))  # disjoint splits covering the grid
    classes = ds.factor_classes("val").numpy()
    assert torch.equal(ds.factors.images(classes), ds.x_val)  # the grid draws the same images
    assert torch.equal(ds.y_train, ds.factor_classes("train")[:, 1])  # labels: the shape
    assert ds.factor_values("test")[:, 2].tolist() == [[0.5, 1.0][c] for c in classes_of(ds, "test", 2)]
    assert torch.equal(ds.x_train, load("dsprites-procedural", seed=1).x_train)


def classes_of(ds: vaecore.Dataset, split: str, k: int) -> list[int]:
    return ds.factor_classes(split)[:, k].tolist()


def _write_dsprites(path: Path, sizes: tuple[int, ...], *, drop: str | None = None, trap: Path | None = None) -> None:
    n = int(np.prod(sizes))
    classes = sprites.grid_classes(np.arange(n))
    values = np.stack([v[classes[:, k]] for k, v in enumerate(sprites.factor_values())], axis=1)
    imgs = (sprites.render(0, n)[:, 0] // 255).astype(np.uint8)
    arrays = {"imgs": imgs, "latents_values": values, "latents_classes": classes}
    if drop:
        del arrays[drop]

    class Trap:
        def __reduce__(self):
            return (open, (str(trap), "w"))

    meta = np.empty(1, dtype=object)
    meta[0] = Trap() if trap else {"description": "dSprites"}
    np.savez_compressed(path, metadata=meta, **arrays)  # metadata is pickled, as in DeepMind's file


def test_deepmind_npz_read_without_its_pickled_metadata(tmp_path: Path, small_grid: tuple[int, ...]) -> None:
    path = tmp_path / "dsprites.npz"
    marker = tmp_path / "unpickled"
    _write_dsprites(path, small_grid, trap=marker)
    ds = load("dsprites", path)
    assert not marker.exists()
    assert ds.factors.sizes == small_grid and torch.equal(ds.x_test, load("dsprites-procedural").x_test)
    _write_dsprites(tmp_path / "partial.npz", small_grid, drop="latents_classes")
    with pytest.raises(ValueError, match="needs the arrays imgs, latents_values, latents_classes; missing "
                                         "latents_classes"):
        load("dsprites", tmp_path / "partial.npz")
    np.savez(tmp_path / "wrong.npz", imgs=np.zeros((3, 64, 64), np.uint8), latents_values=np.zeros((3, 6)),
             latents_classes=np.zeros((3, 6), np.int64))
    with pytest.raises(ValueError, match=r"imgs has shape \(3, 64, 64\); dSprites has"):
        load("dsprites", tmp_path / "wrong.npz")


def test_dsprites_latents_claiming_more_than_the_grid_are_refused_from_their_header(
        tmp_path: Path, small_grid: tuple[int, ...]) -> None:
    import io
    import zipfile

    path = tmp_path / "forged.npz"
    _write_dsprites(path, small_grid)
    forged = io.BytesIO()
    np.lib.format.write_array_header_1_0(forged, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 6)})
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "out.npz", "w") as dst:
        for info in src.infolist():
            body = forged.getvalue() if info.filename == "latents_values.npy" else src.read(info)
            dst.writestr(info.filename, body)  # 48 GB claimed, no data
    with pytest.raises(ValueError, match=r"\[latents_values\]: header claims shape \(1000000000, 6\)"):
        load("dsprites", tmp_path / "out.npz")
    np.savez(tmp_path / "wide.npz", imgs=sprites.render(0, int(np.prod(small_grid)))[:, 0] // 255,
             latents_values=np.zeros((int(np.prod(small_grid)), 5)), latents_classes=np.zeros((1, 6), np.int64))
    with pytest.raises(ValueError, match=r"latents_values has shape \(72, 5\); dSprites has \(72, 6\)"):
        load("dsprites", tmp_path / "wide.npz")


# the existing formats keep working --------------------------------------------------------------------------
def test_existing_formats_keep_uint8_and_transforms_apply(tmp_path: Path) -> None:
    mnist = load("mnist", limit=50)
    assert mnist.images["test"].dtype == torch.uint8 and mnist.shape == (1, 28, 28)
    colour = load("mnist", limit=50, channels=3)
    assert colour.shape == (3, 28, 28) and torch.equal(colour.images["train"].take([0])[0, 0],
                                                       mnist.images["train"].take([0])[0, 0])
    assert torch.equal(colour.images["train"].take([0])[0, 2], mnist.images["train"].take([0])[0, 0])
    digits = load("digits", image_size=16)
    assert digits.shape == (1, 16, 16) and digits.images["test"].dtype == torch.float32
    assert 0 <= float(digits.x_test.min()) and float(digits.x_test.max()) <= 1
    np.savez(tmp_path / "a.npz", x=np.ones((20, 4, 4), bool))
    assert torch.equal(load(str(tmp_path / "a.npz")).x_train, torch.ones(17, 1, 4, 4))
    assert load("digits").images["train"].dtype == torch.float32
    assert os.environ["VAECORE_CACHE"].endswith("cache")


def test_data_info_says_what_a_folder_holds_without_caching_it(tmp_path: Path, cache_dir: Path) -> None:
    from vaecore.data.inspect import describe, format_description

    root = tmp_path / "info"
    for name in ("b", "a"):
        (root / name).mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rgb(i, 12, 10)).save(root / "a" / f"{i}.png")
    Image.fromarray(rgb(9, 20, 16)).save(root / "b" / "big.png")
    Image.fromarray(np.full((12, 10), 5, np.uint8)).save(root / "b" / "grey.png")
    (root / "b" / "notes.md").write_text("x")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    info = describe(root)
    assert info["format"] == "imagefolder" and info["images"] == 5 and info["classes"] == ["a", "b"]
    assert info["class_counts"] == {"a": 3, "b": 2} and info["modes"] == {"RGB": 4, "L": 1}
    assert "mixes grey (1 images, e.g. b/grey.png)" in info["refused"]
    text = format_description(describe(root, channels=3, image_size=8))
    assert "will load as: 3 x 8 x 8 (RGB) uint8" in text and "grey→RGB: 1" in text
    assert "1 non-image file(s) (e.g. b/notes.md)" in text and "b/broken.png" in text
    assert not cache_dir.exists()  # headers only: nothing decoded, nothing cached
    (tmp_path / "cifar-10-batches-bin").mkdir()
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / "cifar-10-batches-bin" / name).write_bytes(bytes(3073 * 2))
    cifar = describe(tmp_path / "cifar-10-batches-bin")
    assert cifar["format"] == "cifar10" and cifar["parts"] == {"train": 10, "test": 2}


def test_the_papers_networks_apply_where_preset_and_user_leave_them_open() -> None:
    x = np.zeros((6, 3, 32, 32), np.uint8)
    cifar = vaecore.Dataset("cifar10", x, None, x, None, x, None)
    model = vaecore.build_preset("sigma-vae", data=cifar, seed=0)
    assert model.config.arch == "sigma-conv-wide" and model.config.latent_dim == 20
    assert vaecore.build_preset("sigma-vae", data=cifar, arch="mlp", latent_dim=3).config.arch == "mlp"
    assert vaecore.build_preset("vae", data=cifar).config.latent_dim == 10  # the preset's own choice stays
    mnist_like = vaecore.Dataset("mnist", x[:, :1, :28, :28], None, x[:, :1, :28, :28], None, x[:, :1, :28, :28], None)
    assert vaecore.build_preset("sigma-vae", data=mnist_like).config.arch == "sigma-conv"  # unchanged for the others


def test_data_info_command_prints_the_summary_or_one_error_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "pics"
    root.mkdir()
    for i in range(3):
        Image.fromarray(rgb(i)).save(root / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    ok = subprocess.run([sys.executable, "-m", "vaecore", "data", "info", str(root), "--image-size", "8",
                         "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0 and "images: 3 of 3 image files" in ok.stdout and "3 x 8 x 8 (RGB)" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "vaecore", "data", "info", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


def test_the_cli_trains_on_an_image_folder_with_its_transform_recorded(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "pics"
    for cls in ("b", "a"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rgb(10 * i + (cls == "b"), 12, 10)).save(root / cls / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1",
           "VAECORE_CACHE": str(tmp_path / "cache")}
    base = [sys.executable, "-m", "vaecore", "train", "--model", "ae", "--arch", "mlp", "--latent-dim", "2",
            "--data", "imagefolder", "--max-steps", "2", "--batch-size", "4", "--no-sample-grids", "--no-progress",
            "--device", "cpu"]
    run = subprocess.run([*base, "--data-dir", str(root), "--image-size", "8", "--channels", "1", "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    train = json.loads((tmp_path / "run" / "train.json").read_text())
    assert (train["data"], train["data_dir"], train["image_size"], train["channels"]) == (
        "imagefolder", str(root), 8, 1)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert list(config["input_shape"]) == [1, 8, 8]
    (tmp_path / "empty").mkdir()
    bad = subprocess.run([*base, "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no images found" in bad.stderr
