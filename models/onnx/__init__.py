"""The ONNX worker as an in-repo server: ``worker_base.onnx_model`` serving ``MODEL_PATH``, by
default the bundled example image model."""
