"""Offline RL from logged episodes: SRPO (IQL critic, diffusion behaviour model, extracted
deterministic policy), IQL with advantage-weighted regression, and behaviour cloning.

``iql``, ``diffusion`` and ``srpo`` are the pure cores (tensors in, metrics out); ``data``
reads datasets, ``datasets`` generates mixed-quality sim data, ``train`` runs the stages.
See docs/offline.md.
"""
