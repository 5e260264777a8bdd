"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), with gRPC health
checking and server reflection, served by the gateway beside its HTTP API (``GRPC_PORT``)."""
