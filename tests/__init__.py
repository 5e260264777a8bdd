"""System tests of Conveyor."""
