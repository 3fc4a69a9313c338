"""PySide6 widgets, the runner and the error presenter; never imports store/, sqlalchemy, httpx or bleak."""
