"""The remote inference backend: the model runs on an Open Inference Protocol (KServe v2) server.

Triton Inference Server (ONNX Runtime backend), KServe, Seldon MLServer and OpenVINO Model Server all
speak the protocol; this module talks to them with the official `tritonclient` (extra `remote`), over
HTTP (`http://host:8000`) or gRPC (`grpc://host:8001`).

The seam is narrow: `RemoteTextClassifier` is an `OnnxTextClassifier` whose chunks run on the server.
Tokenising, windowing, sorting by length and padding per batch stay in the proxy, so the server sees
plain int64 `input_ids` / `attention_mask` tensors and runs the unmodified ONNX graph; activation and
label mapping stay here too. The `MicroBatcher` in front (ModelScorer) still coalesces concurrent
callers, so one server request carries many texts.

Start-up reads the model's metadata and fails (naming the option) on a wrong model name, an input the
tokeniser cannot feed, a non-integer input type or an output of the wrong width. At run time every
failure (refused, reset, timed out, an answer of the wrong shape, NaN) raises `RemoteError`, which the
pipeline turns into the detector's `on_error` (block by default).

Connections are bounded: at most `pool` requests in flight per model and process (a semaphore); gRPC
shares one channel (HTTP/2 multiplexes), HTTP keeps one keep-alive client per calling thread
(tritonclient's HTTP client is gevent-based and must stay on the thread that made it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.errors import ConfigError
from guardrails.inference.classifier import OnnxTextClassifier
from guardrails.inference.manifest import ModelDir, load_model_dir
from guardrails.inference.remote_config import RemoteOptions
from guardrails.inference.tokenize import Window, make_tokenizer

log = logging.getLogger("trustwall.inference.remote")

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
INT_TYPES = ("INT64", "INT32")
FLOAT_TYPES = ("FP32", "FP16", "FP64")


class RemoteError(RuntimeError):
    """A remote inference call failed (the detector's on_error applies)."""


def _np_type(datatype: str) -> Any:
    return {"INT64": np.int64, "INT32": np.int32}[datatype]


# ----------------------------------------------------------------------------------------- clients


class _OipClient:
    """One tritonclient client, HTTP or gRPC, behind a uniform interface (seconds everywhere)."""

    def __init__(self, opts: RemoteOptions):
        self.opts = opts
        self.timeout_s = opts.timeout_ms / 1000.0
        if opts.protocol == "grpc":
            import tritonclient.grpc as grpcclient

            self._mod = grpcclient
            # Reconnect quickly after the server comes back (gRPC's default backoff grows to 120 s).
            args = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                    ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000), ("grpc.enable_retries", 0)]
            self._c = grpcclient.InferenceServerClient(url=opts.address, channel_args=args)
        else:
            import tritonclient.http as httpclient

            self._mod = httpclient
            self._c = httpclient.InferenceServerClient(url=opts.address, concurrency=1,
                                                       connection_timeout=self.timeout_s,
                                                       network_timeout=self.timeout_s)

    def _kw(self) -> dict[str, Any]:
        return {"client_timeout": self.timeout_s} if self.opts.protocol == "grpc" else {}

    def server_ready(self) -> bool:
        return bool(self._c.is_server_ready(**self._kw()))

    def model_ready(self, name: str, version: str) -> bool:
        return bool(self._c.is_model_ready(name, version, **self._kw()))

    def metadata(self, name: str, version: str) -> dict[str, Any]:
        if self.opts.protocol == "grpc":
            return dict(self._c.get_model_metadata(name, version, as_json=True, client_timeout=self.timeout_s))
        return dict(self._c.get_model_metadata(name, version))

    def infer(self, name: str, version: str, feed: dict[str, np.ndarray], output: str) -> np.ndarray:
        m = self._mod
        binary = {"binary_data": self.opts.http_binary} if self.opts.protocol == "http" else {}
        inputs = []
        for k, arr in feed.items():
            inp = m.InferInput(k, list(arr.shape), _DTYPES[arr.dtype.type])
            inp.set_data_from_numpy(arr, **binary)
            inputs.append(inp)
        outputs = [m.InferRequestedOutput(output, **binary)]
        res = self._c.infer(name, inputs, model_version=version, outputs=outputs, **self._kw())
        got = res.as_numpy(output)
        if got is None:
            raise RemoteError(f"the server's answer has no output {output!r}")
        return got

    def close(self) -> None:
        try:
            self._c.close()
        except Exception:  # noqa: BLE001 - closing a broken client is best effort
            pass


