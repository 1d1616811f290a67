"""MatchLite's training (the `train` extra): every stage runs, the export matches torch, the
same seed gives the same student, and the teacher costs far more than the student."""

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra (torch)")
onnx = pytest.importorskip("onnx", reason="export needs the train extra (onnx)")

from rci.match.matchlite import MatchLite  # noqa: E402
from rci.match.pair_input import CHANNELS, SIDE_FEATURES  # noqa: E402
from rci.train.models import Student  # noqa: E402
from rci.train.pairs import EDITS, PairSet, save_pairs  # noqa: E402
from rci.train.report import SYSTEMS  # noqa: E402
from rci.train.train import export_onnx, load_pairs, train_all  # noqa: E402


def synthetic_pairs(seed: int = 0) -> PairSet:
    """Per split, 8 queries of 2 candidates each: the first a copy (a bright diagonal on the
    visual and path maps, a high heuristic score), the second not. The last query's copy
    has no aligned segment (alignment missed it)."""
    rng = np.random.default_rng(seed)
    out = PairSet()
    for split in ("train", "val", "test"):
        for n in range(8):
            query_id = f"{split}-{n}"
            h, w = int(rng.integers(4, 20)), int(rng.integers(4, 20))
            frames = rng.standard_normal((h, 512)).astype(np.float16)
            out.queries.append(
                {"query_id": query_id, "split": split, "recipe": "real", "frames": frames}
            )
            records = []
            for k, copied in enumerate((True, False)):
                maps = rng.uniform(-0.1, 0.3, (len(CHANNELS), h, w)).astype(np.float32)
                if copied:
                    d = np.arange(min(h, w))
                    maps[0, d, d], maps[2, d, d] = 0.9, 1.0
                side = rng.uniform(0, 0.2, len(SIDE_FEATURES)).astype(np.float32)
                side[0] = 0.8 if copied else 0.3
                ref_id = f"{query_id}-ref{k}"
                out.refs[ref_id] = rng.standard_normal((w, 512)).astype(np.float16)
                out.maps.append(maps.astype(np.float16))
                out.side.append(side)
                out.label.append(float(copied))
                out.weight.append(1.0)
                out.fraction.append(0.5 if copied else 0.0)
                out.kinds.append(np.eye(len(EDITS), dtype=np.uint8)[n % len(EDITS)] * copied)
                out.query.append(len(out.queries) - 1)
                out.ref_ids.append(ref_id)
                aligned = copied and n < 7
                side[SIDE_FEATURES.index("segments")] = 0.125 if aligned else 0.0
                records.append({"ref_id": ref_id, "score": float(side[0]), "reproduced": aligned,
                                "segments": [[0.0, 4.0, 0.0, 4.0, 0.9]] if aligned else [],
                                "modalities": ["visual"] if aligned else []})  # fmt: skip
            out.records[query_id] = records
            truth = [{"ref_id": f"{query_id}-ref0", "query_start": 0.0, "query_end": 4.0,
                      "ref_start": 0.0, "ref_end": 4.0}]  # fmt: skip
            out.truth.append(
                {"query_id": query_id, "split": split, "kind": "partial", "truth": truth}
            )
    return out


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.npz"
    save_pairs(synthetic_pairs(), path, {"descriptor": "sscd_resnet50"})
    return path


def test_training_is_reproducible_and_its_export_is_checked(pairs_file, tmp_path):
    reports = [
        train_all(
            pairs_file,
            tmp_path / name,
            seed=3,
            student_epochs=2,
            teacher_epochs=1,
            log=lambda _: None,
        )  # fmt: skip
        for name in ("a", "b")
    ]
    a, b = ((tmp_path / n / "matchlite.onnx").read_bytes() for n in ("a", "b"))
    assert a == b and reports[0]["sha256"] == hashlib.sha256(a).hexdigest()
    assert reports[0]["sha256_undistilled"] == reports[1]["sha256_undistilled"]
    report = reports[0]
    assert report["export_max_difference"] <= 1e-4
    assert set(report["systems"]) == set(SYSTEMS)
    # The rule finds every aligned copy and never the one without a segment.
    rule = report["systems"]["heuristic"]["test real"]
    assert rule["decision_precision"] == 1.0 and rule["decision_recall"] == 7 / 8
    # The teacher's outputs are kept for distillation, the teacher itself beside them.
    assert (tmp_path / "a" / "teacher_outputs.npz").exists()
    assert json.loads((tmp_path / "a" / "report.json").read_text())["sha256"] == report["sha256"]


def test_the_teacher_costs_twenty_times_the_student_or_more(pairs_file, tmp_path):
    report = train_all(pairs_file, tmp_path, student_epochs=1, teacher_epochs=1, log=lambda _: None)
    assert report["flops_ratio"] >= 20


def test_the_exported_student_serves_and_names_its_descriptor(pairs_file, tmp_path):
    report = train_all(pairs_file, tmp_path, student_epochs=3, teacher_epochs=1, log=lambda _: None)
    scorer = MatchLite(tmp_path / "matchlite.onnx")
    assert scorer.descriptor == "sscd_resnet50"
    assert scorer.threshold == pytest.approx(report["systems"]["student_distilled"]["threshold"])
    # The cut for pairs without a segment, chosen on val, travels in the model (None: never).
    unaligned = report["unaligned_threshold"]
    assert scorer.unaligned_threshold == (float("inf") if unaligned is None else unaligned)


def test_the_cut_for_pairs_without_a_segment_travels_in_the_export(pairs_file, tmp_path):
    p = load_pairs(pairs_file)
    rows = np.flatnonzero(p.query_splits[p.query] != "train")
    for cut, want in ((None, float("inf")), (0.7, 0.7)):
        data, worst = export_onnx(Student(kinds=len(EDITS)), p, rows, "sscd_resnet50", 0.4, cut)
        (tmp_path / "student.onnx").write_bytes(data)
        scorer = MatchLite(tmp_path / "student.onnx")
        assert worst <= 1e-4 and scorer.threshold == pytest.approx(0.4)
        assert scorer.unaligned_threshold == pytest.approx(want)
