"""The holdrules plugin (see its issue); registered with the plugin manager."""

from __future__ import annotations
