"""ASGI entry point: ``uvicorn server.main:app`` (settings from the environment / TANDEM_CONFIG)."""

from server.app import create_app, print_login_url
from tandem import security
from tandem.settings import load_settings

settings = load_settings()
security.configure(settings)
app = create_app(settings, on_login_url=print_login_url)
