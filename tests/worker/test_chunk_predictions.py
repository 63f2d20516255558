"""A large job's chunks run on several threads at once, and come back whole and in order."""

from __future__ import annotations

import threading

import numpy as np

from onnxq.models.repository import ModelRepository
from worker.runner import chunk_predictions


class Recording:
    """A model that notes which thread ran each chunk, and predicts with the real one. With
    `together`, its first two chunks each wait until the other has started: they can only both
    finish if they run at once."""

    def __init__(self, model, together: bool = False):
        self.model = model
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.started = 0
        self.meeting = threading.Barrier(2, timeout=60) if together else None

    def predict(self, matrix: np.ndarray):
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.started += 1
            first_two = self.started <= 2
        if self.meeting is not None and first_two:
            self.meeting.wait()  # BrokenBarrierError if the other never runs beside it
        return self.model.predict(matrix)


def test_chunks_on_two_threads_give_what_one_gives(
    demo_repository: ModelRepository, demo_model_name: str
) -> None:
    model = demo_repository.get(demo_model_name)
    width = len(model.manifest.features)
    matrix = np.random.default_rng(3).uniform(0, 50, size=(20_000, width)).astype(np.float32)

    alone = chunk_predictions(model, matrix, 1000, threads=1)
    recording = Recording(model, together=True)
    together = chunk_predictions(recording, matrix, 1000, threads=2)

    assert len(together) == len(alone) == 20
    assert [part.labels for part in together] == [part.labels for part in alone]
    assert [part.probabilities for part in together] == [part.probabilities for part in alone]
    assert all(name.startswith("onnxq-chunk") for name in recording.threads)
    assert len(recording.threads) == 2


def test_one_chunk_runs_on_the_callers_thread(
    demo_repository: ModelRepository, demo_model_name: str
) -> None:
    model = Recording(demo_repository.get(demo_model_name))
    width = len(model.model.manifest.features)
    chunk_predictions(model, np.ones((500, width), np.float32), 1000, threads=2)
    assert model.threads == {threading.current_thread().name}
