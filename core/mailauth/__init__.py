"""Incoming message authentication: SPF, DKIM verification, DMARC, Authentication-Results.

Each module has one job and takes its DNS through :mod:`core.mailauth.lookup`,
so the same code runs against the real resolver, a server's own answers for
its own domains, and the test suites' zones.
"""
