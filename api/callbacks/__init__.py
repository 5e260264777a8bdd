"""Completion callbacks: where an asynchronous task's final status is POSTed, and the delivery
of those POSTs (signed, retried, durable in Redis)."""
