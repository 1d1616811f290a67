"""Every config.pbtxt of both targets parses with Triton's schema and the graph is consistent."""

import copy
import dataclasses
import subprocess
import sys

import pytest
import yaml
from tritonclient.grpc import model_config_pb2

from rci.describe.descriptor import EMBEDDING_DIM
from rci.serving.libraries import read_config as read_libraries
from rci.serving.repository import (
    PROJECT_ROOT,
    Target,
    assemble,
    check_ensembles,
    read_config,
    source_folders,
    target_configs,
)
from rci.serving.server import hardening_flags


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_names_equal_folders(target):
    for folder in source_folders(target):
        assert read_config(folder / "config.pbtxt").name == folder.name


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_ensemble_steps_match_called_models(target):
    assert check_ensembles(target_configs(target)) == []


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_same_graph_and_tensor_names_on_both_targets(target):
    cpu, other = target_configs(Target.CPU), target_configs(target)
    assert sorted(cpu) == sorted(other)
    for name in cpu:
        assert [t.name for t in cpu[name].input] == [t.name for t in other[name].input]
        assert [(t.name, t.data_type, list(t.dims)) for t in cpu[name].output] == [
            (t.name, t.data_type, list(t.dims)) for t in other[name].output
        ]


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_embedding_size_equals_index_dimension(target):
    configs = target_configs(target)
    for producer in ("rci_descriptor", "rci_preprocess"):
        produced = {t.name: list(t.dims) for t in configs[producer].output}
        assert produced["EMBEDDINGS"][-1] == EMBEDDING_DIM, producer
    for consumer in ("rci_library_add", "rci_recall", "rci_match"):
        dims = {t.name: list(t.dims) for t in configs[consumer].input}
        assert dims["EMBEDDINGS"][-1] == EMBEDDING_DIM, consumer


def step_of(ensemble, model: str):
    """The step of `ensemble` (a parsed config) that calls `model`."""
    (step,) = [s for s in ensemble.ensemble_scheduling.step if s.model_name == model]
    return step


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_preprocess_calls_a_descriptor_that_fits(target):
    """rci_preprocess hands its frames to the model its config names (BLS), which no
    ensemble checks: that model must take 224x224 uint8 frames and give what it returns."""
    configs = target_configs(target)
    preprocess = configs["rci_preprocess"]
    descriptor = configs[preprocess.parameters["descriptor_model"].string_value]
    frames = {t.name: (t.data_type, list(t.dims)) for t in descriptor.input}
    assert frames == {"FRAMES": (model_config_pb2.TYPE_UINT8, [-1, 224, 224, 3])}
    out = {t.name: (t.data_type, list(t.dims)) for t in descriptor.output}
    ours = {t.name: (t.data_type, list(t.dims)) for t in preprocess.output}
    assert out == {"EMBEDDINGS": ours["EMBEDDINGS"]}
    for ensemble in ("rci_detect", "rci_ingest"):
        models = [s.model_name for s in configs[ensemble].ensemble_scheduling.step]
        assert models[0] == "rci_preprocess" and "rci_descriptor" not in models


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_matchlite_calls_a_student_that_fits_and_decides_detect(target):
    """rci_matchlite hands the pairs rci_match made to the model its config names (BLS): it
    must take them as rci_match makes them; and detect's REPRODUCED is rci_matchlite's."""
    configs = target_configs(target)
    student = configs[configs["rci_matchlite"].parameters["student_model"].string_value]
    taken = {t.name: (t.data_type, list(t.dims)) for t in student.input}
    made = {t.name: (t.data_type, list(t.dims)) for t in configs["rci_match"].output}
    assert taken == {name: made[f"PAIR_{name}"] for name in ("MAPS", "MASK", "SIDE")}
    assert {t.name for t in student.output} >= {"PROBABILITY", "FRACTION"}
    assert student.platform == ("tensorrt_plan" if target is Target.GPU else "")
    detect = configs["rci_detect"].ensemble_scheduling
    assert detect.step[-1].model_name == "rci_matchlite"
    assert detect.step[-1].output_map["REPRODUCED"] == "REPRODUCED"
    assert step_of(configs["rci_detect"], "rci_match").output_map["REPRODUCED"] != "REPRODUCED"


