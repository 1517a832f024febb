"""Runs the OpsConductor services: all in one process (embedded) or one per process."""
