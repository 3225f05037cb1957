"""The webapi's extension methods by name (moxtrio extensions, see :mod:`plugins.webapi.extensions`)."""

from __future__ import annotations

from plugins.webapi.extensions import ExtHandler
from plugins.webapi.suppression_bulk import suppression_export, suppression_import
from plugins.webapi.types import EXTENSION_NAMES
from plugins.webapi.webhook_redeliver import webhook_redeliver

EXTENSIONS: dict[str, ExtHandler] = {
    "SuppressionExport": suppression_export,
    "SuppressionImport": suppression_import,
    "WebhookRedeliver": webhook_redeliver,
}
assert set(EXTENSIONS) == EXTENSION_NAMES
