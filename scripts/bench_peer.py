#!/usr/bin/env python3
"""Side-by-side benchmark of facepay's face pipeline against OpenCV.

Both sides run the same folded YuNet (detection) and SFace (embedding) files from
the facepay model cache, on one thread, over the same PNG frames made here at
640x480 and 1280x720 from real photos. For each frame size the script prints the
cost of one face (detect + align + embed, divided by the faces found) and the
ratio of facepay's cost to OpenCV's, against two OpenCV references:

  OpenCV full    FaceDetectorYN at the frame's own size, as OpenCV users run it.
  OpenCV fit640  the frame scaled down (cv2.resize, INTER_LINEAR) to fit 640x640,
                 never up, as facepay's detector does; boxes and landmarks mapped
                 back, then alignCrop + feature on the full frame. The same work
                 as facepay. Only differs from "full" for frames over 640 pixels.

It also prints two cosines between facepay's embeddings and OpenCV's:

  end-to-end     each side's embedding from its own detection, faces paired by
                 bounding-box IoU. Mixes detection, alignment and embedding.
  same-landmark  OpenCV's alignCrop + feature run on facepay's own detection
                 (box, 5 landmarks, score), against facepay's embedding of that
                 face. Isolates align + embed; this is the figure that must be
                 at least 0.99 (--strict).

Run it with the venv made by scripts/peer-venv.sh:

    PY=$(scripts/peer-venv.sh | tail -n 1)
    cargo build --release -p facepay
    "$PY" scripts/bench_peer.py [--repeat 20] [--json out.json] [--strict]

Only numpy and cv2 are needed besides the standard library.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
YUNET_FILE = "face_detection_yunet_2023mar_folded.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_folded.onnx"
FETCH_HINT = "cargo run --release -p facepay -- models fetch"

# Photos (relative to --faces) that the test frames are cut from.
PHOTOS = [
    "face_recognition/obama.jpg",
    "face_recognition/obama2.jpg",
    "face_recognition/obama3.jpg",
    "face_recognition/biden.jpg",
    "insightface/t1.jpg",
]
FRAME_SIZES = [(640, 480), (1280, 720)]
# Where the crop window sits vertically within the spare height, 0 = top, 0.5 = centre.
# Portrait photos keep their faces in the upper part, which a centred crop would cut.
CROP_ANCHOR_Y = 0.2

SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
TOP_K = 5000
IOU_MATCH = 0.5
COSINE_FLOOR = 0.99
# facepay's detector input is 640x640; frames are scaled down (never up) to fit it.
DETECT_FIT_PX = 640
# The speed target: facepay's ORT path costs at most this times OpenCV's, on one thread.
RATIO_TARGET = 1.0

# The two OpenCV references (see the module docstring), by key: printed label.
REFERENCES = {"full": "OpenCV full", "fit640": "OpenCV fit640"}


def parse_args():
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=REPO_ROOT / ".." / "shared" / "data" / "faces",
                        help="folder of face photos (default: ../shared/data/faces from the repo root)")
    parser.add_argument("--facepay", type=Path, default=REPO_ROOT / "target" / "release" / "facepay",
                        help="facepay binary (default: target/release/facepay)")
    parser.add_argument("--backends", default="ort,tract",
                        help="facepay backends to run, comma-separated; empty for OpenCV only (default: ort,tract)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per frame (default: 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per frame first (default: 2)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results to this JSON file")
    parser.add_argument("--strict", action="store_true",
                        help=f"exit 1 if any face's same-landmark cosine is below {COSINE_FLOOR}")
    args = parser.parse_args()
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be at least 1 and --warmup at least 0")
    return args


def models_dir():
    """The facepay model cache: $FACEPAY_MODELS_DIR, else $XDG_CACHE_HOME/facepay/models, else ~/.cache."""
    if os.environ.get("FACEPAY_MODELS_DIR"):
        return Path(os.environ["FACEPAY_MODELS_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "facepay" / "models"
    return Path.home() / ".cache" / "facepay" / "models"


def model_paths():
    """Paths of the folded YuNet and SFace files; exits with a hint when either is missing."""
    directory = models_dir()
    paths = (directory / YUNET_FILE, directory / SFACE_FILE)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"missing in {directory}: {', '.join(missing)}\nrun `{FETCH_HINT}` first")
    return paths


def cover_crop(image, width, height):
    """Scale `image` to cover width x height (INTER_AREA), then crop it to exactly that size.

    The window is centred horizontally and placed at CROP_ANCHOR_Y vertically.
    """
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    scaled = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))),
                        interpolation=cv2.INTER_AREA)
    x0 = (scaled.shape[1] - width) // 2
    y0 = round((scaled.shape[0] - height) * CROP_ANCHOR_Y)
    return scaled[y0:y0 + height, x0:x0 + width]


def make_frames(faces_dir, out_dir):
    """Write one PNG per photo and frame size into out_dir; returns [(path, width, height)]."""
    frames = []
    for rel in PHOTOS:
        image = cv2.imread(str(faces_dir / rel), cv2.IMREAD_COLOR)
        if image is None:
            sys.exit(f"cannot read {faces_dir / rel} (see --faces)")
        for width, height in FRAME_SIZES:
            path = out_dir / f"{Path(rel).stem}_{width}x{height}.png"
            cv2.imwrite(str(path), cover_crop(image, width, height))
            frames.append((path, width, height))
    return frames


def detect_fit(width, height):
    """(scale, (width, height)) of the image facepay's detector sees: fit in 640x640, never up."""
    scale = min(DETECT_FIT_PX / width, DETECT_FIT_PX / height, 1.0)
    size = (min(max(round(width * scale), 1), DETECT_FIT_PX), min(max(round(height * scale), 1), DETECT_FIT_PX))
    return scale, size


