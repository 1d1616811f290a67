"""Run the embedded default: tritonserver from the nvidia-pytriton wheel on this machine."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rci.describe.descriptor import DEFAULT_MODEL, DescriptorModel
from rci.library.background import ensure_background
from rci.library.milvus import LITE_ENV, start_lite
from rci.serving.repository import Target, assemble


@dataclass
class ServerOptions:
    """Where the server listens and keeps its state. Ports on 127.0.0.1."""

    data_dir: Path = Path("rci-data")
    work_dir: Path = Path(".rci")  # assembled repository, backend links, server log
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    descriptor: str = DEFAULT_MODEL.value
    libraries: list[str] = field(default_factory=lambda: ["main"])
    libraries_config: Path | None = None  # TOML [libraries.NAME] tables; overrides libraries
    log_verbose: int = 0
    # Shared memory, logging, trace and repository APIs answer only requests carrying this
    # in the ADMIN_HEADER; None: a random key no client is told, i.e. those APIs are off.
    admin_key: str | None = None
    write_token: str | None = None  # ingest and delete need it (rci.serving.auth)
    read_token: str | None = None  # detect and status need it or the write token


ADMIN_HEADER = "rci-admin-key"
# Off the public API: a client registering the Python backend's own shared-memory region
# as an output buffer crashes tritonserver; logging settings, traces and the repository
# API (index, load, unload) are the operator's.
RESTRICTED_APIS = "shared-memory,logging,trace,model-repository"


def hardening_flags(key: str) -> list[str]:
    """tritonserver flags that close the admin APIs behind `key` and forward the RCI token
    header to the models (rci.serving.auth)."""
    from rci.serving.auth import TOKEN_HEADER

    return [
        f"--http-restricted-api={RESTRICTED_APIS}:{ADMIN_HEADER}={key}",
        f"--grpc-restricted-protocol={RESTRICTED_APIS}:{ADMIN_HEADER}={key}",
        f"--http-header-forward-pattern=^{TOKEN_HEADER}$",
        f"--grpc-header-forward-pattern=^{TOKEN_HEADER}$",
        "--model-control-mode=none",
    ]


def _pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def backend_directory(work_dir: Path) -> Path:
    """A backends/ folder whose python/ links the wheel's backend and this Python's stub.

    Links rather than copies: the wheel's libraries are then found without LD_LIBRARY_PATH.
    """
    wheel = _pytriton_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"the pytriton wheel has no Python backend stub for Python {version}")
    python = work_dir / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    sources = [
        wheel / "backends" / "python" / "libtriton_python.so",
        wheel / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ]
    for source in sources:
        link = python / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return python.parent


def _stop_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"


def reclaim_shared_memory(min_age: float = 2.0, shm_dir: Path = SHM_DIR) -> list[str]:
    """Remove Python-backend shared-memory regions that no process maps any more and that
    are at least `min_age` seconds old (so a server starting now keeps its own); returns
    their names. A server killed outright (SIGKILL, the OOM killer) leaves its regions
    behind, tens of MB each, until the machine's memory runs out."""
    if not shm_dir.is_dir():
        return []
    mapped: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # gone, or another user's: their regions are not ours to remove
            continue
        mapped.update(
            line.rsplit("/", 1)[-1].split(" ")[0]
            for line in text.splitlines()
            if SHM_PREFIX in line
        )
    removed = []
    for region in shm_dir.glob(SHM_PREFIX + "*"):
        try:
            if region.name in mapped or time.time() - region.stat().st_mtime < min_age:
                continue
            region.unlink()
            removed.append(region.name)
        except OSError:
            continue
    return removed


# tritonserver's GPU build logs these two at error level on any machine without a GPU, and
# no flag turns them off; the log says so once, first.
CPU_LOG_NOTE = (
    "RCI: the cpu target runs tritonserver's GPU build without a GPU, so it logs two kinds "
    'of error that are expected and harmless: "CudaDriverHelper has not been initialized" '
    'at start and "unable to create stream for <ensemble>: CUDA driver version is '
    'insufficient" for each ensemble. Nothing runs on CUDA here.\n'
)
EXPECTED_CPU_ERRORS = ("CudaDriverHelper has not been initialized", "unable to create stream for")


def check_ports_free(ports: dict[str, int], host: str = "127.0.0.1") -> None:
    """ValueError naming each of `ports` ({what: port}) that another program holds on `host`:
    without this, a readiness check would reach that program and call this server ready."""
    taken = []
    for what, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # A port a closed server left in TIME_WAIT is free for tritonserver too.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                taken.append(f"{what} port {port}")
    if taken:
        raise ValueError(
            f"{' and '.join(taken)} on {host} already in use (another RCI or Triton server?); "
            "stop it or choose other ports (--http-port, --grpc-port, --metrics-port)"
        )


