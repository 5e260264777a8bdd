"""HTTP routes of the gateway; the only place that maps domain errors to HTTP."""
