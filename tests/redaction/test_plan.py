"""The plan format: validation, canonical hash, edits, manual boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from redaction import (
    PLAN_SCHEMA,
    AudioEdit,
    Keyframe,
    ManualBox,
    PlanError,
    RedactionPlan,
    load_plan,
    save_plan,
)


def plan_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": PLAN_SCHEMA, "version": 1,
        "source": {"name": "a.mp4", "sha256": "ab" * 32, "width": 320, "height": 240,
                   "frame_count": 50, "fps": "25/1", "duration": 2.0},
        "mask": {"style": "blur", "strength": 8},
        "tracks": [{"id": 1, "start": 3, "boxes": [[10, 10, 40, 50, 0.9], None,
                                                   [12, 10, 42, 50, 0.4]]}],
        "manual": [], "audio": [{"start": 0.5, "end": 1.0, "action": "mute"}],
        "review": [{"track_id": 1, "start": 5, "end": 5, "start_time": 0.2, "end_time": 0.2,
                    "reason": "low_confidence", "min_confidence": 0.4}],
    }
    data.update(changes)
    return data


def test_round_trip_and_hash_ignores_formatting(tmp_path: Path) -> None:
    plan = RedactionPlan.from_json(json.dumps(plan_data()))
    path = tmp_path / "p.json"
    digest = save_plan(plan, path)
    assert digest == plan.sha256()
    again = load_plan(path)
    assert again == plan
    reformatted = json.dumps(json.loads(path.read_text()), indent=7, sort_keys=False)
    assert RedactionPlan.from_json(reformatted).sha256() == digest
    assert '[10, 10, 40, 50, 0.9]' in path.read_text()  # one box per line for editors


def test_any_edit_changes_the_hash() -> None:
    plan = RedactionPlan.from_json(json.dumps(plan_data()))
    assert plan.with_keep({1}).sha256() != plan.sha256()


def test_masks_at_skips_kept_tracks_and_adds_manual_boxes() -> None:
    plan = RedactionPlan.from_json(json.dumps(plan_data()))
    assert plan.masks_at(3) == [(10, 10, 40, 50)]
    assert plan.masks_at(4) == []  # null entry: no mask on that frame
    assert plan.with_keep({1}).masks_at(3) == []
    moving = ManualBox(id="plate", keyframes=[Keyframe(frame=0, box=(0, 0, 10, 10)),
                                              Keyframe(frame=10, box=(100, 0, 110, 10))])
    plan = plan.model_copy(update={"manual": [moving]})
    assert (0, 0, 10, 10) in plan.masks_at(0)
    x0, _, x1, _ = moving.box_at(5)  # type: ignore[misc]
    assert x0 <= 50 and x1 >= 60
    assert moving.box_at(11) is None
    static = ManualBox(id="s", keyframes=[Keyframe(frame=2, box=(1, 1, 5, 5))], end=8)
    assert static.box_at(1) is None and static.box_at(8) == (1, 1, 5, 5)


@pytest.mark.parametrize("data,match", [
    (plan_data(schema="something-else"), "not a redaction plan"),
    (plan_data(version=3), "unsupported plan version"),
    (plan_data(tracks=[{"id": 1, "start": 49, "boxes": [[1, 1, 5, 5, 0.5], [1, 1, 5, 5, 0.5]]}]),
     "past the last frame"),
    (plan_data(tracks=[{"id": 1, "start": 0, "boxes": [[1, 1, 500, 5, 0.5]]}]), "outside"),
    (plan_data(tracks=[{"id": 1, "start": 0, "boxes": [[5, 1, 5, 5, 0.5]]}]), "empty box"),
    (plan_data(tracks=[{"id": 1, "start": 0, "boxes": [[1, 1, 5, 5, 1.5]]}]), "less than or equal"),
    (plan_data(tracks=[{"id": 1, "start": 0, "boxes": [[1, 1, 5, 5, 0.5]]},
                       {"id": 1, "start": 0, "boxes": [[1, 1, 5, 5, 0.5]]}]), "unique"),
    (plan_data(review=[{"track_id": 9, "start": 0, "end": 0, "start_time": 0, "end_time": 0,
                        "reason": "gap", "min_confidence": 0.1}]), "unknown track"),
    (plan_data(audio=[{"start": 2.0, "end": 1.0, "action": "mute"}]), "after start"),
    (plan_data(audio=[{"start": 0.0, "end": 1.0, "action": "shout"}]), "action"),
    (plan_data(mask={"style": "smudge", "strength": 8}), "style"),
    (plan_data(manual=[{"id": "m", "keyframes": [{"frame": 5, "box": [0, 0, 5, 5]},
                                                   {"frame": 5, "box": [0, 0, 5, 5]}]}]),
     "rising"),
    (plan_data(extra_field=1), "extra"),
    ({**plan_data(), "source": {**plan_data()["source"], "sha256": "xyz"}}, "sha256"),
])
def test_invalid_plans_are_refused_with_the_reason(data: dict[str, Any], match: str) -> None:
    with pytest.raises(PlanError, match=match):
        RedactionPlan.from_json(json.dumps(data))


def test_not_json_or_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="not valid JSON"):
        RedactionPlan.from_json("{nope")
    with pytest.raises(PlanError, match="JSON object"):
        RedactionPlan.from_json("[1, 2]")
    with pytest.raises(PlanError, match="cannot read plan"):
        load_plan(tmp_path / "missing.json")


def test_keep_unknown_track_is_refused() -> None:
    plan = RedactionPlan.from_json(json.dumps(plan_data()))
    with pytest.raises(PlanError, match="no such track"):
        plan.with_keep({7})


def test_audio_edit_defaults_to_mute() -> None:
    assert AudioEdit(start=0, end=1).action == "mute"


def test_version_1_plans_keep_their_rectangular_masks() -> None:
    """Issue #13 finding 2: version 2 masks tracks with ellipses. A version 1 plan was
    reviewed and approved with rectangles, so it is read with ``shape: box`` and renders as
    it did; a new plan is version 2 with ellipses."""
    from redaction import PLAN_VERSION, MaskShape

    old = RedactionPlan.from_json(json.dumps(plan_data()))
    assert old.version == 1 and old.mask.shape is MaskShape.BOX
    new = RedactionPlan.from_json(json.dumps(plan_data(version=2)))
    assert new.version == PLAN_VERSION == 2 and new.mask.shape is MaskShape.ELLIPSE
    explicit = plan_data(version=2, mask={"style": "blur", "strength": 8, "shape": "box"})
    assert RedactionPlan.from_json(json.dumps(explicit)).mask.shape is MaskShape.BOX
