"""One router per resource; :func:`api.app.create_app` joins them."""
