"""A dense autoencoder on the standardized feature vector (PyTorch, exported to ONNX): the ``autoencoder``
model kind."""
