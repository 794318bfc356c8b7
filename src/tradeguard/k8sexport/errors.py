"""The error of an export that cannot be done faithfully."""

from __future__ import annotations

from tradeguard.errors import ConfigError


class ExportError(ConfigError):
    """Input the export will not translate: missing or unparsable files, or a field with no
    prometheus-operator equivalent. Raised rather than dropping the field, since a dropped
    route or matcher would change who gets paged without anyone noticing. The message is one
    line naming the file and the field, so the command line can print it as it is."""
