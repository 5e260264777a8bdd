"""Integration tests: real RabbitMQ, Redis, HTTP and processes."""
