"""Assemble a runnable Triton model repository for one target from the committed sources.

ensembles/ and model_repository/common/ serve both targets; model_repository/<target>/
holds the leaf models that differ (preprocess, descriptor). A Python-backend model gets
python_backends/<name>/model.py as its 1/model.py.
"""

from __future__ import annotations

import enum
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Target(enum.Enum):
    CPU = "cpu"  # tritonserver from the nvidia-pytriton wheel, Python backend only
    GPU = "gpu"  # NGC tritonserver image: DALI and TensorRT backends


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    """Parse a config.pbtxt with Triton's schema; raises text_format.ParseError if invalid."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def source_folders(target: Target, root: Path = PROJECT_ROOT) -> list[Path]:
    """Every model folder that makes up `target`'s repository."""
    parents = [root / "ensembles", root / "model_repository" / "common"]
    parents.append(root / "model_repository" / target.value)
    folders = [p for parent in parents for p in sorted(parent.iterdir()) if p.is_dir()]
    names = [f.name for f in folders]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"models defined twice for target {target.value}: {sorted(duplicated)}")
    return folders


def assemble(target: Target, out: Path, root: Path = PROJECT_ROOT) -> Path:
    """Write the runnable repository for `target` into `out` (replaced if present)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for folder in source_folders(target, root):
        config = read_config(folder / "config.pbtxt")
        if config.name != folder.name:
            raise ValueError(f"{folder}: config name {config.name!r} differs from its folder")
        dest = out / folder.name
        shutil.copytree(folder, dest)
        (dest / "1").mkdir(exist_ok=True)
        if config.backend == "python":
            shutil.copy2(root / "python_backends" / folder.name / "model.py", dest / "1" / "model.py")
    return out
