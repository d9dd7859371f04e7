"""Browser tests (Playwright + Debian Chromium) of the web pages."""
