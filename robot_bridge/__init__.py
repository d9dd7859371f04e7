"""Robot bridge: the per-robot process that owns the backend, the control loop and safety."""
