# Batched decoding through one interface: a Session holds the rows decoding together; add(prepared, observer)
# queues a request and returns its key, step() advances the rows (one forward for a batching engine) and returns
# the rows that ended as (key, Completion or the exception that ended the row); rows may join between steps.
# SerialSession runs one row to its end per step (engines that do not batch). Entry points: Session,
# SerialSession, run_all(session, prepared, observers) -> completions in order.
from collections import deque
from hildanext.decode.engines import Completion, Prepared
class Session:
    """Up to max_rows rows at a time; waiting rows join when a row ends."""
    def __init__(self, engine, max_rows: int):
        if max_rows < 1:
            raise ValueError(f"a session needs max_rows >= 1, got {max_rows}")
        self.engine, self.max_rows, self.waiting, self.next_key = engine, max_rows, deque(), 0
    def add(self, prepared: Prepared, observer=None) -> int:
        self.next_key += 1
        self.waiting.append((self.next_key, prepared, observer))
        return self.next_key
    def running(self) -> int:
        return 0
    def __len__(self) -> int:
        return len(self.waiting) + self.running()
    def step(self) -> list[tuple[int, Completion | BaseException]]:
        raise NotImplementedError

class SerialSession(Session):
    """One waiting row decoded to its end per step with engine.run."""
    def step(self) -> list[tuple[int, Completion | BaseException]]:
        if not self.waiting:
            return []
        key, prepared, observer = self.waiting.popleft()
        try:
            return [(key, self.engine.run(prepared, observer))]
        except Exception as e:
            return [(key, e)]

def run_all(session: Session, prepared: list[Prepared], observers=None) -> list[Completion]:
    """Every request through the session; the first row's exception is raised once all rows have ended."""
    keys = [session.add(p, observers[i] if observers else None) for i, p in enumerate(prepared)]
    ended: dict[int, Completion | BaseException] = {}
    while len(session):
        ended.update(session.step())
    if error := next((ended[k] for k in keys if isinstance(ended[k], BaseException)), None):
        raise error
    return [ended[k] for k in keys]
