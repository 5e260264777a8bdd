"""Load testing of a running Conveyor stack with Locust.

``python -m load_testing [scenario] --host URL`` runs a scenario headless and writes Locust's
CSV and HTML report plus a latency/throughput chart; ``python -m load_testing.stack_bench``
starts a private stack, runs a fixed scenario and prints one comparable line.

Locust monkey-patches the interpreter with gevent, so only ``locustfile.py`` and
``step_shape.py`` import it, and they only ever run inside the Locust subprocess.
"""
