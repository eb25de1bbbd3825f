"""The web UI and JSON API (Klein)."""
