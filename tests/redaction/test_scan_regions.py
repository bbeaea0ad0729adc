"""Where the scanner looks, at a crowd's cost: merging regions and sharing the detector.

Issue #13 (dense crowds): with 140 faces a look, merging overlapping regions by restarting
from the top after every merge was cubic, and packing every small region into one mosaic
left the detector on one core while the other waited. These tests hold the faster forms to
the same rule and the same faces.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from redaction.boxes import TRACK_ONLY, iou as _iou
from redaction import CenterFace
from redaction.regions import Region, merge_overlapping
from redaction.scan import FrameScanner, ScanParams
from redaction.synthetic import Face, render_frame, still

Item = tuple[tuple[int, int, int, int], float, str]


def _restart_merge(items: list[Item]) -> list[Item]:
    """The merge rule as first written: merge the first mergeable pair (``i`` then ``j >
    i``) into ``i``'s place, then start again from the top."""
    items = list(items)

    def area(b: tuple[int, int, int, int]) -> int:
        return (b[2] - b[0]) * (b[3] - b[1])

    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                a, b = items[i][0], items[j][0]
                if not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]):
                    continue
                u = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                if area(u) > area(a) + area(b):
                    continue
                kind = "motion" if "motion" in (items[i][2], items[j][2]) else "track"
                items[i] = (u, max(items[i][1], items[j][1]), kind)
                del items[j]
                merged = True
                break
            if merged:
                break
    return items


def _random_items(rng: random.Random) -> list[Item]:
    items: list[Item] = []
    for _ in range(rng.randint(0, 60)):
        x, y = rng.randint(0, 1800), rng.randint(0, 1000)
        w, h = rng.randint(4, 300), rng.randint(4, 300)
        kind = rng.choice(["motion", "track"])
        items.append(((x, y, min(1920, x + w), min(1080, y + h)),
                      rng.choice([1.0, 1.2, 1.4]), kind))
    return items


def test_merging_regions_follows_the_restarting_rule_exactly() -> None:
    """Issue #13 (crowd speed): the incremental merge gives the same regions, in the same
    order, with the same scales and kinds, as restarting from the top after every merge,
    on 2,000 random sets of up to 60 boxes (crowds, clusters, nested and chained boxes)."""
    rng = random.Random(13)
    for trial in range(2000):
        items = _random_items(rng)
        if trial % 3 == 0:  # a cluster: many boxes over one spot, chains of merges
            cx, cy = rng.randint(200, 1700), rng.randint(200, 900)
            items += [((cx + rng.randint(-150, 150), cy + rng.randint(-150, 150),
                        cx + rng.randint(160, 300), cy + rng.randint(160, 300)), 1.4, "track")
                      for _ in range(rng.randint(2, 30))]
        assert merge_overlapping(items) == _restart_merge(items), trial


