"""The request loop every Triton Python model shares, and the BLS call one model makes to
another; pb_utils is passed in, never imported."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import time
import traceback
from collections.abc import Callable

import numpy as np

from rci.errors import RciError
from rci.serving.auth import TOKEN_HEADER, Access, Tokens
from rci.serving.metrics import StageMetrics

Handler = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
MAX_MESSAGE = 1000  # characters of an error message; client values in it are cut to 200


def request_token(request) -> str | None:
    """The rci-token header tritonserver forwarded as a request parameter, if any."""
    try:
        parameters = json.loads(request.parameters() or "{}")
    except (TypeError, ValueError):
        return None
    value = parameters.get(TOKEN_HEADER)
    return value if isinstance(value, str) else None


def respond(
    requests: list,
    pb_utils,
    handler: Handler,
    logger=None,
    *,
    access: Access = Access.READ,
    tokens: Tokens = Tokens(),
    cancellable: bool = False,
    forwards_token: bool = False,
    reads_requested: bool = False,
    trim: bool = False,
    metrics: StageMetrics | None = None,
) -> list:
    """One response per request: handler(inputs by name) -> outputs by name, once the
    request's token grants `access`; `cancellable` handlers also get cancelled=, a callable
    that turns true once the client has gone (gRPC cancellation, deadlines),
    `forwards_token` ones token= (str or None), for the models they call, and
    `reads_requested` ones requested=, the output names the caller asked for (an ensemble
    step asks for those its output_map names). `trim`: give the heap freed by large
    requests back to the system afterwards. `metrics`: each request's seconds, and its error
    by reason unless a model it called failed first (that model counted it).

    An RciError becomes that request's error with its code; any other exception becomes an
    INTERNAL error for that request alone, logged with its traceback.
    """
    responses = []
    for request in requests:
        started = time.perf_counter()
        try:
            token = request_token(request)
            tokens.check(token, access)
            inputs = {tensor.name(): tensor.as_numpy() for tensor in request.inputs()}
            options = {}
            if cancellable:
                options["cancelled"] = request.is_cancelled
            if forwards_token:
                options["token"] = token
            if reads_requested:
                options["requested"] = frozenset(request.requested_output_names())
            outputs = handler(inputs, **options)
            tensors = [pb_utils.Tensor(name, value) for name, value in outputs.items()]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        except RciError as exc:
            if metrics is not None and not getattr(exc, "relayed", False):
                metrics.failed(exc)
            if exc.code == "CANCELLED" and logger is not None:
                logger.log_info(f"rci: stopped a request: {exc}")  # nobody else will hear of it
            code = getattr(pb_utils.TritonError, exc.code)
            error = pb_utils.TritonError(str(exc)[:MAX_MESSAGE], code)
            responses.append(pb_utils.InferenceResponse(error=error))
        except Exception as exc:  # a bug must fail its request, not the batch or the server
            if metrics is not None:
                metrics.failed(exc)
            if logger is not None:
                logger.log_error(traceback.format_exc())
            message = f"internal error: {type(exc).__name__}: {exc}"[:MAX_MESSAGE]
            error = pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL)
            responses.append(pb_utils.InferenceResponse(error=error))
        if metrics is not None:
            metrics.observe(time.perf_counter() - started)
    if trim:
        release_freed_memory()
    return responses


# Triton error codes a called model's error may carry; pb_utils exposes each by this name.
CODES = ("CANCELLED", "INVALID_ARG", "NOT_FOUND", "ALREADY_EXISTS", "UNAVAILABLE", "UNSUPPORTED")


def call_model(
    pb_utils, model: str, inputs: dict[str, np.ndarray], outputs: list[str], token: str | None
) -> dict[str, np.ndarray]:
    """Run served model `model` from inside this one (Triton BLS) with the caller's token;
    its outputs come back in host memory. Its error becomes an RciError with its code."""
    request = pb_utils.InferenceRequest(
        model_name=model,
        inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
        requested_output_names=outputs,
        parameters={TOKEN_HEADER: token} if token else {},
        preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
    )
    response = request.exec()
    if response.has_error():
        error = response.error()
        code = next((c for c in CODES if getattr(pb_utils.TritonError, c) == error.code()), None)
        relayed = RciError(f"{model}: {error.message()}", code=code or "INTERNAL")
        relayed.relayed = True  # `model` counted it in its own metrics
        raise relayed
    return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}


def release_freed_memory() -> None:
    """glibc's malloc_trim: a 30-minute video's frames, freed, would otherwise stay with the
    process (in malloc arenas) until it ends."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


def model_parameters(args: dict) -> dict[str, str]:
    """The `parameters` of a model's config.pbtxt as name -> string value."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def string_input(inputs: dict[str, np.ndarray], name: str) -> str:
    """A TYPE_STRING input holding exactly one UTF-8 value."""
    values = string_list(inputs, name)
    if len(values) != 1:
        raise RciError(f"{name} must hold exactly one string, got {len(values)}")
    return values[0]


def optional_string(inputs: dict[str, np.ndarray], name: str) -> str | None:
    """An optional one-string input's value; None when absent, empty or ""."""
    if name not in inputs or inputs[name].size == 0:
        return None
    return string_input(inputs, name) or None


def string_list(inputs: dict[str, np.ndarray], name: str) -> list[str]:
    """A TYPE_STRING input's UTF-8 values, flattened."""
    try:
        return [
            raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            for raw in inputs[name].reshape(-1)
        ]
    except UnicodeDecodeError as exc:
        raise RciError(f"{name} is not valid UTF-8") from exc


def from_parameters(cls, parameters: dict[str, str]):
    """An instance of dataclass `cls` with each field taken from `parameters` when present.

    Raises ValueError at model load for an unknown parameter name or an unparsable value.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(parameters) - set(fields)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for {cls.__name__}")
    kinds = {"int": int, "float": float, "str": str}
    values = {}
    for name, text in parameters.items():
        kind = fields[name].type
        values[name] = kinds[kind if isinstance(kind, str) else kind.__name__](text)
    return cls(**values)
