"""Train MatchLite (torch; the `train` extra): the student on hard labels, the teacher, the
teacher's outputs precomputed, the student distilled from them; export to ONNX with a check.

Losses: copy-or-not (binary cross-entropy), the copied fraction (cross-entropy against the
share), the edit kinds (binary cross-entropy, copies only, weight KIND_WEIGHT). Distillation
adds, as the DnS paper does, 1.5 x (the cosine distance between the student's embedding,
projected, and the teacher's + the temperature-softened KL divergence of their copy
logits). Training is deterministic: one seed, one thread count, the same pairs.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rci.match.alignment import AlignParams
from rci.match.pair_input import grid_cells
from rci.train.models import Served, Student, Teacher

KIND_WEIGHT = 0.2
DISTILL_WEIGHT = 1.5
TEMPERATURE = 2.0
BATCH = 32
EXPORT_TOLERANCE = 1e-4  # largest |onnxruntime - torch| of a probability


@dataclass
class Pairs:
    """A pairs file (rci.train.pairs.save_pairs) in memory."""

    maps: list[np.ndarray]  # per pair (C, H, W) float16
    side: np.ndarray  # (N, F) float32
    label: np.ndarray  # (N,) float32
    weight: np.ndarray  # (N,) float32
    fraction: np.ndarray  # (N,) float32
    kinds: np.ndarray  # (N, K) uint8
    query: np.ndarray  # (N,) int32
    ref_ids: np.ndarray  # (N,) str
    query_ids: np.ndarray  # (Q,) str
    query_splits: np.ndarray  # (Q,) str
    recipes: np.ndarray  # (Q,) str
    frames: list[np.ndarray]  # per query (T, D) float16
    refs: dict[str, np.ndarray]  # per candidate (Tr, D) float16
    meta: dict
    tokens: dict = field(default_factory=dict)  # the teacher's binned frames, made once

    def query_tokens(self, row: int) -> np.ndarray:
        key = ("query", int(self.query[row]))
        if key not in self.tokens:
            self.tokens[key] = _binned_tokens(self.frames[self.query[row]])
        return self.tokens[key]

    def ref_tokens(self, row: int) -> np.ndarray:
        key = ("ref", str(self.ref_ids[row]))
        if key not in self.tokens:
            self.tokens[key] = _binned_tokens(self.refs[key[1]])
        return self.tokens[key]

    def split(self, name: str) -> np.ndarray:
        """Indices of the pairs whose query belongs to split `name`."""
        return np.flatnonzero(self.query_splits[self.query] == name)


def load_pairs(path: Path) -> Pairs:
    """A pairs file; each array read once (an NpzFile reads an array at every access)."""
    with np.load(path, allow_pickle=False) as npz:
        z = {name: npz[name] for name in npz.files}
    shapes, channels = z["shapes"], len(z["channels"])
    starts = np.r_[0, np.cumsum(channels * shapes[:, 0] * shapes[:, 1])]
    maps = [
        z["maps"][a:b].reshape(channels, h, w)
        for a, b, (h, w) in zip(starts[:-1], starts[1:], shapes, strict=True)
    ]
    counts = np.r_[0, np.cumsum(z["frame_counts"])]
    frames = [z["frames"][a:b] for a, b in zip(counts[:-1], counts[1:], strict=True)]
    rcounts = np.r_[0, np.cumsum(z["ref_counts"])]
    refs = {
        str(k): z["ref_frames"][a:b]
        for k, a, b in zip(z["ref_table"], rcounts[:-1], rcounts[1:], strict=True)
    }
    return Pairs(
        maps, z["side"], z["label"], z["weight"], z["fraction"], z["kinds"], z["query"],
        z["ref_ids"], z["query_ids"], z["query_splits"], z["recipes"], frames, refs,
        json.loads(str(z["meta"])),
    )  # fmt: skip


def _binned_tokens(frames: np.ndarray) -> np.ndarray:
    """(cells, D) float32: unit means of frames (T, D) over the grid's cells (pair_input)."""
    cells = grid_cells(len(frames))
    sums = np.zeros((cells[-1] + 1, frames.shape[1]), np.float32)
    np.add.at(sums, cells, frames.astype(np.float32))
    return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-6)


@dataclass
class Batch:
    maps: torch.Tensor  # (N, C, H, W)
    mask: torch.Tensor  # (N, 1, H, W)
    side: torch.Tensor  # (N, F)
    label: torch.Tensor
    weight: torch.Tensor
    fraction: torch.Tensor
    kinds: torch.Tensor  # (N, K)
    query_frames: torch.Tensor | None  # (N, H, D)
    ref_frames: torch.Tensor | None  # (N, W, D)
    rows: np.ndarray  # the pairs' indices


