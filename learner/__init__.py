"""Learner: IBRL (imitation-bootstrapped RL) in PyTorch.

The algorithm core (``networks``, ``encoders``, ``selection``, ``bc``, ``replay``, ``ibrl``,
``obs``) is pure: tensors and arrays in, metrics dicts out, no I/O imports. The runner pieces
(``envs``, ``demos``, ``train``, ``checkpoint``, ``bundle``) own environments, files and loops.
"""
