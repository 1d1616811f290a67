"""Hand-built calls to any served model, as a client that skips RciClient would make."""

from __future__ import annotations

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def raw(server, protocol: str, model: str, inputs: list, headers=None):
    """Call `model` directly with hand-built (name, array, datatype) inputs; returns
    (the result, None) or (None, the server's status and error message)."""
    lib = httpclient if protocol == "http" else grpcclient
    url = server.http_url if protocol == "http" else server.grpc_url
    client = lib.InferenceServerClient(url)
    tensors = []
    for name, array, datatype in inputs:
        tensor = lib.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    try:
        return client.infer(model, tensors, headers=dict(headers) if headers else None), None
    except InferenceServerException as exc:
        return None, f"{exc.status()} {exc.message()}"
    finally:
        client.close()
