"""Workloads: query templates from real plans, arrival processes, and trace replay."""
