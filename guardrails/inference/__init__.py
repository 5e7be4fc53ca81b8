"""The shared ONNX runtime for model-based detectors.

- manifest.py: the model directory format (manifest.json with sha256 per file) and `load_model_dir`.
- session.py: `open_session` (CUDA with the fp16 variant, else CPU; the device is read back).
- tokenize.py: `tokenizers` (tokenizer.json / vocab.txt) or a Keras word index; windows for long texts.
- classifier.py: `OnnxTextClassifier` (one session per model per process; sort by length, pad per batch).
- batcher.py: `MicroBatcher` (coalesce concurrent calls; max batch, max wait in ms).
- convert.py / convert_embedded.py: Detoxify checkpoints and the embedded default -> model directories.

Importing this package is cheap: onnxruntime, tokenizers, torch load inside functions.
"""
