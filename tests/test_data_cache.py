"""The on-disk dataset cache and uint8 storage: a cache is reused, invalidated when the files change,
survives an interrupted build (resumed, never used half-built); a disk store reads rows in any order; a
cache larger than an enforced memory cap streams every training batch under that cap (a subprocess); batches
are the same from worker processes as in-process, ranks read disjoint shards, flips and dequantisation depend
only on the batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaecore
from vaecore.data import arraycache, filecache
from vaecore.data.cache import cache_root
from vaecore.data.pipeline import Augment, BatchStream, batch_generator, dequantize, hflip, shard_rows
from vaecore.data.storage import ArrayStore, FileStore, SubsetStore, to_unit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAECORE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def folder_of_images(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((6, 5, 3), (i * 20, 255 - i * 20, 7), np.uint8)).save(root / f"{i:03d}.png")
    return root


def load(folder: Path, **kw) -> vaecore.Dataset:
    return vaecore.load_dataset("imagefolder", str(folder), progress=False, **kw)


def every_image(ds: vaecore.Dataset) -> list[bytes]:
    return sorted(x.numpy().tobytes() for s in ("train", "val", "test") for x in ds.images[s].take(slice(None)))


def test_cache_lives_outside_the_data_and_is_reused(tmp_path: Path, cache_dir: Path) -> None:
    folder = folder_of_images(tmp_path / "pics")
    first = load(folder, storage="disk")
    assert cache_root() == cache_dir and Path(first.info["cache"]).parent == cache_dir
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:03d}.png" for i in range(12)]  # nothing written there
    manifest = json.loads((Path(first.info["cache"]) / "manifest.json").read_text())
    assert manifest["format"] == "imagefolder" and manifest["source"] == str(folder.resolve())
    assert manifest["fingerprint"]["files"] == 12 and manifest["settings"]["preprocess"]["image_size"] is None
    stamp = (Path(first.info["cache"]) / "all.images.npy").stat().st_mtime_ns
    second = load(folder, storage="disk")
    assert second.info["cache"] == first.info["cache"]
    assert (Path(second.info["cache"]) / "all.images.npy").stat().st_mtime_ns == stamp  # not rebuilt
    assert not second.images["train"].in_memory and load(folder).images["train"].in_memory  # auto: small → memory


def test_cache_is_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    folder = folder_of_images(tmp_path / "pics")
    before = every_image(load(folder))
    Image.fromarray(np.full((6, 5, 3), 99, np.uint8)).save(folder / "005.png")
    os.utime(folder / "005.png", ns=(1, 1))  # even with an old time stamp: the size or time differs
    after = every_image(load(folder))
    assert after != before and np.full((3, 6, 5), 99, np.uint8).tobytes() in after
    (folder / "011.png").unlink()
    assert len(every_image(load(folder))) == 11


def test_an_interrupted_build_resumes_and_is_never_used_half_built(tmp_path: Path, cache_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capfd: pytest.CaptureFixture) -> None:
    folder = folder_of_images(tmp_path / "pics", n=30)
    clean = every_image(load(folder, image_size=4))
    for p in cache_dir.iterdir():  # start over
        if p.is_dir():
            import shutil
            shutil.rmtree(p)
    monkeypatch.setattr(filecache, "CHUNK", 4)
    monkeypatch.setattr(filecache, "SAVE_EVERY", 4)
    real = filecache.decode_image
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 17:
            raise KeyboardInterrupt  # the process killed mid-build
        return real(*args, **kwargs)

    monkeypatch.setattr(filecache, "decode_image", dying)
    with pytest.raises(KeyboardInterrupt):
        load(folder, image_size=4)
    assert not [p for p in cache_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]  # no complete cache
    partial = [p for p in cache_dir.iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and (partial[0] / "progress.json").is_file()
    monkeypatch.setattr(filecache, "decode_image", real)
    calls["n"] = 0
    counted = filecache.decode_image

    def counting(*args, **kwargs):
        calls["n"] += 1
        return counted(*args, **kwargs)

    monkeypatch.setattr(filecache, "decode_image", counting)
    capfd.readouterr()
    resumed = load(folder, image_size=4)
    assert "resuming the interrupted cache build" in capfd.readouterr().err
    assert calls["n"] == 30 - 16  # the 16 images recorded before the interruption are not decoded again
    assert every_image(resumed) == clean
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".partial")]


def test_an_interrupted_array_build_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.io

    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 5)):
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8),
                                                           "y": np.ones((n, 1), np.uint8)})
    clean = every_image(vaecore.load_dataset("svhn", str(tmp_path), progress=False))
    monkeypatch.setenv("VAECORE_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setattr(arraycache, "CHUNK", 3)
    real = arraycache.transform_array
    state = {"n": 0}

    def dying(*args, **kwargs):
        state["n"] += 1
        if state["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(arraycache, "transform_array", dying)
    with pytest.raises(KeyboardInterrupt):
        vaecore.load_dataset("svhn", str(tmp_path), progress=False, image_size=16)
    monkeypatch.setattr(arraycache, "transform_array", real)
    resized = vaecore.load_dataset("svhn", str(tmp_path), progress=False, image_size=16)
    fresh = vaecore.load_dataset("svhn", str(tmp_path), progress=False, image_size=16, storage="disk")
    assert every_image(resized) == every_image(fresh) and resized.shape == (3, 16, 16)
    assert len(clean) == 25


def test_a_cache_that_would_not_fit_is_refused_before_anything_is_written(tmp_path: Path, cache_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from vaecore.data import cache

    folder = folder_of_images(tmp_path / "pics")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda _: usage._replace(free=256 * 2**20 + 100))
    with pytest.raises(ValueError, match=r"needs up to 0\.00 GiB in .*which has 0\.25 GiB free; free some space "
                                         "or set VAECORE_CACHE"):
        load(folder)
    assert not list(cache_dir.rglob("*.images.npy")) and not list(cache_dir.rglob("manifest.json"))
    monkeypatch.setattr(filecache, "MAX_CACHE_BYTES", 12 * 3 * 6 * 5 - 1)  # one byte less than 12 images need
    with pytest.raises(ValueError, match=r"the cache would take .* TiB \(limit 1 TiB\); pass a smaller --image-size"):
        load(folder)
    monkeypatch.undo()
    monkeypatch.setenv("VAECORE_CACHE", str(cache_dir))
    assert len(every_image(load(folder))) == 12  # the refused builds left nothing in the way


def test_a_cache_build_reports_its_progress_and_a_reused_cache_does_not(tmp_path: Path) -> None:
    calls: list[tuple[float, str]] = []
    folder = folder_of_images(tmp_path / "pics")
    vaecore.load_dataset("imagefolder", str(folder), progress=lambda f, m: calls.append((f, m)))
    decoding = [f for f, m in calls if m == "decoding pics into the cache"]
    assert decoding and decoding == sorted(decoding) and decoding[-1] == 1.0
    assert (1.0, "reading image headers") in calls
    calls.clear()
    vaecore.load_dataset("imagefolder", str(folder), progress=lambda f, m: calls.append((f, m)))
    assert calls == []  # reused: nothing decoded
    data = np.zeros((12, 2 + 3072), np.uint8)
    (tmp_path / "c100").mkdir()
    data.tofile(tmp_path / "c100" / "train.bin")
    data[:3].tofile(tmp_path / "c100" / "test.bin")
    vaecore.load_dataset("cifar100", str(tmp_path / "c100"), progress=lambda f, m: calls.append((f, m)))
    assert calls[-1] == (1.0, "writing cifar100 into the cache")


def test_file_store_reads_rows_in_any_order(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, (50, 3, 4, 5)).astype(np.uint8)
    path = tmp_path / "x.npy"
    np.save(path, data)
    store = FileStore(path)
    assert len(store) == 50 and store.image_shape == (3, 4, 5) and store.dtype == torch.uint8
    rows = np.array([7, 3, 4, 5, 49, 0, 7, 12, 13])
    assert torch.equal(store.take(rows), torch.from_numpy(data[rows]))
    assert torch.equal(store.take(slice(10, 20)), torch.from_numpy(data[10:20]))
    sub = SubsetStore(store, np.array([9, 8, 7]))
    assert torch.equal(sub.subset([2, 0]).take(slice(None)), torch.from_numpy(data[[7, 9]]))
    assert torch.equal(to_unit(store.take([1])), torch.from_numpy(data[[1]].astype(np.float32) / np.float32(255)))
    assert torch.equal(store.to_memory().tensor, torch.from_numpy(data))
    with pytest.raises(IndexError):
        store.take([50])
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 10)
    with pytest.raises(ValueError, match="truncated"):
        FileStore(path)


def test_uint8_in_memory_costs_its_size_and_floats_are_bit_identical() -> None:
    ds = vaecore.load_dataset("mnist", progress=False)
    assert ds.nbytes == 70_000 * 784  # uint8: a quarter of the float32 copy it replaced
    k = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_unit(k), torch.from_numpy(np.arange(256).astype(np.float32) / np.float32(255)))


CAP = 96 * 2**20  # the address space the capped process may add once it has started: under half the 205 MiB of
# training images. glibc's malloc runs with a fixed mmap threshold (MALLOC_MMAP_THRESHOLD_ below): with its default
# dynamic one, the batches' 3 MB blocks fragmented the heap by 60-90 MiB (address space and resident), now and then
# over the cap — the allocator's layout, not memory the streaming holds (6 MiB resident with the fixed threshold)
RSS_GROWTH = 32 * 2**20  # the resident memory the whole streamed epoch may add (measured: 6 MiB)


def test_a_cache_larger_than_the_memory_cap_streams_every_training_batch(tmp_path: Path) -> None:
    """A CIFAR-100 binary folder whose cache (215 MB of training images) is over twice an enforced memory cap
    (RLIMIT_AS: 96 MiB more than the process holds after start-up): `storage="auto"` sees the cap and keeps
    the data on disk, every training image streams through the epoch's batches exactly once while the resident
    memory grows by under a third of the images' size, and reading the split whole fails under the same cap."""
    n = 80_000  # 70,000 train + 10,000 val
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    records = np.zeros((n, 2 + 3 * 32 * 32), np.uint8)
    ids = np.arange(n)
    records[:, 2:5] = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=1)  # each image says its row
    records[:, 1] = ids % 100
    records.tofile(folder / "train.bin")
    records[:4].tofile(folder / "test.bin")
    script = textwrap.dedent(f"""
        import resource, sys, numpy as np, torch
        sys.path.insert(0, {str(ROOT)!r})
        torch.set_num_threads(1)
        import vaecore
        from vaecore.data.pipeline import TrainBatches

        def status(key):
            return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

        def vm():
            return status("VmSize")

        built = vaecore.load_dataset("cifar100", {str(folder)!r}, storage="disk", progress=False)  # uncapped
        TrainBatches(built.images["train"], batch_size=250, seed=0, device="cpu").batch(0, 0)  # warm up
        del built
        resource.setrlimit(resource.RLIMIT_AS, (vm() + {CAP}, resource.RLIM_INFINITY))
        with open("/proc/self/clear_refs", "w") as f:  # the high-water mark restarts from here
            f.write("5")
        rss0 = status("VmRSS")
        ds = vaecore.load_dataset("cifar100", {str(folder)!r}, progress=False)  # storage="auto"
        train = ds.images["train"]
        batches = TrainBatches(train, batch_size=250, seed=0, device="cpu")
        seen = []
        for i in range(len(train) // 250):
            x = (batches.batch(0, i)[:, 0, 0, :3] * 255).round().long()  # red plane's first pixels
            seen.append(x[:, 0] + 256 * x[:, 1] + 65536 * x[:, 2])
        seen = torch.cat(seen)
        peak = status("VmHWM") - rss0  # the resident high-water mark the streaming added (≥ what it held)
        try:
            train.take(slice(None))
            whole = "held"
        except (MemoryError, RuntimeError):
            whole = "refused"
        print(train.in_memory, train.nbytes, len(seen), len(set(seen.tolist())), int(seen.max()), whole, peak)
    """)
    env = {**os.environ, "VAECORE_CACHE": str(tmp_path / "cache"), "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "1",
           "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    in_memory, nbytes, count, distinct, top, whole, peak = out.stdout.split()
    assert in_memory == "False" and int(nbytes) == 70_000 * 3072 > 2 * CAP
    assert int(peak) < RSS_GROWTH < int(nbytes) / 3, f"streaming added {int(peak) / 2**20:.0f} MiB resident"
    assert int(count) == int(distinct) == 70_000 and int(top) == 69_999  # each training image once: rows 0..69,999
    assert whole == "refused"


def test_the_memory_cgroup_limit_counts_as_available_memory(tmp_path: Path) -> None:
    from vaecore.data.datasets import cgroup_room

    proc = tmp_path / "cgroup"
    v2 = tmp_path / "fs" / "box"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text("1000000\n")
    (v2 / "memory.current").write_text("250000\n")
    proc.write_text("0::/box\n")
    assert cgroup_room(proc, tmp_path / "fs") == 750_000
    (v2 / "memory.max").write_text("max\n")
    assert cgroup_room(proc, tmp_path / "fs") is None
    v1 = tmp_path / "fs" / "memory" / "job"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("4096\n")
    (v1 / "memory.usage_in_bytes").write_text("1024\n")
    proc.write_text("5:cpu:/\n4:memory:/job\n0::/\n")
    assert cgroup_room(proc, tmp_path / "fs") == 3072
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert cgroup_room(proc, tmp_path / "fs") is None
    assert cgroup_room(tmp_path / "missing", tmp_path / "fs") is None


def test_ranks_read_disjoint_shards_of_each_global_batch() -> None:
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(3))
    for index in range(100 // 20):
        shards = [shard_rows(perm, index, 20, rank, 4) for rank in range(4)]
        rows = torch.cat(shards)
        assert all(len(s) == 5 for s in shards) and len(set(rows.tolist())) == 20
        assert torch.equal(rows, perm[index * 20:(index + 1) * 20])


def test_worker_processes_give_the_same_batches_with_flips_by_batch(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 256, (64, 1, 3, 4)).astype(np.uint8)
    np.save(tmp_path / "x.npy", data)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    aug = Augment(hflip=True)

    def batches(store, workers: int, start: int = 0) -> list[torch.Tensor]:
        s = BatchStream(store, perm, 16, start=start, stop=4, seed=5, epoch=2, rank=1, world=2, augment=aug,
                        workers=workers)
        return [s.next_batch() for _ in range(4 - start)]

    in_process = batches(ArrayStore(data), 0)
    from_workers = batches(FileStore(tmp_path / "x.npy"), 2)
    assert all(torch.equal(a, b) for a, b in zip(in_process, from_workers, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(in_process[2:], batches(ArrayStore(data), 0, start=2), strict=True))
    plain = torch.from_numpy(data[shard_rows(perm, 0, 16, 1, 2).numpy()]).float() / 255
    flipped = [torch.equal(in_process[0][i], plain[i].flip(-1)) and not torch.equal(plain[i], plain[i].flip(-1))
               for i in range(8)]
    assert 0 < sum(flipped) < 8  # some flipped, some not
    x = torch.from_numpy(data[:4])
    g1, g2 = batch_generator(5, 2, 0, 1), batch_generator(5, 2, 0, 1)
    assert torch.equal(hflip(x, g1), hflip(x, g2))
    whole = hflip(torch.from_numpy(data[:16]), batch_generator(5, 2, 0, 1))  # ranks' slices of one global draw
    halves = [hflip(torch.from_numpy(data[8 * r:8 * r + 8]), batch_generator(5, 2, 0, 1), 8 * r, 16) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), whole)


def test_dequantisation_stays_in_each_values_bin() -> None:
    k = torch.arange(256, dtype=torch.uint8).repeat(40).reshape(40, 1, 16, 16)
    x = dequantize(k, torch.Generator().manual_seed(0))
    lo, hi = k.double() / 256, (k.double() + 1) / 256
    assert x.dtype == torch.float32 and bool(((x >= lo) & (x <= hi)).all())
    assert abs(float((x.double() * 256 - k.double()).mean()) - 0.5) < 0.02  # E[u] = ½ over 10,240 draws
    with pytest.raises(ValueError, match="8-bit"):
        dequantize(torch.rand(2, 1, 2, 2), torch.Generator())


def test_training_batches_are_the_same_from_memory_and_from_disk(tmp_path: Path) -> None:
    from vaecore.data.datasets import epoch_permutation
    from vaecore.data.pipeline import TrainBatches

    data = np.random.default_rng(2).integers(0, 256, (70, 3, 4, 4)).astype(np.uint8)
    np.save(tmp_path / "x.npy", data)
    aug = Augment(hflip=True, dequantize=True)
    kw = {"batch_size": 20, "seed": 4, "device": "cpu", "rank": 1, "world": 2, "augment": aug}
    memory = TrainBatches(ArrayStore(data), **kw)
    disk = TrainBatches(FileStore(tmp_path / "x.npy"), workers=2, **kw)
    order = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    a = [memory.batch(e, i) for e, i in order]
    b = [disk.batch(e, i) for e, i in order]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    resumed = TrainBatches(FileStore(tmp_path / "x.npy"), workers=0, **kw)
    assert torch.equal(resumed.batch(1, 1), a[4]) and torch.equal(resumed.batch(1, 2), a[5])
    plain = TrainBatches(ArrayStore(data), batch_size=20, seed=4, device="cpu")
    rows = epoch_permutation(70, 4, 3)[20:40]
    assert torch.equal(plain.batch(3, 1), torch.from_numpy(data[rows.numpy()]).float() / 255)  # as x_train[perm]


def test_augmented_batches_do_not_depend_on_the_number_of_ranks() -> None:
    from vaecore.data.pipeline import TrainBatches

    data = np.random.default_rng(3).integers(0, 256, (40, 1, 3, 3)).astype(np.uint8)
    kw = {"batch_size": 8, "seed": 1, "device": "cpu", "augment": Augment(hflip=True, dequantize=True)}
    one = TrainBatches(ArrayStore(data), **kw)
    ranks = [TrainBatches(ArrayStore(data), rank=r, world=4, **kw) for r in range(4)]
    for epoch, index in ((0, 0), (0, 3), (2, 1)):
        assert torch.equal(torch.cat([t.batch(epoch, index) for t in ranks]), one.batch(epoch, index))
