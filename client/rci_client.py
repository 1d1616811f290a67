"""RciClient: ingest, detect and status over tritonclient HTTP or gRPC, same results both ways."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from rci.errors import MediaError, quote
from rci.match.verdict import Match, unpack_matches
from rci.preprocess.media import DecodeLimits, check_size
from rci.serving.auth import TOKEN_HEADER

DETECT_OUTPUTS = [
    "VIDEO_IDS", "VIDEO_LIBRARIES", "SCORES", "PROBABILITIES", "COPIED_FRACTIONS",
    "REPRODUCED", "SEGMENTS", "SEGMENT_VIDEO",
    "VISUAL_SCORES", "AUDIO_SCORES", "AUDIO_REUSE", "SEGMENT_MODALITIES",
    "DURATION", "TIMESTAMPS", "CONTENT_BOXES",
]  # fmt: skip


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class RciClientError(RuntimeError):
    """The server refused a request; `status` is Triton's status (HTTP code or gRPC name)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class IngestResult:
    video_id: str
    library: str
    num_fingerprints: int
    duration: float  # seconds
    seconds: float  # wall time of the request
    replaced: bool = False  # a video held under the id was swapped out (replace=True)


def found_something(match: Match) -> bool:
    """A candidate with a segment, a decision or audio reuse: what `rci detect`'s table
    and the reviewer page show unless asked for every candidate."""
    return bool(match.segments or match.reproduced or match.audio_reuse)


@dataclass(frozen=True)
class DetectResult:
    matches: list[Match]  # every candidate, best score first
    duration: float  # query length, seconds
    seconds: float  # wall time of the request
    frame_times: np.ndarray  # (T,) float32 seconds of the sampled query frames
    content_boxes: np.ndarray  # (T, 4) float32 [x0, y0, x1, y1] per frame, fractions
    # With detect(..., maps=True): per match, in order, its maps (N, 3, H, W) float32 on a
    # query x reference time grid (visual similarity, audio similarity, the aligned path)
    # and which cells are real (N, 1, H, W); None otherwise.
    pair_maps: np.ndarray | None = None
    pair_mask: np.ndarray | None = None

    @property
    def reproduced(self) -> list[Match]:
        return [m for m in self.matches if m.reproduced]

    def as_dict(self) -> dict:
        return {
            "duration": self.duration,
            "seconds": round(self.seconds, 3),
            "matches": [
                {
                    "video_id": m.video_id,
                    "library": m.library,
                    "score": round(m.score, 4),
                    "probability": _rounded(m.probability),
                    "copied_fraction": _rounded(m.copied_fraction),
                    "visual_score": round(m.visual_score, 4),
                    "audio_score": round(m.audio_score, 4),
                    "reproduced": m.reproduced,
                    "audio_reuse": m.audio_reuse,
                    "segments": [
                        {
                            "query_start": round(s.query_start, 3),
                            "query_end": round(s.query_end, 3),
                            "ref_start": round(s.ref_start, 3),
                            "ref_end": round(s.ref_end, 3),
                            "score": round(s.score, 4),
                            "modality": s.modality,
                        }
                        for s in m.segments
                    ],
                }
                for m in self.matches
            ],
        }


