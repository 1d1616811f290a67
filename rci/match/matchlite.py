"""Match, step 4: MatchLite, the learned pair scorer. The exported student (matchlite.onnx
beside this file, trained by rci.train) scores a request's pairs (rci.match.pair_input)
and decides; or the heuristic (rci.match.verdict) decides, where a library's `verdict` or a
request's VERDICT asks for it."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rci.errors import DescriptorMismatchError, RciError, quote
from rci.match.pair_input import CHANNELS, MAX_SIDE, SIDE_FEATURES, match_inputs, stack_inputs
from rci.match.verdict import FusionParams

MAX_PAIRS = 256  # rci.match.verdict.MAX_CANDIDATES: what one rci_match response holds
# The student and its threshold, shipped with the repository (docs/matchlite.md).
MODEL_PATH = Path(__file__).with_name("matchlite.onnx")
CARD_PATH = MODEL_PATH.with_suffix(".md")  # how it was made, its figures, its sha256
THRESHOLD = 0.5  # overwritten by the model's own, chosen on val (metadata rci.threshold)
SEGMENTS = SIDE_FEATURES.index("segments")


class Verdict(enum.Enum):
    """The learned pair scorer (MatchLite), or the alignment's hand-set rule (for an A/B)."""

    MATCHLITE = "matchlite"
    HEURISTIC = "heuristic"

    @classmethod
    def parse(cls, name: str) -> Verdict:
        """The verdict called `name`; RciError (a ValueError) naming the known ones."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(v.value for v in cls)
            raise RciError(f"unknown verdict {quote(name)}; known: {known}") from None


@dataclass(frozen=True)
class Scored:
    """Per pair (N,): the student's probability, its copied fraction of the query, and the
    decision of the verdict asked for."""

    probability: np.ndarray  # float32
    fraction: np.ndarray  # float32
    reproduced: np.ndarray  # bool


def check_pairs(maps: np.ndarray, mask: np.ndarray, side: np.ndarray) -> None:
    """RciError unless MAPS (N, C, H, W), MASK (N, 1, H, W) 0/1 and SIDE (N, F) are float32,
    finite, of one N, and H, W at most MAX_SIDE."""
    n = len(maps)
    if maps.dtype != np.float32 or maps.ndim != 4 or maps.shape[1] != len(CHANNELS):
        raise RciError(f"PAIR_MAPS must be (N, {len(CHANNELS)}, H, W) float32, got {_kind(maps)}")
    if mask.dtype != np.float32 or mask.shape != (n, 1, *maps.shape[2:]):
        raise RciError(
            f"PAIR_MASK must be ({n}, 1, H, W) float32 like PAIR_MAPS, got {_kind(mask)}"
        )
    if side.dtype != np.float32 or side.shape != (n, len(SIDE_FEATURES)):
        raise RciError(f"PAIR_SIDE must be ({n}, {len(SIDE_FEATURES)}) float32, got {_kind(side)}")
    if n and min(maps.shape[2:]) < 1:
        raise RciError(f"PAIR_MAPS grids need a cell on each side, got {list(maps.shape)}")
    if n > MAX_PAIRS or max(maps.shape[2:], default=0) > MAX_SIDE:
        raise RciError(
            f"at most {MAX_PAIRS} pairs of grids up to {MAX_SIDE} a side, got {list(maps.shape)}"
        )
    if not (np.isfinite(maps).all() and np.isfinite(side).all()):
        raise RciError("PAIR_MAPS and PAIR_SIDE must be finite")
    if not np.isin(mask, (0.0, 1.0)).all():
        raise RciError("PAIR_MASK must hold 0 and 1 only")


def _kind(x: np.ndarray) -> str:
    return f"{x.dtype} {list(x.shape)}"


Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class MatchLite:
    """The student at `path` (ONNX; its metadata names the descriptor of the pairs it was
    trained on and its threshold), run in onnxruntime on `threads` threads unless score()
    is given another runner (the served model that runs it: on the gpu target a TensorRT
    plan of the same file)."""

    def __init__(self, path: Path = MODEL_PATH, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.descriptor = meta.get("rci.descriptor", "")
        self.threshold = float(meta.get("rci.threshold", THRESHOLD))
        # Pairs alignment placed no segment on are decided only by a model trained to
        # (its own cut, chosen on val); a model without one never reproduces them.
        self.unaligned_threshold = float(meta.get("rci.unaligned_threshold", "inf"))

    def cut(self, aligned: bool) -> float:
        """The probability a pair needs to be reproduced, with an aligned segment or without
        one (inf: never)."""
        return self.threshold if aligned else self.unaligned_threshold

    def _run_onnx(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = ["PROBABILITY", "FRACTION", "KINDS"]
        return dict(zip(names, self.session.run(names, feed), strict=True))

    def run_student(self, maps: np.ndarray, mask: np.ndarray, side: np.ndarray) -> dict:
        """The student's PROBABILITY (N,), FRACTION (N,) and KINDS (N, K) float32 for
        checked pairs (check_pairs) in onnxruntime; N = 0 gives empty outputs."""
        check_pairs(maps, mask, side)
        if len(maps) == 0:
            kinds = self.session.get_outputs()[2].shape[-1]
            return {"PROBABILITY": np.zeros(0, np.float32), "FRACTION": np.zeros(0, np.float32),
                    "KINDS": np.zeros((0, kinds), np.float32)}  # fmt: skip
        return self._run_onnx({"MAPS": maps, "MASK": mask, "SIDE": side})

    def score(
        self,
        maps: np.ndarray,
        mask: np.ndarray,
        side: np.ndarray,
        descriptor: str,
        verdicts: list[Verdict],
        heuristic: np.ndarray,
        runner: Runner | None = None,
    ) -> Scored:
        """Score N pairs made with `descriptor`; each pair decided by its verdict (N,),
        `heuristic` (N,) bool being the hand-set rule's decisions. A pair without a
        segment is reproduced only at the model's own cut for such pairs (none: never; the
        reviewer then gets the candidate and its copied share, not a span). Pairs of another
        descriptor are refused where the student decides, and left unscored (NaN) where
        only the rule does. `runner`: MAPS, MASK, SIDE -> PROBABILITY, FRACTION."""
        check_pairs(maps, mask, side)
        n = len(maps)
        if len(verdicts) != n or heuristic.shape != (n,):
            raise RciError(
                f"{len(verdicts)} verdicts and {heuristic.shape} decisions for {n} pairs"
            )
        by_rule = np.array([v is Verdict.HEURISTIC for v in verdicts], dtype=bool)
        if descriptor != self.descriptor:
            if not by_rule.all():
                raise DescriptorMismatchError(
                    f"MatchLite was trained on pairs of {quote(self.descriptor)} fingerprints, "
                    f"these are {quote(descriptor)}'s: train a student for it "
                    '(docs/matchlite.md) or ask for verdict "heuristic"'
                )
            unscored = np.full(n, np.nan, np.float32)
            return Scored(unscored, unscored.copy(), heuristic.astype(bool))
        if n == 0:
            empty = np.zeros(0, np.float32)
            return Scored(empty, empty, np.zeros(0, bool))
        out = (runner or self._run_onnx)({"MAPS": maps, "MASK": mask, "SIDE": side})
        probability, fraction = out["PROBABILITY"].reshape(n), out["FRACTION"].reshape(n)
        aligned = side[:, SEGMENTS] > 0
        cut = np.where(aligned, self.threshold, self.unaligned_threshold)
        learned = probability >= cut
        reproduced = np.where(by_rule, heuristic.astype(bool), learned)
        return Scored(probability.astype(np.float32), fraction.astype(np.float32), reproduced)


def decide(
    matches: list,
    query_times: np.ndarray,
    recurrence: np.ndarray | None,
    verdict: Verdict = Verdict.MATCHLITE,
    scorer: MatchLite | None = None,
    same_audio_from: float | None = None,
) -> list:
    """`matches` (rci.match.verdict.Match, from match_candidates) as the served ensemble
    returns them: MatchLite's probability and copied share on each, decided by `verdict`,
    audio reuse where the audio score reaches `same_audio_from` (FusionParams().threshold
    by default) without a reproduction. query_times, recurrence: (T,) as for match_inputs."""
    if not matches:
        return []
    scorer = scorer or MatchLite()
    limit = FusionParams().threshold if same_audio_from is None else same_audio_from
    pairs = match_inputs(matches, query_times, recurrence)
    heuristic = np.array([m.reproduced for m in matches], dtype=bool)
    scored = scorer.score(
        *stack_inputs(pairs), scorer.descriptor, [verdict] * len(matches), heuristic
    )
    return [
        dataclasses.replace(
            m,
            probability=float(p),
            copied_fraction=float(f),
            reproduced=bool(r),
            audio_reuse=bool(m.audio_score >= limit and not r),
        )
        for m, p, f, r in zip(
            matches, scored.probability, scored.fraction, scored.reproduced, strict=True
        )
    ]
