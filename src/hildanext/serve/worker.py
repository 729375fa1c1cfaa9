# The one worker thread that owns the model: admitted tasks wait in a FIFO, the worker runs them one step at a
# time (a request is one step, a job one prompt per step, re-queued behind waiting requests), and a bounded
# number of slots (waiting + running) makes submit raise QueueFull. Cancellation is a flag the decoder
# observer checks between passes. Entry points: Worker (start, submit, cancel, depth, stop), Task, Cancelled.
import logging, queue, threading
import torch
from hildanext.config import ParamsError
log = logging.getLogger("hildanext.serve")
class Cancelled(Exception):
    pass

class QueueFull(Exception):
    pass

class Problem(Exception):
    """A request the worker refuses (status, message, the field to blame)."""
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

class Task:
    """One unit of work; step(engine) returns True when done; close() reports after the slot is freed."""
    def __init__(self):
        self.flag = threading.Event()
        self.reason, self.status, self.released, self.worker, self.error = "cancelled", 499, False, None, None
    def check(self, event=None) -> None:
        if self.flag.is_set():
            raise Cancelled(self.reason)
    def cancel(self, reason: str = "cancelled", status: int = 499) -> None:
        if self.worker is not None:
            self.worker.cancel(self, reason, status)
    def step(self, engine) -> bool:
        raise NotImplementedError
    def close(self) -> None:
        pass

class Worker:
    def __init__(self, engine, size: int, threads: int = 0):
        self.engine, self.size, self.threads, self.pending, self.running = engine, size, threads, 0, None
        self.queue: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.loop, name="hildanext-serve-worker", daemon=True)
    def start(self) -> None:
        self.thread.start()
    def submit(self, task: Task) -> None:
        with self.lock:
            if self.pending >= self.size:
                raise QueueFull(self.pending)
            self.pending += 1
            task.worker = self
        self.queue.put(task)
    def cancel(self, task: Task, reason: str = "cancelled", status: int = 499) -> None:
        """Flag the task (the first reason stays); a task not running now is released and closed at once."""
        with self.lock:
            if task.released or task.flag.is_set():
                return
            task.reason, task.status = reason, status
            task.flag.set()
            idle = self.running is not task
        if idle:
            self.finish(task, Problem(status, reason))
    def depth(self) -> dict:
        with self.lock:
            running = int(self.running is not None)
            return {"size": self.size, "pending": self.pending, "running": running, "waiting": self.pending - running}
    def finish(self, task: Task, error: Problem | None) -> None:
        with self.lock:
            if task.released:
                return
            task.released, task.error = True, task.error or error
            self.pending -= 1
        task.close()
    def run(self, task: Task) -> tuple[bool, Problem | None]:
        try:
            task.check()
            return task.step(self.engine), None
        except Cancelled as e:
            return True, Problem(task.status, str(e))
        except Problem as e:
            return True, e
        except ParamsError as e:
            return True, Problem(422, str(e))
        except Exception as e:
            log.exception("generation failed")
            return True, Problem(500, f"generation failed: {e.__class__.__name__}: {e}")
    def loop(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        while (task := self.queue.get()) is not None:
            with self.lock:
                if task.released:
                    continue
                self.running = task
            done, error = self.run(task)
            with self.lock:
                self.running = None
            if done:
                self.finish(task, error)
            else:
                self.queue.put(task)
    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is running or waiting, then end the thread."""
        with self.lock:
            running = self.running
        if running is not None:
            self.cancel(running, "server shutting down", 503)
        while not self.queue.empty():
            task = self.queue.get_nowait()
            if task is not None:
                self.cancel(task, "server shutting down", 503)
        self.queue.put(None)
        self.thread.join(timeout)