def test_checker_rejects_a_broken_ensemble():
    configs = copy.deepcopy(target_configs(Target.CPU))
    step = step_of(configs["rci_detect"], "rci_recall")
    step.input_map["EMBEDDINGS"] = "TIMESTAMPS"  # (T,) fed where (T, 512) is expected
    configs["rci_match"].output[2].data_type = configs["rci_match"].output[3].data_type  # SCORES
    problems = check_ensembles(configs)
    assert any("TIMESTAMPS" in p and "EMBEDDINGS" in p for p in problems)
    assert any("SCORES" in p for p in problems)


def test_checker_rejects_unknown_model_and_unmapped_input():
    configs = copy.deepcopy(target_configs(Target.CPU))
    configs["rci_ingest"].ensemble_scheduling.step[0].model_name = "rci_nothing"
    del step_of(configs["rci_detect"], "rci_recall").input_map["LIBRARY"]
    problems = check_ensembles(configs)
    assert any("no such model" in p for p in problems)
    assert any("not mapped" in p and "LIBRARY" in p for p in problems)


@pytest.mark.parametrize("target", list(Target), ids=lambda t: t.value)
def test_assembled_repository_is_runnable_layout(target, tmp_path):
    out = assemble(target, tmp_path / "repo")
    for name, config in target_configs(target).items():
        assert (out / name / "1").is_dir()
        if config.backend == "python":
            assert (out / name / "1" / "model.py").is_file()
        if config.backend == "dali":
            assert (out / name / "1" / "dali.py").is_file()


def test_python_models_are_thin_adapters():
    for model in (PROJECT_ROOT / "python_backends").glob("*/model.py"):
        lines = model.read_text().splitlines()
        assert len(lines) < 100, model
        assert not any(
            line.startswith(("def ", "class ")) and "TritonPythonModel" not in line
            for line in lines
        ), model


def test_assemble_command_line(tmp_path):
    out = tmp_path / "gpu"
    subprocess.run(
        [sys.executable, "-m", "rci.serving.repository", "--target", "gpu", "--out", str(out)],
        check=True,
    )
    assert read_config(out / "rci_descriptor" / "config.pbtxt").platform == "tensorrt_plan"


def test_compose_file_serves_the_gpu_target():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["rci"]
    assert service["command"][0] == "tritonserver"
    assert "--model-repository=/models" in service["command"]
    assert {"127.0.0.1:8000:8000", "127.0.0.1:8001:8001"} <= set(service["ports"])
    # The same hardening as `rci serve`, the admin key from the operator's environment.
    key = "${RCI_ADMIN_KEY:?set RCI_ADMIN_KEY to a long random string}"
    flags = [f.replace("$", "$$") for f in hardening_flags("KEY")]
    assert [f.replace("KEY", key, 1) if "restricted" in f else f for f in flags] == [
        f for f in service["command"] if f.split("=")[0] in {g.split("=")[0] for g in flags}
    ]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert set(service["environment"]) == {
        "RCI_DATA_DIR", "RCI_LIBRARIES", "RCI_DESCRIPTOR", "RCI_WRITE_TOKEN",
    }  # fmt: skip
    mounts = dict(v.split(":")[:2] for v in service["volumes"])
    assert all(src in compose["volumes"] or src.startswith("./") for src in mounts)
    assert mounts["rci-data"] == service["environment"]["RCI_DATA_DIR"]
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "rci.serving.repository --target gpu --out /models" in dockerfile
    assert dockerfile.startswith("#") and "FROM nvcr.io/nvidia/tritonserver:24.10-py3" in dockerfile


