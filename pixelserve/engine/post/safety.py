"""NSFW scores with NudeNet, whose ONNX detector ships inside its wheel (works offline)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

#: Score at or above which an image counts as NSFW (the server's setting overrides it).
DEFAULT_THRESHOLD = 0.5
#: NudeNet classes that make an image NSFW; covered parts, faces and feet do not.
NSFW_CLASSES = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
})
FACE_CLASSES = frozenset({"FACE_FEMALE", "FACE_MALE"})

_detector = None
_lock = threading.Lock()


def detector() -> Any:
    """One NudeNet detector per process, created on first use."""
    global _detector
    with _lock:
        if _detector is None:
            from nudenet import NudeDetector

            _detector = NudeDetector()
        return _detector


def detect(image: Any) -> list[dict]:
    """NudeNet detections: ``[{"class", "score", "box": [x, y, w, h]}]``."""
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # NudeNet reads BGR arrays
    return detector().detect(bgr)  # onnxruntime sessions may be run from several threads


def nsfw_score(image: Any) -> float:
    """The highest confidence among the exposed-body classes; 0.0 when there is none."""
    return max((d["score"] for d in detect(image) if d["class"] in NSFW_CLASSES), default=0.0)
