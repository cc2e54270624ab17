"""wf.logger: a logging.Logger whose records inside a workflow or step are also
stored durably with the workflow, once each even when a replay emits them again."""

from __future__ import annotations

import contextlib
import logging

from ._context import current, current_step

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
        ex = ctx.executor
        if ex is None or ctx.dry:  # a dry replay (wf.replay) writes nothing
            return
        step_state = current_step()
        if step_state is not None:
            # keyed by the step's position (negated: apart from body lines)
            position = -(step_state.position + 1)
            seq = step_state.log_seq
            step_state.log_seq += 1
            step: str | None = step_state.name
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

        row = (
            ctx.workflow_id,
            position,
            seq,
            int(record.created * 1000),
            record.levelname,
            step,
            clean_text(message),
        )
        if step_state is not None and step_state.held_logs is not None:
            step_state.held_logs.append(row)  # written when the transaction ends
        else:
            # only while this run may write into its workflow (a deleted
            # workflow's run writes nothing into a reused ID)
            with contextlib.suppress(Exception):
                ex.sysdb.insert_log(*row, executor_id=ctx.executor_id, run_token=ctx.run_token)
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