class RciClient:
    """Talks to the rci_ingest, rci_detect and rci_status models of one server."""

    def __init__(
        self,
        url: str = "127.0.0.1:8000",
        protocol: str = "http",
        timeout: float = 300.0,
        token: str | None = None,
    ):
        """`token`: the server's write token (ingest, delete) or read token (detect,
        status), sent as the rci-token header; None sends none."""
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
        self.protocol = protocol
        self.url = url
        self._lib = httpclient if protocol == "http" else grpcclient
        if protocol == "http":
            self._client = httpclient.InferenceServerClient(
                url, connection_timeout=timeout, network_timeout=timeout
            )
        else:
            self._client = grpcclient.InferenceServerClient(url)
        self.timeout = timeout
        self.headers = {TOKEN_HEADER: token} if token else None
        self._max_bytes: int | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RciClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ready(self) -> bool:
        try:
            return bool(self._client.is_server_ready())
        except (InferenceServerException, ConnectionError, OSError):
            return False

    def _input(self, name: str, array: np.ndarray, datatype: str):
        tensor = self._lib.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        return tensor

    def _infer(
        self, model: str, inputs: list, outputs: list[str], write_hint: str = ""
    ) -> dict[str, np.ndarray]:
        """Outputs by name; `write_hint` tells what to do when the connection broke mid-write."""
        requested = [self._lib.InferRequestedOutput(n) for n in outputs]
        kwargs = {} if self.protocol == "http" else {"client_timeout": self.timeout}
        # A copy: the HTTP client adds its own entries to the dict it is given.
        headers = dict(self.headers) if self.headers else None
        try:
            result = self._client.infer(model, inputs, outputs=requested, headers=headers, **kwargs)
        except InferenceServerException as exc:
            if exc.status() != "StatusCode.UNAVAILABLE":
                raise RciClientError(exc.message(), exc.status()) from exc
            raise self._unreachable(exc.message(), write_hint) from exc
        except OSError as exc:  # refused or reset connections surface as OSError over HTTP
            raise self._unreachable(str(exc), write_hint) from exc
        return {n: result.as_numpy(n) for n in outputs}

    def _unreachable(self, reason: str, write_hint: str) -> RciClientError:
        message = (
            f"lost or could not open the connection to the RCI server at {self.url} "
            f"({reason}); is `rci serve` running, or was it stopping?"
        )
        return RciClientError(message + (f" {write_hint}" if write_hint else ""), "UNAVAILABLE")

    def max_bytes(self) -> int:
        """The largest video the server takes, in bytes (rci_preprocess's max_bytes), read
        once from its model configuration."""
        if self._max_bytes is None:
            try:
                config = self._client.get_model_config("rci_preprocess")
            except InferenceServerException as exc:
                if exc.status() == "StatusCode.UNAVAILABLE":
                    raise self._unreachable(exc.message(), "") from exc
                raise RciClientError(exc.message(), exc.status()) from exc
            except OSError as exc:
                raise self._unreachable(str(exc), "") from exc
            if self.protocol == "grpc":
                parameters = {k: v.string_value for k, v in config.config.parameters.items()}
            else:
                parameters = {k: v["string_value"] for k, v in config["parameters"].items()}
            self._max_bytes = int(parameters.get("max_bytes", DecodeLimits().max_bytes))
        return self._max_bytes

    def _bytes(self, video: bytes | str | Path) -> np.ndarray:
        """The video's bytes, refused here as the server would refuse them when too large."""
        size = len(video) if isinstance(video, bytes) else Path(video).stat().st_size
        try:
            check_size(size, DecodeLimits(max_bytes=self.max_bytes()))
        except MediaError as exc:
            raise RciClientError(str(exc), "client") from exc
        data = video if isinstance(video, bytes) else Path(video).read_bytes()
        return np.frombuffer(data, dtype=np.uint8)

    @staticmethod
    def _string(value: str) -> np.ndarray:
        return np.array([value.encode()], dtype=object)

    def ingest(
        self,
        video: bytes | str | Path,
        video_id: str,
        library: str = "main",
        *,
        replace: bool = False,
    ) -> IngestResult:
        """Add a video (bytes or a path) to `library` under `video_id`. With `replace`, a
        video the library holds under that id is swapped for this one atomically."""
        start = time.perf_counter()
        inputs = [
            self._input("VIDEO_BYTES", self._bytes(video), "UINT8"),
            self._input("VIDEO_ID", self._string(video_id), "BYTES"),
            self._input("LIBRARY", self._string(library), "BYTES"),
        ]
        if replace:
            inputs.append(self._input("REPLACE", np.array([True]), "BOOL"))
        hint = (
            f"The ingest of {quote(video_id)} may or may not have been stored: ingest it again "
            "(a stored one answers 'already in library')."
        )
        out = self._infer("rci_ingest", inputs, ["NUM_FINGERPRINTS", "DURATION", "REPLACED"], hint)
        return IngestResult(
            video_id=video_id,
            library=library,
            num_fingerprints=int(out["NUM_FINGERPRINTS"][0]),
            duration=float(out["DURATION"][0]),
            seconds=time.perf_counter() - start,
            replaced=bool(out["REPLACED"][0]),
        )

    def detect(
        self,
        video: bytes | str | Path,
        library: str | list[str] = "main",
        verdict: str | None = None,
        maps: bool = False,
    ) -> DetectResult:
        """Which videos of `library` (a name, or a list of names searched together) the video
        reproduces, with segments and scores; each match names its library. `verdict`
        "heuristic" has the hand-set rule decide (an A/B), "matchlite" the learned scorer;
        None: each library's setting. `maps`: each match's pair maps too (the report's)."""
        start = time.perf_counter()
        names = [library] if isinstance(library, str) else list(library)
        libraries = np.array([n.encode() for n in names], dtype=object)
        inputs = [
            self._input("VIDEO_BYTES", self._bytes(video), "UINT8"),
            self._input("LIBRARY", libraries, "BYTES"),
        ]
        if verdict is not None:
            inputs.append(
                self._input("VERDICT", np.array([verdict.encode()], dtype=object), "BYTES")
            )
        wanted = DETECT_OUTPUTS + (["PAIR_MAPS", "PAIR_MASK"] if maps else [])
        out = self._infer("rci_detect", inputs, wanted)
        return DetectResult(
            matches=unpack_matches(out),
            duration=float(out["DURATION"][0]),
            seconds=time.perf_counter() - start,
            frame_times=out["TIMESTAMPS"],
            content_boxes=out["CONTENT_BOXES"],
            pair_maps=out.get("PAIR_MAPS"),
            pair_mask=out.get("PAIR_MASK"),
        )

    def thumbnails(
        self, video_id: str, times: list[float] | np.ndarray, library: str = "main"
    ) -> list[tuple[float, bytes]]:
        """Library `library`'s stored pictures of `video_id` nearest `times` (seconds, at
        most 64): (the time each shows, its JPEG); [] when it was stored without pictures."""
        out = self._infer(
            "rci_thumbnails",
            [
                self._input("LIBRARY", self._string(library), "BYTES"),
                self._input("VIDEO_ID", self._string(video_id), "BYTES"),
                self._input("TIMES", np.asarray(times, np.float32).reshape(-1), "FP32"),
            ],
            ["THUMBNAIL_TIMES", "THUMBNAILS"],
        )
        pictures = [p if isinstance(p, bytes) else bytes(p) for p in out["THUMBNAILS"].reshape(-1)]
        return list(zip(out["THUMBNAIL_TIMES"].reshape(-1).tolist(), pictures, strict=True))

    def delete(self, video_id: str, library: str = "main") -> int:
        """Remove `video_id` from `library`; returns how many fingerprints it had."""
        out = self._infer(
            "rci_library_delete",
            [
                self._input("VIDEO_ID", self._string(video_id), "BYTES"),
                self._input("LIBRARY", self._string(library), "BYTES"),
            ],
            ["NUM_FINGERPRINTS"],
        )
        return int(out["NUM_FINGERPRINTS"][0])

    def status(self, libraries: list[str] | None = None) -> list[dict]:
        """Per library: descriptor model, number of videos and fingerprints, the index that
        serves it, and whether an IVF-PQ build is advised."""
        names = np.array([n.encode() for n in libraries or []], dtype=object)
        out = self._infer("rci_status", [self._input("LIBRARIES", names, "BYTES")], ["STATUS"])
        return json.loads(out["STATUS"][0])
