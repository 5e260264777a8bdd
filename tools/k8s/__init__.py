"""Kubernetes manifest tools: render a kustomization offline (``kustomize``), validate it against
schemas (``validate``), check it against the compose stack and the protocol (``checks``,
``stack``); ``render`` is the CLI."""