def make_batch(p: Pairs, rows: np.ndarray, tokens: bool = False) -> Batch:
    """Pairs `rows`, padded to their largest grid; with the teacher's tokens when asked."""
    h = max(p.maps[r].shape[1] for r in rows)
    w = max(p.maps[r].shape[2] for r in rows)
    n, c = len(rows), p.maps[rows[0]].shape[0]
    maps = np.zeros((n, c, h, w), np.float32)
    mask = np.zeros((n, 1, h, w), np.float32)
    qf = np.zeros((n, h, p.frames[0].shape[1]), np.float32) if tokens else None
    rf = np.zeros((n, w, p.frames[0].shape[1]), np.float32) if tokens else None
    for k, r in enumerate(rows):
        _, ph, pw = p.maps[r].shape
        maps[k, :, :ph, :pw] = p.maps[r]
        mask[k, :, :ph, :pw] = 1.0
        if tokens:
            q, ref = p.query_tokens(r), p.ref_tokens(r)
            qf[k, : len(q)], rf[k, : len(ref)] = q, ref
    t = torch.from_numpy
    return Batch(
        t(maps), t(mask), t(p.side[rows]), t(p.label[rows]), t(p.weight[rows]),
        t(p.fraction[rows]), t(p.kinds[rows].astype(np.float32)),
        None if qf is None else t(qf), None if rf is None else t(rf), rows,
    )  # fmt: skip


def batches(p: Pairs, rows: np.ndarray, rng: np.random.Generator | None, tokens: bool = False):
    """Batches of pairs of similar grid size (less padding), in random order with `rng`."""
    area = np.array([p.maps[r].shape[1] * p.maps[r].shape[2] for r in rows])
    if rng is not None:
        rows = rows[rng.permutation(len(rows))]
        area = np.array([p.maps[r].shape[1] * p.maps[r].shape[2] for r in rows])
    ordered = rows[np.argsort(area, kind="stable")]
    chunks = [ordered[i : i + BATCH] for i in range(0, len(ordered), BATCH)]
    if rng is not None:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    for chunk in chunks:
        yield make_batch(p, chunk, tokens)


def _run(model: nn.Module, b: Batch):
    if isinstance(model, Teacher):
        return model(b.maps, b.mask, b.side, b.query_frames, b.ref_frames)
    return model(b.maps, b.mask, b.side)


def hard_loss(out, b: Batch) -> torch.Tensor:
    copy, fraction, kinds, _ = out
    w = b.weight
    loss = (F.binary_cross_entropy_with_logits(copy, b.label, reduction="none") * w).mean()
    loss = (
        loss
        + (F.binary_cross_entropy_with_logits(fraction, b.fraction, reduction="none") * w).mean()
    )
    copies = w * b.label
    per_kind = F.binary_cross_entropy_with_logits(kinds, b.kinds, reduction="none").mean(dim=1)
    return loss + KIND_WEIGHT * (per_kind * copies).sum() / copies.sum().clamp(min=1.0)


