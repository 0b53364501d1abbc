#!/usr/bin/env python3
"""FAISS peer side of `facepay bench gallery`: 1:N search over the same templates.

Reads a directory written by facepay's gallery benchmark:

  gallery.f32   N x D little-endian float32 rows, the L2-normalised templates
  queries.f32   Q x D little-endian float32 rows
  meta.json     {"n": N, "dim": D, "queries": Q,
                 "truth": [index of the exact best gallery row for each query],
                 "hard": [whether each query is a hard genuine one] (optional)}

and searches it with FAISS on --threads OpenMP threads:

  IndexFlatIP    exact inner-product scan; build = the add.
  IndexHNSWFlat  HNSW graph (M, efConstruction) on inner product; build = the add,
                 then one result per efSearch value.
  IndexIVFFlat   inverted file (nlist k-means cells, flat quantizer) on inner product;
                 build = train + add, then one result per nprobe value.
  IndexIVFPQFastScan  the same cells, each row a PQ code of D/2 sub-quantizers of
                 4 bits scanned with SIMD shuffles (FAISS's fastest IVF scan); build =
                 train + add, then one result per nprobe value.

Queries are answered ONE AT A TIME (a payment is one query; batching would flatter
FAISS), each timed with time.perf_counter around index.search(query, k=1), so the
latency includes the Python call (a few microseconds). recall_at_1 is the share of
queries whose answer is the row in "truth". A few untimed queries warm each index
first (--warmup).

Prints one JSON object on stdout; progress goes to stderr:

  {"faiss_version": "1.15.1", "threads": T, "n": N, "dim": D, "queries": Q,
   "warmup_queries": W,
   "results": [{"index": "IndexFlatIP" | "IndexHNSWFlat" | "IndexIVFFlat" | "IndexIVFPQFastScan",
                "params": {} | {"m": M, "ef_construction": C, "ef_search": S}
                          | {"nlist": L, "nprobe": P} (IVFPQFastScan adds "pq_m", "pq_bits"),
                "build_s": seconds to add the N rows,
                "build_cpu_s": CPU seconds of the process (all threads) during the add;
                               build_cpu_s / build_s well below threads means the
                               machine was busy with something else,
                "memory_bytes_estimate": N*D*4 (flat) | N*(D*4 + M*2*4) (HNSW),
                "memory_bytes_counted": bytes of the index's own arrays, as FAISS holds them,
                "qps": Q / seconds of the timed loop, one query at a time,
                "latency_ms_median": ..., "latency_ms_p99": ... (nearest rank),
                "recall_at_1": ..., "recall_at_1_hard": ... (over the hard queries;
                                                             null without any)}, ...]}

Run it with the venv made by scripts/peer-venv.sh:

    PY=$(scripts/peer-venv.sh | tail -n 1)
    "$PY" scripts/bench_gallery_peer.py DIR --threads 2 [--hnsw-m 32]
        [--hnsw-ef-construction 64] [--hnsw-ef-search 32,64,128,256]
        [--ivf-nlist 4096] [--ivf-nprobe 8,16,32,64,128,256,512]
        [--skip-hnsw] [--skip-flat] [--skip-ivf] [--warmup 10]

Only numpy and faiss are needed besides the standard library.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

META_FILE = "meta.json"
GALLERY_FILE = "gallery.f32"
QUERIES_FILE = "queries.f32"
ROW_DTYPE = np.dtype("<f4")
# Rows are read (checked, and so paged in) and added to the HNSW graph this many at a time.
CHUNK_ROWS = 1_000_000
# A template whose L2 norm is further than this from 1 is reported as not normalised.
NORM_TOLERANCE = 1e-3
# Memory kept free beyond the indexes and the queries, in bytes.
MEMORY_HEADROOM = 512 << 20
# At most this many seconds between progress lines while answering queries.
PROGRESS_EVERY_S = 10.0
# Training rows per inverted-file cell, at most (FAISS's own k-means keeps 256 a cell).
IVF_TRAIN_ROWS_PER_CELL = 64


def log(message):
    """One progress line on stderr."""
    print(f"[bench_gallery_peer] {message}", file=sys.stderr, flush=True)


def positive_int(text):
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, got {text}")
    return value


def ef_list(text):
    """argparse type: comma-separated efSearch values, each at least 1, in the order given."""
    try:
        values = [positive_int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from err
    if not values:
        raise argparse.ArgumentTypeError("expected at least one efSearch value")
    return values


def parse_args():
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, metavar="DIR",
                        help=f"directory holding {GALLERY_FILE}, {QUERIES_FILE} and {META_FILE}")
    parser.add_argument("--threads", type=positive_int, required=True,
                        help="OpenMP threads for FAISS (faiss.omp_set_num_threads)")
    parser.add_argument("--hnsw-m", type=positive_int, default=32, help="HNSW M (default: 32)")
    parser.add_argument("--hnsw-ef-construction", type=positive_int, default=64,
                        help="HNSW efConstruction (default: 64)")
    parser.add_argument("--hnsw-ef-search", type=ef_list, default=[32, 64, 128, 256], metavar="LIST",
                        help="HNSW efSearch values, comma-separated (default: 32,64,128,256)")
    parser.add_argument("--ivf-nlist", type=positive_int, default=1024,
                        help="cells of IndexIVFFlat and IndexIVFPQFastScan (default: 1024)")
    parser.add_argument("--ivf-nprobe", type=ef_list, default=[8, 16, 32, 64, 128, 256, 512],
                        metavar="LIST", help="nprobe values, comma-separated; those above nlist are "
                        "left out (default: 8,16,32,64,128,256,512)")
    parser.add_argument("--skip-ivf", action="store_true",
                        help="do not build or search IndexIVFFlat and IndexIVFPQFastScan")
    parser.add_argument("--skip-hnsw", action="store_true", help="do not build or search IndexHNSWFlat")
    parser.add_argument("--skip-flat", action="store_true", help="do not build or search IndexFlatIP")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed queries before each timed pass, at most Q (default: 10)")
    args = parser.parse_args()
    if args.skip_flat and args.skip_hnsw and args.skip_ivf:
        parser.error("--skip-flat, --skip-hnsw and --skip-ivf together leave nothing to run")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    return args


def read_meta(directory):
    """meta.json, checked: (n, dim, queries, truth as an int64 array)."""
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        sys.exit(f"cannot read {path}: {err}")
    if not isinstance(meta, dict):
        sys.exit(f"{path}: expected a JSON object")
    sizes = {}
    for key in ("n", "dim", "queries"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            sys.exit(f"{path}: \"{key}\" must be an integer of at least 1, got {value!r}")
        sizes[key] = value
    n, dim, queries = sizes["n"], sizes["dim"], sizes["queries"]
    truth = meta.get("truth")
    if not isinstance(truth, list) or len(truth) != queries:
        sys.exit(f"{path}: \"truth\" must be a list of {queries} gallery indices")
    if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < n for t in truth):
        sys.exit(f"{path}: every \"truth\" entry must be an integer in [0, {n})")
    hard = meta.get("hard", [False] * queries)
    if not isinstance(hard, list) or len(hard) != queries or not all(isinstance(h, bool) for h in hard):
        sys.exit(f"{path}: \"hard\" must be a list of {queries} booleans")
    return n, dim, queries, np.asarray(truth, dtype=np.int64), np.asarray(hard, dtype=bool)


def available_memory():
    """Bytes of memory the kernel says are available (MemAvailable), else free physical pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def flat_estimate(n, dim):
    """Estimated bytes of IndexFlatIP: the rows themselves."""
    return n * dim * 4


