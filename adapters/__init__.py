"""Framework adapters behind one interface (``adapters.interface``).

Importing this package imports no framework: each adapter module is imported only
when its target is asked for.
"""
