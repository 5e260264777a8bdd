"""Load testing of Conveyor: the benchmark, Locust, and experiments (see README.md).

``bench`` measures Conveyor with wrk against a baseline in the same run, one scenario module
each (``bench_scenarios`` lists them). ``python -m load_testing [scenario] --host URL`` runs a
Locust scenario headless against a running stack; ``stack_bench`` starts a private stack and
prints one comparable Locust line. ``experiments`` holds one-off measurements.

Locust monkey-patches the interpreter with gevent, so only ``locustfile.py`` and
``step_shape.py`` import it, and they only ever run inside the Locust subprocess.
"""
