"""A real Open Inference Protocol server for tests: Seldon MLServer on loopback, started as a process.

MLServer speaks KServe v2 over REST and gRPC, as Triton does; it runs from its own environment
(`make oip-venv` -> .venv-oip, or TRUSTWALL_OIP_PYTHON), since it pins fastapi < 0.116. The models are
plain ONNX graphs served by `support.mlserver_onnx.OnnxRuntimeModel`; their metadata (input / output
names, types, dims) is written from the graph by guardrails.inference.triton_export.signature, the
same reading `trustwall models export-triton` uses.

    with OipServer(tmp_path, [OipModel("minilm-tw", model_dir)]) as srv:
        srv.http_url, srv.grpc_url          # http://127.0.0.1:PORT, grpc://127.0.0.1:PORT
        srv.kill(); srv.start()             # killed (SIGKILL) and restarted on the same ports
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parents[1]


def oip_python() -> Path:
    env = os.environ.get("TRUSTWALL_OIP_PYTHON")
    candidates = [Path(env)] if env else []
    candidates += [REPO / ".venv-oip" / "bin" / "python", Path(sys.prefix).parent / ".venv-oip" / "bin" / "python"]
    for c in candidates:
        if c.is_file():
            return c
    raise RuntimeError("no MLServer environment: run `make oip-venv` (or set TRUSTWALL_OIP_PYTHON); looked in "
                       + ", ".join(str(c) for c in candidates))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OipModel:
    name: str
    model_dir: Path
    mode: str = "ok"  # ok | garbage_shape | int_output | slow
    delay_ms: int = 0
    version: str = "1"
    threads: int = 2
    metadata: dict[str, Any] | None = None  # override inputs/outputs metadata (shape-mismatch tests)
    onnx: Path | None = None  # serve this file instead of the model directory's (a Triton repository's)
    extra: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        from guardrails.inference.triton_export import signature

        sig = signature(self.model_dir)
        meta = self.metadata or {"inputs": [t.as_dict() for t in sig.inputs],
                                 "outputs": [t.as_dict() for t in sig.outputs]}
        return {"name": self.name, "implementation": "mlserver_onnx.OnnxRuntimeModel",
                "parameters": {"uri": str((self.onnx or sig.onnx).resolve()), "version": self.version,
                               "extra": {"mode": self.mode, "delay_ms": self.delay_ms, "threads": self.threads,
                                         **self.extra}},
                **meta}


class OipServer:
    def __init__(self, root: Path, models: list[OipModel], *, start_timeout_s: float = 90.0):
        self.root = Path(root)
        self.models = models
        self.start_timeout_s = start_timeout_s
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "mlserver.log"
        self._write()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def _write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "settings.json").write_text(json.dumps({
            "debug": False, "host": "127.0.0.1", "http_port": self.http_port, "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port, "parallel_workers": 0, "load_models_at_startup": True,
        }))
        for m in self.models:
            d = self.root / m.name
            d.mkdir(exist_ok=True)
            (d / "model-settings.json").write_text(json.dumps(m.settings()))

    def start(self) -> OipServer:
        env = {**os.environ, "PYTHONPATH": str(SUPPORT), "MLSERVER_LOGGING_LEVEL": "WARNING"}
        env.pop("TRUSTWALL_OIP_PYTHON", None)
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([str(oip_python().parent / "mlserver"), "start", str(self.root)],
                                         cwd=self.root, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"MLServer exited with {self.proc.returncode}: {self.tail()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"MLServer not ready after {self.start_timeout_s} s: {self.tail()}")

    def ready(self) -> bool:
        try:
            if not self._get("/v2/health/ready"):
                return False
            return all(self._get(f"/v2/models/{m.name}/ready") for m in self.models)
        except OSError:
            return False

    def _get(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=1.0) as r:  # noqa: S310 - loopback
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the server (its whole process group) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def __enter__(self) -> OipServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
