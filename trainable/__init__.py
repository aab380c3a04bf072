"""What runs inside a trial, on a Ray worker: data, model, metrics and the HF Trainer loop.

This package never imports `search/`: the boundary is a process boundary.
"""
