"""Events executions publishes; it consumes none yet.

- executions.execution_started {executionId, jobId, number, targetIds}
- executions.execution_finished {executionId, jobId, status, succeeded, failed}
Live per-run events go through the broadcaster (channel ``execution:<id>``), not the bus: they
are many and their durable copy is the ``execution_events`` table.
"""

PUBLISHES = ("executions.execution_started", "executions.execution_finished")
