"""The Open Inference Protocol (KServe v2) REST API: tensors over the gateway's models."""
