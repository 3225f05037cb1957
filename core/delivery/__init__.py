"""Outbound delivery: the SMTP client that hands one batch to one host.

Below the queue and beside the SMTP server: the queue imports this package to
make an attempt; nothing here imports the queue or ``core.smtp`` (the server
side), so delivery can be used and tested on its own.
"""
