"""A plugin module that fails at import, as when a backend's own dependency is missing.

Registered as ``example-broken``; loading it must give an error naming that entry point.
"""

raise ImportError("example-broken needs the 'examplelib' package, which is not installed")
