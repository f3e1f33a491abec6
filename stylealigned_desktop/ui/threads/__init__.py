"""What runs off the UI thread and how its results come back: the engine's worker thread and its
jobs, the thread bridge, the background pool for file work, the thumbnail loader, and the
consistency score computed in the worker.

Imports ``support`` only."""

from .background import BackgroundPool
from .bridge import ThreadBridge
from .scoring import (
    CONSISTENCY_TIP,
    DEFAULT_DINO,
    ConsistencyOutcome,
    dino_missing,
    dino_source,
    score_pictures,
)
from .thumbnails import ThumbnailLoader
from .worker import EngineWorker, Job, JobState, Task, WorkerEvent

__all__ = [
    "CONSISTENCY_TIP",
    "DEFAULT_DINO",
    "BackgroundPool",
    "ConsistencyOutcome",
    "EngineWorker",
    "Job",
    "JobState",
    "Task",
    "ThreadBridge",
    "ThumbnailLoader",
    "WorkerEvent",
    "dino_missing",
    "dino_source",
    "score_pictures",
]
