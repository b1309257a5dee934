"""Training side of ser-edge: corpora, librosa reference features, models, evaluation, ONNX."""
