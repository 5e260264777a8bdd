"""Conveyor's HTTP gateway: JSON in, model queue, JSON out."""
