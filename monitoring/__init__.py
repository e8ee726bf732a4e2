"""Prometheus metrics of the learner ranks, GPU/CPU samplers and the Grafana dashboard."""

from .exporter import LOSSES, PHASES, MetricsExporter, MetricsPortError, check_port_free, served_port

__all__ = ["LOSSES", "PHASES", "MetricsExporter", "MetricsPortError", "check_port_free", "served_port"]
