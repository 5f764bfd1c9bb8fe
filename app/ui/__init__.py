"""The desktop app (PySide6): the only package that imports Qt. Views go to app.session through one door, controller.py."""