class TritonServer:
    """tritonserver as a child process; `with TritonServer(opts) as s:` waits until ready."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.process: subprocess.Popen | None = None
        self.log_path = Path(options.work_dir) / "tritonserver.log"
        # Kept so tests and the operator's tools can reach the restricted APIs.
        self.admin_key = options.admin_key or secrets.token_urlsafe(32)
        self.lite_uris: dict[str, str] = {}  # Milvus Lite files this server opened: sockets
        self._lite: list = []  # their servers (milvus_lite.server.Server)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.options.grpc_port}"

    def command(self) -> list[str]:
        o = self.options
        work = Path(o.work_dir).resolve()
        repository = assemble(Target.CPU, work / "model_repository")
        return [
            str(_pytriton_root() / "bin" / "tritonserver"),
            f"--model-repository={repository}",
            f"--backend-directory={backend_directory(work)}",
            "--http-address=127.0.0.1",
            f"--http-port={o.http_port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={o.grpc_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={o.metrics_port}",
            # The cpu target: no GPU metrics (NVML), no pinned or CUDA memory pools to try.
            "--allow-gpu-metrics=false",
            "--pinned-memory-pool-byte-size=0",
            "--cuda-memory-pool-byte-size=0:0",
            "--exit-on-error=true",
            "--exit-timeout-secs=10",
            "--strict-readiness=true",
            f"--log-verbose={o.log_verbose}",
            # Uploads (up to max_bytes) cross into the preprocess stub: grow in big steps.
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=67108864",
            *hardening_flags(self.admin_key),
        ]

    def environment(self) -> dict[str, str]:
        """The stub runs the first python3 on PATH, so this interpreter's bin/ goes first."""
        o = self.options
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # glibc raises its mmap threshold after each large free, so decoded frames (MBs
        # each) would come from the heap and stay with the process; fixed, they go back.
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(256 * 1024))
        env["RCI_DATA_DIR"] = str(Path(o.data_dir).resolve())
        env["RCI_DESCRIPTOR"] = o.descriptor
        env["RCI_LIBRARIES"] = ",".join(o.libraries)
        env.pop("RCI_LIBRARIES_CONFIG", None)
        for name, value in (("RCI_WRITE_TOKEN", o.write_token), ("RCI_READ_TOKEN", o.read_token)):
            env.pop(name, None)
            env.pop(name + "_FILE", None)
            if value:
                env[name] = value
        if o.libraries_config is not None:
            env["RCI_LIBRARIES_CONFIG"] = str(Path(o.libraries_config).resolve())
        env.pop(LITE_ENV, None)
        if self.lite_uris:
            env[LITE_ENV] = json.dumps(self.lite_uris)
        return env

    def start(self, timeout: float = 300.0) -> TritonServer:
        """Start the server and wait until every model is ready, at most `timeout` seconds (on
        two busy cores, loading a stub per model instance has taken over 2 minutes); raise
        with its log if not."""
        from rci.serving.auth import Tokens
        from rci.serving.libraries import check_library_name, read_config

        Tokens(write=self.options.write_token, read=self.options.read_token)  # read needs write
        # A bad file or name fails here, readably, not as a model that will not load.
        files: list[Path] = []  # Milvus Lite files the libraries keep their fingerprints in
        if self.options.libraries_config is not None:
            settings = read_config(self.options.libraries_config)
            data_dir = Path(self.options.data_dir).resolve()
            lite = [s.milvus_settings(data_dir) for s in settings.values() if s.store == "milvus"]
            files = [Path(m.uri) for m in lite if m.lite]
        else:
            for name in self.options.libraries:
                check_library_name(name)
        o = self.options
        check_ports_free({"HTTP": o.http_port, "gRPC": o.grpc_port, "metrics": o.metrics_port})
        Path(self.options.work_dir).mkdir(parents=True, exist_ok=True)
        Path(self.options.data_dir).mkdir(parents=True, exist_ok=True)
        # Here rather than in rci_recall's first load, where building it would count
        # against the readiness timeout.
        ensure_background(self.options.data_dir, DescriptorModel.parse(self.options.descriptor))
        reclaim_shared_memory()  # what a server that crashed before this one left
        if files:  # one Milvus Lite per file, reached by every model over its socket
            self.lite_uris, self._lite = start_lite(files)
        log = open(self.log_path, "wb")
        log.write(CPU_LOG_NOTE.encode())
        log.flush()
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_parent,
            # Its own process group, so stop() can reach the backend stubs it spawns too.
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tritonserver exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            if self.ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"tritonserver not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            url = f"http://{self.http_url}/v2/health/ready"
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then wait for a clean exit; SIGKILL only after `timeout` seconds.

        Python backend stubs orphaned by a server stopped while loading models (they live
        on otherwise) get 5 s to go, then SIGKILL.
        """
        if self.process is None:
            self._stop_lite()
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        deadline = time.monotonic() + 5
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(self.process.pid):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._stop_lite()

    def _stop_lite(self) -> None:
        for lite in self._lite:
            lite.stop()
        self._lite, self.lite_uris = [], {}

    def peak_memory_mb(self) -> float:
        """Sum over the server's process group (tritonserver and its backend stubs) of each
        process's peak resident memory (VmHWM), MiB: an upper bound of the group's peak."""
        if self.process is None:
            return 0.0
        total_kb = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # Fields after the parenthesised name: state, ppid, pgrp, ...
                pgrp = int(stat.read_text().rsplit(")", 1)[1].split()[2])
                if pgrp != self.process.pid:
                    continue
                status = (stat.parent / "status").read_text()
            except (OSError, IndexError, ValueError):
                continue  # the process ended while being read
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        return total_kb / 1024

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