def seeded(seed: int) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def fit(
    model: nn.Module,
    p: Pairs,
    rows: np.ndarray,
    *,
    epochs: int,
    seed: int,
    lr: float = 1e-3,
    teacher_out: dict[str, np.ndarray] | None = None,
    log=print,
) -> nn.Module:
    """Train `model` on pairs `rows` (hard labels; with `teacher_out`, its precomputed
    logits and embeddings, distilled as well)."""
    seeded(seed)
    rng = np.random.default_rng(seed)
    project = None
    params = list(model.parameters())
    if teacher_out is not None:
        project = nn.Linear(model.embed_features, teacher_out["embedding"].shape[1])
        params += list(project.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    tokens = isinstance(model, Teacher)
    for epoch in range(epochs):
        model.train()
        total, started = 0.0, time.perf_counter()
        for b in batches(p, rows, rng, tokens):
            out = _run(model, b)
            loss = hard_loss(out, b)
            if teacher_out is not None:
                z_t = torch.from_numpy(teacher_out["logit"][b.rows])
                e_t = torch.from_numpy(teacher_out["embedding"][b.rows])
                cos = 1.0 - F.cosine_similarity(project(out[3]), e_t, dim=1)
                soft_t = torch.sigmoid(z_t / TEMPERATURE)
                log_s = F.logsigmoid(out[0] / TEMPERATURE)
                log_not_s = F.logsigmoid(-out[0] / TEMPERATURE)
                kl = soft_t * (torch.log(soft_t.clamp(min=1e-6)) - log_s) + (1 - soft_t) * (
                    torch.log((1 - soft_t).clamp(min=1e-6)) - log_not_s
                )
                loss = loss + DISTILL_WEIGHT * (cos.mean() + (TEMPERATURE**2) * kl.mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b.rows)
        sched.step()
        seconds = time.perf_counter() - started
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(rows):.4f} ({seconds:.0f} s)")
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, p: Pairs, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Copy logit, probability, fraction and embedding of every pair, filled at `rows`."""
    model.eval()
    out = {
        "logit": np.zeros(len(p.label), np.float32),
        "fraction": np.zeros(len(p.label), np.float32),
    }
    out["embedding"] = np.zeros((len(p.label), model.embed_features), np.float32)
    for b in batches(p, rows, None, isinstance(model, Teacher)):
        copy, fraction, _, e = _run(model, b)
        out["logit"][b.rows] = copy.numpy()
        out["fraction"][b.rows] = torch.sigmoid(fraction).numpy()
        out["embedding"][b.rows] = e.numpy()
    out["probability"] = 1.0 / (1.0 + np.exp(-out["logit"]))
    return out


def export_onnx(
    student: Student,
    p: Pairs,
    rows: np.ndarray,
    descriptor: str,
    threshold: float,
    unaligned: float | None = None,
) -> tuple[bytes, float]:
    """The served graph (inputs MAPS, MASK, SIDE; outputs PROBABILITY, FRACTION, KINDS) as ONNX
    bytes, with the descriptor it was trained with and its cuts in its metadata (`unaligned`:
    for pairs without a segment; None, never), and the largest difference of its
    probabilities from torch's over pairs `rows` (onnxruntime)."""
    import onnx
    import onnxruntime as ort

    served = Served(student).eval()
    b = make_batch(p, rows[:4])
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            served, (b.maps, b.mask, b.side), buffer, dynamo=False, opset_version=17,
            input_names=["MAPS", "MASK", "SIDE"], output_names=["PROBABILITY", "FRACTION", "KINDS"],
            dynamic_axes={
                "MAPS": {0: "pairs", 2: "rows", 3: "columns"},
                "MASK": {0: "pairs", 2: "rows", 3: "columns"},
                "SIDE": {0: "pairs"},
                "PROBABILITY": {0: "pairs"}, "FRACTION": {0: "pairs"}, "KINDS": {0: "pairs"},
            },
        )  # fmt: skip
    graph = onnx.load_from_string(buffer.getvalue())
    props = {
        "rci.descriptor": descriptor,
        "rci.model": "matchlite",
        "rci.threshold": repr(float(threshold)),  # repr: the float itself, as reported
    }
    if unaligned is not None:
        props["rci.unaligned_threshold"] = repr(float(unaligned))
    onnx.helper.set_model_props(graph, props)
    data = graph.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for batch in batches(p, rows, None):
            want = served(batch.maps, batch.mask, batch.side)[0].numpy()
            got = session.run(
                ["PROBABILITY"],
                {
                    "MAPS": batch.maps.numpy(),
                    "MASK": batch.mask.numpy(),
                    "SIDE": batch.side.numpy(),
                },
            )[0]
            worst = max(worst, float(np.abs(got - want).max()))
    if worst > EXPORT_TOLERANCE:
        raise RuntimeError(f"the ONNX student differs from torch by {worst} > {EXPORT_TOLERANCE}")
    return data, worst


def flops_per_pair(model: nn.Module, h: int = 60, w: int = 30) -> float:
    """FLOPs of one pair on an h x w grid (a 60 s query against a 60 s reference at 0.5 fps),
    by torch's FlopCounterMode (matrix products and convolutions, attention included)."""
    from torch.utils.flop_counter import FlopCounterMode

    from rci.describe.descriptor import EMBEDDING_DIM
    from rci.match.pair_input import CHANNELS, SIDE_FEATURES

    maps, mask = torch.rand(1, len(CHANNELS), h, w), torch.ones(1, 1, h, w)
    side = torch.rand(1, len(SIDE_FEATURES))
    args = (maps, mask, side)
    if isinstance(model, Teacher):
        args += (torch.rand(1, h, EMBEDDING_DIM), torch.rand(1, w, EMBEDDING_DIM))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(*args)
    return float(counter.get_total_flops())


def latency_ms(
    onnx_bytes: bytes, pairs: int = 15, h: int = 60, w: int = 30, repeats: int = 20
) -> float:
    """Median milliseconds per pair of the ONNX student over a batch of `pairs` h x w grids
    (onnxruntime, CPU, its default threads)."""
    import onnxruntime as ort

    from rci.match.pair_input import CHANNELS, SIDE_FEATURES

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "MAPS": rng.random((pairs, len(CHANNELS), h, w), dtype=np.float32),
        "MASK": np.ones((pairs, 1, h, w), np.float32),
        "SIDE": rng.random((pairs, len(SIDE_FEATURES)), dtype=np.float32),
    }
    session.run(None, feed)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000.0 / pairs


