"""The system database layer: schema and migrations, named SQL, and the
SystemDatabase / AppDatabase classes that the executor calls. Nothing above
this package writes SQL."""

from .database import AppDatabase, StepRow, SystemDatabase, WorkflowRow

__all__ = ["AppDatabase", "StepRow", "SystemDatabase", "WorkflowRow"]
