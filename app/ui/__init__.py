"""The desktop app (PySide6): the only package that imports Qt. A thin layer over app.session."""
