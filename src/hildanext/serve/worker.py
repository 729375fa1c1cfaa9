# The one worker thread that owns the model and one engine.session(serve.max_batch) (decode/batch.py): each
# prompt of an admitted generation task is a row of that session (a job's prompts join a few at a time), rows
# join between steps while rows are free (continuous batching; a lone request waits serve.batch_wait_s for
# company), and a task finishes when all its rows ended; other tasks (tokenizer calls) run between steps. A
# bounded number of slots (tasks waiting + running) makes submit raise QueueFull; cancelling flags a task, whose
# row observers raise Cancelled. Entry points: Worker (start, submit, cancel, depth, batch, stop), Task, Cancelled.
import logging, queue, threading, time
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
    """One unit of work: step(engine) runs it whole, or (batched) join(engine, n) yields rows, end(tag, c) takes one."""
    batched, greedy = False, True
    def __init__(self):
        self.flag = threading.Event()
        self.reason, self.status, self.released, self.worker, self.error = "cancelled", 499, False, None, None
        self.joined, self.inflight = 0, 0
    def check(self, event=None) -> None:
        if self.flag.is_set():
            raise Cancelled(self.reason)
    def cancel(self, reason: str = "cancelled", status: int = 499) -> None:
        if self.worker is not None:
            self.worker.cancel(self, reason, status)
    def size(self) -> int:
        """The rows it decodes (0 for a task run by step)."""
        return 0
    def step(self, engine) -> None:
        raise NotImplementedError
    def join(self, engine, n: int) -> list[tuple]:
        """The next n rows as (tag, prepared, observer)."""
        raise NotImplementedError
    def end(self, tag, completion) -> None:
        raise NotImplementedError
    def close(self) -> None:
        pass

def problem_of(task: Task, e: BaseException) -> Problem:
    """The Problem a failed step or row reports."""
    if isinstance(e, Cancelled):
        return Problem(task.status, str(e))
    if isinstance(e, Problem):
        return e
    if isinstance(e, ParamsError):
        return Problem(422, str(e))
    log.error("generation failed", exc_info=e)
    return Problem(500, f"generation failed: {e.__class__.__name__}: {e}")

class Worker:
    def __init__(self, engine, size: int, threads: int = 0, max_batch: int = 1, batch_wait_s: float = 0.0):
        self.engine, self.size, self.threads = engine, size, threads
        self.max_batch, self.batch_wait_s = max_batch, batch_wait_s
        self.pending, self.steps, self.stopping, self.session = 0, 0, False, None
        self.tasks, self.order, self.rows, self.active = [], [], {}, set()
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
            self.tasks.append(task)
        self.queue.put(task)
    def cancel(self, task: Task, reason: str = "cancelled", status: int = 499) -> None:
        """Flag the task (the first reason stays); a task with no row in the session is released and closed at once."""
        with self.lock:
            if task.released or task.flag.is_set():
                return
            task.reason, task.status = reason, status
            task.flag.set()
            idle = task not in self.active
        if idle:
            self.finish(task, Problem(status, reason))
    def depth(self) -> dict:
        with self.lock:
            running = len(self.active)
            return {"size": self.size, "pending": self.pending, "running": running, "waiting": self.pending - running}
    def batch(self) -> dict:
        """The running batch: its row limit, rows in the session, rows of admitted tasks still to join, steps."""
        with self.lock:
            waiting = sum(t.size() - t.joined for t in self.tasks if t.batched and not t.flag.is_set())
            return {"max": self.max_batch, "rows": len(self.rows), "waiting": waiting, "steps": self.steps}
    def finish(self, task: Task, error: Problem | None) -> None:
        with self.lock:
            if task.released:
                return
            task.released, task.error = True, task.error or error
            self.pending -= 1
            self.tasks.remove(task)
            self.active.discard(task)
        task.close()
    def fail(self, task: Task, problem: Problem) -> None:
        """The task's first error stays; flagging it ends its other rows."""
        task.error = task.error or problem
        task.flag.set()
    def settle(self, task: Task) -> None:
        """Finish the task once no row of it runs and none will join."""
        if task.inflight == 0 and (task.flag.is_set() or task.joined >= task.size()):
            self.finish(task, task.error or (Problem(task.status, task.reason) if task.flag.is_set() else None))
    def take(self, block: bool, timeout: float | None = None) -> None:
        """Move submitted tasks into the worker's order (blocking for the first when asked)."""
        try:
            task = self.queue.get(block, timeout)
            while True:
                if task is None:
                    self.stopping = True
                else:
                    self.order.append(task)
                task = self.queue.get_nowait()
        except queue.Empty:
            pass
    def run(self, task: Task) -> None:
        """A task that is not batched, run whole between steps."""
        with self.lock:
            if task.released:
                return
            self.active.add(task)
        try:
            task.check()
            task.step(self.engine)
            error = None
        except Exception as e:
            error = problem_of(task, e)
        self.finish(task, error)
    def fill(self) -> None:
        """Tasks in order join the session while rows are free; tasks that are not batched run now."""
        for task in list(self.order):
            if not task.batched:
                self.order.remove(task)
                self.run(task)
                continue
            cap = self.max_batch if task.greedy else max(1, self.max_batch // 2)
            n = min(self.max_batch - len(self.rows), cap - task.inflight, task.size() - task.joined)
            if n > 0 and not task.released and not task.flag.is_set():
                self.join(task, n)
            if task.released or task.flag.is_set() or task.joined >= task.size():
                self.order.remove(task)
                self.settle(task)
    def join(self, task: Task, n: int) -> None:
        with self.lock:
            if task.released:
                return
            self.active.add(task)
        try:
            rows = task.join(self.engine, n)
        except Exception as e:
            self.fail(task, problem_of(task, e))
            return
        for tag, prepared, observer in rows:
            key = self.session.add(prepared, observer)
            with self.lock:
                self.rows[key] = (task, tag)
            task.inflight += 1
    def advance(self) -> None:
        """One session step; each row that ended is handed to its task."""
        try:
            ended = self.session.step()
        except Exception as e:
            log.exception("the batch step failed")
            ended, self.session = [(key, e) for key in list(self.rows)], self.engine.session(self.max_batch)
        with self.lock:
            self.steps += 1
        for key, outcome in ended:
            self.end(key, outcome)
    def end(self, key: int, outcome) -> None:
        with self.lock:
            task, tag = self.rows.pop(key)
        task.inflight -= 1
        if isinstance(outcome, BaseException):
            self.fail(task, problem_of(task, outcome))
        elif not task.flag.is_set():
            try:
                task.end(tag, outcome)
            except Exception as e:
                self.fail(task, problem_of(task, e))
        self.settle(task)
    def gather(self) -> None:
        """A session that just started waits up to batch_wait_s for rows to fill it."""
        deadline = time.monotonic() + self.batch_wait_s
        while len(self.rows) < self.max_batch and not self.stopping and (left := deadline - time.monotonic()) > 0:
            self.take(True, left)
            self.fill()
    def loop(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)
        self.session = self.engine.session(self.max_batch)
        while True:
            self.take(block=not self.rows and not self.order and not self.stopping)
            if self.stopping and not self.rows:
                break
            started = not self.rows
            self.fill()
            if started and self.rows:
                self.gather()
            if self.rows:
                self.advance()
    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is running or waiting, then end the thread once its rows ended."""
        with self.lock:
            tasks = list(self.tasks)
        for task in tasks:
            self.cancel(task, "server shutting down", 503)
        self.queue.put(None)
        self.thread.join(timeout)
