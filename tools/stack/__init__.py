"""One way to start Conveyor's parts: ports, waiting, processes, brokers, the service list.

Used by ``//:up`` (``tools/up``), the integration tests (``tests/integration`` and the pytest
plugin that gives each test target its own brokers), ``load_testing`` and the compose file.
"""
