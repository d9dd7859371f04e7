"""Tandem server: FastAPI app, episode store, recorder and export."""
