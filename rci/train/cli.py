"""rci-matchlite: build MatchLite's pairs from a benchmark build, train the teacher and the
student (the `train` extra: torch), report them.

    rci-matchlite pairs --bench .rci/bench-full --out .rci/train/pairs.npz
    rci-matchlite train --pairs .rci/train/pairs.npz --out .rci/train
    rci-matchlite report --out .rci/train
    rci-matchlite ship --out .rci/train     # the student and its card into rci/train/
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TRAIN_EXTRA = "training needs the train extra: pip install -c constraints.txt -e '.[train]'"


def cmd_pairs(args: argparse.Namespace) -> int:
    from rci.describe.descriptor import DescriptorModel
    from rci.train.pairs import build_pairs, save_pairs

    started = time.perf_counter()
    splits = {"train": args.train, "val": args.val, "test": args.test}
    model = DescriptorModel.parse(args.descriptor)
    pairs = build_pairs(args.bench, splits, seed=args.seed, library=args.library, model=model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((args.bench / "manifest.json").read_text())
    meta = {
        "bench": {k: manifest[k] for k in ("version", "seed", "mode", "size")},
        "composed": splits,
        "seed": args.seed,
        "descriptor": model.value,
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_pairs(pairs, args.out, meta)
    positives = int(sum(pairs.label))
    print(
        f"{len(pairs.label)} pairs ({positives} copies) of {len(pairs.queries)} queries in "
        f"{meta['seconds']:.0f} s: {args.out}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from rci.train.train import train_all
    except ImportError as e:
        print(f"{TRAIN_EXTRA} ({e})", file=sys.stderr)
        return 2
    report = train_all(
        args.pairs,
        args.out,
        seed=args.seed,
        student_epochs=args.student_epochs,
        teacher_epochs=args.teacher_epochs,
        threads=args.threads,
    )
    from rci.train.report import markdown

    print(markdown(report))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rci.train.report import markdown

    print(markdown(json.loads((args.out / "report.json").read_text())))
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    """Copy a run's student into the package (rci/match/matchlite.onnx) with its card."""
    import shutil

    from rci.match.matchlite import CARD_PATH, MODEL_PATH
    from rci.train.report import model_card

    report = json.loads((args.out / "report.json").read_text())
    shutil.copyfile(args.out / "matchlite.onnx", MODEL_PATH)
    CARD_PATH.write_text(model_card(report))
    print(f"shipped {MODEL_PATH} ({report['onnx_bytes']} bytes, sha256 {report['sha256']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rci-matchlite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pairs", help="labelled pairs from a benchmark build's features")
    p.add_argument("--bench", type=Path, default=Path(".rci/bench-full"))
    p.add_argument("--out", type=Path, default=Path(".rci/train/pairs.npz"))
    p.add_argument("--library", default="bench")
    p.add_argument("--descriptor", default="sscd_resnet50")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train", type=int, default=3000, help="composed train queries")
    p.add_argument("--val", type=int, default=600, help="composed val queries")
    p.add_argument("--test", type=int, default=600, help="composed test queries")
    p.set_defaults(func=cmd_pairs)
    p = sub.add_parser("train", help="student, teacher, distilled student; export; report")
    p.add_argument("--pairs", type=Path, default=Path(".rci/train/pairs.npz"))
    p.add_argument("--out", type=Path, default=Path(".rci/train"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--student-epochs", type=int, default=15)
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (fixed: determinism)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("report", help="print the report of a training run as markdown")
    p.add_argument("--out", type=Path, default=Path(".rci/train"))
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("ship", help="put a run's student into the package, with its card")
    p.add_argument("--out", type=Path, default=Path(".rci/train"))
    p.set_defaults(func=cmd_ship)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
