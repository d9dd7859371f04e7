"""Entry points, the top layer: the ``tandem`` command line, the launcher and the scripted operator.

Nothing below this package imports it. Command modules keep their heavy
imports (torch, FastAPI, MuJoCo) inside the functions that run a command, so
``tandem --help`` and a robot PC's ``tandem arm-server`` load only what they use.
"""
