"""Ansible callback ``servebench_events``: each play, task and task result as one JSON line, in the
shape of ansible-runner's job events (``event``, ``counter``, ``event_data`` with ``play``,
``task``, ``host``, ``res``), appended to the file named by ``SERVEBENCH_EVENTS_FILE``.

A notification callback, off unless enabled (``ANSIBLE_CALLBACKS_ENABLED=servebench_events``):
``python -m servebench.progress`` (what ``make bench`` runs on a terminal) enables it and reads
the file to draw its progress view, while ansible-playbook's normal output goes to the run's log.
A plain ``ansible-playbook`` run never loads it.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: servebench_events
    type: notification
    short_description: job events as JSON lines for servebench's progress view
    description:
      - Appends every play start, task start and task result, shaped like ansible-runner's job
        events, to the file named by the SERVEBENCH_EVENTS_FILE environment variable.
    requirements:
      - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "servebench_events"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("SERVEBENCH_EVENTS_FILE")
        # Line-buffered: the reader follows the file while the run goes on.
        self._out = open(path, "a", encoding="utf-8", buffering=1) if path else None  # noqa: SIM115
        self._counter = 0
        self._play = ""

    def _emit(self, event: str, **data) -> None:
        if self._out is None:
            return
        self._counter += 1
        line = json.dumps({"counter": self._counter, "event": event,
                           "event_data": {"play": self._play, **data}}, default=str)
        self._out.write(line + "\n")

    @staticmethod
    def _task_name(task) -> str:
        # As ansible-runner names it: without the "<role> : " prefix of a role's task.
        return str(task.name or task.get_name()).strip()

    def _result(self, event: str, result) -> None:
        self._emit(event, task=self._task_name(result._task), host=result._host.get_name(),
                   task_action=result._task.action, res=result._result)

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()
        self._emit("playbook_on_play_start")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit("playbook_on_task_start", task=self._task_name(task))

    def v2_runner_on_ok(self, result):
        self._result("runner_on_ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("runner_on_failed", result)

    def v2_runner_on_skipped(self, result):
        self._result("runner_on_skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("runner_on_unreachable", result)

    def v2_runner_item_on_ok(self, result):
        self._result("runner_item_on_ok", result)

    def v2_runner_item_on_failed(self, result):
        self._result("runner_item_on_failed", result)

    def v2_playbook_on_stats(self, stats):
        self._emit("playbook_on_stats")
        if self._out is not None:
            self._out.close()
            self._out = None
