"""Surgical video and image dataset readers."""

SURGICAL_DATASETS: list = []
