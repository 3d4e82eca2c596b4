"""How fast the demo generator makes large sets: images per second, peak memory, disk per image.

Every measured run is a fresh Python process making one set with core.demo.make_demo; it reports
wall and CPU seconds (its own and its workers'), the peak resident memory of the owner and of the
largest worker, and the disk the set takes (allocated blocks, and the files' own bytes). The set
is deleted afterwards unless --keep. The machine's load average is printed: on a shared machine
wall time is only as good as the cores are free. Run from the repository root:

    python3 benchmarks/demo_speed.py                            # 20,000 and 100,000; 1 and 2 workers
    python3 benchmarks/demo_speed.py --n 1000000 --workers 2    # a million (about 2 GB of small files)
    python3 benchmarks/demo_speed.py --n 20000 --kind hard-shapes --repeats 3
    python3 benchmarks/demo_speed.py --png                      # PNG settings: encode, decode, bytes

Sets go to --out (default benchmarks/data/, git-ignored). Results are appended to
benchmarks/results/demo-speed.jsonl.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

from harness import DATA, RESULTS, peak_mb, run_fresh

PNG_SAMPLE = 1000  # images drawn for the PNG settings comparison


def disk_usage(folder: Path) -> tuple[int, int, int]:
    """(files, bytes allocated on disk, bytes of content) below ``folder``."""
    files = allocated = content = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            files += 1
            allocated += st.st_blocks * 512
            content += st.st_size
    return files, allocated, content


def child_make(out: str, n: int, workers: int, kind: str, seed: int) -> dict:
    """Inside the measured process: make one set and say what it cost."""
    from core.demo import make_demo

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    make_demo(out, n=n, seed=seed, kind=kind, workers=workers)
    seconds = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once they are reaped
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": seconds,
        "user_s": own.ru_utime - before.ru_utime + children.ru_utime,
        "sys_s": own.ru_stime - before.ru_stime + children.ru_stime,
        "owner_peak_mb": peak_mb(),
        "worker_peak_mb": peak_mb(children=True),
    }


def measure(n: int, workers: int, kind: str, seed: int, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # the writes and deletes of the run before are not billed to this one
    load = os.getloadavg()[0]
    result = run_fresh("demo_speed", "child_make", str(out.resolve()), n, workers, kind, seed)
    files, allocated, content = disk_usage(out)
    return {
        "n": n,
        "workers": workers,
        "kind": kind,
        "load_before": round(load, 2),
        **result,
        "images_per_s": n / result["seconds"],
        "cpu_ms_per_image": 1e3 * (result["user_s"] + result["sys_s"]) / n,
        "disk_bytes_per_image": allocated / n,
        "content_bytes_per_image": content / n,
        "files": files,
    }


def compare_png(kind: str) -> list[dict]:
    """Encode and decode CPU time and bytes of one sample of images under each PNG setting."""
    import numpy as np
    from PIL import Image

    from core.demo import FAMILIES, HARD_FAMILIES, draw_demo_image
    from core.reading.decode import MAX_PIXELS, decode_image

    families = list(HARD_FAMILIES if kind == "hard-shapes" else FAMILIES)
    rng = np.random.default_rng(0)
    images = [draw_demo_image(families[i % len(families)], rng, hard=kind == "hard-shapes") for i in range(PNG_SAMPLE)]

    def gray(a: np.ndarray) -> Image.Image:
        return Image.fromarray(a)

    def one_bit(a: np.ndarray) -> Image.Image:
        return Image.frombytes("1", a.shape[::-1], np.packbits(a > 127, axis=1).tobytes())

    settings = [
        (mode, convert, options)
        for mode, convert in (("L", gray), ("1", one_bit))
        for options in ({}, {"compress_level": 1}, {"compress_level": 9}, {"optimize": True})
    ]
    rows = []
    for mode, convert, options in settings:
        encode, decode = [], []
        for _ in range(5):
            start = time.process_time()
            blobs = []
            for a in images:
                buffer = io.BytesIO()
                convert(a).save(buffer, "PNG", **options)
                blobs.append(buffer.getvalue())
            encode.append(time.process_time() - start)
            start = time.process_time()
            for blob in blobs:
                decode_image(blob, 200, "auto", MAX_PIXELS)
            decode.append(time.process_time() - start)
        sizes = [len(b) for b in blobs]
        rows.append(
            {
                "mode": mode,
                "options": options,
                "encode_ms": 1e3 * min(encode) / len(images),
                "decode_ms": 1e3 * min(decode) / len(images),
                "mean_bytes": statistics.mean(sizes),
                "max_bytes": max(sizes),
            }
        )
    return rows


def describe(row: dict) -> str:
    return (
        f"n={row['n']:>9,} workers={row['workers']} {row['seconds']:7.1f} s  {row['images_per_s']:5.0f} images/s  "
        f"cpu {row['user_s']:.1f}+{row['sys_s']:.1f} s (user+sys)  peak owner {row['owner_peak_mb']:.0f} MB, "
        f"worker {row['worker_peak_mb']:.0f} MB  disk {row['disk_bytes_per_image']:.0f} B/image "
        f"(content {row['content_bytes_per_image']:.0f})  load {row['load_before']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kind", default="shapes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--keep", action="store_true", help="keep the sets made (default: delete them)")
    parser.add_argument("--png", action="store_true", help="only compare PNG settings")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.png:
        print(f"PNG settings on {PNG_SAMPLE} {args.kind} images (CPU ms per image, best of 5):")
        for row in compare_png(args.kind):
            print(
                f"  mode {row['mode']} {row['options']!s:26s} encode {row['encode_ms']:.3f}  "
                f"decode {row['decode_ms']:.3f}  bytes mean {row['mean_bytes']:.0f} max {row['max_bytes']}"
            )
        return
    args.out.mkdir(parents=True, exist_ok=True)
    made = []
    with open(RESULTS / "demo-speed.jsonl", "a") as log:
        for n in args.n:
            for _ in range(args.repeats):
                for workers in args.workers:  # alternated: a change in the machine's load hits both
                    out = args.out / f"demo-speed-{args.kind}-{n}-w{workers}-{len(made)}"
                    made.append(out)
                    row = measure(n, workers, args.kind, args.seed, out)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    print(describe(row), flush=True)
    if not args.keep:  # deleted at the end: deleting many files costs the disk time a later run would pay
        for out in made:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