_DTYPES = {np.int64: "INT64", np.int32: "INT32"}


class ClientPool:
    """At most `opts.pool` calls in flight. gRPC: one shared channel. HTTP: one client per thread
    (a gevent client must stay on its thread), replaced after any failure, so a dead connection to a
    restarted server never sticks."""

    def __init__(self, opts: RemoteOptions):
        self.opts = opts
        self._sem = threading.BoundedSemaphore(opts.pool)
        self._lock = threading.Lock()
        self._shared: _OipClient | None = None
        self._local = threading.local()
        # HTTP clients by the thread that made them: those of ended threads (the batcher's workers end
        # when idle) are closed when the next one is made, the rest with the pool
        self._threaded: list[tuple[threading.Thread, _OipClient]] = []
        self._closed = False

    def _get(self) -> _OipClient:
        if self.opts.protocol == "grpc":
            with self._lock:
                if self._shared is None:
                    self._shared = _OipClient(self.opts)
                return self._shared
        c = getattr(self._local, "client", None)
        if c is None:
            c = _OipClient(self.opts)
            self._local.client = c
            with self._lock:
                ended = [x for t, x in self._threaded if not t.is_alive()]
                self._threaded = [(t, x) for t, x in self._threaded if t.is_alive()]
                self._threaded.append((threading.current_thread(), c))
            for x in ended:
                x.close()
        return c

    def _drop(self, c: _OipClient) -> None:
        if self.opts.protocol == "http" and getattr(self._local, "client", None) is c:
            self._local.client = None
            with self._lock:
                self._threaded = [(t, x) for t, x in self._threaded if x is not c]
            c.close()

    @contextmanager
    def client(self) -> Iterator[_OipClient]:
        if self._closed:
            raise RemoteError("remote backend is closed")
        if not self._sem.acquire(timeout=self.opts.timeout_ms / 1000.0):
            raise RemoteError(f"all {self.opts.pool} connections to {self.opts.url} busy for {self.opts.timeout_ms} ms")
        try:
            c = self._get()
            try:
                yield c
            except BaseException:
                self._drop(c)
                raise
        finally:
            self._sem.release()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            clients, self._threaded = [x for _t, x in self._threaded], []
            if self._shared is not None:
                clients.append(self._shared)
                self._shared = None
        for c in clients:
            c.close()


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}"[:300] if msg else type(exc).__name__


# ------------------------------------------------------------------------------------- classifier


