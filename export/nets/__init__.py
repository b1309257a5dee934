"""Frame-level networks in PyTorch: modules, training, ONNX export (issue 11).

Needs the ``nets`` extra (``torch==2.13.0``). The networks take the frame matrix
``(batch, n_features, n_frames)`` of :func:`ser_edge.features.frame_matrix` and give class
logits; on the device they run as ONNX through onnxruntime, with the same numpy features.

- :mod:`export.nets.modules`: ``AttentionPool``, ``CNN1D`` (seed 002), ``CRNN`` (seed 004);
- :mod:`export.nets.train`: ``NetConfig``, batching, SpecAugment, mixup, the training loop with
  early stopping on a validation split of training speakers;
- :mod:`export.nets.onnx`: export with a dynamic time axis, checked against PyTorch.
"""
