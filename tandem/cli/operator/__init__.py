"""The scripted operator: a client that drives Tandem through the browser's protocol.

``tandem demo-operator`` logs in, claims a robot over ``/ws/control`` and
behaves like a person at the dashboard with a gamepad: it records
demonstrations, starts rollouts, takes over when the policy stalls, signals
resets and labels episodes. Its "hands" are the simulated task's scripted
expert (``tandem.cli.operator.hands``), its eyes the ``/ws/telemetry`` stream.
"""