@pytest.mark.parametrize(
    "target, decoder, kind", [(Target.CPU, "pyav", "KIND_CPU"), (Target.GPU, "nvdec", "KIND_GPU")]
)
def test_preprocess_parameters_load(target, decoder, kind):
    """The preprocess model's parameters must build its decode limits at load time."""
    from rci.preprocess.media import DecodeLimits
    from rci.serving.backend import from_parameters

    config = target_configs(target)["rci_preprocess"]
    parameters = {k: v.string_value for k, v in config.parameters.items()}
    assert parameters.pop("decoder") == decoder
    assert parameters.pop("descriptor_model") == "rci_descriptor"
    assert parameters.pop("mirror") == "true"  # rci_detect's queries are matched mirrored too
    assert parameters.pop("whole") == "true"  # and by their frames with an inset whole
    assert parameters.pop("screen") == "true"  # a tilted screen rectified
    assert from_parameters(DecodeLimits, parameters) == DecodeLimits()  # the defaults, spelt out
    assert [model_config_pb2_kind(g.kind) for g in config.instance_group] == [kind]


def test_served_defaults_are_the_library_defaults():
    """rci_recall's and rci_match's parameters spell out HubParams', AlignParams' and
    FusionParams' defaults, so offline replays (rci-bench replay) run what the server runs."""
    from rci.match.alignment import AlignParams
    from rci.match.normalize import HubParams
    from rci.match.verdict import FusionParams
    from rci.serving.backend import from_parameters

    configs = target_configs(Target.CPU)
    recall = {k: v.string_value for k, v in configs["rci_recall"].parameters.items()}
    assert recall.pop("normalize") == "true"
    assert from_parameters(HubParams, {k.removeprefix("hub_"): v for k, v in recall.items()}) == (
        HubParams()
    )
    match = {k: v.string_value for k, v in configs["rci_match"].parameters.items()}
    audio = {k.removeprefix("audio_"): match.pop(k) for k in list(match) if k.startswith("audio_")}
    assert from_parameters(AlignParams, match) == AlignParams()
    assert from_parameters(FusionParams, audio) == FusionParams()
    assert set(audio) == {f.name for f in dataclasses.fields(FusionParams)}  # all spelled out


def model_config_pb2_kind(value: int) -> str:
    return model_config_pb2.ModelInstanceGroup.Kind.Name(value)


def test_compose_milvus_profile_runs_two_replicas_over_one_milvus(tmp_path):
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    profile = {name for name, s in services.items() if s.get("profiles") == ["milvus"]}
    assert profile == {"etcd", "minio", "milvus", "rci-a", "rci-b"}
    assert "profiles" not in services["rci"]  # `docker compose up` alone: one local server
    for name in profile:  # pinned images, each with a healthcheck
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    milvus = services["milvus"]
    assert milvus["command"] == ["milvus", "run", "standalone"]
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["environment"]["MINIO_ADDRESS"] == "minio:9000"
    assert {d: c["condition"] for d, c in milvus["depends_on"].items()} == {
        "etcd": "service_healthy", "minio": "service_healthy",
    }  # fmt: skip
    # The replicas: the rci service's image, hardening and GPU, the library in Milvus.
    rci = services["rci"]
    for name in ("rci-a", "rci-b"):
        replica = services[name]
        assert replica["image"] == rci["image"] and replica["command"] == rci["command"]
        assert replica["deploy"] == rci["deploy"] and replica["healthcheck"] == rci["healthcheck"]
        assert replica["depends_on"]["milvus"]["condition"] == "service_healthy"
        (config,) = replica["configs"]
        assert config["target"] == replica["environment"]["RCI_LIBRARIES_CONFIG"]
        assert all(p.startswith("127.0.0.1:") for p in replica["ports"])
    assert not set(services["rci-a"]["ports"]) & set(services["rci-b"]["ports"])
    path = tmp_path / "libraries.toml"
    path.write_text(compose["configs"]["libraries-milvus"]["content"])
    (library,) = read_libraries(path).values()
    settings = library.milvus_settings(tmp_path)
    assert (library.store, settings.uri, settings.lite) == ("milvus", "http://milvus:19530", False)
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert 'pip install --no-cache-dir ".[milvus]"' in dockerfile
