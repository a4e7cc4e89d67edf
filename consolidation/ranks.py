"""`oel consolidate` under a multi-process launcher (`accelerate launch`, `torchrun`): one leader, followers.

Training is the only part that runs on every process (the Trainer splits the batches and all-reduces the
LoRA gradients, DDP). Everything that reads or writes the run is the leader's (rank 0):
the run-directory lock, utility measurement, the dataset, the gate's evaluations, the manifest and the
memory's pruning. The leader decides what to train (`Plan`) and sends it; the followers, which never open
the memory, train their share of it and exit. A single process (no launcher) is its own leader and sends
nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator, TypedDict


class Plan(TypedDict):
    records: list[dict]
    current: str | None
    """The checkpoint the adapter is trained on top of (None: the base model)."""


def world_size() -> int:
    """How many processes the launcher started (both accelerate and torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_leader() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


WAIT = timedelta(hours=3)
"""How long a process waits in a collective call. The followers wait for the plan while the leader measures
utilities and evaluates the parent, which on a CPU can take longer than torch's default of 30 minutes."""


def _exchange(plan: Plan | None, on_cpu: bool) -> Plan | None:
    """The leader's plan, on every process. The process group is the one the Trainer then uses: gloo on
    CPUs, NCCL on GPUs (accelerate picks it; `cpu` must match the Trainer's `use_cpu`)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState(cpu=on_cpu, timeout=WAIT)
    box = [plan]
    broadcast_object_list(box, from_process=0)
    return box[0]


@contextmanager
def leading(on_cpu: bool) -> Iterator[Callable[[Plan | None], None]]:
    """The leader's side: yields `send(plan)`. If the block ends without sending (nothing to do, or an
    error such as a held lock), the followers are told there is nothing to train, so none waits forever."""
    sent = False

    def send(plan: Plan | None) -> None:
        nonlocal sent
        if world_size() > 1 and not sent:
            _exchange(plan, on_cpu)
        sent = True

    try:
        yield send
    finally:
        send(None)


def follow(on_cpu: bool) -> Plan | None:
    """A follower's side: wait for the leader's plan (None: nothing to train)."""
    return _exchange(None, on_cpu)
