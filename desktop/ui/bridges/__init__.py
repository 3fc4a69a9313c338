"""QObjects that drive plain-Python work from Qt: timers and signals around services (sync worker)."""
