"""Models served by Conveyor, one package each."""
