"""The ``/ws/control`` channel behind its router: clients and leases, input, commands."""
