"""The robot bridge: backends (sim, real arm over ZeroMQ, mock), control loop, modes, safety."""
