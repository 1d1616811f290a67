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

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
            shutil.copy2(
                root / "python_backends" / folder.name / "model.py", dest / "1" / "model.py"
            )
    return out


def _compatible(a: list[int], b: list[int]) -> bool:
    """Same rank, and every dimension equal or variable (-1) on either side."""
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def check_ensembles(configs: dict[str, model_config_pb2.ModelConfig]) -> list[str]:
    """Problems in every ensemble of `configs` (name -> config); an empty list means sound.

    Each step must call a known model, map only tensors that model declares, and connect
    tensors whose type and shape agree with where they were produced; every ensemble
    output must be produced. Shapes are compared as declared (all models are unbatched).
    """
    problems = []
    for name, ens in configs.items():
        if ens.platform != "ensemble":
            continue
        tensors = {t.name: (t.data_type, list(t.dims)) for t in ens.input}
        for n, step in enumerate(ens.ensemble_scheduling.step):
            where = f"{name} step {n} ({step.model_name})"
            model = configs.get(step.model_name)
            if model is None:
                problems.append(f"{where}: no such model")
                continue
            inputs = {t.name: (t.data_type, list(t.dims)) for t in model.input}
            outputs = {t.name: (t.data_type, list(t.dims)) for t in model.output}
            for key, value in step.input_map.items():
                if key not in inputs:
                    problems.append(f"{where}: model has no input {key}")
                elif value not in tensors:
                    problems.append(f"{where}: {value} is not produced before this step")
                elif tensors[value][0] != inputs[key][0] or not _compatible(
                    tensors[value][1], inputs[key][1]
                ):
                    problems.append(
                        f"{where}: {value} {tensors[value]} does not fit input {key} {inputs[key]}"
                    )
            missing = (
                set(inputs) - set(step.input_map) - {t.name for t in model.input if t.optional}
            )
            if missing:
                problems.append(f"{where}: inputs {sorted(missing)} are not mapped")
            for key, value in step.output_map.items():
                if key not in outputs:
                    problems.append(f"{where}: model has no output {key}")
                else:
                    tensors[value] = outputs[key]
        for out in ens.output:
            got = tensors.get(out.name)
            if got is None:
                problems.append(f"{name}: output {out.name} is never produced")
            elif got[0] != out.data_type or not _compatible(got[1], list(out.dims)):
                problems.append(f"{name}: output {out.name} {got} differs from its declaration")
        if ens.max_batch_size != 0:
            problems.append(f"{name}: ensembles are unbatched here (max_batch_size 0)")
    return problems


def target_configs(
    target: Target, root: Path = PROJECT_ROOT
) -> dict[str, model_config_pb2.ModelConfig]:
    """name -> parsed config of every model in `target`'s repository."""
    return {f.name: read_config(f / "config.pbtxt") for f in source_folders(target, root)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="assemble a runnable model repository")
    parser.add_argument("--target", choices=[t.value for t in Target], required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(assemble(Target(args.target), args.out))