def train_all(
    pairs_path: Path,
    out: Path,
    *,
    seed: int = 0,
    student_epochs: int = 30,
    teacher_epochs: int = 30,
    threads: int = 2,
    log=print,
) -> dict:
    """Every stage, then the report (out/report.json) and the served student
    (out/matchlite.onnx); the teacher (out/teacher.pt) and its outputs
    (out/teacher_outputs.npz) stay beside them."""
    import hashlib

    from rci.train.report import evaluate, pair_scores

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    p = load_pairs(pairs_path)
    truth = json.loads(pairs_path.with_suffix(".records.json").read_text())
    recipes = dict(zip(p.query_ids.tolist(), p.recipes.tolist(), strict=True))
    for q in truth["queries"]:
        q["recipe"] = recipes.get(q["query_id"], "real")
    train = np.flatnonzero((p.query_splits[p.query] == "train") & (p.weight > 0))
    scored = np.flatnonzero(p.query_splits[p.query] != "train")
    kinds = p.kinds.shape[1]
    times = {}

    def stage(name, make):
        log(f"== {name}")
        started = time.perf_counter()
        result = make()
        times[name] = round(time.perf_counter() - started, 1)
        return result

    seeded(seed)  # the first model's weights, as each later one's, from the seed alone
    student = stage(
        "student",
        lambda: fit(Student(kinds=kinds), p, train, epochs=student_epochs, seed=seed, log=log),
    )
    teacher = stage(
        "teacher",
        lambda: fit(Teacher(kinds=kinds), p, train, epochs=teacher_epochs, seed=seed, log=log),
    )
    torch.save(teacher.state_dict(), out / "teacher.pt")
    teacher_out = stage("teacher outputs", lambda: predict(teacher, p, np.arange(len(p.label))))
    np.savez(out / "teacher_outputs.npz", **teacher_out)
    distilled = stage(
        "student distilled",
        lambda: fit(
            Student(kinds=kinds),
            p,
            train,
            epochs=student_epochs,
            seed=seed,
            teacher_out=teacher_out,
            log=log,
        ),
    )
    systems = {
        "heuristic": evaluate(truth["records"], truth["queries"], None),
        "heuristic_served": evaluate(
            truth["records"], truth["queries"], None, AlignParams().threshold
        ),
    }
    for name, model in (
        ("teacher", teacher),
        ("student", student),
        ("student_distilled", distilled),
    ):
        values = predict(model, p, scored)["probability"]
        scores = pair_scores(p.query_ids, p.query, p.ref_ids, values, scored)
        systems[name] = evaluate(truth["records"], truth["queries"], scores)
        systems[f"{name}_unaligned"] = evaluate(
            truth["records"], truth["queries"], scores, systems[name]["threshold"], True
        )
    descriptor = p.meta.get("descriptor", "sscd_resnet50")
    threshold = systems["student_distilled"]["threshold"]
    unaligned = systems["student_distilled_unaligned"]["unaligned_threshold"]
    onnx_bytes, worst = export_onnx(distilled, p, scored, descriptor, threshold, unaligned)
    (out / "matchlite.onnx").write_bytes(onnx_bytes)
    onnx_plain, _ = export_onnx(student, p, scored, descriptor, systems["student"]["threshold"])
    cost = {}
    for name, model, graph in (("teacher", teacher, None), ("student", distilled, onnx_bytes)):
        cost[name] = {
            "parameters": sum(x.numel() for x in model.parameters()),
            "flops": flops_per_pair(model),
            "ms_per_pair": latency_ms(graph) if graph is not None else None,
        }
    report = {
        "pairs": str(pairs_path),
        "pairs_meta": p.meta,
        "pairs_count": {
            s: int((p.query_splits[p.query] == s).sum()) for s in ("train", "val", "test")
        },
        "train_copies": int(p.label[train].sum()),
        "seed": seed,
        "threads": threads,
        "epochs": {"student": student_epochs, "teacher": teacher_epochs},
        "seconds": times,
        "systems": systems,
        "cost": cost,
        "flops_ratio": cost["teacher"]["flops"] / cost["student"]["flops"],
        "unaligned_threshold": unaligned,
        "export_max_difference": worst,
        "onnx_bytes": len(onnx_bytes),
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "sha256_undistilled": hashlib.sha256(onnx_plain).hexdigest(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
