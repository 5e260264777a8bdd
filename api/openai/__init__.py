"""OpenAI-compatible endpoints (``/v1``) for the models that follow the text-generation contract."""
