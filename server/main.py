"""ASGI entry point: ``uvicorn server.main:app`` (settings from the environment / TANDEM_CONFIG)."""

from server.app import create_app, print_login_url
from tandem.settings import load_settings

app = create_app(load_settings(), on_login_url=print_login_url)
