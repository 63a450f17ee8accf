"""What a job may use, apart from the job queue (infra/jobs.py) that registers every feature's jobs: the
feature modules type their ``register_jobs`` with these, without importing the registry that imports them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.settings import Settings


@dataclass(frozen=True)
class JobDeps:
    """What a job may use: the engine and the settings of the process running it."""

    engine: AsyncEngine
    settings: Settings


# Feature modules add their registration functions to infra/jobs.registrars.
Registrar = Callable[[procrastinate.App, JobDeps], None]
