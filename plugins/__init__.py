"""First-party moxtrio plugins, each a package with one job.

Every plugin reaches the core only through hooks (``core.hookspecs``) and
the :class:`core.plugin_api.PluginContext` it is given; no plugin imports
another.
"""
