"""Diagnostics helpers shared by the nodes that report on /diagnostics (message building only,
no logic)."""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
          'error': DiagnosticStatus.ERROR}


def status(name: str, hardware_id: str, level: str, message: str,
           values: dict[str, object]) -> DiagnosticStatus:
    return DiagnosticStatus(level=LEVELS[level], name=name, message=message,
                            hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


def _text(v: object) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, float):
        return f'{v:.3f}'
    return str(v)