def hnsw_estimate(n, dim, m):
    """Estimated bytes of IndexHNSWFlat: the rows plus 2*M int32 neighbours each on level 0."""
    return n * (dim * 4 + m * 2 * 4)


def check_bounds(args, n, dim, queries):
    """Exit unless the largest index to build, plus the queries, fits in available memory."""
    needs = []
    if not args.skip_flat:
        needs.append(("IndexFlatIP", flat_estimate(n, dim)))
    if not args.skip_ivf:
        needs.append(("IndexIVFFlat", n * (dim * 4 + 8)))
    if not args.skip_hnsw:
        # The upper levels add about 1/(M-1) of level 0's links; count them too.
        links = hnsw_estimate(n, dim, args.hnsw_m) - flat_estimate(n, dim)
        needs.append(("IndexHNSWFlat", flat_estimate(n, dim) + links + links // max(args.hnsw_m - 1, 1)))
    name, largest = max(needs, key=lambda item: item[1])
    need = largest + queries * dim * 4 + MEMORY_HEADROOM
    have = available_memory()
    if need > have:
        sys.exit(f"N={n} x D={dim}: {name} needs about {need / 2**30:.1f} GiB with the queries "
                 f"and headroom, but only {have / 2**30:.1f} GiB is available")
    log(f"memory: largest index {name} about {largest / 2**30:.2f} GiB, "
        f"{have / 2**30:.1f} GiB available")


def map_rows(path, rows, dim):
    """Memory-map a file of rows x dim little-endian float32; exits unless its size matches."""
    expected = rows * dim * ROW_DTYPE.itemsize
    try:
        actual = path.stat().st_size
    except OSError as err:
        sys.exit(f"cannot read {path}: {err}")
    if actual != expected:
        sys.exit(f"{path}: {actual} bytes, expected {rows} x {dim} x 4 = {expected} (see {META_FILE})")
    return np.memmap(path, dtype=ROW_DTYPE, mode="r", shape=(rows, dim))


def native_rows(rows):
    """The rows as C-contiguous native float32 (no copy for a little-endian memmap on this host)."""
    return np.ascontiguousarray(rows, dtype=np.float32)


def check_rows(name, rows):
    """Exit on non-finite values; warn about rows whose L2 norm is not 1. Pages the file in."""
    off_unit = 0
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        chunk = np.asarray(rows[start:start + CHUNK_ROWS], dtype=np.float32)
        finite = np.isfinite(chunk).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            sys.exit(f"{name}: non-finite values in {bad.size} rows, the first row {start + int(bad[0])}")
        norms = np.linalg.norm(chunk, axis=1)
        off_unit += int(np.count_nonzero(np.abs(norms - 1.0) > NORM_TOLERANCE))
    if off_unit:
        log(f"warning: {off_unit} of {rows.shape[0]} rows in {name} have an L2 norm off 1 by more "
            f"than {NORM_TOLERANCE} (inner product is then not cosine)")


def median_p99(samples_ms):
    """Median and 99th percentile (nearest rank) of milliseconds, as facepay's stats::median_p99."""
    ordered = sorted(samples_ms)
    rank = min(max(math.ceil(0.99 * len(ordered)), 1), len(ordered))
    return statistics.median(ordered), ordered[rank - 1]


def search_one_at_a_time(index, queries, truth, warmup, label):
    """Answer every query alone (k=1); returns (qps, median ms, p99 ms, recall@1, answers)."""
    # The hard-query recall is worked out by result() from the answers.
    count = queries.shape[0]
    for i in range(min(warmup, count)):
        index.search(queries[i:i + 1], 1)
    answers = np.empty(count, dtype=np.int64)
    latencies_ms = [0.0] * count
    clock = time.perf_counter
    loop_start = last_report = clock()
    for i in range(count):
        query = queries[i:i + 1]
        start = clock()
        _, labels = index.search(query, 1)
        end = clock()
        latencies_ms[i] = (end - start) * 1e3
        answers[i] = labels[0, 0]
        if end - last_report >= PROGRESS_EVERY_S:
            last_report = end
            log(f"{label}: {i + 1}/{count} queries, {(i + 1) / (end - loop_start):.0f} q/s")
    elapsed = clock() - loop_start
    median, p99 = median_p99(latencies_ms)
    recall = float(np.count_nonzero(answers == truth)) / count
    return count / elapsed, median, p99, recall, answers


# Set by main(): which queries are hard, and their truth.
HARD = None
TRUTH = None


def result(index_name, params, build, estimate, counted, timing):
    """One entry of "results"; build is (wall seconds, CPU seconds)."""
    qps, median, p99, recall, answers = timing
    hard = None
    if HARD is not None and HARD.any():
        hard = float(np.count_nonzero(answers[HARD] == TRUTH[HARD])) / int(np.count_nonzero(HARD))
    return {"index": index_name, "params": params, "build_s": build[0], "build_cpu_s": build[1],
            "memory_bytes_estimate": estimate, "memory_bytes_counted": counted,
            "qps": qps, "latency_ms_median": median, "latency_ms_p99": p99, "recall_at_1": recall,
            "recall_at_1_hard": hard}


def describe_misses(gallery, queries, truth, answers):
    """Log how many of the exact index's misses are near-ties with the row in "truth"."""
    missed = np.flatnonzero(answers != truth)
    if missed.size == 0:
        return
    ties = 0
    for i in missed[:10_000]:
        if answers[i] < 0:
            continue
        want = float(np.dot(queries[i], gallery[truth[i]]))
        got = float(np.dot(queries[i], gallery[answers[i]]))
        ties += abs(want - got) <= 1e-5
    log(f"IndexFlatIP missed {missed.size} queries; {ties} of the first {min(missed.size, 10_000)} "
        f"are ties within 1e-5 with the truth row (float rounding differs from facepay's scan)")


def run_flat(gallery, queries, truth, warmup):
    """Build IndexFlatIP and time it; returns one result."""
    n, dim = gallery.shape
    index = faiss.IndexFlatIP(dim)
    log(f"IndexFlatIP: adding {n} rows")
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in range(0, n, CHUNK_ROWS):
        index.add(native_rows(gallery[first:first + CHUNK_ROWS]))
    build_s, build_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    counted = index.codes.size()
    log(f"IndexFlatIP: built in {build_s:.2f} s; searching {queries.shape[0]} queries one at a time")
    timing = search_one_at_a_time(index, queries, truth, warmup, "IndexFlatIP")
    log(f"IndexFlatIP: median {timing[1]:.3f} ms, p99 {timing[2]:.3f} ms, recall@1 {timing[3]:.4f}")
    describe_misses(gallery, queries, truth, timing[4])
    return result("IndexFlatIP", {}, (build_s, build_cpu_s), flat_estimate(n, dim), counted, timing)


def hnsw_counted(index):
    """Bytes of IndexHNSWFlat's own arrays: rows, neighbour links, offsets, levels."""
    hnsw = index.hnsw
    return (index.storage.sa_code_size() * index.ntotal + hnsw.neighbors.size() * 4
            + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4)


def run_hnsw(gallery, queries, truth, warmup, m, ef_construction, ef_searches):
    """Build IndexHNSWFlat once and time it; returns one result per efSearch."""
    n, dim = gallery.shape
    index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    log(f"IndexHNSWFlat M={m} efConstruction={ef_construction}: adding {n} rows")
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in range(0, n, CHUNK_ROWS):
        index.add(native_rows(gallery[first:first + CHUNK_ROWS]))
        if n > CHUNK_ROWS:
            done = min(first + CHUNK_ROWS, n)
            log(f"IndexHNSWFlat: {done}/{n} rows after {time.perf_counter() - start:.0f} s")
    build_s, build_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    counted = hnsw_counted(index)
    log(f"IndexHNSWFlat: built in {build_s:.2f} s ({build_cpu_s:.2f} CPU s)")
    results = []
    for ef_search in ef_searches:
        index.hnsw.efSearch = ef_search
        label = f"IndexHNSWFlat efSearch={ef_search}"
        timing = search_one_at_a_time(index, queries, truth, warmup, label)
        log(f"{label}: median {timing[1]:.3f} ms, p99 {timing[2]:.3f} ms, recall@1 {timing[3]:.4f}")
        params = {"m": m, "ef_construction": ef_construction, "ef_search": ef_search}
        results.append(result("IndexHNSWFlat", params, (build_s, build_cpu_s), hnsw_estimate(n, dim, m),
                              counted, timing))
    return results


def train_sample(gallery, nlist):
    """Evenly spread rows for k-means: IVF_TRAIN_ROWS_PER_CELL a cell at most."""
    n = gallery.shape[0]
    take = min(n, nlist * IVF_TRAIN_ROWS_PER_CELL)
    step = max(n // take, 1)
    return native_rows(gallery[::step][:take])


def run_ivf(gallery, queries, truth, warmup, nlist, nprobes):
    """Build IndexIVFFlat and IndexIVFPQFastScan on one trained quantizer each; time every nprobe."""
    n, dim = gallery.shape
    results = []
    sample = train_sample(gallery, nlist)
    pq_m = dim // 2
    kinds = [("IndexIVFFlat", lambda q: faiss.IndexIVFFlat(q, dim, nlist, faiss.METRIC_INNER_PRODUCT), {},
              n * (dim * 4 + 8)),
             ("IndexIVFPQFastScan",
              lambda q: faiss.IndexIVFPQFastScan(q, dim, nlist, pq_m, 4, faiss.METRIC_INNER_PRODUCT),
              {"pq_m": pq_m, "pq_bits": 4}, n * (pq_m // 2 + 8))]
    for name, make, extra, estimate in kinds:
        quantizer = faiss.IndexFlatIP(dim)
        index = make(quantizer)
        log(f"{name} nlist={nlist}: training on {sample.shape[0]} rows, adding {n}")
        start, cpu_start = time.perf_counter(), time.process_time()
        index.train(sample)
        for first in range(0, n, CHUNK_ROWS):
            index.add(native_rows(gallery[first:first + CHUNK_ROWS]))
        build_s, build_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        invlists = index.invlists
        counted = sum(invlists.list_size(i) * (invlists.code_size + 8) for i in range(nlist)) + nlist * dim * 4
        log(f"{name}: built in {build_s:.2f} s ({build_cpu_s:.2f} CPU s)")
        for nprobe in [p for p in nprobes if p <= nlist]:
            index.nprobe = nprobe
            label = f"{name} nprobe={nprobe}"
            timing = search_one_at_a_time(index, queries, truth, warmup, label)
            log(f"{label}: median {timing[1]:.3f} ms, p99 {timing[2]:.3f} ms, recall@1 {timing[3]:.4f}")
            params = {"nlist": nlist, "nprobe": nprobe, **extra}
            results.append(result(name, params, (build_s, build_cpu_s), estimate, counted, timing))
        del index
    return results


def main():
    global HARD, TRUTH
    args = parse_args()
    n, dim, count, truth, hard = read_meta(args.dir)
    HARD, TRUTH = hard, truth
    check_bounds(args, n, dim, count)
    gallery = map_rows(args.dir / GALLERY_FILE, n, dim)
    queries = native_rows(map_rows(args.dir / QUERIES_FILE, count, dim))
    log(f"checking {n} x {dim} gallery rows and {count} queries")
    check_rows(GALLERY_FILE, gallery)
    check_rows(QUERIES_FILE, queries)

    faiss.omp_set_num_threads(args.threads)
    log(f"faiss {faiss.__version__}, {args.threads} OpenMP thread(s)")
    warmup = min(args.warmup, count)
    results = []
    if not args.skip_flat:
        results.append(run_flat(gallery, queries, truth, warmup))
    if not args.skip_ivf:
        results += run_ivf(gallery, queries, truth, warmup, min(args.ivf_nlist, n), args.ivf_nprobe)
    if not args.skip_hnsw:
        results += run_hnsw(gallery, queries, truth, warmup, args.hnsw_m,
                            args.hnsw_ef_construction, args.hnsw_ef_search)
    doc = {"faiss_version": faiss.__version__, "threads": args.threads, "n": n, "dim": dim,
           "queries": count, "warmup_queries": warmup, "results": results}
    print(json.dumps(doc, allow_nan=False))


if __name__ == "__main__":
    main()
