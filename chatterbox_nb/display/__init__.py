"""Widgets and HTML for notebook output. Nothing here touches torch."""
