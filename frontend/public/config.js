// Replaced at serve time by the UI server (scripts/ui_server.py) with the router's URL.
window.OPSC_CONFIG = window.OPSC_CONFIG || {};
