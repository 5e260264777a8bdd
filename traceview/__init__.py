"""traceview: Conveyor's OTLP trace receiver and viewer (OTLP/HTTP, OTLP/gRPC, a JSON API)."""