class RemoteTextClassifier(OnnxTextClassifier):
    """An OnnxTextClassifier whose forward pass runs on an Open Inference Protocol server."""

    @property
    def run_cost_tokens(self) -> float:
        return float("inf")  # a round trip costs far more than padding: as few requests as possible

    def __init__(self, model: ModelDir | str | Path, remote: RemoteOptions, *, max_batch: int = 32,
                 check: bool = True, connect: bool = True):
        self.model = model if isinstance(model, ModelDir) else load_model_dir(model, check=check)
        m = self.model.manifest
        if m.kind == "text":
            raise ConfigError(f"{self.model.path}: kind text (raw strings) cannot use backend remote")
        self.remote = remote
        self.remote_model = remote.model or m.name
        self.remote_version = remote.version or ""
        self.max_batch = max(1, int(max_batch))
        self.labels = list(m.labels)
        self.categories = m.categories()
        self._tok = make_tokenizer(self.model)
        if self._tok is None:
            raise ConfigError(f"{self.model.path}: kind {m.kind} needs a tokenizer")
        self._inputs = list(m.input_names) or list(TOKEN_INPUTS[:2])
        # a model that ships only an int8 file is served as that file, dynamically quantised (one activation
        # scale per run): one window a request, so scores equal in-process ones and never depend on the
        # other windows (a server that batches requests itself, e.g. Triton's dynamic batcher, is outside
        # this guarantee: serve fp32 / fp16 there)
        self.run_alone = all(self.model.variant(k) is None for k in ("fp32", "fp16")) and \
            self.model.variant("int8") is not None
        self._runners: Any = None  # single-window requests side by side (bounded by the client pool too)
        self._runners_lock = threading.Lock()
        self._output = m.output or ""
        self._in_types: dict[str, str] = {}
        self._pool = ClientPool(remote)
        self._ready_at = 0.0
        self._ready: dict[str, Any] = {"ready": False, "reason": "not checked yet"}
        self._ready_lock = threading.Lock()
        if connect:
            self.connect(remote.startup_wait_s)

    # ------------------------------------------------------------------ start-up

    def connect(self, wait_s: float) -> None:
        """Wait up to `wait_s` for the server and the model, then check the model's signature."""
        deadline = time.monotonic() + wait_s
        field, reason = "options.remote.url", "not tried"
        while True:
            try:
                with self._pool.client() as c:
                    if not c.server_ready():
                        field, reason = "options.remote.url", f"server at {self.remote.url} is not ready"
                    elif not c.model_ready(self.remote_model, self.remote_version):
                        field, reason = "options.remote.model", (
                            f"model {self.remote_model!r}{self._vtext()} is not ready (or unknown) on {self.remote.url}")
                    else:
                        self._check_signature(c.metadata(self.remote_model, self.remote_version))
                        self._set_ready(True, "")
                        log.info("remote model %s%s on %s ready", self.remote_model, self._vtext(), self.remote.url)
                        return
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, unresolvable: retried until the deadline
                field, reason = "options.remote.url", f"cannot reach {self.remote.url}: {_describe(exc)}"
            if time.monotonic() >= deadline:
                raise ConfigError(f"{field}: {reason} (waited {wait_s:g} s)")
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def _vtext(self) -> str:
        return f" version {self.remote_version}" if self.remote_version else ""

    def _check_signature(self, meta: dict[str, Any]) -> None:
        where = f"model {self.remote_model!r} on {self.remote.url}"
        ins = {i.get("name"): i for i in meta.get("inputs", []) or []}
        outs = {o.get("name"): o for o in meta.get("outputs", []) or []}
        if not ins:
            raise ConfigError(f"options.remote.model: {where} declares no inputs")
        unknown = [n for n in ins if n not in TOKEN_INPUTS]
        if unknown:
            raise ConfigError(f"options.remote.model: {where} wants inputs {unknown} that the tokeniser does not make "
                              f"(it makes {list(TOKEN_INPUTS)})")
        missing = [n for n in self.model.manifest.input_names if n not in ins]
        if missing:
            raise ConfigError(f"options.remote.model: {where} lacks inputs {missing} of the model manifest")
        for n, spec in ins.items():
            dt = str(spec.get("datatype", "")).upper()
            if dt not in INT_TYPES:
                raise ConfigError(f"options.remote.model: {where}: input {n!r} is {dt or 'untyped'}, "
                                  f"token ids need INT64 (or INT32)")
            shape = [int(d) for d in spec.get("shape", [])]
            tokens = (-1, self.model.manifest.pad_to) if self.model.manifest.kind == "sequence" else (-1,)
            if len(shape) != 2 or shape[0] != -1 or shape[1] not in tokens:
                want = f"[-1, {self.model.manifest.pad_to}]" if len(tokens) > 1 else "[-1, -1]"
                raise ConfigError(f"options.remote.model: {where}: input {n!r} has shape {shape}, "
                                  f"expected {want} (batch, tokens; padded per batch here)")
            self._in_types[n] = dt
        self._inputs = list(ins)
        if not self._output:
            self._output = next(iter(outs), "")
        if self._output not in outs:
            raise ConfigError(f"options.remote.model: {where} has no output {self._output!r} (it has {list(outs)})")
        o = outs[self._output]
        dt = str(o.get("datatype", "")).upper()
        if dt not in FLOAT_TYPES:
            raise ConfigError(f"options.remote.model: {where}: output {self._output!r} is {dt}, expected FP32")
        oshape = [int(d) for d in o.get("shape", [])]
        width = len(self.labels) if self.model.manifest.output_index is None else None
        if width is not None and oshape and oshape[-1] not in (-1, width):
            raise ConfigError(f"options.remote.model: {where}: output {self._output!r} has shape {oshape}, "
                              f"the manifest has {width} labels")

    # ------------------------------------------------------------------ run

    def _feed(self, chunk: Sequence[Window]) -> dict[str, np.ndarray]:
        feed = super()._feed(chunk)
        if self._in_types:
            feed = {k: v.astype(_np_type(self._in_types.get(k, "INT64")), copy=False) for k, v in feed.items()}
        return feed

    def _run_chunk(self, chunk: Sequence[Window]) -> np.ndarray:
        feed = self._feed(chunk)
        try:
            with self._pool.client() as c:
                raw = c.infer(self.remote_model, self.remote_version, feed, self._output)
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport / server failure is one error kind
            self._set_ready(False, _describe(exc))
            raise RemoteError(f"remote model {self.remote_model!r} on {self.remote.url}: {_describe(exc)}") from None
        raw = np.asarray(raw)
        n = len(chunk)
        if raw.ndim == 1 and n == raw.shape[0]:
            raw = raw[:, None]
        if raw.ndim != 2 or raw.shape[0] != n or raw.dtype.kind != "f":
            raise RemoteError(f"remote model {self.remote_model!r} answered {raw.dtype} {list(raw.shape)} "
                              f"for a batch of {n}")
        if self.model.manifest.output_index is None and raw.shape[1] != len(self.labels):
            raise RemoteError(f"remote model {self.remote_model!r} answered {raw.shape[1]} scores, "
                              f"expected {len(self.labels)}")
        if not np.isfinite(raw).all():
            raise RemoteError(f"remote model {self.remote_model!r} answered non-finite scores")
        return self._post(raw)

    # ------------------------------------------------------------------ readiness

    def _set_ready(self, ok: bool, reason: str) -> None:
        with self._ready_lock:
            self._ready = {"ready": ok, "reason": reason}
            self._ready_at = time.monotonic()

    def readiness(self, max_age_s: float = 1.0) -> dict[str, Any]:
        """{"ready": bool, "reason": str}: server live and model ready, checked at most once per
        `max_age_s` (a /readyz probe every second costs one small request per model)."""
        with self._ready_lock:
            if time.monotonic() - self._ready_at < max_age_s:
                return {**self._ready, **self._where()}
        try:
            with self._pool.client() as c:
                ok = c.server_ready() and c.model_ready(self.remote_model, self.remote_version)
            self._set_ready(ok, "" if ok else f"model {self.remote_model!r} not ready")
        except Exception as exc:  # noqa: BLE001
            self._set_ready(False, _describe(exc))
        with self._ready_lock:
            return {**self._ready, **self._where()}

    def _where(self) -> dict[str, Any]:
        return {"url": self.remote.url, "model": self.remote_model, "version": self.remote_version or None}

    # ------------------------------------------------------------------ public

    @property
    def device(self) -> str:
        return "remote"

    def info(self) -> dict[str, Any]:
        m = self.model.manifest
        return {"model": m.name, "kind": m.kind, "device": "remote", "provider": f"oip-{self.remote.protocol}",
                "variant": "server", "file": None, "labels": self.categories, "max_length": m.max_length,
                "max_batch": self.max_batch, "remote": {**self._where(), "timeout_ms": self.remote.timeout_ms,
                                                        "pool": self.remote.pool}}

    def close(self) -> None:
        super().close()  # the single-window runner threads
        self._pool.close()
