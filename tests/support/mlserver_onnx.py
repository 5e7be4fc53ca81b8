"""An MLServer runtime that serves a plain ONNX graph with ONNX Runtime (loaded inside MLServer only).

MLServer (Seldon) is a real Open Inference Protocol server (KServe v2 REST + gRPC). It ships no ONNX
runtime of its own, so this small `MLModel` opens the file given as `parameters.uri` with ONNX Runtime
and answers `infer` with the graph's outputs, as Triton's onnxruntime backend would. Test-only knobs
in `parameters.extra`:

    mode: ok | garbage_shape | int_output | slow    # what predict answers (garbage for the bad-input tests)
    delay_ms: 0                               # slow: answer after this long (asyncio sleep)
    threads: 2                                # ONNX Runtime intra-op threads
"""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        params = self.settings.parameters
        extra = dict(params.extra or {}) if params is not None else {}
        self._mode = str(extra.get("mode", "ok"))
        self._delay = float(extra.get("delay_ms", 0)) / 1000.0
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(extra.get("threads", 2))
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sess = ort.InferenceSession(str(params.uri), sess_options=opts, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._sess.get_outputs()]
        self._inputs = {i.name for i in self._sess.get_inputs()}
        return True

    def _run(self, feed: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
        return self._sess.run(names, feed)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs if i.name in self._inputs}
        names = [o.name for o in (payload.outputs or [])] or self._outputs
        if self._mode == "slow" and self._delay:
            await asyncio.sleep(self._delay)
        outs = await asyncio.to_thread(self._run, feed, names)
        if self._mode == "garbage_shape":
            outs = [o[:, :-1] if o.ndim == 2 else o for o in outs]
        elif self._mode == "int_output":
            outs = [np.ones(o.shape, dtype=np.int64) for o in outs]
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output(n, o) for n, o in zip(names, outs)])
