"""traceview's HTTP routes: OTLP/HTTP, the JSON API, health (and the viewer's page)."""
