"""The project's own error type: its message says what went wrong and what to do, so the CLI prints
the message alone (``auditdm --debug ...`` shows the traceback)."""


class AuditDMError(Exception):
    exit_code = 2  # bad input or settings; runtime failures use 1


class ConfigError(AuditDMError, ValueError):
    pass