def median_ms(samples_ns):
    """Median of nanosecond samples, in milliseconds (NaN for no samples)."""
    return statistics.median(samples_ns) / 1e6 if samples_ns else math.nan


def opencv_frame(detector, recognizer, image, repeat, warmup, scale=1.0):
    """Time OpenCV on one frame: median detect ms, median align+embed ms per face, and the faces.

    With scale < 1 the detector runs on the frame resized by `scale` (INTER_LINEAR, timed as part
    of detection), and its rows are mapped back to the full frame, which alignCrop then reads.
    Each face is {"bbox": [x, y, w, h], "landmarks": [[x, y]] * 5, "score": s, "embedding": unit 128-vector}.
    """
    height, width = image.shape[:2]
    size = (width, height) if scale == 1.0 else detect_fit(width, height)[1]
    detector.setInputSize(size)
    detect_ns, align_embed_ns = [], []
    for run in range(warmup + repeat):
        start = time.perf_counter_ns()
        if scale == 1.0:
            _, rows = detector.detect(image)
        else:
            _, rows = detector.detect(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
            if rows is not None:
                rows = rows.copy()
                rows[:, :14] /= scale
        detected = time.perf_counter_ns()
        rows = [] if rows is None else rows
        features = []
        for row in rows:
            t0 = time.perf_counter_ns()
            features.append(recognizer.feature(recognizer.alignCrop(image, row)))
            t1 = time.perf_counter_ns()
            if run >= warmup:
                align_embed_ns.append(t1 - t0)
        if run >= warmup:
            detect_ns.append(detected - start)
    faces = [{"bbox": [float(v) for v in row[:4]], "landmarks": row[4:14].reshape(5, 2).tolist(),
              "score": float(row[14]), "embedding": unit(feature)}
             for row, feature in zip(rows, features)]
    return median_ms(detect_ns), median_ms(align_embed_ns), faces


def load_model(create, path, *options):
    """create(path, "", *options), exiting with a readable message if OpenCV rejects the file."""
    try:
        return create(str(path), "", *options)
    except cv2.error as err:
        detail = " ".join(line.strip() for line in str(err).splitlines() if "error:" in line)
        sys.exit(f"OpenCV cannot load {path.name}: {detail or err}")


def load_opencv(yunet, sface):
    """OpenCV's detector and recognizer on the two model files, on one thread."""
    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # silences "Targets are not supported" notices
    detector = load_model(cv2.FaceDetectorYN.create, yunet, FRAME_SIZES[0], SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K)
    recognizer = load_model(cv2.FaceRecognizerSF.create, sface)
    return detector, recognizer


def run_opencv(detector, recognizer, frames, repeat, warmup):
    """Run OpenCV on every frame; returns {reference key: {file name: frame result}}.

    For frames that fit 640x640 already, "fit640" is the very same result as "full" (the same work).
    """
    references = {key: {} for key in REFERENCES}
    for path, width, height in frames:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        scale, _ = detect_fit(width, height)
        for key in REFERENCES:
            if key == "fit640" and scale == 1.0:
                references[key][path.name] = references["full"][path.name]
                continue
            detect_ms, align_embed_ms, faces = opencv_frame(
                detector, recognizer, image, repeat, warmup, 1.0 if key == "full" else scale)
            references[key][path.name] = {"width": width, "height": height, "detect_ms": detect_ms,
                                          "align_embed_ms": align_embed_ms, "faces": faces,
                                          "detect_scale": 1.0 if key == "full" else scale}
    return references


def same_landmark_cosines(recognizer, frames, ours):
    """Set "same_landmark_cosine" on each of our faces: OpenCV's alignCrop + feature on our detection.

    The 15-value row is OpenCV's FaceDetectorYN layout: x, y, w, h, then right eye, left eye, nose
    tip, right and left mouth corner (the subject's right, so the viewer's left eye first), then
    the score; facepay's landmarks come in that same order.
    """
    for path, _, _ in frames:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for face in ours[path.name]["faces"]:
            row = np.array([*face["bbox"], *np.ravel(face["landmarks"]), face["score"]], dtype=np.float32)
            embedding = unit(recognizer.feature(recognizer.alignCrop(image, row)))
            face["same_landmark_cosine"] = float(face["embedding"] @ embedding)


def unit(vector):
    """The vector flattened to float64 and scaled to length 1."""
    v = np.asarray(vector, dtype=np.float64).ravel()
    return v / np.linalg.norm(v)


def contract_problems(doc, backend):
    """Ways in which `facepay bench peer` output differs from the agreed JSON contract.

    Returns (fatal, notes), each a list of distinct messages with how often they
    occurred: fatal problems stop the benchmark, notes (extra keys, embeddings not
    of unit length) are only reported.
    """
    fatal, notes = Counter(), Counter()

    def keys(obj, where, expected):
        if not isinstance(obj, dict):
            fatal[f"{where}: expected an object, got {type(obj).__name__}"] += 1
            return False
        missing = sorted(expected - obj.keys())
        extra = sorted(obj.keys() - expected)
        if missing:
            fatal[f"{where}: missing keys {missing}"] += 1
        if extra:
            notes[f"{where}: extra keys {extra}"] += 1
        return not missing

    if keys(doc, "top level", {"backend", "threads", "images"}):
        if doc["backend"] != backend or doc["threads"] != 1:
            fatal[f"top level: backend={doc['backend']!r} threads={doc['threads']!r}, "
                  f"expected {backend!r} and 1"] += 1
        images = doc["images"]
    else:
        images = []
    for image in images:
        if not keys(image, "images[]", {"file", "width", "height", "detect_ms_median",
                                        "align_embed_ms_per_face_median", "faces"}):
            continue
        for face in image["faces"]:
            if not keys(face, "images[].faces[]", {"bbox", "score", "landmarks", "embedding"}):
                continue
            keys(face["bbox"], "images[].faces[].bbox", {"x", "y", "width", "height"})
            if len(face["landmarks"]) != 5:
                fatal[f"images[].faces[].landmarks: {len(face['landmarks'])} points, expected 5"] += 1
            for point in face["landmarks"]:
                keys(point, "images[].faces[].landmarks[]", {"x", "y"})
            norm = np.linalg.norm(face["embedding"])
            if len(face["embedding"]) != 128:
                fatal[f"images[].faces[].embedding: length {len(face['embedding'])}, expected 128"] += 1
            elif abs(norm - 1.0) > 1e-3:
                notes["images[].faces[].embedding: L2 norm differs from 1 by more than 1e-3"] += 1
    return ([f"{m} (x{n})" for m, n in fatal.items()], [f"{m} (x{n})" for m, n in notes.items()])


def run_facepay(binary, backend, frames, repeat):
    """Run `facepay bench peer` for one backend over all frames; returns {file name: frame result}."""
    command = [str(binary), "bench", "peer", "--backend", backend, "--threads", "1",
               "--repeat", str(repeat), "--json", *[str(path) for path, _, _ in frames]]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`facepay bench peer --backend {backend}` failed (exit {done.returncode}):\n{done.stderr}")
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        sys.exit(f"`facepay bench peer --backend {backend}` did not print JSON ({err}):\n{done.stdout[:2000]}")
    fatal, notes = contract_problems(doc, backend)
    for note in notes:
        print(f"note: facepay {backend} output: {note}", file=sys.stderr)
    if fatal:
        sys.exit(f"facepay {backend} output differs from the contract:\n  " + "\n  ".join(fatal))
    results = {}
    for image in doc["images"]:
        faces = [{"bbox": [f["bbox"][k] for k in ("x", "y", "width", "height")],
                  "landmarks": [[p["x"], p["y"]] for p in f["landmarks"]], "score": f["score"],
                  "embedding": unit(f["embedding"])} for f in image["faces"]]
        results[Path(image["file"]).name] = {
            "width": image["width"], "height": image["height"], "detect_ms": image["detect_ms_median"],
            "align_embed_ms": none_to_nan(image["align_embed_ms_per_face_median"]), "faces": faces}
    wanted = {path.name: (w, h) for path, w, h in frames}
    got = {name: (r["width"], r["height"]) for name, r in results.items()}
    if got != wanted:
        sys.exit(f"facepay {backend} reported frames {sorted(got.items())}, expected {sorted(wanted.items())}")
    return results


def none_to_nan(value):
    """A median from facepay, with null (no samples) read as NaN."""
    return math.nan if value is None else float(value)


def iou(a, b):
    """Intersection over union of two [x, y, w, h] boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_faces(ours, theirs):
    """Pair faces greedily by highest IoU above IOU_MATCH.

    Returns (pairs, unmatched ours, unmatched theirs); pairs are (our index, their index, IoU).
    """
    candidates = sorted(((iou(a["bbox"], b["bbox"]), i, j) for i, a in enumerate(ours)
                         for j, b in enumerate(theirs)), reverse=True)
    pairs, used_ours, used_theirs = [], set(), set()
    for overlap, i, j in candidates:
        if overlap > IOU_MATCH and i not in used_ours and j not in used_theirs:
            pairs.append((i, j, overlap))
            used_ours.add(i)
            used_theirs.add(j)
    return (pairs, [i for i in range(len(ours)) if i not in used_ours],
            [j for j in range(len(theirs)) if j not in used_theirs])


def frame_cost_ms(result):
    """Time one frame took: detect plus align+embed for each face found."""
    faces = len(result["faces"])
    return result["detect_ms"] + (faces * result["align_embed_ms"] if faces else 0.0)


def cost_per_face(results, names):
    """(faces, ms per face) over the named frames: total frame time / faces found."""
    faces = sum(len(results[n]["faces"]) for n in names)
    total = sum(frame_cost_ms(results[n]) for n in names)
    return faces, (total / faces if faces else math.nan)


def landmark_order_ok(ours, theirs):
    """Whether each of our 5 landmarks lies nearest to OpenCV's landmark of the same index."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    nearest = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2).argmin(axis=1)
    return bool((nearest == np.arange(5)).all())


def compare(opencv, ours, names):
    """End-to-end comparison over the named frames, faces paired by IoU.

    Returns (cosines, unmatched faces, landmark order checks, landmark distances in px).
    """
    cosines, unmatched, order_ok, distances = [], [], [], []
    for name in names:
        mine, theirs = ours[name]["faces"], opencv[name]["faces"]
        pairs, only_ours, only_theirs = match_faces(mine, theirs)
        for i, j, _ in pairs:
            cosines.append(float(mine[i]["embedding"] @ theirs[j]["embedding"]))
            order_ok.append(landmark_order_ok(mine[i]["landmarks"], theirs[j]["landmarks"]))
            distances += np.linalg.norm(np.subtract(mine[i]["landmarks"], theirs[j]["landmarks"]), axis=1).tolist()
        unmatched += [{"file": name, "found_by": "facepay only", **face_summary(mine[i])} for i in only_ours]
        unmatched += [{"file": name, "found_by": "OpenCV only", **face_summary(theirs[j])} for j in only_theirs]
    return cosines, unmatched, order_ok, distances


def cosine_stats(cosines):
    """Count, minimum and median of a list of cosines (NaN when empty)."""
    return {"count": len(cosines), "min": min(cosines) if cosines else math.nan,
            "median": statistics.median(cosines) if cosines else math.nan}


def face_summary(face):
    """Box and score of a face, rounded for printing."""
    return {"bbox": [round(v, 1) for v in face["bbox"]], "score": round(face["score"], 3)}


def summarise(references, ours_by_backend, names, sizes):
    """Numbers for one group of frames: each OpenCV reference's cost, each backend's cost, ratios, cosines."""
    summary = {"frames": len(names), "opencv": {}, "facepay": {},
               # "fit640" is its own measurement only where some frame is larger than 640x640.
               "fit640_differs": any(detect_fit(w, h)[0] < 1.0 for w, h in sizes)}
    for key, results in references.items():
        faces, ms = cost_per_face(results, names)
        summary["opencv"][key] = {"faces": faces, "ms_per_face": ms}
    for backend, ours in ours_by_backend.items():
        faces, ms = cost_per_face(ours, names)
        cosines, unmatched, order_ok, distances = compare(references["full"], ours, names)
        fit_cosines = compare(references["fit640"], ours, names)[0]
        same = [f["same_landmark_cosine"] for n in names for f in ours[n]["faces"]]
        summary["facepay"][backend] = {
            "faces": faces, "ms_per_face": ms,
            "ratio_to_opencv": {key: ms / summary["opencv"][key]["ms_per_face"] for key in references},
            "end_to_end_cosine": {**cosine_stats(cosines), "unmatched": unmatched},
            "end_to_end_cosine_fit640": cosine_stats(fit_cosines),
            "same_landmark_cosine": cosine_stats(same),
            "landmark_order": {"checked": len(order_ok), "matching": sum(order_ok),
                               "distance_median_px": statistics.median(distances) if distances else math.nan},
        }
    return summary


def print_summary(title, summary, list_unmatched):
    """Print one group's speed and agreement tables, and each unmatched face when list_unmatched is set."""
    keys = [k for k in REFERENCES if k == "full" or summary["fit640_differs"]]
    print(f"\n{title}: {summary['frames']} frames")
    print(f"  {'speed':<18}{'faces':>6}{'ms/face':>10}" + "".join(f"{'ratio ' + k:>14}" for k in keys))
    for key in keys:
        cv = summary["opencv"][key]
        ratios = [cv["ms_per_face"] / summary["opencv"][k]["ms_per_face"] for k in keys]
        print(f"  {REFERENCES[key]:<18}{cv['faces']:>6}{cv['ms_per_face']:>10.2f}"
              + "".join(f"{r:>14.2f}" for r in ratios))
    for backend, s in summary["facepay"].items():
        print(f"  {'facepay ' + backend:<18}{s['faces']:>6}{s['ms_per_face']:>10.2f}"
              + "".join(f"{s['ratio_to_opencv'][k]:>14.2f}" for k in keys))
    print(f"  {'cosine':<18}{'e2e pairs':>10}{'unmatched':>10}{'e2e min':>9}{'e2e med':>9}"
          f"{'same-lm faces':>14}{'same-lm min':>13}{'same-lm med':>13}{'lm order':>10}{'lm dist':>9}")
    for backend, s in summary["facepay"].items():
        e2e, same, order = s["end_to_end_cosine"], s["same_landmark_cosine"], s["landmark_order"]
        print(f"  {'facepay ' + backend:<18}{e2e['count']:>10}{len(e2e['unmatched']):>10}{e2e['min']:>9.4f}"
              f"{e2e['median']:>9.4f}{same['count']:>14}{same['min']:>13.6f}{same['median']:>13.6f}"
              f"{str(order['matching']) + '/' + str(order['checked']):>10}{order['distance_median_px']:>9.2f}")
    if summary["fit640_differs"]:
        print("  e2e vs OpenCV fit640 (pairs, min, median): " + "; ".join(
            f"{b} {c['count']}, {c['min']:.4f}, {c['median']:.4f}"
            for b, c in ((b, s["end_to_end_cosine_fit640"]) for b, s in summary["facepay"].items())))
    for backend, s in summary["facepay"].items():
        for face in s["end_to_end_cosine"]["unmatched"] if list_unmatched else []:
            print(f"    unmatched ({backend}): {face['file']} {face['found_by']} "
                  f"bbox {face['bbox']} score {face['score']}")


def print_legend():
    """Explain the columns of the summary tables."""
    print(f"""
OpenCV full: FaceDetectorYN at the frame's own size, as OpenCV users run it.
OpenCV fit640: detection on the frame scaled down to fit {DETECT_FIT_PX}x{DETECT_FIT_PX} (cv2.resize INTER_LINEAR,
  resize timed), landmarks mapped back, align+embed on the full frame: the same work as facepay.
ms/face: (detect + align+embed of every face) / faces found, medians per frame, one thread.
ratio X: ms/face of the row / ms/face of OpenCV X (below 1 = faster than OpenCV X).
e2e: facepay vs OpenCV full embeddings, each from its own detection, pairs by IoU > {IOU_MATCH};
  differences in detection (and input scale at 1280x720) show up here too, so it is information only;
  "e2e vs OpenCV fit640" is the same against the reference that detects at facepay's scale.
same-lm: facepay's embedding vs OpenCV alignCrop + feature on facepay's own detection; isolates
  align+embed and must be >= {COSINE_FLOOR}.
lm order: e2e pairs whose 5 landmarks each lie nearest OpenCV's of the same index; lm dist: median px.""")


def print_frames(references, ours_by_backend):
    """Print per-frame medians: faces found and detect / align+embed ms on each side."""
    print(f"{'frame':<24}{'side':<16}{'faces':>6}{'detect ms':>11}{'align+embed ms/face':>21}")
    for name, cv in references["full"].items():
        rows = [(REFERENCES["full"], cv)]
        if references["fit640"][name] is not cv:
            rows.append((REFERENCES["fit640"], references["fit640"][name]))
        rows += [(f"facepay {b}", ours[name]) for b, ours in ours_by_backend.items()]
        for side, r in rows:
            print(f"{name:<24}{side:<16}{len(r['faces']):>6}{r['detect_ms']:>11.2f}{r['align_embed_ms']:>21.2f}")


def print_verdict(report):
    """One line: the ORT ratio at each frame size against each OpenCV reference, and whether it meets the target."""
    parts = []
    for size, summary in report["sizes"].items():
        if "ort" not in summary["facepay"]:
            continue
        ratios = summary["facepay"]["ort"]["ratio_to_opencv"]
        keys = [k for k in REFERENCES if k == "full" or summary["fit640_differs"]]
        parts.append(f"{size} " + ", ".join(
            f"{ratios[k]:.2f} vs {REFERENCES[k]} ({'holds' if ratios[k] <= RATIO_TARGET else 'fails'})"
            for k in keys))
    if parts:
        print(f"\nverdict: target \"ORT path at least as fast as OpenCV on one thread (ratio <= {RATIO_TARGET:.1f})\": "
              + "; ".join(parts))
    else:
        print("\nverdict: not run (the ort backend was not benchmarked)")


def json_safe(value):
    """The value with NaN replaced by None, so that the output is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def without_embeddings(result):
    """A frame result for the JSON report: medians and faces (box, score), no embeddings."""
    return {"detect_ms": result["detect_ms"], "align_embed_ms": result["align_embed_ms"],
            "faces": [{**face_summary(f), **({"same_landmark_cosine": f["same_landmark_cosine"]}
                                             if "same_landmark_cosine" in f else {})}
                      for f in result["faces"]]}


def main():
    """Make the frames, run both sides, print and optionally save the comparison."""
    args = parse_args()
    yunet, sface = model_paths()
    backends = [b for b in args.backends.split(",") if b]
    if backends and not args.facepay.is_file():
        sys.exit(f"no facepay binary at {args.facepay}; build it with `cargo build --release -p facepay`")
    detector, recognizer = load_opencv(yunet, sface)
    with tempfile.TemporaryDirectory(prefix="facepay-peer-") as tmp:
        frames = make_frames(args.faces, Path(tmp))
        print(f"OpenCV {cv2.__version__}, 1 thread, {len(frames)} frames, "
              f"{args.warmup} warm-up + {args.repeat} timed runs each", file=sys.stderr)
        references = run_opencv(detector, recognizer, frames, args.repeat, args.warmup)
        ours_by_backend = {}
        for backend in backends:
            print(f"facepay bench peer --backend {backend} ...", file=sys.stderr)
            ours_by_backend[backend] = run_facepay(args.facepay, backend, frames, args.repeat)
            same_landmark_cosines(recognizer, frames, ours_by_backend[backend])

    print_frames(references, ours_by_backend)
    report = {"opencv_version": cv2.__version__, "threads": 1, "repeat": args.repeat, "sizes": {}}
    for width, height in FRAME_SIZES:
        names = [path.name for path, w, h in frames if (w, h) == (width, height)]
        report["sizes"][f"{width}x{height}"] = summarise(references, ours_by_backend, names, [(width, height)])
        print_summary(f"{width}x{height}", report["sizes"][f"{width}x{height}"], list_unmatched=True)
    report["overall"] = summarise(references, ours_by_backend, [path.name for path, _, _ in frames], FRAME_SIZES)
    print_summary("overall", report["overall"], list_unmatched=False)
    print_legend()
    print_verdict(report)
    report["frames"] = {name: {**{f"opencv_{k}": without_embeddings(references[k][name]) for k in REFERENCES
                                  if k == "full" or references[k][name] is not cv},
                               **{b: without_embeddings(ours[name]) for b, ours in ours_by_backend.items()}}
                        for name, cv in references["full"].items()}
    if args.json:
        args.json.write_text(json.dumps(json_safe(report), indent=2) + "\n")

    same = [s["same_landmark_cosine"] for s in report["overall"]["facepay"].values()]
    if args.strict and backends:
        if not all(s["count"] for s in same):
            sys.exit("strict: a backend found no face, so nothing was compared")
        worst = min(s["min"] for s in same)
        if worst < COSINE_FLOOR:
            sys.exit(f"strict: a face has same-landmark cosine {worst:.4f} < {COSINE_FLOOR}")


if __name__ == "__main__":
    main()
