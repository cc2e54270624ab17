"""wf.logger: a logging.Logger whose records inside a workflow or step are also
stored durably with the workflow, once each even when a replay emits them again."""

from __future__ import annotations

import contextlib
import logging

from ._context import current

logger = logging.getLogger("wf.workflow")
# INFO by default so wf.logger.info(...) is recorded; the stderr fallback
# still prints only WARNING and above
logger.setLevel(logging.INFO)


class DurableLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ctx = current.get()
        if ctx is None:
            self._fallback(record)
            return
        from . import _executor

        ex = _executor.current_or_none()
        if ex is None:
            return
        if ctx.in_step is not None:
            # keyed by the step's position (negated: apart from body lines)
            position = -(ctx.step_position + 1)
            seq = ctx.step_log_seq
            ctx.step_log_seq += 1
            step = ctx.in_step
        else:
            position = ctx.log_position
            seq = ctx.log_seq
            ctx.log_seq += 1
            step = None
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        from ._serialization import clean_text

        message = clean_text(message)
        with contextlib.suppress(Exception):
            ex.sysdb.insert_log(
                ctx.workflow_id,
                position,
                seq,
                int(record.created * 1000),
                record.levelname,
                step,
                message,
            )
        self._fallback(record)

    @staticmethod
    def _fallback(record: logging.LogRecord) -> None:
        # our handler hides logging's last resort: keep its stderr output when
        # the application configured no logging of its own
        root = logging.getLogger()
        if (
            not root.handlers
            and logging.lastResort is not None
            and record.levelno >= logging.lastResort.level
        ):
            logging.lastResort.handle(record)


logger.addHandler(DurableLogHandler())