def _crowd_frame() -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    faces = [Face(still(120 + 160 * (k % 11), 200 + 190 * (k // 11)), 26 + (k % 4) * 3,
                  identity=k % 100) for k in range(44)]
    image = render_frame(1920, 1080, 0.0, faces, 3, 4.0, "rocket")
    truth = [b for f in faces if (b := f.box(0.0)) is not None]
    return image, truth


def _regions(truth: list[tuple[float, float, float, float]]) -> list[Region]:
    """One small region around each face, as track regions would be."""
    out = []
    for x0, y0, x1, y1 in truth:
        m = 0.6 * (y1 - y0) + 10
        out.append(Region(int(max(0, x0 - m)), int(max(0, y0 - m)), int(min(1920, x1 + m)),
                           int(min(1080, y1 + m)), 1.4, "track"))
    return out


@pytest.fixture(scope="module")
def shared_detector() -> CenterFace:
    return CenterFace()


def test_a_crowded_look_shares_the_detector_over_the_pool_and_finds_the_same_faces(
        shared_detector: CenterFace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #13 (crowd speed): 44 faces' small regions are packed into two mosaics searched
    at once on the scanner's two threads (before: one mosaic, one core), and they find the
    same faces as one mosaic does, each within 15 % of its size. (Scores move by up to about 0.2
    with a crop's place in a mosaic, either way: the detector's 4 px cells fall differently
    on it. That is so of any packing, one mosaic or two.)"""
    import redaction.scan as scan_module

    image, truth = _crowd_frame()
    regions = _regions(truth)
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    class Recording:
        name = "recording"

        def detect(self, rgb: np.ndarray) -> np.ndarray:
            with lock:
                seen.append((rgb.shape[0] * rgb.shape[1], threading.current_thread().name))
            return shared_detector.detect(rgb)

    two = FrameScanner(Recording(), ScanParams(), width=1920, height=1080, fps=25, workers=2)
    split = np.concatenate(two._detect(image, regions))
    two.close()
    assert len(seen) == 2, seen
    assert all(name.startswith("redaction-scan") for _, name in seen), seen
    small, large = sorted(px for px, _ in seen)
    assert small > 0.6 * large, seen  # dealt so the two calls cost about the same

    monkeypatch.setattr(scan_module, "_SPLIT_PIXELS", 10**9)
    one = FrameScanner(shared_detector, ScanParams(), width=1920, height=1080, fps=25,
                       workers=2)
    whole = np.concatenate(one._detect(image, regions))
    one.close()
    assert one.stats.calls == 1

    def match(boxes: np.ndarray) -> list[np.ndarray | None]:
        """Each face's best box (IoU > 0.4), or None."""
        out: list[np.ndarray | None] = []
        for t in truth:
            ious = [_iou(tuple(map(float, b[:4])), t) for b in boxes]
            k = int(np.argmax(ious)) if ious else -1
            out.append(boxes[k] if k >= 0 and ious[k] > 0.4 else None)
        return out

    a, b = match(split), match(whole)
    assert [x is None for x in a] == [x is None for x in b]
    assert sum(x is not None for x in a) >= 40
    # Every box came from a track's crop, and says so (redaction.boxes.TRACK_ONLY).
    assert split[:, TRACK_ONLY].all() and whole[:, TRACK_ONLY].all()
    for x, y in zip(a, b, strict=True):
        if x is not None and y is not None:
            assert np.abs(x[:4] - y[:4]).max() <= 0.15 * (y[3] - y[1]), (x, y)


def test_a_look_with_little_to_search_stays_one_detector_call(
        shared_detector: CenterFace) -> None:
    """A few small regions are not worth a second call's padding and overhead."""
    image, truth = _crowd_frame()
    scanner = FrameScanner(shared_detector, ScanParams(), width=1920, height=1080, fps=25,
                           workers=2)
    scanner._detect(image, _regions(truth)[:4])
    scanner.close()
    assert scanner.stats.calls == 1


def test_a_look_with_one_large_input_runs_it_on_both_threads_with_the_same_boxes(
        shared_detector: CenterFace) -> None:
    """Issue #13 (moving cameras): a look whose only input is one large region (a pan's
    motion, up to a megapixel) ran on one core while the other waited. It now runs on the
    scanner's two threads, and finds exactly what one thread finds."""
    image, truth = _crowd_frame()
    region = Region(0, 0, 960, 720, 1.0, "motion")  # 691k px: one input, not packed
    calls: list[int | None] = []

    class Counting(CenterFace):
        def detect(self, image: np.ndarray, *, threads: int | None = None) -> np.ndarray:
            calls.append(threads)
            return super().detect(image, threads=threads)

    scanner = FrameScanner(Counting(), ScanParams(), width=1920, height=1080, fps=25,
                           workers=2)
    wide = np.concatenate(scanner._detect(image, [region]))
    scanner.close()
    assert calls == [2]
    crop = np.ascontiguousarray(image[0:720, 0:960, ::-1])
    narrow = shared_detector.detect(crop)
    assert len(wide) == len(narrow) >= 10
    assert np.allclose(np.sort(wide[:, :5], axis=0), np.sort(narrow, axis=0), atol=1e-3)
    assert not wide[:, TRACK_ONLY].any()  # a motion region looks for new faces


def test_long_strips_are_packed_apart_and_the_look_costs_a_third_fewer_pixels(
        shared_detector: CenterFace) -> None:
    """Issue #13 (moving-camera speed): a pan uncovers a strip of scene along an edge
    (here 1920x17 frame px, 2688x24 at the detector) and the smeared pass repeats a walker's
    whole height. Packed with a look's small crops, one strip set the mosaic's width on its
    own: 3.2 detector pixels per pixel of picture on the benchmark's pan. Packed apart, the
    look costs under 1.6 per pixel, every crop is searched whole, and the faces are found."""
    image, truth = _crowd_frame()
    regions = _regions(truth[:12])
    regions.append(Region(0, 1063, 1920, 1080, 1.4, "motion"))  # the uncovered edge
    regions.append(Region(1800, 100, 1900, 1000, 0.7, "smeared"))  # a walker's height
    sizes: list[tuple[int, int]] = []

    class Recording:
        name = "recording"

        def detect(self, rgb: np.ndarray) -> np.ndarray:
            sizes.append(rgb.shape[:2])
            return shared_detector.detect(rgb)

    scanner = FrameScanner(Recording(), ScanParams(), width=1920, height=1080, fps=25,
                           workers=2)
    crops = [c for r in regions if (c := scanner._crop(image, r)) is not None]
    found = np.concatenate(scanner._detect(image, regions))
    scanner.close()
    picture = sum(c.shape[0] * c.shape[1] for c in crops)
    paid = sum(h * w for h, w in sizes)
    assert paid < 1.6 * picture, (paid / picture, sizes)
    assert max(w for _, w in sizes) >= 2688  # the strip is searched whole, not cut
    for t in truth[:12]:
        assert max(_iou(tuple(map(float, b[:4])), t) for b in found) > 0.4, t


@pytest.mark.parametrize("kind", ["motion", "sweep", "smeared", "track"])
def test_unsure_boxes_beside_a_cut_are_dropped_by_their_size(
        kind: str, shared_detector: CenterFace) -> None:
    """Issue #13 (spill on a walking camera): the black edge of a crop makes the detector
    score the texture beside it as a face. Such a box, 35 detector px tall and 10 px from
    a cut through the picture, started a track padded a second either side (1.6 % of a
    640x360 walk's picture); it is dropped. A 20 px box as far from the cut (a face smeared
    by a pan, which the smeared pass finds at about that size) is kept, as are a sure box,
    a box beside the frame's own edge, and anything in a track's region."""
    scanner = FrameScanner(shared_detector, ScanParams(), width=1920, height=1080, fps=25,
                           workers=1)
    try:
        crop = np.zeros((200, 300, 3), np.uint8)
        inner = Region(500, 400, 700, 533, 1.5, kind)  # every edge a cut
        at_frame_edge = Region(1720, 400, 1920, 533, 1.5, kind)  # right edge: the frame's
        # x0, y0, x1, y1, score: each 10 px from the crop's right edge (x = 300).
        boxes = np.array([[255, 80, 290, 115, 0.15],   # a texture, 35 px
                          [270, 90, 290, 110, 0.15],   # a small unsure face, 20 px
                          [255, 80, 290, 115, 0.45]],  # a sure face
                         np.float32)
        dropped = scanner._at_cut_edge(boxes, inner, crop, 0, 0).tolist()
        assert dropped == ([False, False, False] if kind == "track" else [True, False, False])
        assert scanner._at_cut_edge(boxes, at_frame_edge, crop, 0, 0).tolist() == \
            [False, False, False]
    finally:
        scanner.close()
