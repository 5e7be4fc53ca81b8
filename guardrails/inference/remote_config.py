"""Policy options of the remote inference backend (`backend: remote`): validated at policy load.

Cheap to import (no tritonclient): the policy check validates these without connecting anywhere.

    options:
      model: embedded                  # the local model directory: manifest + tokenizer stay in the proxy
      backend: remote
      remote:
        url: grpc://triton:8001        # or http://triton:8000 (Open Inference Protocol / KServe v2)
        model: minilm-tw               # the server's model name (default: the manifest's name)
        version: "1"                   # optional; default: the server's policy
        timeout_ms: 500                # per request to the server; then on_error applies
        pool: 4                        # clients (connections) per model per process, the bound
        http_binary: false             # http: Triton's binary tensor extension (Triton only)
        startup_wait_s: 30             # start-up waits this long for the model to be ready, then fails
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

Backend = Literal["local", "remote"]
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class RemoteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="http://host:port (KServe v2 REST) or grpc://host:port (KServe v2 gRPC)")
    model: str | None = Field(None, description="model name on the server (default: the model manifest's name)")
    version: str | None = Field(None, description="model version on the server (default: the server chooses)")
    timeout_ms: int = Field(1000, ge=1, le=600_000, description="per request; on expiry the detector's on_error applies")
    pool: int = Field(4, ge=1, le=256, description="clients (one connection each) per model and process")
    http_binary: bool = Field(False, description="http only: Triton's binary tensor extension (faster; Triton only, "
                                                 "MLServer and KServe's REST speak JSON)")
    startup_wait_s: float = Field(30.0, ge=0.0, le=600.0,
                                  description="how long start-up waits for the server and model to be ready")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "grpc"):
            raise ValueError("url must start with http:// or grpc:// (https and TLS: terminate in the mesh)")
        if not parts.hostname:
            raise ValueError("url needs a host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("url has an invalid port") from None
        if port is None:
            raise ValueError("url needs a port (Triton: 8000 for http, 8001 for grpc)")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("url is scheme://host:port only (no path, query or credentials)")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is not None and not _MODEL_RE.match(v):
            raise ValueError("model names use letters, digits, '_', '-', '.' (at most 128)")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9]{1,9}", v):
            raise ValueError("version is a positive integer, as a string (e.g. \"1\")")
        return v

    @property
    def protocol(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def address(self) -> str:
        """host:port, the form tritonclient takes."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{parts.port}"

    def key(self) -> str:
        return f"{self.url}|{self.model}|{self.version}|{self.timeout_ms}|{self.pool}|{self.http_binary}"


def check_backend(backend: Backend, remote: RemoteOptions | None) -> None:
    """The cross-field rule of detector options (raise ValueError, pydantic reports it on the field)."""
    if backend == "remote" and remote is None:
        raise ValueError("backend: remote needs remote: {url: ..., model: ...}")
    if backend == "local" and remote is not None:
        raise ValueError("remote: is set but backend is local (set backend: remote)")


class RemoteBackendOptions(BaseModel):
    """Mixed into the options of model-based detectors (toxicity, injection): where the model runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend = Field("local", description="local: ONNX Runtime in this process; remote: an Open Inference "
                                                  "Protocol server (Triton, KServe, MLServer); tokenising stays here")
    remote: RemoteOptions | None = Field(None, validate_default=True,
                                         description="backend: remote: {url, model, version, timeout_ms, pool, "
                                                     "startup_wait_s}")

    @field_validator("remote")
    @classmethod
    def _remote(cls, v: RemoteOptions | None, info: Any) -> RemoteOptions | None:
        check_backend(info.data.get("backend", "local"), v)
        return v
